// ReadPacer on a FakeClock: pause/resume at the exact simulated instant with one timer,
// flood accuracy against capacity + rate × t, stanza buckets, exemption, reload, accounting.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeClock } from "../../test/helpers/fake-clock.js";
import type { Timers } from "./clock.js";
import { ReadPacer } from "./pacer.js";
import type { PacerBuckets, PacerHooks } from "./pacer.js";
import { TokenBucket } from "./token-bucket.js";

interface Harness {
  clock: FakeClock;
  pacer: ReadPacer;
  events: string[];
  hooks: PacerHooks;
}

/** A pacer on a fake clock whose hooks log `name@time` events. */
function harness(makeBuckets: (now: number) => PacerBuckets, opts: { unlimited?: boolean; timers?: Timers } = {}): Harness {
  const clock = new FakeClock();
  const events: string[] = [];
  const hooks: PacerHooks = {
    pause: () => events.push(`pause@${clock.now()}`),
    resume: () => events.push(`resume@${clock.now()}`),
    onThrottleStart: (reason) => events.push(`start:${reason}@${clock.now()}`),
    onThrottleEnd: (ms) => events.push(`end:${ms}@${clock.now()}`),
  };
  const pacer = new ReadPacer({ buckets: makeBuckets(clock.now()), clock, timers: opts.timers ?? clock, hooks, unlimited: opts.unlimited });
  return { clock, pacer, events, hooks };
}

/** 3kb/s × 2s: capacity 6000 bytes. */
const bytes3k = (now: number): PacerBuckets => ({ bytes: new TokenBucket(3000, 6000, now) });

test("starts full: 6000 bytes pass at once without pausing", () => {
  const { clock, pacer, events } = harness(bytes3k);
  assert.equal(pacer.charge(4000), 4000);
  assert.equal(pacer.charge(2000), 2000);
  assert.equal(pacer.paused, false);
  assert.equal(clock.pendingTimers, 0);
  assert.deepEqual(events, []);
});

test("overdraw pauses at once and resumes exactly when the debt is repaid, with one timer", () => {
  const { clock, pacer, events } = harness(bytes3k);
  pacer.charge(6000);
  assert.equal(pacer.charge(3000), 0);
  assert.equal(pacer.paused, true);
  assert.deepEqual(events, ["pause@0", "start:bytes@0"]);
  assert.equal(clock.pendingTimers, 1);
  assert.equal(clock.nextTimerAt(), 1000);
  clock.advance(999.999);
  assert.equal(pacer.paused, true);
  clock.advance(0.001);
  assert.equal(pacer.paused, false);
  assert.deepEqual(events, ["pause@0", "start:bytes@0", "end:1000@1000", "resume@1000"]);
  assert.equal(clock.pendingTimers, 0);
});

test("a partly covered chunk admits its covered head; the tail waits exactly tail/rate", () => {
  const { clock, pacer } = harness(bytes3k);
  assert.equal(pacer.charge(4096), 4096);
  assert.equal(pacer.charge(4096), 1904);
  assert.ok(Math.abs(clock.nextTimerAt()! - 2192 / 3) < 1e-9);
  clock.advance(2192 / 3);
  assert.equal(pacer.paused, false);
});

test("a chunk larger than the whole bucket does not deadlock", () => {
  const { clock, pacer } = harness(bytes3k);
  assert.equal(pacer.charge(65_536), 6000);
  assert.ok(Math.abs(clock.nextTimerAt()! - 59_536 / 3) < 1e-9);
  clock.runNext();
  assert.equal(pacer.paused, false);
  assert.equal(pacer.charge(100), 0); // bucket empty after repaying: paced from here on
  assert.ok(Math.abs(clock.nextTimerAt()! - clock.now() - 100 / 3) < 1e-9);
});

test("charges while paused extend the same single timer and are all held", () => {
  const { clock, pacer, events } = harness(bytes3k);
  pacer.charge(6000);
  pacer.charge(3000); // resume due at 1000
  clock.advance(500);
  assert.equal(pacer.charge(1500), 0); // debt at 500: 1500 + 1500 → due at 1500
  assert.equal(clock.pendingTimers, 1);
  assert.equal(clock.nextTimerAt(), 1500);
  clock.advance(999);
  assert.equal(pacer.paused, true);
  clock.advance(1);
  assert.deepEqual(events, ["pause@0", "start:bytes@0", "end:1500@1500", "resume@1500"]);
});

