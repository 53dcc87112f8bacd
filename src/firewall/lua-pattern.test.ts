// Lua patterns, pinned to what lua5.4 answers for the same calls (the values
// were read off lua5.4; test/differential/lua-pattern.test.ts compares many
// more with a live Lua): classes, sets, quantifiers, anchors, captures, %b,
// %f, bytes, the three ways Lua runs a pattern, and malformed patterns.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cachedLuaPattern, compileLuaPattern, globToLuaPattern, LuaPattern, LuaPatternError, type LuaPatternMode } from "./lua-pattern.js";

/** string.find(text, pattern) → [start, end, ...captures] or null; byte strings shown as text. */
function find(pattern: string, text: string): (string | number)[] | null {
  const r = compileLuaPattern(pattern, { mode: "find" }).find(text);
  return r === null ? null : [r.start, r.end, ...r.captures.map((c) => (typeof c === "string" ? Buffer.from(c, "latin1").toString("utf8") : c))];
}

function test(pattern: string, text: string, mode: LuaPatternMode = "match"): boolean {
  return compileLuaPattern(pattern, { mode }).test(text);
}

function gmatch(pattern: string, text: string): (string | number)[] {
  return compileLuaPattern(pattern, { mode: "gmatch" }).gmatchBytes(text);
}

describe("Lua patterns: frontier at the ends of the subject", () => {
  it("reads the positions before the first and after the last byte as '\\0'", () => {
    // Before: a frontier needing a non-letter after a word never matched at the end.
    assert.deepEqual(find("%f[%a]viagra%f[%A]", "buy viagra"), [5, 10]);
    assert.deepEqual(find("%f[%a]viagra%f[%A]", "viagra"), [1, 6]);
    assert.equal(test("%f[%a]viagra%f[%A]", "viagras"), false);
    assert.deepEqual(find("%f[%W]", "abc"), [4, 3]);
    assert.deepEqual(find("%f[^a-z]", "abc"), [4, 3]);
    // '\0' is not a space, so %f[%S] never matches at the start: before, it did.
    assert.equal(find("%f[%S]crypto", "crypto gains"), null);
    assert.deepEqual(find("%f[%S]crypto", "get crypto"), [5, 10]);
    assert.equal(test("%f[%S]crypto", "crypto gains"), false);
  });

  it("works the same through the RegExp form and the backtracking matcher", () => {
    for (const engine of ["auto", "backtrack"] as const) {
      const p = compileLuaPattern("%f[%a]viagra%f[%A]", { engine });
      assert.equal(p.test("buy viagra"), true, engine);
      assert.equal(p.test("buy viagra!"), true, engine);
      assert.equal(p.test("viagras"), false, engine);
    }
  });
});

describe("Lua patterns: classes (C locale, bytes)", () => {
  it("%z is the zero byte, %Z anything else (not a literal z)", () => {
    assert.equal(find("%z", "pizza"), null);
    assert.deepEqual(find("%z", "a\0b"), [2, 2]);
    assert.deepEqual(find("[%z]", "a\0b"), [2, 2]);
    assert.deepEqual(find("%Z+", "pizza"), [1, 5]);
  });

  it("classes and complements are ASCII; complements hold every byte ≥ 0x80", () => {
    assert.equal(test("^%a+$", "abcXYZ"), true);
    assert.equal(test("%a", "é"), false);
    assert.deepEqual(find("%A+", "café au lait"), [4, 6]);
    assert.equal(test("^%c$", "\x7f"), true);
    assert.equal(test("^%g+$", "!~"), true);
    assert.equal(test("%g", " "), false);
    assert.equal(test("^%p+$", "!/:@[`{~"), true);
    assert.equal(test("^%s+$", "\t\n\v\f\r "), true);
    assert.equal(test("^%x+$", "09afAF"), true);
    assert.equal(test("%x", "g"), false);
    assert.equal(test("^%w+$", "aZ9"), true);
    assert.equal(test("^%W$", "é"), false, "é is two bytes, each in %W");
    assert.equal(test("^%W%W$", "é"), true);
  });

  it("an escaped letter that is not a class is the letter itself", () => {
    assert.equal(find("%q", "x"), null);
    assert.deepEqual(find("%q", "q"), [1, 1]);
    assert.equal(test("%B", "B"), true);
    assert.equal(test("%F", "F"), true);
    assert.equal(test("%.", "a"), false);
    assert.equal(test("%%", "100%"), true);
  });
});

