// The session directory and directed presence: bind, resume, end and
// hibernation; what client presence adds and removes (with the server's
// exceptions); every XML form of the same presence counts the same; a
// presence another stage refused never counts; a session only ever changes
// its own entry (a forged `from` plants nothing). Also the firewall's view of
// it, replication events, and the IPC hub's bookkeeping.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileRuleFiles } from "../firewall/compile.js";
import { parseRuleFile } from "../firewall/parser.js";
import { Diagnostics } from "../firewall/rule-error.js";
import { Pipeline, type PolicyStage, type SessionInfo } from "../policy/pipeline.js";
import { StreamTracker } from "../stream/tracker.js";
import { FORMS, streamHeader, writeAs, type Form } from "../../test/helpers/stanza-forms.js";
import { KnowledgeStage, MAX_DIRECTED_PER_SESSION, SessionDirectory, parseEvent, type KnowledgeEvent, type Replicator } from "./sessions.js";
import { knowledgeProviders } from "./providers.js";

const ALICE = "alice@example.org/phone";
const BOB = "bob@example.org/laptop";

function c2s(id: string, jid: string | undefined, resumeMs = 0): SessionInfo {
  return { id, listener: "c2s", type: "c2s", ip: "192.0.2.1", port: 5222, jid, domain: "example.org", authenticated: true, resumeMs };
}

class Clock {
  t = 1_000_000;
  now = (): number => this.t;
}

/** A client's stanza as the proxy judges it: framed after a stream header in `form`, `from` stamped as the server stamps it. */
function view(form: Form, stanza: string, jid: string): ReturnType<StreamTracker["peerView"]> {
  const t = new StreamTracker("c2s");
  const header = Buffer.from(streamHeader(form, { to: "example.org" }));
  assert.equal(t.peerHeader(header, 0, header.length), null);
  t.jid = jid;
  const bytes = Buffer.from(writeAs(form, stanza));
  return t.peerView(bytes, 0, bytes.length);
}

function setup(): { dir: SessionDirectory; stage: KnowledgeStage; clock: Clock; send(session: SessionInfo, stanza: string, form?: Form): void } {
  const clock = new Clock();
  const dir = new SessionDirectory({ now: clock.now, instance: "i1" });
  const stage = new KnowledgeStage({ directory: dir });
  return {
    dir,
    stage,
    clock,
    send(session, stanza, form = "plain") {
      assert.equal(stage.judge(view(form, stanza, session.jid!), session, "inbound"), undefined);
    },
  };
}

