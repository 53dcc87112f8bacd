// The fleet RegistrationStore (docs/deploy.md, "Fleets: several instances, one Redis"): one Redis shared by every xmpp-guard
// instance and worker, as a replicated cache (state/redis-replica.ts): reads
// are answered from memory; every write is applied locally at once and sent
// as one Lua script that changes the key and PUBLISHes its resulting state.
//
// Consistency: a write made on one instance is seen by the others after one
// Redis round trip plus pub/sub delivery (sub-millisecond on a LAN). In that
// window two instances may both accept a registration the throttle would
// refuse once, or both accept the same name; the throttle debit itself is
// recomputed atomically in Redis from Redis's state, so a bucket over-spent
// that way is left in debt and refuses the next attempts (never lost).
//
// Keys (P = state.prefix):
//   P accounts        hash  "username@host" → JSON [skeleton, source, created_at, ip]
//   P tombstones      zset  "username@host" scored by deleted_at (epoch ms)
//   P throttle:<key>  hash  tokens, updated_at; expires when refilled to full
//   P meta            hash  skeleton_version
//   P events          pub/sub channel of {t, k, v} key states
import type { Redis } from "ioredis";
import { countAccountsIn, pruneRefilled, pruneTombstonesBefore, type AccountSource, type KnownAccount, type RegistrationStore, type ThrottleState, type Tombstone } from "./registration-store.js";
import { RedisReplica } from "./redis-replica.js";

export interface RedisStoreOptions {
  /** redis://host:port/db */
  readonly url: string;
  /** Prefix of every key and of the channel. */
  readonly prefix: string;
  /** Bound on the initial connection and load. */
  readonly connectTimeoutMs?: number;
  /** A background write or the subscription failed (the cache keeps answering). */
  readonly onError?: (err: unknown, op: string) => void;
}

type AccountJson = [skeleton: string, source: AccountSource, created_at: number, ip: string | null];

/** One key's state after a write, as published on the channel. */
type Event =
  | { t: "a"; k: string; v: AccountJson | null }
  | { t: "s"; k: string; v: number | null }
  | { t: "h"; k: string; v: [number, number] | null };

// Floats travel as %.17g strings: Lua's tostring and number replies would round them.
const LUA_SET_IF_ABSENT = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('PUBLISH', ARGV[3], ARGV[4]) return 1 end
return 0`;
const LUA_HSET = `redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) redis.call('PUBLISH', ARGV[3], ARGV[4]) return 1`;
const LUA_HDEL = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3]) return 1 end
return 0`;
const LUA_ZADD = `redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) redis.call('PUBLISH', ARGV[3], ARGV[4]) return 1`;
const LUA_ZREM = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3]) return 1 end
return 0`;
// The throttle debit, atomic: Redis's bucket polled as pollThrottleState
// does (src/shaping/token-bucket.ts, Prosody's util.throttle: refreshed to
// `now` only when the stored balance is short of one token), one token taken
// whatever the balance (the instance already admitted), stored, expired when
// full again, published. Without a spec (capacity "") the given state is
// stored as it is.
const LUA_DEBIT = `
local tokens = tonumber(ARGV[1])
local at = ARGV[2]
local cap = tonumber(ARGV[3])
local perMs = tonumber(ARGV[4])
if cap ~= nil then
  local now = tonumber(ARGV[7])
  at = ARGV[7]
  local cur = redis.call('HMGET', KEYS[1], 'tokens', 'updated_at')
  local t = cap
  if cur[1] then
    t = tonumber(cur[1])
    if t > cap then t = cap end
    if t >= 1 then
      at = cur[2]
    else
      local elapsed = now - tonumber(cur[2])
      if elapsed > 0 then t = math.min(cap, t + elapsed * perMs) end
    end
  end
  tokens = t - 1
end
local ts = string.format('%.17g', tokens)
redis.call('HSET', KEYS[1], 'tokens', ts, 'updated_at', at)
if cap ~= nil and perMs > 0 then
  redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / perMs) + 1000)
