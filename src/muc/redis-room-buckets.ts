// The MUC limits' fair rooms shared by a fleet through one Redis, the same way
// RedisStore shares the registration state: the stage's attempt() is answered
// from memory, never after a round trip. Each room is a SharedRoom
// (src/muc/shared-room.ts): the last state Redis committed plus this
// instance's own attempts in flight. Every attempt, admitted or refused, is
// sent (fire-and-forget, pipelined by ioredis) with its verdict as one Lua
// script that replays it on Redis's copy with the same arithmetic as
// src/muc/fair-room.ts (refill, senders leaving the window, a newcomer's
// funding, the meter debit, the room debit when admitted), stores the room
// with a TTL of about the time until it would be forgotten anyway, numbers the
// commit from a counter and PUBLISHes the resulting state in the same atomic
// step. Every instance adopts newer states as they arrive (its own attempts
// from the script's reply or the echo, whichever is first), so a room is one
// limiter across the fleet. A room an instance has not seen yet is assumed
// fresh and seeded by the first state it hears of; a room Redis lost is
// restarted there with no more tokens than the sending instance holds.
//
// Consistency: an attempt on one instance reaches the others after one Redis
// round trip plus pub/sub delivery. In that window two instances may both
// admit what the room would refuse once; Redis counts both, so the room's
// bucket is left in debt and every instance refuses until it refills.
//
// Times are Unix epoch ms from the stage's clock (a wall clock when shared).
//
// Keys (P = state.prefix):
//   P muc:room:<room>  string  the room as JSON {t, a, s: [[sender, meter, last], …]}
//   P muc:seq          string  commit counter
//   P muc:events       pub/sub channel of {i, o, k, q, v} (instance, op, room, seq, state)
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { balanceAt, type AttemptResult, type FairLimits } from "./fair-room.js";
import { IdleTable, type IdleEntry } from "./idle-table.js";
import { fairLimits, type RoomBucketStore, type RoomLimits } from "./room-buckets.js";
import { fromWire, isWireRoom, SharedRoom, type WireRoom } from "./shared-room.js";
import type { Clock } from "../shaping/clock.js";
import { openRedisPair } from "../state/redis-connect.js";

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
   * An attempt ("muc-debit"), a connection ("muc-redis", "muc-redis-subscribe")
   * or an event ("muc-redis-event") failed; the local copy keeps answering.
   */
  readonly onError?: (err: unknown, op: string) => void;
}

/** A state as published: i = instance, o = its op id, k = room, q = seq, v = the room. */
interface Event {
  readonly i: string;
  readonly o: number;
  readonly k: string;
  readonly q: number;
  readonly v: WireRoom;
}

// KEYS: room, seq counter. ARGV: rate, burst, baseCost, windowMs, maxSenders,
// sender, cost, now, admitted (1/0), ceiling (this instance's committed
// tokens, for a room Redis does not hold), highest seq seen, channel, room,
// instance, op. Floats travel as %.17g strings (tostring would round). The
// arithmetic follows src/muc/fair-room.ts step for step, in the same order,
// so that both give the same doubles.
const LUA_ROOM_ATTEMPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local maxs = tonumber(ARGV[5])
local who = ARGV[6]
local cost = tonumber(ARGV[7])
local now = tonumber(ARGV[8])
local admitted = ARGV[9] == '1'
local function fmt(x) return string.format('%.17g', x) end
local function cap_for(n)
  local b = burst / (n + 1)
  if b >= base and b > 0 then return b end
  return 0
end
local tokens, at, ks, ms, ls
local raw = redis.call('GET', KEYS[1])
ks, ms, ls = {}, {}, {}
if raw then
  local st = cjson.decode(raw)
  tokens = st.t
  at = st.a
  for i, e in ipairs(st.s) do ks[i] = e[1] ms[i] = e[2] ls[i] = e[3] end
else
  tokens = burst
  local ceiling = tonumber(ARGV[10])
  if ceiling < tokens then tokens = ceiling end
  at = now
