import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryRosterStore } from "../../test/helpers/memory-roster-store.js";
import { testStanza } from "../../test/helpers/test-stanza.js";
import { compileRuleSources } from "../firewall/compile.js";
import { LearnedRosters, RosterLearner } from "./roster-learner.js";

const JID = "Alice@Example.org/phone";
const OWNER = "alice@example.org";
const session = { id: "s1", type: "c2s" as const, jid: JID };

function setup() {
  const store = new MemoryRosterStore();
  const ignored: string[] = [];
  const learner = new RosterLearner(store, { onIgnored: (r) => ignored.push(r) });
  const fromClient = (xml: string, s = session) => learner.observe(testStanza(xml, { sessionJid: s.jid }), s, "inbound");
  const fromServer = (xml: string, s = session) => learner.observe(testStanza(xml), s, "outbound");
  return { store, learner, fromClient, fromServer, ignored };
}

const RESULT = `<iq type='result' id='r1' to='${JID}'><query xmlns='jabber:iq:roster' ver='7'>
  <item jid='Bob@Example.org' subscription='both' name='Bob'><group>Friends</group><group>Work</group><group>Friends</group></item>
  <item jid='carol@example.net' subscription='none' ask='subscribe'/>
  <item jid='dave@example.net' subscription='from'/>
</query></iq>`;

