// The lock restore checks: shared holders (another process, as a running
// proxy or each of its workers is) make restore refuse and are named; a
// holder that dies frees the file without any cleanup; a faulted store gives
// its lock up; a restore in progress makes a proxy's open wait, then fail.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StateError } from "./sqlite-file.js";
import { backup, restore } from "./sqlite-backup.js";
import { SqliteStore } from "./sqlite-store.js";
import { SharedStateLock, acquireExclusive, lockHolders, lockPathFor } from "./state-lock.js";

const MODULE = new URL("./sqlite-store.ts", import.meta.url).href;

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "xg-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Another process holding the store open the way the proxy does, until killed. */
async function holder(path: string): Promise<{ pid: number; kill(): Promise<void> }> {
  const code = `const { SqliteStore } = await import(${JSON.stringify(MODULE)}); SqliteStore.open(${JSON.stringify(path)}, { holdLock: true }); console.log("open"); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => d.toString().includes("open") && resolve());
    child.once("exit", (c) => reject(new Error(`holder exited ${c}`)));
  });
  return {
    pid: child.pid!,
    kill: () => new Promise<void>((r) => {
      child.once("exit", () => r());
      child.kill("SIGKILL");
    }),
  };
}

test("restore refuses while another process holds the store, names it, and works once it died", { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "state.sqlite");
  const copy = join(dir, "copy.sqlite");
  SqliteStore.open(path).close();
  await backup(path, copy);
  const a = await holder(path);
  const b = await holder(path);
  assert.deepEqual(lockHolders(lockPathFor(path)), [a.pid, b.pid].sort((x, y) => x - y));
  await assert.rejects(restore(path, copy), (err: unknown) => {
    assert.ok(err instanceof StateError);
    assert.equal(err.code, "XPX_ERR_STATE_BUSY");
    assert.match(err.message, new RegExp(`pid ${Math.min(a.pid, b.pid)}, ${Math.max(a.pid, b.pid)}`));
    return true;
  });
  await a.kill();
  await assert.rejects(restore(path, copy), /pid /);
  // SIGKILL: no chance to clean up, and nothing is left to clean.
  await b.kill();
  assert.deepEqual(lockHolders(lockPathFor(path)), []);
  const summary = await restore(path, copy);
  assert.equal(summary.accounts, 0);
});

test("a faulted store gives its lock up; a store that opens during a restore waits, then fails", (t) => {
  const dir = tempDir(t);
  const path = join(dir, "state.sqlite");
  const store = SqliteStore.open(path, { holdLock: true });
  assert.ok(store.holdsLock);
  assert.throws(() => acquireExclusive(path), /running xmpp-guard has this state database open/);
  rmSync(path);
  assert.equal(store.check(), true);
  assert.ok(!store.holdsLock);
  const lock = acquireExclusive(path);
  const started = Date.now();
  assert.throws(() => SqliteStore.open(path, { holdLock: true, lockWaitMs: 200 }), /a restore is writing this file/);
  assert.ok(Date.now() - started >= 150);
  lock.release();
  const again = SqliteStore.open(path, { holdLock: true, lockWaitMs: 0 });
  assert.ok(again.holdsLock);
  again.close();
  store.close();
});

test("a lock file removed under a holder is locked again at the next check", (t) => {
  const dir = tempDir(t);
  const path = join(dir, "state.sqlite");
  const store = SqliteStore.open(path, { holdLock: true });
  rmSync(lockPathFor(path));
  store.check();
  assert.throws(() => acquireExclusive(path), /running xmpp-guard/);
  store.close();
  acquireExclusive(path).release();
  const shared = SharedStateLock.acquire(path, 0);
  assert.ok(shared.held);
  shared.release();
});
