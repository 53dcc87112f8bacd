// RegistrationStage: every refusal with Prosody's exact stanza, the order of
// the checks and which of them cost a throttle token, success and deletion
// detection from the server's answers, and hostile input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SessionInfo, Verdict } from "../policy/pipeline.js";
import { FakeClock } from "../../test/helpers/fake-clock.js";
import { MemoryStore } from "../../test/helpers/memory-store.js";
import type { RegistrationStore } from "../state/registration-store.js";
import { SqliteStore } from "../state/sqlite-store.js";
import { Stanza } from "../xml/stanza.js";
import { parseRegistrationOptions, type RegistrationOptions } from "./options.js";
import { MAX_PENDING_PER_SESSION, RegistrationStage, type DeletedEvent, type RefusedEvent, type RegisteredEvent } from "./registration-stage.js";

const T0 = Date.UTC(2025, 0, 1);
const S = "urn:ietf:params:xml:ns:xmpp-stanzas";

/** The exact error stanzas Prosody sends (docs/registration.md, "Refusals") for an iq with id `reg1`. */
const EXPECTED = {
  throttled: `<iq id='reg1' type='error'><error type='wait'><policy-violation xmlns='${S}'/><text xmlns='${S}'>Too many registrations from this IP address recently</text></error></iq>`,
  blocklisted: `<iq id='reg1' type='error'><error type='auth'><forbidden xmlns='${S}'/><text xmlns='${S}'>Your IP address is blocklisted</text></error></iq>`,
  notAllowlisted: `<iq id='reg1' type='error'><error type='auth'><forbidden xmlns='${S}'/><text xmlns='${S}'>Your IP address is not allowlisted</text></error></iq>`,
  notAcceptable: `<iq id='reg1' type='error'><error type='modify'><not-acceptable xmlns='${S}'/></error></iq>`,
  invalid: `<iq id='reg1' type='error'><error type='modify'><not-acceptable xmlns='${S}'/><text xmlns='${S}'>The requested username is invalid.</text></error></iq>`,
  storeError: `<iq id='reg1' type='error'><error type='wait'><internal-server-error xmlns='${S}'/></error></iq>`,
};

function options(raw: Record<string, unknown> = {}): RegistrationOptions {
  const r = parseRegistrationOptions(raw);
  if (!r.ok) throw new Error(`${r.at}: ${r.message}`);
  return r.value;
}

let sessionSeq = 0;
function session(over: Partial<SessionInfo> = {}): SessionInfo {
  return {
    id: `s${++sessionSeq}`,
    listener: "c2s",
    type: "c2s",
    ip: "192.0.2.10",
    port: 40000,
    jid: undefined,
    domain: "example.org",
    authenticated: false,
    ...over,
  };
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/'/g, "&apos;");
}

function registerIq(username: string, id = "reg1", password = "secret"): Stanza {
  const xml = `<iq type='set' id='${id}'><query xmlns='jabber:iq:register'><username>${esc(username)}</username><password>${password}</password></query></iq>`;
  return new Stanza(Buffer.from(xml), "jabber:client");
}

function raw(xml: string): Stanza {
  return new Stanza(Buffer.from(xml), "jabber:client");
}

interface Harness {
  stage: RegistrationStage;
  store: RegistrationStore;
  clock: FakeClock;
  refused: RefusedEvent[];
  registered: RegisteredEvent[];
  deleted: DeletedEvent[];
  errors: { error: unknown; op: string }[];
  /** Inbound registration on a fresh pre-auth session from `ip`; returns the verdict. */
  attempt(username: string, ip?: string): Verdict | undefined;
  /** Full success: attempt, then the server's result on the same session. */
  register(username: string, ip?: string): Verdict | undefined;
}

