// The composed handlers (compose.ts) against the interpreter (runtime.ts
// interpretHandler): the same rule files compiled both ways, the same stanzas
// run through both in the same order (so LIMIT buckets and marks evolve the
// same), and every result must be identical: verdict, matched rules, hits,
// logs, marks, emitted stanzas, rewrites. Also: the per-type index and the
// chain-level check skip exactly the rules TYPE and KIND exclude.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { compileRuleSources, type CompileOptions, type CompiledRuleSet } from "./compile.js";
import type { FirewallProviders, FirewallResult, OriginSession, RunChain } from "./context.js";
import { testStanza } from "../../test/helpers/test-stanza.js";
import type { StanzaView } from "../xml/stanza-view.js";

const RULES = new URL("../../rules/", import.meta.url).pathname;

class FakeClock {
  t = 0;
  now = (): number => this.t;
}

const PROVIDERS: FirewallProviders = {
  roster: { entry: (owner, contact) => (owner === "u@local.example" && contact === "friend@remote.example" ? { subscription: "both", groups: [] } : undefined) },
  sessions: { isOnline: (jid) => jid === "u@local.example/pc" },
};

/** A rule file that uses every control path: TYPE and KIND (negated or not), PASS, RETURN, DEFAULT, jumps, marks, LIMIT. */
const CONTROL = `
%RATE few: 1 (burst 3)
%ZONE here: local.example

::preroute
KIND: message
TYPE: chat
LOG=chat $<@to>
JUMP CHAIN=user/chat

TYPE: groupchat|headline
NOT KIND: presence
TAG TRACE=gc-or-headline
PASS.

NOT TYPE: error|chat
KIND: presence
LIMIT: few
MARK ORIGIN=presence_flood
DROP.

ORIGIN MARKED: presence_flood
KIND: iq
TYPE: get
BOUNCE=policy-violation (Marked)

TYPE: set
TO: <*>@local.example
LOG=set to a local account
RETURN.

KIND: iq
TYPE: result
DEFAULT.

ENTERING: here
TYPE: normal
LOG=normal entering

::user/chat
TO: friend@remote.example
LOG=to a friend
PASS.

TYPE: chat
LIMIT: few
DROP.

::deliver
TYPE: error
NOT KIND: iq
LOG=error seen

KIND: message|iq
TYPE: chat|get
NOT TYPE: get
LOG=chat only
JUMP CHAIN=user/chat

::deliver_remote
TYPE: subscribe
LOG=remote subscribe
DROP.
`;

const SECOND = `
::preroute
TYPE: chat
LOG=second file sees chat

NOT TYPE: available
KIND: presence
LOG=second file, presence not available
PASS.

::deliver
KIND: presence
TYPE: unavailable
DROP.
`;

function pair(sources: { file: string; text: string }[], options: CompileOptions = {}): { composed: CompiledRuleSet; interpreted: CompiledRuleSet; clock: FakeClock } {
  const clock = new FakeClock();
  const a = compileRuleSources(sources, { clock, localHosts: ["local.example"], providers: PROVIDERS, newId: () => "id", ...options });
  const b = compileRuleSources(sources, { clock, localHosts: ["local.example"], providers: PROVIDERS, newId: () => "id", ...options, interpret: true });
  assert.deepEqual(a.errors.map((e) => e.format()), []);
  return { composed: a.ruleset!, interpreted: b.ruleset!, clock };
}

const NAMES = ["message", "presence", "iq"];
const TYPES = [undefined, "chat", "normal", "groupchat", "headline", "error", "get", "set", "result", "subscribe", "subscribed", "unavailable", "available", "probe", "odd"];
const TOS = [undefined, "u@local.example", "u@local.example/pc", "friend@remote.example", "x@remote.example/r", "local.example"];
const FROMS = ["x@remote.example/r", "friend@remote.example/r", "u@local.example/pc", "remote.example"];
const BODIES = ["", "<body>hi</body>", "<x xmlns='http://jabber.org/protocol/muc#user'/>", "<query xmlns='jabber:iq:roster'/>"];

function* stanzas(): Generator<string> {
  let k = 0;
  for (const name of NAMES) {
    for (const type of TYPES) {
      for (const to of TOS) {
        const from = FROMS[k % FROMS.length]!;
        const body = BODIES[k % BODIES.length]!;
        k++;
        const attrs = `${type === undefined ? "" : ` type='${type}'`}${to === undefined ? "" : ` to='${to}'`} from='${from}' id='s${k}'`;
        yield `<${name}${attrs}>${body}</${name}>`;
      }
    }
  }
}

/** Everything a result reports, as plain data. */
function plain(r: FirewallResult): unknown {
  return JSON.parse(JSON.stringify(r));
}

