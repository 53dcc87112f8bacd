// SqliteStore specifics: file layout, the journal (never WAL: nothing
// mmapped), schema versioning, every start-up refusal (nothing is ever
// silently reset), online backup and restore.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { SCHEMA_VERSION, StateError } from "./sqlite-file.js";
import { backup, restore } from "./sqlite-backup.js";
import { SqliteStore } from "./sqlite-store.js";
import { STATE_DEFAULTS, parseStateOptions } from "./state-options.js";

const T0 = Date.UTC(2025, 0, 1);

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "xg-sqlite-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function assertStateError(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof StateError, `expected StateError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

async function assertRejectsState(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof StateError && err.code === code);
}

function seed(store: SqliteStore): void {
  store.addAccount({ host: "example.org", username: "paypal", skeleton: "paypal", source: "import", created_at: T0, ip: null });
  store.putTombstone({ username: "gone", host: "example.org", deleted_at: T0 });
  store.putThrottle("192.0.2.1", { tokens: 0, updated_at: T0 });
}

test("open creates parent directories, uses a rollback journal and records the schema version", (t) => {
  const dir = tempDir(t);
  const path = join(dir, "a", "b", "state.sqlite");
  const store = SqliteStore.open(path);
  try {
    assert.ok(statSync(path).isFile());
    assert.equal(store.schemaVersion, SCHEMA_VERSION);
    seed(store);
    // TRUNCATE keeps an empty journal between transactions; there is no -wal or -shm.
    assert.deepEqual(readdirSync(join(dir, "a", "b")).sort(), ["state.sqlite", "state.sqlite-journal"]);
    assert.equal(statSync(`${path}-journal`).size, 0);
  } finally {
    store.close();
  }
  // Bytes 18 and 19 of the header: 1 = rollback journal, 2 = WAL.
  assert.deepEqual([...readFileSync(path).subarray(18, 20)], [1, 1]);
  const raw = new Database(path, { readonly: true });
  try {
    assert.notEqual(raw.pragma("journal_mode", { simple: true }), "wal");
    const meta = Object.fromEntries((raw.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [r.key, r.value]));
    assert.equal(meta.application, "xmpp-guard");
    assert.equal(meta.schema_version, String(SCHEMA_VERSION));
  } finally {
    raw.close();
  }
});

test("a file an older xmpp-guard left in WAL mode is converted, keeping what only its -wal held", (t) => {
  const path = join(tempDir(t), "state.sqlite");
  const old = SqliteStore.open(path);
  seed(old);
  old.close();
  // What an older version left behind: WAL mode, and a write still in the -wal.
  const raw = new Database(path);
  raw.pragma("journal_mode = WAL");
  raw.pragma("wal_autocheckpoint = 0");
  raw.prepare("INSERT INTO tombstones (host, username, deleted_at) VALUES ('example.org', 'inwal', ?)").run(T0);
  // Another connection with the file open in WAL mode blocks the switch: refused, nothing changed.
  assertStateError(() => SqliteStore.open(path), "XPX_ERR_STATE_OPEN", /WAL mode and another process has it open/);
  assert.ok(existsSync(`${path}-wal`));
  raw.close();
  // better-sqlite3 checkpoints on close; leave a fresh -wal behind as a crash would.
  const again = new Database(path);
  again.pragma("wal_autocheckpoint = 0");
  again.prepare("INSERT INTO tombstones (host, username, deleted_at) VALUES ('example.org', 'inwal2', ?)").run(T0);
  const walBytes = readFileSync(`${path}-wal`);
  const shmBytes = readFileSync(`${path}-shm`);
  const dbBytes = readFileSync(path);
  again.close();
  writeFileSync(path, dbBytes);
  writeFileSync(`${path}-wal`, walBytes);
  writeFileSync(`${path}-shm`, shmBytes);

  const store = SqliteStore.open(path);
  try {
    assert.ok(!existsSync(`${path}-wal`) && !existsSync(`${path}-shm`), "-wal and -shm are gone");
    assert.deepEqual([...readFileSync(path).subarray(18, 20)], [1, 1]);
    assert.equal(store.getTombstone("example.org", "inwal")?.deleted_at, T0);
    assert.equal(store.getTombstone("example.org", "inwal2")?.deleted_at, T0, "the -wal's frames were checkpointed into the file");
    assert.equal(store.findBySkeleton("example.org", "paypal"), "paypal");
  } finally {
    store.close();
  }
});

test("nothing of the state database is memory-mapped while the store is open", { skip: process.platform !== "linux" && "reads /proc/self/maps" }, (t) => {
  const dir = tempDir(t);
  const store = SqliteStore.open(join(dir, "state.sqlite"));
  try {
    seed(store);
    store.getThrottle("192.0.2.1");
    const maps = readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => l.includes(dir));
    assert.deepEqual(maps, []);
  } finally {
    store.close();
  }
});

