// An in-memory RegistrationStore for tests and for running without durable
// state. Same semantics as SqliteStore, nothing survives a restart.
import { countAccountsIn, pruneRefilled, pruneTombstonesBefore, type KnownAccount, type RegistrationStore, type ThrottleState, type Tombstone } from "../../src/state/registration-store.js";

function key2(host: string, username: string): string {
  // "@" cannot occur in a nodeprepped username, so the pair is unambiguous.
  return `${username}@${host}`;
}

export class MemoryStore implements RegistrationStore {
  readonly #throttles = new Map<string, ThrottleState>();
  readonly #accounts = new Map<string, KnownAccount>();
  readonly #tombstones = new Map<string, Tombstone>();
  #skeletonVersion: string | undefined;
  #closed = false;

  getThrottle(key: string): ThrottleState | undefined {
    this.#check();
    return this.#throttles.get(key);
  }

  putThrottle(key: string, state: ThrottleState): void {
    this.#check();
    this.#throttles.set(key, { tokens: state.tokens, updated_at: state.updated_at });
  }

  pruneThrottles(now: number, capacity: number, perMs: number): number {
    this.#check();
    return pruneRefilled(this.#throttles, now, capacity, perMs);
  }

  countThrottles(): number {
    return this.#throttles.size;
  }

  addAccount(account: KnownAccount): boolean {
    this.#check();
    const k = key2(account.host, account.username);
    if (this.#accounts.has(k)) return false;
    this.#accounts.set(k, { ...account });
    return true;
  }

  removeAccount(host: string, username: string): boolean {
    this.#check();
    return this.#accounts.delete(key2(host, username));
  }

  hasAccount(host: string, username: string): boolean {
    this.#check();
    return this.#accounts.has(key2(host, username));
  }

  getAccount(host: string, username: string): KnownAccount | undefined {
    this.#check();
    return this.#accounts.get(key2(host, username));
  }

  findBySkeleton(host: string, skeleton: string): string | undefined {
    this.#check();
    for (const a of this.#accounts.values()) {
      if (a.host === host && a.skeleton === skeleton) return a.username;
    }
    return undefined;
  }

  countAccounts(host?: string): number {
    return countAccountsIn(this.#accounts, host);
  }

  reindexSkeletons(version: string, compute: (username: string) => string): number {
    this.#check();
    if (this.#skeletonVersion === version) return 0;
    let n = 0;
    for (const [k, a] of this.#accounts) {
      const skeleton = compute(a.username);
      if (skeleton !== a.skeleton) {
        this.#accounts.set(k, { ...a, skeleton });
        n++;
      }
    }
    this.#skeletonVersion = version;
    return n;
  }

  putTombstone(t: Tombstone): void {
    this.#check();
    this.#tombstones.set(key2(t.host, t.username), { username: t.username, host: t.host, deleted_at: t.deleted_at });
  }

  getTombstone(host: string, username: string): Tombstone | undefined {
    this.#check();
    return this.#tombstones.get(key2(host, username));
  }

  deleteTombstone(host: string, username: string): boolean {
    this.#check();
    return this.#tombstones.delete(key2(host, username));
  }

  pruneTombstones(before: number): number {
    this.#check();
    return pruneTombstonesBefore(this.#tombstones, before);
  }

  close(): void {
    this.#closed = true;
  }

  #check(): void {
    if (this.#closed) throw new Error("MemoryStore is closed");
  }
}
