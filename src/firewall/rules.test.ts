// The shipped rule files: every rule of rules/default.pfw has a test here, and
// every rules/examples/*.pfw loads (with the providers it needs) and does
// what its comment says.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { describe, it } from "node:test";
import type { CompiledRuleSet } from "./compile.js";
import type { FirewallProviders, FirewallResult, OriginSession, RunChain } from "./context.js";
import { loadRuleFiles, type LoadOptions } from "./load.js";
import { testStanza } from "../../test/helpers/test-stanza.js";

const RULES = new URL("../../rules/", import.meta.url).pathname;
const EXAMPLES = `${RULES}examples/`;

class FakeClock {
  t = 0;
  now = (): number => this.t;
}

async function loadWith(files: string[], options: LoadOptions = {}): Promise<CompiledRuleSet> {
  const r = await loadRuleFiles(files, undefined, options);
  assert.deepEqual(r.errors.map((e) => e.format()), []);
  return r.ruleset!;
}

function c2s(jid: string): OriginSession {
  return { type: "c2s", jid, ip: "192.0.2.1", authenticated: true, marks: new Map() };
}

function send(rs: CompiledRuleSet, chain: RunChain, xml: string, n: number, origin?: OriginSession): FirewallResult[] {
  const out: FirewallResult[] = [];
  for (let i = 0; i < n; i++) {
    const stanza = testStanza(xml, origin?.jid ? { sessionJid: origin.jid } : {});
    out.push(rs.run(chain, { stanza, origin }));
  }
  return out;
}

function counts(results: FirewallResult[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const r of results) c[r.verdict] = (c[r.verdict] ?? 0) + 1;
  return c;
}

