// Sharing the session directory (knowledge/sessions.ts) between processes, so
// a stanza judged on one worker or instance sees the sessions bound on the
// others. Both ways keep a full copy in every process (lookups stay
// synchronous) and send each change of one full JID's entry as its whole new
// state; see docs/knowledge.md ("Sessions and directed presence").
//
// - Redis (state.redis set; a fleet, or workers): each instance writes its
//   entries into its own hash, which expires unless the instance keeps
//   renewing it; every change is one Lua script that writes and PUBLISHes.
//   An instance that is gone (its hash expired, or it said goodbye) has its
//   entries dropped by the others.
// - IPC (workers without Redis): workers send changes to the cluster
//   primary, which keeps the table, forwards each change to the other
//   workers, hands a snapshot to a starting worker, and drops a worker's
//   entries when it exits.
import cluster, { type Worker } from "node:cluster";
import { withTimeout } from "../state/redis-connect.js";
import { RedisReplica } from "../state/redis-replica.js";
import { parseEvent, type EntryJson, type KnowledgeEvent, type Replicator, type SessionDirectory } from "./sessions.js";

function instanceOf(owner: string): string {
  const i = owner.indexOf(":");
  return i < 0 ? owner : owner.slice(0, i);
}

// ---------------------------------------------------------------------------
// Redis

export interface RedisReplicatorOptions {
  readonly url: string;
  /** state.prefix */
  readonly prefix: string;
  readonly directory: SessionDirectory;
  readonly connectTimeoutMs?: number;
  /** How often this instance renews its hash and checks the others' (default 10 s). */
  readonly heartbeatMs?: number;
  /** How long an instance's hash outlives its last renewal (default 3 heartbeats). */
  readonly ttlMs?: number;
  readonly onError?: (err: unknown, op: string) => void;
}

const LUA_SET = `redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) redis.call('PEXPIRE', KEYS[1], ARGV[3]) redis.call('PUBLISH', ARGV[4], ARGV[5]) return 1`;
const LUA_DEL = `redis.call('HDEL', KEYS[1], ARGV[1]) redis.call('PUBLISH', ARGV[2], ARGV[3]) return 1`;
const LUA_GONE = `redis.call('DEL', KEYS[1]) redis.call('PUBLISH', ARGV[1], ARGV[2]) return 1`;

/** Keys (P = state.prefix): `P sessions:<instance>` hash full JID → entry JSON; channel `P sessions`. */
export class RedisSessionReplicator implements Replicator {
  /** Set by open() before the replicator is handed out. */
  #rep!: RedisReplica;
  readonly #dir: SessionDirectory;
  readonly #keyPrefix: string;
  readonly #key: string;
  readonly #ttlMs: number;
  readonly #heartbeatMs: number;
  readonly #onError: (err: unknown, op: string) => void;
  #heartbeat: NodeJS.Timeout | undefined;
  /** Per other instance: a count bumped by each of its events (a liveness check must not race a new write). */
  readonly #seen = new Map<string, number>();

  /** Connects, subscribes, loads every instance's entries into the directory and attaches to it. */
  static async open(options: RedisReplicatorOptions): Promise<RedisSessionReplicator> {
    const rep = new RedisSessionReplicator(options);
    rep.#rep = await RedisReplica.open(
      { url: options.url, channel: `${options.prefix}sessions`, connectTimeoutMs: options.connectTimeoutMs, onError: options.onError, eventOp: "knowledge-event", what: "loading sessions" },
      { load: (r) => rep.#load(r), apply: (change) => rep.#apply(change) },
    );
    options.directory.attach(rep);
    rep.#heartbeat = setInterval(() => rep.#beat(), rep.#heartbeatMs);
    rep.#heartbeat.unref();
    return rep;
  }

  private constructor(options: RedisReplicatorOptions) {
    this.#dir = options.directory;
    this.#keyPrefix = `${options.prefix}sessions:`;
    this.#key = `${this.#keyPrefix}${options.directory.instance}`;
    this.#heartbeatMs = options.heartbeatMs ?? 10_000;
    this.#ttlMs = options.ttlMs ?? 3 * this.#heartbeatMs;
    this.#onError = options.onError ?? (() => {});
  }

