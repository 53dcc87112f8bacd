// The proxy's token buckets, in one place (docs/shaping.md). Two, because
// the semantics truly differ:
//
// - TokenBucket: reservation semantics for shaping. take() always debits, the
//   balance may go negative (debt), and the caller is told how long until the
//   debit is covered; the balance is refreshed on every call, so the waits are
//   exact and the total admitted stays within capacity + rate × t. Our own
//   refuse-without-charging limits (connection rate per IP, audit lines, MUC
//   occupant buckets) use it too, through balance() then take(): the same
//   exact envelope, and a refusal charges nothing.
// - Throttle / pollThrottleState: Prosody's util.throttle, for the limits that
//   must behave as Prosody's do (firewall LIMIT, mod_register_limits). A poll
//   that fails takes nothing and there is never a debt; the balance is
//   refreshed lazily, only when the stored one is short of the cost, so a
//   bucket left alone can pass more than its capacity back to back, exactly
//   as in Prosody. Throttle is the in-memory object; pollThrottleState is the
//   same poll over plain stored data (the registration store, and the Redis
//   script in src/state/redis-store.ts, which does the same arithmetic).
//
// None of them owns a timer or reads a clock: every call gets `now` (ms). No
// allocation per call.

/**
 * Balances within this many tokens of the target count as reached. Refill is
 * `rate × elapsed` in floating point, so a timer fired at exactly the computed
 * instant can land a few ulps short; without a tolerance that would re-arm a
 * sub-nanosecond timer.
 */
const EPSILON_TOKENS = 1e-6;

export class TokenBucket {
  /** Refill rate in tokens per millisecond. */
  #perMs: number;
  #capacity: number;
  /** Current balance; negative means debt. Never above #capacity. */
  #tokens: number;
  /** The `now` of the last refill; never moves backwards. */
  #last: number;

  /**
   * @param rate tokens per second (> 0)
   * @param capacity maximum balance in tokens (>= 0); the bucket starts full.
   *   For a byte limit this is rate × burst seconds.
   * @param now current monotonic time in ms
   */
  constructor(rate: number, capacity: number, now: number) {
    checkParams(rate, capacity);
    this.#perMs = rate / 1000;
    this.#capacity = capacity;
    this.#tokens = capacity;
    this.#last = now;
  }

  /** Tokens per second. */
  get rate(): number {
    return this.#perMs * 1000;
  }

  get capacity(): number {
    return this.#capacity;
  }

  /** The balance at `now` after refill; negative while in debt. */
  balance(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /**
   * Debits `n` tokens unconditionally and returns 0 if the balance covered
   * them, otherwise the ms until it will have (the time at which the balance
   * is back to zero). The reservation stands: after waiting, proceed without
   * calling take() again. Works for any n, including n > capacity: the bucket
   * goes into debt and later callers wait for it to be repaid, so the long-run
   * rate stays exact and nothing deadlocks. `take(0, now)` equals debtMs(now).
   */
  take(n: number, now: number): number {
    this.#refill(now);
    this.#tokens -= n;
    return this.#tokens >= -EPSILON_TOKENS ? 0 : -this.#tokens / this.#perMs;
  }

  /** Gives back `n` tokens (a refund), never above capacity. */
  credit(n: number, now: number): void {
    this.#refill(now);
    const tokens = this.#tokens + n;
    this.#tokens = tokens > this.#capacity ? this.#capacity : tokens;
  }

  /** Ms until the balance is back to zero; 0 when not in debt. */
  debtMs(now: number): number {
    this.#refill(now);
    return this.#tokens >= -EPSILON_TOKENS ? 0 : -this.#tokens / this.#perMs;
  }

  /**
   * Applies a new rate and capacity to a live bucket. Time up to `now` is
   * first credited at the old rate; then the balance is kept as it is, in
   * tokens, capped at the new capacity. So a reload never mints a free burst
   * (a larger capacity fills at the new rate), never lets a shrunk bucket hold
   * more than its new capacity, and leaves any debt owed in full, repaid at
   * the new rate. The total admitted stays within capacity + ∫ rate dt.
   */
  reconfigure(rate: number, capacity: number, now: number): void {
    checkParams(rate, capacity);
    this.#refill(now);
    this.#perMs = rate / 1000;
    this.#capacity = capacity;
    if (this.#tokens > capacity) this.#tokens = capacity;
  }

  #refill(now: number): void {
    const elapsed = now - this.#last;
    if (!(elapsed > 0)) return;
    this.#last = now;
    const tokens = this.#tokens + elapsed * this.#perMs;
    this.#tokens = tokens > this.#capacity ? this.#capacity : tokens;
  }
}

function checkParams(rate: number, capacity: number): void {
  if (!(rate > 0) || !Number.isFinite(rate)) {
    throw new RangeError(`TokenBucket: rate must be a finite number > 0, got ${rate}`);
  }
  if (!(capacity >= 0) || !Number.isFinite(capacity)) {
    throw new RangeError(`TokenBucket: capacity must be a finite number >= 0, got ${capacity}`);
  }
}

/**
 * Prosody's util.throttle (docs/shaping.md, "Prosody's token bucket:
 * util.throttle"): capacity rate × burst, refilled at `rate` per second,
 * starting full. `rate` may be 0 (a bucket that never refills) and a
 * capacity below the cost never passes.
 */
export class Throttle {
  readonly max: number;
  /** Tokens per ms. */
  readonly #perMs: number;
  #balance: number;
  #last: number;