/**
 * A flooding reader: reads `chunk` bytes whenever not paused, forwards what
 * charge() admits, holds the rest and forwards it on resume (the strict
 * session), for `seconds` of simulated time.
 */
function flood(chunk: number, seconds: number) {
  const clock = new FakeClock();
  const bucket = new TokenBucket(3000, 6000, 0);
  let read = 0;
  let forwarded = 0;
  let held = 0;
  let maxTimers = 0;
  const envelope = (t: number): number => 6000 + 3 * t;
  const check = (): void => {
    assert.ok(forwarded <= envelope(clock.now()) + 1e-6, `forwarded ${forwarded} > envelope ${envelope(clock.now())} at ${clock.now()}`);
  };
  const pacer = new ReadPacer({
    buckets: { bytes: bucket },
    clock,
    timers: clock,
    hooks: {
      pause: () => {},
      resume: () => {
        forwarded += held;
        held = 0;
        check();
      },
      onThrottleStart: () => {},
      onThrottleEnd: () => {},
    },
  });
  const end = seconds * 1000;
  for (;;) {
    if (pacer.paused) {
      const next = clock.nextTimerAt();
      if (next === null || next > end) break;
      clock.advanceTo(next);
      continue;
    }
    const admitted = pacer.charge(chunk);
    read += chunk;
    forwarded += admitted;
    held += chunk - admitted;
    maxTimers = Math.max(maxTimers, clock.pendingTimers);
    check();
  }
  clock.advanceTo(end);
  return { read, forwarded, held, maxTimers, throttledMs: pacer.throttledMs() };
}

test("long-run accuracy: 4 KiB flood for 10 s reads and forwards 6000 + 3000×10 bytes ± one chunk", () => {
  const r = flood(4096, 10);
  const expected = 6000 + 3000 * 10;
  assert.ok(Math.abs(r.read - expected) <= 4096, `read ${r.read}`);
  assert.ok(r.forwarded <= expected && r.forwarded >= expected - 4096, `forwarded ${r.forwarded}`);
  assert.equal(r.forwarded + r.held, r.read); // nothing dropped
  assert.equal(r.maxTimers, 1);
});

test("long-run accuracy holds for other chunk sizes, including chunks above capacity", () => {
  for (const [chunk, seconds] of [[1000, 10], [1500, 7], [8192, 30], [65_536, 60]] as const) {
    const r = flood(chunk, seconds);
    const expected = 6000 + 3000 * seconds;
    assert.ok(Math.abs(r.read - expected) <= chunk, `chunk ${chunk}: read ${r.read}, expected ${expected}`);
    assert.ok(r.forwarded <= expected && r.forwarded >= expected - chunk, `chunk ${chunk}: forwarded ${r.forwarded}`);
    assert.equal(r.forwarded + r.held, r.read);
  }
});

test("throttled time is accumulated across episodes, including the current one", () => {
  const { clock, pacer, events } = harness(bytes3k);
  pacer.charge(6000);
  pacer.charge(3000);
  clock.advance(1000);
  clock.advance(2000); // idle: refills to 6000
  pacer.charge(6000 + 1500);
  clock.advance(200);
  assert.equal(pacer.throttledMs(), 1200);
  clock.advance(300);
  assert.equal(pacer.throttledMs(), 1500);
  const ends = events.filter((e) => e.startsWith("end:"));
  assert.deepEqual(ends, ["end:1000@1000", "end:500@3500"]);
  clock.advance(10_000);
  assert.equal(pacer.throttledMs(), 1500);
  const flooded = flood(4096, 10);
  // Every moment not throttled admits tokens: ~ (read - capacity) / rate of the 10 s is throttled.
  assert.ok(flooded.throttledMs > 9000 && flooded.throttledMs <= 10_000, String(flooded.throttledMs));
});

test("close() while throttled reports the episode, cancels the timer and never resumes", () => {
  const { clock, pacer, events } = harness(bytes3k);
  pacer.charge(9000);
  clock.advance(250);
  pacer.close();
  assert.equal(clock.pendingTimers, 0);
  assert.deepEqual(events, ["pause@0", "start:bytes@0", "end:250@250"]);
  assert.equal(pacer.throttledMs(), 250);
  assert.equal(pacer.charge(100_000), 100_000);
  clock.advance(10_000);
  assert.equal(events.length, 3);
});

