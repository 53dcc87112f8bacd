// Learned rosters in the SQLite state file (tables from migration 2 in
// state/sqlite-store.ts), so they survive logouts and restarts, and every
// cluster worker (each with its own connection to the same file) shares them.
//
// Reads are synchronous prepared statements behind a small per-process cache
// of whole owners. The cache is dropped whenever another connection (another
// worker, or a CLI) has committed to the file since the last read: SQLite's
// `PRAGMA data_version` changes exactly then, and reading it costs no I/O
// beyond what the read itself needs. A worker therefore never answers from a
// state older than the last commit it could see. This connection's own
// writes do not change data_version; they drop the owner they touched.
import type Database from "better-sqlite3";
import type { OpenOptions } from "../state/sqlite-file.js";
import type { SqliteStore } from "../state/sqlite-store.js";
import { SqliteStore as Store } from "../state/sqlite-store.js";
import { applyTo, emptyOwner, type OwnerState, type RosterItem, type RosterStore, type Subscription } from "./roster-store.js";

/** How many owners the cache holds (least recently used dropped first). */
export const ROSTER_CACHE_OWNERS = 4096;

interface ItemRow {
  contact: string;
  subscription: Subscription;
  ask: string | null;
  groups: string;
}

function prepare(db: Database.Database) {
  return {
    dataVersion: db.prepare<[], number>("PRAGMA data_version").pluck(),
    getRoster: db.prepare<[string], { ver: string | null }>("SELECT ver FROM rosters WHERE owner = ?"),
    getItems: db.prepare<[string], ItemRow>("SELECT contact, subscription, ask, groups FROM roster_items WHERE owner = ?"),
    getPending: db.prepare<[string], string>("SELECT contact FROM roster_pending_in WHERE owner = ?").pluck(),
    putRoster: db.prepare<[string, string | null, number]>(
      "INSERT INTO rosters (owner, ver, learned_at) VALUES (?, ?, ?) ON CONFLICT (owner) DO UPDATE SET ver = excluded.ver, learned_at = excluded.learned_at",
    ),
    setVer: db.prepare<[string | null, string]>("UPDATE rosters SET ver = ? WHERE owner = ?"),
    clearItems: db.prepare<[string]>("DELETE FROM roster_items WHERE owner = ?"),
    putItem: db.prepare<[string, string, string, string | null, string]>(
      "INSERT INTO roster_items (owner, contact, subscription, ask, groups) VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner, contact) DO UPDATE SET subscription = excluded.subscription, ask = excluded.ask, groups = excluded.groups",
    ),
    deleteItem: db.prepare<[string, string]>("DELETE FROM roster_items WHERE owner = ? AND contact = ?"),
    putPending: db.prepare<[string, string, number]>("INSERT INTO roster_pending_in (owner, contact, since) VALUES (?, ?, ?) ON CONFLICT (owner, contact) DO NOTHING"),
    deletePending: db.prepare<[string, string]>("DELETE FROM roster_pending_in WHERE owner = ? AND contact = ?"),
    countKnown: db.prepare<[], number>("SELECT count(*) FROM rosters").pluck(),
  };
}

export class SqliteRosterStore implements RosterStore {
  readonly #store: SqliteStore;
  readonly #owns: boolean;
  readonly #stmt: ReturnType<typeof prepare>;
  readonly #cache = new Map<string, OwnerState>();
  #dataVersion = -1;

  /** Opens the state file for rosters (its own connection; migrated like the registration store). */
  static open(path: string, options: OpenOptions = {}): SqliteRosterStore {
    return new SqliteRosterStore(Store.open(path, options), true);
  }

  /** Over an open store (closed with it when `owns`). */
  constructor(store: SqliteStore, owns = false) {
    this.#store = store;
    this.#owns = owns;
    this.#stmt = store.withDatabase("prepare roster statements", false, prepare);
  }

  /** The underlying state store (its fault, its file check). */
  get state(): SqliteStore {
    return this.#store;
  }

  #owner(owner: string): OwnerState {
    return this.#store.withDatabase("read a roster", false, () => {
      const v = this.#stmt.dataVersion.get()!;
      if (v !== this.#dataVersion) {
        this.#cache.clear();
        this.#dataVersion = v;
      }
      let s = this.#cache.get(owner);
      if (s !== undefined) {
        // Most recently used last.
        this.#cache.delete(owner);
        this.#cache.set(owner, s);
        return s;
      }
      s = emptyOwner();
      const row = this.#stmt.getRoster.get(owner);
      if (row !== undefined) {
        s.known = true;
        s.ver = row.ver ?? undefined;
      }
      for (const r of this.#stmt.getItems.all(owner)) {
        s.items.set(r.contact, { subscription: r.subscription, ask: r.ask === "subscribe" ? "subscribe" : undefined, groups: JSON.parse(r.groups) as string[] });
      }
      for (const c of this.#stmt.getPending.all(owner)) s.pending.add(c);
      this.#cache.set(owner, s);
      if (this.#cache.size > ROSTER_CACHE_OWNERS) this.#cache.delete(this.#cache.keys().next().value as string);
      return s;
    });
  }

  known(owner: string): { readonly ver: string | undefined } | undefined {
    const s = this.#owner(owner);
    return s.known ? { ver: s.ver } : undefined;
  }

  item(owner: string, contact: string): RosterItem | undefined {
    return this.#owner(owner).items.get(contact);
  }

  pendingIn(owner: string, contact: string): boolean {
    return this.#owner(owner).pending.has(contact);
  }

  replace(owner: string, ver: string | undefined, items: ReadonlyMap<string, RosterItem>): void {
    this.#write(owner, "write a roster", () => {
      this.#stmt.putRoster.run(owner, ver ?? null, Date.now());
      this.#stmt.clearItems.run(owner);
      for (const [c, it] of items) this.#stmt.putItem.run(owner, c, it.subscription, it.ask ?? null, JSON.stringify(it.groups));
    }, (s) => applyTo.replace(s, ver, items));
  }

  setItem(owner: string, contact: string, item: RosterItem | null, ver: string | undefined): void {
    this.#write(owner, "write a roster item", () => {
      if (item === null) this.#stmt.deleteItem.run(owner, contact);
      else this.#stmt.putItem.run(owner, contact, item.subscription, item.ask ?? null, JSON.stringify(item.groups));
      this.#stmt.setVer.run(ver ?? null, owner);
    }, (s) => applyTo.setItem(s, contact, item, ver));
  }

  setPendingIn(owner: string, contact: string, pending: boolean): void {
    this.#write(owner, "write a pending subscription", () => {
      if (pending) this.#stmt.putPending.run(owner, contact, Date.now());
      else this.#stmt.deletePending.run(owner, contact);
    }, (s) => applyTo.setPendingIn(s, contact, pending));
  }

  countKnown(): number {
    return this.#store.withDatabase("count rosters", false, () => this.#stmt.countKnown.get() ?? 0);
  }

  /** One transaction; the cached owner follows it, or is dropped when the write failed. */
  #write(owner: string, doing: string, sql: () => void, local: (s: OwnerState) => void): void {
    try {
      this.#store.withDatabase(doing, true, (db) => db.transaction(sql).immediate());
    } catch (err) {
      this.#cache.delete(owner);
      throw err;
    }
    const s = this.#cache.get(owner);
    if (s !== undefined) local(s);
  }

  close(): void {
    this.#cache.clear();
    if (this.#owns) this.#store.close();
  }
}
