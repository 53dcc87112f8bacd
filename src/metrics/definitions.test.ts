import { test } from "node:test";
import assert from "node:assert/strict";
import { KINDS, kindIndex } from "./definitions.js";

test("kindIndex gives each kind its place in KINDS (the per-kind stanza counters are laid out by it)", () => {
  KINDS.forEach((k, i) => assert.equal(kindIndex(k), i));
});
