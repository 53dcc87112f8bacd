// Bounded fuzzing of the rule-file parser and compiler (fast-check, fixed
// seeds, bounded runs and time): token soup and mutated example rule files.
// For any text, parsing and compiling never throw, and every diagnostic
// carries file:line:col pointing inside the file.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import fc from "fast-check";
import { parseRuleFile } from "./parser.js";
import { compileRuleSources } from "./compile.js";
import type { RuleError } from "./rule-error.js";

const FIXTURES = new URL("../../test/fixtures/firewall/", import.meta.url);
const NAMES = readdirSync(FIXTURES).filter((f) => f.endsWith(".pfw")).sort();
const FILES = NAMES.map((f) => readFileSync(new URL(f, FIXTURES), "utf8"));

const TOKENS = [
  "::deliver", "::preroute", "::user", "::chain", "%ZONE", "%LIST", "%DEFINE", "%ZONE myzone: a.example, b.example", "%LIST spam: file:bad_words.txt",
  "KIND: message", "TYPE: chat|normal", "TO: user@example.com", "FROM: *@spam.example", "INSPECT: body", "INSPECT: {jabber:x:data}x/field",
  "LIMIT: normal", "%LIMIT normal: 1/5s", "PAYLOAD: urn:xmpp:ping", "ENTERING: myzone", "FROM_FULL: a@b/c", "SUBNET: 10.0.0.0/8", "FROM IP: 1.2.3.4",
  "DROP.", "PASS.", "BOUNCE.", "BOUNCE=policy-violation", "BOUNCE=policy-violation (no spam)", "REPLY=hi", "LOG=$(stanza.attr.to)", "JUMP CHAIN=user/x",
  "MARK_ORIGIN=spammer", "ORIGIN_MARKED: spammer", "DISCONNECT.", "RETURN.", "STRIP=body", "FORWARD=a@b", "NOT", "NOT NOT", "?", "!", "=", ":", ".",
  "$<to>", "$(x.y)", "{", "}", "(", ")", "[", "]", "\\", "#", "-- comment", "\n", "\n\n", "  ", "\t", "\r\n", "é", "\u{1F600}", "\u0000",
];

function checkDiagnostics(text: string, list: readonly RuleError[], file: string): void {
  const lines = text.split(/\r\n|\r|\n/);
  for (const e of list) {
    const f = e.format();
    assert.match(f, /^[^:]+:\d+:\d+: \S/, f);
    assert.equal(e.file, file);
    assert.ok(Number.isInteger(e.line) && e.line >= 1 && e.line <= lines.length, `${f}: line out of range (1..${lines.length})`);
    assert.ok(Number.isInteger(e.column) && e.column >= 1 && e.column <= lines[e.line - 1]!.length + 1, `${f}: column out of range (line has ${lines[e.line - 1]!.length})`);
  }
}

function check(text: string): void {
  const file = "fuzz.pfw";
  let parsed: ReturnType<typeof parseRuleFile> | undefined;
  assert.doesNotThrow(() => {
    parsed = parseRuleFile(file, text);
  });
  checkDiagnostics(text, parsed!.errors, file);
  checkDiagnostics(text, parsed!.warnings, file);
  let compiled: ReturnType<typeof compileRuleSources> | undefined;
  assert.doesNotThrow(() => {
    compiled = compileRuleSources([{ file, text }]);
  });
  checkDiagnostics(text, compiled!.errors, file);
}

test("fuzz: token soup never throws; every diagnostic has file:line:col inside the file", () => {
  const soup = fc.array(fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...TOKENS) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) }), { maxLength: 60 })
    .map((parts) => parts.join(" "));
  fc.assert(fc.property(soup, check), { numRuns: 1500, seed: 8071, interruptAfterTimeLimit: 20_000 });
});

test("fuzz: mutated example rule files never throw; diagnostics stay in range", () => {
  const mutation = fc.record({ at: fc.nat(), del: fc.nat(30), ins: fc.oneof(fc.constantFrom(...TOKENS), fc.string({ maxLength: 8 })) });
  const arb = fc.tuple(fc.nat(FILES.length - 1), fc.array(mutation, { minLength: 1, maxLength: 8 })).map(([i, muts]) => {
    let t = FILES[i]!;
    for (const m of muts) {
      const at = t.length === 0 ? 0 : m.at % t.length;
      t = t.slice(0, at) + m.ins + t.slice(at + m.del);
    }
    return t;
  });
  fc.assert(fc.property(arb, check), { numRuns: 800, seed: 8072, interruptAfterTimeLimit: 20_000 });
});

test("fuzz: the mutations start from the example fixtures (most parse cleanly; pitfall-* show Prosody pitfalls)", () => {
  const clean = NAMES.filter((_, i) => parseRuleFile("f.pfw", FILES[i]!).errors.length === 0);
  assert.ok(clean.length >= 8, `clean fixtures: ${clean.join(", ")}`);
});
