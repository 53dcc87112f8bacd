// Learning rosters from the c2s streams the proxy carries (RFC 6121, with
// XEP-0237 versions), and answering the firewall's roster lookups from what
// was learned. Pure logic over a RosterStore: no sockets, no clock. What is
// learned from which stanza, and why only the server is trusted, is in
// docs/knowledge.md.
//
// Roster content comes only from the server (flow "outbound"): a roster
// result answering a roster get this session sent, and roster pushes, each
// accepted only without `from` or from exactly the user's own bare JID
// (anything else was routed to the client by someone else, even one of the
// user's other resources). From the client only two things are read: the ids
// of its roster gets (to recognise their results) and its answers to
// subscription requests (which end a pending request).
import type { Element } from "ltx";
import type { RosterEntry, RosterLookup } from "../firewall/context.js";
import type { Flow } from "../policy/pipeline.js";
import type { StanzaView } from "../xml/stanza-view.js";
import { bareJid, prepJid, splitJid } from "../xmpp/jid.js";
import type { RosterItem, RosterStore, Subscription } from "./roster-store.js";

export const NS_ROSTER = "jabber:iq:roster";

/** The session facts the learner needs. */
export interface RosterSession {
  readonly id: string;
  readonly type: "c2s" | "s2s";
  /** Bound full JID, once known. */
  readonly jid: string | undefined;
}

export interface RosterLearnerHooks {
  /** A whole roster was learned (`items` entries) for `owner`. */
  onLearned?(owner: string, items: number): void;
  /** A stanza that looked like roster content was not trusted. */
  onIgnored?(reason: "foreign-push" | "foreign-result" | "bad-push", owner: string, from: string | undefined): void;
  /** A store operation threw (a state fault): the learner goes on. */
  onStoreError?(err: unknown, op: string): void;
}

/** A roster get sent without its `ver`, and why. */
export interface Rewrite {
  readonly bytes: Buffer;
  readonly reason: string;
}

/** Open roster gets per session are bounded: a client cannot grow this map without limit. */
const MAX_OPEN_GETS = 16;

function ownerOf(session: RosterSession): string | undefined {
  if (session.type !== "c2s" || session.jid === undefined) return undefined;
  const bare = prepJid(bareJid(session.jid));
  return bare !== undefined && splitJid(bare).node !== undefined ? bare : undefined;
}

function bareOf(jid: string | undefined): string | undefined {
  return jid === undefined ? undefined : prepJid(bareJid(jid));
}

/** Direct children named `name` in namespace `ns` (names as the server holds them). */
function childrenOf(el: Element, name: string, ns: string): Element[] {
  const out: Element[] = [];
  for (const c of el.children) {
    if (typeof c !== "string" && c.getName() === name && c.getNS() === ns) out.push(c);
  }
  return out;
}

function rosterQuery(stanza: StanzaView): Element | undefined {
  if (stanza.firstChildName !== "query" || stanza.firstChildXmlns !== NS_ROSTER) return undefined;
  const tree = stanza.tree();
  if (tree === null) return undefined;
  return childrenOf(tree, "query", NS_ROSTER)[0];
}

const SUBSCRIPTIONS = new Set(["none", "to", "from", "both"]);

/** An item element as the store keeps it; null for subscription='remove'; undefined when unusable. */
function parseItem(el: Element): { contact: string; item: RosterItem | null } | undefined {
  const jid = el.attrs.jid as string | undefined;
  const contact = bareOf(jid);
  if (contact === undefined || contact !== prepJid(jid)) return undefined;
  const sub = (el.attrs.subscription as string | undefined) ?? "none";
  if (sub === "remove") return { contact, item: null };
  if (!SUBSCRIPTIONS.has(sub)) return undefined;
  const groups: string[] = [];
  for (const g of childrenOf(el, "group", NS_ROSTER)) {
    const name = g.getText();
    if (!groups.includes(name)) groups.push(name);
  }
  groups.sort();
  return { contact, item: { subscription: sub as Subscription, ask: el.attrs.ask === "subscribe" ? "subscribe" : undefined, groups } };
}

