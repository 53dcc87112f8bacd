// One contract, run against both RegistrationStore implementations: what the
// registration stage relies on must hold for memory and SQLite alike.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryStore } from "../../test/helpers/memory-store.js";
import type { KnownAccount, RegistrationStore } from "./registration-store.js";
import { SqliteStore } from "./sqlite-store.js";

const T0 = Date.UTC(2025, 0, 1);

function account(username: string, skeleton: string, extra: Partial<KnownAccount> = {}): KnownAccount {
  return { host: "example.org", username, skeleton, source: "registration", created_at: T0, ip: "192.0.2.1", ...extra };
}

interface Impl {
  readonly name: string;
  make(): { store: RegistrationStore; reopen?: () => RegistrationStore; cleanup(): void };
}

const IMPLS: Impl[] = [
  { name: "MemoryStore", make: () => ({ store: new MemoryStore(), cleanup: () => {} }) },
  {
    name: "SqliteStore",
    make() {
      const dir = mkdtempSync(join(tmpdir(), "xg-store-"));
      const path = join(dir, "nested", "state.sqlite");
      return { store: SqliteStore.open(path), reopen: () => SqliteStore.open(path), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
];

for (const impl of IMPLS) {
  test(`${impl.name}: throttle buckets round-trip and prune once refilled`, () => {
    const { store, cleanup } = impl.make();
    try {
      assert.equal(store.getThrottle("192.0.2.1"), undefined);
      store.putThrottle("192.0.2.1", { tokens: 0.5, updated_at: T0 });
      store.putThrottle("192.0.2.2", { tokens: 0, updated_at: T0 });
      assert.deepEqual(store.getThrottle("192.0.2.1"), { tokens: 0.5, updated_at: T0 });
      store.putThrottle("192.0.2.1", { tokens: 0.25, updated_at: T0 + 1 });
      assert.deepEqual(store.getThrottle("192.0.2.1"), { tokens: 0.25, updated_at: T0 + 1 });
      assert.equal(store.countThrottles(), 2);
      // Capacity 1, one token per 1000 ms: .1 refills at T0+751, .2 at T0+1000.
      assert.equal(store.pruneThrottles(T0 + 760, 1, 1 / 1000), 1);
      assert.equal(store.getThrottle("192.0.2.1"), undefined);
      assert.notEqual(store.getThrottle("192.0.2.2"), undefined);
      assert.equal(store.pruneThrottles(T0 + 1000, 1, 1 / 1000), 1);
      assert.equal(store.countThrottles(), 0);
    } finally {
      store.close();
      cleanup();
    }
  });

  test(`${impl.name}: accounts by name and by skeleton, per host`, () => {
    const { store, cleanup } = impl.make();
    try {
      assert.equal(store.addAccount(account("paypal", "paypal")), true);
      assert.equal(store.addAccount(account("paypal", "other", { source: "bind" })), false, "existing rows are kept");
      assert.equal(store.getAccount("example.org", "paypal")?.skeleton, "paypal");
      assert.equal(store.getAccount("example.org", "paypal")?.source, "registration");
      assert.equal(store.addAccount(account("matt", "rnatt", { host: "example.net", ip: null })), true);
      assert.equal(store.hasAccount("example.org", "paypal"), true);
      assert.equal(store.hasAccount("example.net", "paypal"), false);
      assert.equal(store.findBySkeleton("example.org", "paypal"), "paypal");
      assert.equal(store.findBySkeleton("example.org", "rnatt"), undefined, "skeletons are per host");
      assert.equal(store.findBySkeleton("example.net", "rnatt"), "matt");
      assert.equal(store.getAccount("example.net", "matt")?.ip, null);
      assert.equal(store.countAccounts(), 2);
      assert.equal(store.countAccounts("example.org"), 1);
      // Two accounts may share a skeleton; removing one keeps the other findable
      // (Prosody's keyval index loses both, see docs/registration.md).
      store.addAccount(account("paypa1", "paypal"));
      assert.equal(store.removeAccount("example.org", "paypal"), true);
      assert.equal(store.removeAccount("example.org", "paypal"), false);
      assert.equal(store.findBySkeleton("example.org", "paypal"), "paypa1");
    } finally {
      store.close();
      cleanup();
    }
  });

  test(`${impl.name}: reindexSkeletons runs once per version`, () => {
    const { store, cleanup } = impl.make();
    try {
      store.addAccount(account("admin", "stale"));
      store.addAccount(account("bob", "bob"));
      assert.equal(store.reindexSkeletons("v1", (u) => u.toUpperCase()), 2);
      assert.equal(store.findBySkeleton("example.org", "ADMIN"), "admin");
      assert.equal(store.reindexSkeletons("v1", () => "x"), 0, "same version: untouched");
      assert.equal(store.findBySkeleton("example.org", "BOB"), "bob");
      assert.equal(store.reindexSkeletons("v2", (u) => u.toUpperCase()), 0, "new version, same answers");
    } finally {
      store.close();
      cleanup();
    }
  });

  test(`${impl.name}: tombstones round-trip, replace and prune`, () => {
    const { store, cleanup } = impl.make();
    try {
      store.putTombstone({ username: "alice", host: "example.org", deleted_at: T0 });
      assert.deepEqual(store.getTombstone("example.org", "alice"), { username: "alice", host: "example.org", deleted_at: T0 });
      assert.equal(store.getTombstone("example.net", "alice"), undefined);
      store.putTombstone({ username: "alice", host: "example.org", deleted_at: T0 + 5 });
      assert.equal(store.getTombstone("example.org", "alice")?.deleted_at, T0 + 5);
      store.putTombstone({ username: "bob", host: "example.org", deleted_at: T0 - 10 });
      assert.equal(store.pruneTombstones(T0), 1);
      assert.equal(store.getTombstone("example.org", "bob"), undefined);
      assert.equal(store.deleteTombstone("example.org", "alice"), true);
      assert.equal(store.deleteTombstone("example.org", "alice"), false);
    } finally {
      store.close();
      cleanup();
    }
  });

  test(`${impl.name}: operations after close throw`, () => {
    const { store, cleanup } = impl.make();
    store.close();
    try {
      assert.throws(() => store.getTombstone("example.org", "alice"));
    } finally {
      cleanup();
    }
  });
}

test("SqliteStore: everything survives a reopen", () => {
  const made = IMPLS[1]!.make();
  try {
    made.store.addAccount(account("paypal", "paypal"));
    made.store.putTombstone({ username: "gone", host: "example.org", deleted_at: T0 });
    made.store.putThrottle("192.0.2.1", { tokens: 0, updated_at: T0 });
    made.store.reindexSkeletons("v1", (u) => u);
    made.store.close();
    const again = made.reopen!();
    try {
      assert.equal(again.findBySkeleton("example.org", "paypal"), "paypal");
      assert.equal(again.getTombstone("example.org", "gone")?.deleted_at, T0);
      assert.deepEqual(again.getThrottle("192.0.2.1"), { tokens: 0, updated_at: T0 });
      assert.equal(again.reindexSkeletons("v1", () => "x"), 0, "skeleton version is durable too");
    } finally {
      again.close();
    }
  } finally {
    made.cleanup();
  }
});
