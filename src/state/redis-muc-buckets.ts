// The MUC limits' room buckets shared by a fleet through one Redis (issue 7),
// the same way RedisStore shares the registration state: the stage's take()
// is answered from memory, never after a round trip. Each room is a
// SharedBucket (src/muc/shared-bucket.ts): the last state Redis committed
// plus this instance's own debits in flight. A debit the local copy accepts
// is sent (fire-and-forget, pipelined by ioredis) as one Lua script that
// refills Redis's copy to the debit's time, takes the cost, stores tokens and
// time with a TTL of about the time to refill fully (an idle room expires),
// numbers the commit from a counter and PUBLISHes the resulting state in the
// same atomic step. Every instance adopts newer states as they arrive (its
// own debits from the script's reply or the echo, whichever is first), so a
// room is one bucket across the fleet. A room an instance has not seen yet is
// assumed full and seeded by the first state it hears of: another instance's
// debit, or the reply to its own, whose script also never lets Redis's copy
// hold more than this instance's (so a room Redis forgot, or one that had
// rate 0 here, is not refilled by the store).
//
// Consistency: a debit on one instance reaches the others after one Redis
// round trip plus pub/sub delivery. In that window two instances may both
// accept a message the room's bucket would refuse once; Redis counts both, so
// the bucket is left in debt and every instance refuses until it refills.
//
// Times are Unix epoch ms from the stage's clock (a wall clock when shared):
// the stored times must mean the same on every instance.
//
// Keys (P = state.prefix):
//   P muc:room:<room>  hash  tokens, updated_at; expires when refilled to full
//   P muc:seq          string  commit counter
//   P muc:events       pub/sub channel of {i, o, k, v: [tokens, at, seq]}
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { IdleTable, type IdleEntry } from "../muc/idle-table.js";
import type { RoomBucketStore, RoomLimits } from "../muc/room-buckets.js";
import { SharedBucket } from "../muc/shared-bucket.js";
import type { Clock } from "../shaping/clock.js";
import { openRedisPair } from "./redis-connect.js";

export interface RedisRoomBucketsOptions {
  /** redis://host:port/db */
  readonly url: string;
  /** Prefix of every key and of the channel (state.prefix). */
  readonly prefix: string;
  /** Wall clock, epoch ms: the stage's clock. Stamps rooms learned from other instances. */
  readonly clock: Clock;
  /** Bound on the initial connection and subscription. */
  readonly connectTimeoutMs?: number;
  /**
   * A debit ("muc-debit"), a connection ("muc-redis", "muc-redis-subscribe")
   * or an event ("muc-redis-event") failed; the local copy keeps answering.
   */
  readonly onError?: (err: unknown, op: string) => void;
}

/** A state as published: i = instance, o = its op id, k = room, v = [tokens, at, seq]. */
interface Event {
  readonly i: string;
  readonly o: number;
  readonly k: string;
  readonly v: [number, number, number];
}

// KEYS: room hash, seq counter. ARGV: cost, now, capacity, perMs, ceiling
// (this instance's committed balance at now), highest seq seen, channel,
// room, instance, op. Floats travel as %.17g strings (tostring would round).
const LUA_ROOM_DEBIT = `
local cost = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local perMs = tonumber(ARGV[4])
local t = cap
local at = now
local cur = redis.call('HMGET', KEYS[1], 'tokens', 'updated_at')
if cur[1] then
  local last = tonumber(cur[2])
  local elapsed = now - last
  if elapsed < 0 then elapsed = 0 at = last end
  t = tonumber(cur[1]) + elapsed * perMs
  if t > cap then t = cap end
end
local ceiling = tonumber(ARGV[5])
if ceiling < t then t = ceiling end
t = t - cost
local seq = redis.call('INCR', KEYS[2])
local seen = tonumber(ARGV[6])
if seq <= seen then seq = seen + 1 redis.call('SET', KEYS[2], string.format('%d', seq)) end
local ts = string.format('%.17g', t)
local ats = string.format('%.17g', at)
redis.call('HSET', KEYS[1], 'tokens', ts, 'updated_at', ats)
if perMs > 0 then redis.call('PEXPIRE', KEYS[1], math.ceil((cap - t) / perMs) + 1000) end
local v = '[' .. ts .. ',' .. ats .. ',' .. string.format('%d', seq) .. ']'
redis.call('PUBLISH', ARGV[7], '{"i":' .. cjson.encode(ARGV[9]) .. ',"o":' .. ARGV[10] .. ',"k":' .. cjson.encode(ARGV[8]) .. ',"v":' .. v .. '}')
return v`;

interface RoomEntry extends IdleEntry {
  /** null while the rate is 0: nothing with a cost passes, nothing is shared. */
  bucket: SharedBucket | null;
}

function isState(v: unknown): v is [number, number, number] {
  return Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === "number" && Number.isFinite(x));
}

/** A snapshot of one room's local copy (tests, debugging). */
export interface RoomView {
  readonly balance: number;
  readonly seq: number;
  readonly pending: number;
}

export class RedisRoomBuckets implements RoomBucketStore {
  readonly #r: Redis;
  readonly #sub: Redis;
  readonly #p: string;
  readonly #channel: string;
  readonly #clock: Clock;
  readonly #onError: (err: unknown, op: string) => void;
  readonly #id = randomUUID();
  #limits: RoomLimits = { rate: 0, burst: 1, idleMs: Infinity, maxRooms: Infinity };
  readonly #rooms = new IdleTable<RoomEntry>(Infinity, Infinity);
  #op = 0;
  /** Highest commit number heard of, sent with each debit (see the script). */
  #maxSeq = 0;
  /** Debits sent and not yet answered. */
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;

