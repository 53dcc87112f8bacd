// A manual Clock and Timers for tests (the real ones are in
// src/shaping/clock.ts): time moves only when a test advances it.
import type { Clock, Timers, CancelTimer } from "../../src/shaping/clock.js";

interface FakeTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * A manual clock that is also a Timers implementation. Timers fire only from
 * advance()/advanceTo()/runNext(), in due-time order (ties in scheduling
 * order), and `now()` reads exactly the timer's due time inside its callback.
 * Timers scheduled by a callback fire in the same advance() if they are due.
 */
export class FakeClock implements Clock, Timers {
  #now: number;
  #seq = 0;
  #timers: FakeTimer[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): CancelTimer {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const timer: FakeTimer = { at: this.#now + delay, seq: this.#seq++, fn };
    this.#timers.push(timer);
    return () => {
      const i = this.#timers.indexOf(timer);
      if (i !== -1) this.#timers.splice(i, 1);
    };
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`FakeClock.advance: ms must be >= 0, got ${ms}`);
    this.advanceTo(this.#now + ms);
  }

  /** Moves time forward to `t` (never backwards), firing due timers in order. */
  advanceTo(t: number): void {
    if (!(t >= this.#now)) throw new RangeError(`FakeClock.advanceTo: ${t} is before now (${this.#now})`);
    for (;;) {
      const next = this.#takeNext(t);
      if (next === undefined) break;
      this.#now = next.at;
      next.fn();
    }
    this.#now = t;
  }

  /** Jumps to the earliest pending timer and fires it. False when none is pending. */
  runNext(): boolean {
    const next = this.#takeNext(Infinity);
    if (next === undefined) return false;
    this.#now = Math.max(this.#now, next.at);
    next.fn();
    return true;
  }

  /** Due time of the earliest pending timer, or null. */
  nextTimerAt(): number | null {
    let best: FakeTimer | undefined;
    for (const t of this.#timers) if (best === undefined || earlier(t, best)) best = t;
    return best === undefined ? null : best.at;
  }

  get pendingTimers(): number {
    return this.#timers.length;
  }

  #takeNext(limit: number): FakeTimer | undefined {
    let bestIndex = -1;
    for (let i = 0; i < this.#timers.length; i++) {
      const t = this.#timers[i]!;
      if (t.at > limit) continue;
      if (bestIndex === -1 || earlier(t, this.#timers[bestIndex]!)) bestIndex = i;
    }
    if (bestIndex === -1) return undefined;
    return this.#timers.splice(bestIndex, 1)[0];
  }
}

function earlier(a: FakeTimer, b: FakeTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
