// Lua patterns as the rule language uses them, end to end through compiled
// rule sets: INSPECT ~= (string.match), SCAN and COUNT (string.gmatch over a
// %PATTERN), JID <<patterns>> and <globs> (string.find on "^…$"), and what is
// refused or warned about at load. Each expectation is what mod_firewall on
// Lua 5.4 does with the same rule.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileRuleSources } from "./compile.js";
import { testStanza } from "../../test/helpers/test-stanza.js";

function load(text: string) {
  const r = compileRuleSources([{ file: "t.pfw", text }]);
  return { ruleset: r.ruleset, errors: r.errors.map((e) => e.format()), warnings: r.warnings.map((e) => e.format()) };
}

/** Whether the rule file drops the stanza (deliver chain). */
function drops(text: string, xml: string): boolean {
  const r = load(text);
  assert.deepEqual(r.errors, []);
  return r.ruleset!.run("deliver", { stanza: testStanza(xml) }).verdict === "drop";
}

const msg = (body: string, from = "x@example.com/r") => `<message to='a@localhost' from='${from}' id='m1'><body>${body}</body></message>`;

describe("INSPECT ~= (string.match)", () => {
  it("a frontier matches at both ends of the text", () => {
    const rule = "INSPECT: body#~=%f[%a]viagra%f[%A]\nDROP.";
    assert.ok(drops(rule, msg("buy viagra")));
    assert.ok(drops(rule, msg("viagra")));
    assert.ok(!drops(rule, msg("viagras")));
    // '\0' before the text is not a space: %f[%S] never matches at the start.
    const crypto = "INSPECT: body#~=%f[%S]crypto\nDROP.";
    assert.ok(!drops(crypto, msg("crypto gains")));
    assert.ok(drops(crypto, msg("buy crypto")));
  });

  it("%z is the zero byte, not a 'z'", () => {
    assert.ok(!drops("INSPECT: body#~=%z\nDROP.", msg("pizza")));
  });

  it("'.' is a byte: a two-byte character takes two", () => {
    assert.ok(!drops("INSPECT: body#~=^caf.$\nDROP.", msg("café")));
    assert.ok(drops("INSPECT: body#~=^caf..$\nDROP.", msg("café")));
  });

  it("%b and position captures work", () => {
    assert.ok(drops("INSPECT: body#~=%b()\nDROP.", msg("see (this)")));
    assert.ok(!drops("INSPECT: body#~=%b()\nDROP.", msg("see (this")));
    assert.ok(drops("INSPECT: body#~=()x\nDROP.", msg("x")));
  });

  it("a malformed pattern is refused at load, at its character", () => {
    assert.deepEqual(load("INSPECT: body#~=spam(\nDROP.").errors, ["t.pfw:1:21: invalid Lua pattern 'spam(': unfinished capture"]);
    assert.deepEqual(load("INSPECT: body#~=a[b\nDROP.").errors, ["t.pfw:1:18: invalid Lua pattern 'a[b': malformed pattern (missing ']')"]);
  });

  it("a pattern built per stanza that Lua would refuse makes the condition false", () => {
    const rule = "INSPECT: body#$~=$<@from|node>\nDROP.";
    assert.ok(drops(rule, msg("hello x", "x@example.com/r")));
    assert.ok(!drops(rule, msg("a(b", "a(b@example.com/r")));
  });
});

describe("SCAN and COUNT (string.gmatch over a %PATTERN)", () => {
  it("'^' at the start of the pattern is an ordinary character, with a warning", () => {
    const text = "%SEARCH body: body#\n%PATTERN w: ^%a+\nCOUNT: w in body >= 1\nDROP.";
    assert.ok(!drops(text, msg("hello")));
    assert.ok(drops(text, msg("say ^hi")));
    assert.deepEqual(load(text).warnings, [
      "t.pfw:2:13: '^' at the start of %PATTERN w is an ordinary character: SCAN and COUNT use string.gmatch, which never anchors",
    ]);
  });

  it("COUNT counts empty matches per byte", () => {
    // ("é"):gmatch("%a*") takes 3 steps: before, inside and after the two bytes.
    const text = "%SEARCH body: body#\n%PATTERN w: %a*\nCOUNT: w in body == 3\nDROP.";
    assert.ok(drops(text, msg("é")));
    assert.ok(!drops(text, msg("e")));
  });

  it("SCAN looks up whole tokens, non-ASCII ones included", () => {
    const text = "%SEARCH body: body#\n%PATTERN word: %S+\n%LIST words: memory\nKIND: message\nADD TO=words café\n\nSCAN: body for word in words\nDROP.";
    assert.ok(drops(text, msg("un café noir")));
    assert.ok(!drops(text, msg("un cafés noir")));
  });
});

describe("JID patterns (string.find on \"^…$\")", () => {
  it("<<…>> is glued between '^' and '$' as mod_firewall does, so its own anchors are characters", () => {
    const caret = "FROM: <<^admin>>@example.com\nDROP.";
    assert.ok(!drops(caret, msg("hi", "admin@example.com/r")));
    assert.ok(drops(caret, msg("hi", "^admin@example.com/r")));
    const dollar = "FROM: <<admin$>>@example.com\nDROP.";
    assert.ok(!drops(dollar, msg("hi", "admin@example.com/r")));
    assert.ok(drops(dollar, msg("hi", "admin$@example.com/r")));
    // A trailing '%' escapes the appended '$': any node starting with "adm$".
    assert.ok(drops("FROM: <<adm%>>@example.com\nDROP.", msg("hi", "adm$in@example.com/r")));
  });

  it("warns about those anchors and the trailing '%'", () => {
    assert.deepEqual(load("FROM: <<^admin>>@example.com\nDROP.").warnings, [
      "t.pfw:1:7: '^' at the start of <<^admin>> is an ordinary character: the pattern is already anchored, so it only matches a '^' in the JID",
    ]);
    assert.equal(load("FROM: <<admin$>>@example.com\nDROP.").warnings.length, 1);
    assert.equal(load("FROM: <<adm%>>@example.com\nDROP.").warnings.length, 1);
    assert.deepEqual(load("FROM: <<adm%$>>@<<ex%%>>\nDROP.").warnings, []);
  });

  it("a frontier and classes work inside <<…>>; a malformed one is refused", () => {
    assert.ok(drops("FROM: <<bot%d+>>@example.com\nDROP.", msg("hi", "bot42@example.com/r")));
    assert.ok(!drops("FROM: <<bot%d+>>@example.com\nDROP.", msg("hi", "bot42x@example.com/r")));
    assert.deepEqual(load("FROM: <<bot(>>@example.com\nDROP.").errors, ["t.pfw:1:7: invalid Lua pattern <<bot(>>: unfinished capture"]);
  });

  it("a glob's '?' is one byte", () => {
    const rule = "FROM: <?>@example.com\nDROP.";
    assert.ok(drops(rule, msg("hi", "a@example.com/r")));
    assert.ok(!drops(rule, msg("hi", "é@example.com/r")));
    assert.ok(drops("FROM: <??>@example.com\nDROP.", msg("hi", "é@example.com/r")));
    assert.ok(drops("FROM: <*>@<*.example.com>\nDROP.", msg("hi", "a@chat.example.com/r")));
    assert.ok(!drops("FROM: <*>@<*.example.com>\nDROP.", msg("hi", "a@chatxexample.com/r")));
  });
});