test("setUnlimited(true) resumes a paused session at once and stops charging", () => {
  const { clock, pacer, events } = harness(bytes3k);
  pacer.charge(12_000); // 2 s of debt
  clock.advance(200);
  pacer.setUnlimited(true);
  assert.equal(pacer.paused, false);
  assert.equal(pacer.unlimited, true);
  assert.equal(clock.pendingTimers, 0);
  assert.deepEqual(events, ["pause@0", "start:bytes@0", "end:200@200", "resume@200"]);
  assert.equal(pacer.charge(1_000_000), 1_000_000);
  assert.equal(pacer.chargeStanza("message"), true);
  assert.equal(pacer.paused, false);
  clock.advance(10_000);
  assert.equal(events.length, 4);
});

test("setUnlimited(false) re-limits with the buckets as they stand", () => {
  const { clock, pacer } = harness(bytes3k);
  pacer.charge(12_000); // debt 6000, due at 2000
  clock.advance(200);
  pacer.setUnlimited(true);
  clock.advance(300); // debt now 6000 - 1500 = 4500
  pacer.setUnlimited(false);
  assert.equal(pacer.paused, true);
  assert.equal(clock.nextTimerAt(), 2000);
  clock.advance(10_000); // fully refilled
  pacer.setUnlimited(true);
  pacer.setUnlimited(false);
  assert.equal(pacer.paused, false);
  assert.equal(pacer.charge(6000), 6000);
});

test("a pacer can start unlimited", () => {
  const { clock, pacer } = harness(bytes3k, { unlimited: true });
  assert.equal(pacer.charge(1e9), 1e9);
  assert.equal(pacer.paused, false);
  assert.equal(clock.pendingTimers, 0);
});

const stanzaBuckets = (now: number): PacerBuckets => ({
  stanzas: { message: new TokenBucket(10, 20, now) },
});

test("stanza buckets: a burst of 20 messages, then 10/s; unrated kinds and nonzas are never charged", () => {
  const { clock, pacer, events } = harness(stanzaBuckets);
  for (let i = 0; i < 20; i++) assert.equal(pacer.chargeStanza("message"), true, `message ${i}`);
  for (let i = 0; i < 1000; i++) {
    assert.equal(pacer.chargeStanza("presence"), true);
    assert.equal(pacer.chargeStanza("other"), true);
  }
  assert.equal(pacer.charge(1e6), 1e6); // no byte bucket
  assert.equal(pacer.chargeStanza("message"), false);
  assert.deepEqual(events, ["pause@0", "start:message@0"]);
  assert.equal(clock.nextTimerAt(), 100);
  // While paused everything is "hold": keep order behind the held stanza.
  assert.equal(pacer.chargeStanza("presence"), false);
  assert.equal(pacer.chargeStanza("other"), false);
  assert.equal(pacer.charge(10), 0);
  clock.advance(100);
  assert.equal(pacer.paused, false);
  assert.deepEqual(events.slice(2), ["end:100@100", "resume@100"]);
});

test("stanza flood: 20 + 10 × 10 messages forwarded in 10 s (± 1), none dropped", () => {
  const clock = new FakeClock();
  let forwarded = 0;
  let held = 0;
  let sent = 0;
  const pacer = new ReadPacer({
    buckets: { stanzas: { message: new TokenBucket(10, 20, 0) } },
    clock,
    timers: clock,
    hooks: {
      pause() {},
      resume() {
        forwarded += held;
        held = 0;
      },
      onThrottleStart() {},
      onThrottleEnd() {},
    },
  });
  for (;;) {
    if (pacer.paused) {
      const next = clock.nextTimerAt()!;
      if (next > 10_000) break;
      clock.advanceTo(next);
      continue;
    }
    // A chunk carrying three messages: the session charges each as it is framed.
    for (let i = 0; i < 3; i++) {
      sent++;
      if (pacer.chargeStanza("message") && held === 0) forwarded++;
      else held++;
    }
  }
  assert.ok(forwarded <= 20 + 10 * 10 && forwarded >= 20 + 10 * 10 - 3, String(forwarded));
  assert.equal(forwarded + held, sent);
});

