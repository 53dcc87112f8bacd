// Real-time block lists over pubsub (docs/knowledge.md, "Real-time block
// lists"): the item ids of one node, read over the XEP-0114 component.
import type { Element } from "ltx";
import { escapeXml } from "../xml/stream-error.js";
import type { ComponentClient } from "../registration/component.js";
import { ListBase, type ListOwner } from "./list-base.js";

const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
export const NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event";

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

  constructor(owner: ListOwner, key: string, name: string, service: string, node: string, hash: string | undefined) {
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
export function domainOf(jid: string): string {
  const noResource = jid.split("/")[0]!;
  const at = noResource.lastIndexOf("@");
  return (at >= 0 ? noResource.slice(at + 1) : noResource).toLowerCase();
}
