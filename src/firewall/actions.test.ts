// Every action (docs/firewall.md, "Actions"): verdicts, the stanzas produced (bounce, reply,
// copy, redirect, forward, report), logs with expression expansion, marks,
// STRIP/INJECT rewrites, control flow across files and JUMP CHAIN, DEFAULT
// per chain, and the actions refused at load.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileRuleSources, type CompileOptions, type CompiledRuleSet } from "./compile.js";
import type { FirewallContext, FirewallResult, OriginSession, RunChain } from "./context.js";
import { testStanza } from "../../test/helpers/test-stanza.js";

function ruleset(files: string | Record<string, string>, options: CompileOptions = {}): CompiledRuleSet {
  const sources = typeof files === "string" ? [{ file: "t.pfw", text: files }] : Object.entries(files).map(([file, text]) => ({ file, text }));
  const r = compileRuleSources(sources, options);
  assert.deepEqual(r.errors.map((e) => e.format()), []);
  return r.ruleset!;
}

function c2s(jid: string): OriginSession {
  return { type: "c2s", jid, ip: "192.0.2.1", authenticated: true, marks: new Map() };
}

function run(rs: CompiledRuleSet, xml: string, ctx: Partial<FirewallContext> & { chain?: RunChain; streamNs?: string } = {}): FirewallResult {
  const origin = ctx.origin;
  const stanza = testStanza(xml, { ...(origin?.type === "c2s" && origin.jid ? { sessionJid: origin.jid } : {}), ...(ctx.streamNs ? { streamNs: ctx.streamNs } : {}) });
  return rs.run(ctx.chain ?? "deliver", { stanza, origin, host: ctx.host, depth: ctx.depth });
}

const MSG = "<message from='a@example.com/r' to='b@example.net' id='3' type='chat'><body>Buy now</body></message>";
const NS_ST = "urn:ietf:params:xml:ns:xmpp-stanzas";

describe("flow actions", () => {
  it("no rule matching passes; PASS, DROP, RETURN", () => {
    assert.equal(run(ruleset("KIND: iq\nDROP."), MSG).verdict, "pass");
    assert.equal(run(ruleset("DROP."), MSG).verdict, "drop");
    assert.equal(run(ruleset("PASS.\n\nDROP."), MSG).verdict, "pass");
    assert.equal(run(ruleset("RETURN.\n\nDROP."), MSG).verdict, "pass");
  });

  it("PASS ends only its own file's handler: a DROP in another file still applies", () => {
    const rs = ruleset({ "a.pfw": "PASS.", "b.pfw": "DROP." });
    const r = run(rs, MSG);
    assert.equal(r.verdict, "drop");
    assert.deepEqual(r.matched.map((x) => x.id), ["a.pfw:1", "b.pfw:1"]);
  });

  it("DROP stops every later file", () => {
    const r = run(ruleset({ "a.pfw": "DROP.", "b.pfw": "LOG=never" }), MSG);
    assert.equal(r.verdict, "drop");
    assert.equal(r.logs.length, 0);
  });

  it("DEFAULT in deliver: the sender gets service-unavailable; later files are skipped", () => {
    const r = run(ruleset({ "a.pfw": "DEFAULT.", "b.pfw": "LOG=never" }), MSG);
    assert.equal(r.verdict, "bounce");
    assert.equal(r.defaulted, true);
    assert.equal(
      r.bounce?.stanza,
      `<message to='a@example.com/r' from='b@example.net' id='3' type='error'><error type='cancel'><service-unavailable xmlns='${NS_ST}'/></error></message>`,
    );
    assert.equal(r.logs.length, 0);
    assert.equal(run(ruleset("DEFAULT."), "<message type='error' from='x@y'/>").verdict, "drop");
  });

  it("DEFAULT in preroute: routing goes on; in deliver_remote: not-allowed", () => {
    const origin = c2s("a@example.com/r");
    const pre = run(ruleset("::preroute\nDEFAULT.\n\nDROP."), "<message to='b@example.net'/>", { chain: "preroute", origin });
    assert.equal(pre.verdict, "pass");
    assert.equal(pre.defaulted, true);
    const remote = run(ruleset("::deliver_remote\nDEFAULT."), "<iq type='get' id='v' to='example.net'/>", { chain: "deliver_remote", origin });
    assert.equal(remote.verdict, "bounce");
    assert.equal(
      remote.bounce?.stanza,
      `<iq to='a@example.com/r' from='example.net' id='v' type='error'><error type='cancel'><not-allowed xmlns='${NS_ST}'/><text xmlns='${NS_ST}'>Communication with remote domains is not enabled</text></error></iq>`,
    );
  });

  it("nonzas never reach a chain", () => {
    const r = ruleset("DROP.").run("deliver", { stanza: testStanza("<r xmlns='urn:xmpp:sm:3'/>") });
    assert.equal(r.verdict, "pass");
  });

  it("hits list every action executed, for metrics", () => {
    const r = run(ruleset("KIND: message\nLOG=x\nDROP."), MSG);
    assert.deepEqual(r.hits.map((h) => [h.rule.id, h.action]), [
      ["t.pfw:1", "LOG"],
      ["t.pfw:1", "DROP"],
    ]);
    assert.deepEqual(r.hits[0]!.rule, { id: "t.pfw:1", file: "t.pfw", line: 1, chain: "deliver" });
  });
});