function harness(config: Record<string, unknown> = {}, store: RegistrationStore = new MemoryStore()): Harness {
  const clock = new FakeClock(T0);
  const h: Harness = {
    store,
    clock,
    refused: [],
    registered: [],
    deleted: [],
    errors: [],
    stage: undefined as unknown as RegistrationStage,
    attempt(username, ip = "192.0.2.10") {
      return h.stage.judge(registerIq(username), session({ ip }), "inbound");
    },
    register(username, ip = "192.0.2.10") {
      const s = session({ ip });
      const v = h.stage.judge(registerIq(username), s, "inbound");
      if (v === undefined) h.stage.judge(raw("<iq type='result' id='reg1'/>"), s, "outbound");
      return v;
    },
  };
  h.stage = new RegistrationStage({
    options: options(config),
    store,
    clock,
    hooks: {
      onRefused: (e) => h.refused.push(e),
      onRegistered: (e) => h.registered.push(e),
      onDeleted: (e) => h.deleted.push(e),
      onStoreError: (error, op) => h.errors.push({ error, op }),
    },
  });
  return h;
}

function bounced(v: Verdict | undefined): string {
  assert.ok(v !== undefined && v.action === "bounce", `expected a bounce, got ${JSON.stringify(v)}`);
  return v.reply;
}

test("min_seconds_between_registrations: one per window per IP, Prosody's exact error", () => {
  const h = harness({ min_seconds_between_registrations: 300 });
  assert.equal(h.attempt("alice"), undefined);
  assert.equal(bounced(h.attempt("bob")), EXPECTED.throttled);
  assert.equal(h.attempt("bob", "198.51.100.7"), undefined, "another IP has its own bucket");
  h.clock.advance(299_000);
  assert.equal(bounced(h.attempt("bob")), EXPECTED.throttled);
  h.clock.advance(1_000);
  assert.equal(h.attempt("bob"), undefined, "refilled after 300 s");
  assert.deepEqual(
    h.refused.map((e) => [e.reason, e.ip, e.username]),
    [
      ["throttled", "192.0.2.10", "bob"],
      ["throttled", "192.0.2.10", "bob"],
    ],
  );
});

test("registration_throttle_max/period is util.throttle: burst of max, then max/period per second", () => {
  const h = harness({ registration_throttle_max: 3, registration_throttle_period: 60 });
  for (const name of ["a1", "a2", "a3"]) assert.equal(h.attempt(name), undefined);
  assert.equal(bounced(h.attempt("a4")), EXPECTED.throttled);
  h.clock.advance(19_999);
  assert.equal(bounced(h.attempt("a4")), EXPECTED.throttled, "a token takes 20 s");
  h.clock.advance(1);
  assert.equal(h.attempt("a4"), undefined);
  assert.equal(bounced(h.attempt("a5")), EXPECTED.throttled, "a refused poll debits nothing, and the success emptied it");
});

test("the throttle state is durable: a new stage on the same store keeps the window", () => {
  const store = new MemoryStore();
  const h1 = harness({ min_seconds_between_registrations: 300 }, store);
  assert.equal(h1.attempt("alice"), undefined);
  const h2 = harness({ min_seconds_between_registrations: 300 }, store);
  h2.clock.advanceTo(T0 + 10_000);
  assert.equal(bounced(h2.attempt("bob")), EXPECTED.throttled);
});

test("IPv6 clients share a bucket per /64 (configurable)", () => {
  const h = harness({ min_seconds_between_registrations: 300 });
  assert.equal(h.attempt("a1", "2001:db8:1:2::1"), undefined);
  assert.equal(bounced(h.attempt("a2", "2001:db8:1:2:ffff::9")), EXPECTED.throttled);
  assert.equal(h.attempt("a3", "2001:db8:1:3::1"), undefined);
  const perAddress = harness({ min_seconds_between_registrations: 300, registration_throttle_ipv6_prefix: 128 });
  assert.equal(perAddress.attempt("a1", "2001:db8:1:2::1"), undefined);
  assert.equal(perAddress.attempt("a2", "2001:db8:1:2::2"), undefined);
  // IPv4-mapped addresses are the IPv4 client.
  assert.equal(h.attempt("b1", "::ffff:203.0.113.5"), undefined);
  assert.equal(bounced(h.attempt("b2", "203.0.113.5")), EXPECTED.throttled);
});