end
redis.call('PUBLISH', ARGV[5], '{"t":"h","k":' .. cjson.encode(ARGV[6]) .. ',"v":[' .. ts .. ',' .. at .. ']}')
return ts`;

function pair(host: string, username: string): string {
  // "@" cannot occur in a nodeprepped username, so the pair is unambiguous.
  return `${username}@${host}`;
}

function splitPair(k: string): { username: string; host: string } {
  const at = k.indexOf("@");
  return { username: k.slice(0, at), host: k.slice(at + 1) };
}

export class RedisStore implements RegistrationStore {
  /** Set by open() before the store is handed out. */
  #rep!: RedisReplica;
  readonly #p: string;
  readonly #accounts = new Map<string, KnownAccount>();
  /** "host\0skeleton" → usernames with that skeleton. */
  readonly #bySkeleton = new Map<string, Set<string>>();
  readonly #tombstones = new Map<string, Tombstone>();
  readonly #throttles = new Map<string, ThrottleState>();
  #skeletonVersion: string | undefined;

  /** Connects, subscribes, loads the prefix's state. Rejects (and disconnects) when Redis is unreachable in time. */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const store = new RedisStore(options.prefix);
    store.#rep = await RedisReplica.open(
      { url: options.url, channel: `${options.prefix}events`, connectTimeoutMs: options.connectTimeoutMs, onError: options.onError, what: "loading state" },
      { load: (rep) => store.#load(rep), apply: (change) => store.#apply(change as Event) },
    );
    return store;
  }

  private constructor(prefix: string) {
    this.#p = prefix;
  }

  get #r(): Redis {
    return this.#rep.r;
  }

  get #channel(): string {
    return this.#rep.channel;
  }

  async #load(rep: RedisReplica): Promise<void> {
    const [accounts, tombs, meta] = await Promise.all([
      rep.r.hgetall(`${this.#p}accounts`),
      rep.r.zrange(`${this.#p}tombstones`, 0, -1, "WITHSCORES"),
      rep.r.hget(`${this.#p}meta`, "skeleton_version"),
    ]);
    for (const [k, json] of Object.entries(accounts)) this.#setAccount(k, JSON.parse(json) as AccountJson);
    for (let i = 0; i + 1 < tombs.length; i += 2) this.#setTombstone(tombs[i]!, Number(tombs[i + 1]));
    this.#skeletonVersion = meta ?? undefined;
    const throttlePrefix = `${this.#p}throttle:`;
    await rep.scan(`${throttlePrefix}*`, async (key) => {
      const [tokens, updated] = await rep.r.hmget(key, "tokens", "updated_at");
      if (tokens !== null && updated !== null) this.#throttles.set(key.slice(throttlePrefix.length), { tokens: Number(tokens), updated_at: Number(updated) });
    });
  }

  #apply(e: Event): void {
    switch (e.t) {
      case "a":
        if (e.v === null) this.#deleteAccount(e.k);
        else this.#setAccount(e.k, e.v);
        break;
      case "s":
        if (e.v === null) this.#tombstones.delete(e.k);
        else this.#setTombstone(e.k, e.v);
        break;
      case "h":
        if (e.v === null) this.#throttles.delete(e.k);
        else this.#throttles.set(e.k, { tokens: e.v[0], updated_at: e.v[1] });
        break;
    }
  }

  #setAccount(k: string, v: AccountJson): void {
    this.#deleteAccount(k);
    const { username, host } = splitPair(k);
    const account: KnownAccount = { host, username, skeleton: v[0], source: v[1], created_at: v[2], ip: v[3] };
    this.#accounts.set(k, account);
    const sk = `${host}\0${account.skeleton}`;
    let set = this.#bySkeleton.get(sk);
    if (set === undefined) this.#bySkeleton.set(sk, (set = new Set()));
    set.add(username);
  }

  #deleteAccount(k: string): boolean {
    const a = this.#accounts.get(k);
    if (a === undefined) return false;
    this.#accounts.delete(k);
    const sk = `${a.host}\0${a.skeleton}`;
    const set = this.#bySkeleton.get(sk);
    set?.delete(a.username);
    if (set?.size === 0) this.#bySkeleton.delete(sk);
    return true;
  }

  #setTombstone(k: string, deletedAt: number): void {
    const { username, host } = splitPair(k);
    this.#tombstones.set(k, { username, host, deleted_at: deletedAt });
  }

  /** Sends a write; failures are reported, the local cache has already changed. */
  #send(op: string, p: Promise<unknown>): void {
    this.#rep.send(op, p);
  }

  #event(e: Event): string {
    return JSON.stringify(e);
  }

  // --- throttles -----------------------------------------------------------

  getThrottle(key: string): ThrottleState | undefined {
    this.#check();
    return this.#throttles.get(key);
  }

  putThrottle(key: string, state: ThrottleState, spec?: { readonly capacity: number; readonly perMs: number; readonly now: number }): void {
    this.#check();
    this.#throttles.set(key, { tokens: state.tokens, updated_at: state.updated_at });
    this.#send(
      "throttle",
      this.#r.eval(
        LUA_DEBIT,
        1,
        `${this.#p}throttle:${key}`,
        state.tokens.toString(),
        String(state.updated_at),
        spec === undefined ? "" : String(spec.capacity),
        spec === undefined ? "" : String(spec.perMs),
        this.#channel,
        key,
        spec === undefined ? "" : String(spec.now),
      ),
    );
  }

  pruneThrottles(now: number, capacity: number, perMs: number): number {
    this.#check();
    // Local only: Redis expires each bucket itself when it has refilled.
    return pruneRefilled(this.#throttles, now, capacity, perMs);
  }

  countThrottles(): number {
    return this.#throttles.size;
  }

  // --- accounts ------------------------------------------------------------

  addAccount(a: KnownAccount): boolean {
    this.#check();
    const k = pair(a.host, a.username);
    if (this.#accounts.has(k)) return false;
    const v: AccountJson = [a.skeleton, a.source, a.created_at, a.ip];
    this.#setAccount(k, v);
    const json = JSON.stringify(v);
    this.#send("add-account", this.#r.eval(LUA_SET_IF_ABSENT, 1, `${this.#p}accounts`, k, json, this.#channel, this.#event({ t: "a", k, v })));
    return true;
  }

  removeAccount(host: string, username: string): boolean {
    this.#check();
    const k = pair(host, username);
    const had = this.#deleteAccount(k);
    // Sent even when unknown here: another instance's add may not have arrived yet.
    this.#send("remove-account", this.#r.eval(LUA_HDEL, 1, `${this.#p}accounts`, k, this.#channel, this.#event({ t: "a", k, v: null })));
    return had;
  }

  hasAccount(host: string, username: string): boolean {
    this.#check();
    return this.#accounts.has(pair(host, username));
  }

  getAccount(host: string, username: string): KnownAccount | undefined {
    this.#check();
    return this.#accounts.get(pair(host, username));
  }

  findBySkeleton(host: string, skeleton: string): string | undefined {
    this.#check();
    const set = this.#bySkeleton.get(`${host}\0${skeleton}`);
    return set === undefined ? undefined : set.values().next().value;
  }

  countAccounts(host?: string): number {
    return countAccountsIn(this.#accounts, host);
  }

  reindexSkeletons(version: string, compute: (username: string) => string): number {
    this.#check();
    if (this.#skeletonVersion === version) return 0;
    let n = 0;
    for (const [k, a] of [...this.#accounts]) {
      const skeleton = compute(a.username);
      if (skeleton === a.skeleton) continue;
      const v: AccountJson = [skeleton, a.source, a.created_at, a.ip];
      this.#setAccount(k, v);
      this.#send("reindex", this.#r.eval(LUA_HSET, 1, `${this.#p}accounts`, k, JSON.stringify(v), this.#channel, this.#event({ t: "a", k, v })));
      n++;
    }
    this.#skeletonVersion = version;
    this.#send("reindex", this.#r.hset(`${this.#p}meta`, "skeleton_version", version));
    return n;
  }

  // --- tombstones ----------------------------------------------------------

  putTombstone(t: Tombstone): void {
    this.#check();
    const k = pair(t.host, t.username);
    this.#setTombstone(k, t.deleted_at);
    this.#send("tombstone", this.#r.eval(LUA_ZADD, 1, `${this.#p}tombstones`, String(t.deleted_at), k, this.#channel, this.#event({ t: "s", k, v: t.deleted_at })));
  }

  getTombstone(host: string, username: string): Tombstone | undefined {
    this.#check();
    return this.#tombstones.get(pair(host, username));
  }

  deleteTombstone(host: string, username: string): boolean {
    this.#check();
    const k = pair(host, username);
    const had = this.#tombstones.delete(k);
    this.#send("tombstone", this.#r.eval(LUA_ZREM, 1, `${this.#p}tombstones`, k, this.#channel, this.#event({ t: "s", k, v: null })));
    return had;
  }

  pruneTombstones(before: number): number {
    this.#check();
    const n = pruneTombstonesBefore(this.#tombstones, before);
    // Every instance prunes by the same rule; Redis drops the rows once.
    this.#send("tombstone", this.#r.zremrangebyscore(`${this.#p}tombstones`, "-inf", `(${before}`));
    return n;
  }

  // --- fleet helpers -------------------------------------------------------

  /** Resolves when every write sent so far has been answered by Redis. */
  flush(): Promise<void> {
    return this.#rep.flush();
  }

  /** Resolves once this instance has applied every change Redis published before now. */
  sync(): Promise<void> {
    return this.#rep.sync();
  }

  close(): void {
    this.#rep.close();
  }

  #check(): void {
    if (this.#rep.closed) throw new Error("RedisStore is closed");
  }
}