describe("BOUNCE", () => {
  it("builds the exact error stanza with text", () => {
    const r = run(ruleset("BOUNCE=policy-violation (Sending too fast!)"), "<message from='a@example.com/r' to='b@example.net' id='3'><body>x</body></message>");
    assert.equal(r.verdict, "bounce");
    assert.deepEqual(
      { ...r.bounce },
      {
        condition: "policy-violation",
        type: "modify",
        text: "Sending too fast!",
        stanza: `<message to='a@example.com/r' from='b@example.net' id='3' type='error'><error type='modify'><policy-violation xmlns='${NS_ST}'/><text xmlns='${NS_ST}'>Sending too fast!</text></error></message>`,
      },
    );
  });

  it("defaults to service-unavailable; explicit :type wins", () => {
    assert.equal(run(ruleset("BOUNCE."), MSG).bounce?.condition, "service-unavailable");
    assert.equal(run(ruleset("BOUNCE=not-acceptable:cancel"), MSG).bounce?.type, "cancel");
  });

  it("errors and iq results are dropped, never answered", () => {
    assert.equal(run(ruleset("BOUNCE."), "<message type='error' from='a@b'/>").verdict, "drop");
    assert.equal(run(ruleset("BOUNCE."), "<iq type='result' id='1' from='a@b'/>").verdict, "drop");
    assert.equal(run(ruleset("BOUNCE."), "<iq type='get' id='1' from='a@b'/>").verdict, "bounce");
  });

  it("in preroute the bounce goes to the sender's full JID", () => {
    const origin = c2s("a@example.com/r");
    const r = run(ruleset("::preroute\nBOUNCE=forbidden"), "<presence to='b@example.net' type='subscribe'/>", { chain: "preroute", origin });
    assert.equal(
      r.bounce?.stanza,
      `<presence to='a@example.com/r' from='b@example.net' type='error'><error type='auth'><forbidden xmlns='${NS_ST}'/></error></presence>`,
    );
  });
});

