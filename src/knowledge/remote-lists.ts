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
import { createHash } from "node:crypto";
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Element } from "ltx";
import type { KnowledgeListsConfig } from "../config/schema.js";
import type { RemoteList, RemoteListFactory } from "../firewall/context.js";
import { compileLuaPattern, type LuaPattern } from "../firewall/lua-pattern.js";
import { escapeXml } from "../firewall/xml.js";
import type { Logger } from "../log.js";
import type { RemoteListOutcome } from "../metrics/definitions.js";
import type { ComponentClient, ComponentOptions } from "../registration/component.js";
import type { RemoteListCopy } from "../state/sqlite-store.js";
import { Stanza } from "../xml/stanza.js";

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

/** The definition a list is opened for (for logs and metric labels). */
export interface ListDefinition {
  readonly name?: string | undefined;
}

export const DEFAULT_TTL_SECONDS = 3600;
/** mod_firewall's default: one entry per line, CR LF or LF; a last line without its line end is not an entry. */
export const DEFAULT_LINE_PATTERN = "([^\r\n]+)\r?\n";
const OUTCOMES: readonly RemoteListOutcome[] = ["ok", "not_modified", "http_error", "network_error", "timeout", "too_large", "pubsub_error"];
const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
const NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event";
const FAILURE_WARN_EVERY_MS = 3_600_000;

const PATTERNS = new Map<string, LuaPattern>();
function linePattern(source: string): LuaPattern {
  let p = PATTERNS.get(source);
  if (p === undefined) {
    p = compileLuaPattern(source, { mode: "gmatch" });
    PATTERNS.set(source, p);
  }
  return p;
}

/**
 * The entries of a list body, as mod_firewall reads it: every value
 * string.gmatch(body, pattern) yields (its first capture, or the whole match).
 * With a hash option the entries are hex digests, compared in lower case.
 */
export function parseListBody(body: string, pattern: string = DEFAULT_LINE_PATTERN, hash?: string): Set<string> {
  const entries = linePattern(pattern).tokens(body);
  return new Set(hash === undefined ? entries : entries.map((e) => e.toLowerCase()));
}

/** The lower-case hex digest a hashed list compares an item by (its UTF-8 bytes). */
export function hashItem(hash: string, item: string): string {
  return createHash(hash).update(item, "utf8").digest("hex");
}

/** The URL without credentials or query, for logs. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return u.origin + u.pathname;
  } catch {
    return "(invalid URL)";
  }
}

export type FetchResult =
  | { readonly kind: "response"; readonly status: number; readonly headers: IncomingHttpHeaders; readonly body: string }
  | { readonly kind: "timeout" | "too_large" | "network_error"; readonly message: string };

/**
 * One GET, bounded: the whole exchange within `timeoutMs`, a body of at most
 * `maxBytes` (announced or received). Redirects are not followed (Prosody's
 * net.http does not either). The body is read as UTF-8.
 */