/** Runs `sources` both ways; returns how many runs and which verdicts, actions and defaults were seen. */
function compare(sources: { file: string; text: string }[], chains: readonly RunChain[], rounds = 3): { n: number; seen: Set<string> } {
  const { composed, interpreted, clock } = pair(sources);
  const origins = (): OriginSession => ({ type: "c2s", jid: "u@local.example/pc", ip: "192.0.2.1", authenticated: true, marks: new Map() });
  const o1 = origins();
  const o2 = origins();
  let n = 0;
  const seen = new Set<string>();
  for (let round = 0; round < rounds; round++) {
    for (const xml of stanzas()) {
      for (const chain of chains) {
        const origin = chain === "deliver" ? undefined : [o1, o2];
        const stanza = testStanza(xml, chain === "deliver" ? {} : { sessionJid: "u@local.example/pc" });
        const a = composed.run(chain, { stanza, origin: origin?.[0], fromServer: chain === "deliver" });
        const b = interpreted.run(chain, { stanza, origin: origin?.[1], fromServer: chain === "deliver" });
        assert.deepEqual(plain(a), plain(b), `${chain}: ${xml}`);
        n++;
        seen.add(a.verdict);
        if (a.defaulted) seen.add("defaulted");
        for (const h of a.hits) seen.add(h.action);
      }
      clock.t += 97;
    }
    assert.deepEqual([...o1.marks], [...o2.marks]);
  }
  return { n, seen };
}

