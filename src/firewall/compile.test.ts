// CompiledRuleSet as a whole: works over the real StanzaView implementation,
// is frozen, lists its rules for metrics, reports diagnostics in file order,
// and never touches nonzas or chains without rules.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Stanza } from "../xml/stanza.js";
import { compileRuleSources } from "./compile.js";

describe("CompiledRuleSet", () => {
  const src = [
    { file: "a.pfw", text: "%SEARCH body: body#\n%PATTERN url: https?://%S+\n\nCOUNT: url in body > 0\nBOUNCE=policy-violation (No links)\n\n::preroute\nKIND: iq\nDROP." },
    { file: "b.pfw", text: "::user/x\nDROP." },
  ];

  it("runs over the framer's StanzaView (lazy head, real ltx tree)", () => {
    const rs = compileRuleSources(src).ruleset!;
    const bytes = Buffer.from("<message to='b@example.net' id='9'><body>see https://spam.example</body></message>");
    const stanza = new Stanza(bytes, "jabber:client", "a@example.com/r");
    const r = rs.run("deliver", { stanza });
    assert.equal(r.verdict, "bounce");
    assert.equal(
      r.bounce?.stanza,
      "<message to='a@example.com/r' from='b@example.net' id='9' type='error'><error type='modify'>" +
        "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>No links</text></error></message>",
    );
    assert.equal(rs.run("deliver", { stanza: new Stanza(Buffer.from("<message><body>plain</body></message>"), "jabber:client") }).verdict, "pass");
  });

  it("is frozen and lists its rules", () => {
    const rs = compileRuleSources(src).ruleset!;
    assert.ok(Object.isFrozen(rs));
    assert.ok(Object.isFrozen(rs.chains.get("deliver")));
    assert.deepEqual(rs.rules().map((r) => [r.id, r.chain]), [
      ["a.pfw:4", "deliver"],
      ["a.pfw:8", "preroute"],
      ["b.pfw:2", "user/x"],
    ]);
    assert.equal(rs.ruleCount, 3);
    assert.equal(rs.hasChain("deliver_remote"), false);
    assert.equal(rs.run("deliver_remote", { stanza: new Stanza(Buffer.from("<message/>"), "jabber:client") }).verdict, "pass");
  });

  it("skips nonzas", () => {
    const rs = compileRuleSources([{ file: "a.pfw", text: "DROP." }]).ruleset!;
    const r = rs.run("deliver", { stanza: new Stanza(Buffer.from("<a xmlns='urn:xmpp:sm:3' h='1'/>"), "jabber:client") });
    assert.equal(r.verdict, "pass");
    assert.equal(r.matched.length, 0);
  });

  it("reports diagnostics of all files, sorted by file order then position", () => {
    const r = compileRuleSources([
      { file: "z.pfw", text: "DROP.\n\nFOO." },
      { file: "a.pfw", text: "kind: x\nDROP.\n\nIN ROSTER?\nDROP." },
    ]);
    assert.equal(r.ruleset, undefined);
    assert.deepEqual(r.errors.map((e) => `${e.file}:${e.line}`), ["z.pfw:3", "a.pfw:1", "a.pfw:4"]);
  });
});

describe("rules per stanza kind", () => {
  const text = [
    "::preroute",
    "KIND: message",
    "LOG=only messages",
    "",
    "NOT KIND: message",
    "LOG=not messages",
    "",
    "KIND: presence, iq",
    "KIND: iq",
    "LOG=iq only",
    "",
    "TYPE: chat",
    "LOG=any kind",
  ].join("\n");

  it("a handler lists, per kind, the rules its KIND conditions leave, in order", () => {
    const rs = compileRuleSources([{ file: "k.pfw", text }]).ruleset!;
    const h = rs.chains.get("preroute")![0]!;
    const lines = (rules: readonly { ref: { line: number } }[]) => rules.map((r) => r.ref.line);
    assert.deepEqual(lines(h.rules), [2, 5, 8, 12]);
    assert.deepEqual(lines(h.byKind!.message), [2, 12]);
    assert.deepEqual(lines(h.byKind!.presence), [5, 12]);
    assert.deepEqual(lines(h.byKind!.iq), [5, 8, 12]);
  });

  it("skipping them changes nothing a run reports (every kind, prefixed forms too)", () => {
    const rs = compileRuleSources([{ file: "k.pfw", text }]).ruleset!;
    const logs = (xml: string) => rs.run("preroute", { stanza: new Stanza(Buffer.from(xml), "jabber:client", "a@example.com/r") }).logs.map((l) => l.message);
    assert.deepEqual(logs("<message type='chat'/>"), ["only messages", "any kind"]);
    assert.deepEqual(logs("<c:message xmlns:c='jabber:client' type='chat'/>"), ["only messages", "any kind"]);
    assert.deepEqual(logs("<presence type='chat'/>"), ["not messages", "any kind"]);
    assert.deepEqual(logs("<iq type='chat' id='1'/>"), ["not messages", "iq only", "any kind"]);
    assert.deepEqual(logs("<iq xmlns='jabber:client' type='get' id='1'/>"), ["not messages", "iq only"]);
  });
});