describe("stanzas produced", () => {
  it("REPLY answers the origin with <body>; the original carries on", () => {
    const r = run(ruleset("REPLY=I am away"), MSG);
    assert.equal(r.verdict, "pass");
    assert.deepEqual(
      r.emitted.map((e) => [e.kind, e.via, e.to, e.stanza]),
      [["reply", "origin", "a@example.com/r", "<message to='a@example.com/r' from='b@example.net' id='3' type='chat'><body>I am away</body></message>"]],
    );
    const iq = run(ruleset("REPLY=x"), "<iq type='get' id='7' from='a@b/c' to='d@e'/>");
    assert.equal(iq.emitted[0]!.stanza, "<iq to='a@b/c' from='d@e' id='7' type='result'><body>x</body></iq>");
  });

  it("REDIRECT re-routes a copy with a new `to` and drops the original", () => {
    const r = run(ruleset("REDIRECT=mod@example.org"), MSG);
    assert.equal(r.verdict, "drop");
    assert.deepEqual(
      r.emitted.map((e) => [e.kind, e.via, e.to, e.stanza]),
      [["redirect", "route", "mod@example.org", "<message from='a@example.com/r' to='mod@example.org' id='3' type='chat' xml:lang='en'><body>Buy now</body></message>"]],
    );
  });

  it("COPY routes a copy and lets the original pass", () => {
    const r = run(ruleset("COPY=log@example.org"), MSG);
    assert.equal(r.verdict, "pass");
    assert.equal(r.emitted[0]!.kind, "copy");
    assert.equal(r.emitted[0]!.stanza, "<message from='a@example.com/r' to='log@example.org' id='3' type='chat' xml:lang='en'><body>Buy now</body></message>");
  });

  it("copies in preroute carry the bound JID as `from`", () => {
    const origin = c2s("a@example.com/r");
    const r = run(ruleset("::preroute\nCOPY=log@example.org"), "<message to='b@example.net'><body>x</body></message>", { chain: "preroute", origin });
    assert.equal(r.emitted[0]!.stanza, "<message to='log@example.org' from='a@example.com/r' xml:lang='en'><body>x</body></message>");
  });

  it("FORWARD wraps a jabber:client copy in <forwarded>, from the local host", () => {
    const r = run(ruleset("FORWARD=archive@example.net"), MSG);
    assert.equal(r.verdict, "pass");
    assert.equal(
      r.emitted[0]!.stanza,
      "<message to='archive@example.net' from='example.net'><forwarded xmlns='urn:xmpp:forward:0'>" +
        "<message xmlns='jabber:client' from='a@example.com/r' to='b@example.net' id='3' type='chat' xml:lang='en'><body>Buy now</body></message></forwarded></message>",
    );
  });

  it("REPORT TO adds an id and a XEP-0377 report with reason and text", () => {
    const rs = ruleset("REPORT TO=antispam.example.org spam Caught by the honeypot!", { newId: () => "id1" });
    const r = run(rs, MSG, { host: "example.net" });
    assert.equal(
      r.emitted[0]!.stanza,
      "<message to='antispam.example.org' from='example.net' id='id1'><forwarded xmlns='urn:xmpp:forward:0'>" +
        "<message xmlns='jabber:client' from='a@example.com/r' to='b@example.net' id='3' type='chat' xml:lang='en'><body>Buy now</body></message></forwarded>" +
        "<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'><text>Caught by the honeypot!</text></report></message>",
    );
    const bare = run(ruleset("REPORT TO=antispam.example.org", { newId: () => "id2" }), MSG);
    assert.match(bare.emitted[0]!.stanza, /<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:abuse'\/><\/message>$/);
  });

  it("routed copies stop after MAX_REENTRY generations", () => {
    const r = run(ruleset("COPY=x@example.org"), MSG, { depth: 4 });
    assert.equal(r.emitted.length, 0);
    assert.match(r.logs[0]!.message, /already re-routed 4 times/);
  });
});

describe("the same stanza written another way gives the same stanzas out", () => {
  // Prefixed, prefixed children, explicit default namespace: to the server (and
  // so to the firewall) all one stanza; copies and rewrites must not carry
  // prefixes whose declarations they dropped.
  const PLAIN = "<message from='a@b/c' to='d@e' id='1'><body>hi</body><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>hi</body></html></message>";
  const FORMS = [
    PLAIN,
    "<message xmlns='jabber:client' from='a@b/c' to='d@e' id='1'><body>hi</body><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>hi</body></html></message>",
    "<c:message xmlns:c='jabber:client' from='a@b/c' to='d@e' id='1'><c:body>hi</c:body><x:html xmlns:x='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>hi</body></x:html></c:message>",
    "<c:message xmlns:c='jabber:client' xmlns:x='http://jabber.org/protocol/xhtml-im' from='a@b/c' to='d@e' id='1'><c:body>hi</c:body><x:html><h:body xmlns:h='http://www.w3.org/1999/xhtml'>hi</h:body></x:html></c:message>",
  ];
  for (const form of FORMS) {
    it(form.slice(0, 60), () => {
      const strip = run(ruleset("STRIP=html http://jabber.org/protocol/xhtml-im"), form);
      assert.equal(strip.rewrite, "<message from='a@b/c' to='d@e' id='1'><body>hi</body></message>");
      const copy = run(ruleset("COPY=log@example.org"), form);
      assert.equal(copy.emitted[0]!.stanza, run(ruleset("COPY=log@example.org"), PLAIN).emitted[0]!.stanza, "a copy reads as the plain form's");
      assert.equal(run(ruleset("PAYLOAD: http://jabber.org/protocol/xhtml-im\nDROP."), form).verdict, "drop");
      assert.equal(run(ruleset("INSPECT: body#=hi\nDROP."), form).verdict, "drop");
      assert.equal(run(ruleset("INSPECT: {http://jabber.org/protocol/xhtml-im}html/{http://www.w3.org/1999/xhtml}body#=hi\nDROP."), form).verdict, "drop");
    });
  }
});

describe("STRIP and INJECT", () => {
  const XHTML = "<message from='a@b/c' to='d@e' id='1'><body>hi</body><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>hi</body></html></message>";

  it("STRIP removes direct children by name and namespace; the result is a rewrite", () => {
    const r = run(ruleset("STRIP=html http://jabber.org/protocol/xhtml-im"), XHTML);
    assert.equal(r.verdict, "pass");
    assert.equal(r.rewrite, "<message from='a@b/c' to='d@e' id='1'><body>hi</body></message>");
  });

  it("STRIP without a namespace only removes children in the stanza's own namespace", () => {
    assert.equal(run(ruleset("STRIP=html"), XHTML).rewrite, undefined);
    assert.equal(run(ruleset("STRIP=body"), XHTML).rewrite, "<message from='a@b/c' to='d@e' id='1'><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>hi</body></html></message>");
    assert.equal(run(ruleset("STRIP=* http://jabber.org/protocol/xhtml-im"), XHTML).rewrite, "<message from='a@b/c' to='d@e' id='1'><body>hi</body></message>");
  });

  it("STRIP with the stanza's own namespace removes nothing: such children have no namespace recorded", () => {
    assert.equal(run(ruleset("STRIP=body jabber:client"), XHTML).rewrite, undefined);
    assert.equal(run(ruleset("STRIP=body jabber:client"), "<message><body xmlns='jabber:client'>x</body></message>").rewrite, undefined);
    assert.equal(run(ruleset("STRIP=* jabber:client"), "<c:message xmlns:c='jabber:client'><c:body>x</c:body></c:message>").rewrite, undefined);
  });

  it("a rewrite is written as the server writes the stanza", () => {
    const r = run(ruleset("STRIP=body"), "<message><body>x</body><x xmlns='urn:a'><y/><z xmlns='urn:b'/></x></message>");
    assert.equal(r.rewrite, "<message><x xmlns='urn:a'><y/><z xmlns='urn:b'/></x></message>");
    const s2s = run(ruleset("STRIP=thread"), "<message><body xmlns='jabber:client'>x</body><thread/></message>", { streamNs: "jabber:server" });
    assert.equal(s2s.rewrite, "<message><body xmlns='jabber:client'>x</body></message>");
  });

  it("an INJECTed element is held as written: a child without xmlns has none recorded", () => {
    const rs = ruleset("INJECT=<x xmlns='urn:a'><y/></x>\nINJECT=<body>i</body>\nINJECT=<p xmlns='jabber:client'/>\n\nINSPECT: {urn:a}x/y\nINSPECT: body#=i\nPAYLOAD: jabber:client\nLOG=all three\n\nINSPECT: {urn:a}x/{urn:a}y\nLOG=never");
    const r = run(rs, "<message to='d@e'/>");
    assert.deepEqual(r.logs.map((l) => l.message), ["all three"]);
  });

  it("later conditions and copies see the modified stanza", () => {
    const r = run(ruleset("STRIP=html http://jabber.org/protocol/xhtml-im\nCOPY=x@y\n\nPAYLOAD: http://jabber.org/protocol/xhtml-im\nDROP."), XHTML);
    assert.equal(r.verdict, "pass");
    assert.equal(r.emitted[0]!.stanza, "<message from='a@b/c' to='x@y' id='1' xml:lang='en'><body>hi</body></message>");
  });

  it("INJECT appends a child", () => {
    const r = run(ruleset("INJECT=<warning xmlns='urn:example:w'>unverified</warning>"), "<message to='d@e'/>");
    assert.equal(r.rewrite, "<message to='d@e'><warning xmlns='urn:example:w'>unverified</warning></message>");
  });
});

describe("LOG", () => {
  it("expands $<…> and $(…) with Prosody's defaults", () => {
    const origin: OriginSession = { type: "s2sin", domain: "example.com", ip: "198.51.100.1", authenticated: true, marks: new Map() };
    const rs = ruleset(
      'LOG=[warn] $<@from|bare> -> $<@to|host> via $(session.ip) [$(session.username)] $<thread#||"no thread"> $<subject#> $(stanza:top_tag()) $<body>',
    );
    const r = run(rs, MSG, { origin });
    assert.deepEqual(r.logs.map((l) => [l.level, l.message]), [
      [
        "warn",
        "a@example.com -> example.net via 198.51.100.1 [nil] no thread <undefined> <message from='a@example.com/r' to='b@example.net' id='3' type='chat' xml:lang='en'> <body>Buy now</body>",
      ],
    ]);
  });

  it("$(stanza) is the whole stanza; $(stanza.attr.X) an attribute", () => {
    const r = run(ruleset("LOG=$(stanza.attr.id)|$(stanza.name)|$(stanza)"), "<presence id='p' from='a@b'/>");
    assert.equal(r.logs[0]!.message, "p|presence|<presence id='p' from='a@b' xml:lang='en'/>");
  });

  it("$(stanza) is written as the server writes it, not as it arrived", () => {
    const r = run(ruleset("LOG=$(stanza)"), `<message id="m"><body a="x">it&#39;s</body><x xmlns="urn:a"><y/></x></message>`);
    assert.equal(r.logs[0]!.message, "<message id='m' xml:lang='en'><body a='x'>it&apos;s</body><x xmlns='urn:a'><y/></x></message>");
  });
});

describe("marks", () => {
  it("MARK ORIGIN / UNMARK ORIGIN set the origin session's marks", () => {
    const origin = c2s("a@example.com/r");
    const rs = ruleset("::preroute\nKIND: message\nMARK ORIGIN=chatty\n\nKIND: iq\nUNMARK ORIGIN=chatty", { clock: { now: () => 42 } });
    const r = run(rs, "<message to='b@c'/>", { chain: "preroute", origin });
    assert.equal(origin.marks.get("chatty"), 42);
    assert.deepEqual(r.marks.map((m) => [m.op, m.scope, m.name, m.at]), [["mark", "origin", "chatty", 42]]);
    run(rs, "<iq type='get' id='1'/>", { chain: "preroute", origin });
    assert.equal(origin.marks.has("chatty"), false);
  });

  it("MARK ORIGIN without a known origin is a logged no-op", () => {
    const r = run(ruleset("MARK ORIGIN=x"), MSG);
    assert.equal(r.marks.length, 0);
    assert.equal(r.logs[0]!.level, "debug");
  });

  it("MARK USER marks local accounts only, through the store", () => {
    const store = new Map<string, number>();
    const userMarks = {
      get: (u: string, n: string) => store.get(`${u} ${n}`),
      set: (u: string, n: string, at: number) => void store.set(`${u} ${n}`, at),
      unset: (u: string, n: string) => void store.delete(`${u} ${n}`),
    };
    const rs = ruleset("::preroute\nMARK USER=flagged", { providers: { userMarks }, clock: { now: () => 7 } });
    run(rs, "<message to='x@y'/>", { chain: "preroute", origin: c2s("a@example.com/r") });
    assert.equal(store.get("a@example.com flagged"), 7);
    const remote = run(rs, "<message to='x@y'/>", { chain: "preroute", origin: c2s("a@example.com/r"), host: "other.example" });
    assert.match(remote.logs[0]!.message, /only local users may be marked/);
  });
});

describe("JUMP CHAIN", () => {
  it("a user chain's DROP ends the caller; RETURN and falling off the end continue", () => {
    const rs = ruleset("JUMP CHAIN=user/a\nLOG=after a\n\nJUMP CHAIN=user/b\n\nLOG=end\n\n::user/a\nRETURN.\n\n::user/b\nKIND: iq\nDROP.");
    const msg = run(rs, MSG);
    assert.equal(msg.verdict, "pass");
    assert.deepEqual(msg.logs.map((l) => l.message), ["after a", "end"]);
    assert.equal(run(rs, "<iq type='get' id='1'/>").verdict, "drop");
  });

  it("PASS in a user chain makes the caller return its own pass value", () => {
    const rs = ruleset({ "a.pfw": "JUMP CHAIN=user/ok\nLOG=not reached\n\n::user/ok\nPASS.", "b.pfw": "LOG=other file" });
    const r = run(rs, MSG);
    assert.equal(r.verdict, "pass");
    assert.deepEqual(r.logs.map((l) => l.message), ["other file"]);
  });

  it("user chains are shared across files, in file order", () => {
    const rs = ruleset({ "a.pfw": "JUMP CHAIN=user/x", "b.pfw": "::user/x\nLOG=b", "c.pfw": "::user/x\nBOUNCE=forbidden" });
    const r = run(rs, MSG);
    assert.equal(r.verdict, "bounce");
    assert.deepEqual(r.logs.map((l) => l.message), ["b"]);
  });

  it("jumping to an undefined chain does nothing, with a load warning", () => {
    const r = compileRuleSources([{ file: "t.pfw", text: "JUMP CHAIN=user/missing\nLOG=went on" }]);
    assert.deepEqual(r.warnings.map((w) => w.format()), ["t.pfw:1:1: JUMP CHAIN=user/missing: no loaded file has rules in this user chain, so the jump does nothing"]);
    assert.equal(run(r.ruleset!, MSG).logs[0]!.message, "went on");
  });

  it("a jump loop is cut off and the stanza dropped", () => {
    const r = run(ruleset("JUMP CHAIN=user/loop\n\n::user/loop\nJUMP CHAIN=user/loop"), MSG);
    assert.equal(r.verdict, "drop");
    assert.match(r.logs[0]!.message, /nested deeper than 32/);
  });
});

describe("other actions", () => {
  it("ADD TO fills a memory list, visible to later rules and stanzas", () => {
    const rs = ruleset("%LIST seen: memory (limit: 2)\n\nCHECK LIST: seen contains $<@from|bare>\nDROP.\n\nADD TO=seen $<@from|bare>");
    assert.equal(run(rs, "<message from='a@x/1'/>").verdict, "pass");
    assert.equal(run(rs, "<message from='a@x/2'/>").verdict, "drop");
    run(rs, "<message from='b@x'/>");
    run(rs, "<message from='c@x'/>");
    assert.equal(run(rs, "<message from='a@x'/>").verdict, "pass", "evicted by the limit");
  });

  it("TAG TRACE records tags", () => {
    assert.deepEqual(run(ruleset("TAG TRACE=suspicious"), MSG).tags, ["suspicious"]);
  });

  it("DISCONNECT asks the session to close the origin's stream", () => {
    const r = compileRuleSources([{ file: "t.pfw", text: "DISCONNECT=policy-violation (Bye)" }]);
    const res = run(r.ruleset!, MSG);
    assert.equal(res.verdict, "disconnect");
    assert.deepEqual({ ...res.disconnect }, { condition: "policy-violation", text: "Bye" });
  });

  it("EVENT, JUMP EVENT, UNSUBSCRIBE SENDER, MARK USER without a store are refused at load", () => {
    const r = compileRuleSources([{ file: "t.pfw", text: "EVENT=x\n\nJUMP EVENT=y\n\nUNSUBSCRIBE SENDER.\n\nMARK USER=m" }]);
    assert.equal(r.ruleset, undefined);
    assert.deepEqual(r.errors.map((e) => e.format()), [
      "t.pfw:1:1: EVENT refused: it fires the Prosody module event 'x'; there are no Prosody modules behind a proxy to handle it",
      "t.pfw:3:1: JUMP EVENT refused: it fires the Prosody module event 'y'; there are no Prosody modules behind a proxy to handle it",
      "t.pfw:5:1: UNSUBSCRIBE SENDER refused: it rewrites the recipient's roster in the server's storage, which a proxy cannot do",
      "t.pfw:7:1: MARK USER refused: per-account marks are kept in Prosody's storage; no user-mark store is configured",
    ]);
  });
});
