// TokenBucket on stepped time: starts full, exact refill, reservation waits, debt for
// n > capacity, long-run rate, and reconfigure without unfair resets.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { pollThrottleState, Throttle, TokenBucket, type ThrottleState } from "./token-bucket.js";

// A 3kb/s × 2s byte bucket, the running example in docs/shaping.md.
const RATE = 3000;
const CAPACITY = 6000;

test("starts full: the whole burst is granted at once, one more token is not", () => {
  const b = new TokenBucket(RATE, CAPACITY, 0);
  assert.equal(b.balance(0), CAPACITY);
  assert.equal(b.take(6000, 0), 0);
  assert.equal(b.balance(0), 0);
  assert.equal(b.take(3, 0), 1); // 3 bytes at 3 B/ms
});

test("refills continuously and exactly, capped at capacity", () => {
  const b = new TokenBucket(RATE, CAPACITY, 0);
  b.take(6000, 0);
  assert.equal(b.balance(500), 1500);
  assert.equal(b.balance(1000), 3000);
  assert.equal(b.balance(2000), 6000);
  assert.equal(b.balance(1_000_000), 6000);
});

test("take returns the exact ms until the debit is covered, and the reservation stands", () => {
  const b = new TokenBucket(RATE, CAPACITY, 0);
  b.take(6000, 0);
  assert.equal(b.take(3000, 0), 1000);
  assert.equal(b.debtMs(0), 1000);
  assert.equal(b.debtMs(400), 600);
  assert.equal(b.debtMs(1000), 0);
  assert.equal(b.balance(1000), 0);
  // A second taker queues behind the first one's debt (FIFO by reservation).
  const b2 = new TokenBucket(RATE, CAPACITY, 0);
  b2.take(6000, 0);
  assert.equal(b2.take(300, 0), 100);
  assert.equal(b2.take(300, 0), 200);
});

test("take(0) equals debtMs", () => {
  const b = new TokenBucket(RATE, CAPACITY, 0);
  b.take(7500, 0);
  assert.equal(b.take(0, 0), b.debtMs(0));
  assert.equal(b.debtMs(0), 500);
});

test("n > capacity: granted from a full bucket into debt, never deadlocks", () => {
  const b = new TokenBucket(RATE, CAPACITY, 0);
  const wait = b.take(10_000, 0);
  assert.ok(Math.abs(wait - 4000 / 3) < 1e-9);
  assert.ok(Math.abs(b.balance(0) + 4000) < 1e-9);
  // After the debt is repaid the bucket works normally again.
  assert.equal(b.debtMs(wait), 0);
  assert.equal(b.take(1500, wait + 500), 0);
  // From an empty bucket a 20000-token chunk costs exactly 20000/rate.
  const e = new TokenBucket(RATE, CAPACITY, 0);
  e.take(6000, 0);
  assert.ok(Math.abs(e.take(20_000, 0) - 20_000 / 3) < 1e-9);
});

test("capacity 0 (burst 0) degenerates to pure pacing", () => {
  const b = new TokenBucket(RATE, 0, 0);
  assert.equal(b.take(3000, 0), 1000);
  assert.equal(b.take(1500, 1000), 500);
  assert.equal(b.balance(10_000), 0);
});

test("waiting exactly the returned time never leaves a residual debt (float tolerance)", () => {
  const b = new TokenBucket(3000, 6000, 0);
  let t = 0;
  for (let i = 0; i < 10_000; i++) {
    t += b.take(4096, t);
    assert.equal(b.debtMs(t), 0, `iteration ${i} at t=${t}`);
  }
});

test("long-run rate: a flooder taking 4 KiB whenever allowed gets capacity + rate × t ± one chunk", () => {
  const chunk = 4096;
  const b = new TokenBucket(RATE, CAPACITY, 0);
  let t = 0;
  let taken = 0;
  for (;;) {
    const wait = b.debtMs(t);
    if (t + wait >= 10_000) break;
    t += wait;
    b.take(chunk, t);
    taken += chunk;
  }
  const envelope = CAPACITY + RATE * 10;
  assert.ok(Math.abs(taken - envelope) <= chunk, `took ${taken}, envelope ${envelope}`);
});

test("time never runs backwards inside the bucket", () => {
  const b = new TokenBucket(RATE, CAPACITY, 1000);
  b.take(6000, 1000);
  assert.equal(b.balance(500), 0);
  assert.equal(b.balance(2000), 3000);
  assert.equal(b.balance(1500), 3000);
});

test("reconfigure: a larger bucket keeps the current tokens (no free burst) and fills at the new rate", () => {
  const b = new TokenBucket(RATE, CAPACITY, 0);
  b.reconfigure(30_000, 60_000, 0);
  assert.equal(b.rate, 30_000);
  assert.equal(b.capacity, 60_000);
  assert.equal(b.balance(0), 6000);
  assert.equal(b.balance(1000), 36_000);
  assert.equal(b.balance(5000), 60_000);
});

