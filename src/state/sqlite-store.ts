// The durable RegistrationStore: one SQLite file through better-sqlite3 (a
// rollback journal, prepared statements, versioned migrations recorded in a
// `meta` table), plus online backup and restore for `xmpp-guard backup` /
// `restore`. Opening never silently resets anything: a file that is not a
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
import { mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import type { KnownAccount, RegistrationStore, ThrottleState, Tombstone } from "./registration-store.js";
import { SharedStateLock, acquireExclusive } from "./state-lock.js";

/** `state.path` when the config does not set one (relative to the working directory). */
export const DEFAULT_STATE_PATH = "data/xmpp-guard.sqlite";

/** Marks the file as ours in `meta`, so a stray SQLite file is never migrated. */
export const APPLICATION_NAME = "xmpp-guard";

/**
 * Migrations, in order; the schema version is the number applied. Never edit a
 * released entry: append a new one. Each runs in one transaction with its
 * version bump.
 */
const MIGRATIONS: readonly string[] = [
  // 1: throttle buckets, known accounts with skeletons, tombstones.
  `CREATE TABLE throttles (
     key TEXT PRIMARY KEY,
     tokens REAL NOT NULL,
     updated_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE accounts (
     host TEXT NOT NULL,
     username TEXT NOT NULL,
     skeleton TEXT NOT NULL,
     source TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     ip TEXT,
     PRIMARY KEY (host, username)
   ) WITHOUT ROWID;
   CREATE INDEX accounts_by_skeleton ON accounts (host, skeleton);
   CREATE TABLE tombstones (
     host TEXT NOT NULL,
     username TEXT NOT NULL,
     deleted_at INTEGER NOT NULL,
     PRIMARY KEY (host, username)
   ) WITHOUT ROWID;
   CREATE INDEX tombstones_by_time ON tombstones (deleted_at);`,
  // 2: learned rosters (knowledge/roster-sqlite.ts, docs/knowledge.md): a row
  // in rosters means the owner's whole roster was seen; items and pending
  // inbound subscription requests may exist without one.
  `CREATE TABLE rosters (
     owner TEXT PRIMARY KEY,
     ver TEXT,
     learned_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE roster_items (
     owner TEXT NOT NULL,
     contact TEXT NOT NULL,
     subscription TEXT NOT NULL,
     ask TEXT,
     groups TEXT NOT NULL,
     PRIMARY KEY (owner, contact)
   ) WITHOUT ROWID;
   CREATE TABLE roster_pending_in (
     owner TEXT NOT NULL,
     contact TEXT NOT NULL,
     since INTEGER NOT NULL,
     PRIMARY KEY (owner, contact)
   ) WITHOUT ROWID;`,
  // 3: the last good copy of each remote block list (knowledge/remote-lists.ts), by URL.
  `CREATE TABLE remote_lists (
     url TEXT PRIMARY KEY,
     body TEXT NOT NULL,
     etag TEXT,
     last_modified TEXT,
     fetched_at INTEGER NOT NULL
   ) WITHOUT ROWID;`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** A remote list's body as last fetched, with its validators (fetched_at: epoch ms). */
export interface RemoteListCopy {
  readonly body: string;
  readonly etag: string | null;
  readonly last_modified: string | null;
  readonly fetched_at: number;
}

export type StateErrorCode =
  /** The path cannot be created, opened or written (permissions, read-only disk, a directory...). */
  | "XPX_ERR_STATE_OPEN"
  /** Not an SQLite database, fails `PRAGMA quick_check`, or not an xmpp-guard database. */
  | "XPX_ERR_STATE_CORRUPT"
  /** Written by a newer xmpp-guard (schema version above SCHEMA_VERSION). */
  | "XPX_ERR_STATE_VERSION"
  /** A backup or restore failed. */
  | "XPX_ERR_STATE_BACKUP"
  /** An operation failed while running (lock, I/O), or the file was lost under an open store. */
  | "XPX_ERR_STATE_FAULT"
  /** A running proxy holds the file (restore refuses). */
  | "XPX_ERR_STATE_BUSY";

export class StateError extends Error {
  readonly code: StateErrorCode;
  readonly path: string;
  constructor(code: StateErrorCode, path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.name = "StateError";
    this.code = code;
    this.path = path;
  }
}

export interface OpenOptions {
  /** Open for reading only (restore validation, inspection); no migration, no write check. */
  readonly readonly?: boolean;
  /**
   * How long a statement waits for another process's lock once the store is
   * open (opening itself waits up to 5 s). Default 5000 ms, for the CLI; the
   * running proxy uses RUNNING_BUSY_TIMEOUT_MS, since a wait blocks every session.
   */
  readonly busyTimeoutMs?: number;
  /** Called once, when the store becomes faulted (see SqliteStore.fault). */
  readonly onFault?: (fault: StateError) => void;
  /**
   * Hold the shared lock `restore` checks (state-lock.ts) for as long as the
   * store serves: the running proxy does, the CLI's short-lived opens do not.
   */
  readonly holdLock?: boolean;
  /** With holdLock: how long to wait for a restore in progress (default 5000 ms; a running proxy waits 0). */
  readonly lockWaitMs?: number;
}

/** The lock wait of the proxy's own store: long enough for another process's commit, short enough not to stall sessions. */
export const RUNNING_BUSY_TIMEOUT_MS = 250;

/** After a lock wait ran out, operations fail at once for this long instead of waiting again. */
export const BUSY_BACKOFF_MS = 1000;

interface AccountRow {
  host: string;
  username: string;
  skeleton: string;
  source: KnownAccount["source"];
  created_at: number;
  ip: string | null;
}

/** SQLite error codes that mean "this file is damaged or not a database". */
const CORRUPT_CODES = new Set(["SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_CORRUPT_VTAB", "SQLITE_CORRUPT_SEQUENCE", "SQLITE_CORRUPT_INDEX"]);

/** How every fault message ends: what it costs, and what ends it. */
const UNTIL_REOPENED = "registration is refused until a reload or restart opens it again";

function sqliteCode(err: unknown): string {
  return typeof err === "object" && err !== null && typeof (err as { code?: unknown }).code === "string"
    ? (err as { code: string }).code
    : "";
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Wraps a driver or file-system error in the StateError it stands for. */
function asStateError(path: string, err: unknown, doing: string): StateError {
  if (err instanceof StateError) return err;
  const code = sqliteCode(err);
  if (CORRUPT_CODES.has(code)) {
    return new StateError("XPX_ERR_STATE_CORRUPT", path, `not a usable SQLite database (${reason(err)}); restore a backup or move the file away`, { cause: err });
  }
  return new StateError("XPX_ERR_STATE_OPEN", path, `cannot ${doing} (${reason(err)})`, { cause: err });
}

/**
 * Opens a database and checks it: integrity, ownership, schema version. With
 * `migrate`, brings the schema up to date and proves the file is writable.
 */
function openChecked(path: string, options: { readonly: boolean; migrate: boolean }): Database.Database {
  if (!options.readonly) {
    try {
      mkdirSync(dirname(resolve(path)), { recursive: true });
    } catch (err) {
      throw asStateError(path, err, "create the directory");
    }
  }
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: options.readonly, fileMustExist: options.readonly, timeout: 5000 });
  } catch (err) {
    throw asStateError(path, err, "open the database");
  }
  try {
    // Reads go through read() calls, never a mapping of the file (SQLite's
    // default here, made explicit: a mapped file that shrinks is a SIGBUS).
    db.pragma("mmap_size = 0");
    const check = db.pragma("quick_check", { simple: true });
    if (check !== "ok") throw new StateError("XPX_ERR_STATE_CORRUPT", path, `integrity check failed: ${String(check)}`);
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all() as string[];
    let version = 0;
    if (tables.length > 0) {
      if (!tables.includes("meta")) {
        throw new StateError("XPX_ERR_STATE_CORRUPT", path, "is an SQLite database, but not xmpp-guard's (no meta table)");
      }
      const meta = new Map(
        (db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [r.key, r.value]),
      );
      if (meta.get("application") !== APPLICATION_NAME) {
        throw new StateError("XPX_ERR_STATE_CORRUPT", path, "is an SQLite database, but not xmpp-guard's (meta.application)");
      }
      version = Number(meta.get("schema_version"));
      if (!Number.isInteger(version) || version < 1) {
        throw new StateError("XPX_ERR_STATE_CORRUPT", path, `invalid schema_version ${JSON.stringify(meta.get("schema_version"))}`);
      }
      if (version > SCHEMA_VERSION) {
        throw new StateError(
          "XPX_ERR_STATE_VERSION",
          path,
          `schema version ${version} is newer than this xmpp-guard understands (${SCHEMA_VERSION}); upgrade xmpp-guard or restore an older backup`,
        );
      }
    }
    if (options.migrate) {
      leaveWal(db, path);
      // FULL: a committed write survives a power loss, and the file is never
      // corrupted by one. Each commit costs a few fsyncs (docs/deploy.md).
      db.pragma("synchronous = FULL");
      migrate(db, version);
      // Proves the file is writable now rather than at the first registration.
      db.prepare("INSERT INTO meta (key, value) VALUES ('opened_at', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(
        new Date().toISOString(),
      );
    } else if (version === 0) {
      throw new StateError("XPX_ERR_STATE_CORRUPT", path, "is empty, not an xmpp-guard database");
    }
    return db;
  } catch (err) {
    db.close();
    throw asStateError(path, err, "write the database");
  }
}