  async #load(rep: RedisReplica): Promise<void> {
    await rep.scan(`${this.#keyPrefix}*`, async (key) => {
      if (key === this.#key) return;
      const all = await rep.r.hgetall(key);
      for (const [jid, json] of Object.entries(all)) {
        let v: unknown;
        try {
          v = JSON.parse(json);
        } catch (err) {
          this.#onError(err, "knowledge-event");
          continue;
        }
        const e = parseEvent({ k: jid, v });
        // A JID in two hashes (taken over while a write was in flight): a live entry wins.
        if (e !== null && !(e.v !== null && e.v.x !== 0 && this.#dir.isOnline(jid))) this.#dir.applyRemote(e);
      }
    });
  }

  #apply(value: unknown): void {
    const gone = (value as { gone?: unknown } | null)?.gone;
    if (typeof gone === "string") {
      if (gone !== this.#dir.instance) {
        this.#dir.dropInstance(gone);
        this.#seen.delete(gone);
      }
      return;
    }
    const e = parseEvent(value);
    if (e === null) {
      this.#onError(new Error("malformed sessions event"), "knowledge-event");
      return;
    }
    const owner = e.v === null ? e.o : e.v.o;
    const instance = instanceOf(owner);
    if (instance === this.#dir.instance) return; // our own, applied when made
    this.#seen.set(instance, (this.#seen.get(instance) ?? 0) + 1);
    this.#dir.applyRemote(e);
  }

  publish(event: KnowledgeEvent): void {
    if (this.#rep.closed) return;
    const message = JSON.stringify(event);
    if (event.v === null) this.#send(this.#rep.r.eval(LUA_DEL, 1, this.#key, event.k, this.#rep.channel, message));
    else this.#send(this.#rep.r.eval(LUA_SET, 1, this.#key, event.k, JSON.stringify(event.v satisfies EntryJson), String(this.#ttlMs), this.#rep.channel, message));
  }

  #send(p: Promise<unknown>): void {
    this.#rep.send("knowledge", p);
  }

  /** Renew our hash; drop the entries of instances whose hash is gone (crashed, or cut off from Redis too long). */
  #beat(): void {
    if (this.#rep.closed) return;
    // Our hash gone while we hold entries (Redis was out of reach past the
    // TTL, or restarted empty): the others have dropped our sessions; send them again.
    this.#send(this.#rep.r.pexpire(this.#key, this.#ttlMs).then((renewed) => {
      if (renewed === 0 && !this.#rep.closed) this.republish();
    }));
    void this.checkPeers();
  }

