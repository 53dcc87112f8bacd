// The memo of a session's last pass or drop (memo.ts): a stanza like the
// last one gets its result without a run, exactly when a run would have
// given it, with the same tokens taken. Each test runs the same stanzas
// through two copies of one rule set on the same clock: one with a
// session's RunMemory (the memo works), one without (every stanza runs);
// their verdicts, matched rules and logs must agree stanza for stanza (a
// bucket that differed would show in a later verdict). The twins try to make a
// repeat out of a stanza that differs where the rules look.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileRuleSources, type CompiledRuleSet, type CompileOptions } from "./compile.js";
import { RunMemo } from "./memo.js";
import type { FirewallProviders, OriginSession, RunChain } from "./context.js";
import { RunMemory } from "./run-memory.js";
import { SessionDirectory } from "../knowledge/sessions.js";
import { Stanza } from "../xml/stanza.js";
import type { StanzaView } from "../xml/stanza-view.js";

class FakeClock {
  t = 1_000;
  now = (): number => this.t;
}

interface Pair {
  readonly memo: CompiledRuleSet;
  readonly plain: CompiledRuleSet;
  readonly clock: FakeClock;
  readonly memory: RunMemory;
}

function pair(text: string, providers: FirewallProviders = {}, extra: Pick<CompileOptions, "sharedLimits"> = {}): Pair {
  const clock = new FakeClock();
  const compile = (): CompiledRuleSet => {
    const r = compileRuleSources([{ file: "t.pfw", text }], { clock, providers, ...extra });
    assert.deepEqual(r.errors.map((e) => e.format()), []);
    return r.ruleset!;
  };
  return { memo: compile(), plain: compile(), clock, memory: new RunMemory() };
}

/** A client's stanza as the proxy reads it on its c2s stream: `from` stamped with the bound JID. */
function fromClient(xml: string, jid: string): StanzaView {
  return new Stanza(Buffer.from(xml, "utf8"), "jabber:client", jid);
}

/** A stanza the server delivers to a client: attributes as written. */
function fromServer(xml: string): StanzaView {
  return new Stanza(Buffer.from(xml, "utf8"), "jabber:client");
}

/** Run one stanza through both copies; assert they agree; the memo copy's verdict, and whether the memo answered. */
function both(p: Pair, chain: RunChain, stanza: StanzaView, origin?: OriginSession): { verdict: string; repeated: boolean } {
  const counted = repeated;
  const a = p.memo.run(chain, { stanza, origin, memory: p.memory, fromServer: origin === undefined });
  const b = p.plain.run(chain, { stanza, origin, fromServer: origin === undefined });
  assert.equal(a.verdict, b.verdict, `verdict of ${stanza.bytes.toString()}`);
  assert.deepEqual(a.matched.map((m) => m.id), b.matched.map((m) => m.id));
  assert.deepEqual(a.logs.map((l) => l.message), b.logs.map((l) => l.message));
  return { verdict: a.verdict, repeated: repeated > counted };
}

// How many stanzas the memo answered (counted around RunMemo.repeats).
let repeated = 0;
const repeats = RunMemo.prototype.repeats;
RunMemo.prototype.repeats = function (this: RunMemo, ...args: Parameters<RunMemo["repeats"]>): ReturnType<RunMemo["repeats"]> {
  const r = repeats.apply(this, args);
  if (r !== null) repeated++;
  return r;
};

function c2s(jid: string): OriginSession {
  return { type: "c2s", jid, ip: "192.0.2.1", authenticated: true, marks: new Map() };
}

const ALICE = "alice@local.example/phone";

