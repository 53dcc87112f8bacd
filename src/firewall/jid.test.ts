// JID helpers: Prosody util.jid split semantics and the prep approximation.
// Splitting must agree with Prosody, or patterns would match differently.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bareJid, isValidJid, prepJid, splitJid } from "./jid.js";

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
