// Where learned rosters live (docs/knowledge.md). Every store answers
// synchronously: the firewall asks while it judges a stanza. Two backends
// share this interface: SQLite (roster-sqlite.ts: the state file, shared by
// cluster workers) and Redis (roster-redis.ts: a replicated cache shared by a
// fleet); tests use an in-memory one (test/helpers/memory-roster-store.ts).
//
// Keys are prepped bare JIDs (lower-cased node and domain), the form the
// firewall's conditions compare with.

export type Subscription = "none" | "to" | "from" | "both";

export interface RosterItem {
  readonly subscription: Subscription;
  /** Outgoing request pending (ask='subscribe'). */
  readonly ask?: "subscribe" | undefined;
  readonly groups: readonly string[];
}

export interface RosterStore {
  /**
   * Whether `owner`'s whole roster was seen (a full roster result), and the
   * version it had then or after the last push (undefined: the server sent
   * none). undefined: never seen whole.
   */
  known(owner: string): { readonly ver: string | undefined } | undefined;
  /** The item `owner` has for `contact`, as last learned. */
  item(owner: string, contact: string): RosterItem | undefined;
  /** Whether `contact` has an unanswered subscription request to `owner`. */
  pendingIn(owner: string, contact: string): boolean;
  /** A full roster result: replaces every item of `owner` and marks the roster known. Pending requests stay. */
  replace(owner: string, ver: string | undefined, items: ReadonlyMap<string, RosterItem>): void;
  /**
   * A roster push: sets (or with null removes) one item. The version moves
   * to `ver` only when the roster is known; an unknown roster stays unknown.
   */
  setItem(owner: string, contact: string, item: RosterItem | null, ver: string | undefined): void;
  setPendingIn(owner: string, contact: string, pending: boolean): void;
  /** How many rosters are known (for the gauge). */
  countKnown(): number;
  close(): void;
}

/** One owner's learned state, as every backend caches it. */
export interface OwnerState {
  known: boolean;
  ver: string | undefined;
  readonly items: Map<string, RosterItem>;
  readonly pending: Set<string>;
}

export function emptyOwner(): OwnerState {
  return { known: false, ver: undefined, items: new Map(), pending: new Set() };
}

/** Applies a store operation to an owner's state (shared by the SQLite cache, the Redis replicas and the tests' memory store). */
export const applyTo = {
  replace(s: OwnerState, ver: string | undefined, items: ReadonlyMap<string, RosterItem>): void {
    s.known = true;
    s.ver = ver;
    s.items.clear();
    for (const [c, it] of items) s.items.set(c, it);
  },
  setItem(s: OwnerState, contact: string, item: RosterItem | null, ver: string | undefined): void {
    if (item === null) s.items.delete(contact);
    else s.items.set(contact, item);
    if (s.known) s.ver = ver;
  },
  setPendingIn(s: OwnerState, contact: string, pending: boolean): void {
    if (pending) s.pending.add(contact);
    else s.pending.delete(contact);
  },
};
