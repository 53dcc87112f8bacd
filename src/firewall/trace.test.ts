// traceStanzas / traceRuleSet: framing of bare stanzas and whole streams,
// per-stanza verdicts, rules, actions and emitted stanzas in both output
// formats, origin sessions kept across the input, and error reporting.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeClock } from "../../test/helpers/fake-clock.js";
import { compileRuleSources } from "./compile.js";
import { headerInsertPoint, traceRuleSet, traceStanzas, type TraceRecord } from "./trace.js";

function rules(text: string, clock = new FakeClock()) {
  const r = compileRuleSources([{ file: "t.pfw", text }], { clock });
  assert.deepEqual(r.errors.map((e) => e.format()), []);
  return r.ruleset!;
}

const BOUNCE_CHAT = "KIND: message\nTYPE: chat\nBOUNCE=policy-violation (no chat)\n\nFROM: spammer@example.com\nDROP.\n";

const INPUT = [
  "<message to='a@localhost' from='b@example.com' type='chat' id='1'><body>hi</body></message>",
  "<message to='a@localhost' from='spammer@example.com' id='2'><body>hi</body></message>",
  "",
  "<presence to='a@localhost' from='b@example.com/x'/>",
].join("\n");

describe("headerInsertPoint", () => {
  it("finds where a synthetic stream header goes, or that the input has one", () => {
    assert.equal(headerInsertPoint(Buffer.from("<message/>")), 0);
    assert.equal(headerInsertPoint(Buffer.from("\n  <iq/>")), 3);
    assert.equal(headerInsertPoint(Buffer.from("<?xml version='1.0'?>\n<iq/>")), 22);
    assert.equal(headerInsertPoint(Buffer.from("<?xml version='1.0'?><stream:stream xmlns='jabber:client'>")), undefined);
    assert.equal(headerInsertPoint(Buffer.from(" <stream xmlns='http://etherx.jabber.org/streams'>")), undefined);
    assert.equal(headerInsertPoint(Buffer.from("<streams/>")), 0);
  });
});