test("blocklist refuses first; allowlist skips the throttle; allowlist_registration_only", () => {
  const h = harness({
    min_seconds_between_registrations: 300,
    registration_blocklist: ["203.0.113.0/24"],
    registration_allowlist: ["198.51.100.0/24", "203.0.113.9"],
  });
  assert.equal(bounced(h.attempt("alice", "203.0.113.9")), EXPECTED.blocklisted, "blocklist wins over allowlist");
  for (const name of ["a1", "a2", "a3"]) assert.equal(h.attempt(name, "198.51.100.4"), undefined);
  const only = harness({ allowlist_registration_only: true, registration_allowlist: ["198.51.100.0/24"] });
  assert.equal(bounced(only.attempt("alice", "192.0.2.1")), EXPECTED.notAllowlisted);
  assert.equal(only.attempt("alice", "198.51.100.1"), undefined);
});

test("reserved names: Prosody's default list, by nodeprep and skeleton", () => {
  const h = harness();
  for (const name of ["admin", "Admin", "ＡＤＭＩＮ", "\u0430dmin", "adrnin", "postmaster", "a\u200Bdmin", "xmpp"]) {
    assert.equal(bounced(h.attempt(name)), EXPECTED.notAcceptable, name);
  }
  assert.equal(h.attempt("adm1n"), undefined, "adm1n's skeleton is adrnln, not adrnin");
  assert.equal(h.refused[0]!.reason, "reserved");
  const own = harness({ block_registrations_users: ["boss"], block_registrations_confusable: false });
  assert.equal(own.attempt("admin"), undefined, "an explicit list replaces the default");
  assert.equal(bounced(own.attempt("BOSS")), EXPECTED.notAcceptable);
  assert.equal(own.attempt("b0ss"), undefined, "no skeletons when confusable is off");
});

test("require, matching and length (Lua patterns, unanchored)", () => {
  const h = harness({
    block_registrations_users: [],
    block_registrations_require: "^[a-z0-9_.-]+$",
    block_registrations_matching: ["master$", "^bot%d"],
    block_registrations_length_minimum: 3,
    block_registrations_length_maximum: 12,
  });
  assert.equal(bounced(h.attempt("héllo")), EXPECTED.notAcceptable);
  assert.equal(bounced(h.attempt("webmaster")), EXPECTED.notAcceptable);
  assert.equal(bounced(h.attempt("bot7")), EXPECTED.notAcceptable);
  assert.equal(h.attempt("robot7"), undefined, "'^' anchors; the rest is a substring search");
  assert.equal(bounced(h.attempt("ab")), EXPECTED.notAcceptable);
  assert.equal(bounced(h.attempt("abcdefghijklm")), EXPECTED.notAcceptable);
  assert.deepEqual(
    h.refused.map((e) => e.reason),
    ["require", "matching", "matching", "length", "length"],
  );
});

test("name patterns run as mod_block_registrations runs them: find for _matching, match for _require, on bytes", () => {
  const h = harness({
    block_registrations_users: [],
    // No special character: username:find searches for the text, ')' included.
    // A frontier matches at the end of the name; %z is the zero byte.
    block_registrations_matching: ["x)", "%f[%a]admin%f[%A]", "%z"],
    // Three bytes: "hé" is three, "hee" too.
    block_registrations_require: "^...$",
  });
  assert.equal(bounced(h.attempt("ax)")), EXPECTED.notAcceptable);
  assert.equal(bounced(h.attempt("cadmin")), EXPECTED.notAcceptable, "require: six bytes");
  assert.equal(bounced(h.attempt("1admin")), EXPECTED.notAcceptable);
  assert.equal(h.attempt("hé"), undefined);
  assert.equal(h.attempt("zzz"), undefined, "%z is not a 'z'");
  assert.equal(bounced(h.attempt("héé")), EXPECTED.notAcceptable);
  assert.deepEqual(h.refused.map((e) => e.reason), ["matching", "require", "matching", "require"]);
  // string.match has no plain-text shortcut: the same ')' is a malformed _require.
  assert.throws(() => options({ block_registrations_require: "x)" }), /invalid Lua pattern: invalid pattern capture/);
});

