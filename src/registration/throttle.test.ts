// util.throttle semantics and bucket keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import { pollThrottle, throttleKey } from "./throttle.js";

const spec = { capacity: 2, perMs: 2 / 60_000 }; // 2 per minute

test("a new bucket starts full; success debits one; failure debits nothing", () => {
  const a = pollThrottle(undefined, spec, 1000);
  assert.deepEqual(a, { ok: true, next: { tokens: 1, updated_at: 1000 } });
  const b = pollThrottle(a.next, spec, 1000);
  assert.deepEqual(b, { ok: true, next: { tokens: 0, updated_at: 1000 } });
  const c = pollThrottle(b.next, spec, 16_000);
  assert.equal(c.ok, false);
  assert.equal(c.next.tokens, 0.5);
  const d = pollThrottle(b.next, spec, 31_000);
  assert.equal(d.ok, true, "30 s refill one token from the stored (not the failed) state");
  assert.equal(d.next.tokens, 0);
});

test("refill is capped at capacity and a clock step backwards refills nothing", () => {
  const full = pollThrottle({ tokens: 0, updated_at: 0 }, spec, 10 * 60_000);
  assert.deepEqual(full.next, { tokens: 1, updated_at: 600_000 });
  assert.equal(pollThrottle({ tokens: 0.5, updated_at: 5000 }, spec, 1000).ok, false);
});

test("capacity below one never passes (as in util.throttle)", () => {
  assert.equal(pollThrottle(undefined, { capacity: 0.5, perMs: 1 }, 0).ok, false);
});

test("keys: IPv4 as is, mapped IPv4 unwrapped, IPv6 by prefix, junk null", () => {
  assert.equal(throttleKey("192.0.2.1", 64), "192.0.2.1");
  assert.equal(throttleKey("::ffff:192.0.2.1", 64), "192.0.2.1");
  assert.equal(throttleKey("2001:db8:1:2:3:4:5:6", 64), "2001:db8:1:2:0:0:0:0/64");
  assert.equal(throttleKey("2001:DB8:1:2::7", 64), "2001:db8:1:2:0:0:0:0/64");
  assert.equal(throttleKey("2001:db8:1:2:3:4:5:6", 56), "2001:db8:1:0:0:0:0:0/56");
  assert.equal(throttleKey("2001:db8:1:2ff:3:4:5:6", 60), "2001:db8:1:2f0:0:0:0:0/60");
  assert.equal(throttleKey("2001:db8::1", 128), "2001:db8::1");
  assert.equal(throttleKey("::1", 64), "0:0:0:0:0:0:0:0/64");
  assert.equal(throttleKey("", 64), null);
  assert.equal(throttleKey("unix:/tmp/sock", 64), null);
});

test("refreshed lazily, as util.throttle: a stored balance that covers the poll is debited without crediting the wait", () => {
  // One token left since t=0; ten minutes later it is taken as it is (updated_at kept)...
  const a = pollThrottle({ tokens: 1, updated_at: 0 }, spec, 600_000);
  assert.deepEqual(a, { ok: true, next: { tokens: 0, updated_at: 0 } });
  // ...and the next poll, short, credits the whole ten minutes (capped): a third pass in a row.
  const b = pollThrottle(a.next, spec, 600_000);
  assert.deepEqual(b, { ok: true, next: { tokens: 1, updated_at: 600_000 } });
});
