// `xmpp-guard backup` / `restore` of the SQLite state file, online: the
// proxy keeps running (docs/registration.md, "State and backups").
import { mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type Database from "better-sqlite3";
import { APPLICATION_NAME, SCHEMA_VERSION, StateError, leaveWal, openChecked, reason } from "./sqlite-file.js";
import { acquireExclusive } from "./state-lock.js";

/** Writes a consistent copy of `db` to `toPath` through a temporary file, then renames it into place. */
export async function backupTo(db: Database.Database, sourcePath: string, toPath: string): Promise<void> {
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
