// One test per documented mod_firewall bug or quirk (docs/firewall.md, "Prosody bugs we fix") that
// xmpp-guard fixes instead of copying, showing our behaviour. The list, with
// reasons, is also test/fixtures/firewall/deliberate-differences.json (the
// differential test against prosodyctl skips exactly these); a test below
// keeps the two in step.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { compileRuleSources, type CompileOptions } from "./compile.js";
import { loadRuleFiles } from "./load.js";
import { parseRuleFile } from "./parser.js";
import { testStanza } from "../../test/helpers/test-stanza.js";

const DIFFERENCES = new URL("../../test/fixtures/firewall/deliberate-differences.json", import.meta.url);

function compile(text: string, options: CompileOptions = {}) {
  return compileRuleSources([{ file: "t.pfw", text }], options);
}

const BUG_IDS: string[] = [];
function bug(id: string, title: string, fn: () => void | Promise<void>): void {
  BUG_IDS.push(id);
  it(`${id}: ${title}`, fn);
}

describe("Prosody bugs we fix", () => {
  bug("condition-after-action", "a condition straight after an action is an error, not dropped with the rule duplicated", () => {
    const r = compile("LOG=hi\nKIND: message\nDROP.");
    assert.equal(r.ruleset, undefined);
    assert.deepEqual(r.errors.map((e) => `${e.line}:${e.column}`), ["2:1"]);
  });

  bug("header-after-action", "a chain header or definition straight after an action is an error, not swallowed", () => {
    assert.deepEqual(compile("DROP.\n::preroute\n\nPASS.").errors.map((e) => `${e.line}:${e.column}`), ["2:1"]);
    assert.deepEqual(compile("DROP.\n%RATE r: 1").errors.map((e) => `${e.line}:${e.column}`), ["2:1"]);
  });

  bug("dangling-conditions", "conditions without an action at the end of the file are an error, not a no-op rule with side effects", () => {
    const r = compile("%RATE r: 1\n\nDROP.\n\nLIMIT: r");
    assert.deepEqual(r.errors.map((e) => e.format()), [
      "t.pfw:5:1: conditions without an action: a rule needs at least one action (such as DROP.) before the end of the file",
    ]);
  });

  bug("dangling-continuation", "a continuation at the end of the file is an error, not silently lost", () => {
    assert.equal(compile("DROP.\nLOG=x\\").errors.length, 1);
  });

  bug("hoisted-limit", "a LIMIT shared by rules only takes tokens for stanzas its rule reaches", () => {
    const rules = "%RATE normal: 1 (burst 2)\n\nKIND: message\nLIMIT: normal\nDROP.\n\nKIND: presence\nLIMIT: normal\nDROP.";
    const rs = compile(rules, { clock: { now: () => 0 } }).ruleset!;
    // Prosody evaluates the repeated `LIMIT: normal` once per stanza, eagerly:
    // these two iqs would empty the bucket and the message below would drop.
    for (let i = 0; i < 2; i++) assert.equal(rs.run("deliver", { stanza: testStanza("<iq type='get' id='q'/>") }).verdict, "pass");
    assert.equal(rs.run("deliver", { stanza: testStanza("<message/>") }).verdict, "pass");
    assert.equal(rs.run("deliver", { stanza: testStanza("<presence/>") }).verdict, "pass");
    assert.equal(rs.run("deliver", { stanza: testStanza("<message/>") }).verdict, "drop");
  });

  bug("limit-evaluated-last", "a LIMIT written before other conditions still only counts stanzas the rest of the rule matches", () => {
    const rs = compile("%RATE r: 1\n\nLIMIT: r\nKIND: message\nDROP.", { clock: { now: () => 0 } }).ruleset!;
    assert.equal(rs.run("deliver", { stanza: testStanza("<presence/>") }).verdict, "pass");
    assert.equal(rs.run("deliver", { stanza: testStanza("<message/>") }).verdict, "pass");
    assert.equal(rs.run("deliver", { stanza: testStanza("<message/>") }).verdict, "drop");
  });

  bug("count-single-equals", "COUNT with '=' works as '==' (Prosody emits invalid Lua), with a portability warning", () => {
    const r = compile("%SEARCH body: body#\n%PATTERN url: https?://%S+\n\nCOUNT: url in body = 1\nDROP.");
    assert.ok(r.ruleset);
    assert.equal(r.warnings.length, 1);
    assert.equal(r.ruleset.run("deliver", { stanza: testStanza("<message><body>http://a.example</body></message>") }).verdict, "drop");
  });

  bug("default-in-parameters", "`||\"default\"` works inside parameters (v2023 quotes it away)", () => {
    const rs = compile('%LIST l: memory\n\nADD TO=l $<@type||"normal">\n\nCHECK LIST: l contains normal\nLOG=defaulted to $<@type||"normal">').ruleset!;
    const r = rs.run("deliver", { stanza: testStanza("<message/>") });
    assert.deepEqual(r.logs.map((l) => l.message), ["defaulted to normal"]);
  });

  bug("time-minutes", "TIME ranges with minutes work (Prosody refers to an undefined current_minute)", () => {
    let t = { hour: 9, minute: 29, weekday: 1 };
    const rs = compile("TIME: 9:30am-10:15am\nDROP.", { localTime: () => t }).ruleset!;
    const v = () => rs.run("deliver", { stanza: testStanza("<message/>") }).verdict;
    assert.equal(v(), "pass");
    t = { hour: 9, minute: 30, weekday: 1 };
    assert.equal(v(), "drop");
    t = { hour: 10, minute: 14, weekday: 1 };
    assert.equal(v(), "drop");
    t = { hour: 10, minute: 15, weekday: 1 };
    assert.equal(v(), "pass");
  });

  bug("time-weekdays", "weekday names in TIME (the README's own example) load and mean whole days", () => {
    let t = { hour: 12, minute: 0, weekday: 6 };
    const r = compile("TIME: 12am-9am, 5pm-12am, Saturday, Sunday\nBOUNCE=policy-violation (Outside office hours)", { localTime: () => t });
    assert.ok(r.ruleset);
    const v = () => r.ruleset!.run("deliver", { stanza: testStanza("<message from='a@b'/>") }).verdict;
    assert.equal(v(), "bounce");
    t = { hour: 12, minute: 0, weekday: 2 };
    assert.equal(v(), "pass");
    t = { hour: 8, minute: 59, weekday: 2 };
    assert.equal(v(), "bounce");
  });

  bug("day-of-month", "DAY compares the weekday (Prosody compares the day of the month, and maps Sunday to 0 in v2023)", () => {
    const rs = compile("DAY: Sun\nDROP.", { localTime: () => ({ hour: 0, minute: 0, weekday: 0 }) }).ruleset!;
    assert.equal(rs.run("deliver", { stanza: testStanza("<message/>") }).verdict, "drop");
  });

  bug("missing-list-file", "a missing list file is an error unless (missing: ignore); Prosody only logs and starts empty", () => {
    assert.equal(compile("%LIST l: file:/nope.txt\n\nDROP.").errors.length, 1);
    assert.equal(compile("%LIST l: file:/nope.txt (missing: ignore)\n\nDROP.").errors.length, 0);
  });

  bug("list-option-commas", "`filter: lower,bare` keeps both filters (Prosody splits options at every comma)", () => {
    const r = parseRuleFile("t", "%LIST l: memory (filter: lower,bare, limit: 5)");
    assert.deepEqual(r.ast.definitions[0]!.spec, { type: "LIST", list: { backend: "memory", limit: 5 }, filters: ["lower", "bare"] });
  });

  bug("hash-filter-binary", "hash filters compare hex digests (Prosody's util.hashes returns raw bytes, which never equal a text line)", () => {
    const rs = compile("%LIST l: memory (filter: md5)\n\nADD TO=l x\n\nCHECK LIST: l contains x\nDROP.").ruleset!;
    assert.equal(rs.run("deliver", { stanza: testStanza("<message/>") }).verdict, "drop");
  });

  bug("limit-underscore", "LIMIT accepts rate names with '_' (Prosody's %w+ rejects them), with a portability warning", () => {
    const r = compile("%RATE per_user: 1\n\nLIMIT: per_user\nDROP.");
    assert.ok(r.ruleset);
    assert.equal(r.warnings.length, 1);
  });

  bug("directed-presence", "SENT DIRECTED PRESENCE TO SENDER? asks whether the recipient sent directed presence to the sender (the README's meaning)", () => {
    const seen: [string, string][] = [];
    const rs = compile("SENT DIRECTED PRESENCE TO SENDER?\nDROP.", {
      providers: { directedPresence: { hasSentTo: (a, b) => (seen.push([a, b]), true) } },
    }).ruleset!;
    rs.run("deliver", { stanza: testStanza("<presence from='x@remote/r' to='me@local/pc'/>") });
    assert.deepEqual(seen, [["me@local/pc", "x@remote/r"]]);
  });

  bug("redirect-without-jid", "REDIRECT/COPY without a JID are errors (Prosody sends the stanza back to its sender)", () => {
    assert.equal(compile("REDIRECT.").errors.length, 1);
    assert.equal(compile("COPY=").errors.length, 1);
  });

  bug("jump-loop", "a JUMP CHAIN loop is cut off and the stanza dropped (Prosody overflows the stack)", () => {
    const r = compile("JUMP CHAIN=user/a\n\n::user/a\nJUMP CHAIN=user/a").ruleset!.run("deliver", { stanza: testStanza("<message/>") });
    assert.equal(r.verdict, "drop");
  });

  bug("failed-reload", "a file that fails to compile yields no rule set at all, so the previous one stays live", async () => {
    const files: Record<string, string> = { "good.pfw": "KIND: message\nDROP.", "bad.pfw": "kind: message\nDROP." };
    const r = await loadRuleFiles(["good.pfw", "bad.pfw"], async (p) => files[p]!);
    assert.equal(r.ruleset, undefined);
    assert.deepEqual(r.errors.map((e) => e.format()), ["bad.pfw:1:1: Unknown condition: kind (condition names are case-sensitive: write KIND)"]);
  });

  bug("subscribed-direction", "SUBSCRIBED? means the recipient is subscribed to the sender (README, newer mod_firewall); v2023 checks the opposite direction", () => {
    const roster = { entry: (_o: string, c: string) => (c === "fan@remote" ? ({ subscription: "from", groups: [] } as const) : undefined) };
    const rs = compile("SUBSCRIBED?\nPASS.\n\nDROP.", { providers: { roster } }).ruleset!;
    // The recipient only *sends* presence to fan@remote: not subscribed in the README's sense.
    assert.equal(rs.run("deliver", { stanza: testStanza("<message from='fan@remote/x' to='me@local'/>") }).verdict, "drop");
  });

  bug("jump-builtin-bucket", "a built-in chain reached by JUMP CHAIN shares its LIMIT buckets with the chain itself (Prosody instantiates the handler twice)", () => {
    const rs = compile("%RATE r: 1\n\n::deliver\nLIMIT: r\nDROP.\n\n::preroute\nJUMP CHAIN=deliver", { clock: { now: () => 0 } }).ruleset!;
    assert.equal(rs.run("deliver", { stanza: testStanza("<message/>") }).verdict, "pass");
    assert.equal(rs.run("preroute", { stanza: testStanza("<message/>") }).verdict, "drop");
  });

  bug("inject-builder", "INJECT parses its snippet as XML: attributes with a 2, entities and text after a child are kept as written", () => {
    const rs = compile("INJECT=<a xmlns='urn:xmpp:mam:2' n='2'>fish &amp; chips<b/>after</a>").ruleset!;
    assert.equal(rs.run("deliver", { stanza: testStanza("<message/>") }).rewrite, "<message><a xmlns='urn:xmpp:mam:2' n='2'>fish &amp; chips<b/>after</a></message>");
    for (const bad of ["INJECT=<a/><b/>", "INJECT=<a>"]) assert.equal(compile(bad).errors.length, 1, bad);
  });

  bug("route-invalid-jid", "REDIRECT, COPY and FORWARD to what is no JID are refused at load", () => {
    for (const bad of ["REDIRECT=not a jid", "COPY= a@b", "FORWARD=@x"]) assert.equal(compile(bad).errors.length, 1, bad);
  });

  bug("runtime-errors", "rules that could only fail when they run are refused at load", () => {
    for (const bad of ["INJECT=not xml", "BOUNCE=:modify", "BOUNCE=a<b", "INSPECT: body#~=[\nDROP."]) assert.equal(compile(bad).errors.length, 1, bad);
  });

  bug("bounce-not-an-element", "a BOUNCE condition that is no element name is refused (Prosody sends it as one, which is not XML)", () => {
    assert.match(compile("BOUNCE=policy-violation(text)").errors[0]!.format(), /'policy-violation\(text\)' is not an error condition/);
  });

  bug("crossing-groups", "CROSSING GROUPS means no listed group holds both (README); Prosody's code reads 'not (both in a) or (both in b)'", () => {
    const members: Record<string, string[]> = { Marketing: ["m@local"], Engineering: ["e1@local", "e2@local"], a: ["x@local", "y@local"] };
    const groups = { contains: (g: string, jid: string) => members[g]?.includes(jid) ?? false };
    const rs = compile("CROSSING GROUPS: Marketing, Engineering\nDROP.\n\nCROSSING GROUPS: a, bb\nLOG=crossing a", { providers: { groups } }).ruleset!;
    // Two engineers: not crossing (Prosody: crossing, since they are not both in Marketing).
    assert.equal(rs.run("deliver", { stanza: testStanza("<message from='e1@local/r' to='e2@local'/>") }).verdict, "pass");
    assert.equal(rs.run("deliver", { stanza: testStanza("<message from='m@local/r' to='e1@local'/>") }).verdict, "drop");
    // A one-letter group counts (Prosody's reader skips it).
    assert.deepEqual(rs.run("deliver", { stanza: testStanza("<message from='x@local/r' to='y@local'/>") }).logs, []);
  });

  bug("malformed-pattern", "a malformed Lua pattern is refused at load, even where Lua would only fail once a stanza reaches the bad part", () => {
    // string.match("", "q[") returns nil without error (the 'q' never matches),
    // which is all mod_firewall checks for a %PATTERN; INSPECT is not checked.
    const r = compile("%PATTERN p: q[\n\nINSPECT: body#~=q[\nDROP.");
    assert.equal(r.ruleset, undefined);
    assert.deepEqual(r.errors.map((e) => `${e.line}:${e.column} ${e.message}`), [
      "1:13 Invalid pattern 'p': malformed pattern (missing ']')",
      "3:18 invalid Lua pattern 'q[': malformed pattern (missing ']')",
    ]);
  });

  it("deliberate-differences.json lists exactly these bugs", () => {
    const listed = (JSON.parse(readFileSync(DIFFERENCES, "utf8")) as { id: string; reason: string }[]).map((d) => d.id);
    assert.deepEqual([...listed].sort(), [...BUG_IDS].sort());
  });
});