test("invalid usernames get Prosody's 'The requested username is invalid.' and touch nothing", () => {
  const h = harness({ min_seconds_between_registrations: 300 });
  const cases = ["", "a b", "a@b", "a/b", "x".repeat(10 * 1024), "\u0007bell", "\uFFFE", "ab\uDC00"];
  for (const name of cases) assert.equal(bounced(h.attempt(name)), EXPECTED.invalid, JSON.stringify(name.slice(0, 20)));
  assert.equal(h.store.countThrottles(), 0, "refused before the throttle: no token, no row");
  assert.equal(h.attempt("alice"), undefined);
  assert.ok(h.refused.every((e) => e.reason === "invalid-username"));
});

test("look-alike names (mod_mimicking) are refused once the original is known", () => {
  const h = harness();
  assert.equal(h.register("paypal"), undefined);
  for (const name of ["p\u0430ypal", "paypa1", "PayPal", "paypal"]) {
    assert.equal(bounced(h.attempt(name)), EXPECTED.notAcceptable, name);
  }
  assert.equal(h.refused[0]!.reason, "look-alike");
  assert.equal(h.refused[0]!.resembles, "paypal");
  assert.equal(h.attempt("paypals"), undefined);
  const off = harness({ mimicking: false });
  off.register("paypal");
  assert.equal(off.attempt("paypa1"), undefined);
});

test("which refusals cost a throttle token: name rules no, look-alike and tombstone yes", () => {
  const h = harness({ registration_throttle_max: 2, registration_throttle_period: 600 });
  h.stage.learnAccount("example.org", "paypal", "import");
  bounced(h.attempt("admin"));
  bounced(h.attempt(""));
  assert.equal(h.store.countThrottles(), 0);
  assert.equal(bounced(h.attempt("paypa1")), EXPECTED.notAcceptable, "look-alike, after taking token 1");
  assert.equal(h.attempt("carol"), undefined, "token 2");
  assert.equal(bounced(h.attempt("dave")), EXPECTED.throttled);
});

test("success: the server's result records the account, the IP and tells the watchers", () => {
  const h = harness({ registration_watchers: ["admin@example.org"], registration_notification: "New $username@$host from $ip ($source)" });
  const s = session({ ip: "198.51.100.23" });
  assert.equal(h.stage.judge(registerIq("Alice", "r7"), s, "inbound"), undefined);
  assert.equal(h.store.hasAccount("example.org", "alice"), false, "nothing recorded before the server answers");
  h.stage.judge(raw("<iq type='result' id='r7'/>"), session(), "outbound");
  assert.equal(h.registered.length, 0, "a result on another session is not ours");
  h.stage.judge(raw("<iq type='result' id='r7'/>"), s, "outbound");
  const account = h.store.getAccount("example.org", "alice");
  assert.deepEqual(account, { host: "example.org", username: "alice", skeleton: "alice", source: "registration", created_at: T0, ip: "198.51.100.23" });
  assert.equal(h.registered.length, 1);
  assert.equal(h.registered[0]!.text, "New alice@example.org from 198.51.100.23 ($source)");
  assert.equal(h.registered[0]!.username, "alice");
  assert.equal(h.stage.pendingSessions, 0);
  h.stage.judge(raw("<iq type='result' id='r7'/>"), s, "outbound");
  assert.equal(h.registered.length, 1, "answered once");
});

test("a registration the server refuses is not recorded", () => {
  const h = harness();
  const s = session();
  h.stage.judge(registerIq("bob"), s, "inbound");
  h.stage.judge(raw(`<iq type='error' id='reg1'><error type='cancel'><conflict xmlns='${S}'/></error></iq>`), s, "outbound");
  assert.equal(h.store.hasAccount("example.org", "bob"), false);
  assert.equal(h.registered.length, 0);
});

test("a result long after the request (past the pending TTL) records nothing", () => {
  const h = harness();
  const s = session();
  h.stage.judge(registerIq("bob"), s, "inbound");
  h.clock.advance(60_001);
  h.stage.judge(raw("<iq type='result' id='reg1'/>"), s, "outbound");
  assert.equal(h.store.hasAccount("example.org", "bob"), false);
});

