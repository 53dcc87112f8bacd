// The durable RegistrationStore: one SQLite file through better-sqlite3 (a
// rollback journal, prepared statements, versioned migrations recorded in a
// `meta` table; state/sqlite-file.ts). Backup and restore for `xmpp-guard
// backup` / `restore` are in state/sqlite-backup.ts. Opening never silently resets anything: a file that is not a
// database, fails its integrity check, belongs to another program or has a
// newer schema is a StateError, and so is a path that cannot be created or
// written.
//
// No part of the file is ever memory-mapped. In WAL mode SQLite maps the
// `-shm` index into every process that has the file open, and a truncated or
// unwritable `-shm` then kills the process with SIGBUS, which Node cannot
// catch: every session would go down with the state. A rollback journal
// (TRUNCATE) with `mmap_size = 0` turns the same faults into SQLite errors.
// While open, the store also notices its file being deleted, replaced or
// emptied; it then refuses every operation (it is "faulted") until the file
// is opened again, rather than writing where nobody will read.
import { statSync } from "node:fs";
import { resolve } from "node:path";
import type Database from "better-sqlite3";
import type { KnownAccount, RegistrationStore, ThrottleState, Tombstone } from "./registration-store.js";
import {
  BUSY_BACKOFF_MS, CORRUPT_CODES, DEFAULT_STATE_PATH, SCHEMA_VERSION, StateError, UNTIL_REOPENED,
  migrate, openChecked, reason, sqliteCode,
  type FileIdentity, type OpenOptions, type RemoteListCopy,
} from "./sqlite-file.js";
import { backupTo } from "./sqlite-backup.js";
import { SharedStateLock } from "./state-lock.js";

interface AccountRow {
  host: string;
  username: string;
  skeleton: string;
  source: KnownAccount["source"];
  created_at: number;
  ip: string | null;
}

export class SqliteStore implements RegistrationStore {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #stmt;
  /** Absolute, so a later chdir cannot point the file check elsewhere. */
  readonly #absolute: string;
  readonly #identity: FileIdentity | null;
  readonly #onFault: ((fault: StateError) => void) | undefined;
  #fault: StateError | null = null;
  /** Until then (epoch ms) operations fail at once: a lock wait just ran out. */
  #busyUntil = 0;

