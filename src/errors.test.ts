import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ERRORS, ProxyError } from "./errors.js";

test("docs/errors.md documents exactly the catalogue, with the same conditions", () => {
  const doc = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");
  const rows = new Map<string, string>();
  for (const m of doc.matchAll(/^\| `(XPX_ERR_[A-Z0-9_]+)` \| ([^|]+) \|/gm)) rows.set(m[1]!, m[2]!.trim());
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERRORS).sort());
  for (const [code, entry] of Object.entries(ERRORS)) {
    const cell = rows.get(code)!;
    if (entry.condition === null) assert.match(cell, /^—/, code);
    else assert.equal(cell, `\`<${entry.condition}/>\``, code);
  }
});

test("ProxyError carries code, condition and a detailed message", () => {
  const e = new ProxyError("XPX_ERR_STANZA_TOO_LARGE", "300000 bytes");
  assert.equal(e.code, "XPX_ERR_STANZA_TOO_LARGE");
  assert.equal(e.condition, "policy-violation");
  assert.equal(e.message, "stanza exceeds max_stanza_size: 300000 bytes");
  assert.ok(e instanceof Error);
});
