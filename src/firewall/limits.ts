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
    return this.#buckets.size;
  }

  /**
   * The most recently used key and its bucket: polling it again needs no LRU
   * move and no lookup (a session's own stanzas poll the same key in a row).
   * Only a new key evicts, and it becomes the newest, so this bucket is
   * always the table's.
   */
  #newest: string | undefined;
  #newestBucket: Throttle | undefined;

  poll(key: string, now: number): PollResult {
    const shared = this.#shared;
    if (shared !== undefined) return shared.limits.poll(`${shared.name}:${key}`, this.rate, this.burst) ? POLL_OK : POLL_LIMITED;
    if (key === this.#newest) return this.#newestBucket!.poll(now) ? POLL_OK : POLL_LIMITED;
    let bucket = this.#buckets.get(key);
    if (bucket) {
      this.#buckets.delete(key);
      this.#buckets.set(key, bucket);
    } else {
      if (this.#buckets.size >= this.entries) {
        const [oldKey, oldBucket] = this.#buckets.entries().next().value as [string, Throttle];
        if (!this.allowOverflow && !oldBucket.isIdle(now)) return POLL_TABLE_FULL;
        this.#buckets.delete(oldKey);
      }
      bucket = new Throttle(this.rate, this.burst, now);
      this.#buckets.set(key, bucket);
    }
    this.#newest = key;
    this.#newestBucket = bucket;
    return bucket.poll(now) ? POLL_OK : POLL_LIMITED;
  }
}
