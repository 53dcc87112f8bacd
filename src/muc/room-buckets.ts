// The MUC limits' per-room buckets behind one small interface, so a fleet can
// share them (issue 7): LocalRoomBuckets is the default, one process's
// TokenBuckets in an IdleTable; src/state/redis-muc-buckets.ts keeps a local
// copy current across instances through Redis. Either way the stage's hot
// path stays synchronous: take() answers from memory. Times are the stage's
// clock (monotonic ms locally; Unix epoch ms when shared, so instances agree).
// The bucket helpers here are shared with the stage's per-occupant buckets.
import { TokenBucket } from "../shaping/token-bucket.js";
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
}

export interface RoomBucketStore {
  /** Rooms held. */
  readonly size: number;
  /** Rooms forgotten early because the table was full (since start). */
  readonly capEvictions: number;
  /**
   * util.throttle's poll on `room`'s bucket (created full when unknown,
   * touched either way): when the balance covers `cost` it is debited and the
   * answer is true; a refusal takes nothing.
   */
  take(room: string, cost: number, now: number): boolean;
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
  /** null while the rate is 0: capacity 0, nothing with a cost passes. */
  bucket: TokenBucket | null;
}

/** One process's room buckets: what the stage always did. */
export class LocalRoomBuckets implements RoomBucketStore {
  #limits: RoomLimits = { rate: 0, burst: 1, idleMs: Infinity, maxRooms: Infinity };
  readonly #rooms = new IdleTable<RoomEntry>(Infinity, Infinity);

  get size(): number {
    return this.#rooms.size;
  }

  get capEvictions(): number {
    return this.#rooms.capEvictions;
  }

  take(room: string, cost: number, now: number): boolean {
    const e = this.#rooms.use(room, now, () => ({ last: now, bucket: newBucket(this.#limits.rate, this.#limits.burst, now) }));
    if (!covers(e.bucket, cost, now)) return false;
    debit(e.bucket, cost, now);
    return true;
  }

  configure(limits: RoomLimits, now: number, keep: (room: string) => boolean = () => true): void {
    this.#limits = limits;
    for (const [key, e] of this.#rooms.entries()) {
      if (!keep(key)) this.#rooms.delete(key);
      else e.bucket = rebucket(e.bucket, limits.rate, limits.burst, now);
    }
    this.#rooms.reconfigure(limits.idleMs, limits.maxRooms, now);
  }

  sweep(now: number): number {
    return this.#rooms.sweep(now);
  }

  close(): void {}
}