  /** Opens (creating directories and the file when needed) and migrates. Throws StateError. */
  static open(path: string = DEFAULT_STATE_PATH, options: OpenOptions = {}): SqliteStore {
    const readonly = options.readonly === true;
    // The lock first: a restore in progress is waited for (up to 5 s) before the file is read.
    const lock = options.holdLock === true ? SharedStateLock.acquire(path, options.lockWaitMs ?? 5000) : null;
    let db: Database.Database;
    try {
      db = openChecked(path, { readonly, migrate: !readonly });
    } catch (err) {
      lock?.release();
      throw err;
    }
    if (options.busyTimeoutMs !== undefined) db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs))}`);
    return new SqliteStore(path, db, options.onFault, lock);
  }

  readonly #lock: SharedStateLock | null;

  private constructor(path: string, db: Database.Database, onFault: ((fault: StateError) => void) | undefined, lock: SharedStateLock | null) {
    this.path = path;
    this.#db = db;
    this.#lock = lock;
    this.#absolute = resolve(path);
    this.#onFault = onFault;
    const st = statSync(this.#absolute, { bigint: true, throwIfNoEntry: false });
    this.#identity = st === undefined ? null : { dev: st.dev, ino: st.ino };
    this.#stmt = {
      getThrottle: db.prepare<[string], ThrottleState>("SELECT tokens, updated_at FROM throttles WHERE key = ?"),
      putThrottle: db.prepare<[string, number, number]>(
        "INSERT INTO throttles (key, tokens, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at",
      ),
      pruneThrottles: db.prepare<[number, number, number]>("DELETE FROM throttles WHERE tokens + (? - updated_at) * ? >= ?"),
      countThrottles: db.prepare<[], number>("SELECT count(*) FROM throttles").pluck(),
      addAccount: db.prepare<[string, string, string, string, number, string | null]>(
        "INSERT INTO accounts (host, username, skeleton, source, created_at, ip) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (host, username) DO NOTHING",
      ),
      removeAccount: db.prepare<[string, string]>("DELETE FROM accounts WHERE host = ? AND username = ?"),
      getAccount: db.prepare<[string, string], AccountRow>(
        "SELECT host, username, skeleton, source, created_at, ip FROM accounts WHERE host = ? AND username = ?",
      ),
      findBySkeleton: db.prepare<[string, string], string>("SELECT username FROM accounts WHERE host = ? AND skeleton = ? LIMIT 1").pluck(),
      countAll: db.prepare<[], number>("SELECT count(*) FROM accounts").pluck(),
      countHost: db.prepare<[string], number>("SELECT count(*) FROM accounts WHERE host = ?").pluck(),
      allAccounts: db.prepare<[], { host: string; username: string; skeleton: string }>("SELECT host, username, skeleton FROM accounts"),
      setSkeleton: db.prepare<[string, string, string]>("UPDATE accounts SET skeleton = ? WHERE host = ? AND username = ?"),
      getMeta: db.prepare<[string], string>("SELECT value FROM meta WHERE key = ?").pluck(),
      setMeta: db.prepare<[string, string]>(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      ),
      putTombstone: db.prepare<[string, string, number]>(
        "INSERT INTO tombstones (host, username, deleted_at) VALUES (?, ?, ?) ON CONFLICT (host, username) DO UPDATE SET deleted_at = excluded.deleted_at",
      ),
      getTombstone: db.prepare<[string, string], Tombstone>("SELECT username, host, deleted_at FROM tombstones WHERE host = ? AND username = ?"),
      deleteTombstone: db.prepare<[string, string]>("DELETE FROM tombstones WHERE host = ? AND username = ?"),
      pruneTombstones: db.prepare<[number]>("DELETE FROM tombstones WHERE deleted_at < ?"),
      getRemoteList: db.prepare<[string], RemoteListCopy>("SELECT body, etag, last_modified, fetched_at FROM remote_lists WHERE url = ?"),
      putRemoteList: db.prepare<[string, string, string | null, string | null, number]>(
        "INSERT INTO remote_lists (url, body, etag, last_modified, fetched_at) VALUES (?, ?, ?, ?, ?) " +
          "ON CONFLICT (url) DO UPDATE SET body = excluded.body, etag = excluded.etag, last_modified = excluded.last_modified, fetched_at = excluded.fetched_at",
      ),
    };
  }

  /**
   * The fault that stopped this store, or null while it serves. A store is
   * faulted when its file was deleted, replaced, emptied or found damaged
   * while open; every operation then throws this StateError (code
   * XPX_ERR_STATE_FAULT) without touching the file, until the file is opened
   * again (a new store). Other failures (a lock held too long, an I/O error,
   * a read-only file or directory) fail only the operation at hand.
   */
  get fault(): StateError | null {
    return this.#fault;
  }

  /**
   * Compares the file at `path` with the one this store has open (one stat
   * call); the owner calls it periodically. True when this call found the
   * store faulted, false when it serves or was already faulted.
   */
  check(): boolean {
    if (this.#fault !== null || !this.#db.open) return false;
    this.#lock?.check();
    const lost = this.#lost();
    if (lost === null) return false;
    this.#setFault(lost);
    return true;
  }

  /** The schema version stored in the file (SCHEMA_VERSION once open for writing). */
  get schemaVersion(): number {
    return this.#read("read meta", () => Number(this.#stmt.getMeta.get("schema_version")));
  }

  getThrottle(key: string): ThrottleState | undefined {
    return this.#read("read a throttle", () => this.#stmt.getThrottle.get(key));
  }

  putThrottle(key: string, state: ThrottleState): void {
    this.#write("write a throttle", () => this.#stmt.putThrottle.run(key, state.tokens, state.updated_at));
  }

  pruneThrottles(now: number, capacity: number, perMs: number): number {
    return this.#write("prune throttles", () => this.#stmt.pruneThrottles.run(now, perMs, capacity).changes);
  }

  countThrottles(): number {
    return this.#read("count throttles", () => this.#stmt.countThrottles.get() ?? 0);
  }

  addAccount(a: KnownAccount): boolean {
    return this.#write("add an account", () => this.#stmt.addAccount.run(a.host, a.username, a.skeleton, a.source, a.created_at, a.ip).changes > 0);
  }

  removeAccount(host: string, username: string): boolean {
    return this.#write("remove an account", () => this.#stmt.removeAccount.run(host, username).changes > 0);
  }

  hasAccount(host: string, username: string): boolean {
    return this.#read("read an account", () => this.#stmt.getAccount.get(host, username) !== undefined);
  }

  getAccount(host: string, username: string): KnownAccount | undefined {
    return this.#read("read an account", () => this.#stmt.getAccount.get(host, username));
  }

  findBySkeleton(host: string, skeleton: string): string | undefined {
    return this.#read("look up a skeleton", () => this.#stmt.findBySkeleton.get(host, skeleton));
  }

  countAccounts(host?: string): number {
    return this.#read("count accounts", () => (host === undefined ? this.#stmt.countAll.get() : this.#stmt.countHost.get(host)) ?? 0);
  }

  reindexSkeletons(version: string, compute: (username: string) => string): number {
    if (this.#read("read meta", () => this.#stmt.getMeta.get("skeleton_version")) === version) return 0;
    return this.#write("reindex skeletons", () =>
      this.#db
        .transaction(() => {
          let n = 0;
          for (const a of this.#stmt.allAccounts.all()) {
            const skeleton = compute(a.username);
            if (skeleton !== a.skeleton) {
              this.#stmt.setSkeleton.run(skeleton, a.host, a.username);
              n++;
            }
          }
          this.#stmt.setMeta.run("skeleton_version", version);
          return n;
        })
        .immediate(),
    );
  }

  putTombstone(t: Tombstone): void {
    this.#write("write a tombstone", () => this.#stmt.putTombstone.run(t.host, t.username, t.deleted_at));
  }

  getTombstone(host: string, username: string): Tombstone | undefined {
    return this.#read("read a tombstone", () => this.#stmt.getTombstone.get(host, username));
  }

  deleteTombstone(host: string, username: string): boolean {
    return this.#write("delete a tombstone", () => this.#stmt.deleteTombstone.run(host, username).changes > 0);
  }

  pruneTombstones(before: number): number {
    return this.#write("prune tombstones", () => this.#stmt.pruneTombstones.run(before).changes);
  }

  /**
   * Runs `fn` (this store's own methods) as one write transaction: one commit
   * instead of one per write, for bulk work such as `users import`.
   */
  /** The last good copy of the remote list at `url`, if one was saved. */
  getRemoteList(url: string): RemoteListCopy | undefined {
    return this.#read("reading a remote list copy", () => this.#stmt.getRemoteList.get(url));
  }

  putRemoteList(url: string, copy: RemoteListCopy): void {
    this.#write("saving a remote list copy", () => this.#stmt.putRemoteList.run(url, copy.body, copy.etag, copy.last_modified, copy.fetched_at));
  }

  transaction<T>(fn: () => T): T {
    return this.#write("write", () => this.#db.transaction(fn).immediate());
  }

  /**
   * Online backup of the live database to `toPath` (SQLite's backup API: a
   * consistent snapshot while registrations keep being written).
   */
  backup(toPath: string): Promise<void> {
    if (this.#fault !== null) return Promise.reject(this.#fault);
    return backupTo(this.#db, this.path, toPath);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
    this.#lock?.release();
  }

  /**
   * Runs `fn` on the open database for another store sharing this file (the
   * learned rosters), with this store's fault handling: a lost or damaged
   * file faults the store, other errors come back as StateError.
   */
  withDatabase<T>(doing: string, write: boolean, fn: (db: Database.Database) => T): T {
    return write ? this.#write(doing, () => fn(this.#db)) : this.#read(doing, () => fn(this.#db));
  }

  /** Whether this store holds the shared lock restore checks (false once faulted or closed). */
  get holdsLock(): boolean {
    return this.#lock?.held ?? false;
  }

  // -------------------------------------------------------------------------
  // Every operation goes through #read or #write, so what reaches the caller
  // is a result or a StateError, never anything else.

  #read<T>(doing: string, fn: () => T): T {
    this.#ready(doing);
    try {
      return fn();
    } catch (err) {
      throw this.#failed(err, doing);
    }
  }

  /** #read, after making sure the file at `path` is still the open one: a write must not land in a lost file. */
  #write<T>(doing: string, fn: () => T): T {
    this.#ready(doing);
    const lost = this.#lost();
    if (lost !== null) throw this.#setFault(lost);
    try {
      return fn();
    } catch (err) {
      throw this.#failed(err, doing);
    }
  }

  #ready(doing: string): void {
    if (this.#fault !== null) throw this.#fault;
    if (this.#busyUntil !== 0) {
      if (Date.now() < this.#busyUntil) {
        throw new StateError("XPX_ERR_STATE_FAULT", this.path, `cannot ${doing}: locked by another process (not waiting again for up to ${BUSY_BACKOFF_MS} ms)`);
      }
      this.#busyUntil = 0;
    }
  }

  /** What became of the file at `path`, or null while it is still the open one (one stat call). */
  #lost(): string | null {
    if (this.#identity === null) return null;
    let st;
    try {
      st = statSync(this.#absolute, { bigint: true, throwIfNoEntry: false });
    } catch {
      // Not knowable (a parent directory became unreadable, say): the
      // operations themselves will tell.
      return null;
    }
    if (st === undefined) return "was deleted or moved away while open";
    if (st.dev !== this.#identity.dev || st.ino !== this.#identity.ino) return "was replaced by another file while open";
    if (st.size === 0n) return "was truncated to nothing while open";
    return null;
  }

  /** What an operation threw, as the StateError the caller gets; faults the store when the file is gone or damaged. */
  #failed(err: unknown, doing: string): StateError {
    if (err instanceof StateError) return err;
    const code = sqliteCode(err);
    if (code.startsWith("SQLITE_BUSY")) this.#busyUntil = Date.now() + BUSY_BACKOFF_MS;
    const lost = this.#lost();
    if (lost !== null) return this.#setFault(lost, err);
    // SQLite's own check when a write starts: its open file is no longer at the path.
    if (code === "SQLITE_READONLY_DBMOVED") return this.#setFault("was deleted, moved or replaced while open", err);
    if (CORRUPT_CODES.has(code)) return this.#setFault(`is damaged (${reason(err)})`, err);
    // The same inode without our tables: emptied, or overwritten in place.
    if (code === "SQLITE_ERROR" && /no such table/.test(reason(err))) return this.#setFault(`no longer holds xmpp-guard's tables (${reason(err)})`, err);
    return new StateError("XPX_ERR_STATE_FAULT", this.path, `cannot ${doing} (${reason(err)})`, { cause: err });
  }

  #setFault(why: string, cause?: unknown): StateError {
    if (this.#fault === null) {
      this.#fault = new StateError("XPX_ERR_STATE_FAULT", this.path, `${why}; ${UNTIL_REOPENED}`, cause === undefined ? undefined : { cause });
      // The lost file is no longer used: a restore may now put one back (then a reload opens it).
      this.#lock?.release();
      this.#onFault?.(this.#fault);
    }
    return this.#fault;
  }
}
