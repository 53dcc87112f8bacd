// Who holds the SQLite state file. Every running proxy process that has the
// store open (a single process, or each cluster worker) keeps a shared lock
// on a separate, empty lock file beside it (`<state.path>.lock`); `restore`
// takes the exclusive lock on the same file and refuses when it cannot.
//
// The locks are SQLite's own (POSIX advisory byte-range locks, taken by an
// open read transaction and by BEGIN EXCLUSIVE), so they behave like flock:
// any number of shared holders, one exclusive holder that excludes them, and
// the kernel drops a lock when its process dies, however it dies, so there
// is no stale pid file to clean up after a crash. The state file itself
// cannot carry this: with a rollback journal nobody holds a lock on it
// between transactions.
//
// The lock file must only ever be opened through SQLite: POSIX locks belong
// to the process and are dropped when any descriptor of the file is closed,
// which SQLite's own file layer knows to avoid.
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { StateError } from "./sqlite-file.js";

/** Where the lock file of a state file lives. */
export function lockPathFor(statePath: string): string {
  return `${statePath}.lock`;
}

function sqliteCode(err: unknown): string {
  return typeof err === "object" && err !== null && typeof (err as { code?: unknown }).code === "string" ? (err as { code: string }).code : "";
}

function inode(path: string): bigint | null {
  try {
    return statSync(path, { bigint: true }).ino;
  } catch {
    return null;
  }
}

/**
 * The processes holding a lock on `path`, from /proc/locks (Linux; empty
 * elsewhere or when it cannot be read). Only for messages.
 */
export function lockHolders(path: string): number[] {
  const ino = inode(path);
  if (ino === null) return [];
  let text: string;
  try {
    text = readFileSync("/proc/locks", "utf8");
  } catch {
    return [];
  }
  const pids = new Set<number>();
  for (const line of text.split("\n")) {
    // "1: POSIX  ADVISORY  READ 16000 fe:00:2179927 1073741826 1073742335"
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[1] !== "POSIX") continue;
    const dev = f[5]!.split(":");
    if (dev.length === 3 && BigInt(dev[2]!) === ino) {
      const pid = Number(f[4]);
      if (pid > 0 && pid !== process.pid) pids.add(pid);
    }
  }
  return [...pids].sort((a, b) => a - b);
}

function openLockDb(path: string, waitMs: number): Database.Database {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  return new Database(path, { timeout: waitMs });
}

/**
 * The running proxy's shared lock on a state file. Held from open to close;
 * given up when the store finds its file lost (it no longer uses it, so a
 * restore may put a file back), and taken again when the lock file itself
 * was removed under it.
 */
export class SharedStateLock {
  readonly path: string;
  #db: Database.Database | null;
  #ino: bigint | null;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
    this.#ino = inode(path);
  }

  /**
   * Takes the shared lock, waiting up to `waitMs` for a restore in progress.
   * Throws StateError (XPX_ERR_STATE_OPEN) when a restore keeps it.
   */
  static acquire(statePath: string, waitMs = 5000): SharedStateLock {
    const path = lockPathFor(statePath);
    let db: Database.Database;
    try {
      db = openLockDb(path, waitMs);
    } catch (err) {
      throw new StateError("XPX_ERR_STATE_OPEN", statePath, `cannot open the lock file ${path} (${err instanceof Error ? err.message : String(err)})`);
    }
    try {
      db.exec("BEGIN");
      // The read takes SQLite's SHARED lock; the open transaction keeps it.
      db.prepare("SELECT count(*) FROM sqlite_schema").pluck().get();
    } catch (err) {
      db.close();
      if (sqliteCode(err).startsWith("SQLITE_BUSY")) {
        throw new StateError("XPX_ERR_STATE_OPEN", statePath, `a restore is writing this file (${path} is locked); start again when it is done`);
      }
      throw new StateError("XPX_ERR_STATE_OPEN", statePath, `cannot lock ${path} (${err instanceof Error ? err.message : String(err)})`);
    }
    return new SharedStateLock(path, db);
  }

  get held(): boolean {
    return this.#db !== null;
  }

  /**
   * True when the lock file at `path` is still the one locked. When it was
   * removed or replaced, the lock is taken again on the new file (no wait).
   */
  check(): void {
    if (this.#db === null) return;
    const now = inode(this.path);
    if (now !== null && now === this.#ino) return;
    try {
      const fresh = openLockDb(this.path, 0);
      fresh.exec("BEGIN");
      fresh.prepare("SELECT count(*) FROM sqlite_schema").pluck().get();
      this.#db.close();
      this.#db = fresh;
      this.#ino = inode(this.path);
    } catch {
      // A restore holds the new file already: keep what we have; the store's
      // own check notices a replaced state file.
    }
  }

  release(): void {
    const db = this.#db;
    this.#db = null;
    if (db !== null && db.open) db.close();
  }
}

/**
 * The exclusive lock `restore` holds while it writes. Throws StateError
 * (XPX_ERR_STATE_BUSY) naming the holders when a running proxy has the file.
 */
export function acquireExclusive(statePath: string): { release(): void } {
  const path = lockPathFor(statePath);
  const db = openLockDb(path, 0);
  try {
    db.exec("BEGIN EXCLUSIVE");
  } catch (err) {
    db.close();
    if (!sqliteCode(err).startsWith("SQLITE_BUSY")) throw err;
    const pids = lockHolders(path);
    throw new StateError(
      "XPX_ERR_STATE_BUSY",
      statePath,
      `a running xmpp-guard has this state database open${pids.length > 0 ? ` (pid ${pids.join(", ")})` : ""}, so restore would overwrite it under the proxy`,
    );
  }
  return {
    release() {
      if (!db.open) return;
      try {
        db.exec("COMMIT");
      } finally {
        db.close();
      }
    },
  };
}