describe("traceRuleSet", () => {
  it("traces bare stanzas: verdicts, matched rules, actions, the bounce verbatim, input lines", () => {
    const r = traceRuleSet(rules(BOUNCE_CHAT), INPUT, { chain: "deliver", format: "json" });
    assert.equal(r.exitCode, 0);
    assert.deepEqual(
      r.stanzas.map((s) => [s.index, s.line, s.name, s.id, s.verdict, s.by]),
      [
        [1, 1, "message", "1", "bounce", "t.pfw:1"],
        [2, 2, "message", "2", "drop", "t.pfw:5"],
        [3, 4, "presence", undefined, "pass", undefined],
      ],
    );
    const records = r.lines.map((l) => JSON.parse(l) as TraceRecord);
    assert.deepEqual(records[0], {
      n: 1,
      line: 1,
      name: "message",
      id: "1",
      type: "chat",
      from: "b@example.com",
      to: "a@localhost",
      chain: "deliver",
      verdict: "bounce",
      defaulted: false,
      by: "t.pfw:1",
      rules: ["t.pfw:1"],
      actions: ["t.pfw:1 BOUNCE"],
      reply:
        "<message to='b@example.com' from='a@localhost' id='1' type='error'><error type='modify'>" +
        "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no chat</text></error></message>",
      emitted: [],
      rewrite: null,
      disconnect: null,
      logs: [],
      marks: [],
      tags: [],
    });
    // Every record has the same keys, in the same order.
    for (const rec of records) assert.deepEqual(Object.keys(rec), Object.keys(records[0]!));
  });

  it("prints a readable block per stanza and a summary", () => {
    const r = traceRuleSet(rules(BOUNCE_CHAT), INPUT, { chain: "deliver" });
    assert.deepEqual(r.lines, [
      "#1 line 1 message id=1 type=chat from=b@example.com to=a@localhost",
      "   rule     t.pfw:1 BOUNCE",
      "   verdict  bounce (t.pfw:1)",
      "   bounce   <message to='b@example.com' from='a@localhost' id='1' type='error'><error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no chat</text></error></message>",
      "#2 line 2 message id=2 from=spammer@example.com to=a@localhost",
      "   rule     t.pfw:5 DROP",
      "   verdict  drop (t.pfw:5)",
      "#3 line 4 presence from=b@example.com/x to=a@localhost",
      "   verdict  pass",
      "3 processed: 1 pass, 1 drop, 1 bounce",
    ]);
  });

  it("accepts a whole stream, and takes the content namespace from its header", () => {
    const rs = rules("KIND: message\nDROP.\n");
    const stream =
      "<?xml version='1.0'?>\n<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>\n" +
      "<message from='a@remote.example' to='b@localhost' id='x'/>\n<db:result xmlns:db='jabber:server:dialback' to='localhost'/>\n</stream:stream>";
    const r = traceRuleSet(rs, stream, { chain: "deliver" });
    assert.equal(r.exitCode, 0, r.errors.join("\n"));
    assert.deepEqual(r.stanzas.map((s) => [s.line, s.name, s.stanza, s.verdict]), [
      [3, "message", true, "drop"],
      [4, "result", false, "pass"],
    ]);
    assert.ok(r.lines.includes("   (not a stanza: never reaches a chain)"));
    // The same bare stanzas would be jabber:client content and not match in a jabber:server stream.
    const client = traceRuleSet(rs, "<message xmlns='jabber:server' id='y'/>", { chain: "deliver" });
    assert.equal(client.stanzas[0]!.stanza, false);
    assert.equal(traceRuleSet(rs, "<message id='z'/>", { chain: "deliver", streamNs: "jabber:server" }).stanzas[0]!.verdict, "drop");
  });

  it("bare stanzas may follow an XML declaration", () => {
    const r = traceRuleSet(rules("DROP.\n"), "<?xml version='1.0'?>\n<iq type='get' id='1'/>", { chain: "deliver" });
    assert.deepEqual(r.stanzas.map((s) => [s.line, s.verdict]), [[2, "drop"]]);
  });

  it("reports bad input at its own line and column (not the synthetic header's), after tracing what came before", () => {
    const rs = rules("DROP.\n");
    const r = traceRuleSet(rs, "<message id='1'/>\n<message id='2'><!-- no --></message>\n<message id='3'/>", { chain: "deliver" });
    assert.equal(r.exitCode, 1);
    assert.deepEqual(r.stanzas.map((s) => s.id), ["1"]);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]!, /^<stdin>:2:19: XML construct not allowed in XMPP: comment$/);
    const cut = traceRuleSet(rs, "<message id='1'/>\n<message id='2'>", { chain: "deliver" });
    assert.deepEqual([cut.exitCode, cut.stanzas.length], [1, 1]);
    assert.match(cut.errors[0]!, /^<stdin>:2:17: stream ended inside an element/);
  });

  it("preroute: the c2s session's JID is stamped as from, and its own bare JID as to counts as absent", () => {
    const rs = rules("::preroute\nTO SELF?\nLOG=self from $<@from>\n\nFROM: alice@localhost/phone\nKIND: message\nDROP.\n");
    const r = traceRuleSet(rs, "<iq type='get' to='alice@localhost' id='v'/><message to='bob@localhost' id='m'/>", {
      chain: "preroute",
      session: { type: "c2s", jid: "alice@localhost/phone", ip: "192.0.2.1" },
    });
    assert.deepEqual(r.stanzas.map((s) => [s.id, s.from, s.verdict]), [
      ["v", "alice@localhost/phone", "pass"],
      ["m", "alice@localhost/phone", "drop"],
    ]);
    assert.deepEqual(r.stanzas[0]!.result.logs.map((l) => l.message), ["self from alice@localhost/phone"]);
  });

  it("keeps the origin session for the whole input, so marks persist (honeypot)", () => {
    const rs = rules("ORIGIN MARKED: spammer\nDROP.\n\nKIND: message\nTO: honeypot@localhost\nMARK ORIGIN=spammer\n");
    const input = "<message to='a@localhost' id='1'/><message to='honeypot@localhost' id='2'/><message to='a@localhost' id='3'/>";
    const r = traceRuleSet(rs, input, { chain: "deliver", session: { type: "s2sin", domain: "remote.example" }, format: "json" });
    assert.deepEqual(r.stanzas.map((s) => s.verdict), ["pass", "pass", "drop"]);
    assert.deepEqual((JSON.parse(r.lines[1]!) as TraceRecord).marks, [{ op: "mark", scope: "origin", name: "spammer", rule: "t.pfw:4" }]);
    // Without a session (deliver on a c2s link) the mark is a logged no-op.
    const none = traceRuleSet(rs, input, { chain: "deliver" });
    assert.deepEqual(none.stanzas.map((s) => s.verdict), ["pass", "pass", "pass"]);
  });

  it("LIMIT buckets run on the rule set's clock across the stanzas", () => {
    const clock = new FakeClock();
    const rs = rules("%RATE r: 1 (burst 2)\n\nKIND: message\nLIMIT: r\nBOUNCE=policy-violation (Too fast)\n", clock);
    const input = "<message from='x@a' to='y@b' id='1'/><message from='x@a' to='y@b' id='2'/><message from='x@a' to='y@b' id='3'/>";
    assert.deepEqual(traceRuleSet(rs, input, { chain: "deliver" }).stanzas.map((s) => s.verdict), ["pass", "pass", "bounce"]);
    clock.advance(1000);
    assert.deepEqual(traceRuleSet(rs, input, { chain: "deliver" }).stanzas.map((s) => s.verdict), ["pass", "bounce", "bounce"]);
  });

  it("shows DEFAULT, REDIRECT, REPLY, STRIP, LOG and DISCONNECT outcomes", () => {
    const rs = rules(
      [
        "KIND: iq\nDEFAULT.",
        "TO: old@localhost\nREDIRECT=new@localhost",
        "KIND: presence\nREPLY=hello\nLOG=[warn] presence from $<@from>\nTAG TRACE=p",
        "TYPE: headline\nDISCONNECT=policy-violation (go away)",
        "KIND: message\nSTRIP=html http://jabber.org/protocol/xhtml-im",
      ].join("\n\n"),
    );
    const input = [
      "<iq type='get' from='x@remote' to='a@localhost' id='i'/>",
      "<message from='x@remote' to='old@localhost' id='r'/>",
      "<presence from='x@remote/r' to='a@localhost' id='p'/>",
      "<message from='x@remote' to='a@localhost' type='headline' id='h'/>",
      "<message from='x@remote' to='a@localhost' id='s'><body>b</body><html xmlns='http://jabber.org/protocol/xhtml-im'/></message>",
    ].join("\n");
    const r = traceRuleSet(rs, input, { chain: "deliver", format: "json" });
    const rec = r.lines.map((l) => JSON.parse(l) as TraceRecord);
    assert.deepEqual(rec.map((x) => x.verdict), ["bounce", "redirect", "pass", "disconnect", "pass"]);
    assert.equal(rec[0]!.defaulted, true);
    assert.match(rec[0]!.reply!, /<service-unavailable /);
    assert.deepEqual(rec[1]!.emitted, [
      { kind: "redirect", via: "route", to: "new@localhost", rule: "t.pfw:4", stanza: "<message from='x@remote' to='new@localhost' id='r'/>" },
    ]);
    assert.deepEqual(rec[2]!.emitted.map((e) => [e.kind, e.via, e.stanza]), [
      ["reply", "origin", "<presence to='x@remote/r' from='a@localhost' id='p'><body>hello</body></presence>"],
    ]);
    assert.deepEqual(rec[2]!.logs, [{ level: "warn", rule: "t.pfw:7", message: "presence from x@remote/r" }]);
    assert.deepEqual(rec[2]!.tags, ["p"]);
    assert.deepEqual(rec[3]!.disconnect, { condition: "policy-violation", text: "go away" });
    assert.equal(rec[4]!.rewrite, "<message from='x@remote' to='a@localhost' id='s'><body>b</body></message>");
    const human = traceRuleSet(rs, input, { chain: "deliver" }).lines;
    assert.ok(human.includes("   verdict  bounce (t.pfw:1, DEFAULT)"));
    assert.ok(human.includes("   stream   policy-violation (go away)"));
    assert.ok(human.includes("   rewrite  <message from='x@remote' to='a@localhost' id='s'><body>b</body></message>"));
    assert.equal(human.at(-1), "5 processed: 2 pass, 1 bounce, 1 redirect, 1 disconnect");
  });

  it("stamps --from on stanzas without one, in any chain", () => {
    const rs = rules("FROM: <*>@evil.example\nDROP.\n");
    const r = traceRuleSet(rs, "<message to='a@localhost' id='1'/><message from='ok@good.example' id='2'/>", { chain: "deliver", from: "x@evil.example" });
    assert.deepEqual(r.stanzas.map((s) => s.verdict), ["drop", "pass"]);
  });
});

describe("traceStanzas", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "xg-trace-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("loads files like the proxy, passes warnings through, and traces", async () => {
    const f = join(dir, "a.pfw");
    await writeFile(f, BOUNCE_CHAT + "\nJUMP CHAIN=user/none\n");
    const r = await traceStanzas([f], Buffer.from(INPUT), { chain: "deliver" });
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.warnings, [`${f}:8:1: warning: JUMP CHAIN=user/none: no loaded file has rules in this user chain, so the jump does nothing`]);
    assert.deepEqual(r.stanzas.map((s) => s.verdict), ["bounce", "drop", "pass"]);
  });

  it("traces nothing and exits 1 when the rules do not load", async () => {
    const f = join(dir, "bad.pfw");
    await writeFile(f, "KIND: message\n\nDROP.\n");
    const r = await traceStanzas([f], INPUT, { chain: "deliver", format: "json" });
    assert.equal(r.exitCode, 1);
    assert.deepEqual(r.lines, []);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]!, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:1:1: error: `));
  });
});
