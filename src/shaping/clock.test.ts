// FakeClock ordering/cancel semantics, and a smoke check of the real clock and timers.
// No test here sleeps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { realClock, realTimers } from "./clock.js";
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
