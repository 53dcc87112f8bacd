// Seeding known accounts from a user list (prosodyctl shell user:list output).
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore } from "../../test/helpers/memory-store.js";
import { importAccounts, knownAccount, parseUserList } from "./user-import.js";

test("prosodyctl shell output, bare names with a default host, comments, problems", () => {
  const text = [
    "| paypal@example.org",
    "Matt@Example.org",
    "",
    "# a comment",
    "bob",
    "OK: Showing all 3 users",
    "two words",
    "x@y@example.org",
    "carol@example.org/res",
  ].join("\n");
  const r = parseUserList(text, "example.net");
  assert.deepEqual(r.entries, [
    { host: "example.org", username: "paypal" },
    { host: "example.org", username: "Matt" },
    { host: "example.net", username: "bob" },
  ]);
  assert.deepEqual(
    r.problems.map((p) => [p.line, p.message]),
    [
      [7, "expected one account per line"],
      [8, "not a valid username (nodeprep fails)"],
      [9, "expected a bare JID"],
    ],
  );
  assert.deepEqual(parseUserList("bob").problems.map((p) => p.message), ["no host (write user@host, or pass the host)"]);
});

test("import stores nodeprepped names with skeletons, once", () => {
  const store = new MemoryStore();
  const { entries } = parseUserList("paypal@example.org\nMatt@example.org\n");
  assert.deepEqual(importAccounts(store, entries, 5), { added: 2, alreadyKnown: 0 });
  assert.deepEqual(importAccounts(store, entries, 6), { added: 0, alreadyKnown: 2 });
  assert.deepEqual(store.getAccount("example.org", "matt"), { host: "example.org", username: "matt", skeleton: "rnatt", source: "import", created_at: 5, ip: null });
  assert.equal(store.findBySkeleton("example.org", "paypal"), "paypal");
  assert.equal(knownAccount("example.org", "a b", "import", 0, null), null);
});

test("the real output of prosodyctl shell user list, start-up banner included, imports as it is", () => {
  // Prosody 0.12.3 (Debian 12, no lua-unbound) prints this on stdout for
  // `prosodyctl shell user list localhost`.
  const out = "\n**************************\nProsody was unable to find lua-unbound\nThis package can be obtained in the following ways:\n\n  Debian/Ubuntu | sudo apt install lua-unbound                                  \n       luarocks | luarocks install luaunbound                                   \n         Source | https://www.zash.se/luaunbound.html                           \n\nOld DNS resolver library will be used\nMore help can be found on our website, at https://prosody.im/doc/depends\n**************************\n\nbob@localhost\nalice@localhost\nOK: Showing all 2 users\n";
  const r = parseUserList(out);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.entries, [{ host: "localhost", username: "bob" }, { host: "localhost", username: "alice" }]);
});
