// Learned rosters in the test process only (the RosterStore contract of
// src/knowledge/roster-store.ts, over the same owner state the real stores
// cache), for tests that need no SQLite file or Redis.
import { applyTo, emptyOwner, type OwnerState, type RosterItem, type RosterStore } from "../../src/knowledge/roster-store.js";

/** Rosters in this process only: lost at exit. */
export class MemoryRosterStore implements RosterStore {
  readonly #owners = new Map<string, OwnerState>();
  #known = 0;

  #get(owner: string): OwnerState {
    let s = this.#owners.get(owner);
    if (s === undefined) this.#owners.set(owner, (s = emptyOwner()));
    return s;
  }

  known(owner: string): { readonly ver: string | undefined } | undefined {
    const s = this.#owners.get(owner);
    return s?.known === true ? { ver: s.ver } : undefined;
  }

  item(owner: string, contact: string): RosterItem | undefined {
    return this.#owners.get(owner)?.items.get(contact);
  }

  pendingIn(owner: string, contact: string): boolean {
    return this.#owners.get(owner)?.pending.has(contact) ?? false;
  }

  replace(owner: string, ver: string | undefined, items: ReadonlyMap<string, RosterItem>): void {
    const s = this.#get(owner);
    if (!s.known) this.#known++;
    applyTo.replace(s, ver, items);
  }

  setItem(owner: string, contact: string, item: RosterItem | null, ver: string | undefined): void {
    applyTo.setItem(this.#get(owner), contact, item, ver);
  }

  setPendingIn(owner: string, contact: string, pending: boolean): void {
    applyTo.setPendingIn(this.#get(owner), contact, pending);
  }

  countKnown(): number {
    return this.#known;
  }

  close(): void {}
}
