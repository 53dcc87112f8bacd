// FakeClock ordering/cancel semantics, a smoke check of the real clock and
// timers, and the turn clock. No test here sleeps (the turn clock's test
// spins for a few milliseconds).
import { test } from "node:test";
import assert from "node:assert/strict";
import { beginTurn, endTurn, inTurn, realClock, realTimers, turnClock } from "./clock.js";
import { FakeClock } from "../../test/helpers/fake-clock.js";

test("FakeClock fires due timers in order, at their exact due time", () => {
  const clock = new FakeClock(100);
  const seen: string[] = [];
  clock.setTimer(30, () => seen.push(`b@${clock.now()}`));
  clock.setTimer(10.5, () => seen.push(`a@${clock.now()}`));
  clock.setTimer(30, () => seen.push(`c@${clock.now()}`));
  clock.advance(20);
  assert.deepEqual(seen, ["a@110.5"]);
  assert.equal(clock.now(), 120);
  clock.advance(100);
  assert.deepEqual(seen, ["a@110.5", "b@130", "c@130"]);
  assert.equal(clock.now(), 220);
  assert.equal(clock.pendingTimers, 0);
});

test("FakeClock: cancel, timers scheduled from callbacks, runNext, nextTimerAt", () => {
  const clock = new FakeClock();
  let fired = 0;
  const cancel = clock.setTimer(5, () => fired++);
  cancel();
  cancel();
  clock.setTimer(5, () => clock.setTimer(5, () => fired++));
  assert.equal(clock.nextTimerAt(), 5);
  clock.advance(10); // the chained timer is due at 10 and fires in the same advance
  assert.equal(fired, 1);
  assert.equal(clock.runNext(), false);
  clock.setTimer(1000, () => fired++);
  assert.equal(clock.runNext(), true);
  assert.equal(clock.now(), 1010);
  assert.equal(fired, 2);
  assert.equal(clock.nextTimerAt(), null);
  assert.throws(() => clock.advance(-1), RangeError);
});

test("realClock is monotonic and realTimers can be cancelled", () => {
  const a = realClock.now();
  const b = realClock.now();
  assert.ok(b >= a);
  const cancel = realTimers.setTimer(1, () => assert.fail("cancelled timer fired"));
  cancel();
});

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test("turnClock: one reading per turn, the real time outside turns", () => {
  const a = turnClock.now();
  spin(2);
  assert.ok(turnClock.now() > a, "outside a turn the clock moves");
  beginTurn();
  let first: number;
  try {
    first = turnClock.now();
    spin(2);
    assert.equal(turnClock.now(), first, "inside a turn every reading is the first one");
    beginTurn(); // a nested turn keeps the outer instant
    try {
      spin(1);
      assert.equal(turnClock.now(), first);
    } finally {
      endTurn();
    }
    assert.equal(turnClock.now(), first);
  } finally {
    endTurn();
  }
  spin(1);
  assert.ok(turnClock.now() > first, "after the turn the clock moves again");
  beginTurn();
  try {
    assert.ok(turnClock.now() > first, "a new turn reads the time anew");
  } finally {
    endTurn();
  }
});

test("turnClock: a turn that never reads the clock costs no reading, and the next turn is fresh", () => {
  beginTurn();
  endTurn();
  const before = performance.now();
  beginTurn();
  try {
    assert.ok(turnClock.now() >= before);
  } finally {
    endTurn();
  }
});

test("inTurn: the work runs as one turn, gives back its result, and the turn ends when it throws", () => {
  const readings = inTurn(() => {
    const first = turnClock.now();
    spin(1);
    return [first, turnClock.now()];
  });
  assert.equal(readings[0], readings[1]);
  assert.throws(() => inTurn(() => { throw new Error("boom"); }), /boom/);
  const a = turnClock.now();
  spin(1);
  assert.ok(turnClock.now() > a, "no turn is left open");
});
