// JID helpers: Prosody util.jid split semantics and the prep approximation.
// Splitting must agree with Prosody, or patterns would match differently.
import assert from "node:assert/strict";
import { describe, it, test } from "node:test";
import fc from "fast-check";
import { bareJid, isValidJid, prepJid, splitJid } from "./jid.js";
import { nameprep, nodeprep, resourceprep } from "./stringprep.js";

describe("splitJid", () => {
  const cases: [string | undefined, [string | undefined, string | undefined, string | undefined]][] = [
    ["user@example.com/res", ["user", "example.com", "res"]],
    ["example.com", [undefined, "example.com", undefined]],
    ["example.com/r/s", [undefined, "example.com", "r/s"]],
    ["a/b@c", [undefined, "a", "b@c"]],
    ["<*>@<*>/<*>", ["<*>", "<*>", "<*>"]],
    ["a@b@c", [undefined, undefined, undefined]],
    ["@b", [undefined, undefined, undefined]],
    ["a@", [undefined, undefined, undefined]],
    ["a@b/", [undefined, undefined, undefined]],
    [undefined, [undefined, undefined, undefined]],
  ];
  for (const [jid, [node, host, resource]] of cases) {
    it(String(jid), () => assert.deepEqual(splitJid(jid), { node, host, resource }));
  }
});

describe("prepJid / bareJid / isValidJid", () => {
  it("lower-cases node and domain but not the resource", () => {
    assert.equal(prepJid("Alice@Example.COM./Phone"), "alice@example.com/Phone");
    assert.equal(prepJid("ＡＢ@example.com"), "ab@example.com");
    assert.equal(prepJid("not@valid@jid"), "not@valid@jid");
  });

  it("bare drops the resource", () => {
    assert.equal(bareJid("a@b/c"), "a@b");
    assert.equal(bareJid("b/c"), "b");
    assert.equal(bareJid("@@"), undefined);
  });

  it("validates action JIDs", () => {
    assert.ok(isValidJid("a@b"));
    assert.ok(!isValidJid("a b@c"));
    assert.ok(!isValidJid("@c"));
  });
});

describe("prepJid fast path and memos", () => {
  // The reference: the full algorithm, never memoised.
  function reference(jid: string): string {
    const p = splitJid(jid);
    if (p.host === undefined || p.host === ".") return jid;
    const host = nameprep(p.host.endsWith(".") ? p.host.slice(0, -1) : p.host);
    const node = p.node === undefined ? undefined : nodeprep(p.node);
    const resource = p.resource === undefined ? undefined : resourceprep(p.resource);
    if (host === null || node === null || resource === null) return jid;
    let out = node !== undefined ? `${node}@${host}` : host;
    if (resource !== undefined) out += `/${resource}`;
    return out;
  }

  it("agrees with the full algorithm on JID-like strings (ASCII, upper case, dots, non-ASCII)", () => {
    fc.assert(fc.property(fc.array(fc.constantFrom("a", "B", ".", "@", "/", " ", "é", "Ａ", "x", "1", "ß", "Σ", "\u00AD"), { maxLength: 12 }), (parts) => {
      const jid = parts.join("");
      assert.equal(prepJid(jid), reference(jid), JSON.stringify(jid));
      assert.equal(prepJid(jid), reference(jid), `memoised: ${JSON.stringify(jid)}`);
      const p = splitJid(jid);
      assert.equal(bareJid(jid), p.host === undefined ? undefined : p.node !== undefined ? `${p.node}@${p.host}` : p.host);
    }), { numRuns: 3000 });
  });

  it("keeps working past the memo bound", () => {
    for (let i = 0; i < 5000; i++) assert.equal(prepJid(`U${i}@Example.org/R`), `u${i}@example.org/R`);
    assert.equal(prepJid("U1@Example.org/R"), "u1@example.org/R");
  });
});

test("the memoised forms answer for the JID asked, however calls interleave", () => {
  const jids = ["Romeo@Example.NET/Orchard", "juliet@example.com/balcony", "example.org.", "bad@/x", "Romeo@Example.NET/Orchard"];
  const expected = jids.map((j) => [prepJid(j), bareJid(j), splitJid(j)] as const);
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < jids.length; i++) {
      // A fresh string with the same characters must get the same answers as the cached object.
      const j = round === 1 ? `${jids[i]!} `.trimEnd() : jids[i]!;
      assert.equal(prepJid(j), expected[i]![0], `prep ${j}`);
      assert.equal(bareJid(j), expected[i]![1], `bare ${j}`);
      assert.deepEqual(splitJid(j), expected[i]![2], `split ${j}`);
    }
  }
  assert.equal(prepJid("Romeo@Example.NET/Orchard"), "romeo@example.net/Orchard");
  assert.equal(bareJid("juliet@example.com/balcony"), "juliet@example.com");
});
