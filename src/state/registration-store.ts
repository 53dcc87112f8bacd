// The durable state behind registration hygiene (docs/registration.md, "State and backups"): per-IP throttle
// buckets, the known accounts of each host with their UTS #39 skeletons, and
// tombstones of deleted accounts. Callers normalise hosts (lower-case) and
// usernames (nodeprep) before they get here; the store compares strings as
// given. Implementations are synchronous: policy stages judge stanzas inline.
// Times are Unix epoch milliseconds from an injected wall clock.
import type { ThrottleState } from "../shaping/token-bucket.js";

/**
 * One IP's registration token bucket (Prosody's util.throttle state, polled
 * by pollThrottleState): the balance and when it was last refreshed. A
 * missing row is a full bucket.
 */
export type { ThrottleState };

/**
 * Drop the buckets of `throttles` that have refilled to `capacity` by `now`
 * (they hold nothing a fresh bucket would not); returns how many went. The
 * in-memory stores share this; SQLite does the same in one DELETE.
 */
export function pruneRefilled(throttles: Map<string, ThrottleState>, now: number, capacity: number, perMs: number): number {
  let n = 0;
  for (const [k, s] of throttles) {
    if (s.tokens + (now - s.updated_at) * perMs >= capacity) {
      throttles.delete(k);
      n++;
    }
  }
  return n;
}

/** Drop the tombstones deleted before `before` from an in-memory map; returns how many went. */
export function pruneTombstonesBefore(tombstones: Map<string, Tombstone>, before: number): number {
  let n = 0;
  for (const [k, t] of tombstones) {
    if (t.deleted_at < before) {
      tombstones.delete(k);
      n++;
    }
  }
  return n;
}

/** Accounts in an in-memory map, all of them or those of `host`. */
export function countAccountsIn(accounts: ReadonlyMap<string, KnownAccount>, host?: string): number {
  if (host === undefined) return accounts.size;
  let n = 0;
  for (const a of accounts.values()) if (a.host === host) n++;
  return n;
}

/** How the proxy learned about an account. */
export type AccountSource = "registration" | "bind" | "import";

export interface KnownAccount {
  /** Lower-case domain, e.g. "example.org". */
  readonly host: string;
  /** Nodeprepped localpart. */
  readonly username: string;
  /** UTS #39 skeleton of `username` (see src/registration/skeleton.ts). */
  readonly skeleton: string;
  readonly source: AccountSource;
  /** Epoch ms when the proxy learned of the account. */
  readonly created_at: number;
  /** Real client IP of the registration, when the proxy saw it. */
  readonly ip: string | null;
}

export interface Tombstone {
  readonly username: string;
  readonly host: string;
  /** Epoch ms of the deletion. */
  readonly deleted_at: number;
}

export interface RegistrationStore {
  /** The state of `key`'s bucket (an IP, or an IPv6 /64), or undefined when full. */
  getThrottle(key: string): ThrottleState | undefined;
  /**
   * Store `state`, the bucket after one debit. `spec`, when given, lets a
   * shared store redo the debit atomically on its own copy (RedisStore), as
   * pollThrottleState at `spec.now` would.
   */
  putThrottle(key: string, state: ThrottleState, spec?: { readonly capacity: number; readonly perMs: number; readonly now: number }): void;
  /**
   * Forget every bucket that has refilled to `capacity` by `now` (refill of
   * `perMs` tokens per millisecond): a full bucket needs no row. Returns the count.
   */
  pruneThrottles(now: number, capacity: number, perMs: number): number;
  /** Number of stored buckets (for metrics and tests). */
  countThrottles(): number;

  /** Insert the account; an existing (host, username) row is left as it is. True when added. */
  addAccount(account: KnownAccount): boolean;
  removeAccount(host: string, username: string): boolean;
  hasAccount(host: string, username: string): boolean;
  getAccount(host: string, username: string): KnownAccount | undefined;
  /** A username on `host` with this skeleton, if any (several may share one). */
  findBySkeleton(host: string, skeleton: string): string | undefined;
  countAccounts(host?: string): number;
  /**
   * Recompute every stored skeleton with `compute` unless the store already
   * holds skeletons of `version` (the confusables data changed). Returns the
   * number of rows rewritten.
   */
  reindexSkeletons(version: string, compute: (username: string) => string): number;

  /** Insert or replace the tombstone of (host, username). */
  putTombstone(tombstone: Tombstone): void;
  getTombstone(host: string, username: string): Tombstone | undefined;
  deleteTombstone(host: string, username: string): boolean;
  /** Delete tombstones deleted before `before` (epoch ms). Returns the count. */
  pruneTombstones(before: number): number;

  close(): void;
}
