// Remote block lists for the firewall: the provider behind `%LIST name:
// http(s)://…` and `%LIST name: pubsubitemid:service/node` (the
// RemoteListFactory of firewall/context.ts). Behaviour and the reasons for it
// are described in docs/knowledge.md ("Remote lists").
//
// Lookups are synchronous set lookups; every fetch runs on timers and
// sockets of its own, never on the data path. A list keeps its last good
// copy whatever goes wrong, and starts from the copy saved in the state store
// (SQLite or Redis) until its first fetch answers. Lists are shared by
// identity (URL and the options that change their content): a reload that
// keeps a definition keeps the open list, its items and its polling timer;
// retain() closes the lists no live rule set uses any more.
import type { Element } from "ltx";
import type { KnowledgeListsConfig } from "./options.js";
import type { RemoteList, RemoteListFactory } from "../firewall/context.js";
import type { Logger } from "../log.js";
import type { ComponentClient, ComponentOptions } from "../registration/component.js";
import { Stanza } from "../xml/stanza.js";
import { HttpList } from "./http-list.js";
import { safeUrl, type ListCopyStore, type ListDefinition, type ListOwner, type RemoteListMetrics } from "./list-base.js";
import { PubsubList, NS_PUBSUB_EVENT, domainOf } from "./pubsub-list.js";

export interface RemoteListsInit {
  readonly logger: Logger;
  readonly metrics?: RemoteListMetrics | undefined;
  readonly options: KnowledgeListsConfig;
  /** The copy store, opened on first need (null: no persistence). */
  readonly store?: (() => ListCopyStore | null) | undefined;
  /** Most random seconds added to every poll delay, as Prosody does (default 60). */
  readonly jitterSeconds?: number | undefined;
  /** Seconds before the next try after 1, 2, 3… consecutive failures (default 60, 120, 300: Prosody's). */
  readonly retrySeconds?: readonly number[] | undefined;
}


/** Thrown by open() for a list that cannot work with this configuration; compile reports it at the %LIST line. */
export class RemoteListRefused extends Error {}

/** The remote lists of one process: opened by rule compiles, shared across reloads. */
export class RemoteLists implements ListOwner {
  readonly log: Logger;
  readonly metrics: RemoteListMetrics | undefined;
  options: KnowledgeListsConfig;
  readonly jitterSeconds: number;
  readonly retrySeconds: readonly number[];
  readonly #storeFactory: (() => ListCopyStore | null) | undefined;
  #store: ListCopyStore | null | undefined;
  readonly #lists = new Map<string, HttpList | PubsubList>();
  #client: ComponentClient | null = null;
  #unwatch: (() => void) | null = null;
  #seq = 0;

  constructor(init: RemoteListsInit) {
    this.log = init.logger;
    this.metrics = init.metrics;
    this.options = init.options;
    this.jitterSeconds = init.jitterSeconds ?? 60;
    this.retrySeconds = init.retrySeconds ?? [60, 120, 300];
    this.#storeFactory = init.store;
  }

  /** The copy store, opened once on first need; null when there is none or it cannot be opened. */
  copyStore(): ListCopyStore | null {
    if (this.#store === undefined) {
      try {
        this.#store = this.#storeFactory?.() ?? null;
      } catch (err) {
        this.#store = null;
        this.log.error({ err: err instanceof Error ? err.message : String(err) }, "remote lists: cannot open the state store; lists start empty after a restart");
      }
    }
    return this.#store;
  }

  nextId(): string {
    return `xg-list-${++this.#seq}`;
  }

  /** Apply knowledge.lists from a (re)loaded config: the next fetches use it. */
  configure(options: KnowledgeListsConfig): void {
    this.options = options;
  }

  /**
   * A factory for one compile: it records the keys of the lists it opens
   * (retain() them once that rule set is live), and refuses pubsub lists
   * when `component` (of the config being loaded) is null.
   */
  scope(component: ComponentOptions | null): { readonly factory: RemoteListFactory; readonly keys: Set<string> } {
    const keys = new Set<string>();
    const factory: RemoteListFactory = {
      open: (url, options, def) => {
        const list = this.open(url, options, def, component);
        keys.add(list.key);
        return list;
      },
    };
    return { factory, keys };
  }

