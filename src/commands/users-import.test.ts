// `users import`: file:line errors, the summary, exit codes, and idempotence.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { SqliteStore } from "../state/sqlite-store.js";
import { importUsersCommand } from "./users-import.js";

test("imports good lines, reports bad ones with file:line, and is idempotent", async () => {
  const dir = mkdtempSync(join(tmpdir(), "xg-import-"));
  try {
    const list = join(dir, "users.txt");
    const state = join(dir, "state.sqlite");
    writeFileSync(list, "| paypal@example.org\n| Alice@example.org\nbare\nbad name@example.org\nOK: Showing all 2 users\n");
    const r1 = await importUsersCommand(list, state);
    assert.deepEqual(r1.errors, [
      `${list}:3: no host (write user@host, or pass the host): "bare"`,
      `${list}:4: expected one account per line: "bad name@example.org"`,
    ]);
    assert.equal(r1.summary, `${list} → ${state}: 2 imported, 0 already known, 2 refused`);
    assert.equal(r1.exitCode, 1);
    const r2 = await importUsersCommand(list, state, "example.org");
    assert.equal(r2.imported, 1);
    assert.equal(r2.alreadyKnown, 2);
    assert.equal(r2.refused, 1);
    const store = SqliteStore.open(state);
    try {
      assert.equal(store.countAccounts("example.org"), 3);
      assert.equal(store.getAccount("example.org", "alice")?.source, "import");
    } finally {
      store.close();
    }
    writeFileSync(list, "carol@example.org\n");
    const r3 = await importUsersCommand(list, state);
    assert.equal(r3.exitCode, 0);
    assert.deepEqual(r3.errors, []);
    const missing = await importUsersCommand(join(dir, "nope.txt"), state);
    assert.equal(missing.exitCode, 1);
    assert.match(missing.errors[0]!, /nope\.txt: cannot read the account list: ENOENT$/);
    writeFileSync(join(dir, "notdb"), "this is not sqlite, just text padding ".repeat(200));
    const corrupt = await importUsersCommand(list, join(dir, "notdb"));
    assert.equal(corrupt.exitCode, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
