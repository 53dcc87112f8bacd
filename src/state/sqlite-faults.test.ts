// SqliteStore under faults while it is open: the file deleted, replaced,
// truncated or overwritten; the journal, the file or the directory made
// unwritable; a lock held by another connection. Every operation returns or
// throws a StateError (never anything else, never a crash); a lost file
// faults the store once (onFault) until it is opened again; the rest fail
// only the operation at hand. The RegistrationStage above turns any of them
// into its store-error refusal. The last test runs the same faults in a
// child process, the only place a crash would show.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import type { SessionInfo } from "../policy/pipeline.js";
import { parseRegistrationOptions } from "../registration/options.js";
import { RegistrationStage } from "../registration/registration-stage.js";
import { Stanza } from "../xml/stanza.js";
import { BUSY_BACKOFF_MS, StateError } from "./sqlite-file.js";
import { SqliteStore } from "./sqlite-store.js";

const T0 = Date.UTC(2025, 0, 1);
const S = "urn:ietf:params:xml:ns:xmpp-stanzas";
const STORE_ERROR = `<iq id='reg1' type='error'><error type='wait'><internal-server-error xmlns='${S}'/></error></iq>`;

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "xg-faults-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Opened {
  store: SqliteStore;
  path: string;
  dir: string;
  faults: StateError[];
}

function openSeeded(t: TestContext, options: { busyTimeoutMs?: number } = {}): Opened {
  const dir = tempDir(t);
  const path = join(dir, "state.sqlite");
  const faults: StateError[] = [];
  const store = SqliteStore.open(path, { ...options, onFault: (f) => faults.push(f) });
  t.after(() => store.close());
  store.addAccount({ host: "example.org", username: "paypal", skeleton: "paypal", source: "import", created_at: T0, ip: null });
  store.putTombstone({ username: "gone", host: "example.org", deleted_at: T0 });
  store.putThrottle("192.0.2.1", { tokens: 0, updated_at: T0 });
  return { store, path, dir, faults };
}

/** Runs `fn`; returns its value or the StateError it threw. Anything else thrown fails the test. */
function attempt<T>(fn: () => T): T | StateError {
  try {
    return fn();
  } catch (err) {
    assert.ok(err instanceof StateError, `expected a StateError, got ${String(err)}`);
    assert.equal(err.code, "XPX_ERR_STATE_FAULT");
    return err;
  }
}

/** Every kind of operation once, each result or StateError. */
function everyOperation(store: SqliteStore): unknown[] {
  return [
    attempt(() => store.getThrottle("192.0.2.1")),
    attempt(() => store.putThrottle("192.0.2.2", { tokens: 1, updated_at: T0 })),
    attempt(() => store.pruneThrottles(T0, 1, 1)),
    attempt(() => store.countThrottles()),
    attempt(() => store.addAccount({ host: "example.org", username: "new", skeleton: "new", source: "bind", created_at: T0, ip: null })),
    attempt(() => store.removeAccount("example.org", "nobody")),
    attempt(() => store.hasAccount("example.org", "paypal")),
    attempt(() => store.getAccount("example.org", "paypal")),
    attempt(() => store.findBySkeleton("example.org", "paypal")),
    attempt(() => store.countAccounts()),
    attempt(() => store.reindexSkeletons("another-version", (u) => u)),
    attempt(() => store.putTombstone({ username: "x", host: "example.org", deleted_at: T0 })),
    attempt(() => store.getTombstone("example.org", "gone")),
    attempt(() => store.deleteTombstone("example.org", "nobody")),
    attempt(() => store.pruneTombstones(0)),
    attempt(() => store.transaction(() => store.putThrottle("192.0.2.3", { tokens: 1, updated_at: T0 }))),
    attempt(() => store.schemaVersion),
  ];
}

function assertFaulted(o: Opened, why: RegExp): void {
  assert.equal(o.faults.length, 1, "onFault fires once");
  assert.equal(o.store.fault, o.faults[0]);
  assert.equal(o.store.fault!.code, "XPX_ERR_STATE_FAULT");
  assert.match(o.store.fault!.message, why);
  assert.match(o.store.fault!.message, /registration is refused until a reload or restart opens it again/);
  // From now on every operation throws that same fault, without touching the file.
  for (const r of everyOperation(o.store)) assert.equal(r, o.store.fault);
  assert.equal(o.store.check(), false, "already faulted: nothing new");
  assert.equal(o.faults.length, 1);
}

