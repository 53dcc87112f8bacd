// Lexer tests: trimming, comments, continuation lines and the positions they
// map back to, line classification (docs/firewall.md, "Files and syntax").
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { classify, lex } from "./lexer.js";
import { Diagnostics } from "./rule-error.js";

function lines(text: string) {
  const diag = new Diagnostics();
  const out = lex("t.pfw", text, diag);
  return { out, diag };
}

describe("lex", () => {
  it("trims ASCII whitespace and keeps physical positions", () => {
    const { out } = lines("  \tKIND: message  \r\n\nDROP.\n");
    assert.deepEqual(
      out.map((l) => [l.kind, l.text, l.loc.line, l.loc.column]),
      [
        ["condition", "KIND: message", 1, 4],
        ["blank", "", 2, 1],
        ["action", "DROP.", 3, 1],
      ],
    );
  });

  it("joins continuation lines without inserting a space", () => {
    const { out } = lines("KIND: mes\\\n    sage\nDROP.");
    assert.equal(out[0]!.text, "KIND: message");
    assert.equal(out[0]!.kind, "condition");
    // "sage" starts at line 2, column 5; the logical offset of 's' is 9.
    assert.deepEqual(out[0]!.locAt(9), { file: "t.pfw", line: 2, column: 5 });
    assert.deepEqual(out[0]!.locAt(6), { file: "t.pfw", line: 1, column: 7 });
    assert.equal(out[0]!.lastLine, 2);
    assert.equal(out[1]!.loc.line, 3);
  });

  it("keeps the space before a trailing backslash", () => {
    const { out } = lines("LOG=a \\\nb");
    assert.equal(out[0]!.text, "LOG=a b");
  });

  it("a comment ending in a backslash swallows the next line, as in Prosody", () => {
    const { out } = lines("# comment \\\nDROP.\nPASS.");
    assert.deepEqual(out.map((l) => l.kind), ["comment", "action"]);
    assert.equal(out[1]!.text, "PASS.");
  });

  it("reports a continuation at the end of the file", () => {
    const { diag } = lines("DROP.\n  LOG=x \\");
    assert.deepEqual(diag.errors.map((e) => e.format()), [
      "t.pfw:2:3: line continuation ('\\') at the end of the file: the continued line is never completed",
    ]);
  });

  it("strips a byte order mark", () => {
    const { out } = lines("\ufeffDROP.");
    assert.equal(out[0]!.text, "DROP.");
    assert.equal(out[0]!.loc.column, 1);
  });
});

describe("classify", () => {
  const cases: [string, string][] = [
    ["", "blank"],
    ["# note", "comment"],
    ["; note", "comment"],
    ["::user/x", "chain"],
    ["@@ trace = on", "metadata"],
    ["%RATE r: 1", "definition"],
    ["DROP.", "action"],
    ["JUMP CHAIN=user/x", "action"],
    ["jump_chain=user/x", "action"],
    ["BOUNCE=policy-violation (a.b)", "action"],
    ["KIND: message", "condition"],
    ["IN ROSTER?", "condition"],
    ["FROM: a@b.c", "condition"],
    ["INSPECT: {urn:x}y/z#=a.b", "condition"],
  ];
  for (const [text, kind] of cases) {
    it(`${JSON.stringify(text)} is ${kind}`, () => assert.equal(classify(text), kind));
  }
});
