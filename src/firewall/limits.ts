// Rate limiters for LIMIT (%RATE in docs/firewall.md, "Definitions"): the
// bucket is Prosody's util.throttle, Throttle in src/shaping/token-bucket.ts
// (docs/shaping.md, "Prosody's token bucket: util.throttle"); this module
// keeps the per-key table of `LIMIT: name on EXPR`. Times are ms from the
// ruleset's injected clock.
import { Throttle } from "../shaping/token-bucket.js";

/**
 * A fleet-wide home for LIMIT buckets (state.redis: src/state/fleet-buckets.ts,
 * docs/deploy.md): takes one token of the bucket called `name` (capacity
 * rate × burst, refilled at `rate` per second) if there is one, synchronously.
 */
export interface SharedLimits {
  poll(name: string, rate: number, burst: number): boolean;
}

/** A LIMIT without `on` whose bucket is the fleet's. */
export class SharedThrottle extends Throttle {
  readonly #name: string;
  readonly #rate: number;
  readonly #burst: number;
  readonly #shared: SharedLimits;

  constructor(rate: number, burst: number, now: number, name: string, shared: SharedLimits) {
    super(rate, burst, now);
    this.#name = name;
    this.#rate = rate;
    this.#burst = burst;
    this.#shared = shared;
  }

  override poll(_now: number, cost = 1): boolean {
    return cost <= 0 || this.#shared.poll(this.#name, this.#rate, this.#burst);
  }
}

/** Outcome of a keyed poll. */
export const POLL_OK = 0;
export const POLL_LIMITED = 1;
/** The table was full and no bucket could be evicted: denied (counts as limited). */
export const POLL_TABLE_FULL = 2;
export type PollResult = typeof POLL_OK | typeof POLL_LIMITED | typeof POLL_TABLE_FULL;

/** A key's bucket, linked into its table's LRU list (oldest at the head). */
class Slot extends Throttle {
  readonly key: string;
  /** The table holding it; null once it was evicted. */
  table: MultiThrottle | null;
  older: Slot | null = null;
  newer: Slot | null = null;

  constructor(key: string, rate: number, burst: number, now: number, table: MultiThrottle) {
    super(rate, burst, now);
    this.key = key;
    this.table = table;
  }
}

/** A bucket as a caller may hold on to it (RunMemory): only to give it back to poll() as a hint. */
export type LimitBucket = Slot;

/**
 * One bucket per key in an LRU table of `entries` slots (`LIMIT: name on EXPR`).
 * When full, a new key may evict the least recently used bucket only if that
 * bucket is idle (full); otherwise the event is denied. `allowOverflow`
 * always evicts (fail-open).
 *
 * The LRU order is a list threaded through the buckets, so a hit costs one
 * map lookup and a few pointer moves; re-inserting into the Map to keep its
 * insertion order would cost two more hash operations per hit and leave
 * deleted entries for the Map to compact, which interleaved sessions (each
 * polling its own key in turn) paid on every stanza.
 */
export class MultiThrottle {
  readonly rate: number;
  readonly burst: number;
  readonly entries: number;
  readonly allowOverflow: boolean;
  readonly #slots = new Map<string, Slot>();
  /** Least recently used: the next to evict. */
  #oldest: Slot | null = null;
  /** Most recently used: polling its key again moves nothing. */
  #newest: Slot | null = null;

  /** Set: the buckets are the fleet's, named `<name>:<key>` (the table's LRU is then Redis's expiry). */
  readonly #shared: { readonly name: string; readonly limits: SharedLimits } | undefined;

  constructor(rate: number, burst: number, entries: number, allowOverflow: boolean, shared?: { readonly name: string; readonly limits: SharedLimits }) {
    this.rate = rate;
    this.burst = burst;
    this.entries = entries;
    this.allowOverflow = allowOverflow;
    this.#shared = shared;
  }

  get shared(): boolean {
    return this.#shared !== undefined;
  }

  get size(): number {
    return this.#slots.size;
  }

  /** The bucket polled last: after a poll() that did not return POLL_TABLE_FULL, its key's (the hint to give poll() next time). */
  get newest(): LimitBucket | null {
    return this.#newest;
  }

  /**
   * Take a token from `key`'s bucket. `hint`: the bucket this key had before
   * (a session's memory); when it is still this table's bucket for `key`, it
   * is taken without a lookup (and still moved to the new end of the LRU list,
   * so a busy bucket is never the one evicted).
   */
  poll(key: string, now: number, hint: LimitBucket | null = null): PollResult {
    const shared = this.#shared;
    if (shared !== undefined) return shared.limits.poll(`${shared.name}:${key}`, this.rate, this.burst) ? POLL_OK : POLL_LIMITED;
    let slot = this.#newest;
    if (hint !== null && hint !== slot && hint.table === this && hint.key === key) {
      this.#unlink(hint);
      this.#append(hint);
      slot = hint;
    } else if (slot === null || slot.key !== key) {
      slot = this.#slots.get(key) ?? null;
      if (slot !== null) {
        this.#unlink(slot);
      } else {
        const oldest = this.#oldest;
        if (oldest !== null && this.#slots.size >= this.entries) {
          if (!this.allowOverflow && !oldest.isIdle(now)) return POLL_TABLE_FULL;
          this.#unlink(oldest);
          this.#slots.delete(oldest.key);
          oldest.table = null;
        }
        slot = new Slot(key, this.rate, this.burst, now, this);
        this.#slots.set(key, slot);
      }
      this.#append(slot);
    }
    return slot.poll(now) ? POLL_OK : POLL_LIMITED;
  }

  /** Whether `bucket` is still this table's (not evicted): then take() may be given it. */
  holds(bucket: LimitBucket): boolean {
    return bucket.table === this;
  }

  /**
   * poll() of the key `bucket` holds, given the bucket itself (a memo that
   * learned it, holds() true): the same move to the new end of the LRU list,
   * the same poll, no lookup.
   */
  take(bucket: LimitBucket, now: number): boolean {
    if (bucket !== this.#newest) {
      this.#unlink(bucket);
      this.#append(bucket);
    }
    return bucket.poll(now);
  }

  #unlink(slot: Slot): void {
    if (slot.older === null) this.#oldest = slot.newer;
    else slot.older.newer = slot.newer;
    if (slot.newer === null) this.#newest = slot.older;
    else slot.newer.older = slot.older;
    slot.older = slot.newer = null;
  }

  #append(slot: Slot): void {
    slot.older = this.#newest;
    if (this.#newest === null) this.#oldest = slot;
    else this.#newest.newer = slot;
    this.#newest = slot;
  }
}