describe("Lua patterns: sets", () => {
  it("']' first is a member; '%]' escapes; a range may end at an escape's '%'", () => {
    assert.deepEqual(find("[]]", "]"), [1, 1]);
    assert.deepEqual(find("[^]]", "a"), [1, 1]);
    assert.equal(test("[^]]", "]"), false);
    // [a-%]] is one set: the empty range a..%, then ']'.
    assert.deepEqual(find("[a-%]]", "]"), [1, 1]);
    assert.equal(test("[a-%]]", "a"), false);
    assert.deepEqual(find("[%]-a]", "-"), [1, 1]);
    // ']-a' is the range ] .. a, which holds '^'.
    assert.deepEqual(find("[]-a]", "^"), [1, 1]);
  });

  it("ranges, reversed ranges, '-' at the edges, classes inside", () => {
    assert.equal(find("[z-a]", "q"), null);
    assert.equal(test("[^z-a]", "q"), true);
    assert.equal(test("^[a-]+$", "-a-"), true);
    assert.equal(test("^[-a]+$", "a-"), true);
    assert.equal(test("^[%d.]+$", "1.25"), true);
    assert.equal(test("^[%S]+$", "ab"), true);
    assert.equal(test("[A-Za-:z]", "::"), false);
  });

  it("a non-ASCII character in a set is its bytes", () => {
    assert.deepEqual(find("^[é]+$", "éé"), [1, 4]);
    assert.equal(test("^[é]$", "é"), false);
  });
});

describe("Lua patterns: quantifiers, anchors, captures, %b", () => {
  it("'-' is lazy; a quantifier after ')' is literal", () => {
    assert.deepEqual(find("<.->", "<a><b>"), [1, 3]);
    assert.deepEqual(find("<.*>", "<a><b>"), [1, 6]);
    assert.equal(test("(a)*", "a*"), true);
    assert.equal(test("^(a)*$", "aa"), false);
  });

  it("'^' anchors only first, '$' only last", () => {
    assert.equal(test("^ab", "cab"), false);
    assert.equal(test("ab$", "abc"), false);
    assert.equal(test("a$b", "a$b"), true);
    assert.equal(test("x^y", "x^y"), true);
    assert.deepEqual(find("^", "abc"), [1, 0]);
    assert.deepEqual(find("$", "abc"), [4, 3]);
  });

  it("captures, position captures, back-references", () => {
    assert.deepEqual(compileLuaPattern("(%w+)%s*=%s*(%w+)").match("key = value")?.map((v) => String(v)), ["key", "value"]);
    assert.deepEqual(find("()o()", "hello world"), [5, 5, 5, 6]);
    assert.deepEqual(find("(abc)%1", "abcabc"), [1, 6, "abc"]);
    // A back-reference to a position capture never matches.
    assert.equal(find("()a%1", "aa"), null);
    assert.equal(compileLuaPattern("(a)(b)()").captures, 3);
  });

  it("%b matches balanced pairs", () => {
    assert.deepEqual(find("%b()", "x(a(b)c)y"), [2, 8]);
    assert.deepEqual(find("%b()", "f(a(b)c"), [4, 6]);
    assert.equal(compileLuaPattern("%b()").source, null, "no RegExp form");
    assert.equal(test("^%b<>$", "<a<b>>"), true);
  });
});

describe("Lua patterns: bytes", () => {
  it("'.' is one byte of a multibyte character", () => {
    assert.equal(find("^.$", "é"), null);
    assert.deepEqual(find("^..$", "é"), [1, 2]);
    assert.equal(test("^.$", "é"), false);
    // A quantifier after a multibyte character repeats its last byte.
    assert.deepEqual(find("é+", "éé"), [1, 2]);
  });

  it("long texts are converted as well as short ones", () => {
    const long = `${"a".repeat(6000)}éb`;
    assert.deepEqual(find("é.$", long), [6001, 6003]);
    assert.deepEqual(find("é.$", "éb"), [1, 3]);
    assert.deepEqual(find("é.$", long), [6001, 6003]);
  });

  it("test() gives Lua's verdict whether it runs on the bytes or on the string", () => {
    for (const [pattern, text, want] of [
      ["^%a+$", "abcé", false],
      ["[^a]b", "éb", true],
      ["^[^a]b$", "éb", false],
      ["%f[%a]b", "éb", true],
      ["%f[%A]$", "éa", true],
      ["%f[%A]$", "aé", false],
      ["^%a+é$", "abé", true],
      // %b takes two bytes: the two of é.
      ["%bé!", "xé!", true],
    ] as const) {
      assert.equal(test(pattern, text), want, `${pattern} on ${text}`);
      assert.equal(compileLuaPattern(pattern, { engine: "backtrack" }).test(text), want, `${pattern} on ${text} (backtracking)`);
    }
  });
});

