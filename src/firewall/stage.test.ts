// FirewallStage: flow → chain mapping, origins and per-session marks, verdict
// mapping, hooks, hot swap, the deliver_remote approximation, and the
// fallbacks for rewrites and DISCONNECT until Verdict and the catalogue grow.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ERRORS } from "../errors.js";
import { Pipeline, type SessionInfo } from "../policy/pipeline.js";
import { FakeClock } from "../../test/helpers/fake-clock.js";
import { Stanza } from "../xml/stanza.js";
import { compileRuleSources, type CompiledRuleSet } from "./compile.js";
import { FIREWALL_DISCONNECT, FirewallStage, type EmitTarget, type FirewallHooks, type RewriteVerdict } from "./stage.js";

function rules(text: string, localHosts?: readonly string[]): CompiledRuleSet {
  const r = compileRuleSources([{ file: "t.pfw", text }], { clock: new FakeClock(), localHosts });
  assert.deepEqual(r.errors.map((e) => e.format()), []);
  return r.ruleset!;
}

function c2s(jid: string | undefined, over: Partial<SessionInfo> = {}): SessionInfo {
  return { id: "s1", listener: "c2s", type: "c2s", ip: "192.0.2.7", port: 5222, jid, domain: "localhost", authenticated: jid !== undefined, ...over };
}

function s2s(domain: string, authenticated = true): SessionInfo {
  return { id: "s2", listener: "s2s", type: "s2s", ip: "198.51.100.9", port: 5269, jid: undefined, domain, authenticated };
}

/** What the session builds: client stanzas carry the bound JID as `from`. */
function fromClient(xml: string, session: SessionInfo): Stanza {
  return new Stanza(Buffer.from(xml), "jabber:client", session.jid);
}

function toClient(xml: string): Stanza {
  return new Stanza(Buffer.from(xml), "jabber:client");
}

function fromServer(xml: string): Stanza {
  return new Stanza(Buffer.from(xml), "jabber:server");
}

function recorder() {
  const hits: string[] = [];
  const logs: string[] = [];
  const emits: [string, EmitTarget, string][] = [];
  const errors: unknown[] = [];
  const hooks: FirewallHooks = {
    onHit: (rule, action) => hits.push(`${rule.id} ${action}`),
    onLog: (level, message, rule, session) => logs.push(`${level} ${rule.id} ${session.id}: ${message}`),
    onEmit: (e, target, session) => emits.push([e.kind, target, session.id]),
    onError: (err) => errors.push(err),
  };
  return { hooks, hits, logs, emits, errors };
}

