// What every remote block list shares (docs/knowledge.md, "Remote lists"):
// its name and items, hashed lookups, its metric series, and the owner it
// reports to (the RemoteLists registry, knowledge/remote-lists.ts).
import { createHash } from "node:crypto";
import type { KnowledgeListsConfig } from "./options.js";
import type { RemoteList } from "../firewall/context.js";
import type { Logger } from "../log.js";
import type { RemoteListOutcome } from "../metrics/definitions.js";
import type { ComponentClient } from "../registration/component.js";
import type { RemoteListCopy } from "../state/sqlite-file.js";

/** Where the last good copy of each HTTP list is kept between restarts. */
export interface ListCopyStore {
  load(url: string): Promise<RemoteListCopy | undefined>;
  save(url: string, copy: RemoteListCopy): Promise<void>;
  close(): void | Promise<void>;
}

export interface RemoteListMetrics {
  readonly remoteListFetches: { inc(labels: { list: string; outcome: RemoteListOutcome }, value?: number): void; remove(labels: { list: string; outcome: RemoteListOutcome }): void };
  readonly remoteListLastSuccess: { set(labels: { list: string }, value: number): void; remove(labels: { list: string }): void };
  readonly remoteListEntries: { set(labels: { list: string }, value: number): void; remove(labels: { list: string }): void };
}

export interface ListDefinition {
  readonly name?: string | undefined;
}


/** What a list needs of the registry that opened it. */
export interface ListOwner {
  readonly log: Logger;
  readonly metrics: RemoteListMetrics | undefined;
  readonly options: KnowledgeListsConfig;
  readonly jitterSeconds: number;
  readonly retrySeconds: readonly number[];
  readonly component: ComponentClient | null;
  copyStore(): ListCopyStore | null;
  nextId(): string;
}

export const OUTCOMES: readonly RemoteListOutcome[] = ["ok", "not_modified", "http_error", "network_error", "timeout", "too_large", "pubsub_error"];
export const FAILURE_WARN_EVERY_MS = 3_600_000;

export function hashItem(hash: string, item: string): string {
  return createHash(hash).update(item, "utf8").digest("hex");
}

/** The URL without credentials or query, for logs. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return u.origin + u.pathname;
  } catch {
    return "(invalid URL)";
  }
}

export abstract class ListBase implements RemoteList {
  readonly key: string;
  readonly name: string;
  items: Set<string> = new Set();
  readonly #hash: string | undefined;
  protected readonly owner: ListOwner;
  closed = false;

  constructor(owner: ListOwner, key: string, name: string, hash: string | undefined) {
    this.owner = owner;
    this.key = key;
    this.name = name;
    this.#hash = hash;
    for (const outcome of OUTCOMES) owner.metrics?.remoteListFetches.inc({ list: name, outcome }, 0);
    owner.metrics?.remoteListLastSuccess.set({ list: name }, 0);
    owner.metrics?.remoteListEntries.set({ list: name }, 0);
  }

  contains(item: string): boolean {
    return this.items.has(this.#hash === undefined ? item : hashItem(this.#hash, item));
  }

  /** An entry as stored: hashed lists hold lower-case hex. */
  protected entry(e: string): string {
    return this.#hash === undefined ? e : e.toLowerCase();
  }

  get size(): number {
    return this.items.size;
  }

  protected setItems(items: Set<string>): void {
    this.items = items;
    this.owner.metrics?.remoteListEntries.set({ list: this.name }, items.size);
  }

  protected count(outcome: RemoteListOutcome): void {
    this.owner.metrics?.remoteListFetches.inc({ list: this.name, outcome });
    if (outcome === "ok" || outcome === "not_modified") this.owner.metrics?.remoteListLastSuccess.set({ list: this.name }, Math.floor(Date.now() / 1000));
  }

  close(): void {
    this.closed = true;
    const m = this.owner.metrics;
    if (m !== undefined) {
      for (const outcome of OUTCOMES) m.remoteListFetches.remove({ list: this.name, outcome });
      m.remoteListLastSuccess.remove({ list: this.name });
      m.remoteListEntries.remove({ list: this.name });
    }
  }
}