test("byte and stanza buckets together: resume when the longest debt is repaid", () => {
  const { clock, pacer, events } = harness((now) => ({
    bytes: new TokenBucket(3000, 6000, now),
    stanzas: { message: new TokenBucket(10, 1, now), iq: new TokenBucket(1, 1, now) },
  }));
  assert.equal(pacer.charge(7500), 6000); // bytes owe 500 ms
  assert.equal(pacer.chargeStanza("message"), false); // paused already: hold
  assert.equal(pacer.chargeStanza("message"), false); // message owes 100 ms
  assert.equal(clock.nextTimerAt(), 500);
  assert.equal(pacer.chargeStanza("iq"), false);
  assert.equal(pacer.chargeStanza("iq"), false); // iq owes 1000 ms
  assert.equal(clock.nextTimerAt(), 1000);
  assert.equal(clock.pendingTimers, 1);
  clock.advance(1000);
  assert.deepEqual(events, ["pause@0", "start:bytes@0", "end:1000@1000", "resume@1000"]);
});

test("reload: reconfigure a bucket in place, refresh() moves the deadline", () => {
  const { clock, pacer } = harness(bytes3k);
  const bucket = new TokenBucket(3000, 6000, 0);
  pacer.setBuckets({ bytes: bucket });
  pacer.charge(9000); // owes 1000 ms at 3000 B/s
  bucket.reconfigure(6000, 12_000, clock.now());
  pacer.refresh();
  assert.equal(clock.nextTimerAt(), 500);
  assert.equal(clock.pendingTimers, 1);
  bucket.reconfigure(1000, 2000, clock.now());
  pacer.refresh();
  assert.equal(clock.nextTimerAt(), 3000);
  assert.equal(clock.pendingTimers, 1);
  clock.advance(3000);
  assert.equal(pacer.paused, false);
});

test("reload: removing the only limited bucket resumes at once; adding one in debt pauses", () => {
  const { clock, pacer, events } = harness(bytes3k);
  pacer.charge(9000);
  pacer.setBuckets({});
  assert.equal(pacer.paused, false);
  assert.equal(clock.pendingTimers, 0);
  assert.deepEqual(events, ["pause@0", "start:bytes@0", "end:0@0", "resume@0"]);
  const shared = new TokenBucket(10, 1, 0);
  shared.take(3, 0); // charged elsewhere (a bucket shared between sessions)
  pacer.setBuckets({ stanzas: { presence: shared } });
  assert.equal(pacer.paused, true);
  assert.equal(events.at(-1), "start:presence@0");
  assert.equal(clock.nextTimerAt(), 200);
});

test("resume() may re-enter charge() (flushing held data) and pause again", () => {
  const { clock, pacer, events, hooks } = harness(bytes3k);
  let flushes = 0;
  const resume = hooks.resume;
  hooks.resume = () => {
    resume();
    if (flushes++ < 2) pacer.charge(3000);
  };
  pacer.charge(9000);
  clock.advance(10_000);
  assert.deepEqual(events, [
    "pause@0", "start:bytes@0", "end:1000@1000", "resume@1000",
    "pause@1000", "start:bytes@1000", "end:1000@2000", "resume@2000",
    "pause@2000", "start:bytes@2000", "end:1000@3000", "resume@3000",
  ]);
  assert.equal(clock.pendingTimers, 0);
});

test("a timer that fires early is re-armed for the remainder, never resuming early", () => {
  const clock0 = new FakeClock();
  // Fires up to 1 ms early, but never sooner than 1 ms after scheduling (like Node's ms timers).
  const early: Timers = { setTimer: (ms, fn) => clock0.setTimer(Math.max(1, Math.ceil(ms) - 1), fn) };
  const bucket = new TokenBucket(3000, 6000, 0);
  let resumedAt = -1;
  const pacer = new ReadPacer({
    buckets: { bytes: bucket },
    clock: clock0,
    timers: early,
    hooks: { pause() {}, resume: () => (resumedAt = clock0.now()), onThrottleStart() {}, onThrottleEnd() {} },
  });
  pacer.charge(6000 + 2192); // due at 730.67 ms
  clock0.advance(2000);
  assert.ok(resumedAt >= 2192 / 3 && resumedAt <= 2192 / 3 + 1, String(resumedAt));
});
