// %LIST backends (docs/firewall.md, "Definitions"): in-memory sets (optionally LRU-bounded),
// file lists (one exact item per line, read at load), and remote lists opened
// through an injected provider. Filters normalise every argument of add,
// remove and contains. Hash filters produce lower-case hex digests.
import { createHash } from "node:crypto";
import type { ListFilter } from "./ast.js";
import type { RemoteList } from "./context.js";
import { bareJid, prepJid } from "../xmpp/jid.js";

export interface MembershipList {
  contains(item: string): boolean;
  add(item: string): void;
  remove(item: string): void;
}

/** A set, with LRU eviction when `limit` is given (most recently added last). */
export class MemoryList implements MembershipList {
  readonly limit: number | undefined;
  readonly items: Set<string>;

  constructor(limit?: number, initial?: Iterable<string>) {
    this.limit = limit;
    this.items = new Set(initial);
  }

  contains(item: string): boolean {
    return this.items.has(item);
  }

  add(item: string): void {
    this.items.delete(item);
    this.items.add(item);
    if (this.limit !== undefined && this.items.size > this.limit) {
      const oldest = this.items.values().next().value as string;
      this.items.delete(oldest);
    }
  }

  remove(item: string): void {
    this.items.delete(item);
  }
}

/**
 * Items of a list file, read as Prosody reads them (a Lua file:lines() loop):
 * one per line ending in LF, exactly as written. A CR before the LF stays in
 * the item, so a file with CR LF line ends holds "alice@example.org\r", which
 * no address equals; a blank line is the empty item.
 */
export function fileListItems(text: string): string[] {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** A remote list is read-only: ADD TO is a no-op, as in Prosody. */
export class RemoteMembershipList implements MembershipList {
  readonly #remote: RemoteList;

  constructor(remote: RemoteList) {
    this.#remote = remote;
  }

  contains(item: string): boolean {
    return this.#remote.contains(item);
  }

  add(): void {}

  remove(): void {}
}

const FILTER_FUNCS: Record<ListFilter, (s: string) => string> = {
  upper: (s) => s.toUpperCase(),
  lower: (s) => s.toLowerCase(),
  md5: (s) => createHash("md5").update(s).digest("hex"),
  sha1: (s) => createHash("sha1").update(s).digest("hex"),
  sha256: (s) => createHash("sha256").update(s).digest("hex"),
  prep: (s) => prepJid(s) ?? s,
  bare: (s) => bareJid(s) ?? s,
  // Prosody logs each lookup at debug level; lookups are visible in traces here.
  log: (s) => s,
};

/** Wrap a list so every argument passes through the filters in order. */
export function withFilters(list: MembershipList, filters: readonly ListFilter[]): MembershipList {
  if (filters.length === 0) return list;
  const fns = filters.map((f) => FILTER_FUNCS[f]);
  const apply = (s: string): string => fns.reduce((acc, fn) => fn(acc), s);
  return {
    contains: (item) => list.contains(apply(item)),
    add: (item) => list.add(apply(item)),
    remove: (item) => list.remove(apply(item)),
  };
}
