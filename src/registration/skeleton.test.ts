// Skeleton vectors computed by Prosody 0.12 through ICU 72 (docs/registration.md, "Names: nodeprep and skeletons"):
// nodeprep first, then the UTS #39 skeleton, must give the same strings here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { nodeprep } from "../xmpp/stringprep.js";
import { CONFUSABLES, MAX_SKELETON_INPUT, SKELETON_VERSION, skeleton } from "./skeleton.js";

/** [input, nodeprep, skeleton], as Prosody 0.12's util.encodings computes them. */
const VECTORS: readonly (readonly [string, string, string])[] = [
  ["admin", "admin", "adrnin"],
  ["\u0430dmin", "\u0430dmin", "adrnin"], // Cyrillic а
  ["adm1n", "adm1n", "adrnln"],
  ["admln", "admln", "adrnln"],
  ["matt", "matt", "rnatt"],
  ["rnatt", "rnatt", "rnatt"],
  ["paypal", "paypal", "paypal"],
  ["paypa1", "paypa1", "paypal"],
  ["PayPal", "paypal", "paypal"],
  ["\uFF21\uFF24\uFF2D\uFF29\uFF2E", "admin", "adrnin"], // full-width ＡＤＭＩＮ
  ["o0", "o0", "oO"],
  ["user.name", "user.name", "user.narne"],
  ["\u01C9", "lj", "lj"], // ǉ
  ["\u00DF", "ss", "ss"], // ß
  ["a\u200Bdmin", "admin", "adrnin"], // zero-width space
];

for (const [input, prepped, skel] of VECTORS) {
  test(`skeleton vector ${JSON.stringify(input)} → ${prepped} → ${skel}`, () => {
    assert.equal(nodeprep(input), prepped);
    assert.equal(skeleton(prepped), skel);
  });
}

test("pаypal (Cyrillic а) and paypal share a skeleton; adm1n and admin do not", () => {
  assert.equal(skeleton(nodeprep("p\u0430ypal")!), skeleton("paypal"));
  assert.notEqual(skeleton("adm1n"), skeleton("admin"));
});

test("skeletons are NFD, so precomposed and decomposed input agree", () => {
  assert.equal(skeleton("\u00E9"), skeleton("e\u0301"));
  assert.equal(skeleton("\u00E9"), "e\u0301");
});

test("input over ICU's limit has no skeleton", () => {
  assert.equal(skeleton("a".repeat(MAX_SKELETON_INPUT)), "a".repeat(MAX_SKELETON_INPUT));
  assert.equal(skeleton("a".repeat(MAX_SKELETON_INPUT + 1)), null);
});

test("a custom table replaces the shipped one, and the version names the data", () => {
  assert.equal(skeleton("abc", { b: "x" }), "axc");
  assert.ok(Object.keys(CONFUSABLES).length > 6000);
  assert.match(SKELETON_VERSION, /^uts39-skeleton\/1 unhomoglyph@\d+\.\d+\.\d+$/);
});