test("why: in WAL mode the -shm is mapped, and truncating it kills the process with SIGBUS", { skip: process.platform !== "linux" && "Linux mmap semantics" }, (t) => {
  // The fault that motivated the rollback journal, reproduced with the driver
  // alone in a child process (a SIGBUS cannot be caught in Node). The same
  // steps against SqliteStore are in sqlite-faults.test.ts.
  const dir = tempDir(t);
  const script = `
    import Database from "better-sqlite3";
    import { readFileSync, truncateSync } from "node:fs";
    const path = process.argv[1];
    const db = new Database(path);
    db.pragma("journal_mode = WAL");
    db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)");
    const put = db.prepare("INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v");
    for (let i = 0; i < 50; i++) put.run("k" + i, i);
    const mapped = readFileSync("/proc/self/maps", "utf8").includes(path + "-shm");
    console.log(JSON.stringify({ mapped }));
    truncateSync(path + "-shm", 0);
    for (let i = 0; i < 50; i++) put.run("k" + i, -i);
    console.log(JSON.stringify({ survived: true }));
  `;
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script, join(dir, "wal.sqlite")], { cwd: root, encoding: "utf8", timeout: 20_000 });
  assert.match(r.stdout, /"mapped":true/, r.stderr);
  assert.equal(r.signal, "SIGBUS", `stdout: ${r.stdout} stderr: ${r.stderr}`);
  assert.doesNotMatch(r.stdout, /survived/);
});

test("a file that is not a database is a corrupt-state error and is left as it was", (t) => {
  const path = join(tempDir(t), "state.sqlite");
  const junk = Buffer.from("this is not sqlite ".repeat(300));
  writeFileSync(path, junk);
  assertStateError(() => SqliteStore.open(path), "XPX_ERR_STATE_CORRUPT", /not a usable SQLite database/);
  assert.deepEqual(readFileSync(path), junk);
});

test("a damaged database fails the integrity check", (t) => {
  const path = join(tempDir(t), "state.sqlite");
  const store = SqliteStore.open(path);
  store.transaction(() => {
    for (let i = 0; i < 400; i++) {
      store.addAccount({ host: "example.org", username: `user${i}`, skeleton: `user${i}`, source: "import", created_at: T0, ip: null });
    }
  });
  store.close();
  const raw = new Database(path);
  raw.pragma("journal_mode = DELETE");
  raw.close();
  // Overwrite the middle of the file (index and table pages), keeping the header.
  const bytes = readFileSync(path);
  bytes.fill(0xa5, 4096, bytes.length - 4096);
  writeFileSync(path, bytes);
  assertStateError(() => SqliteStore.open(path), "XPX_ERR_STATE_CORRUPT");
});

test("another program's SQLite database is refused, not migrated", (t) => {
  const path = join(tempDir(t), "other.sqlite");
  const raw = new Database(path);
  raw.exec("CREATE TABLE notes (x TEXT)");
  raw.close();
  assertStateError(() => SqliteStore.open(path), "XPX_ERR_STATE_CORRUPT", /not xmpp-guard's/);
  const again = new Database(path, { readonly: true });
  assert.deepEqual(again.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all(), ["notes"]);
  again.close();
});

test("a newer schema version is refused with an upgrade hint", (t) => {
  const path = join(tempDir(t), "state.sqlite");
  SqliteStore.open(path).close();
  const raw = new Database(path);
  raw.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(String(SCHEMA_VERSION + 1));
  raw.close();
  assertStateError(() => SqliteStore.open(path), "XPX_ERR_STATE_VERSION", /newer than this xmpp-guard understands/);
});

test("paths that cannot be created or opened are open errors", (t) => {
  const dir = tempDir(t);
  const file = join(dir, "plain-file");
  writeFileSync(file, "x");
  assertStateError(() => SqliteStore.open(join(file, "state.sqlite")), "XPX_ERR_STATE_OPEN", /cannot create the directory/);
  const asDir = join(dir, "is-a-directory");
  mkdirSync(asDir);
  assertStateError(() => SqliteStore.open(asDir), "XPX_ERR_STATE_OPEN");
  assertStateError(() => SqliteStore.open(join(dir, "missing.sqlite"), { readonly: true }), "XPX_ERR_STATE_OPEN");
});

test("backup while open, wipe, restore: the same answers", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "state.sqlite");
  const copy = join(dir, "backups", "state-backup.sqlite");
  const store = SqliteStore.open(path);
  seed(store);
  // Online: the store stays open (and writable) during the backup.
  const summary = await backup(path, copy);
  assert.deepEqual(summary, { schemaVersion: SCHEMA_VERSION, accounts: 1, tombstones: 1, throttles: 1 });
  store.addAccount({ host: "example.org", username: "later", skeleton: "later", source: "bind", created_at: T0, ip: null });
  store.close();
  assert.ok(!existsSync(`${copy}.partial-${process.pid}`));

  // Wipe: delete the database and its journal, start empty.
  for (const f of [path, `${path}-journal`]) rmSync(f, { force: true });
  const empty = SqliteStore.open(path);
  assert.equal(empty.countAccounts(), 0);
  empty.close();

  const restored = await restore(path, copy);
  assert.deepEqual(restored, { schemaVersion: SCHEMA_VERSION, accounts: 1, tombstones: 1, throttles: 1 });
  const back = SqliteStore.open(path);
  try {
    assert.equal(back.findBySkeleton("example.org", "paypal"), "paypal");
    assert.equal(back.getTombstone("example.org", "gone")?.deleted_at, T0);
    assert.deepEqual(back.getThrottle("192.0.2.1"), { tokens: 0, updated_at: T0 });
    assert.equal(back.hasAccount("example.org", "later"), false, "written after the backup");
  } finally {
    back.close();
  }
});

