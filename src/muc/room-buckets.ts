// The MUC limits' rooms behind one small interface, so a fleet can share them:
// LocalRoomBuckets is the default, one process's fair rooms
// (src/muc/fair-room.ts) in an IdleTable; src/muc/redis-room-buckets.ts keeps
// a local copy current across instances through Redis. Either way the stage's
// hot path stays synchronous: attempt() answers from memory. Times are the
// stage's clock (monotonic ms locally; Unix epoch ms when shared, so
// instances agree). The bucket helpers here serve the stage's per-occupant
// buckets.
import { TokenBucket } from "../shaping/token-bucket.js";
import { applyAttempt, newRoom, reconfigureRoom, type AttemptResult, type FairLimits, type RoomState } from "./fair-room.js";
import { IdleTable, type IdleEntry } from "./idle-table.js";

/** What the room buckets follow from the muc_limits options. */
export interface RoomLimits {
  /** Refill in events per second; 0 = nothing with a cost passes. */
  readonly rate: number;
  /** Capacity = rate × burst. */
  readonly burst: number;
  /** A room untouched this long is forgotten (starts full again). */
  readonly idleMs: number;
  /** Most rooms held; past it the least recently touched is forgotten. */
  readonly maxRooms: number;
  /** limit_base_cost: shares smaller than this are off. */
  readonly baseCost: number;
  /** A sender with no attempt in a room for this long is no longer active there. */
  readonly activeMs: number;
  /** Most senders counted active in one room. */
  readonly maxSenders: number;
}

export function fairLimits(l: RoomLimits): FairLimits {
  const rate = l.rate > 0 ? l.rate : 0;
  return { rate, burst: rate * l.burst, baseCost: l.baseCost, windowMs: l.activeMs, maxSenders: l.maxSenders };
}

export interface RoomBucketStore {
  /** Rooms held. */
  readonly size: number;
  /** Rooms forgotten early because the table was full (since start). */
  readonly capEvictions: number;
  /**
   * One attempt of `cost` by `sender` (a bare JID key) in `room` (created
   * full when unknown, touched either way), judged by the fair room limiter:
   * the sender's meter is debited either way, the room's bucket only when
   * the answer is admitted.
   */
  attempt(room: string, sender: string, cost: number, now: number): AttemptResult;
  /**
   * New limits for live buckets: each keeps its balance (capped at the new
   * capacity, refilled at the new rate from `now`); rooms `keep` refuses are
   * forgotten. The stage also calls this once, before anything else.
   */
  configure(limits: RoomLimits, now: number, keep?: (room: string) => boolean): void;
  /** Forgets every idle room; returns how many. Lookups also forget lazily. */
  sweep(now: number): number;
  close(): void;
}

export function newBucket(rate: number, burst: number, now: number): TokenBucket | null {
  return rate > 0 ? new TokenBucket(rate, rate * burst, now) : null;
}

/** util.throttle's test: the balance covers the cost; a failure takes nothing. */
export function covers(bucket: TokenBucket | null, cost: number, now: number): boolean {
  return bucket === null ? cost <= 0 : bucket.balance(now) >= cost;
}

export function debit(bucket: TokenBucket | null | undefined, cost: number, now: number): void {
  if (bucket != null && cost > 0) bucket.take(cost, now);
}

/** New rate and burst for a live bucket: the balance is kept (capped), never refilled. */
export function rebucket(bucket: TokenBucket | null, rate: number, burst: number, now: number): TokenBucket | null {
  if (!(rate > 0)) return null;
  if (bucket !== null) {
    bucket.reconfigure(rate, rate * burst, now);
    return bucket;
  }
  // A zero-rate bucket held 0 tokens: so does its successor.
  const b = new TokenBucket(rate, rate * burst, now);
  b.take(b.capacity, now);
  return b;
}

interface RoomEntry extends IdleEntry {
  state: RoomState;
}

/** One process's rooms. */
export class LocalRoomBuckets implements RoomBucketStore {
  #limits: RoomLimits = { rate: 0, burst: 1, idleMs: Infinity, maxRooms: Infinity, baseCost: 1, activeMs: 60_000, maxSenders: 1000 };
  #fair: FairLimits = fairLimits(this.#limits);
  readonly #rooms = new IdleTable<RoomEntry>(Infinity, Infinity);

  get size(): number {
    return this.#rooms.size;
  }

  get capEvictions(): number {
    return this.#rooms.capEvictions;
  }

  attempt(room: string, sender: string, cost: number, now: number): AttemptResult {
    const e = this.#rooms.use(room, now, () => ({ last: now, state: newRoom(this.#fair, now) }));
    return applyAttempt(e.state, this.#fair, sender, cost, now);
  }

  /** The room's state (tests, debugging); undefined when not held. */
  peek(room: string, now: number): RoomState | undefined {
    return this.#rooms.get(room, now)?.state;
  }

  configure(limits: RoomLimits, now: number, keep: (room: string) => boolean = () => true): void {
    const old = this.#fair;
    this.#limits = limits;
    this.#fair = fairLimits(limits);
    for (const [key, e] of this.#rooms.entries()) {
      if (!keep(key)) this.#rooms.delete(key);
      else reconfigureRoom(e.state, old, this.#fair, now);
    }
    this.#rooms.reconfigure(limits.idleMs, limits.maxRooms, now);
  }

  sweep(now: number): number {
    return this.#rooms.sweep(now);
  }

  close(): void {}
}