function removeFlow(h: Harness, jid: string, to?: string): void {
  const s = session({ authenticated: true, jid });
  const toAttr = to === undefined ? "" : ` to='${to}'`;
  assert.equal(h.stage.judge(raw(`<iq type='set' id='del1'${toAttr}><query xmlns='jabber:iq:register'><remove/></query></iq>`), s, "inbound"), undefined);
  h.stage.judge(raw("<iq type='result' id='del1'/>"), s, "outbound");
}

test("tombstones: a deleted account's name is refused right away (no stale cache) and forever by default", () => {
  const h = harness();
  assert.equal(h.register("alice"), undefined, "looked up once, as in Prosody's cache bug");
  removeFlow(h, "alice@example.org/phone");
  assert.equal(h.deleted.length, 1);
  assert.deepEqual(h.store.getTombstone("example.org", "alice"), { username: "alice", host: "example.org", deleted_at: T0 });
  assert.equal(h.store.hasAccount("example.org", "alice"), false);
  assert.equal(bounced(h.attempt("alice")), EXPECTED.notAcceptable);
  assert.equal(h.refused.at(-1)!.reason, "tombstoned");
  h.clock.advance(10 * 365 * 86_400_000);
  assert.equal(bounced(h.attempt("ALICE")), EXPECTED.notAcceptable);
});

test("user_tombstone_expiry: the name frees up after the expiry and the tombstone is removed", () => {
  const h = harness({ user_tombstone_expiry: "1h" });
  removeFlow(h, "alice@example.org/phone", "example.org");
  h.clock.advance(3_600_000);
  // Still one at the expiry instant itself (Prosody: expired when deletion + expiry < now).
  assert.equal(bounced(h.attempt("alice")), EXPECTED.notAcceptable);
  h.clock.advance(1);
  assert.equal(h.attempt("alice"), undefined);
  assert.equal(h.store.getTombstone("example.org", "alice"), undefined);
});

test("zeros: min_seconds 0 throttles nothing, throttle_max 0 refuses everyone, tombstone expiry 0 frees the name at once", () => {
  const open = harness({ min_seconds_between_registrations: 0 });
  for (const name of ["a1", "a2", "a3", "a4"]) assert.equal(open.attempt(name), undefined);
  const closed = harness({ registration_throttle_max: 0 });
  assert.equal(bounced(closed.attempt("b1")), EXPECTED.throttled);
  closed.clock.advance(86_400_000);
  assert.equal(bounced(closed.attempt("b1", "198.51.100.9")), EXPECTED.throttled);
  const h = harness({ user_tombstone_expiry: 0 });
  removeFlow(h, "alice@example.org/phone", "example.org");
  h.clock.advance(1);
  assert.equal(h.attempt("alice"), undefined);
});

test("presence to a deleted account: gone, 'User deleted', then an unsubscribe (unsubscribed for a probe), as mod_tombstones", () => {
  const h = harness();
  removeFlow(h, "alice@example.org/phone", "example.org");
  const bob = session({ authenticated: true, jid: "bob@example.org/pc" });
  const v = h.stage.judge(raw("<presence to='Alice@example.org' id='p1'/>"), bob, "inbound");
  assert.equal(
    bounced(v),
    "<presence to='bob@example.org/pc' from='Alice@example.org' id='p1' type='error'><error type='cancel'>" +
      "<gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>User deleted</text></error></presence>" +
      "<presence type='unsubscribe' to='bob@example.org/pc' from='Alice@example.org'/>",
  );
  assert.match(bounced(h.stage.judge(raw("<presence to='alice@example.org' type='probe'/>"), bob, "inbound")), /type='unsubscribed'/);
  assert.match(bounced(h.stage.judge(raw("<presence to='alice@example.org' type='unavailable'/>"), bob, "inbound")), /<gone /);
  // Over s2s, the stanza's from is the sender.
  const s2s = { ...session({ authenticated: true }), type: "s2s" as const, domain: "remote.example" };
  assert.match(bounced(h.stage.judge(raw("<presence from='carol@remote.example/x' to='alice@example.org' type='probe'/>"), s2s, "inbound")), /to='carol@remote.example\/x'/);
  // Not for subscription requests, a full JID, or anyone else.
  for (const x of ["<presence to='alice@example.org' type='subscribe'/>", "<presence to='alice@example.org/res'/>", "<presence to='bob@example.org'/>", "<presence/>"]) {
    assert.equal(h.stage.judge(raw(x), bob, "inbound"), undefined, x);
  }
});