test("reconfigure: a smaller bucket caps the balance at the new capacity", () => {
  const b = new TokenBucket(30_000, 60_000, 0);
  b.take(30_000, 0);
  b.reconfigure(RATE, CAPACITY, 0);
  assert.equal(b.balance(0), 6000);
});

test("reconfigure: time before the change is credited at the old rate, after at the new", () => {
  const b = new TokenBucket(RATE, CAPACITY, 0);
  b.take(6000, 0);
  b.reconfigure(1000, CAPACITY, 1000); // +3000 at the old rate
  assert.equal(b.balance(1000), 3000);
  assert.equal(b.balance(2000), 4000); // +1000 at the new rate
});

test("reconfigure: debt is kept in full and repaid at the new rate", () => {
  const b = new TokenBucket(RATE, CAPACITY, 0);
  b.take(9000, 0); // debt 3000: 1 s at 3000/s
  b.reconfigure(6000, 12_000, 0);
  assert.equal(b.debtMs(0), 500);
  b.reconfigure(1500, 3000, 0);
  assert.equal(b.debtMs(0), 2000);
});

test("invalid parameters are programming errors", () => {
  for (const [rate, capacity] of [[0, 1], [-1, 1], [Number.NaN, 1], [Infinity, 1], [1, -1], [1, Number.NaN], [1, Infinity]] as const) {
    assert.throws(() => new TokenBucket(rate, capacity, 0), RangeError);
  }
  const b = new TokenBucket(RATE, CAPACITY, 0);
  assert.throws(() => b.reconfigure(0, 1, 0), RangeError);
  assert.equal(b.rate, RATE); // unchanged after a rejected reconfigure
});

// --- Throttle and pollThrottleState: Prosody's util.throttle -----------------

test("Throttle and pollThrottleState are the same bucket: random polls agree step by step", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 120 }),
      fc.array(fc.integer({ min: 0, max: 90_000 }), { maxLength: 40 }),
      (max, periodS, gaps) => {
        // util.throttle.create(max, period): rate max/period per second, capacity max.
        const rate = max / periodS;
        const t = new Throttle(rate, periodS, 0);
        const perMs = rate / 1000;
        // Both created full at 0 (undefined state means "created at the poll").
        let state: ThrottleState | undefined = gaps[0] === 0 ? undefined : { tokens: t.max, updated_at: 0 };
        let now = 0;
        for (const gap of gaps) {
          now += gap;
          const p = pollThrottleState(state, t.max, perMs, now);
          assert.equal(t.poll(now), p.ok, `at ${now}`);
          // Throttle keeps the refresh of a failed poll too (the registration
          // store does not write it back; see pollThrottleState).
          state = p.next;
        }
      },
    ),
    { numRuns: 500 },
  );
});

test("util.throttle refreshes lazily: a bucket left full passes more than its capacity back to back, as in Prosody", () => {
  // create(3, 60): capacity 3, one token per 20 s.
  const t = new Throttle(3 / 60, 60, 0);
  let s: ThrottleState | undefined = pollThrottleState(undefined, 3, 3 / 60_000, 0).next; // the first poll at creation
  assert.ok(t.poll(0));
  let passed = 0;
  let passedState = 0;
  for (let i = 0; i < 10; i++) {
    if (t.poll(600_000)) passed++;
    const p = pollThrottleState(s, 3, 3 / 60_000, 600_000);
    if (p.ok) {
      passedState++;
      s = p.next;
    }
  }
  // 2 left from creation, taken without a refresh; then the refresh credits
  // the whole 10 minutes (capped at 3): 5 in a row, where an eager bucket gives 3.
  assert.equal(passed, 5);
  assert.equal(passedState, 5);
  const eager = new TokenBucket(3 / 60, 3, 0);
  eager.take(1, 0);
  let passedEager = 0;
  for (let i = 0; i < 10; i++) {
    if (eager.balance(600_000) >= 1) {
      eager.take(1, 600_000);
      passedEager++;
    }
  }
  assert.equal(passedEager, 3);
});

test("pollThrottleState: a failed poll takes nothing; a stored balance above a shrunk capacity is capped; time backwards refills nothing", () => {
  assert.deepEqual(pollThrottleState({ tokens: 0.5, updated_at: 0 }, 2, 0.001, 250), { ok: false, next: { tokens: 0.75, updated_at: 250 } });
  assert.deepEqual(pollThrottleState({ tokens: 5, updated_at: 0 }, 2, 0.001, 10), { ok: true, next: { tokens: 1, updated_at: 0 } });
  assert.equal(pollThrottleState({ tokens: 0.5, updated_at: 5000 }, 2, 0.001, 1000).ok, false);
  assert.equal(pollThrottleState(undefined, 0.5, 1, 0).ok, false, "a capacity below the cost never passes");
});