describe("online full JIDs", () => {
  it("version moves with every change an isOnline answer can see, by a write or by an expiry instant, and not with lookups", () => {
    const { dir, clock } = setup();
    const v0 = dir.version;
    assert.equal(dir.isOnline(ALICE), false);
    assert.equal(dir.version, v0);
    dir.bound("s1", ALICE);
    const v1 = dir.version;
    assert.notEqual(v1, v0);
    assert.equal(dir.isOnline(ALICE), true);
    assert.equal(dir.version, v1);
    // Hibernating for 1 s: online until its instant; the version moves when the instant has passed, before any timer.
    dir.ended("s1", ALICE, 1_000);
    const v2 = dir.version;
    assert.notEqual(v2, v1);
    clock.t += 999;
    assert.equal(dir.version, v2);
    assert.equal(dir.isOnline(ALICE), true);
    clock.t += 1;
    assert.equal(dir.isOnline(ALICE), false);
    const v3 = dir.version;
    assert.notEqual(v3, v2);
    assert.equal(dir.version, v3);
    dir.close();
  });

  it("online from the bind result until the session ends", () => {
    const { dir, stage } = setup();
    const a = c2s("s1", ALICE);
    assert.equal(dir.isOnline(ALICE), false);
    stage.sessionBound(a, false);
    assert.equal(dir.isOnline(ALICE), true);
    assert.equal(dir.isOnline("alice@example.org"), false, "a bare JID is never a session");
    assert.equal(dir.isOnline("alice@example.org/other"), false);
    stage.sessionEnded(a);
    assert.equal(dir.isOnline(ALICE), false);
    assert.deepEqual(dir.stats(), { sessions: 0, directed: 0 });
  });

  it("a JID the server gave in another case is kept prepped", () => {
    const { dir, stage } = setup();
    stage.sessionBound(c2s("s1", "Alice@Example.ORG/phone"), false);
    assert.equal(dir.isOnline("alice@example.org/phone"), true);
  });

  it("a session not yet bound, or an s2s link, registers nothing", () => {
    const { dir, stage } = setup();
    stage.sessionBound(c2s("s1", undefined), false);
    stage.sessionBound({ ...c2s("s2", "example.net"), type: "s2s" }, false);
    assert.equal(dir.stats().sessions, 0);
  });

  it("a lost resumable connection hibernates: online until the server's resumption time, unless resumed", () => {
    const { dir, stage, clock } = setup();
    stage.sessionBound(c2s("s1", ALICE), false);
    stage.sessionEnded(c2s("s1", ALICE, 60_000));
    clock.t += 59_000;
    assert.equal(dir.isOnline(ALICE), true, "hibernating: the server still holds the session");
    clock.t += 2_000;
    assert.equal(dir.isOnline(ALICE), false, "past the resumption time");
    dir.close();
  });

  it("resumption on another connection keeps the session and its directed presence", () => {
    const { dir, stage, send } = setup();
    const first = c2s("s1", ALICE);
    stage.sessionBound(first, false);
    send(first, "<presence to='stranger@example.net/x'/>");
    stage.sessionEnded(c2s("s1", ALICE, 600_000));
    const second = c2s("s2", ALICE);
    stage.sessionBound(second, true);
    assert.equal(dir.isOnline(ALICE), true);
    assert.equal(dir.hasSentTo(ALICE, "stranger@example.net/x"), true);
    // The old connection's end (late) does not take the resumed session down.
    stage.sessionEnded(c2s("s1", ALICE));
    assert.equal(dir.isOnline(ALICE), true);
    stage.sessionEnded(second);
    assert.equal(dir.isOnline(ALICE), false);
    dir.close();
  });

  it("a new bind of the same full JID replaces the old session (its directed presence goes)", () => {
    const { dir, stage, send } = setup();
    const old = c2s("s1", ALICE);
    stage.sessionBound(old, false);
    send(old, "<presence to='stranger@example.net/x'/>");
    const fresh = c2s("s2", ALICE);
    stage.sessionBound(fresh, false);
    assert.equal(dir.hasSentTo(ALICE, "stranger@example.net/x"), false);
    stage.sessionEnded(old);
    assert.equal(dir.isOnline(ALICE), true, "the replaced session's end leaves the new one");
  });
});