test("a <remove/> to a gateway or another user is no account deletion", () => {
  const h = harness();
  removeFlow(h, "alice@example.org/phone", "irc.example.org");
  removeFlow(h, "alice@example.org/phone", "bob@example.org");
  assert.equal(h.store.getTombstone("example.org", "alice"), undefined);
  removeFlow(h, "alice@example.org/phone", "Alice@Example.org");
  assert.notEqual(h.store.getTombstone("example.org", "alice"), undefined, "to the own bare JID counts");
});

test("bind results teach known accounts (for admin-created accounts)", () => {
  const h = harness();
  const s = session({ authenticated: true });
  h.stage.judge(
    raw("<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>Matt@Example.org/laptop</jid></bind></iq>"),
    s,
    "outbound",
  );
  assert.equal(h.store.getAccount("example.org", "matt")?.source, "bind");
  assert.equal(bounced(h.attempt("rnatt")), EXPECTED.notAcceptable);
});

test("duplicate and mixed fields: every username given is judged", () => {
  const h = harness();
  const form = (fields: string): Stanza =>
    raw(
      `<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>admin</username><x xmlns='jabber:x:data' type='submit'>` +
        `<field var='FORM_TYPE'><value>jabber:iq:register</value></field>${fields}<field var='password'><value>pw</value></field></x></query></iq>`,
    );
  assert.equal(bounced(h.stage.judge(form("<field var='username'><value>bob</value></field>"), session(), "inbound")), EXPECTED.notAcceptable);
  const h2 = harness();
  const dup = raw(
    `<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>carol</username><username>root</username><password>x</password></query></iq>`,
  );
  assert.equal(bounced(h2.stage.judge(dup, session(), "inbound")), EXPECTED.notAcceptable);
  // The recorded account is the one the server uses: the form's first value.
  const h3 = harness();
  const s = session();
  const mixed = raw(
    `<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>zed</username><x xmlns='jabber:x:data' type='submit'>` +
      `<field var='username'><value>dave</value></field><field var='password'><value>pw</value></field></x></query></iq>`,
  );
  assert.equal(h3.stage.judge(mixed, s, "inbound"), undefined);
  h3.stage.judge(raw("<iq type='result' id='reg1'/>"), s, "outbound");
  assert.equal(h3.registered[0]?.username, "dave");
  assert.equal(h3.store.hasAccount("example.org", "zed"), false);
});

test("what the stage leaves alone", () => {
  const h = harness({ min_seconds_between_registrations: 300, registration_blocklist: ["192.0.2.0/24"] });
  const get = raw("<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>");
  assert.equal(h.stage.judge(get, session(), "inbound"), undefined, "the form request");
  const remove = raw("<iq type='set' id='d1'><query xmlns='jabber:iq:register'><remove/></query></iq>");
  assert.equal(h.stage.judge(remove, session(), "inbound"), undefined, "pre-auth remove: the server answers registration-required");
  const noPassword = raw("<iq type='set' id='n1'><query xmlns='jabber:iq:register'><username>admin</username></query></iq>");
  assert.equal(h.stage.judge(noPassword, session(), "inbound"), undefined, "missing fields: the server's 'Required value missing'");
  const change = raw("<iq type='set' id='p1'><query xmlns='jabber:iq:register'><username>admin</username><password>new</password></query></iq>");
  assert.equal(h.stage.judge(change, session({ authenticated: true, jid: "admin@example.org/x" }), "inbound"), undefined, "password change");
  assert.equal(h.stage.judge(registerIq("admin"), session({ type: "s2s" }), "inbound"), undefined, "s2s");
  const msg = raw("<message to='a@example.org'><body>admin</body></message>");
  assert.equal(h.stage.judge(msg, session(), "inbound"), undefined);
  assert.equal(h.refused.length, 0);
  assert.equal(h.store.countThrottles(), 0);
});