/**
 * Makes `path` unwritable even for root (chattr +i), or by mode for anyone
 * else; returns the undo, or null when neither works here (skip).
 */
function makeUnwritable(path: string, isDir: boolean): (() => void) | null {
  if (process.getuid?.() === 0) {
    try {
      execFileSync("chattr", ["+i", path], { stdio: "ignore" });
      return () => execFileSync("chattr", ["-i", path], { stdio: "ignore" });
    } catch {
      return null;
    }
  }
  chmodSync(path, isDir ? 0o555 : 0o444);
  return () => chmodSync(path, isDir ? 0o755 : 0o644);
}

// ---------------------------------------------------------------------------
// A lost file: the store is faulted, once, until it is opened again.

test("the file deleted while open: the periodic check faults the store; then every operation throws the fault", (t) => {
  const o = openSeeded(t);
  rmSync(o.path);
  assert.equal(o.store.check(), true);
  assertFaulted(o, /was deleted or moved away while open/);
});

test("the file deleted while open: the next write finds it before writing, without waiting for the check", (t) => {
  const o = openSeeded(t);
  rmSync(o.path);
  rmSync(`${o.path}-journal`);
  assert.ok(attempt(() => o.store.putThrottle("192.0.2.9", { tokens: 0, updated_at: T0 })) instanceof StateError);
  assertFaulted(o, /was deleted or moved away while open/);
});

test("the file replaced by another (renamed over it): faulted, and the newcomer is not written to", (t) => {
  const o = openSeeded(t);
  const other = join(o.dir, "other.sqlite");
  SqliteStore.open(other).close();
  copyFileSync(other, `${other}.copy`);
  renameSync(other, o.path);
  assert.ok(attempt(() => o.store.putTombstone({ username: "later", host: "example.org", deleted_at: T0 })) instanceof StateError);
  assertFaulted(o, /was replaced by another file while open/);
  const raw = new Database(o.path, { readonly: true });
  try {
    assert.equal(raw.prepare("SELECT count(*) FROM tombstones").pluck().get(), 0, "nothing went into the new file");
  } finally {
    raw.close();
  }
});

test("the file truncated to nothing while open: faulted by the next read as by the check", (t) => {
  const a = openSeeded(t);
  truncateSync(a.path, 0);
  assert.ok(attempt(() => a.store.getTombstone("example.org", "gone")) instanceof StateError);
  assertFaulted(a, /was truncated to nothing while open/);

  const b = openSeeded(t);
  truncateSync(b.path, 0);
  assert.equal(b.store.check(), true);
  assertFaulted(b, /was truncated to nothing while open/);
});