  /** Connects and subscribes. Rejects (and disconnects) when Redis is unreachable in time. */
  static open(options: RedisRoomBucketsOptions): Promise<RedisRoomBuckets> {
    return openRedisPair(options, (r, sub) => new RedisRoomBuckets(r, sub, options), { run: (store) => store.#sub.subscribe(store.#channel), what: "subscribing" });
  }

  private constructor(r: Redis, sub: Redis, options: RedisRoomBucketsOptions) {
    this.#r = r;
    this.#sub = sub;
    this.#p = options.prefix;
    this.#channel = `${options.prefix}muc:events`;
    this.#clock = options.clock;
    this.#onError = options.onError ?? (() => {});
    r.on("error", (err) => this.#onError(err, "muc-redis"));
    sub.on("error", (err) => this.#onError(err, "muc-redis-subscribe"));
    sub.on("message", (channel: string, message: string) => {
      if (channel === this.#channel && !this.#closed) this.#event(message);
    });
  }

  get size(): number {
    return this.#rooms.size;
  }

  get capEvictions(): number {
    return this.#rooms.capEvictions;
  }

  take(room: string, cost: number, now: number): boolean {
    const b = this.#rooms.use(room, now, () => ({ last: now, bucket: this.#newBucket(now) })).bucket;
    if (b === null) return cost <= 0;
    if (b.balance(now) < cost) return false;
    if (cost <= 0) return true;
    const op = ++this.#op;
    b.debit(op, cost);
    // Once closed (sessions still draining), debits stay local.
    if (this.#closed) b.fail(op, now);
    else this.#send(room, op, cost, now, b);
    return true;
  }

  configure(limits: RoomLimits, now: number, keep: (room: string) => boolean = () => true): void {
    this.#limits = limits;
    const capacity = limits.rate * limits.burst;
    for (const [key, e] of this.#rooms.entries()) {
      if (!keep(key)) {
        this.#rooms.delete(key);
      } else if (!(limits.rate > 0)) {
        e.bucket = null;
      } else if (e.bucket !== null) {
        e.bucket.reconfigure(limits.rate, capacity, now);
      } else {
        // A zero-rate bucket held 0 tokens: so does its successor.
        e.bucket = new SharedBucket(limits.rate, capacity, now, 0);
      }
    }
    this.#rooms.reconfigure(limits.idleMs, limits.maxRooms, now);
  }

  sweep(now: number): number {
    // Local only: Redis expires each room itself when it has refilled.
    return this.#rooms.sweep(now);
  }

  /** The local copy of `room` at `now`, or undefined when not held. */
  peek(room: string, now: number = this.#clock.now()): RoomView | undefined {
    const b = this.#rooms.get(room, now)?.bucket;
    if (b == null) return undefined;
    return { balance: b.balance(now), seq: b.seq, pending: b.pendingCount };
  }

  /** Resolves when every debit sent so far has been answered by Redis. */
  async flush(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // QUIT is queued behind the debits still in flight on this connection.
    void this.#r.quit().catch(() => this.#r.disconnect());
    this.#sub.disconnect();
  }

  #newBucket(now: number): SharedBucket | null {
    const { rate, burst } = this.#limits;
    return rate > 0 ? new SharedBucket(rate, rate * burst, now) : null;
  }

  #send(room: string, op: number, cost: number, now: number, b: SharedBucket): void {
    const sent = this.#r.eval(
      LUA_ROOM_DEBIT,
      2,
      `${this.#p}muc:room:${room}`,
      `${this.#p}muc:seq`,
      String(cost),
      String(now),
      String(b.capacity),
      String(b.perMs),
      String(b.committed(now)),
      String(this.#maxSeq),
      this.#channel,
      room,
      this.#id,
      String(op),
    );
    const failed = (err: unknown): void => {
      this.#onError(err, "muc-debit");
      // Not committed (as far as we know): the debit stays a local one.
      this.#rooms.get(room, this.#clock.now())?.bucket?.fail(op, now);
    };
    const tracked = sent.then((reply) => {
      let v: unknown;
      try {
        v = JSON.parse(String(reply));
      } catch {
        v = undefined;
      }
      if (isState(v)) this.#applyState(room, v, op, false);
      else failed(new Error(`unexpected reply ${String(reply).slice(0, 100)}`));
    }, failed);
    this.#inFlight.add(tracked);
    void tracked.finally(() => this.#inFlight.delete(tracked));
  }

  #event(message: string): void {
    let e: Event;
    try {
      e = JSON.parse(message) as Event;
      if (typeof e.k !== "string" || typeof e.i !== "string" || typeof e.o !== "number" || !isState(e.v)) throw new Error("malformed event");
    } catch (err) {
      this.#onError(err, "muc-redis-event");
      return;
    }
    const own = e.i === this.#id;
    this.#applyState(e.k, e.v, own ? e.o : undefined, !own);
  }

  /**
   * A committed state of `room`. Another instance's debit also touches the
   * room here (creating it when unknown): the room is active in the fleet,
   * and its state is then at hand when a local occupant speaks.
   */
  #applyState(room: string, [tokens, at, seq]: [number, number, number], op: number | undefined, touch: boolean): void {
    if (seq > this.#maxSeq) this.#maxSeq = seq;
    const now = this.#clock.now();
    const e = touch ? this.#rooms.use(room, now, () => ({ last: now, bucket: this.#newBucket(now) })) : this.#rooms.get(room, now);
    e?.bucket?.apply({ tokens, at, seq }, op);
  }
}