export class RosterLearner {
  readonly #store: RosterStore;
  readonly #hooks: RosterLearnerHooks;
  /** Session id → ids of roster gets awaiting their result. */
  readonly #openGets = new Map<string, Set<string>>();

  constructor(store: RosterStore, hooks: RosterLearnerHooks = {}) {
    this.#store = store;
    this.#hooks = hooks;
  }

  get store(): RosterStore {
    return this.#store;
  }

  /**
   * Learns from one forwarded stanza. Returns a rewrite for a roster get that
   * must lose its `ver` (the proxy has no copy matching it), else undefined.
   */
  observe(stanza: StanzaView, session: RosterSession, flow: Flow): Rewrite | undefined {
    const owner = ownerOf(session);
    if (owner === undefined) return undefined;
    try {
      if (stanza.kind === "iq") return flow === "inbound" ? this.#clientIq(stanza, session, owner) : this.#serverIq(stanza, session, owner);
      if (stanza.kind === "presence") flow === "inbound" ? this.#clientPresence(stanza, owner) : this.#serverPresence(stanza, owner);
    } catch (err) {
      this.#hooks.onStoreError?.(err, "roster");
    }
    return undefined;
  }

  sessionEnded(sessionId: string): void {
    this.#openGets.delete(sessionId);
  }

  #clientIq(stanza: StanzaView, session: RosterSession, owner: string): Rewrite | undefined {
    if (stanza.type !== "get") return undefined;
    // A roster get goes to the server on the user's behalf: no `to`, or the user's own bare JID.
    if (stanza.to !== undefined && prepJid(stanza.to) !== owner) return undefined;
    const query = rosterQuery(stanza);
    if (query === undefined) return undefined;
    const id = stanza.id ?? "";
    let open = this.#openGets.get(session.id);
    if (open === undefined) this.#openGets.set(session.id, (open = new Set()));
    if (open.size >= MAX_OPEN_GETS) open.delete(open.values().next().value as string);
    open.add(id);
    const ver = query.attrs.ver as string | undefined;
    if (ver === undefined) return undefined;
    const copy = this.#store.known(owner);
    if (copy !== undefined && copy.ver === ver) return undefined;
    // No copy of the version the client holds: ask for the whole roster.
    // The shared tree is changed only for the moment of serialising it.
    delete query.attrs.ver;
    let bytes: Buffer;
    try {
      bytes = Buffer.from(stanza.tree()!.toString(), "utf8");
    } finally {
      query.attrs.ver = ver;
    }
    return {
      bytes,
      reason: copy === undefined ? "roster get without ver: the proxy has no copy of this roster" : "roster get without ver: the proxy's copy is of another version",
    };
  }

  #serverIq(stanza: StanzaView, session: RosterSession, owner: string): undefined {
    const type = stanza.type;
    if (type === "result" || type === "error") {
      const open = this.#openGets.get(session.id);
      const id = stanza.id ?? "";
      if (open === undefined || !open.has(id)) return undefined;
      const fromOk = stanza.from === undefined || prepJid(stanza.from) === owner;
      if (!fromOk) {
        // Someone else answered with this id: not the server's roster.
        if (rosterQuery(stanza) !== undefined) this.#hooks.onIgnored?.("foreign-result", owner, stanza.from);
        return undefined;
      }
      open.delete(id);
      if (type !== "result") return undefined;
      const query = rosterQuery(stanza);
      // No payload: the client's version is current (XEP-0237); pushes follow.
      if (query === undefined) return undefined;
      const items = new Map<string, RosterItem>();
      for (const el of childrenOf(query, "item", NS_ROSTER)) {
        const p = parseItem(el);
        if (p !== undefined && p.item !== null) items.set(p.contact, p.item);
      }
      this.#store.replace(owner, query.attrs.ver as string | undefined, items);
      for (const [contact, item] of items) {
        if (item.subscription === "from" || item.subscription === "both") this.#clearPending(owner, contact);
      }
      this.#hooks.onLearned?.(owner, items.size);
      return undefined;
    }
    if (type !== "set") return undefined;
    const query = rosterQuery(stanza);
    if (query === undefined) return undefined;
    // RFC 6121 2.1.6: a push not from the server (no from, or the user's bare
    // JID; not even one of the user's own full JIDs) is ignored.
    if (stanza.from !== undefined && prepJid(stanza.from) !== owner) {
      this.#hooks.onIgnored?.("foreign-push", owner, stanza.from);
      return undefined;
    }
    const els = childrenOf(query, "item", NS_ROSTER);
    const p = els.length === 1 ? parseItem(els[0]!) : undefined;
    if (p === undefined) {
      this.#hooks.onIgnored?.("bad-push", owner, stanza.from);
      return undefined;
    }
    this.#store.setItem(owner, p.contact, p.item, query.attrs.ver as string | undefined);
    if (p.item !== null && (p.item.subscription === "from" || p.item.subscription === "both")) this.#clearPending(owner, p.contact);
    return undefined;
  }

  /** The user answers a subscription request: it is no longer pending. */
  #clientPresence(stanza: StanzaView, owner: string): void {
    const type = stanza.type;
    if (type !== "subscribed" && type !== "unsubscribed") return;
    const contact = bareOf(stanza.to);
    if (contact !== undefined) this.#clearPending(owner, contact);
  }

  /** A subscription request (or its withdrawal) the server delivers to the user. */
  #serverPresence(stanza: StanzaView, owner: string): void {
    const type = stanza.type;
    if (type !== "subscribe" && type !== "unsubscribe") return;
    if (stanza.to !== undefined && bareOf(stanza.to) !== owner) return;
    const contact = bareOf(stanza.from);
    if (contact === undefined || contact === owner) return;
    if (type === "unsubscribe") {
      this.#clearPending(owner, contact);
      return;
    }
    // The server does not record a request from a contact already subscribed to the user.
    const sub = this.#store.item(owner, contact)?.subscription;
    if (sub === "from" || sub === "both") return;
    if (!this.#store.pendingIn(owner, contact)) this.#store.setPendingIn(owner, contact, true);
  }

  #clearPending(owner: string, contact: string): void {
    if (this.#store.pendingIn(owner, contact)) this.#store.setPendingIn(owner, contact, false);
  }
}

