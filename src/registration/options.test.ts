// parseRegistrationOptions: Prosody's names and defaults, renamed and
// inapplicable options, every kind of bad value with its path, throttle derivation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_NOTIFICATION, PROSODY_RESERVED_USERS, REGISTRATION_DEFAULTS, parseRegistrationOptions, throttleSpec, type RegistrationOptions } from "./options.js";

function ok(raw: unknown): { value: RegistrationOptions; notes: readonly string[] } {
  const r = parseRegistrationOptions(raw);
  if (!r.ok) throw new Error(`${r.at}: ${r.message}`);
  return r;
}

function bad(raw: unknown): { message: string; at?: string } {
  const r = parseRegistrationOptions(raw);
  assert.equal(r.ok, false, JSON.stringify(raw));
  return r as { message: string; at?: string };
}

test("defaults: Prosody's, except the empty allowlist", () => {
  const { value } = ok(undefined);
  assert.equal(value, REGISTRATION_DEFAULTS);
  assert.equal(value.registration_allowlist.size, 0);
  assert.deepEqual(value.block_registrations_users, PROSODY_RESERVED_USERS);
  assert.equal(PROSODY_RESERVED_USERS.length, 25);
  assert.equal(value.mimicking, true);
  assert.equal(value.user_tombstone_expiry, null);
  assert.equal(value.registration_notification, DEFAULT_NOTIFICATION);
  assert.equal(DEFAULT_NOTIFICATION, "User $username just registered on $host from $ip");
  assert.equal(value.registration_notification_type, "chat");
  assert.equal(throttleSpec(value), null, "no throttle unless configured, as in Prosody");
  assert.equal(ok({}).value.block_registrations_length_maximum, 255);
});

test("the issue's example section parses, with a note about min_seconds", () => {
  const { value, notes } = ok({
    min_seconds_between_registrations: 300,
    registration_throttle_max: 10,
    registration_throttle_period: 60,
    registration_allowlist: [],
    registration_blocklist: ["203.0.113.0/24", "2001:db8::/32"],
    block_registrations_users: ["Admin", "ＲＯＯＴ"],
    block_registrations_require: null,
    block_registrations_matching: ["master$"],
    mimicking: true,
    user_tombstone_expiry: null,
    registration_watchers: ["Admin@Example.org"],
    registration_notification: "User $username just registered on $host from $ip",
  });
  assert.deepEqual(value.block_registrations_users, ["admin", "root"]);
  assert.deepEqual(value.registration_watchers, ["admin@example.org"]);
  assert.ok(value.registration_blocklist.has("2001:db8::1"));
  assert.deepEqual(throttleSpec(value), { capacity: 10, perMs: 10 / 60_000 });
  assert.equal(notes.length, 1);
  assert.match(notes[0]!, /min_seconds_between_registrations is ignored/);
});

test("throttle derivation follows mod_register_limits", () => {
  assert.deepEqual(throttleSpec(ok({ min_seconds_between_registrations: 300 }).value), { capacity: 1, perMs: 1 / 300_000 });
  assert.deepEqual(throttleSpec(ok({ min_seconds_between_registrations: 60, registration_throttle_max: 5 }).value), { capacity: 5, perMs: 5 / 60_000 });
  assert.match(bad({ registration_throttle_max: 5 }).message, /needs registration_throttle_period/);
  assert.match(bad({ registration_throttle_period: 5 }).message, /has no effect/);
});

test("zeros mean what they mean to Prosody: no throttle, a closed door, tombstones that expire at once", () => {
  // min_seconds 0: a bucket of 1 refilled over 0 s, which is no throttle.
  assert.equal(throttleSpec(ok({ min_seconds_between_registrations: 0 }).value), null);
  assert.equal(throttleSpec(ok({ registration_throttle_max: 3, registration_throttle_period: 0 }).value), null);
  // max 0: a bucket that never holds a token; with or without a period.
  assert.deepEqual(throttleSpec(ok({ registration_throttle_max: 0 }).value), { capacity: 0, perMs: 0 });
  assert.deepEqual(throttleSpec(ok({ registration_throttle_max: 0, registration_throttle_period: 60 }).value), { capacity: 0, perMs: 0 });
  assert.deepEqual(throttleSpec(ok({ min_seconds_between_registrations: 0, registration_throttle_max: 0 }).value), { capacity: 0, perMs: 0 });
  assert.equal(ok({ user_tombstone_expiry: 0 }).value.user_tombstone_expiry, 0);
  assert.equal(ok({ user_tombstone_expiry: "0d" }).value.user_tombstone_expiry, 0);
  assert.equal(ok({ registration_notification_type: "groupchat" }).value.registration_notification_type, "groupchat");
});

