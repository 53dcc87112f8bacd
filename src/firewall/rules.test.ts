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

async function load(files: string[], options: LoadOptions = {}): Promise<CompiledRuleSet> {
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

  it("loads with no providers and no warnings", async () => {
    const r = await loadRuleFiles([file]);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings.map((w) => w.format()), []);
    assert.equal(r.ruleset?.ruleCount, 5);
  });

  it("rule 1: 10 subscription requests from one account, then one per 10 s", async () => {
    const clock = new FakeClock();
    const rs = await load([file], { clock });
    const sub = "<presence type='subscribe' from='bot1@spam.example' to='u@local.example'/>";
    const first = send(rs, "deliver", sub, 11);
    assert.deepEqual(counts(first), { pass: 10, bounce: 1 });
    assert.match(first[10]!.bounce!.stanza, /Too many subscription requests</);
    assert.equal(send(rs, "deliver", sub.replace("u@", "v@"), 1)[0]!.verdict, "bounce", "keyed by sender, not recipient");
    clock.t += 10_000;
    assert.deepEqual(counts(send(rs, "deliver", sub, 2)), { pass: 1, bounce: 1 });
  });

  it("rule 2: 60 subscription requests from one domain, then one per second", async () => {
    const rs = await load([file], { clock: new FakeClock() });
    const results: FirewallResult[] = [];
    for (let i = 0; i < 61; i++) results.push(...send(rs, "deliver", `<presence type='subscribe' from='bot${i}@spam.example' to='u@local.example'/>`, 1));
    assert.deepEqual(counts(results), { pass: 60, bounce: 1 });
    assert.match(results[60]!.bounce!.stanza, /from your server/);
    assert.equal(send(rs, "deliver", "<presence type='subscribe' from='a@fine.example' to='u@local.example'/>", 1)[0]!.verdict, "pass");
  });

  it("rule 3: message floods from one address are dropped after 30, except groupchat and own-account traffic", async () => {
    const rs = await load([file], { clock: new FakeClock() });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='x@remote.example/r' to='u@local.example/pc'><body>hi</body></message>", 31)), { pass: 30, drop: 1 });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='groupchat' from='room@muc.example/nick' to='u@local.example/pc'/>", 100)), { pass: 100 });
    assert.deepEqual(counts(send(rs, "deliver", "<message from='u@local.example' to='u@local.example/pc'><result xmlns='urn:xmpp:mam:2'/></message>", 100)), { pass: 100 });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='x@remote.example/other' to='u@local.example/pc'/>", 1)), { pass: 1 });
  });

  it("rule 4: a local account sending subscription requests in bulk", async () => {
    const rs = await load([file], { clock: new FakeClock() });
    const origin = c2s("u@local.example/pc");
    const r = send(rs, "preroute", "<presence type='subscribe' to='x@remote.example'/>", 11, origin);
    assert.deepEqual(counts(r), { pass: 10, bounce: 1 });
    assert.match(r[10]!.bounce!.stanza, /^<presence to='u@local.example\/pc' from='x@remote.example' type='error'>.*You are sending too many subscription requests/);
  });

  it("rule 5: a local account sending messages faster than 30 at once / 5 per second", async () => {
    const clock = new FakeClock();
    const rs = await load([file], { clock });
    const origin = c2s("u@local.example/pc");
    const r = send(rs, "preroute", "<message type='chat' to='x@remote.example' id='m'><body>spam</body></message>", 31, origin);
    assert.deepEqual(counts(r), { pass: 30, bounce: 1 });
    assert.match(r[30]!.bounce!.stanza, /Sending too fast!/);
    clock.t += 1000;
    assert.deepEqual(counts(send(rs, "preroute", "<message to='x@remote.example'/>", 6, origin)), { pass: 5, bounce: 1 });
    assert.deepEqual(counts(send(rs, "preroute", "<message to='x@remote.example'/>", 1, c2s("other@local.example/pc"))), { pass: 1 });
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
    assert.ok(files.length >= 9);
    for (const f of files) {
      const r = await loadRuleFiles([`${EXAMPLES}${f}`], undefined, { providers });
      assert.deepEqual(r.errors.map((e) => e.format()), [], f);
    }
  });

  it("block-spammer.pfw", async () => {
    const rs = await load([`${EXAMPLES}block-spammer.pfw`]);
    assert.equal(send(rs, "deliver", "<message from='spammer@example.com/x' to='u@local.example'/>", 1)[0]!.verdict, "drop");
    assert.equal(send(rs, "deliver", "<message from='spammer@example.com.evil/x' to='u@local.example'/>", 1)[0]!.verdict, "pass");
  });

  it("honeypot.pfw marks the origin and drops what it sends next", async () => {
    const rs = await load([`${EXAMPLES}honeypot.pfw`], { clock: new FakeClock() });
    const origin: OriginSession = { type: "s2sin", domain: "spam.example", ip: "198.51.100.1", authenticated: true, marks: new Map() };
    const trap = rs.run("deliver", { stanza: testStanza("<message from='x@spam.example' to='honeypot@example.com'><body>buy</body></message>"), origin });
    assert.equal(trap.verdict, "drop");
    assert.deepEqual(trap.emitted.map((e) => [e.kind, e.to]), [["report", "antispam.example.com"]]);
    assert.equal(rs.run("deliver", { stanza: testStanza("<message from='y@spam.example' to='u@example.com'/>"), origin }).verdict, "drop");
  });

  it("content-scan.pfw", async () => {
    const rs = await load([`${EXAMPLES}content-scan.pfw`]);
    assert.equal(send(rs, "deliver", "<message from='a@b'><body>an examplespamword here</body></message>", 1)[0]!.verdict, "bounce");
    assert.equal(send(rs, "deliver", "<message from='a@b'><body>http://a.example http://b.example</body></message>", 1)[0]!.bounce?.text, "Up to one HTTP URL is allowed in messages");
    assert.equal(send(rs, "deliver", "<message from='a@b'><body>see http://a.example</body></message>", 1)[0]!.verdict, "pass");
  });

  it("spam-blocking.pfw with its add-ons", async () => {
    const rs = await load(["spam-blocking.pfw", "spam-blocklist.pfw", "spam-strip-xhtml.pfw"].map((f) => `${EXAMPLES}${f}`), { providers });
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
    const rs = await load([`${EXAMPLES}strangers.pfw`], { providers, clock: new FakeClock() });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='s@x.example/r' to='u@local.example'/>", 6)), { pass: 5, bounce: 1 });
    assert.deepEqual(counts(send(rs, "deliver", "<message type='chat' from='friend@remote.example/r' to='u@local.example'/>", 6)), { pass: 6 });
  });
});