describe("rules/default.pfw", () => {
  const file = `${RULES}default.pfw`;
  // What the proxy learns by default (docs/knowledge.md): u@local.example has
  // friend@remote.example as a contact and is online as u@local.example/pc.
  const knowledge: FirewallProviders = {
    roster: { entry: (owner, contact) => (owner === "u@local.example" && contact === "friend@remote.example" ? { subscription: "both", groups: [] } : undefined) },
    sessions: { isOnline: (jid) => jid === "u@local.example/pc" },
  };
  const load = (options: LoadOptions = {}): Promise<CompiledRuleSet> => loadWith([file], { providers: knowledge, ...options });

  it("loads with the knowledge providers and no warnings", async () => {
    const r = await loadRuleFiles([file], undefined, { providers: knowledge });
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings.map((w) => w.format()), []);
    assert.equal(r.ruleset?.ruleCount, 8);
  });

  it("without rosters or sessions it is refused with the line and the reason", async () => {
    const r = await loadRuleFiles([file]);
    assert.ok(r.errors.some((e) => /default\.pfw:\d+:\d+: .*SUBSCRIBED refused/.test(e.format())), r.errors.map((e) => e.format()).join("\n"));
    assert.ok(r.errors.some((e) => /TO FULL JID refused/.test(e.format())));
  });

  it("rule 1: 10 subscription requests from one account, then one per 10 s", async () => {
    const clock = new FakeClock();
    const rs = await load({ clock });
    const sub = "<presence type='subscribe' from='bot1@spam.example' to='u@local.example'/>";
    const first = send(rs, "deliver", sub, 11);
    assert.deepEqual(counts(first), { pass: 10, bounce: 1 });
    assert.match(first[10]!.bounce!.stanza, /Too many subscription requests</);
    assert.equal(send(rs, "deliver", sub.replace("u@", "v@"), 1)[0]!.verdict, "bounce", "keyed by sender, not recipient");
    clock.t += 10_000;
    assert.deepEqual(counts(send(rs, "deliver", sub, 2)), { pass: 1, bounce: 1 });
  });

  it("rule 2: 60 subscription requests from one domain, then one per second", async () => {
    const rs = await load({ clock: new FakeClock() });
    const results: FirewallResult[] = [];
    for (let i = 0; i < 61; i++) results.push(...send(rs, "deliver", `<presence type='subscribe' from='bot${i}@spam.example' to='u@local.example'/>`, 1));
    assert.deepEqual(counts(results), { pass: 60, bounce: 1 });
    assert.match(results[60]!.bounce!.stanza, /from your server/);
    assert.equal(send(rs, "deliver", "<presence type='subscribe' from='a@fine.example' to='u@local.example'/>", 1)[0]!.verdict, "pass");
  });

  it("rule 3: message floods from one address are dropped after 30, except groupchat and own-account traffic", async () => {
    const rs = await load({ clock: new FakeClock() });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='x@remote.example/r' to='u@local.example/pc'><body>hi</body></message>", 31)), { pass: 30, drop: 1 });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='groupchat' from='room@muc.example/nick' to='u@local.example/pc'/>", 100)), { pass: 100 });
    assert.deepEqual(counts(send(rs, "deliver", "<message from='u@local.example' to='u@local.example/pc'><result xmlns='urn:xmpp:mam:2'/></message>", 100)), { pass: 100 });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='x@remote.example/other' to='u@local.example/pc'/>", 1)), { pass: 1 });
  });

  it("rule 4: a local account sending subscription requests in bulk", async () => {
    const rs = await load({ clock: new FakeClock() });
    const origin = c2s("u@local.example/pc");
    const r = send(rs, "preroute", "<presence type='subscribe' to='x@remote.example'/>", 11, origin);
    assert.deepEqual(counts(r), { pass: 10, bounce: 1 });
    assert.match(r[10]!.bounce!.stanza, /^<presence to='u@local.example\/pc' from='x@remote.example' type='error'>.*You are sending too many subscription requests/);
  });

  it("rule 5: a local account sending messages faster than 30 at once / 5 per second", async () => {
    const clock = new FakeClock();
    const rs = await load({ clock });
    const origin = c2s("u@local.example/pc");
    const r = send(rs, "preroute", "<message type='chat' to='x@remote.example' id='m'><body>spam</body></message>", 31, origin);
    assert.deepEqual(counts(r), { pass: 30, bounce: 1 });
    assert.match(r[30]!.bounce!.stanza, /Sending too fast!/);
    clock.t += 1000;
    assert.deepEqual(counts(send(rs, "preroute", "<message to='x@remote.example'/>", 6, origin)), { pass: 5, bounce: 1 });
    assert.deepEqual(counts(send(rs, "preroute", "<message to='x@remote.example'/>", 1, c2s("other@local.example/pc"))), { pass: 1 });
  });

  it("rule 6: headline and normal messages from strangers are bounced; contacts, full JIDs, servers and invitations are not", async () => {
    const rs = await load({ clock: new FakeClock() });
    const one = (xml: string): FirewallResult => send(rs, "deliver", xml, 1)[0]!;
    for (const type of ["headline", "normal"]) {
      const r = one(`<message type='${type}' from='s@elsewhere.example/x' to='u@local.example' id='h'><body>win</body></message>`);
      assert.equal(r.verdict, "bounce", type);
      assert.equal(r.bounce?.text, "Only contacts may send this kind of message");
      assert.match(r.bounce!.stanza, /<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/);
    }
    assert.equal(one("<message from='s@elsewhere.example/x' to='u@local.example'><body>no type is normal</body></message>").verdict, "bounce");
    assert.equal(one("<message type='headline' from='friend@remote.example/x' to='u@local.example'/>").verdict, "pass", "a contact");
    assert.equal(one("<message type='headline' from='s@elsewhere.example/x' to='u@local.example/pc'/>").verdict, "pass", "to an online full JID");
    assert.equal(one("<message type='headline' from='pubsub.elsewhere.example' to='u@local.example'/>").verdict, "pass", "a service, not an account");
    assert.equal(one("<message type='headline' from='u@local.example/phone' to='u@local.example'/>").verdict, "pass", "the user's own account");
    assert.equal(one("<message from='room@muc.elsewhere.example' to='u@local.example'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='friend@remote.example'/></x></message>").verdict, "pass", "an invitation is rule 7's");
  });

  it("rule 6 twins: the same headline written another way is bounced the same", async () => {
    const rs = await load({ clock: new FakeClock() });
    for (const xml of [
      "<cl:message xmlns:cl='jabber:client' type='headline' from='s@elsewhere.example/x' to='u@local.example'><cl:body>win</cl:body></cl:message>",
      "<message xmlns='jabber:client' type='headline' from='S@ELSEWHERE.example/x' to='U@local.example'><body>win</body></message>",
      "<message type='headline' from='s@elsewhere.example/x' to='u@local.example/other'><body>a resource that is not online</body></message>",
    ]) {
      assert.equal(send(rs, "deliver", xml, 1)[0]!.verdict, "bounce", xml);
    }
  });

  it("rule 7: a stranger's chat gets the first-contact allowance (10, then one per 5 s, across recipients); contacts are not counted", async () => {
    const clock = new FakeClock();
    const rs = await load({ clock });
    const results: FirewallResult[] = [];
    for (let i = 0; i < 40; i++) results.push(...send(rs, "deliver", `<message type='chat' from='bot@spam.example/r${i}' to='user${i % 4}@local.example'><body>buy</body></message>`, 1));
    assert.deepEqual(counts(results), { pass: 10, drop: 30 });
    clock.t += 5000;
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='bot@spam.example/r' to='u@local.example'/>", 2)), { pass: 1, drop: 1 });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='friend@remote.example/r' to='u@local.example'><body>hi</body></message>", 30)), { pass: 30 }, "a contact");
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='bot@spam.example/r' to='u@local.example/pc'/>", 20)), { pass: 20 }, "a reply to the user's online client");
    assert.deepEqual(counts(send(rs, "deliver", "<message type='groupchat' from='room@muc.example/bot' to='u@local.example'/>", 20)), { pass: 20 });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='other@spam.example/r' to='u@local.example'/>", 11)), { pass: 10, drop: 1 }, "each stranger has an allowance of its own");
  });

  it("rule 8: a stranger's presence is dropped except subscription management", async () => {
    const rs = await load({ clock: new FakeClock() });
    const one = (xml: string): string => send(rs, "deliver", xml, 1)[0]!.verdict;
    assert.equal(one("<presence from='s@elsewhere.example/x' to='u@local.example'/>"), "drop");
    assert.equal(one("<presence type='unavailable' from='s@elsewhere.example/x' to='u@local.example'/>"), "drop");
    for (const type of ["subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe"]) {
      assert.equal(one(`<presence type='${type}' from='s@elsewhere.example/x' to='u@local.example'/>`), "pass", type);
    }
    assert.equal(one("<presence from='friend@remote.example/x' to='u@local.example'/>"), "pass", "a contact");
    assert.equal(one("<presence from='room@muc.example/nick' to='u@local.example/pc'/>"), "pass", "a room to the joined client");
    assert.equal(one("<p:presence xmlns:p='jabber:client' from='s@elsewhere.example/x' to='u@local.example'/>"), "drop", "prefixed twin");
  });
});

