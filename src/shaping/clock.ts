// Time sources for the shaping core: a monotonic Clock and a one-shot Timers
// abstraction, and their real implementations. The pure classes take these as
// arguments and never call performance.now() or setTimeout() themselves, so
// tests step time with a fake (test/helpers/fake-clock.ts) and never sleep.
import { performance } from "node:perf_hooks";

/** A monotonic time source in milliseconds (fractional values allowed). */
export interface Clock {
  now(): number;
}

/**
 * A clock read once per turn: a turn is everything one read chunk causes
 * (framing it, judging each of its stanzas), between beginTurn() and
 * endTurn(). Inside a turn every reading is the instant of the first one, so
 * a chunk of twenty stanzas reads the time once instead of twenty times (a
 * LIMIT bucket refills by the same amount either way: the stanzas arrived
 * together). Outside a turn (timers, tests, the CLI) it is realClock.
 */
export const turnClock: Clock = {
  now: () => (turnDepth === 0 ? performance.now() : turnTime >= 0 ? turnTime : (turnTime = performance.now())),
};

let turnDepth = 0;
let turnTime = -1;

/** A read chunk's work starts (turns may nest: only the outermost one resets the time). */
export function beginTurn(): void {
  if (turnDepth++ === 0) turnTime = -1;
}

/** …and ends (call it in a finally). */
export function endTurn(): void {
  turnDepth--;
}

/**
 * `work` as one turn, for callers outside the data path (tests, tools). The
 * session calls beginTurn and endTurn itself: a closure per read is a cost
 * the data path does not need.
 */
export function inTurn<T>(work: () => T): T {
  beginTurn();
  try {
    return work();
  } finally {
    endTurn();
  }
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
