// Time sources for the shaping core: a monotonic Clock and a one-shot Timers
// abstraction, each with a real and a fake implementation. The pure classes
// take these as arguments and never call performance.now() or setTimeout()
// themselves, so tests step time with FakeClock and never sleep.
import { performance } from "node:perf_hooks";

/** A monotonic time source in milliseconds (fractional values allowed). */
export interface Clock {
  now(): number;
}

/** Cancels a pending timer; calling it after the timer fired is a no-op. */
export type CancelTimer = () => void;

/** One-shot timers, as the pacer needs them: schedule `fn` after `ms`. */
export interface Timers {
  setTimer(ms: number, fn: () => void): CancelTimer;
}

export const realClock: Clock = {
  now: () => performance.now(),
};

/**
 * setTimeout-backed timers. Node timers have 1 ms resolution and may fire a
 * little early relative to performance.now(), so callers must re-check their
 * condition when the timer fires (ReadPacer does). The delay is rounded up and
 * the handle is unref'd: a pacer timer never keeps the process alive by itself.
 */
export const realTimers: Timers = {
  setTimer(ms, fn) {
    const handle = setTimeout(fn, Math.ceil(Math.max(0, ms)));
    handle.unref();
    return () => clearTimeout(handle);
  },
};

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