test("a flood of 1,000 attempts from one IP: one gets through, the store holds one bucket", () => {
  const h = harness({ min_seconds_between_registrations: 300 });
  let passed = 0;
  for (let i = 0; i < 1000; i++) {
    const v = h.attempt(`user${i}`);
    if (v === undefined) passed++;
    else assert.equal(v.action === "bounce" && v.reply, EXPECTED.throttled);
    h.clock.advance(10);
  }
  assert.equal(passed, 1);
  assert.equal(h.store.countThrottles(), 1);
  assert.equal(h.attempt("someone", "198.51.100.1"), undefined, "other clients unaffected");
});

test("pending register iqs are capped per session and dropped by forget()", () => {
  const h = harness();
  const s = session();
  for (let i = 0; i < MAX_PENDING_PER_SESSION + 2; i++) h.stage.judge(registerIq(`u${i}`, `id${i}`), s, "inbound");
  h.stage.judge(raw("<iq type='result' id='id0'/>"), s, "outbound");
  assert.equal(h.registered.length, 0, "the oldest was dropped");
  h.stage.judge(raw(`<iq type='result' id='id${MAX_PENDING_PER_SESSION + 1}'/>`), s, "outbound");
  assert.equal(h.registered.length, 1);
  assert.equal(h.stage.pendingSessions, 1);
  h.stage.forget(s.id);
  assert.equal(h.stage.pendingSessions, 0);
});

test("sessions that are never forgotten are swept once their pending iqs expire", () => {
  const h = harness();
  for (let i = 0; i < 255; i++) h.stage.judge(registerIq(`u${i}`), session(), "inbound");
  assert.equal(h.stage.pendingSessions, 255);
  h.clock.advance(60_001);
  h.stage.judge(registerIq("last"), session(), "inbound");
  assert.equal(h.stage.pendingSessions, 1);
});

test("a failing store refuses with internal-server-error and never throws", () => {
  const broken = new MemoryStore();
  const h = harness({ min_seconds_between_registrations: 300 }, broken);
  broken.close();
  assert.equal(bounced(h.attempt("alice")), EXPECTED.storeError);
  assert.equal(h.refused.at(-1)!.reason, "store-error");
  assert.ok(h.errors.length >= 1);
  const s = session({ authenticated: true });
  assert.doesNotThrow(() =>
    h.stage.judge(raw("<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>a@example.org/r</jid></bind></iq>"), s, "outbound"),
  );
});

test("the error reply keeps the client's addressing the way st.error_reply does", () => {
  const h = harness();
  const iq = raw("<iq type='set' id='x&amp;1' to='example.org'><query xmlns='jabber:iq:register'><username>admin</username><password>p</password></query></iq>");
  assert.equal(
    bounced(h.stage.judge(iq, session(), "inbound")),
    `<iq from='example.org' id='x&amp;1' type='error'><error type='modify'><not-acceptable xmlns='${S}'/></error></iq>`,
  );
});

test("with SqliteStore, every answer survives a restart", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "xg-stage-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "state.sqlite");
  const config = { min_seconds_between_registrations: 300 };
  const first = harness(config, SqliteStore.open(path));
  assert.equal(first.register("paypal", "192.0.2.1"), undefined);
  assert.equal(first.register("alice", "192.0.2.2"), undefined);
  removeFlow(first, "alice@example.org/phone");
  first.store.close();

  const second = harness(config, SqliteStore.open(path));
  try {
    second.clock.advanceTo(T0 + 1000);
    assert.equal(bounced(second.attempt("carol", "192.0.2.1")), EXPECTED.throttled);
    assert.equal(bounced(second.attempt("p\u0430ypal", "198.51.100.1")), EXPECTED.notAcceptable);
    assert.equal(second.refused.at(-1)!.reason, "look-alike");
    assert.equal(bounced(second.attempt("alice", "198.51.100.2")), EXPECTED.notAcceptable);
    assert.equal(second.refused.at(-1)!.reason, "tombstoned");
    assert.equal(second.attempt("carol", "198.51.100.3"), undefined);
  } finally {
    second.store.close();
  }
});