describe("rules/examples", () => {
  const providers: FirewallProviders = {
    roster: { entry: (owner, contact) => (owner === "u@local.example" && contact === "friend@remote.example" ? { subscription: "both", groups: [] } : undefined) },
    sessions: { isOnline: (jid) => jid === "u@local.example/pc" },
    remoteLists: { open: () => ({ contains: (d) => d === "spam.example" }) },
  };

  it("every example loads", async () => {
    const files = readdirSync(EXAMPLES).filter((f) => f.endsWith(".pfw"));
    assert.ok(files.length >= 6);
    for (const f of files) {
      const r = await loadRuleFiles([`${EXAMPLES}${f}`], undefined, { providers });
      assert.deepEqual(r.errors.map((e) => e.format()), [], f);
    }
  });

  it("block-spammer.pfw", async () => {
    const rs = await loadWith([`${EXAMPLES}block-spammer.pfw`]);
    assert.equal(send(rs, "deliver", "<message from='spammer@example.com/x' to='u@local.example'/>", 1)[0]!.verdict, "drop");
    assert.equal(send(rs, "deliver", "<message from='spammer@example.com.evil/x' to='u@local.example'/>", 1)[0]!.verdict, "pass");
  });

  it("honeypot.pfw marks the origin and drops what it sends next", async () => {
    const rs = await loadWith([`${EXAMPLES}honeypot.pfw`], { clock: new FakeClock() });
    const origin: OriginSession = { type: "s2sin", domain: "spam.example", ip: "198.51.100.1", authenticated: true, marks: new Map() };
    const trap = rs.run("deliver", { stanza: testStanza("<message from='x@spam.example' to='honeypot@example.com'><body>buy</body></message>"), origin });
    assert.equal(trap.verdict, "drop");
    assert.deepEqual(trap.emitted.map((e) => [e.kind, e.to]), [["report", "antispam.example.com"]]);
    assert.equal(rs.run("deliver", { stanza: testStanza("<message from='y@spam.example' to='u@example.com'/>"), origin }).verdict, "drop");
  });

  it("content-scan.pfw", async () => {
    const rs = await loadWith([`${EXAMPLES}content-scan.pfw`]);
    assert.equal(send(rs, "deliver", "<message from='a@b'><body>an examplespamword here</body></message>", 1)[0]!.verdict, "bounce");
    assert.equal(send(rs, "deliver", "<message from='a@b'><body>http://a.example http://b.example</body></message>", 1)[0]!.bounce?.text, "Up to one HTTP URL is allowed in messages");
    assert.equal(send(rs, "deliver", "<message from='a@b'><body>see http://a.example</body></message>", 1)[0]!.verdict, "pass");
  });

  it("prosody-modules' spam-blocking.pfw with its add-ons, as installed and unchanged", async () => {
    // The Debian package prosody-modules ships them; .ci/run installs it.
    const scripts = "/usr/lib/prosody/modules/mod_firewall/scripts/";
    const rs = await loadWith(["spam-blocking.pfw", "spam-blocklists.pfw", "spam-strip-xhtml.pfw"].map((f) => `${scripts}${f}`), { providers });
    const v = (xml: string) => rs.run("deliver", { stanza: testStanza(xml) });
    assert.equal(v("<message type='normal' from='s@elsewhere.example/x' to='u@local.example'><body>hi</body></message>").verdict, "bounce", "non-chat from a stranger");
    assert.equal(v("<message type='normal' from='friend@remote.example/x' to='u@local.example'/>").verdict, "pass", "subscribed");
    assert.equal(v("<message type='normal' from='s@elsewhere.example/x' to='u@local.example/pc'/>").verdict, "pass", "to an online full JID");
    const chat = v("<message type='chat' from='s@elsewhere.example/x' to='u@local.example'><body>hi</body><html xmlns='http://jabber.org/protocol/xhtml-im'/></message>");
    assert.equal(chat.verdict, "pass");
    assert.equal(chat.rewrite, "<message type='chat' from='s@elsewhere.example/x' to='u@local.example'><body>hi</body></message>");
    assert.equal(v("<presence type='probe' from='s@elsewhere.example/x' to='u@local.example'/>").verdict, "drop");
    const iq = v("<iq type='get' id='1' from='s@spam.example/x' to='u@local.example'/>");
    assert.equal(iq.bounce?.text, "Your server is blocked due to spam");
  });

  it("office-hours.pfw loads with a portability warning", async () => {
    const r = await loadRuleFiles([`${EXAMPLES}office-hours.pfw`]);
    assert.equal(r.warnings.length, 2);
  });

  it("strangers.pfw limits strangers only", async () => {
    const rs = await loadWith([`${EXAMPLES}strangers.pfw`], { providers, clock: new FakeClock() });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='s@x.example/r' to='u@local.example'/>", 6)), { pass: 5, bounce: 1 });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='friend@remote.example/r' to='u@local.example'/>", 6)), { pass: 6 });
  });
});
