// Rate limiters for LIMIT (%RATE in docs/firewall.md, "Definitions"): the
// bucket is Prosody's util.throttle, Throttle in src/shaping/token-bucket.ts
// (docs/shaping.md, "Prosody's token bucket: util.throttle"); this module
// keeps the per-key table of `LIMIT: name on EXPR`. Times are ms from the
// ruleset's injected clock.
import { Throttle } from "../shaping/token-bucket.js";

/** Outcome of a keyed poll. */
export const POLL_OK = 0;
export const POLL_LIMITED = 1;
/** The table was full and no bucket could be evicted: denied (counts as limited). */
export const POLL_TABLE_FULL = 2;
export type PollResult = typeof POLL_OK | typeof POLL_LIMITED | typeof POLL_TABLE_FULL;

/**
 * One bucket per key in an LRU table of `entries` slots (`LIMIT: name on EXPR`).
 * When full, a new key may evict the least recently used bucket only if that
 * bucket is idle (full); otherwise the event is denied. `allowOverflow`
 * always evicts (fail-open).
 */
export class MultiThrottle {
  readonly rate: number;
  readonly burst: number;
  readonly entries: number;
  readonly allowOverflow: boolean;
  /** Map iteration order is LRU order: oldest first. */
  readonly #buckets = new Map<string, Throttle>();

  constructor(rate: number, burst: number, entries: number, allowOverflow: boolean) {
    this.rate = rate;
    this.burst = burst;
    this.entries = entries;
    this.allowOverflow = allowOverflow;
  }

  get size(): number {
    return this.#buckets.size;
  }

  /** The most recently used key: polling it again needs no LRU move. */
  #newest: string | undefined;

  poll(key: string, now: number): PollResult {
    let bucket = this.#buckets.get(key);
    if (bucket) {
      if (key !== this.#newest) {
        this.#buckets.delete(key);
        this.#buckets.set(key, bucket);
        this.#newest = key;
      }
    } else {
      if (this.#buckets.size >= this.entries) {
        const [oldKey, oldBucket] = this.#buckets.entries().next().value as [string, Throttle];
        if (!this.allowOverflow && !oldBucket.isIdle(now)) return POLL_TABLE_FULL;
        this.#buckets.delete(oldKey);
      }
      bucket = new Throttle(this.rate, this.burst, now);
      this.#buckets.set(key, bucket);
      this.#newest = key;
    }
    return bucket.poll(now) ? POLL_OK : POLL_LIMITED;
  }
}
