// Lua pattern translation: classes, sets, quantifiers, anchors, captures,
// frontier; unsupported features are errors; gmatch iteration semantics.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { anchoredLuaPattern, gmatch, translateLuaPattern } from "./lua-pattern.js";

function matches(pattern: string, text: string): string | null {
  const m = new RegExp(translateLuaPattern(pattern).source).exec(text);
  return m ? m[0] : null;
}

describe("translateLuaPattern", () => {
  it("classes and their complements are ASCII", () => {
    assert.equal(matches("%a+", "12abc3"), "abc");
    assert.equal(matches("%d+", "ab123c"), "123");
    assert.equal(matches("%s", "a b"), " ");
    assert.equal(matches("%S+", "  hé "), "hé");
    assert.equal(matches("%w+", "__ab9_"), "ab9");
    assert.equal(matches("%x+", "zzBEEFzz"), "BEEF");
    assert.equal(matches("%p+", "ab.,!cd"), ".,!");
    assert.equal(matches("%u%l", "aBc"), "Bc");
    assert.equal(matches("%A+", "ab12;c"), "12;");
  });

  it("escapes and literals", () => {
    assert.equal(matches("%.", "a.b"), ".");
    assert.equal(matches("a.b", "a\nb"), "a\nb");
    assert.equal(matches("1+1", "11+1"), "11");
    assert.equal(matches("%%", "100%"), "%");
    assert.equal(matches("a$b", "a$b"), "a$b");
    assert.equal(matches("x^y", "x^y"), "x^y");
  });

  it("sets, ranges and negated sets", () => {
    assert.equal(matches("[A-Za-z]+", "12Hello3"), "Hello");
    assert.equal(matches("[^%s]+", "  abc "), "abc");
    assert.equal(matches("[%d.]+", "v1.25x"), "1.25");
    assert.equal(matches("[]]", "a]"), "]");
    assert.equal(matches("[a-]+", "-a-b"), "-a-");
    assert.equal(matches("[%S]+", " ab "), "ab");
    // A reversed range matches nothing in Lua; it must not make an invalid RegExp (found by fuzzing).
    assert.equal(matches("[A-Za-:z]+", "::b"), null);
    assert.equal(matches("[z-ab]+", "zab"), "b");
    assert.equal(matches("[^z-a]", "q"), "q");
  });

  it("quantifiers: * + ? and lazy -", () => {
    assert.equal(matches("a*", "aaab"), "aaa");
    assert.equal(matches("<.->", "<a><b>"), "<a>");
    assert.equal(matches("<.*>", "<a><b>"), "<a><b>");
    assert.equal(matches("https?://", "http://"), "http://");
  });

  it("anchors only at the ends", () => {
    assert.equal(matches("^ab", "cab"), null);
    assert.equal(matches("ab$", "abc"), null);
    assert.equal(matches("^admin%d*$", "admin42"), "admin42");
  });

  it("captures, back references and the frontier pattern", () => {
    assert.equal(translateLuaPattern("(%a+)=(%d+)").captures, 2);
    assert.equal(matches("(%a)%1", "xyzzy"), "zz");
    assert.equal(matches("%f[%w]%w+", "..word"), "word");
    // A quantifier after ')' is a literal in Lua.
    assert.equal(matches("(a)*", "a*"), "a*");
  });

  it("refuses what a RegExp cannot express, and malformed patterns", () => {
    assert.throws(() => translateLuaPattern("%b()"), /balanced/);
    assert.throws(() => translateLuaPattern("()a"), /position captures/);
    assert.throws(() => translateLuaPattern("[a"), /missing '\]'/);
    assert.throws(() => translateLuaPattern("a%"), /ends with '%'/);
    assert.throws(() => translateLuaPattern("(a"), /unfinished capture/);
    assert.throws(() => translateLuaPattern("a)"), /unmatched/);
    assert.throws(() => translateLuaPattern("%1"), /invalid capture index/);
  });

  it("anchoredLuaPattern matches whole strings", () => {
    const re = new RegExp(anchoredLuaPattern("admin%d*"));
    assert.ok(re.test("admin7"));
    assert.ok(!re.test("xadmin7"));
  });
});

describe("gmatch", () => {
  it("iterates matches, yielding the first capture when there is one", () => {
    const word = new RegExp(translateLuaPattern("[A-Za-z]+").source);
    assert.deepEqual([...gmatch("Buy cheap pills!", word, 0)], ["Buy", "cheap", "pills"]);
    const kv = new RegExp(translateLuaPattern("(%a+)=%d+").source);
    assert.deepEqual([...gmatch("a=1, b=2", kv, 1)], ["a", "b"]);
  });

  it("empty matches advance and never repeat at the previous match's end", () => {
    const re = new RegExp(translateLuaPattern("%a*").source);
    // Lua 5.4: ("ab1c"):gmatch("%a*") yields "ab", "c".
    assert.deepEqual([...gmatch("ab1c", re, 0)], ["ab", "c"]);
    assert.deepEqual([...gmatch("12", re, 0)], ["", "", ""]);
  });
});