describe("directed presence", () => {
  const TARGET = "stranger@example.net/x";

  it("available directed presence adds, unavailable removes", () => {
    const { dir, stage, send } = setup();
    const a = c2s("s1", ALICE);
    stage.sessionBound(a, false);
    send(a, `<presence to='${TARGET}'/>`);
    assert.equal(dir.hasSentTo(ALICE, TARGET), true);
    assert.equal(dir.hasSentTo(ALICE, "stranger@example.net"), false, "kept per full JID, as the server keeps `to`");
    assert.equal(dir.hasSentTo(BOB, TARGET), false);
    send(a, `<presence to='${TARGET}' type='unavailable'/>`);
    assert.equal(dir.hasSentTo(ALICE, TARGET), false);
    send(a, `<presence to='room@conference.example.org/nick'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    send(a, `<presence to='room@conference.example.org/nick' type='error'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`);
    assert.equal(dir.hasSentTo(ALICE, "room@conference.example.org/nick"), false, "an error presence removes too");
  });

  it("the target is kept as the server reads it: prepped", () => {
    const { dir, stage, send } = setup();
    const a = c2s("s1", ALICE);
    stage.sessionBound(a, false);
    send(a, "<presence to='Stranger@EXAMPLE.net./x'/>");
    assert.equal(dir.hasSentTo(ALICE, TARGET), true);
    send(a, "<presence to='STRANGER@example.NET/x' type='unavailable'/>");
    assert.equal(dir.hasSentTo(ALICE, TARGET), false);
  });

  it("broadcast presence (no `to`, or to one's own bare JID) adds nothing; broadcast unavailable clears them all", () => {
    const { dir, stage, send } = setup();
    const a = c2s("s1", ALICE);
    stage.sessionBound(a, false);
    send(a, "<presence/>");
    send(a, "<presence to='alice@example.org'/>");
    assert.deepEqual(dir.stats(), { sessions: 1, directed: 0 });
    send(a, `<presence to='${TARGET}'/>`);
    send(a, "<presence to='other@example.net'/>");
    assert.equal(dir.stats().directed, 2);
    send(a, "<presence type='unavailable'/>");
    assert.equal(dir.hasSentTo(ALICE, TARGET), false);
    assert.equal(dir.stats().directed, 0);
    send(a, `<presence to='${TARGET}'/>`);
    send(a, "<presence to='alice@example.org' type='unavailable'/>");
    assert.equal(dir.stats().directed, 0, "unavailable to one's own bare JID is broadcast too");
  });

  it("subscriptions, probes, malformed targets and childless errors change nothing", () => {
    const { dir, stage, send } = setup();
    const a = c2s("s1", ALICE);
    stage.sessionBound(a, false);
    for (const type of ["subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe"]) send(a, `<presence to='${TARGET}' type='${type}'/>`);
    send(a, "<presence to='a b@example.net/x'/>");
    send(a, "<presence to='@/x'/>");
    assert.equal(dir.stats().directed, 0);
    send(a, `<presence to='${TARGET}'/>`);
    send(a, `<presence to='${TARGET}' type='error'/>`);
    assert.equal(dir.hasSentTo(ALICE, TARGET), true, "a childless error is dropped by the server, unrouted");
  });

  it("messages, iqs, outbound presence and stanzas in another namespace change nothing", () => {
    const { dir, stage } = setup();
    const a = c2s("s1", ALICE);
    stage.sessionBound(a, false);
    stage.judge(view("plain", `<message to='${TARGET}'><body>hi</body></message>`, ALICE), a, "inbound");
    stage.judge(view("plain", `<presence to='${TARGET}'/>`, ALICE), a, "outbound");
    stage.judge(view("plain", `<presence xmlns='jabber:server' to='${TARGET}'/>`, ALICE), a, "inbound");
    assert.equal(dir.stats().directed, 0);
  });

  for (const form of FORMS) {
    it(`${form}: the same presence counts the same`, () => {
      const { dir, stage, send } = setup();
      const a = c2s("s1", ALICE);
      stage.sessionBound(a, false);
      send(a, `<presence to='${TARGET}'><status>hi</status></presence>`, form);
      assert.equal(dir.hasSentTo(ALICE, TARGET), true);
      send(a, `<presence to='${TARGET}' type='unavailable'/>`, form);
      assert.equal(dir.hasSentTo(ALICE, TARGET), false);
      send(a, `<presence to='${TARGET}'/>`, form);
      send(a, "<presence type='unavailable'/>", form);
      assert.equal(dir.stats().directed, 0);
    });
  }

  it("attacker: a forged `from` plants nothing for someone else (the session's bound JID counts)", () => {
    const { dir, stage, send } = setup();
    const bob = c2s("s2", BOB);
    const mallory = c2s("s3", "mallory@example.org/x");
    stage.sessionBound(bob, false);
    stage.sessionBound(mallory, false);
    for (const form of FORMS) send(mallory, `<presence from='${BOB}' to='mallory@example.org/y'/>`, form);
    assert.equal(dir.hasSentTo(BOB, "mallory@example.org/y"), false);
    assert.equal(dir.hasSentTo("mallory@example.org/x", "mallory@example.org/y"), true);
  });

  it("attacker: a session cannot make itself online, or change entries, under another JID", () => {
    const { dir, stage, send } = setup();
    const bob = c2s("s2", BOB);
    stage.sessionBound(bob, false);
    send(bob, "<presence to='friend@example.net/x'/>");
    // Another session of this process (a different id) speaking for Bob's JID:
    // its writes are keyed by its own session, which owns no entry.
    dir.addDirected("s9", BOB, "evil@example.net/x");
    dir.clearDirected("s9", BOB);
    dir.ended("s9", BOB);
    assert.equal(dir.isOnline(BOB), true);
    assert.equal(dir.hasSentTo(BOB, "friend@example.net/x"), true);
    assert.equal(dir.hasSentTo(BOB, "evil@example.net/x"), false);
    // Only the server's bind result makes a JID online: a client's own claims
    // (a bind request, a `from`) never reach the directory.
    send(c2s("s3", "mallory@example.org/x"), `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>laptop</resource></bind></iq>`);
    assert.equal(dir.isOnline("bob@example.org/other"), false);
  });

  it("a presence another stage refused does not count (the stage runs last)", () => {
    const { dir, stage } = setup();
    const a = c2s("s1", ALICE);
    const refuser: PolicyStage = { name: "firewall", judge: (v) => (v.to === "blocked@example.net/x" ? { action: "drop", reason: "test" } : undefined) };
    const pipeline = new Pipeline([refuser, stage]);
    pipeline.sessionBound(a, false);
    assert.equal(dir.isOnline(ALICE), true);
    pipeline.judge(view("plain", "<presence to='blocked@example.net/x'/>", ALICE), a, "inbound");
    pipeline.judge(view("plain", "<presence to='ok@example.net/x'/>", ALICE), a, "inbound");
    assert.equal(dir.hasSentTo(ALICE, "blocked@example.net/x"), false);
    assert.equal(dir.hasSentTo(ALICE, "ok@example.net/x"), true);
    pipeline.sessionEnded(a);
    assert.equal(dir.isOnline(ALICE), false);
  });

  it("the pipeline skips building views the stage never reads (it only wants inbound presence)", () => {
    const { stage } = setup();
    const p = new Pipeline([stage]);
    assert.equal(p.wants("inbound", "presence"), true);
    for (const k of ["message", "iq", "other"] as const) assert.equal(p.wants("inbound", k), false);
    for (const k of ["message", "presence", "iq", "other"] as const) assert.equal(p.wants("outbound", k), false);
    const all = new Pipeline([stage, { name: "any", judge: () => undefined }]);
    assert.equal(all.wants("outbound", "message"), true);
  });

  it("with a known roster, presence to a contact subscribed to the sender is not directed", () => {
    const clock = new Clock();
    const dir = new SessionDirectory({ now: clock.now });
    const stage = new KnowledgeStage({
      directory: dir,
      roster: { entry: (owner, contact) => (owner === "alice@example.org" && contact === "friend@example.net" ? { subscription: "from", groups: [] } : undefined) },
    });
    const a = c2s("s1", ALICE);
    stage.sessionBound(a, false);
    stage.judge(view("plain", "<presence to='friend@example.net/x'/>", ALICE), a, "inbound");
    stage.judge(view("plain", "<presence to='stranger@example.net/x'/>", ALICE), a, "inbound");
    assert.equal(dir.hasSentTo(ALICE, "friend@example.net/x"), false);
    assert.equal(dir.hasSentTo(ALICE, "stranger@example.net/x"), true);
  });

  it("keeps at most MAX_DIRECTED_PER_SESSION targets per session, the oldest going first", () => {
    const { dir, stage } = setup();
    stage.sessionBound(c2s("s1", ALICE), false);
    for (let i = 0; i <= MAX_DIRECTED_PER_SESSION; i++) dir.addDirected("s1", ALICE, `u${i}@example.net/x`);
    assert.equal(dir.stats().directed, MAX_DIRECTED_PER_SESSION);
    assert.equal(dir.hasSentTo(ALICE, "u0@example.net/x"), false);
    assert.equal(dir.hasSentTo(ALICE, `u${MAX_DIRECTED_PER_SESSION}@example.net/x`), true);
  });
});

describe("the firewall over the directory", () => {
  function compile(text: string, dir: SessionDirectory | null) {
    const diag = new Diagnostics();
    const ast = parseRuleFile("t.pfw", text, diag).ast;
    return compileRuleFiles([ast], { providers: dir === null ? knowledgeProviders({ knowledge: { rosters: false, sessions: false } }) : { sessions: dir, directedPresence: dir } }, diag);
  }

  it("TO FULL JID? and SENT DIRECTED PRESENCE TO SENDER? load with the directory, and are refused without it", () => {
    const { dir } = setup();
    const rules = "::deliver\nTO FULL JID?\nPASS.\n\nSENT DIRECTED PRESENCE TO SENDER?\nPASS.\n";
    assert.ok(compile(rules, dir).ruleset);
    const off = compile(rules, null);
    assert.equal(off.ruleset, undefined);
    assert.match(off.errors.map((e) => e.message).join("\n"), /TO FULL JID refused: .*knowledge\.sessions/);
    assert.match(off.errors.map((e) => e.message).join("\n"), /SENT DIRECTED PRESENCE TO SENDER refused: .*knowledge\.sessions/);
    assert.deepEqual(knowledgeProviders({ knowledge: { rosters: false, sessions: true } }).sessions?.isOnline(ALICE), false);
  });
});

describe("replication", () => {
  class Wire implements Replicator {
    readonly sent: KnowledgeEvent[] = [];
    publish(e: KnowledgeEvent): void {
      this.sent.push(e);
    }
    close(): void {}
  }

  it("changes go out as whole entries; the other side applies them; removals only by the owner", () => {
    const clock = new Clock();
    const a = new SessionDirectory({ now: clock.now, instance: "A" });
    const b = new SessionDirectory({ now: clock.now, instance: "B" });
    const wa = new Wire();
    const wb = new Wire();
    a.attach(wa);
    b.attach(wb);
    a.bound("s1", ALICE);
    a.addDirected("s1", ALICE, "x@example.net/r");
    for (const e of wa.sent) b.applyRemote(e);
    assert.equal(b.isOnline(ALICE), true);
    assert.equal(b.hasSentTo(ALICE, "x@example.net/r"), true);
    assert.equal(wb.sent.length, 0, "applied events are not sent on");
    // A removal by someone else's owner id is ignored.
    b.applyRemote({ k: ALICE, v: null, o: "B:s1" });
    assert.equal(b.isOnline(ALICE), true);
    // B resumes Alice: A withdraws its copy, and B's entry survives A's late withdrawal.
    b.resumed("s7", ALICE);
    for (const e of wb.sent) a.applyRemote(e);
    const withdrawal = wa.sent.at(-1)!;
    assert.deepEqual(withdrawal, { k: ALICE, v: null, o: "A:s1" });
    b.applyRemote(withdrawal);
    assert.equal(b.isOnline(ALICE), true);
    assert.equal(a.hasSentTo(ALICE, "x@example.net/r"), true);
    // A crashed instance's entries go at once.
    assert.equal(b.dropInstance("B"), 1);
    assert.equal(b.isOnline(ALICE), false);
    a.close();
    b.close();
  });

  it("malformed events are refused", () => {
    assert.equal(parseEvent(null), null);
    assert.equal(parseEvent({ k: 1, v: null, o: "x" }), null);
    assert.equal(parseEvent({ k: "a@b/c", v: null }), null);
    assert.equal(parseEvent({ k: "a@b/c", v: { o: "x", x: "0", d: [] } }), null);
    assert.equal(parseEvent({ k: "a@b/c", v: { o: "x", x: 0, d: [1] } }), null);
    assert.deepEqual(parseEvent({ k: "a@b/c", v: { o: "x", x: 0, d: ["t@u/v"] } }), { k: "a@b/c", v: { o: "x", x: 0, d: ["t@u/v"] } });
  });
});