test("SqliteStore.backup snapshots the live connection", async (t) => {
  const dir = tempDir(t);
  const store = SqliteStore.open(join(dir, "state.sqlite"));
  try {
    seed(store);
    await store.backup(join(dir, "snap.sqlite"));
  } finally {
    store.close();
  }
  const snap = SqliteStore.open(join(dir, "snap.sqlite"), { readonly: true });
  try {
    assert.equal(snap.findBySkeleton("example.org", "paypal"), "paypal");
  } finally {
    snap.close();
  }
});

test("restore refuses a bad backup and leaves the live database alone", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "state.sqlite");
  const store = SqliteStore.open(path);
  seed(store);
  store.close();
  const junk = join(dir, "junk.sqlite");
  writeFileSync(junk, "not a database at all, not even close ".repeat(200));
  await assertRejectsState(restore(path, junk), "XPX_ERR_STATE_CORRUPT");
  await assertRejectsState(restore(path, join(dir, "missing.sqlite")), "XPX_ERR_STATE_OPEN");
  const foreign = join(dir, "foreign.sqlite");
  const raw = new Database(foreign);
  raw.exec("CREATE TABLE notes (x TEXT)");
  raw.close();
  await assertRejectsState(restore(path, foreign), "XPX_ERR_STATE_CORRUPT");
  const live = SqliteStore.open(path);
  try {
    assert.equal(live.findBySkeleton("example.org", "paypal"), "paypal");
  } finally {
    live.close();
  }
});

test("backup of a missing state file is an open error", async (t) => {
  const dir = tempDir(t);
  await assertRejectsState(backup(join(dir, "none.sqlite"), join(dir, "out.sqlite")), "XPX_ERR_STATE_OPEN");
  assert.ok(!existsSync(join(dir, "out.sqlite")));
});

test("parseStateOptions: defaults, path, refusals", () => {
  assert.deepEqual(parseStateOptions(undefined), { ok: true, value: STATE_DEFAULTS, notes: [] });
  assert.equal(STATE_DEFAULTS.path, "data/xmpp-guard.sqlite");
  assert.deepEqual(parseStateOptions({ path: "/var/lib/xg/state.sqlite" }), { ok: true, value: { path: "/var/lib/xg/state.sqlite", redis: null, prefix: "xg:" }, notes: [] });
  assert.deepEqual(parseStateOptions({ path: "" }), { ok: false, message: "must be a non-empty file path", at: "path" });
  assert.equal(parseStateOptions({ path: ":memory:" }).ok, false);
  assert.deepEqual(parseStateOptions({ pth: "x" }), { ok: false, message: 'unknown option "pth" (known: path, redis, prefix)', at: "pth" });
  assert.equal(parseStateOptions("x").ok, false);
  assert.deepEqual(parseStateOptions({ redis: "redis://127.0.0.1:6379/0", prefix: "a:" }), {
    ok: true, value: { path: "data/xmpp-guard.sqlite", redis: "redis://127.0.0.1:6379/0", prefix: "a:" }, notes: [],
  });
  assert.deepEqual(parseStateOptions({ redis: "http://x" }), { ok: false, message: "must start with redis:// or rediss://", at: "redis" });
  assert.deepEqual(parseStateOptions({ redis: "redis://h/x" }), { ok: false, message: "the path must be a database number, like /0", at: "redis" });
  assert.equal(parseStateOptions({ redis: "nope" }).ok, false);
  assert.equal(parseStateOptions({ prefix: "a b" }).ok, false);
});

test("processes creating the same file at once: all open it, the schema is made once", async (t) => {
  // Cluster workers start together; before this was settled under the write
  // lock, a slower one failed with "table throttles already exists" or took
  // the half-made file for another program's.
  const dir = tempDir(t);
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const rounds = 4;
  // Each child loads the module once, then opens file r at the instant given for round r.
  const script = `
    const { SqliteStore } = await import("./src/state/sqlite-store.ts");
    const [dir, at] = [process.argv[1], Number(process.argv[2])];
    for (let r = 0; r < ${rounds}; r++) {
      while (Date.now() < at + r * 300);
      const store = SqliteStore.open(dir + "/fresh-" + r + ".sqlite");
      console.log(JSON.stringify({ round: r, version: store.schemaVersion }));
      store.close();
    }
  `;
  const at = String(Date.now() + 4000);
  const run = (): Promise<{ code: number | null; out: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, dir, at], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      child.on("exit", (code) => resolve({ code, out }));
    });
  const results = await Promise.all([run(), run(), run()]);
  for (const r of results) {
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out.match(new RegExp(`"version":${SCHEMA_VERSION}`, "g"))?.length, rounds, r.out);
  }
});