/**
 * Puts the file in TRUNCATE journal mode. A file left in WAL mode (by an older
 * xmpp-guard) is converted, which SQLite allows only while no other connection
 * has it open: the -wal is checkpointed into the file, -wal and -shm go away.
 * TRUNCATE rather than DELETE keeps the (empty) journal file between
 * transactions, so writes go on when the directory becomes read-only.
 */
function leaveWal(db: Database.Database, path: string): void {
  let mode: unknown;
  try {
    mode = db.pragma("journal_mode = TRUNCATE", { simple: true });
  } catch (err) {
    if (!sqliteCode(err).startsWith("SQLITE_BUSY")) throw err;
    mode = "wal";
  }
  if (mode !== "truncate") {
    throw new StateError(
      "XPX_ERR_STATE_OPEN",
      path,
      "is in WAL mode and another process has it open, so it cannot be switched to a rollback journal; stop that process (an older xmpp-guard?) and start again",
    );
  }
}

function migrate(db: Database.Database, from: number): void {
  for (let v = from; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      // Another process opening the same file at the same time (a cluster
      // worker) may have applied this step since `from` was read. Everything
      // happens under the write lock taken by immediate(), so the other one
      // never sees a meta table without its application row either.
      db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID");
      if (Number(db.prepare<[], string>("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get() ?? 0) > v) return;
      db.exec(MIGRATIONS[v]!);
      const setMeta = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
      setMeta.run("application", APPLICATION_NAME);
      setMeta.run("schema_version", String(v + 1));
    }).immediate();
  }
}

/** Writes a consistent copy of `db` to `toPath` through a temporary file, then renames it into place. */
async function backupTo(db: Database.Database, sourcePath: string, toPath: string): Promise<void> {
  const partial = `${toPath}.partial-${process.pid}`;
  try {
    mkdirSync(dirname(resolve(toPath)), { recursive: true });
    await db.backup(partial);
    renameSync(partial, toPath);
  } catch (err) {
    rmSync(partial, { force: true });
    throw new StateError("XPX_ERR_STATE_BACKUP", sourcePath, `backup to ${toPath} failed (${reason(err)})`, { cause: err });
  }
}

/** Which file an open store holds: device and inode, as stat reports them. */
interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
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

/** Counts that `restore` reports, so the CLI can say what it restored. */
export interface StateSummary {
  readonly schemaVersion: number;
  readonly accounts: number;
  readonly tombstones: number;
  readonly throttles: number;
}

function summarize(db: Database.Database): StateSummary {
  const count = (table: string): number => db.prepare<[], number>(`SELECT count(*) FROM ${table}`).pluck().get() ?? 0;
  return {
    schemaVersion: Number(db.prepare<[], string>("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get()),
    accounts: count("accounts"),
    tombstones: count("tombstones"),
    throttles: count("throttles"),
  };
}

/**
 * `xmpp-guard backup FILE`: a consistent copy of the state database at
 * `statePath` while the proxy keeps running (the copy reads under a shared
 * lock a few pages at a time, so the proxy's writes wait at most one step;
 * SQLite restarts the copy if a write lands mid-way).
 */
export async function backup(statePath: string, toPath: string): Promise<StateSummary> {
  const db = openChecked(statePath, { readonly: true, migrate: false });
  try {
    const summary = summarize(db);
    await backupTo(db, statePath, toPath);
    return summary;
  } finally {
    db.close();
  }
}

/**
 * `xmpp-guard restore FILE`: replace the contents of the state database at
 * `statePath` with the backup at `fromPath`. Refused (StateError
 * XPX_ERR_STATE_BUSY) while a running proxy holds the file (state-lock.ts);
 * the exclusive lock is kept until the copy is done, so a proxy starting
 * meanwhile waits. The backup is checked first (integrity, ownership, schema
 * version) and the live file is left untouched when it fails. The copy goes
 * through SQLite's backup API, so an existing WAL is handled. Returns what
 * the restored file holds (after migrating an older backup).
 */
export async function restore(statePath: string, fromPath: string): Promise<StateSummary> {
  const lock = acquireExclusive(statePath);
  try {
    return await restoreLocked(statePath, fromPath);
  } finally {
    lock.release();
  }
}

async function restoreLocked(statePath: string, fromPath: string): Promise<StateSummary> {
  const source = openChecked(fromPath, { readonly: true, migrate: false });
  try {
    mkdirSync(dirname(resolve(statePath)), { recursive: true });
    await source.backup(statePath);
  } catch (err) {
    throw err instanceof StateError
      ? err
      : new StateError("XPX_ERR_STATE_BACKUP", statePath, `restore from ${fromPath} failed (${reason(err)})`, { cause: err });
  } finally {
    source.close();
  }
  // Re-open for writing: migrates an older backup and re-checks the result.
  const db = openChecked(statePath, { readonly: false, migrate: true });
  try {
    return summarize(db);
  } finally {
    db.close();
  }
}
