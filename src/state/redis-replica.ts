// The shared half of every replicated cache on Redis (the registration
// store, learned rosters, the session directory): policy stages judge
// stanzas synchronously, so each keeps a full copy in memory, applies its own
// writes at once, and sends each write to Redis as one Lua script that
// changes the keys and PUBLISHes the change in the same atomic step. Every
// instance, the writer included, applies the published changes in Redis's
// commit order, so the copies converge on what Redis holds.
//
// This module owns what does not depend on what is kept: the two
// connections (commands, and a subscriber for the change channel), loading a
// snapshot with the changes that arrive meanwhile held back and replayed
// after it, the writes in flight, the sync marker, and closing.
// docs/deploy.md ("Fleets: several instances, one Redis").
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { openRedisPair, withTimeout } from "./redis-connect.js";

export interface ReplicaOptions {
  /** redis://host:port/db */
  readonly url: string;
  /** The change channel's full name. */
  readonly channel: string;
  /** Bound on connecting; the snapshot load gets four times as long. */
  readonly connectTimeoutMs?: number;
  /** A background write, a bad event or the subscription failed (the copy keeps answering). */
  readonly onError?: (err: unknown, op: string) => void;
  /** The `op` reported for a change that cannot be read (default "redis-event"). */
  readonly eventOp?: string;
  /** What the snapshot load is called in errors ("loading rosters"). */
  readonly what: string;
}

export interface ReplicaHooks {
  /** Read the snapshot into memory (changes published meanwhile are held and applied after it). */
  load(replica: RedisReplica): Promise<void>;
  /** Apply one published change (parsed JSON; sync markers never reach it). */
  apply(change: unknown): void;
}

export class RedisReplica {
  /** The command connection: Lua writes, snapshot reads. */
  readonly r: Redis;
  readonly #sub: Redis;
  readonly channel: string;
  readonly #onError: (err: unknown, op: string) => void;
  readonly #eventOp: string;
  readonly #pending = new Set<Promise<unknown>>();
  readonly #syncWaiters = new Map<string, () => void>();
  #closed = false;

  /** Connects, subscribes, loads the snapshot. Rejects (and disconnects) when Redis is unreachable in time. */
  static open(options: ReplicaOptions, hooks: ReplicaHooks): Promise<RedisReplica> {
    return openRedisPair(options, (r, sub) => new RedisReplica(r, sub, options), { run: (rep) => rep.#start(hooks), what: options.what, startMultiple: 4 });
  }

  private constructor(r: Redis, sub: Redis, options: ReplicaOptions) {
    this.r = r;
    this.#sub = sub;
    this.channel = options.channel;
    this.#onError = options.onError ?? (() => {});
    this.#eventOp = options.eventOp ?? "redis-event";
    // ioredis reconnects by itself; errors are reported, not thrown.
    r.on("error", (err) => this.#onError(err, "redis"));
    sub.on("error", (err) => this.#onError(err, "redis-subscribe"));
  }

  get closed(): boolean {
    return this.#closed;
  }

  async #start(hooks: ReplicaHooks): Promise<void> {
    // Subscribe first and hold changes back until the snapshot is in: replayed
    // in order after it, they bring the copy to Redis's state (each change
    // carries its key's whole resulting state, or is idempotent).
    const held: string[] = [];
    let loading = true;
    const receive = (message: string): void => {
      let change: unknown;
      try {
        change = JSON.parse(message);
      } catch (err) {
        this.#onError(err, this.#eventOp);
        return;
      }
      const sync = (change as { sync?: unknown } | null)?.sync;
      if (typeof sync === "string") {
        this.#syncWaiters.get(sync)?.();
        this.#syncWaiters.delete(sync);
        return;
      }
      hooks.apply(change);
    };
    this.#sub.on("message", (channel: string, message: string) => {
      if (channel !== this.channel || this.#closed) return;
      if (loading) held.push(message);
      else receive(message);
    });
    await this.#sub.subscribe(this.channel);
    await hooks.load(this);
    loading = false;
    for (const m of held) receive(m);
  }

  /** Every key matching `pattern` (SCAN, in batches), handed to `each` one after another. */
  async scan(pattern: string, each: (key: string) => Promise<void>): Promise<void> {
    let cursor = "0";
    do {
      const [next, keys] = await this.r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      for (const key of keys) await each(key);
    } while (cursor !== "0");
  }

  /** Track a write sent in the background; a failure is reported as `op` (the copy has already changed). */
  send(op: string, p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.#onError(err, op));
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }

  /** Resolves when every write sent so far has been answered by Redis. */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /**
   * Resolves once this instance has applied every change Redis published
   * before now (other instances' flushed writes included): a marker is
   * published and awaited on the subscription, which delivers in order.
   */
  async sync(): Promise<void> {
    await this.flush();
    const id = randomUUID();
    const seen = new Promise<void>((resolve) => this.#syncWaiters.set(id, resolve));
    await this.r.publish(this.channel, JSON.stringify({ sync: id }));
    await withTimeout(seen, 5000, `${this.channel} sync`);
  }

  /**
   * Stop: no change is applied from now on. `last` (a goodbye write) gets a
   * second before the connection quits; QUIT waits behind the writes in flight.
   */
  close(last?: () => Promise<unknown>): void {
    if (this.#closed) return;
    this.#closed = true;
    const quit = (): void => void this.r.quit().catch(() => this.r.disconnect());
    if (last === undefined) quit();
    else void withTimeout(last().catch(() => {}), 1000, `${this.channel} goodbye`).catch(() => {}).finally(quit);
    this.#sub.disconnect();
  }

  /** Stop as a crashed process would: no goodbye, nothing waited for (tests). */
  abandon(): void {
    this.#closed = true;
    this.r.disconnect();
    this.#sub.disconnect();
  }
}