  constructor(rate: number, burst: number, now: number) {
    this.max = rate * burst;
    this.#perMs = rate / 1000;
    this.#balance = this.max;
    this.#last = now;
  }

  #update(now: number): void {
    const elapsed = now - this.#last;
    this.#last = now;
    if (elapsed > 0) this.#balance = Math.min(this.max, this.#balance + this.#perMs * elapsed);
  }

  /** Take `cost` tokens if available; otherwise take nothing and return false. */
  poll(now: number, cost = 1): boolean {
    if (!this.ready(now, cost)) return false;
    this.#balance -= cost;
    return true;
  }

  /**
   * Whether poll(now, cost) would take: what a poll does short of taking (the
   * same lazy refresh), so a poll at the same `now` after it takes exactly
   * what it would have taken alone.
   */
  ready(now: number, cost = 1): boolean {
    if (this.#balance < cost) this.#update(now);
    return this.#balance >= cost;
  }

  /** Full after refresh: safe to forget (used by LRU eviction). */
  isIdle(now: number): boolean {
    this.#update(now);
    return this.#balance >= this.max;
  }

  balance(now: number): number {
    this.#update(now);
    return this.#balance;
  }
}

/** A Throttle as stored data: the balance, and when it was last refreshed (ms). */
export interface ThrottleState {
  readonly tokens: number;
  readonly updated_at: number;
}

export interface ThrottlePoll {
  readonly ok: boolean;
  /** The state after the poll; when !ok it differs from the input only by a refresh, which need not be stored. */
  readonly next: ThrottleState;
}

/**
 * Throttle.poll for one token over stored state (undefined = a bucket created
 * full at `now`), with capacity `capacity` refilled at `perMs` tokens per ms.
 * The refresh happens only when the stored balance is short, as in Throttle;
 * a clock step backwards (stored wall-clock times) refills nothing.
 */
export function pollThrottleState(state: ThrottleState | undefined, capacity: number, perMs: number, now: number): ThrottlePoll {
  let tokens = capacity;
  let at = now;
  if (state !== undefined) {
    // A reload that shrank the bucket leaves no stored balance above it.
    tokens = state.tokens > capacity ? capacity : state.tokens;
    at = state.updated_at;
    if (tokens < 1) {
      const elapsed = now - at;
      if (elapsed > 0) tokens = Math.min(capacity, tokens + elapsed * perMs);
      at = now;
    }
  }
  if (tokens >= 1) return { ok: true, next: { tokens: tokens - 1, updated_at: at } };
  return { ok: false, next: { tokens, updated_at: at } };
}