describe("Lua patterns: find, match and gmatch", () => {
  it("string.find searches for plain text when the pattern has no special character", () => {
    assert.deepEqual(find("a)", "a)b"), [1, 2]);
    assert.equal(test("a)", "a)b", "find"), true);
    assert.throws(() => compileLuaPattern("a)", { mode: "match" }), /invalid pattern capture/);
    assert.throws(() => compileLuaPattern("a)", { mode: "gmatch" }), /invalid pattern capture/);
    assert.throws(() => compileLuaPattern("a).", { mode: "find" }), /invalid pattern capture/);
  });

  it("gmatch never anchors: a leading '^' is an ordinary character", () => {
    assert.deepEqual(gmatch("^%a", "^a ^b ab"), ["^a", "^b"]);
    assert.deepEqual(gmatch("^ab", "abab"), []);
    assert.equal(compileLuaPattern("^ab", { mode: "gmatch" }).count("abab"), 0);
    assert.equal(compileLuaPattern("^ab", { mode: "match" }).test("abab"), true);
  });

  it("gmatch yields the first capture or the whole match; empty matches step over bytes", () => {
    assert.deepEqual(gmatch("%a+", "one two  three"), ["one", "two", "three"]);
    assert.deepEqual(gmatch("(%a+)=%d+", "a=1, b=2"), ["a", "b"]);
    assert.deepEqual(gmatch("%a*", "ab1c"), ["ab", "c"]);
    assert.deepEqual(gmatch("()", "abc"), [1, 2, 3, 4]);
    // One empty match per byte position: é is two bytes.
    assert.deepEqual(gmatch("%a*", "é"), ["", "", ""]);
    assert.equal(compileLuaPattern("%a*", { mode: "gmatch" }).count("é"), 3);
    assert.deepEqual(gmatch(".", "aé"), ["a", "\xc3", "\xa9"]);
  });

  it("tokens() keeps the values that can be list entries: text, not positions or split characters", () => {
    const p = (s: string) => compileLuaPattern(s, { mode: "gmatch" });
    assert.deepEqual(p("%S+").tokens("café au lait"), ["café", "au", "lait"]);
    assert.deepEqual(p(".").tokens("aé"), ["a"]);
    assert.deepEqual(p("()a").tokens("aa"), []);
    assert.equal(p("()a").count("aa"), 2);
    assert.deepEqual(p("[^,]+").tokens("x,é€,y"), ["x", "é€", "y"]);
    // Two repetitions split é between them: Lua's first capture is its first
    // byte alone, which no list entry can equal (on the UTF-16 string the
    // first capture would be "", a token).
    assert.deepEqual(p("(%S*)(%S+)x").gmatchBytes("éx"), ["\xc3"]);
    assert.deepEqual(p("(%S*)(%S+)x").tokens("éx"), []);
    assert.equal(p("(%S*)(%S+)x").count("éx"), 1);
  });
});

describe("Lua patterns: malformed patterns are refused with Lua's message", () => {
  const refuse = (pattern: string, message: RegExp, index?: number, mode: LuaPatternMode = "match") => {
    try {
      compileLuaPattern(pattern, { mode });
    } catch (e) {
      assert.ok(e instanceof LuaPatternError, String(e));
      assert.match(e.message, message, pattern);
      if (index !== undefined) assert.equal(e.index, index, `${pattern}: index`);
      return;
    }
    assert.fail(`${pattern} was accepted`);
  };

  it("reports each malformation where it is", () => {
    refuse("ab[c", /^malformed pattern \(missing '\]'\)/, 2);
    refuse("[]", /missing '\]'/, 0);
    refuse("[^]", /missing '\]'/, 0);
    refuse("é[", /missing '\]'/, 1);
    refuse("a%", /^malformed pattern \(ends with '%'\)/, 1);
    refuse("x%fa", /^missing '\[' after '%f' in pattern/, 1);
    refuse("%f[a", /missing '\]'/, 2);
    refuse("%bx", /^malformed pattern \(missing arguments to '%b'\)/, 0);
    refuse("a)", /^invalid pattern capture/, 1);
    refuse("(a", /^unfinished capture/, 0);
    refuse("a((b)", /^unfinished capture/, 1);
    refuse("%0", /^invalid capture index %0/);
    refuse("(a)%2", /^invalid capture index %2/, 3);
    refuse("(a%1)", /^invalid capture index %1/, 2);
    refuse("()".repeat(33), /^too many captures/, 64);
    refuse("a?".repeat(200), /^pattern too complex/);
  });

  it("accepts what Lua runs: 32 captures, 199 nested calls", () => {
    assert.equal(compileLuaPattern("()".repeat(32)).captures, 32);
    assert.ok(compileLuaPattern("a?".repeat(199)).test("a".repeat(199)));
  });

  it("cachedLuaPattern keeps errors too", () => {
    assert.ok(cachedLuaPattern("%d+") instanceof LuaPattern);
    assert.ok(cachedLuaPattern("%d+") === cachedLuaPattern("%d+"));
    assert.ok(cachedLuaPattern("(") instanceof LuaPatternError);
  });
});

describe("globToLuaPattern", () => {
  it("builds mod_firewall's pattern: punctuation escaped, * and ? wild, anchored", () => {
    assert.equal(globToLuaPattern("*.example.com"), "^.*%.example%.com$");
    assert.equal(globToLuaPattern("a?c"), "^a.c$");
    assert.equal(globToLuaPattern("100%"), "^100%%$");
    const p = compileLuaPattern(globToLuaPattern("?"), { mode: "find" });
    assert.equal(p.test("a"), true);
    // '?' is one byte, so it does not match a two-byte character.
    assert.equal(p.test("é"), false);
  });
});