export function fetchBounded(
  url: string,
  o: { readonly headers: Record<string, string>; readonly timeoutMs: number; readonly maxBytes: number; readonly insecure: boolean; readonly signal?: AbortSignal },
): Promise<FetchResult> {
  return new Promise((resolve) => {
    let done = false;
    let res: IncomingMessage | undefined;
    const finish = (r: FetchResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (r.kind !== "response") {
        req.destroy();
        res?.destroy();
      }
      resolve(r);
    };
    const u = new URL(url);
    const request = u.protocol === "https:" ? httpsRequest : httpRequest;
    const req = request(u, {
      method: "GET",
      headers: { "user-agent": "xmpp-guard", "accept-encoding": "identity", ...o.headers },
      agent: false,
      ...(u.protocol === "https:" ? { rejectUnauthorized: !o.insecure } : {}),
    });
    const timer = setTimeout(() => finish({ kind: "timeout", message: `no complete answer within ${o.timeoutMs} ms` }), o.timeoutMs);
    timer.unref();
    if (o.signal?.aborted === true) finish({ kind: "network_error", message: "closed" });
    else o.signal?.addEventListener("abort", () => finish({ kind: "network_error", message: "closed" }), { once: true });
    req.on("error", (err) => finish({ kind: "network_error", message: err.message }));
    req.on("response", (r) => {
      res = r;
      const status = r.statusCode ?? 0;
      if (status !== 200) {
        r.resume();
        r.on("end", () => finish({ kind: "response", status, headers: r.headers, body: "" }));
        r.on("error", (err) => finish({ kind: "network_error", message: err.message }));
        return;
      }
      const announced = Number(r.headers["content-length"]);
      if (Number.isFinite(announced) && announced > o.maxBytes) {
        finish({ kind: "too_large", message: `Content-Length ${announced} is over ${o.maxBytes} bytes` });
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      r.on("data", (c: Buffer) => {
        size += c.length;
        if (size > o.maxBytes) finish({ kind: "too_large", message: `body over ${o.maxBytes} bytes` });
        else chunks.push(c);
      });
      r.on("end", () => finish({ kind: "response", status, headers: r.headers, body: Buffer.concat(chunks).toString("utf8") }));
      r.on("error", (err) => finish({ kind: "network_error", message: err.message }));
      r.on("aborted", () => finish({ kind: "network_error", message: "response aborted" }));
    });
    req.end();
  });
}

abstract class ListBase implements RemoteList {
  readonly key: string;
  readonly name: string;
  items: Set<string> = new Set();
  readonly #hash: string | undefined;
  protected readonly owner: RemoteLists;
  closed = false;

  constructor(owner: RemoteLists, key: string, name: string, hash: string | undefined) {
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

/** An HTTP(S) list: polled every `ttl` seconds, kept on failure, saved on change. */
export class HttpList extends ListBase {
  readonly url: string;
  readonly ttlSeconds: number;
  readonly #pattern: string;
  readonly #hashName: string | undefined;
  readonly #insecure: boolean;
  #etag: string | null = null;
  #lastModified: string | null = null;
  #failures = 0;
  /** The last fetch failed (network, timeout, size, 4xx/5xx): the next try follows the retry steps. */
  #lastFailed = false;
  #lastWarnAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<RemoteListOutcome> | null = null;
  /** True once a fetch (or the saved copy) gave content. */
  #haveContent = false;
  #started: Promise<void> | null = null;
  /** Aborts the fetch in flight when the list is closed. */
  readonly #abort = new AbortController();

  constructor(owner: RemoteLists, key: string, name: string, url: string, options: Readonly<Record<string, string>>) {
    super(owner, key, name, options.hash);
    this.url = url;
    this.ttlSeconds = options.ttl === undefined ? DEFAULT_TTL_SECONDS : Number(options.ttl);
    this.#pattern = options.pattern ?? DEFAULT_LINE_PATTERN;
    this.#hashName = options.hash;
    this.#insecure = options.checkcert === "never";
  }

  /** Load the saved copy, then fetch and keep polling. Resolves after the first fetch. */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    const store = this.owner.copyStore();
    if (store !== null) {
      try {
        const copy = await store.load(this.url);
        if (copy !== undefined && !this.#haveContent && !this.closed) {
          this.#apply(copy.body);
          this.#etag = copy.etag;
          this.#lastModified = copy.last_modified;
          this.owner.log.info({ list: this.name, url: safeUrl(this.url), entries: this.size, fetched_at: new Date(copy.fetched_at).toISOString() }, "remote list: saved copy loaded");
        }
      } catch (err) {
        this.owner.log.warn({ list: this.name, url: safeUrl(this.url), err: err instanceof Error ? err.message : String(err) }, "remote list: cannot read the saved copy");
      }
    }
    if (this.closed) return;
    await this.refresh();
  }

  /** Fetch now (one at a time) and schedule the next poll from the outcome. */
  refresh(): Promise<RemoteListOutcome> {
    if (this.#inflight !== null) return this.#inflight;
    clearTimeout(this.#timer);
    const p = this.#fetch().then((outcome) => {
      this.#inflight = null;
      this.#schedule();
      return outcome;
    });
    this.#inflight = p;
    return p;
  }

  #apply(body: string): void {
    this.setItems(parseListBody(body, this.#pattern, this.#hashName));
    this.#haveContent = true;
  }

  async #fetch(): Promise<RemoteListOutcome> {
    const opts = this.owner.options;
    const headers: Record<string, string> = {};
    if (this.#etag !== null) headers["if-none-match"] = this.#etag;
    if (this.#lastModified !== null) headers["if-modified-since"] = this.#lastModified;
    let r: FetchResult;
    try {
      r = await fetchBounded(this.url, { headers, timeoutMs: opts.timeout * 1000, maxBytes: opts.max_bytes, insecure: this.#insecure, signal: this.#abort.signal });
    } catch (err) {
      r = { kind: "network_error", message: err instanceof Error ? err.message : String(err) };
    }
    if (this.closed) return "network_error";
    this.#lastFailed = false;
    let outcome: RemoteListOutcome;
    if (r.kind !== "response") {
      outcome = r.kind;
      this.#failed(outcome, r.message);
    } else if (r.status === 200) {
      outcome = "ok";
      const etag = r.headers.etag;
      const lastModified = r.headers["last-modified"];
      this.#etag = typeof etag === "string" ? etag : null;
      this.#lastModified = typeof lastModified === "string" ? lastModified : null;
      this.#apply(r.body);
      this.#recovered();
      this.owner.log.debug({ list: this.name, url: safeUrl(this.url), entries: this.size }, "remote list: fetched");
      const store = this.owner.copyStore();
      if (store !== null) {
        store.save(this.url, { body: r.body, etag: this.#etag, last_modified: this.#lastModified, fetched_at: Date.now() }).catch((err: unknown) => {
          this.owner.log.warn({ list: this.name, url: safeUrl(this.url), err: err instanceof Error ? err.message : String(err) }, "remote list: cannot save the copy");
        });
      }
    } else if (r.status === 304) {
      outcome = "not_modified";
      this.#recovered();
      this.owner.log.debug({ list: this.name, url: safeUrl(this.url) }, "remote list: unchanged");
    } else {
      outcome = "http_error";
      if (r.status >= 400 && r.status <= 599) this.#failed(outcome, `HTTP ${r.status}`);
      else this.owner.log.warn({ list: this.name, url: safeUrl(this.url), status: r.status }, "remote list: unexpected status, list kept (redirects are not followed)");
    }
    this.count(outcome);
    return outcome;
  }

  #failed(outcome: RemoteListOutcome, message: string): void {
    this.#failures++;
    this.#lastFailed = true;
    const now = Date.now();
    const fields = { list: this.name, url: safeUrl(this.url), outcome, err: message, failures: this.#failures, entries: this.size };
    if (this.#failures === 1 || now - this.#lastWarnAt >= FAILURE_WARN_EVERY_MS) {
      this.#lastWarnAt = now;
      this.owner.log.warn(fields, "remote list: fetch failed, last good copy kept");
    } else {
      this.owner.log.debug(fields, "remote list: fetch failed again");
    }
  }

  #recovered(): void {
    if (this.#failures > 0) this.owner.log.info({ list: this.name, url: safeUrl(this.url), after: this.#failures }, "remote list: fetched again after failures");
    this.#failures = 0;
  }

  /** Seconds until the next poll for an outcome, before jitter. */
  #delaySeconds(): number {
    if (!this.#lastFailed) return this.ttlSeconds;
    const retry = this.owner.retrySeconds;
    return retry[Math.min(this.#failures, retry.length) - 1] ?? this.ttlSeconds;
  }

  /** Seconds until the next poll (before jitter), from the last outcome. */
  get nextDelaySeconds(): number {
    return this.#delaySeconds();
  }

  #schedule(): void {
    if (this.closed) return;
    const seconds = this.#delaySeconds() + Math.random() * this.owner.jitterSeconds;
    // setTimeout fires at once past 2^31-1 ms (about 24.8 days): a longer ttl polls that often.
    this.#timer = setTimeout(() => void this.refresh(), Math.min(2_147_483_647, Math.max(0, seconds * 1000)));
    this.#timer.unref();
  }

  override close(): void {
    clearTimeout(this.#timer);
    super.close();
    this.#abort.abort();
  }
}

/**
 * A pubsubitemid list: the item ids of one pubsub node (a real-time block
 * list), read over the XEP-0114 component connection: subscribe, fetch the
 * items, then apply publish/retract/purge/delete events as they come; again
 * after every reconnection.
 */
export class PubsubList extends ListBase {
  readonly service: string;
  readonly node: string;
  /** Events seen since the items request went out, replayed over its answer. */
  #pending: Array<[op: "add" | "remove" | "clear", id: string]> | null = null;
  itemsRequest: string | null = null;
  subscribeRequest: string | null = null;
  /** Resolved by the first items answer (tests). */
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;
  /** Error answers in a row (subscription or items), for the retry steps. */
  #failures = 0;
  #retry: NodeJS.Timeout | undefined;
  /** The subscription of the current attempt was refused (the items answer, which comes after it, decides on a retry). */
  #subscribeFailed = false;

  constructor(owner: RemoteLists, key: string, name: string, service: string, node: string, hash: string | undefined) {
    super(owner, key, name, hash);
    this.service = service;
    this.node = node;
    this.#ready = new Promise((r) => (this.#resolveReady = r));
  }

  get ready(): Promise<void> {
    return this.#ready;
  }

  /** Subscribe and fetch the current items (the connection is up). */
  online(client: ComponentClient): void {
    if (this.closed) return;
    clearTimeout(this.#retry);
    const me = escapeXml(client.jid);
    const to = escapeXml(this.service);
    const node = escapeXml(this.node);
    this.subscribeRequest = this.owner.nextId();
    this.itemsRequest = this.owner.nextId();
    this.#pending = [];
    this.#subscribeFailed = false;
    client.send(`<iq type='set' from='${me}' to='${to}' id='${this.subscribeRequest}'><pubsub xmlns='${NS_PUBSUB}'><subscribe node='${node}' jid='${me}'/></pubsub></iq>`);
    client.send(`<iq type='get' from='${me}' to='${to}' id='${this.itemsRequest}'><pubsub xmlns='${NS_PUBSUB}'><items node='${node}'/></pubsub></iq>`);
  }

  /** An answer to one of this list's requests. */
  answer(iq: Element): void {
    const id = iq.attrs.id as string;
    const type = iq.attrs.type as string | undefined;
    if (id === this.subscribeRequest) {
      this.subscribeRequest = null;
      if (type === "error") {
        this.count("pubsub_error");
        this.owner.log.warn({ list: this.name, service: this.service, node: this.node, error: errorCondition(iq) }, "remote list: pubsub subscription refused; will try again");
        this.#subscribeFailed = true;
      } else {
        this.owner.log.info({ list: this.name, service: this.service, node: this.node }, "remote list: subscribed to the pubsub node");
      }
      return;
    }
    if (id !== this.itemsRequest) return;
    this.itemsRequest = null;
    const pending = this.#pending ?? [];
    this.#pending = null;
    if (type === "error") {
      this.count("pubsub_error");
      this.owner.log.warn({ list: this.name, service: this.service, node: this.node, error: errorCondition(iq), entries: this.size }, "remote list: cannot fetch the pubsub items; list kept, will try again");
      this.#failed();
      return;
    }
    if (this.#subscribeFailed) this.#failed();
    else this.#failures = 0;
    const items = new Set<string>();
    const list = iq.getChild("pubsub", NS_PUBSUB)?.getChild("items", NS_PUBSUB);
    for (const item of list?.getChildren("item", NS_PUBSUB) ?? []) {
      const itemId = item.attrs.id;
      if (typeof itemId === "string") items.add(this.entry(itemId));
    }
    for (const [op, itemId] of pending) {
      if (op === "add") items.add(itemId);
      else if (op === "remove") items.delete(itemId);
      else items.clear();
    }
    this.setItems(items);
    this.count("ok");
    this.owner.log.info({ list: this.name, service: this.service, node: this.node, entries: items.size }, "remote list: pubsub items fetched");
    this.#resolveReady();
  }

  /** A pubsub#event from the service about this node. */
  event(kind: "add" | "remove" | "clear", id = ""): void {
    const itemId = this.entry(id);
    this.#pending?.push([kind, itemId]);
    const items = this.items;
    if (kind === "add") items.add(itemId);
    else if (kind === "remove") items.delete(itemId);
    else items.clear();
    this.owner.metrics?.remoteListEntries.set({ list: this.name }, items.size);
  }

  /** After an error answer: subscribe and fetch again later (the retry steps of HTTP lists), if still connected then. */
  #failed(): void {
    clearTimeout(this.#retry);
    this.#failures++;
    const steps = this.owner.retrySeconds;
    const seconds = (steps[Math.min(this.#failures, steps.length) - 1] ?? 300) + Math.random() * this.owner.jitterSeconds;
    this.#retry = setTimeout(() => {
      const client = this.owner.component;
      if (client !== null && client.state === "online") this.online(client);
    }, seconds * 1000);
    this.#retry.unref();
  }

  override close(): void {
    clearTimeout(this.#retry);
    super.close();
  }

  /** Unsubscribe (best effort) and stop. */
  closeWith(client: ComponentClient | null): void {
    if (client !== null && client.state === "online") {
      const me = escapeXml(client.jid);
      client.send(
        `<iq type='set' from='${me}' to='${escapeXml(this.service)}' id='${this.owner.nextId()}'><pubsub xmlns='${NS_PUBSUB}'><unsubscribe node='${escapeXml(this.node)}' jid='${me}'/></pubsub></iq>`,
      );
    }
    this.close();
  }
}

function errorCondition(iq: Element): string {
  const e = iq.getChild("error");
  const c = e?.children.find((x): x is Element => typeof x !== "string" && x.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas" && x.name !== "text");
  return c?.name ?? "unknown";
}

/** The bare domain of a JID (lower case), for comparing a `from` with a service. */
function domainOf(jid: string): string {
  const noResource = jid.split("/")[0]!;
  const at = noResource.lastIndexOf("@");
  return (at >= 0 ? noResource.slice(at + 1) : noResource).toLowerCase();
}

/** Thrown by open() for a list that cannot work with this configuration; compile reports it at the %LIST line. */
export class RemoteListRefused extends Error {}

/** The remote lists of one process: opened by rule compiles, shared across reloads. */
export class RemoteLists {
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