describe("FirewallStage", () => {
  it("keys a c2s client's stanzas by its bound JID, whatever `from` it writes (Prosody's router overwrites it)", () => {
    // The shipped rules limit senders with LIMIT … on $<@from|bare>: a client
    // that writes a new `from` on every stanza must still draw from one bucket.
    const clock = new FakeClock();
    const compiled = compileRuleSources([{ file: "t.pfw", text: "%RATE m: 1 (burst 3)\n::preroute\nKIND: message\nLIMIT: m on $<@from|bare>\nDROP." }], { clock });
    assert.deepEqual(compiled.errors.map((e) => e.format()), []);
    const stage = new FirewallStage({ ruleset: compiled.ruleset! });
    const s = c2s("mallory@localhost/laptop");
    const actions = Array.from({ length: 6 }, (_, i) =>
      stage.judge(fromClient(`<message to='b@localhost' from='sock${i}@elsewhere.example/x' id='${i}'/>`, s), s, "inbound")?.action ?? "forward");
    assert.deepEqual(actions, ["forward", "forward", "forward", "drop", "drop", "drop"]);
    // A stanza in another namespace keeps its own from, as in Prosody (it is not a client stanza).
    const other = new Stanza(Buffer.from("<message xmlns='jabber:server' from='x@remote.example'/>"), "jabber:client", s.jid);
    assert.equal(other.from, "x@remote.example");
  });

  it("sessions that take turns each draw from their own bucket, in both chains, across a reload that renumbers the rules", () => {
    // Each session remembers its buckets and addresses (run-memory.ts); the
    // twin of that memory is a session drawing on another's, or a stale
    // bucket after a reload. Four senders interleave, one stanza each.
    const clock = new FakeClock();
    const text = "%RATE m: 1 (burst 2)\n%RATE d: 1 (burst 2)\n::preroute\nKIND: message\nLIMIT: m on $<@from|bare>\nDROP.\n\n::deliver\nKIND: message\nLIMIT: d on $<@from>\nDROP.";
    const compile = (t: string): CompiledRuleSet => {
      const r = compileRuleSources([{ file: "t.pfw", text: t }], { clock, previous: stage.ruleset });
      assert.deepEqual(r.errors.map((e) => e.format()), []);
      return r.ruleset!;
    };
    const stage = new FirewallStage();
    stage.swap(compile(text));
    const senders = [0, 1, 2, 3].map((i) => c2s(`s${i}@localhost/r`, { id: `s${i}` }));
    const receiver = c2s("r@localhost/r", { id: "r" });
    const round = (): string[] =>
      senders.flatMap((s, i) => [
        stage.judge(fromClient(`<message to='r@localhost'/>`, s), s, "inbound")?.action ?? "forward",
        stage.judge(toClient(`<message from='s${i}@localhost/r' to='r@localhost/r'/>`), receiver, "outbound")?.action ?? "forward",
      ]);
    assert.deepEqual([round(), round(), round()].map((r) => r.join(" ")), [
      "forward forward forward forward forward forward forward forward",
      "forward forward forward forward forward forward forward forward",
      "drop drop drop drop drop drop drop drop",
    ]);
    // A reload with a rule in front: the LIMITs keep their buckets (same file, chain and rate), under new numbers.
    stage.swap(compile(text.replace("::preroute\n", "%RATE x: 1\n::preroute\nKIND: iq\nLIMIT: x on $<@to>\nDROP.\n\n")));
    clock.advance(1000);
    assert.deepEqual([round(), round()].map((r) => r.join(" ")), [
      "forward forward forward forward forward forward forward forward",
      "drop drop drop drop drop drop drop drop",
    ]);
  });

  it("passes everything without a rule set, and applies a swapped-in one from the next stanza", () => {
    const stage = new FirewallStage();
    const s = c2s("alice@localhost/phone");
    assert.equal(stage.judge(fromClient("<message to='b@localhost'/>", s), s, "inbound"), undefined);
    stage.swap(rules("::preroute\nKIND: message\nDROP."));
    assert.deepEqual(stage.judge(fromClient("<message to='b@localhost'/>", s), s, "inbound"), { action: "drop", reason: "t.pfw:2 DROP" });
    stage.swap(rules("::preroute\nKIND: iq\nDROP."));
    assert.equal(stage.judge(fromClient("<message to='b@localhost'/>", s), s, "inbound"), undefined);
    stage.swap(undefined);
    assert.equal(stage.ruleset, undefined);
  });

  it("c2s inbound runs preroute once bound, with the client as origin (JID, IP)", () => {
    const stage = new FirewallStage({ ruleset: rules("::preroute\nFROM IP: 192.0.2.7\nFROM: alice@localhost/phone\nBOUNCE=policy-violation (no)") });
    const unbound = c2s(undefined);
    assert.equal(stage.judge(fromClient("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>", unbound), unbound, "inbound"), undefined);
    const s = c2s("alice@localhost/phone");
    const v = stage.judge(fromClient("<message to='bob@localhost' id='m1'/>", s), s, "inbound");
    assert.equal(v?.action, "bounce");
    assert.equal(v.action === "bounce" && v.reply, "<message to='alice@localhost/phone' from='bob@localhost' id='m1' type='error'><error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></message>");
    assert.equal(v.reason, "t.pfw:2 BOUNCE");
    const other = c2s("alice@localhost/phone", { ip: "192.0.2.8" });
    assert.equal(stage.judge(fromClient("<message to='bob@localhost'/>", other), other, "inbound"), undefined);
  });

  it("c2s outbound runs deliver with no origin; s2s inbound runs deliver with the peer as origin once authenticated", () => {
    const text = "ORIGIN MARKED: known\nDROP.\n\nFROM: <*>@remote.example\nMARK ORIGIN=known\nBOUNCE=forbidden\n\nKIND: iq\nDEFAULT.";
    const stage = new FirewallStage({ ruleset: rules(text) });
    const client = c2s("alice@localhost/phone");
    assert.equal(stage.judge(toClient("<message from='x@remote.example' to='alice@localhost' id='1'/>"), client, "outbound")?.action, "bounce");
    // No origin on a c2s link: the mark went nowhere, so the next one bounces again.
    assert.equal(stage.judge(toClient("<message from='x@remote.example' to='alice@localhost' id='2'/>"), client, "outbound")?.action, "bounce");
    assert.equal(stage.marks(client), undefined);
    const peer = s2s("remote.example");
    assert.equal(stage.judge(fromServer("<message from='x@remote.example' to='alice@localhost' id='3'/>"), peer, "inbound")?.action, "bounce");
    assert.deepEqual(stage.judge(fromServer("<message from='x@remote.example' to='alice@localhost' id='4'/>"), peer, "inbound"), { action: "drop", reason: "t.pfw:1 DROP" });
    assert.deepEqual([...stage.marks(peer)!.keys()], ["known"]);
    // Not yet authenticated, or the server's side of an inbound s2s link: no chain.
    assert.equal(stage.judge(fromServer("<message from='x@remote.example' to='alice@localhost'/>"), s2s("other.example", false), "inbound"), undefined);
    assert.equal(stage.judge(fromServer("<message from='alice@localhost' to='x@remote.example'/>"), peer, "outbound"), undefined);
    // Before binding, server → client stanzas (the bind result) skip the firewall.
    assert.equal(stage.judge(toClient("<iq type='result' id='b'/>"), c2s(undefined), "outbound"), undefined);
    // DEFAULT in deliver: Prosody's service-unavailable.
    const d = stage.judge(toClient("<iq type='get' from='x@elsewhere.example/r' to='alice@localhost/phone' id='5'/>"), client, "outbound");
    assert.equal(d?.action, "bounce");
    assert.match(d.action === "bounce" ? d.reply : "", /<service-unavailable /);
    assert.equal(d.reason, "t.pfw:8 DEFAULT");
  });

  it("keeps marks per session for its lifetime, across rebinding, and never shares them", () => {
    const stage = new FirewallStage({ ruleset: rules("::preroute\nORIGIN MARKED: spammer\nDROP.\n\nTO: honeypot@localhost\nMARK ORIGIN=spammer") });
    const a = c2s("a@localhost/1");
    const b = c2s("b@localhost/1", { id: "s3" });
    const msg = (s: SessionInfo) => fromClient("<message to='x@localhost'/>", s);
    assert.equal(stage.judge(msg(a), a, "inbound"), undefined);
    assert.equal(stage.judge(fromClient("<message to='honeypot@localhost'/>", a), a, "inbound"), undefined);
    assert.equal(stage.judge(msg(a), a, "inbound")?.action, "drop");
    assert.equal(stage.judge(msg(b), b, "inbound"), undefined);
    // The session object learns a new JID (e.g. after resumption): same marks.
    const rebound = a as { jid: string | undefined };
    rebound.jid = "a@localhost/2";
    assert.equal(stage.judge(msg(a), a, "inbound")?.action, "drop");
    assert.ok(stage.marks(a)!.has("spammer"));
  });

  it("reports every action, log and emitted stanza through the hooks, with the side to send it to", () => {
    const rec = recorder();
    const text = [
      "::preroute",
      "KIND: presence\nREPLY=hi\nCOPY=archive@localhost\nLOG=[warn] presence from $<@from>",
      "::deliver",
      "KIND: message\nREPLY=auto\nFORWARD=audit@localhost",
    ].join("\n\n");
    const stage = new FirewallStage({ ruleset: rules(text), hooks: rec.hooks });
    const client = c2s("alice@localhost/phone");
    assert.equal(stage.judge(fromClient("<presence to='bob@localhost'/>", client), client, "inbound"), undefined);
    assert.equal(stage.judge(toClient("<message from='x@remote.example' to='alice@localhost'/>"), client, "outbound"), undefined);
    assert.equal(stage.judge(fromServer("<message from='x@remote.example' to='alice@localhost'/>"), s2s("remote.example"), "inbound"), undefined);
    assert.deepEqual(rec.hits, [
      "t.pfw:3 REPLY", "t.pfw:3 COPY", "t.pfw:3 LOG",
      "t.pfw:10 REPLY", "t.pfw:10 FORWARD",
      "t.pfw:10 REPLY", "t.pfw:10 FORWARD",
    ]);
    assert.deepEqual(rec.logs, ["warn t.pfw:3 s1: presence from alice@localhost/phone"]);
    assert.deepEqual(rec.emits, [
      ["reply", "peer", "s1"],
      ["copy", "upstream", "s1"],
      // deliver on a c2s link: the sender is behind the server.
      ["reply", "upstream", "s1"],
      ["forward", "upstream", "s1"],
      // deliver over s2s: the sender is the peer.
      ["reply", "peer", "s2"],
      ["forward", "upstream", "s2"],
    ]);
  });

  it("forwards the original and warns about STRIP/INJECT until the session can take a rewrite", () => {
    const text = "KIND: message\nSTRIP=html http://jabber.org/protocol/xhtml-im";
    const xml = "<message from='x@remote.example' to='alice@localhost'><body>b</body><html xmlns='http://jabber.org/protocol/xhtml-im'/></message>";
    const client = c2s("alice@localhost/phone");
    const rec = recorder();
    const plain = new FirewallStage({ ruleset: rules(text), hooks: rec.hooks });
    assert.equal(plain.judge(toClient(xml), client, "outbound"), undefined);
    assert.deepEqual(rec.logs, ["warn t.pfw:1 s1: t.pfw:1 STRIP: this proxy cannot forward a changed stanza yet; the original was forwarded"]);
    const capable = new FirewallStage({ ruleset: rules(text), rewrites: true });
    const v = capable.judge(toClient(xml), client, "outbound") as unknown as RewriteVerdict;
    assert.equal(v.action, "rewrite");
    assert.equal(v.bytes.toString(), "<message from='x@remote.example' to='alice@localhost'><body>b</body></message>");
    assert.equal(v.reason, "t.pfw:1 STRIP");
  });

  it("DISCONNECT closes with the firewall's catalogue code, or drops and logs while the catalogue lacks it", () => {
    const rec = recorder();
    const stage = new FirewallStage({ ruleset: rules("::preroute\nKIND: message\nDISCONNECT=policy-violation (bye)"), hooks: rec.hooks });
    const client = c2s("alice@localhost/phone");
    const v = stage.judge(fromClient("<message to='bob@localhost'/>", client), client, "inbound");
    if (FIREWALL_DISCONNECT in ERRORS) {
      assert.deepEqual(v, { action: "close", code: FIREWALL_DISCONNECT, reason: "t.pfw:2 DISCONNECT: policy-violation (bye)" });
    } else {
      assert.deepEqual(v, { action: "drop", reason: "t.pfw:2 DISCONNECT: policy-violation (bye)" });
      assert.deepEqual(rec.logs, ["error t.pfw:2 s1: t.pfw:2 DISCONNECT: policy-violation (bye): XPX_ERR_FIREWALL_DISCONNECT is not in the error catalogue yet; stanza dropped instead"]);
    }
  });

  it("with the local domains, a client's stanza to another domain also runs deliver_remote, on what preroute left", () => {
    const text = [
      "::preroute\nKIND: message\nTO: <*>@blocked.example\nDROP.",
      "::preroute\nKIND: message\nSTRIP=secret urn:example:secret",
      "::deliver_remote\nKIND: message\nINSPECT: {urn:example:secret}secret\nBOUNCE=forbidden (secret left)",
      "::deliver_remote\nKIND: message\nTO: <*>@closed.example\nBOUNCE=not-allowed (closed)",
    ].join("\n\n");
    const client = c2s("alice@localhost/phone");
    const stage = new FirewallStage({ ruleset: rules(text, ["LOCALHOST", "conference.localhost."]) });
    const send = (to: string, body = "") => stage.judge(fromClient(`<message to='${to}'>${body}</message>`, client), client, "inbound");
    assert.equal(send("bob@localhost"), undefined);
    assert.equal(send("room@conference.localhost"), undefined);
    assert.equal(send("bob@blocked.example")?.action, "drop");
    assert.deepEqual(send("bob@closed.example"), {
      action: "bounce",
      reply: "<message to='alice@localhost/phone' from='bob@closed.example' type='error'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>closed</text></error></message>",
      reason: "t.pfw:16 BOUNCE",
    });
    assert.equal(send("bob@open.example"), undefined);
    // preroute stripped the payload: deliver_remote sees the stripped stanza.
    assert.equal(send("bob@open.example", "<secret xmlns='urn:example:secret'/>"), undefined);
    const capable = new FirewallStage({ ruleset: rules(text, ["localhost"]), rewrites: true });
    const kept = capable.judge(fromClient("<message to='bob@open.example'><b/><secret xmlns='urn:example:secret'/></message>", client), client, "inbound");
    assert.equal((kept as unknown as RewriteVerdict).bytes.toString(), "<message to='bob@open.example'><b/></message>");
    // Without the local domains, deliver_remote never runs here (and the load said so).
    const plain = new FirewallStage({ ruleset: rules(text) });
    assert.equal(plain.judge(fromClient("<message to='bob@closed.example'/>", client), client, "inbound"), undefined);
    assert.match(compileRuleSources([{ file: "t.pfw", text }]).warnings.map((w) => w.format()).join("\n"), /t\.pfw:11:1: rules in deliver_remote only run when the proxy knows/);
    // A stanza with no `to`, or to a local domain written another way, stays on the server.
    assert.equal(send(""), undefined);
    assert.equal(send("Bob@LocalHost."), undefined);
  });

  it("deliver_remote after preroute keeps a memory of its own: both runs of a flood to another domain are repeated, with the verdicts of full runs", () => {
    const text = [
      "%RATE p: 1 (burst 5)",
      "::preroute\nKIND: message\nLIMIT: p on $<@from|bare>\nDROP.",
      "::deliver_remote\nKIND: message\nTO: <*>@closed.example\nBOUNCE=not-allowed (closed)",
    ].join("\n\n");
    const compiled = rules(text, ["localhost"]);
    // Count the runs that go through the rules: a repeat from the memo does not call the chain
    // function, so the rule set (frozen) is seen through a proxy whose entry() wraps each one, once.
    let runs = 0;
    const counted = new Map<unknown, ReturnType<CompiledRuleSet["entry"]>>();
    const entry: CompiledRuleSet["entry"] = (chain, stanza) => {
      const e = compiled.entry(chain, stanza);
      if (e === null) return null;
      let c = counted.get(e);
      if (c === undefined) {
        c = Object.assign((...args: Parameters<typeof e>) => (runs++, e(...args)), { reads: (e as { reads?: number }).reads });
        counted.set(e, c);
      }
      return c;
    };
    const ruleset = new Proxy(compiled, {
      get: (target, key) => {
        if (key === "entry") return entry;
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const client = c2s("alice@localhost/phone");
    const stage = new FirewallStage({ ruleset });
    const send = (to: string) => stage.judge(fromClient(`<message to='${to}'><body>hi</body></message>`, client), client, "inbound")?.action;
    const verdicts = Array.from({ length: 10 }, () => send("bob@open.example"));
    assert.deepEqual(verdicts, [undefined, undefined, undefined, undefined, undefined, "drop", "drop", "drop", "drop", "drop"]);
    // preroute's first pass and deliver_remote's, then preroute's first drop (a dropped stanza does not leave).
    assert.equal(runs, 3);
    // Another session: a bounce is never repeated, while preroute (which reads only the sender) repeats its pass.
    const other = c2s("carol@localhost/pad", { id: "s3" });
    const fromCarol = (to: string) => stage.judge(fromClient(`<message to='${to}'/>`, other), other, "inbound")?.action;
    runs = 0;
    assert.deepEqual([fromCarol("x@closed.example"), fromCarol("x@closed.example"), fromCarol("x@open.example"), fromCarol("x@open.example")], ["bounce", "bounce", undefined, undefined]);
    assert.equal(runs, 1 + 2 + 1, "preroute once (its own memory, learned on the session's first stanza), each bounce in full, deliver_remote's pass once");
  });

  it("xml:lang: a client's stanza has the stream's; one toward the client is read as the server wrote it", () => {
    const stage = new FirewallStage({ ruleset: rules("::preroute\nINSPECT: @xml:lang=en\nDROP.\n\n::deliver\nINSPECT: @xml:lang\nDROP.") });
    const client = c2s("alice@localhost/phone");
    assert.equal(stage.judge(fromClient("<message to='b@localhost'/>", client), client, "inbound")?.action, "drop");
    assert.equal(stage.judge(toClient("<iq type='set' id='push'><query xmlns='jabber:iq:roster'/></iq>"), client, "outbound"), undefined, "a stanza the server made has none");
    assert.equal(stage.judge(toClient("<message xml:lang='en' from='b@localhost/r'/>"), client, "outbound")?.action, "drop");
  });

  it("a throwing core lets the stanza through and reports the error", () => {
    const rec = recorder();
    const broken = { runsRemote: false, entry: () => () => 0, runEntry: () => { throw new Error("bug"); } } as unknown as CompiledRuleSet;
    const stage = new FirewallStage({ ruleset: broken, hooks: rec.hooks });
    const client = c2s("alice@localhost/phone");
    assert.equal(stage.judge(fromClient("<message to='b@localhost'/>", client), client, "inbound"), undefined);
    assert.equal((rec.errors[0] as Error).message, "bug");
  });

  it("works as a pipeline stage: nonzas never reach it", () => {
    const stage = new FirewallStage({ ruleset: rules("::preroute\nDROP.") });
    const pipeline = new Pipeline([stage]);
    const client = c2s("alice@localhost/phone");
    assert.equal(pipeline.judge(fromClient("<r xmlns='urn:xmpp:sm:3'/>", client), client, "inbound"), null);
    assert.deepEqual(pipeline.judge(fromClient("<iq type='get' id='1'/>", client), client, "inbound"), {
      stage: "firewall",
      verdict: { action: "drop", reason: "t.pfw:2 DROP" },
    });
  });
});