export interface RosterLookupHooks {
  /** A lookup found neither a learned roster nor an item for its owner. */
  onUnknown?(): void;
  onStoreError?(err: unknown, op: string): void;
}

/**
 * The firewall's roster provider over a store. A roster the proxy never saw
 * reads as empty (counted through onUnknown); a store error reads as empty too.
 */
export class LearnedRosters implements RosterLookup {
  #store: RosterStore | null;
  readonly #hooks: RosterLookupHooks;

  constructor(store: RosterStore | null, hooks: RosterLookupHooks = {}) {
    this.#store = store;
    this.#hooks = hooks;
  }

  /** The store lookups read (null: none yet; every roster is unknown). */
  use(store: RosterStore | null): void {
    this.#store = store;
  }

  entry(owner: string, contact: string): RosterEntry | undefined {
    const store = this.#store;
    try {
      const item = store?.item(owner, contact);
      if (item !== undefined) return item;
      if (store === null || store.known(owner) === undefined) this.#hooks.onUnknown?.();
    } catch (err) {
      this.#hooks.onStoreError?.(err, "roster-lookup");
    }
    return undefined;
  }

  pendingIn(owner: string, contact: string): boolean {
    const store = this.#store;
    try {
      if (store?.pendingIn(owner, contact) === true) return true;
      if (store === null || store.known(owner) === undefined) this.#hooks.onUnknown?.();
    } catch (err) {
      this.#hooks.onStoreError?.(err, "roster-lookup");
    }
    return false;
  }
}
