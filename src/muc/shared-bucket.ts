// One room bucket as a fleet member holds it (src/state/redis-muc-buckets.ts):
// the last state the shared store committed (tokens at a time, with the
// store's sequence number) plus this member's own debits that are sent and
// not yet committed. The balance is that state refilled to `now` (TokenBucket's
// arithmetic: refill capped at capacity, time never runs backwards) minus the
// pending debits, so a member never forgets its own debits while they travel
// and never counts a committed one twice. Pure: no clock, no I/O.

/** A committed state of the shared bucket. */
export interface SharedState {
  readonly tokens: number;
  /** Time of `tokens` (epoch ms). */
  readonly at: number;
  /** The store's commit order; higher is newer. */
  readonly seq: number;
}

export class SharedBucket {
  #perMs: number;
  #capacity: number;
  /** The committed (or assumed) balance at #at; refills are folded in as time passes. */
  #tokens: number;
  #at: number;
  /** Seq of the adopted state; 0 = none yet (the bucket was assumed full, or empty). */
  #seq = 0;
  /** Own debits sent and not yet committed: op id → cost. */
  readonly #pending = new Map<number, number>();
  #pendingSum = 0;

  /**
   * @param rate tokens per second (> 0)
   * @param capacity maximum balance; the bucket starts with `tokens` (default full)
   */
  constructor(rate: number, capacity: number, now: number, tokens = capacity) {
    this.#perMs = rate / 1000;
    this.#capacity = capacity;
    this.#tokens = tokens;
    this.#at = now;
  }

  get capacity(): number {
    return this.#capacity;
  }

  /** Tokens per millisecond. */
  get perMs(): number {
    return this.#perMs;
  }

  get seq(): number {
    return this.#seq;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The balance at `now`: the committed state refilled, minus own debits in flight. */
  balance(now: number): number {
    this.#refill(now);
    return this.#tokens - this.#pendingSum;
  }

  /** The committed state refilled to `now`, without own debits in flight. */
  committed(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Records own debit `op` of `cost`, pending until the store commits it. */
  debit(op: number, cost: number): void {
    this.#pending.set(op, cost);
    this.#pendingSum += cost;
  }

  /**
   * A state the store committed. `op` is set when the commit is this
   * member's own debit (from its reply or its echo, whichever comes first).
   * A newer state is adopted as it is (it contains every debit committed up
   * to it, this one included); an own debit answered with an older state
   * (the store's counter went back: Redis lost its data) is kept locally.
   */
  apply(state: SharedState, op?: number): void {
    const cost = op === undefined ? undefined : this.#pending.get(op);
    if (cost !== undefined) this.#settle(op!, cost);
    if (state.seq > this.#seq) {
      this.#seq = state.seq;
      this.#tokens = Math.min(state.tokens, this.#capacity);
      this.#at = state.at;
    } else if (cost !== undefined) {
      this.#fold(cost, state.at);
    }
  }

  /** Own debit `op` was not committed (the store failed): it stays a local debit. */
  fail(op: number, at: number): void {
    const cost = this.#pending.get(op);
    if (cost === undefined) return;
    this.#settle(op, cost);
    this.#fold(cost, at);
  }

  /**
   * TokenBucket.reconfigure: time up to `now` is credited at the old rate,
   * then the balance is kept, capped at the new capacity.
   */
  reconfigure(rate: number, capacity: number, now: number): void {
    this.#refill(now);
    this.#perMs = rate / 1000;
    this.#capacity = capacity;
    if (this.#tokens > capacity) this.#tokens = capacity;
  }

  #settle(op: number, cost: number): void {
    this.#pending.delete(op);
    this.#pendingSum = this.#pending.size === 0 ? 0 : this.#pendingSum - cost;
  }

  #fold(cost: number, at: number): void {
    this.#refill(at);
    this.#tokens -= cost;
  }

  #refill(now: number): void {
    const elapsed = now - this.#at;
    if (!(elapsed > 0)) return;
    this.#at = now;
    const tokens = this.#tokens + elapsed * this.#perMs;
    this.#tokens = tokens > this.#capacity ? this.#capacity : tokens;
  }
}