describe("RosterLearner", () => {
  it("a roster result answering the client's get replaces the roster (groups, ask, subscription, ver)", () => {
    const { store, fromClient, fromServer } = setup();
    assert.equal(fromClient("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>"), undefined);
    fromServer(RESULT);
    assert.deepEqual(store.known(OWNER), { ver: "7" });
    assert.deepEqual(store.item(OWNER, "bob@example.org"), { subscription: "both", ask: undefined, groups: ["Friends", "Work"] });
    assert.deepEqual(store.item(OWNER, "carol@example.net"), { subscription: "none", ask: "subscribe", groups: [] });
    assert.equal(store.item(OWNER, "dave@example.net")?.subscription, "from");
    // A second full result replaces, it does not merge.
    fromClient("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>");
    fromServer(`<iq type='result' id='r2'><query xmlns='jabber:iq:roster' ver='8'><item jid='erin@example.org' subscription='to'/></query></iq>`);
    assert.equal(store.item(OWNER, "bob@example.org"), undefined);
    assert.equal(store.item(OWNER, "erin@example.org")?.subscription, "to");
    assert.deepEqual(store.known(OWNER), { ver: "8" });
  });

  it("a result nobody asked for, or answering another session's get, is not learned", () => {
    const { store, fromClient, fromServer } = setup();
    fromServer(RESULT);
    assert.equal(store.known(OWNER), undefined);
    fromClient("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>", { id: "other", type: "c2s", jid: JID });
    fromServer(RESULT);
    assert.equal(store.known(OWNER), undefined);
  });

  it("a result from another entity with the get's id is not the server's roster", () => {
    const { store, fromClient, fromServer, ignored } = setup();
    fromClient("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
    fromServer(RESULT.replace("type='result'", "type='result' from='mallory@evil.example/x'"));
    assert.equal(store.known(OWNER), undefined);
    assert.deepEqual(ignored, ["foreign-result"]);
    // The real answer still counts.
    fromServer(RESULT);
    assert.deepEqual(store.known(OWNER), { ver: "7" });
  });

  it("a get addressed to someone else is not a roster get", () => {
    const { store, fromClient, fromServer } = setup();
    fromClient("<iq type='get' id='r1' to='mallory@evil.example'><query xmlns='jabber:iq:roster'/></iq>");
    fromServer(RESULT);
    assert.equal(store.known(OWNER), undefined);
  });

  it("pushes add, change and remove items; a push from someone else is ignored", () => {
    const { store, fromClient, fromServer, ignored } = setup();
    fromClient("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
    fromServer(RESULT);
    fromServer(`<iq type='set' id='p1'><query xmlns='jabber:iq:roster' ver='9'><item jid='frank@example.org' subscription='none' ask='subscribe'><group>New</group></item></query></iq>`);
    assert.deepEqual(store.item(OWNER, "frank@example.org"), { subscription: "none", ask: "subscribe", groups: ["New"] });
    assert.deepEqual(store.known(OWNER), { ver: "9" });
    fromServer(`<iq type='set' id='p2' from='alice@example.org'><query xmlns='jabber:iq:roster' ver='10'><item jid='frank@example.org' subscription='to'/></query></iq>`);
    assert.deepEqual(store.item(OWNER, "frank@example.org"), { subscription: "to", ask: undefined, groups: [] });
    fromServer(`<iq type='set' id='p3'><query xmlns='jabber:iq:roster' ver='11'><item jid='bob@example.org' subscription='remove'/></query></iq>`);
    assert.equal(store.item(OWNER, "bob@example.org"), undefined);
    assert.deepEqual(store.known(OWNER), { ver: "11" });
    // Attacker: a stranger routes a "push" to the client.
    fromServer(`<iq type='set' id='x' from='mallory@evil.example/r' to='${JID}'><query xmlns='jabber:iq:roster'><item jid='mallory@evil.example' subscription='both'/></query></iq>`);
    fromServer(`<iq type='set' id='y' from='mallory@evil.example' to='${JID}'><query xmlns='jabber:iq:roster'><item jid='mallory@evil.example' subscription='both'/></query></iq>`);
    assert.equal(store.item(OWNER, "mallory@evil.example"), undefined);
    assert.deepEqual(store.known(OWNER), { ver: "11" });
    // Not even from one of the user's own other resources (a client is not the server).
    fromServer(`<iq type='set' id='w' from='alice@example.org/other' to='${JID}'><query xmlns='jabber:iq:roster'><item jid='mallory@evil.example' subscription='both'/></query></iq>`);
    assert.equal(store.item(OWNER, "mallory@evil.example"), undefined);
    assert.deepEqual(ignored, ["foreign-push", "foreign-push", "foreign-push"]);
    // A push with two items is not a valid push.
    fromServer(`<iq type='set' id='z'><query xmlns='jabber:iq:roster'><item jid='a@b' subscription='both'/><item jid='c@d' subscription='both'/></query></iq>`);
    assert.equal(store.item(OWNER, "a@b"), undefined);
  });

  it("a client cannot write its roster by sending a push or a result itself (inbound)", () => {
    const { store, fromClient } = setup();
    fromClient(`<iq type='set' id='p1'><query xmlns='jabber:iq:roster'><item jid='mallory@evil.example' subscription='both'/></query></iq>`);
    fromClient(`<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>`);
    fromClient(`<iq type='result' id='g'><query xmlns='jabber:iq:roster' ver='1'><item jid='mallory@evil.example' subscription='both'/></query></iq>`);
    assert.equal(store.item(OWNER, "mallory@evil.example"), undefined);
    assert.equal(store.known(OWNER), undefined);
  });

  it("a push to an unknown roster records the item but the roster stays unknown", () => {
    const { store, fromServer } = setup();
    fromServer(`<iq type='set' id='p1'><query xmlns='jabber:iq:roster' ver='3'><item jid='bob@example.org' subscription='both'/></query></iq>`);
    assert.equal(store.item(OWNER, "bob@example.org")?.subscription, "both");
    assert.equal(store.known(OWNER), undefined);
  });

  it("prefixed and explicit-namespace forms are read the same", () => {
    const { store, fromClient, fromServer } = setup();
    fromClient("<c:iq xmlns:c='jabber:client' type='get' id='r1'><r:query xmlns:r='jabber:iq:roster'/></c:iq>");
    fromServer(`<iq xmlns='jabber:client' type='result' id='r1'><r:query xmlns:r='jabber:iq:roster' ver='5'><r:item jid='bob@example.org' subscription='both'><r:group>G</r:group></r:item></r:query></iq>`);
    assert.deepEqual(store.item(OWNER, "bob@example.org"), { subscription: "both", ask: undefined, groups: ["G"] });
    fromServer(`<x:iq xmlns:x='jabber:client' type='set' id='p'><query xmlns='jabber:iq:roster'><item jid='eve@example.org' subscription='to'/></query></x:iq>`);
    assert.equal(store.item(OWNER, "eve@example.org")?.subscription, "to");
    // An item or group in another namespace is not roster content.
    fromServer(`<iq type='set' id='p'><r:query xmlns:r='jabber:iq:roster'><item jid='zed@example.org' subscription='both'/></r:query></iq>`);
    assert.equal(store.item(OWNER, "zed@example.org"), undefined);
    // A query in another namespace with a roster-looking prefix is not a roster.
    fromServer(`<iq type='set' id='p'><r:query xmlns:r='jabber:iq:rosterx'><r:item jid='zed@example.org' subscription='both'/></r:query></iq>`);
    assert.equal(store.item(OWNER, "zed@example.org"), undefined);
  });

  it("pending inbound requests: set by a delivered subscribe, cleared by the user's answer, a withdrawal, or a push showing from/both", () => {
    const { store, fromClient, fromServer } = setup();
    fromServer(`<presence type='subscribe' from='Stranger@Example.net' to='${OWNER}'/>`);
    assert.equal(store.pendingIn(OWNER, "stranger@example.net"), true);
    fromClient(`<presence type='subscribed' to='stranger@example.net'/>`);
    assert.equal(store.pendingIn(OWNER, "stranger@example.net"), false);
    fromServer(`<presence type='subscribe' from='s2@example.net/r' to='${JID}'/>`);
    fromClient(`<p:presence xmlns:p='jabber:client' type='unsubscribed' to='s2@example.net'/>`);
    assert.equal(store.pendingIn(OWNER, "s2@example.net"), false);
    fromServer(`<presence type='subscribe' from='s3@example.net' to='${OWNER}'/>`);
    fromServer(`<presence type='unsubscribe' from='s3@example.net' to='${OWNER}'/>`);
    assert.equal(store.pendingIn(OWNER, "s3@example.net"), false);
    fromServer(`<presence type='subscribe' from='s4@example.net'/>`);
    assert.equal(store.pendingIn(OWNER, "s4@example.net"), true);
    fromServer(`<iq type='set' id='p'><query xmlns='jabber:iq:roster'><item jid='s4@example.net' subscription='from'/></query></iq>`);
    assert.equal(store.pendingIn(OWNER, "s4@example.net"), false);
    // A subscribe from a contact already subscribed to the user is not recorded (the server answers it itself).
    fromServer(`<presence type='subscribe' from='s4@example.net'/>`);
    assert.equal(store.pendingIn(OWNER, "s4@example.net"), false);
    // Presence the client sends is never a request to the user; a subscribe to someone else is not for this owner.
    fromClient(`<presence type='subscribe' to='s5@example.net'/>`);
    fromServer(`<presence type='subscribe' from='s6@example.net' to='other@example.org'/>`);
    assert.equal(store.pendingIn(OWNER, "s5@example.net"), false);
    assert.equal(store.pendingIn("other@example.org", "s6@example.net"), false);
  });

  it("ver: stripped when the proxy has no copy (or another version), kept when it has that version", () => {
    const { fromClient, fromServer } = setup();
    const get = "<iq type='get' id='v1'><query xmlns='jabber:iq:roster' ver='7'/></iq>";
    const rewrite = fromClient(get);
    assert.ok(rewrite);
    const out = rewrite.bytes.toString();
    assert.doesNotMatch(out, /ver=/);
    assert.match(out, /<query xmlns=['"]jabber:iq:roster['"]/);
    assert.match(out, /id=['"]v1['"]/);
    // Prefixed twin: rewritten too, and still a roster get in the right namespace.
    const twin = fromClient("<c:iq xmlns:c='jabber:client' type='get' id='v2'><r:query xmlns:r='jabber:iq:roster' ver='7'/></c:iq>");
    assert.ok(twin);
    const reread = testStanza(twin.bytes.toString());
    assert.equal(reread.kind, "iq");
    assert.equal(reread.firstChildXmlns, "jabber:iq:roster");
    assert.doesNotMatch(twin.bytes.toString(), /ver=/);
    // Learn version 7, then the same get is left alone; another version is not.
    fromServer(RESULT.replace("id='r1'", "id='v2'"));
    assert.equal(fromClient(get), undefined);
    assert.ok(fromClient(get.replace("ver='7'", "ver='6'")));
    // Without ver: nothing to strip.
    assert.equal(fromClient("<iq type='get' id='v3'><query xmlns='jabber:iq:roster'/></iq>"), undefined);
  });

  it("an s2s session or an unbound one learns nothing", () => {
    const { store, learner } = setup();
    learner.observe(testStanza(`<presence type='subscribe' from='x@y' to='${OWNER}'/>`), { id: "s", type: "s2s", jid: undefined }, "inbound");
    learner.observe(testStanza(`<presence type='subscribe' from='x@y' to='${OWNER}'/>`), { id: "s", type: "c2s", jid: undefined }, "outbound");
    assert.equal(store.pendingIn(OWNER, "x@y"), false);
  });
});

describe("LearnedRosters (the firewall's roster provider)", () => {
  it("unknown rosters read as empty and are counted; the four conditions compile and answer", () => {
    const { store, fromClient, fromServer } = setup();
    let unknown = 0;
    const rosters = new LearnedRosters(store, { onUnknown: () => unknown++ });
    const rs = compileRuleSources([{ file: "t.pfw", text: [
      "::deliver", "SUBSCRIBED?", "LOG=subscribed", "", "IN ROSTER GROUP: Friends", "LOG=friends", "", "IN ROSTER?", "LOG=in roster", "",
      "PENDING SUBSCRIPTION FROM SENDER?", "LOG=pending", "",
    ].join("\n") }], { providers: { roster: rosters } });
    assert.deepEqual(rs.errors, []);
    const logs = (from: string) => rs.ruleset!.run("deliver", { stanza: testStanza(`<message from='${from}' to='${JID}'/>`) }).logs.map((l) => l.message);
    assert.deepEqual(logs("bob@example.org/x"), []);
    assert.ok(unknown > 0);
    fromClient("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
    fromServer(RESULT);
    fromServer(`<presence type='subscribe' from='pat@example.net' to='${OWNER}'/>`);
    unknown = 0;
    assert.deepEqual(logs("bob@example.org/x"), ["subscribed", "friends", "in roster"]);
    assert.deepEqual(logs("carol@example.net"), ["in roster"]);
    assert.deepEqual(logs("pat@example.net"), ["pending"]);
    assert.deepEqual(logs("nobody@example.net"), []);
    assert.equal(unknown, 0, "a known roster without the contact is not an unknown lookup");
  });
});

describe("prosody-modules' spam-blocking.pfw", () => {
  it("compiles with the learned rosters; what it still lacks is only the online-sessions provider (TO FULL JID?)", async () => {
    const { readFile } = await import("node:fs/promises");
    const path = "/usr/lib/prosody/modules/mod_firewall/scripts/spam-blocking.pfw";
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch {
      return; // prosody-modules not installed
    }
    const { knowledgeProviders } = await import("./providers.js");
    const without = compileRuleSources([{ file: "spam-blocking.pfw", text }], {});
    assert.ok(without.errors.some((e) => /SUBSCRIBED/.test(e.format())), "without rosters, SUBSCRIBED? is refused");
    const withRosters = compileRuleSources([{ file: "spam-blocking.pfw", text }], { providers: knowledgeProviders() });
    assert.deepEqual(withRosters.errors.map((e) => e.format()).filter((m) => !/TO FULL JID/.test(m)), []);
    const all = compileRuleSources([{ file: "spam-blocking.pfw", text }], { providers: { ...knowledgeProviders(), sessions: { isOnline: () => false } } });
    assert.deepEqual(all.errors.map((e) => e.format()), []);
  });
});