test("the file overwritten in place (same inode) by junk or another program's database: faulted", (t) => {
  const a = openSeeded(t);
  writeFileSync(a.path, Buffer.alloc(8192, 0x5a));
  assert.ok(attempt(() => a.store.findBySkeleton("example.org", "paypal")) instanceof StateError);
  assertFaulted(a, /is damaged/);

  const b = openSeeded(t);
  const foreign = join(b.dir, "foreign.sqlite");
  const raw = new Database(foreign);
  raw.exec("CREATE TABLE notes (x TEXT)");
  raw.close();
  copyFileSync(foreign, b.path);
  assert.ok(attempt(() => b.store.getThrottle("192.0.2.1")) instanceof StateError);
  assertFaulted(b, /no longer holds xmpp-guard's tables/);
});

// ---------------------------------------------------------------------------
// Unwritable or locked: only the operation at hand fails; the store recovers.

test("the journal made unwritable: writes fail, reads go on, and both work again once it is writable", (t) => {
  const o = openSeeded(t);
  const undo = makeUnwritable(`${o.path}-journal`, false);
  if (undo === null) return t.skip("cannot make a file unwritable here");
  try {
    const failed = attempt(() => o.store.putThrottle("192.0.2.7", { tokens: 0, updated_at: T0 }));
    assert.ok(failed instanceof StateError && /cannot write a throttle/.test(failed.message), String(failed));
    assert.equal(o.store.findBySkeleton("example.org", "paypal"), "paypal");
  } finally {
    undo();
  }
  assert.equal(o.store.fault, null);
  o.store.putThrottle("192.0.2.7", { tokens: 0, updated_at: T0 });
  assert.deepEqual(o.store.getThrottle("192.0.2.7"), { tokens: 0, updated_at: T0 });
  assert.equal(o.faults.length, 0);
});

test("the journal deleted or truncated between writes: the next write makes a new one", (t) => {
  const o = openSeeded(t);
  rmSync(`${o.path}-journal`);
  o.store.putThrottle("192.0.2.5", { tokens: 0, updated_at: T0 });
  truncateSync(`${o.path}-journal`, 0);
  o.store.putThrottle("192.0.2.6", { tokens: 0, updated_at: T0 });
  assert.equal(o.store.countThrottles(), 3);
  assert.equal(o.store.fault, null);
});

test("the file itself made unwritable: the write fails and is rolled back once writable again; never faulted", (t) => {
  const o = openSeeded(t);
  const undo = makeUnwritable(o.path, false);
  if (undo === null) return t.skip("cannot make a file unwritable here");
  try {
    assert.ok(attempt(() => o.store.putTombstone({ username: "half", host: "example.org", deleted_at: T0 })) instanceof StateError);
    // Reads may fail too meanwhile (SQLite wants to roll the journal back first).
    attempt(() => o.store.getTombstone("example.org", "gone"));
  } finally {
    undo();
  }
  assert.equal(o.store.getTombstone("example.org", "half"), undefined, "the failed write left nothing");
  assert.equal(o.store.getTombstone("example.org", "gone")?.deleted_at, T0);
  o.store.putTombstone({ username: "whole", host: "example.org", deleted_at: T0 });
  assert.equal(o.store.getTombstone("example.org", "whole")?.deleted_at, T0);
  assert.equal(o.faults.length, 0);
});

test("the directory made read-only: writes go on (the journal stays), and without the journal they fail until it is writable", (t) => {
  const o = openSeeded(t);
  let undo = makeUnwritable(o.dir, true);
  if (undo === null) return t.skip("cannot make a directory read-only here");
  try {
    o.store.putThrottle("192.0.2.8", { tokens: 0, updated_at: T0 });
  } finally {
    undo();
  }
  rmSync(`${o.path}-journal`);
  undo = makeUnwritable(o.dir, true)!;
  try {
    const failed = attempt(() => o.store.putThrottle("192.0.2.9", { tokens: 0, updated_at: T0 }));
    assert.ok(failed instanceof StateError, "a journal cannot be created");
    assert.equal(o.store.getThrottle("192.0.2.8")?.tokens, 0, "reads go on");
  } finally {
    undo();
  }
  o.store.putThrottle("192.0.2.9", { tokens: 0, updated_at: T0 });
  assert.equal(o.store.countThrottles(), 3);
  assert.equal(o.faults.length, 0);
});

test("a lock held by another connection: one short wait, then failing at once for a while, then working again", async (t) => {
  const o = openSeeded(t, { busyTimeoutMs: 50 });
  const other = new Database(o.path, { timeout: 0 });
  other.exec("BEGIN EXCLUSIVE");
  try {
    let started = performance.now();
    const first = attempt(() => o.store.putThrottle("192.0.2.4", { tokens: 0, updated_at: T0 }));
    assert.ok(first instanceof StateError && /database is locked/.test(first.message), String(first));
    assert.ok(performance.now() - started >= 40, "waited for the lock");
    started = performance.now();
    const second = attempt(() => o.store.getThrottle("192.0.2.1"));
    assert.ok(second instanceof StateError && /locked by another process/.test(second.message), String(second));
    assert.ok(performance.now() - started < 20, "did not wait again");
  } finally {
    other.exec("ROLLBACK");
    other.close();
  }
  await new Promise((r) => setTimeout(r, BUSY_BACKOFF_MS + 50));
  o.store.putThrottle("192.0.2.4", { tokens: 0, updated_at: T0 });
  assert.equal(o.store.fault, null);
});

// ---------------------------------------------------------------------------
// What the data path sees: the stage's store-error refusal, nothing thrown.

test("RegistrationStage over a faulted store: registration refused with wait/internal-server-error, other stanzas judged as usual", (t) => {
  const o = openSeeded(t);
  const parsed = parseRegistrationOptions({ min_seconds_between_registrations: 300 });
  assert.ok(parsed.ok);
  const errors: string[] = [];
  const stage = new RegistrationStage({ options: parsed.value, store: o.store, hooks: { onStoreError: (_e, op) => errors.push(op) } });
  const session: SessionInfo = { id: "s1", listener: "c2s", type: "c2s", ip: "192.0.2.10", port: 40000, jid: undefined, domain: "example.org", authenticated: false };
  rmSync(o.path);
  const register = new Stanza(Buffer.from("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>alice</username><password>pw</password></query></iq>"), "jabber:client");
  const verdict = stage.judge(register, session, "inbound");
  assert.equal(verdict?.action, "bounce");
  assert.equal(verdict?.action === "bounce" ? verdict.reply.toString() : "", STORE_ERROR);
  assert.deepEqual(errors, ["throttle"]);
  assert.ok(o.store.fault !== null);
  // A bind result (a known account learned) and a message: nothing thrown, nothing refused.
  const bound = { ...session, id: "s2", authenticated: true };
  const bind = new Stanza(Buffer.from("<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>bob@example.org/r</jid></bind></iq>"), "jabber:client");
  assert.equal(stage.judge(bind, bound, "outbound"), undefined);
  assert.equal(stage.judge(new Stanza(Buffer.from("<message to='a@example.org'><body>hi</body></message>"), "jabber:client"), bound, "inbound"), undefined);
  assert.deepEqual(errors, ["throttle", "bind"]);
});

// ---------------------------------------------------------------------------
// Out of process: nothing above may crash it.

test("every fault in a child process: it exits normally (no SIGBUS, nothing uncaught)", { timeout: 55_000 }, (t) => {
  const dir = tempDir(t);
  const root = fileURLToPath(new URL("../../", import.meta.url));
  // Each fault on its own store; files are truncated, deleted, replaced and
  // overwritten under it, then every operation runs once.
  const script = `
    const { SqliteStore } = await import("./src/state/sqlite-store.ts");
    const { StateError } = await import("./src/state/sqlite-file.ts");
    const fs = await import("node:fs");
    const dir = process.argv[1];
    const faults = {
      "truncate db": (p) => fs.truncateSync(p, 0),
      "truncate db to one page": (p) => fs.truncateSync(p, 4096),
      "truncate journal": (p) => fs.truncateSync(p + "-journal", 0),
      "delete db": (p) => fs.rmSync(p),
      "delete db and journal": (p) => { fs.rmSync(p); fs.rmSync(p + "-journal"); },
      "replace db": (p) => { fs.writeFileSync(p + ".new", "junk".repeat(2048)); fs.renameSync(p + ".new", p); },
      "overwrite db": (p) => fs.writeFileSync(p, Buffer.alloc(16384, 1)),
      "stray -shm and -wal": (p) => { fs.writeFileSync(p + "-shm", ""); fs.writeFileSync(p + "-wal", ""); },
    };
    const out = {};
    for (const [name, apply] of Object.entries(faults)) {
      const path = dir + "/" + name.replace(/ /g, "-") + ".sqlite";
      const store = SqliteStore.open(path, { busyTimeoutMs: 50 });
      for (let i = 0; i < 300; i++) store.addAccount({ host: "example.org", username: "u" + i, skeleton: "u" + i, source: "import", created_at: 1, ip: null });
      apply(path);
      let ok = 0, refused = 0;
      for (let i = 0; i < 50; i++) {
        for (const op of [() => store.getThrottle("k" + i), () => store.putThrottle("k" + i, { tokens: 0, updated_at: 1 }), () => store.findBySkeleton("example.org", "u" + i), () => store.check()]) {
          try { op(); ok++; } catch (err) { if (!(err instanceof StateError)) throw err; refused++; }
        }
      }
      out[name] = { ok, refused, faulted: store.fault !== null };
      store.close();
    }
    console.log(JSON.stringify(out));
  `;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, dir], { cwd: root, encoding: "utf8", timeout: 50_000 });
  assert.equal(r.signal, null, `killed by ${r.signal}; stderr: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, { ok: number; refused: number; faulted: boolean }>;
  for (const name of ["truncate db", "truncate db to one page", "delete db", "delete db and journal", "replace db", "overwrite db"]) {
    assert.equal(out[name]?.faulted, true, `${name}: ${JSON.stringify(out[name])}`);
  }
  for (const name of ["truncate journal", "stray -shm and -wal"]) {
    assert.deepEqual(out[name], { ok: 200, refused: 0, faulted: false }, name);
  }
});