  /** Publish every entry this instance owns again (after its hash was lost). */
  republish(): number {
    let n = 0;
    for (const [k, v] of this.#dir.entries()) {
      if (instanceOf(v.o) !== this.#dir.instance) continue;
      this.publish({ k, v });
      n++;
    }
    return n;
  }

  /** One liveness check of the other instances (the heartbeat runs it; tests call it). */
  async checkPeers(): Promise<void> {
    const others = new Set<string>();
    for (const [, e] of this.#dir.entries()) {
      const i = instanceOf(e.o);
      if (i !== this.#dir.instance) others.add(i);
    }
    await Promise.all(
      [...others].map(async (instance) => {
        const before = this.#seen.get(instance) ?? 0;
        try {
          const exists = await this.#rep.r.exists(`${this.#keyPrefix}${instance}`);
          if (exists === 0 && (this.#seen.get(instance) ?? 0) === before && !this.#rep.closed) this.#dir.dropInstance(instance);
        } catch (err) {
          this.#onError(err, "knowledge");
        }
      }),
    );
  }

  /** Resolves when every write sent so far has been answered. */
  flush(): Promise<void> {
    return this.#rep.flush();
  }

  /** Resolves once this instance has applied every change Redis published before now (a marker round trip). */
  sync(): Promise<void> {
    return this.#rep.sync();
  }

  /** Tests: stop as a crashed process would, without a goodbye (the hash stays until its TTL). */
  abandon(): void {
    clearInterval(this.#heartbeat);
    this.#rep.abandon();
  }

  close(): void {
    if (this.#rep.closed) return;
    clearInterval(this.#heartbeat);
    // Goodbye: the others drop our sessions now rather than at the TTL.
    this.#rep.close(() => this.#rep.r.eval(LUA_GONE, 1, this.#key, this.#rep.channel, JSON.stringify({ gone: this.#dir.instance })));
  }
}

// ---------------------------------------------------------------------------
// IPC through the cluster primary (workers without Redis)

type FromWorker = { xg: "kn-hello" } | { xg: "kn"; e: KnowledgeEvent };
type ToWorkerMsg = { xg: "kn-snap"; entries: Array<[string, EntryJson]> } | { xg: "kn"; e: KnowledgeEvent };

/** The worker's side: changes go to the primary, the others' come from it. */
export class IpcSessionReplicator implements Replicator {
  readonly #dir: SessionDirectory;
  readonly #listener: (m: unknown) => void;
  #closed = false;

  /** Asks the primary for the table, loads it, attaches to the directory. Resolves (empty) after `timeoutMs` without an answer. */
  static async open(directory: SessionDirectory, timeoutMs = 5000, onError: (err: unknown, op: string) => void = () => {}): Promise<IpcSessionReplicator> {
    let snapshot: (entries: Array<[string, EntryJson]>) => void = () => {};
    const got = new Promise<Array<[string, EntryJson]>>((resolve) => (snapshot = resolve));
    const rep = new IpcSessionReplicator(directory, snapshot, onError);
    process.send?.({ xg: "kn-hello" } satisfies FromWorker);
    try {
      const entries = await withTimeout(got, timeoutMs, "sessions snapshot from the cluster primary");
      for (const [k, v] of entries) directory.applyRemote({ k, v });
    } catch (err) {
      onError(err, "knowledge");
    }
    directory.attach(rep);
    return rep;
  }

  private constructor(directory: SessionDirectory, snapshot: (entries: Array<[string, EntryJson]>) => void, onError: (err: unknown, op: string) => void) {
    this.#dir = directory;
    this.#listener = (m: unknown): void => {
      const msg = m as ToWorkerMsg | null;
      if (typeof msg !== "object" || msg === null || this.#closed) return;
      if (msg.xg === "kn-snap") snapshot(msg.entries);
      else if (msg.xg === "kn") {
        const e = parseEvent(msg.e);
        if (e === null) onError(new Error("malformed sessions event"), "knowledge-event");
        else this.#dir.applyRemote(e);
      }
    };
    process.on("message", this.#listener);
  }

  publish(event: KnowledgeEvent): void {
    if (!this.#closed && process.connected) process.send!({ xg: "kn", e: event } satisfies FromWorker);
  }

  close(): void {
    this.#closed = true;
    process.off("message", this.#listener);
  }
}

/**
 * The primary's side: the authoritative table of every worker's entries.
 * Attach each forked worker; it forgets a worker's entries when it exits.
 */
export class SessionHub {
  readonly #table = new Map<string, { v: EntryJson; worker: number }>();
  readonly #workers = new Map<number, Worker>();

  get size(): number {
    return this.#table.size;
  }

  attach(w: Worker): void {
    this.#workers.set(w.id, w);
    w.on("message", (m: unknown) => this.#onMessage(w, m));
    w.on("exit", () => this.#gone(w));
  }

  #onMessage(w: Worker, m: unknown): void {
    const msg = m as FromWorker | null;
    if (typeof msg !== "object" || msg === null) return;
    if (msg.xg === "kn-hello") {
      this.#sendTo(w, { xg: "kn-snap", entries: [...this.#table].map(([k, x]) => [k, x.v]) });
      return;
    }
    if (msg.xg !== "kn") return;
    const e = parseEvent(msg.e);
    if (e === null) return;
    if (e.v === null) {
      const cur = this.#table.get(e.k);
      if (cur === undefined || cur.v.o !== e.o) return; // already taken over elsewhere
      this.#table.delete(e.k);
    } else {
      this.#table.set(e.k, { v: e.v, worker: w.id });
    }
    for (const other of this.#workers.values()) if (other !== w) this.#sendTo(other, { xg: "kn", e });
  }

  #gone(w: Worker): void {
    this.#workers.delete(w.id);
    for (const [k, x] of [...this.#table]) {
      if (x.worker !== w.id) continue;
      this.#table.delete(k);
      const e: KnowledgeEvent = { k, v: null, o: x.v.o };
      for (const other of this.#workers.values()) this.#sendTo(other, { xg: "kn", e });
    }
  }

  #sendTo(w: Worker, m: ToWorkerMsg): void {
    if (w.isConnected()) w.send(m);
  }
}

/** True in a cluster worker (workers mode). */
export function inWorker(): boolean {
  return cluster.isWorker && typeof process.send === "function";
}