end
-- advance: nothing refills, and nobody can have become idle, until time moves on
local n = #ks
local elapsed = now - at
if elapsed > 0 then
  at = now
  local t = tokens + (elapsed * rate) / 1000
  if t > burst then t = burst end
  tokens = t
  if n > 0 then
    local cap = cap_for(n)
    local gain = (elapsed * rate) / (1000 * (n + 1))
    local leaving = false
    for i = 1, n do
      local m = ms[i] + gain
      if m > cap then m = cap end
      ms[i] = m
      if now - ls[i] >= window and m >= cap then leaving = true end
    end
    if leaving then
      local k2, m2, l2 = {}, {}, {}
      for i = 1, n do
        if not (now - ls[i] >= window and ms[i] >= cap) then
          k2[#k2 + 1] = ks[i] m2[#m2 + 1] = ms[i] l2[#l2 + 1] = ls[i]
        end
      end
      ks, ms, ls = k2, m2, l2
      local left = #ks
      if left > 0 then
        local cnew = cap_for(left)
        if cap > 0 and cnew > cap then
          local d = cnew - cap
          for i = 1, left do ms[i] = ms[i] + d end
        end
      end
    end
  end
end
n = #ks
local function reserved(cap, except)
  if cap <= 0 then return 0 end
  local sum = 0
  for i = 1, #ks do
    if i ~= except and ms[i] > 0 then
      if ms[i] > cap then sum = sum + cap else sum = sum + ms[i] end
    end
  end
  return sum
end
-- the sender, counted on arrival
local me = nil
for i = 1, n do if ks[i] == who then me = i break end end
if me == nil and n < maxs then
  local cold = cap_for(n)
  local cap = cap_for(n + 1)
  local d = cold - cap
  if d > 0 then
    local fl = -(burst + rate * window / 1000)
    for i = 1, n do
      local m = ms[i] - d
      if m < fl then m = fl end
      ms[i] = m
    end
  end
  local fund = tokens - reserved(cap, nil)
  if fund > cap then fund = cap end
  if not (fund > 0) then fund = 0 end
  n = n + 1
  ks[n] = who ms[n] = fund ls[n] = now
  me = n
end
if me ~= nil and now > ls[me] then ls[me] = now end
local floor = -(burst + rate * window / 1000)
if cost < 0 then
  if me ~= nil then
    local m = ms[me] - cost
    local cap = cap_for(#ks)
    if m > cap then m = cap end
    ms[me] = m
  end
  local t = tokens - cost
  if t > burst then t = burst end
  tokens = t
elseif cost > 0 then
  if me ~= nil then
    local after = ms[me] - cost
    if after < floor then after = floor end
    ms[me] = after
  end
  if admitted then tokens = tokens - cost end
end
local parts = {}
local latest = now
for i = 1, #ks do
  parts[i] = '[' .. cjson.encode(ks[i]) .. ',' .. fmt(ms[i]) .. ',' .. fmt(ls[i]) .. ']'
  if ls[i] > latest then latest = ls[i] end
end
local state = '{"t":' .. fmt(tokens) .. ',"a":' .. fmt(at) .. ',"s":[' .. table.concat(parts, ',') .. ']}'
local ttl = latest + window - now
if rate > 0 then
  local refill = math.ceil((burst - tokens) * 1000 / rate)
  if refill > ttl then ttl = refill end
end
if ttl < 0 then ttl = 0 end
redis.call('SET', KEYS[1], state, 'PX', math.ceil(ttl) + 1000)
local seq = redis.call('INCR', KEYS[2])
local seen = tonumber(ARGV[11])
if seq <= seen then seq = seen + 1 redis.call('SET', KEYS[2], string.format('%d', seq)) end
local q = string.format('%d', seq)
redis.call('PUBLISH', ARGV[12], '{"i":' .. cjson.encode(ARGV[14]) .. ',"o":' .. ARGV[15] .. ',"k":' .. cjson.encode(ARGV[13]) .. ',"q":' .. q .. ',"v":' .. state .. '}')
return '{"q":' .. q .. ',"v":' .. state .. '}'`;

interface RoomEntry extends IdleEntry {
  room: SharedRoom;
}

/** A snapshot of one room's local copy (tests, debugging). */
export interface RoomView {
  readonly balance: number;
  readonly seq: number;
  readonly pending: number;
  readonly senders: number;
}

export class RedisRoomBuckets implements RoomBucketStore {
  readonly #r: Redis;
  readonly #sub: Redis;
  readonly #p: string;
  readonly #channel: string;
  readonly #clock: Clock;
  readonly #onError: (err: unknown, op: string) => void;
  readonly #id = randomUUID();
  #limits: RoomLimits = { rate: 0, burst: 1, idleMs: Infinity, maxRooms: Infinity, baseCost: 1, activeMs: 60_000, maxSenders: 1000 };
  #fair: FairLimits = fairLimits(this.#limits);
  readonly #rooms = new IdleTable<RoomEntry>(Infinity, Infinity);
  #op = 0;
  /** Highest commit number heard of, sent with each attempt (see the script). */
  #maxSeq = 0;
  /** Attempts sent and not yet answered. */
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;

  /** Connects and subscribes. Rejects (and disconnects) when Redis is unreachable in time. */
  static open(options: RedisRoomBucketsOptions): Promise<RedisRoomBuckets> {
    return openRedisPair(options, (r, sub) => new RedisRoomBuckets(r, sub, options), {
      run: async (store) => {
        await store.#sub.subscribe(store.#channel);
        await store.#load();
      },
      what: "subscribing and loading rooms",
      startMultiple: 4,
    });
  }

  /**
   * The rooms Redis holds, read at start (a new instance knows the fleet's
   * drained rooms before their next commit) and adopted by the first
   * configure(), under the commit number read before them: any later commit
   * replaces them.
   */
  async #load(): Promise<void> {
    const seq = Number((await this.#r.get(`${this.#p}muc:seq`)) ?? 0);
    const prefix = `${this.#p}muc:room:`;
    let cursor = "0";
    do {
      const [next, keys] = await this.#r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const values = await this.#r.mget(...keys);
      keys.forEach((k, i) => {
        const raw = values[i];
        if (raw == null) return;
        try {
          const v: unknown = JSON.parse(raw);
          if (isWireRoom(v)) this.#preloaded.push([k.slice(prefix.length), v]);
        } catch {
          this.#onError(new Error(`room ${k}: not a room state`), "muc-redis-load");
        }
      });
    } while (cursor !== "0");
    this.#preloadSeq = Number.isFinite(seq) ? seq : 0;
    if (this.#preloadSeq > this.#maxSeq) this.#maxSeq = this.#preloadSeq;
  }

  /** Rooms read at start, waiting for the limits (see #load). */
  #preloaded: [string, WireRoom][] = [];
  #preloadSeq = 0;


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

  attempt(room: string, sender: string, cost: number, now: number): AttemptResult {
    const shared = this.#entry(room, now).room;
    const op = ++this.#op;
    const r = shared.attempt(this.#fair, op, sender, cost, now);
    // Once closed (sessions still draining), attempts stay local.
    if (this.#closed) shared.fail(this.#fair, op);
    else this.#send(room, op, sender, cost, now, r.admitted, shared);
    return r;
  }

  configure(limits: RoomLimits, now: number, keep: (room: string) => boolean = () => true): void {
    const old = this.#fair;
    this.#limits = limits;
    this.#fair = fairLimits(limits);
    for (const [key, e] of this.#rooms.entries()) {
      if (!keep(key)) this.#rooms.delete(key);
      else e.room.reconfigure(old, this.#fair, now);
    }
    this.#rooms.reconfigure(limits.idleMs, limits.maxRooms, now);
    const loaded = this.#preloaded;
    this.#preloaded = [];
    for (const [room, wire] of loaded) this.#applyState(room, wire, Math.max(1, this.#preloadSeq), undefined, true);
  }

  sweep(now: number): number {
    // Local only: Redis expires each room itself.
    return this.#rooms.sweep(now);
  }

  /** The local copy of `room` at `now`, or undefined when not held. */
  peek(room: string, now: number = this.#clock.now()): RoomView | undefined {
    const e = this.#rooms.get(room, now);
    if (e === undefined) return undefined;
    const v = e.room.view;
    return { balance: balanceAt(v, this.#fair, now), seq: e.room.seq, pending: e.room.pendingCount, senders: v.senders.size };
  }

  /** Resolves when every attempt sent so far has been answered by Redis. */
  async flush(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // QUIT is queued behind the attempts still in flight on this connection.
    void this.#r.quit().catch(() => this.#r.disconnect());
    this.#sub.disconnect();
  }

  #entry(room: string, now: number): RoomEntry {
    return this.#rooms.use(room, now, () => ({ last: now, room: new SharedRoom(this.#fair, now) }));
  }

  #send(room: string, op: number, sender: string, cost: number, now: number, admitted: boolean, shared: SharedRoom): void {
    const f = this.#fair;
    const sent = this.#r.eval(
      LUA_ROOM_ATTEMPT,
      2,
      `${this.#p}muc:room:${room}`,
      `${this.#p}muc:seq`,
      fmt(f.rate),
      fmt(f.burst),
      fmt(f.baseCost),
      fmt(f.windowMs),
      String(f.maxSenders),
      sender,
      fmt(cost),
      fmt(now),
      admitted ? "1" : "0",
      fmt(shared.committedTokens(f, now)),
      String(this.#maxSeq),
      this.#channel,
      room,
      this.#id,
      String(op),
    );
    const failed = (err: unknown): void => {
      this.#onError(err, "muc-debit");
      // Not committed (as far as we know): the attempt stays a local one.
      this.#rooms.get(room, this.#clock.now())?.room.fail(this.#fair, op);
    };
    const tracked = sent.then((reply) => {
      let v: { q?: unknown; v?: unknown } | undefined;
      try {
        v = JSON.parse(String(reply)) as { q?: unknown; v?: unknown };
      } catch {
        v = undefined;
      }
      if (v !== undefined && typeof v.q === "number" && isWireRoom(v.v)) this.#applyState(room, v.v, v.q, op, false);
      else failed(new Error(`unexpected reply ${String(reply).slice(0, 100)}`));
    }, failed);
    this.#inFlight.add(tracked);
    void tracked.finally(() => this.#inFlight.delete(tracked));
  }

  #event(message: string): void {
    let e: Event;
    try {
      e = JSON.parse(message) as Event;
      if (typeof e.k !== "string" || typeof e.i !== "string" || typeof e.o !== "number" || typeof e.q !== "number" || !isWireRoom(e.v)) {
        throw new Error("malformed event");
      }
    } catch (err) {
      this.#onError(err, "muc-redis-event");
      return;
    }
    const own = e.i === this.#id;
    this.#applyState(e.k, e.v, e.q, own ? e.o : undefined, !own);
  }

  /**
   * A committed state of `room`. Another instance's attempt also touches the
   * room here (creating it when unknown): the room is active in the fleet,
   * and its state is then at hand when a local occupant speaks.
   */
  #applyState(room: string, wire: WireRoom, seq: number, op: number | undefined, touch: boolean): void {
    if (seq > this.#maxSeq) this.#maxSeq = seq;
    const now = this.#clock.now();
    const e = touch ? this.#entry(room, now) : this.#rooms.get(room, now);
    e?.room.apply(this.#fair, fromWire(wire), seq, op);
  }
}

/** A double as Lua reads it back exactly. */
function fmt(x: number): string {
  return Number.isFinite(x) ? String(x) : "0";
}
