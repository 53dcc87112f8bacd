// The state file itself: where it lives, its schema and migrations, the
// errors it can raise, and opening it safely (see sqlite-store.ts for why no
// part of it is ever memory-mapped and nothing is ever silently reset).
import { mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";

export const DEFAULT_STATE_PATH = "data/xmpp-guard.sqlite";

/** Marks the file as ours in `meta`, so a stray SQLite file is never migrated. */
export const APPLICATION_NAME = "xmpp-guard";

/**
 * Migrations, in order; the schema version is the number applied. Never edit a
 * released entry: append a new one. Each runs in one transaction with its
 * version bump.
 */
export const MIGRATIONS: readonly string[] = [
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

/** SQLite error codes that mean "this file is damaged or not a database". */
export const CORRUPT_CODES = new Set(["SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_CORRUPT_VTAB", "SQLITE_CORRUPT_SEQUENCE", "SQLITE_CORRUPT_INDEX"]);

/** How every fault message ends: what it costs, and what ends it. */
export const UNTIL_REOPENED = "registration is refused until a reload or restart opens it again";

export function sqliteCode(err: unknown): string {
  return typeof err === "object" && err !== null && typeof (err as { code?: unknown }).code === "string"
    ? (err as { code: string }).code
    : "";
}

export function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Wraps a driver or file-system error in the StateError it stands for. */
export function asStateError(path: string, err: unknown, doing: string): StateError {
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
export function openChecked(path: string, options: { readonly: boolean; migrate: boolean }): Database.Database {
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
export function leaveWal(db: Database.Database, path: string): void {
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

export function migrate(db: Database.Database, from: number): void {
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


/** Which file an open store holds: device and inode, as stat reports them. */
export interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
}
