// The SQLite roster store: what is learned survives a reopen (a restart),
// two connections to one file (two cluster workers) see each other's writes,
// and a version-1 state file gains the roster tables without losing anything.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { SCHEMA_VERSION, SqliteStore } from "../state/sqlite-store.js";
import { SqliteRosterStore } from "./roster-sqlite.js";
import type { RosterItem } from "./roster-store.js";

function tempPath(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "xg-roster-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "state.sqlite");
}

const BOB: RosterItem = { subscription: "both", ask: undefined, groups: ["Friends", "Work"] };
const CAROL: RosterItem = { subscription: "none", ask: "subscribe", groups: [] };

test("a learned roster survives closing and reopening the file", (t) => {
  const path = tempPath(t);
  const a = SqliteRosterStore.open(path);
  assert.equal(a.known("alice@example.org"), undefined);
  a.replace("alice@example.org", "7", new Map([["bob@example.org", BOB], ["carol@example.net", CAROL]]));
  a.setItem("alice@example.org", "dave@example.net", { subscription: "to", groups: ["X"] }, "8");
  a.setItem("alice@example.org", "carol@example.net", null, "9");
  a.setPendingIn("alice@example.org", "pat@example.net", true);
  a.setItem("unknown@example.org", "bob@example.org", BOB, "3");
  assert.equal(a.countKnown(), 1);
  a.close();

  const b = SqliteRosterStore.open(path);
  t.after(() => b.close());
  assert.deepEqual(b.known("alice@example.org"), { ver: "9" });
  assert.deepEqual(b.item("alice@example.org", "bob@example.org"), BOB);
  assert.deepEqual(b.item("alice@example.org", "dave@example.net"), { subscription: "to", ask: undefined, groups: ["X"] });
  assert.equal(b.item("alice@example.org", "carol@example.net"), undefined);
  assert.equal(b.pendingIn("alice@example.org", "pat@example.net"), true);
  assert.equal(b.pendingIn("alice@example.org", "bob@example.org"), false);
  // A push to a roster never seen whole: the item is kept, the roster stays unknown.
  assert.equal(b.known("unknown@example.org"), undefined);
  assert.deepEqual(b.item("unknown@example.org", "bob@example.org"), BOB);
  b.setPendingIn("alice@example.org", "pat@example.net", false);
  assert.equal(b.pendingIn("alice@example.org", "pat@example.net"), false);
});

test("two connections to one file (two workers): a write on one is read by the other at once, cache or not", (t) => {
  const path = tempPath(t);
  const w1 = SqliteRosterStore.open(path);
  const w2 = SqliteRosterStore.open(path);
  t.after(() => {
    w1.close();
    w2.close();
  });
  // w2 caches "unknown" first.
  assert.equal(w2.known("alice@example.org"), undefined);
  assert.equal(w2.item("alice@example.org", "bob@example.org"), undefined);
  w1.replace("alice@example.org", "1", new Map([["bob@example.org", BOB]]));
  assert.deepEqual(w2.known("alice@example.org"), { ver: "1" });
  assert.deepEqual(w2.item("alice@example.org", "bob@example.org"), BOB);
  w2.setItem("alice@example.org", "bob@example.org", null, "2");
  assert.equal(w1.item("alice@example.org", "bob@example.org"), undefined);
  assert.deepEqual(w1.known("alice@example.org"), { ver: "2" });
  w1.setPendingIn("alice@example.org", "x@y", true);
  assert.equal(w2.pendingIn("alice@example.org", "x@y"), true);
});

test("a version-1 state file is migrated: its accounts stay, the roster tables appear", (t) => {
  const path = tempPath(t);
  const s = SqliteStore.open(path);
  s.addAccount({ host: "example.org", username: "alice", skeleton: "alice", source: "import", created_at: 1, ip: null });
  s.close();
  const raw = new Database(path);
  raw.exec("DROP TABLE rosters; DROP TABLE roster_items; DROP TABLE roster_pending_in; DROP TABLE remote_lists; UPDATE meta SET value = '1' WHERE key = 'schema_version'");
  raw.close();
  const r = SqliteRosterStore.open(path);
  t.after(() => r.close());
  assert.equal(r.state.schemaVersion, SCHEMA_VERSION);
  assert.ok(r.state.hasAccount("example.org", "alice"));
  r.replace("alice@example.org", undefined, new Map());
  assert.deepEqual(r.known("alice@example.org"), { ver: undefined });
});
