// The nodeprep approximation: mapping, case folding, NFKC, and prohibitions
// that must be a subset of the real profile's (never refuse what the server takes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_NODE_BYTES, nodeprep } from "./nodeprep.js";

test("maps to nothing (B.1), folds case (B.2) and normalises (NFKC)", () => {
  assert.equal(nodeprep("Alice"), "alice");
  assert.equal(nodeprep("a\u00ADb\uFEFFc\u200D"), "abc");
  assert.equal(nodeprep("Stra\u00DFe"), "strasse");
  assert.equal(nodeprep("\u2168"), "ix", "Roman numeral nine: NFKC gives capitals, folded again");
  assert.equal(nodeprep("\u210C"), "h", "black-letter H");
  assert.equal(nodeprep("\uFB01le"), "file", "ligature");
  assert.equal(nodeprep("\u0130"), "i\u0307");
  assert.equal(nodeprep("\u03A3\u03B1\u03C2"), "\u03C3\u03B1\u03C2");
  assert.equal(nodeprep("e\u0301"), "\u00E9");
  assert.equal(nodeprep("user.name-1_x"), "user.name-1_x");
});

test("prohibited characters and empty results are invalid", () => {
  for (const bad of ["", "\u200B", "a b", "a\u00A0b", "a\u3000b", 'a"b', "a&b", "a'b", "a/b", "a:b", "a<b", "a>b", "a@b", "a\u0000b", "a\u0085b", "\uE000", "\uFDD0", "\u{10FFFF}", "\uD800", "a\u200Eb", "\u{E0041}", "\u2FF0", "\uFFFD"]) {
    assert.equal(nodeprep(bad), null, JSON.stringify(bad));
  }
});

test("the 1023-byte limit applies to input and output", () => {
  assert.equal(nodeprep("a".repeat(MAX_NODE_BYTES)), "a".repeat(MAX_NODE_BYTES));
  assert.equal(nodeprep("a".repeat(MAX_NODE_BYTES + 1)), null);
  assert.equal(nodeprep("\u00E9".repeat(512)), null, "1024 bytes of UTF-8");
  assert.equal(nodeprep("\uFDFA".repeat(100)), null, "NFKC expands U+FDFA to 18 characters");
});