describe("composed handlers", () => {
  it("report exactly what the interpreter reports: control paths, jumps, several files", () => {
    const { n, seen } = compare(
      [
        { file: "control.pfw", text: CONTROL },
        { file: "second.pfw", text: SECOND },
      ],
      ["preroute", "deliver", "deliver_remote"],
    );
    assert.ok(n > 1000);
    // Every path was taken at least once.
    for (const what of ["pass", "drop", "bounce", "defaulted", "LOG", "JUMP_CHAIN", "PASS", "RETURN", "DEFAULT", "MARK_ORIGIN", "TAG_TRACE", "DROP", "BOUNCE"]) {
      assert.ok(seen.has(what), `${what} never happened: ${[...seen].join(" ")}`);
    }
  });

  it("report exactly what the interpreter reports: the shipped rules and the examples", () => {
    const files = ["default.pfw", "examples/block-spammer.pfw", "examples/honeypot.pfw", "examples/strangers.pfw", "examples/rate-limits.pfw"];
    for (const f of files) {
      let text = readFileSync(`${RULES}${f}`, "utf8");
      // Small buckets, so LIMIT answers both ways within the run.
      text = text.replace(/^(\s*%RATE\s+[^:\n]+:\s*)[\d.]+(\s*\(burst\s*)\d+/gm, "$10.5$22");
      compare([{ file: f, text }], ["preroute", "deliver"], 2);
    }
  });

  it("index by type: a rule whose leading TYPE excludes the stanza's type is never run, and a chain nothing can match is not entered", () => {
    const text = "::deliver\nTYPE: chat\nLOG=chat\n\nKIND: presence\nNOT TYPE: unavailable\nLOG=presence\n\n::preroute\nKIND: iq\nDROP.";
    const { composed } = pair([{ file: "t.pfw", text }]);
    const h = composed.chains.get("deliver")![0]!.composed!;
    assert.equal(h.message.byType?.get("chat") !== null, true);
    assert.equal(h.message.other, null, "a message of any other type: no rule");
    assert.equal(h.iq.other, null);
    assert.equal(h.presence.byType?.get("unavailable"), null);
    assert.notEqual(h.presence.other, null);
    const cases: [RunChain, string, boolean][] = [
      ["deliver", "<message type='chat'/>", true],
      ["deliver", "<message/>", false],
      ["deliver", "<message type='groupchat'/>", false],
      ["deliver", "<presence/>", true],
      ["deliver", "<presence type='unavailable'/>", false],
      ["preroute", "<iq type='get' id='1'/>", true],
      ["preroute", "<message type='chat'/>", false],
      ["deliver_remote", "<message type='chat'/>", false],
    ];
    for (const [chain, xml, want] of cases) assert.equal(composed.entry(chain, testStanza(xml, {})) !== null, want, `${chain}: ${xml}`);
  });

  it("entry() picks each chain's own function for a stanza, and runEntry() with it does what run() does", () => {
    const text = "::deliver\nTYPE: chat\nLOG=deliver chat\n\n::preroute\nTYPE: chat\nLOG=preroute chat\n\nKIND: iq\nLOG=preroute iq";
    const { composed, interpreted } = pair([{ file: "t.pfw", text }]);
    const chat = testStanza("<message type='chat'/>", {});
    const iq = testStanza("<iq type='get' id='1'/>", {});
    const logs = (r: { logs: readonly { message: string }[] }) => r.logs.map((l) => l.message);
    // Uncomposed, the pick is the interpreter wherever the chain has rules, and it does what run() does.
    assert.equal(interpreted.entry("deliver_remote", chat), null, "no rule hooks deliver_remote");
    assert.deepEqual(logs(interpreted.runEntry("deliver", interpreted.entry("deliver", iq)!, { stanza: iq })), []);
    assert.deepEqual(logs(interpreted.runEntry("preroute", interpreted.entry("preroute", iq)!, { stanza: iq })), ["preroute iq"]);
    const cases: [RunChain, StanzaView, string[] | null][] = [
      ["deliver", chat, ["deliver chat"]],
      ["deliver", iq, null],
      ["preroute", chat, ["preroute chat"]],
      ["preroute", iq, ["preroute iq"]],
      ["deliver_remote", chat, null],
    ];
    for (const [chain, stanza, want] of cases) {
      const entry = composed.entry(chain, stanza);
      const what = `${chain}: ${stanza.name}`;
      assert.deepEqual(logs(composed.run(chain, { stanza })), want ?? [], what);
      if (want === null) {
        assert.equal(entry, null, `${what}: no rule can see it`);
        continue;
      }
      assert.notEqual(entry, null, what);
      assert.deepEqual(logs(composed.runEntry(chain, entry!, { stanza })), want, what);
    }
    // A pick is the chain's and the stanza's own: one made for another chain or stanza runs what it was made for.
    assert.notEqual(composed.entry("deliver", chat), composed.entry("preroute", chat));
    assert.notEqual(composed.entry("preroute", chat), composed.entry("preroute", iq));
  });

  it("a TYPE written after a lookup still runs first (head conditions sort first), so it is indexed", () => {
    // SUBSCRIBED is a lookup (COST_LOOKUP): TYPE, written after it, sorts
    // before it, so nothing but head conditions runs before a TYPE.
    const text = "::deliver\nSUBSCRIBED?\nTYPE: chat\nLOG=chat from a contact";
    const { composed } = pair([{ file: "t.pfw", text }]);
    const h = composed.chains.get("deliver")![0]!.composed!;
    assert.equal(h.message.other, null);
    assert.notEqual(h.message.byType?.get("chat"), null);
  });

  it("deep rule lists compose without deep recursion", () => {
    const text = "::deliver\n" + Array.from({ length: 2000 }, (_, i) => `TO: n${i}@local.example\nLOG=rule ${i}\n`).join("\n");
    const { composed } = pair([{ file: "deep.pfw", text }]);
    const r = composed.run("deliver", { stanza: testStanza("<message to='n1999@local.example'/>", {}), fromServer: true });
    assert.deepEqual(r.logs.map((l) => l.message), ["rule 1999"]);
    assert.equal(r.matched.length, 1);
  });

  it("generated functions hold no rule text: only fixed fragments, numbers and their own names", () => {
    // Text that would break out of a string or a block if it were pasted into source.
    const text = [
      "::deliver",
      "KIND: message",
      "TYPE: chat",
      "TO: evil@local.example",
      'LOG=}); throw new Error("x"); (function(){ `${1}` // \u2028 \'',
      "",
      "FROM: }{@remote.example",
      "LOG=after",
      "PASS.",
    ].join("\n");
    const { composed } = pair([{ file: "t.pfw", text }]);
    const h = composed.chains.get("deliver")![0]!.composed!;
    for (const run of [h.message.byType!.get("chat")!, h.message.other!, h.other.other!]) {
      const src = run.toString();
      assert.match(src, /^function firewall_rules\(s, p\) \{[\w\s(){};=!&|?:.,-]*\}$/, src);
      assert.ok(!src.includes("evil") && !src.includes("throw") && !src.includes("after"), src);
    }
    const r = composed.run("deliver", { stanza: testStanza("<message type='chat' to='evil@local.example' from='x@remote.example'/>", {}), fromServer: true });
    assert.deepEqual(r.logs.map((l) => l.message), ['}); throw new Error("x"); (function(){ `${1}` // \u2028 \'']);
  });

  it("where code from strings is refused, nothing is composed and the interpreter gives the same answers", () => {
    const script = `
      const { compileRuleSources } = await import(${JSON.stringify(new URL("./compile.ts", import.meta.url).href)});
      const { canCompose } = await import(${JSON.stringify(new URL("./compose.ts", import.meta.url).href)});
      const { testStanza } = await import(${JSON.stringify(new URL("../../test/helpers/test-stanza.ts", import.meta.url).href)});
      const r = compileRuleSources([{ file: "t.pfw", text: "::deliver\\nTYPE: chat\\nLOG=chat\\nDROP." }], { localHosts: ["local.example"] });
      const run = r.ruleset.run("deliver", { stanza: testStanza("<message type='chat'/>", {}), fromServer: true });
      console.log(JSON.stringify({ can: canCompose(), composed: r.ruleset.chains.get("deliver")[0].composed !== undefined, verdict: run.verdict, logs: run.logs.map((l) => l.message) }));
    `;
    for (const [flags, can] of [[["--disallow-code-generation-from-strings"], false], [[], true]] as const) {
      const r = spawnSync(process.execPath, [...flags, "--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { can, composed: can, verdict: "drop", logs: ["chat"] });
    }
  });
});