describe("a session's last pass, repeated without a run", () => {
  it("repeats a flood's pass, takes the same tokens, and limits at exactly the stanza a run would", () => {
    const p = pair("%RATE out: 1 (burst 5)\n\n::preroute\nKIND: message\nLIMIT: out on $<@from|bare>\nBOUNCE=policy-violation (Sending too fast!)");
    const origin = c2s(ALICE);
    const verdicts: string[] = [];
    for (let i = 0; i < 8; i++) verdicts.push(both(p, "preroute", fromClient(`<message to='bob@local.example' type='chat' id='m${i}'><body>hi</body></message>`, ALICE), origin).verdict);
    assert.deepEqual(verdicts, ["pass", "pass", "pass", "pass", "pass", "bounce", "bounce", "bounce"]);
    // Refilled after a second: one more token, then limited again.
    p.clock.t += 1_000;
    assert.equal(both(p, "preroute", fromClient("<message to='bob@local.example' type='chat' id='x'/>", ALICE), origin).verdict, "pass");
    assert.equal(both(p, "preroute", fromClient("<message to='bob@local.example' type='chat' id='y'/>", ALICE), origin).verdict, "bounce");
  });

  it("a flood dropped by a dry LIMIT is dropped again without a run while the bucket stays dry; the refill is seen at once", () => {
    const p = pair("%RATE r: 2 (burst 1)\n\n::deliver\nKIND: message\nLIMIT: r on $<@from>\nDROP.");
    const msg = (i: number) => fromServer(`<message to='bob@local.example' from='eve@remote.example/x' id='${i}'/>`);
    const out: string[] = [];
    let repeats = 0;
    for (let i = 0; i < 6; i++) {
      const r = both(p, "deliver", msg(i));
      out.push(r.verdict);
      if (r.repeated) repeats++;
    }
    p.clock.t += 500; // one token back
    for (let i = 6; i < 9; i++) {
      const r = both(p, "deliver", msg(i));
      out.push(r.verdict);
      if (r.repeated) repeats++;
    }
    assert.deepEqual(out, ["pass", "pass", "drop", "drop", "drop", "drop", "pass", "drop", "drop"]);
    assert.ok(repeats >= 5, `the memo answered ${repeats} stanzas`);
  });

  it("two LIMITs in one rule: each poll must give again what it gave (a dry first bucket that refilled changes the path)", () => {
    // a gives its token, then is dry: b pays, until a refills and takes over again; a run whose
    // first poll found a dry must not be repeated once a has a token (that run would take a's, not b's).
    const p = pair("%RATE a: 1 (burst 1)\n%RATE b: 0.5 (burst 4)\n\n::deliver\nKIND: message\nLIMIT: a on $<@from>\nLIMIT: b on $<@from>\nDROP.");
    let seed = 11;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
      return (seed >>> 16) % n;
    };
    const seen = new Set<string>();
    let repeats = 0;
    for (let i = 0; i < 2_000; i++) {
      const r = both(p, "deliver", fromServer(`<message to='bob@local.example' from='eve@remote.example/x' id='${i}'/>`));
      seen.add(r.verdict);
      if (r.repeated) repeats++;
      p.clock.t += rnd(4) === 0 ? rnd(2_500) : 0;
    }
    assert.deepEqual([...seen].sort(), ["drop", "pass"]);
    assert.ok(repeats > 100, `the memo answered ${repeats} stanzas`);
  });

  it("a DROP with a LOG before it is never memoised (its log line is said each time)", () => {
    const p = pair("%RATE r: 1 (burst 1)\n\n::deliver\nKIND: message\nLIMIT: r on $<@from>\nLOG=flood from $<@from>\nDROP.");
    const out: string[] = [];
    for (let i = 0; i < 4; i++) out.push(both(p, "deliver", fromServer(`<message to='bob@local.example' from='eve@remote.example/x' id='${i}'/>`)).verdict);
    assert.deepEqual(out, ["pass", "drop", "drop", "drop"]);
    const r = p.memo.run("deliver", { stanza: fromServer("<message to='bob@local.example' from='eve@remote.example/x' id='z'/>"), memory: p.memory, fromServer: true });
    assert.equal(r.logs.length, 1);
  });

  it("a forged from on a client's stanza is the session's JID either way: it neither misses nor dodges the bucket", () => {
    const p = pair("%RATE out: 1 (burst 3)\n\n::preroute\nKIND: message\nLIMIT: out on $<@from|bare>\nDROP.");
    const origin = c2s(ALICE);
    const out: string[] = [];
    for (let i = 0; i < 5; i++) {
      const forged = i % 2 === 0 ? "" : ` from='victim${i}@local.example/x'`;
      out.push(both(p, "preroute", fromClient(`<message to='bob@local.example'${forged} id='m${i}'/>`, ALICE), origin).verdict);
    }
    assert.deepEqual(out, ["pass", "pass", "pass", "drop", "drop"]);
  });

  it("a condition that reads the payload is never skipped: the twin with the payload is dropped", () => {
    const p = pair("%RATE r: 10 (burst 10)\n\n::deliver\nKIND: message\nPAYLOAD: urn:example:spam\nDROP.\n\nKIND: message\nLIMIT: r on $<@from>\nDROP.");
    const plain = "<message to='bob@local.example/r' from='eve@remote.example/x' type='chat' id='1'><body>hi</body></message>";
    const spam = "<message to='bob@local.example/r' from='eve@remote.example/x' type='chat' id='2'><x xmlns='urn:example:spam'/></message>";
    assert.equal(both(p, "deliver", fromServer(plain)).verdict, "pass");
    assert.equal(both(p, "deliver", fromServer(plain)).verdict, "pass");
    assert.equal(both(p, "deliver", fromServer(spam)).verdict, "drop");
    // The payload rule is on every message's path: no run that reached it was learned.
    assert.equal(p.memory.memo, undefined);
  });

  it("the same address in another form is another key: it runs, and lands in the same prepped bucket", () => {
    const p = pair("%RATE r: 1 (burst 2)\n\n::deliver\nKIND: message\nLIMIT: r on $<@from|bare>\nDROP.");
    const forms = ["eve@remote.example/a", "EVE@Remote.Example/a", "eve@remote.example/b", "eve@REMOTE.example/a"];
    const out = forms.map((f, i) => both(p, "deliver", fromServer(`<message to='bob@local.example' from='${f}' id='${i}'/>`)).verdict);
    assert.deepEqual(out, ["pass", "pass", "drop", "drop"]);
  });

  it("a TYPE the pick does not decide is keyed: another type runs", () => {
    // TYPE after a lookup is not indexed, so the type is read by the run.
    const p = pair("%RATE r: 10 (burst 10)\n\n::deliver\nKIND: message\nTO: <*>@local.example\nTYPE: headline\nDROP.\n\nKIND: message\nLIMIT: r on $<@from>\nDROP.");
    const msg = (type: string, i: number) => fromServer(`<message to='bob@local.example' from='eve@remote.example/x' type='${type}' id='${i}'/>`);
    assert.equal(both(p, "deliver", msg("chat", 1)).verdict, "pass");
    assert.equal(both(p, "deliver", msg("chat", 2)).verdict, "pass");
    assert.equal(both(p, "deliver", msg("headline", 3)).verdict, "drop");
  });

  it("online sessions are keyed by the directory's version: a recipient going offline or coming online is seen at once", () => {
    const now = { t: 5_000 };
    const directory = new SessionDirectory({ now: () => now.t });
    directory.bound("s1", "bob@local.example/r");
    const p = pair("%RATE r: 10 (burst 10)\n\n::deliver\nKIND: message\nNOT TO FULL JID?\nDROP.\n\nKIND: message\nLIMIT: r on $<@from>\nDROP.", { sessions: directory });
    const msg = (i: number) => fromServer(`<message to='bob@local.example/r' from='eve@remote.example/x' id='${i}'/>`);
    assert.equal(both(p, "deliver", msg(1)).verdict, "pass");
    assert.equal(both(p, "deliver", msg(2)).verdict, "pass");
    directory.ended("s1", "bob@local.example/r");
    assert.equal(both(p, "deliver", msg(3)).verdict, "drop");
    directory.bound("s2", "bob@local.example/r");
    assert.equal(both(p, "deliver", msg(4)).verdict, "pass");
    // Hibernating (resumable) for 10 s: online until its instant, offline after, before any timer fires.
    directory.ended("s2", "bob@local.example/r", 10_000);
    assert.equal(both(p, "deliver", msg(5)).verdict, "pass");
    assert.equal(both(p, "deliver", msg(6)).verdict, "pass");
    now.t += 10_000;
    assert.equal(both(p, "deliver", msg(7)).verdict, "drop");
    directory.close();
  });

  it("a sessions provider without a version is never memoised (its answers are read at every stanza)", () => {
    const online = new Set(["bob@local.example/r"]);
    const sessions = { isOnline: (jid: string) => online.has(jid) };
    const p = pair("::deliver\nKIND: message\nNOT TO FULL JID?\nDROP.", { sessions });
    const msg = (i: number) => fromServer(`<message to='bob@local.example/r' from='eve@remote.example/x' id='${i}'/>`);
    assert.equal(both(p, "deliver", msg(1)).verdict, "pass");
    online.clear();
    assert.equal(both(p, "deliver", msg(2)).verdict, "drop");
  });

  it("with two LIMITs on the path, a dry second bucket takes nothing from the first (every bucket is checked before any is taken)", () => {
    const p = pair("%RATE a: 1 (burst 10)\n%RATE b: 1 (burst 3)\n\n::deliver\nKIND: message\nLIMIT: a on $<@from>\nDROP.\n\nKIND: message\nLIMIT: b on $<@to>\nBOUNCE=policy-violation");
    const out: string[] = [];
    for (let i = 0; i < 12; i++) out.push(both(p, "deliver", fromServer(`<message to='bob@local.example' from='eve@remote.example/x' id='${i}'/>`)).verdict);
    // b runs dry after 3 (each stanza took one from a and one from b); then a pays one per stanza until it is dry too.
    assert.deepEqual(out, ["pass", "pass", "pass", "bounce", "bounce", "bounce", "bounce", "bounce", "bounce", "bounce", "drop", "drop"]);
  });

  it("NOT LIMIT (a stanza goes on only while the bucket is dry) is never repeated: the refilled bucket is seen", () => {
    const p = pair("%RATE r: 1 (burst 1)\n\n::deliver\nKIND: message\nNOT LIMIT: r on $<@from>\nDROP.");
    const msg = (i: number) => fromServer(`<message to='bob@local.example' from='eve@remote.example/x' id='${i}'/>`);
    const out: string[] = [];
    for (let i = 0; i < 3; i++) out.push(both(p, "deliver", msg(i)).verdict);
    p.clock.t += 2_000;
    out.push(both(p, "deliver", msg(9)).verdict);
    assert.deepEqual(out, ["drop", "pass", "pass", "drop"]);
  });

  it("one bucket polled twice by a run (two rules, one rate and key) is never repeated: one check would not see the second token", () => {
    const p = pair("%RATE r: 1 (burst 3)\n\n::deliver\nKIND: message\nLIMIT: r on $<@from>\nDROP.\n\nKIND: message\nLIMIT: r on $<@from>\nBOUNCE=policy-violation");
    const msg = (i: number) => fromServer(`<message to='bob@local.example' from='eve@remote.example/x' id='${i}'/>`);
    // The pass polls the bucket twice (3 → 1 tokens). Were it learned, the next stanza's check
    // would find one token and pass it; a run takes that one in rule 1 and bounces in rule 2.
    const out: string[] = [];
    for (let i = 0; i < 4; i++) out.push(both(p, "deliver", msg(i)).verdict);
    // The drops poll it once (rule 1 finds it dry), so they may repeat.
    assert.deepEqual(out, ["pass", "bounce", "drop", "drop"]);
  });

  it("an evicted bucket sends the stanza through a run (a fresh bucket for the key), as without the memo", () => {
    const p = pair("%RATE r: 1 (burst 2) (entries 1) (allow overflow)\n\n::deliver\nKIND: message\nLIMIT: r on $<@from>\nDROP.");
    const eve = (i: number) => fromServer(`<message to='bob@local.example' from='eve@remote.example/x' id='${i}'/>`);
    const mal = (i: number) => fromServer(`<message to='bob@local.example' from='mallory@remote.example/x' id='${i}'/>`);
    const other = new RunMemory();
    const out: string[] = [];
    out.push(both(p, "deliver", eve(1)).verdict, both(p, "deliver", eve(2)).verdict);
    // Another session's key evicts eve's bucket (one entry, allow overflow).
    p.memo.run("deliver", { stanza: mal(3), memory: other, fromServer: true });
    p.plain.run("deliver", { stanza: mal(3), fromServer: true });
    out.push(both(p, "deliver", eve(4)).verdict, both(p, "deliver", eve(5)).verdict, both(p, "deliver", eve(6)).verdict);
    assert.deepEqual(out, ["pass", "pass", "pass", "pass", "drop"]);
  });

  it("a LIMIT kept fleet-wide is polled at every stanza (the fleet's bucket changes under us)", () => {
    let polls = 0;
    const sharedLimits = { poll: () => (polls++, true) };
    const clock = new FakeClock();
    const rs = compileRuleSources([{ file: "t.pfw", text: "%RATE r: 1 (burst 100)\n\n::deliver\nKIND: message\nLIMIT: r on $<@from>\nDROP." }], { clock, sharedLimits }).ruleset!;
    const memory = new RunMemory();
    for (let i = 0; i < 3; i++) {
      const stanza = fromServer(`<message to='bob@local.example' from='eve@remote.example/x' id='${i}'/>`);
      assert.equal(rs.run("deliver", { stanza, memory, fromServer: true }).verdict, "pass");
    }
    assert.equal(polls, 3);
    assert.equal(memory.memo, undefined);
  });

  it("a bounce is never memoised (its reply carries the stanza's id), and another origin or rule set is another key", () => {
    const text = "%RATE r: 1 (burst 100)\n\n::preroute\nKIND: message\nTO: spam@local.example\nBOUNCE=policy-violation\n\nKIND: message\nLIMIT: r on $<@from|bare>\nDROP.";
    const p = pair(text);
    const alice = c2s(ALICE);
    const msg = (to: string, i: number) => fromClient(`<message to='${to}' id='${i}'/>`, ALICE);
    assert.equal(both(p, "preroute", msg("spam@local.example", 1), alice).verdict, "bounce");
    assert.equal(p.memory.memo, undefined);
    assert.equal(both(p, "preroute", msg("bob@local.example", 2), alice).verdict, "pass");
    assert.notEqual(p.memory.memo, undefined);
    // The same session rebound (a new origin object): runs again.
    const rebound = c2s(ALICE);
    assert.equal(both(p, "preroute", msg("bob@local.example", 3), rebound).verdict, "pass");
    // A reloaded rule set with a new rule: its own functions, so the memo of the old one does not answer.
    const reloaded = compileRuleSources([{ file: "t.pfw", text: text.replace("spam@", "bob@") }], { clock: p.clock, previous: p.memo }).ruleset!;
    assert.equal(reloaded.run("preroute", { stanza: msg("bob@local.example", 4), origin: rebound, memory: p.memory }).verdict, "bounce");
  });

  it("agrees with running every stanza over a random mix of senders, forms, types, payloads, presence and time", () => {
    const now = { t: 1_000 };
    const directory = new SessionDirectory({ now: () => now.t });
    const text = [
      "%RATE msg: 20 (burst 5) (entries 3)",
      "%RATE first: 0.5 (burst 4)",
      "",
      "::deliver",
      "KIND: message",
      "NOT TYPE: groupchat",
      "NOT FROM_EXACTLY: $<@to|bare>",
      "LIMIT: msg on $<@from>",
      "DROP.",
      "",
      "KIND: message",
      "TYPE: normal",
      "PAYLOAD: urn:example:spam",
      "DROP.",
      "",
      "KIND: message",
      "NOT TYPE: groupchat|error",
      "FROM: <*>@<*>",
      "NOT TO FULL JID?",
      "LIMIT: first on $<@from|bare>",
      "BOUNCE=policy-violation",
    ].join("\n");
    directory.bound("s0", "bob@local.example/r");
    const p = pair(text, { sessions: directory });
    p.clock.now = () => now.t;
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
      return (seed >>> 16) % n;
    };
    const froms = ["eve@remote.example/x", "EVE@remote.example/x", "eve@remote.example/y", "mallory@remote.example/z", "remote.example"];
    const tos = ["bob@local.example/r", "bob@local.example", "Bob@local.example/r", "carol@local.example/c"];
    const types = ["chat", "chat", "chat", "normal", "groupchat", "error", ""];
    let repeats = 0;
    for (let i = 0; i < 3_000; i++) {
      // Mostly the same stanza again, as in a flood; sometimes anything else.
      const same = rnd(4) !== 0;
      const from = same ? froms[0]! : froms[rnd(froms.length)]!;
      const to = same ? tos[0]! : tos[rnd(tos.length)]!;
      const type = same ? "chat" : types[rnd(types.length)]!;
      const payload = !same && rnd(3) === 0 ? "<x xmlns='urn:example:spam'/>" : "<body>hi</body>";
      const t = type === "" ? "" : ` type='${type}'`;
      const r = both(p, "deliver", fromServer(`<message to='${to}' from='${from}'${t} id='${i}'>${payload}</message>`));
      if (r.repeated) repeats++;
      const step = rnd(10);
      if (step === 0) now.t += rnd(3_000);
      if (step === 1) directory.bound(`s${rnd(3)}`, tos[rnd(tos.length)]!);
      if (step === 2 && rnd(3) === 0) directory.ended(`s${rnd(3)}`, tos[rnd(tos.length)]!, rnd(2) * 2_000);
    }
    assert.ok(repeats > 500, `the memo answered ${repeats} stanzas`);
    directory.close();
  });
});
