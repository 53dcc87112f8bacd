import { test } from "node:test";
import assert from "node:assert/strict";
import type { TimeoutsConfig } from "../config/schema.js";
import { SessionTimers } from "./session-timers.js";

const T = { stream_header: 10, pre_auth: 60, pre_auth_idle: 0.05, stanza: 10, connect: 10 } as unknown as TimeoutsConfig;
const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

test("pre-auth counts: bytes and stanzas over their caps, nothing after authentication", () => {
  const t = new SessionTimers();
  t.startPreAuth(Date.now(), T, () => {});
  assert.equal(t.overBytes(60, 100), false);
  assert.equal(t.overBytes(60, 100), true);
  assert.equal(t.overStanzas(1), false);
  assert.equal(t.overStanzas(1), true);
  assert.equal(t.overBytes(1_000_000, 0), false, "0: no cap");
  t.authenticated();
  assert.equal(t.overBytes(1_000_000, 1), false);
  assert.equal(t.overStanzas(0), false);
  t.end();
});

test("the pre-auth timer: idle passes when the peer is silent, not while the proxy holds it back", async () => {
  const t = new SessionTimers();
  let fired = 0;
  t.startPreAuth(Date.now(), T, () => fired++);
  await wait(80);
  assert.equal(fired, 1);
  assert.equal(t.preAuthFired(T, true, () => fired++), null, "paused: armed again");
  await wait(1100);
  assert.deepEqual(t.preAuthFired(T, false, () => {}), { kind: "pre_auth_idle" });
  t.end();
});

test("the pre-auth lifetime counts from the accept", () => {
  const t = new SessionTimers();
  t.startPreAuth(Date.now() - 61_000, T, () => {});
  const expired = t.preAuthFired(T, false, () => {});
  assert.equal(expired?.kind, "pre_auth");
  assert.match(expired?.detail ?? "", /^6[01] s after accept$/);
  t.end();
});

test("stanza timer: armed, re-armed, disarmed; it clears itself before firing", async () => {
  const t = new SessionTimers();
  let fired = 0;
  t.armStanza(20, () => {
    assert.equal(t.stanzaArmed, false);
    fired++;
  });
  assert.equal(t.stanzaArmed, true);
  t.armStanza(20, () => fired++);
  await wait(60);
  assert.equal(fired, 1, "re-arming replaced the first");
  t.armStanza(20, () => fired++);
  t.disarmStanza();
  await wait(40);
  assert.equal(fired, 1);
});

test("header, stop and end: stop leaves the close grace, end clears it", async () => {
  const t = new SessionTimers();
  const seen: string[] = [];
  t.startHeader(20, () => seen.push("header"));
  t.closeAfter(30, () => seen.push("close"));
  t.closeAfter(5, () => seen.push("second close"));
  t.stop();
  await wait(60);
  assert.deepEqual(seen, ["close"]);
  const u = new SessionTimers();
  u.startHeader(20, () => seen.push("header"));
  u.headerSeen();
  u.closeAfter(20, () => seen.push("close 2"));
  u.end();
  await wait(40);
  assert.deepEqual(seen, ["close"]);
});
