// Pure token bucket with reservation semantics: take() always debits, the
// balance may go negative (debt), and the caller is told how long until the
// debit is covered. It owns no timers and never reads a clock: every call gets
// `now` (monotonic ms). No allocation per call. See docs/shaping.md.

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