test("tombstone expiry: seconds or Prosody 13 periods", () => {
  assert.equal(ok({ user_tombstone_expiry: 86400 }).value.user_tombstone_expiry, 86400);
  assert.equal(ok({ user_tombstone_expiry: "30d" }).value.user_tombstone_expiry, 30 * 86400);
  assert.equal(ok({ user_tombstone_expiry: "90" }).value.user_tombstone_expiry, 90);
  assert.equal(ok({ user_tombstone_expiry: "2w" }).value.user_tombstone_expiry, 14 * 86400);
  assert.equal(bad({ user_tombstone_expiry: "soon" }).at, "user_tombstone_expiry");
  assert.equal(bad({ user_tombstone_expiry: -1 }).at, "user_tombstone_expiry");
});

test("bad values are reported at their option and index", () => {
  const cases: [unknown, string, RegExp][] = [
    [{ registration_allowlist: ["10.0.0.0/8", "10.0.0.1/8"] }, "registration_allowlist.1", /host bits/],
    [{ registration_blocklist: "10.0.0.0/8" }, "registration_blocklist", /list of strings/],
    [{ block_registrations_users: ["ok", "a b"] }, "block_registrations_users.1", /nodeprep/],
    [{ block_registrations_matching: ["ok", "%b"] }, "block_registrations_matching.1", /invalid Lua pattern/],
    [{ block_registrations_require: "[a-" }, "block_registrations_require", /invalid Lua pattern/],
    [{ registration_throttle_max: 1.5, registration_throttle_period: 1 }, "registration_throttle_max", /integer >= 0/],
    [{ min_seconds_between_registrations: -1 }, "min_seconds_between_registrations", /seconds >= 0/],
    [{ mimicking: "yes" }, "mimicking", /true or false/],
    [{ registration_watchers: ["admin@example.org/"] }, "registration_watchers.0", /full JID/],
    [{ registration_notification_type: "shout" }, "registration_notification_type", /chat, normal, headline, groupchat/],
    [{ registration_webhook: "ftp://x" }, "registration_webhook", /http/],
    [{ block_registrations_length_minimum: 10, block_registrations_length_maximum: 5 }, "block_registrations_length_minimum", /above/],
    [{ registration_throttle_ipv6_prefix: 129 }, "registration_throttle_ipv6_prefix", /1 to 128/],
    [{ registration_notification: "" }, "registration_notification", /non-empty/],
  ];
  for (const [raw, at, message] of cases) {
    const r = bad(raw);
    assert.equal(r.at, at, JSON.stringify(raw));
    assert.match(r.message, message);
  }
});

test("renamed, inapplicable and unknown options", () => {
  assert.deepEqual(bad({ registration_whitelist: [] }), { ok: false, message: '"registration_whitelist" was renamed to "registration_allowlist"', at: "registration_whitelist" });
  assert.match(bad({ registration_blacklist: [] }).message, /renamed to "registration_blocklist"/);
  assert.match(bad({ registration_throttle_cache_size: 100 }).message, /not supported by the proxy/);
  assert.match(bad({ tombstone_cache_size: 10 }).message, /stale-cache bug/);
  assert.match(bad({ mimiking: true }).message, /unknown option "mimiking"/);
  assert.match(bad({ "registration-watchers": [] }).message, /did you mean "registration_watchers"/);
  assert.match(bad([1]).message, /expected a mapping/);
});

test("the parsed value is frozen", () => {
  const { value } = ok({ mimicking: false });
  assert.ok(Object.isFrozen(value));
  assert.ok(Object.isFrozen(value.block_registrations_users));
});