  /** Open (or reuse) a list. Throws RemoteListRefused for a pubsub list without a component. */
  open(url: string, options: Readonly<Record<string, string>>, def: ListDefinition = {}, component: ComponentOptions | null = null): HttpList | PubsubList {
    const name = def.name ?? url;
    if (url.startsWith("pubsubitemid:")) {
      const m = /^pubsubitemid:([^/]*)\/(.+)$/s.exec(url);
      if (m === null) throw new RemoteListRefused("Invalid list specification (expected 'pubsubitemid:<service>/<node>')");
      if (component === null) {
        throw new RemoteListRefused(
          `%LIST ${name}: pubsubitemid lists are read over the XEP-0114 component connection: set \`component:\` ({ jid, secret, upstream }) in the config (see docs/knowledge.md)`,
        );
      }
      const key = ["pubsub", m[1]!.toLowerCase(), m[2]!, options.hash ?? ""].join("\u0000");
      let list = this.#lists.get(key);
      if (list === undefined) {
        list = new PubsubList(this, key, name, m[1]!.toLowerCase(), m[2]!, options.hash);
        this.#lists.set(key, list);
        this.log.info({ list: name, service: list.service, node: list.node }, "remote list opened (pubsub)");
        if (this.#client !== null && this.#client.state === "online") list.online(this.#client);
      }
      return list;
    }
    const key = ["http", url, options.ttl ?? "", options.pattern ?? "", options.hash ?? "", options.checkcert === "never" ? "never" : ""].join("\u0000");
    let list = this.#lists.get(key);
    if (list === undefined) {
      const http = new HttpList(this, key, name, url, options);
      list = http;
      this.#lists.set(key, http);
      this.log.info({ list: name, url: safeUrl(url), ttl: http.ttlSeconds }, "remote list opened (HTTP)");
      void http.start();
    }
    return list;
  }

  /** The open list with this key (tests, admin). */
  get(key: string): HttpList | PubsubList | undefined {
    return this.#lists.get(key);
  }

  get keys(): string[] {
    return [...this.#lists.keys()];
  }

  /** Close every list whose key is not in `keys` (the lists the live rule sets use). */
  retain(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const [key, list] of this.#lists) {
      if (keep.has(key)) continue;
      this.#lists.delete(key);
      if (list instanceof PubsubList) list.closeWith(this.#client);
      else list.close();
      this.log.info({ list: list.name }, "remote list closed (no rule uses it any more)");
    }
  }

  get component(): ComponentClient | null {
    return this.#client;
  }

  /** The component connection pubsub lists use (PolicyState passes the notifier's client). */
  setComponent(client: ComponentClient | null): void {
    if (client === this.#client) return;
    this.#unwatch?.();
    this.#unwatch = null;
    this.#client = client;
    if (client === null) return;
    this.#unwatch = client.watch({
      onOnline: () => {
        for (const list of this.#lists.values()) if (list instanceof PubsubList) list.online(client);
      },
      onStanza: (data, start, end) => this.#stanza(data, start, end),
    });
    if (client.state === "online") for (const list of this.#lists.values()) if (list instanceof PubsubList) list.online(client);
  }

  #stanza(data: Buffer, start: number, end: number): void {
    let el: Element | null;
    try {
      el = new Stanza(data, "jabber:component:accept", undefined, start, end).tree();
    } catch {
      el = null;
    }
    if (el === null) return;
    const pubsubLists = [...this.#lists.values()].filter((l): l is PubsubList => l instanceof PubsubList);
    if (pubsubLists.length === 0) return;
    if (el.name === "iq") {
      const id = el.attrs.id as string | undefined;
      if (id === undefined) return;
      for (const l of pubsubLists) if (l.itemsRequest === id || l.subscribeRequest === id) l.answer(el);
      return;
    }
    if (el.name !== "message") return;
    const event = el.getChild("event", NS_PUBSUB_EVENT);
    if (event === undefined) return;
    const from = typeof el.attrs.from === "string" ? domainOf(el.attrs.from) : "";
    for (const child of event.children) {
      if (typeof child === "string") continue;
      const node = child.attrs.node as string | undefined;
      const targets = pubsubLists.filter((l) => l.service === from && l.node === node);
      if (targets.length === 0) continue;
      if (child.name === "items") {
        for (const c of child.children) {
          if (typeof c === "string" || typeof c.attrs.id !== "string") continue;
          const op = c.name === "item" ? "add" : c.name === "retract" ? "remove" : null;
          if (op !== null) for (const l of targets) l.event(op, c.attrs.id);
        }
      } else if (child.name === "purge" || child.name === "delete") {
        for (const l of targets) l.event("clear");
        if (child.name === "delete") this.log.warn({ service: from, node }, "remote list: the pubsub node was deleted; list emptied");
      }
    }
  }

  async close(): Promise<void> {
    this.retain([]);
    this.setComponent(null);
    const store = this.#store;
    this.#store = undefined;
    await store?.close();
  }
}

/** A list that is never fetched (checks). */
const EMPTY_LIST: RemoteList = Object.freeze({ contains: () => false });

/**
 * For checks (check-rules, `run --check`, a fleet primary validating a
 * reload): accepts the remote lists the proxy would open, fetching nothing,
 * and refuses a pubsubitemid list when `component` is null (undefined: not
 * known, as for check-rules without a config).
 */
export function checkOnlyRemoteLists(component: ComponentOptions | null | undefined): RemoteListFactory {
  return {
    open(url, _options, def) {
      if (url.startsWith("pubsubitemid:") && component === null) {
        throw new RemoteListRefused(
          `%LIST ${def?.name ?? url}: pubsubitemid lists are read over the XEP-0114 component connection: set \`component:\` ({ jid, secret, upstream }) in the config (see docs/knowledge.md)`,
        );
      }
      return EMPTY_LIST;
    },
  };
}
