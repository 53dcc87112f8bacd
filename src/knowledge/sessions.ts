// Server knowledge, part "sessions": which full JIDs have a session bound on
// the server (the firewall's TO FULL JID?) and, per session, the JIDs it sent
// directed presence to (SENT DIRECTED PRESENCE TO SENDER?). Learned from the
// streams the proxy carries; see docs/knowledge.md ("Sessions and directed
// presence") for what is learned from which stanza and how it is shared.
//
// The directory is a table keyed by full JID. Each entry belongs to one
// session (its owner: this process's instance id and the session id), holds
// the directed-presence targets of that session, and may be hibernating (the
// connection is gone but the server keeps the session for XEP-0198
// resumption until a deadline). Lookups are answered from memory,
// synchronously; a Replicator, when given, shares every change with the
// other workers or instances (IPC through the cluster primary, or Redis) and
// feeds theirs in.
import { randomUUID } from "node:crypto";
import type { DirectedPresence, FirewallProviders, OnlineSessions, RosterLookup } from "../firewall/context.js";
import type { Flow, PolicyStage, SessionInfo, Verdict } from "../policy/pipeline.js";
import type { StanzaView } from "../xml/stanza-view.js";
import { NS_CLIENT } from "../xml/stanza.js";
import { bareJid, isValidJid, prepJid, splitJid } from "../xmpp/jid.js";

/** At most this many directed-presence targets are kept per session (the oldest go first). */
export const MAX_DIRECTED_PER_SESSION = 1000;

/** One entry as it travels between processes: owner, hibernation deadline (epoch ms, 0 = live), targets. */
export interface EntryJson {
  readonly o: string;
  readonly x: number;
  readonly d: readonly string[];
}

/** A change to one full JID's entry: the new state, or its removal by the owner `o`. */
export type KnowledgeEvent =
  | { readonly k: string; readonly v: EntryJson; readonly o?: undefined }
  | { readonly k: string; readonly v: null; readonly o: string };

/** Carries local changes to the other processes and theirs back (see the header). */
export interface Replicator {
  publish(event: KnowledgeEvent): void;
  /** Resolves once every change published elsewhere before now has been applied here. */
  sync?(): Promise<void>;
  close(): void;
}

interface Entry {
  owner: string;
  /** Hibernating until this wall-clock time (ms); 0 = connected. */
  expires: number;
  readonly directed: Set<string>;
}

export interface DirectoryOptions {
  /** Wall clock, ms (hibernation deadlines are shared between processes). */
  readonly now?: () => number;
  /** This process's id in owners; default a random UUID. */
  readonly instance?: string;
}

export interface KnowledgeStats {
  readonly sessions: number;
  readonly directed: number;
}

/**
 * The session directory with directed presence. Writes are keyed by the
 * writer's session, so a session can only change its own entry.
 */
export class SessionDirectory implements OnlineSessions, DirectedPresence {
  readonly instance: string;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  #replicator: Replicator | null = null;
  /** Hibernation timers of this process's entries. */
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #directedCount = 0;
  /** See `version`: moved by each write, and by each expiry instant passed. */
  #version = 0;
  /** Entries that expire (hibernating sessions), and the soonest expiry still ahead (a lower bound). */
  readonly #expiring = new Set<string>();
  #soonest = Infinity;

  constructor(options: DirectoryOptions = {}) {
    this.instance = options.instance ?? randomUUID();
    this.#now = options.now ?? Date.now;
  }

  /** Share changes from now on (the replicator has loaded the others' entries through applyRemote). */
  attach(replicator: Replicator): void {
    this.#replicator = replicator;
  }

  /** The owner id of a session of this process. */
  ownerOf(sessionId: string): string {
    return `${this.instance}:${sessionId}`;
  }

  // --- lookups (the firewall's providers) ---------------------------------

  isOnline(fullJid: string): boolean {
    const e = this.#entries.get(fullJid);
    return e !== undefined && (e.expires === 0 || e.expires > this.#now());
  }

  /**
   * Moves whenever an answer of isOnline may have changed: each entry set or
   * removed, and each expiry instant that has passed (a hibernating session
   * goes offline at its instant, before its timer removes it).
   */
  get version(): number {
    if (this.#expiring.size === 0) return this.#version;
    const now = this.#now();
    if (now >= this.#soonest) {
      this.#version++;
      let soonest = Infinity;
      for (const jid of this.#expiring) {
        const x = this.#entries.get(jid)?.expires ?? 0;
        if (x > now && x < soonest) soonest = x;
      }
      this.#soonest = soonest;
    }
    return this.#version;
  }

  hasSentTo(sender: string, target: string): boolean {
    const e = this.#entries.get(sender);
    return e !== undefined && (e.expires === 0 || e.expires > this.#now()) && e.directed.has(target);
  }

  stats(): KnowledgeStats {
    return { sessions: this.#entries.size, directed: this.#directedCount };
  }

  // --- what sessions report -----------------------------------------------

  /** A session bound `jid` (a new session: any older one with that JID is replaced, its directed set gone). */
  bound(sessionId: string, jid: string): void {
    this.#set(jid, { owner: this.ownerOf(sessionId), expires: 0, directed: new Set() });
  }

  /** A session resumed `jid` (XEP-0198): the server's session lives on, with its directed presence. */
  resumed(sessionId: string, jid: string): void {
    const e = this.#entries.get(jid);
    const directed = e !== undefined && (e.expires === 0 || e.expires > this.#now()) ? e.directed : new Set<string>();
    this.#set(jid, { owner: this.ownerOf(sessionId), expires: 0, directed });
  }

  /**
   * The session's connection ended. `hibernateMs` > 0: the server keeps the
   * session that long for resumption; it stays online (with its directed
   * presence) until then unless resumed.
   */
  ended(sessionId: string, jid: string, hibernateMs = 0): void {
    const owner = this.ownerOf(sessionId);
    const e = this.#entries.get(jid);
    if (e === undefined || e.owner !== owner) return;
    if (hibernateMs > 0) {
      const expires = this.#now() + hibernateMs;
      this.#set(jid, { owner, expires, directed: e.directed });
      const timer = setTimeout(() => {
        this.#timers.delete(jid);
        const cur = this.#entries.get(jid);
        if (cur !== undefined && cur.owner === owner && cur.expires === expires) this.#remove(jid, owner);
      }, hibernateMs);
      timer.unref();
      this.#timers.set(jid, timer);
    } else {
      this.#remove(jid, owner);
    }
  }

  /** Available directed presence from the session `jid` to `target` (prepped). */
  addDirected(sessionId: string, jid: string, target: string): void {
    const e = this.#mine(sessionId, jid);
    if (e === undefined || e.directed.has(target)) return;
    const directed = new Set(e.directed);
    directed.add(target);
    if (directed.size > MAX_DIRECTED_PER_SESSION) directed.delete(directed.values().next().value!);
    this.#set(jid, { owner: e.owner, expires: e.expires, directed });
  }

  /** Unavailable (or error) directed presence from the session `jid` to `target`. */
  removeDirected(sessionId: string, jid: string, target: string): void {
    const e = this.#mine(sessionId, jid);
    if (e === undefined || !e.directed.has(target)) return;
    const directed = new Set(e.directed);
    directed.delete(target);
    this.#set(jid, { owner: e.owner, expires: e.expires, directed });
  }

  /** Broadcast unavailable presence: the server sends unavailable to every target and forgets them. */
  clearDirected(sessionId: string, jid: string): void {
    const e = this.#mine(sessionId, jid);
    if (e === undefined || e.directed.size === 0) return;
    this.#set(jid, { owner: e.owner, expires: e.expires, directed: new Set() });
  }

  // --- replication --------------------------------------------------------

  /** Apply another process's change (never re-published). */
  applyRemote(event: KnowledgeEvent): void {
    if (event.v === null) {
      const e = this.#entries.get(event.k);
      if (e !== undefined && e.owner === event.o) this.#drop(event.k);
      return;
    }
    const v = event.v;
    const old = this.#entries.get(event.k);
    this.#put(event.k, { owner: v.o, expires: v.x, directed: new Set(v.d) });
    // Another process took over a JID of ours (a resume or a new bind
    // elsewhere): stop our hibernation timer and withdraw our copy (the
    // others ignore the removal: the entry is no longer ours).
    if (old !== undefined && old.owner !== v.o && old.owner.startsWith(`${this.instance}:`)) {
      const t = this.#timers.get(event.k);
      if (t !== undefined) {
        clearTimeout(t);
        this.#timers.delete(event.k);
      }
      this.#replicator?.publish({ k: event.k, v: null, o: old.owner });
    }
  }

  /** Forget every entry owned by `instance` (a worker or fleet instance that is gone). */
  dropInstance(instance: string, keep?: (jid: string) => boolean): number {
    let n = 0;
    const prefix = `${instance}:`;
    for (const [jid, e] of [...this.#entries]) {
      if (e.owner.startsWith(prefix) && !(keep?.(jid) ?? false)) {
        this.#drop(jid);
        n++;
      }
    }
    return n;
  }

  /** This process's entries, for a replicator's snapshot. */
  entries(): Array<[string, EntryJson]> {
    return [...this.#entries].map(([k, e]) => [k, toJson(e)]);
  }

  /** Resolves once this process has applied the others' changes made before now (tests, operators). */
  async sync(): Promise<void> {
    await this.#replicator?.sync?.();
  }

  /** Stop timers and replication; the table is left as it is. */
  close(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#replicator?.close();
    this.#replicator = null;
  }

  #mine(sessionId: string, jid: string): Entry | undefined {
    const e = this.#entries.get(jid);
    return e !== undefined && e.owner === this.ownerOf(sessionId) ? e : undefined;
  }

  #set(jid: string, e: Entry): void {
    const t = this.#timers.get(jid);
    if (t !== undefined && e.expires === 0) {
      clearTimeout(t);
      this.#timers.delete(jid);
    }
    this.#put(jid, e);
    this.#replicator?.publish({ k: jid, v: toJson(e) });
  }

  #remove(jid: string, owner: string): void {
    this.#drop(jid);
    this.#replicator?.publish({ k: jid, v: null, o: owner });
  }

  #put(jid: string, e: Entry): void {
    const old = this.#entries.get(jid);
    if (old !== undefined) this.#directedCount -= old.directed.size;
    this.#entries.set(jid, e);
    this.#directedCount += e.directed.size;
    this.#version++;
    if (e.expires === 0) this.#expiring.delete(jid);
    else {
      this.#expiring.add(jid);
      if (e.expires < this.#soonest) this.#soonest = e.expires;
    }
  }

  #drop(jid: string): void {
    const old = this.#entries.get(jid);
    if (old === undefined) return;
    this.#directedCount -= old.directed.size;
    this.#entries.delete(jid);
    this.#version++;
    this.#expiring.delete(jid);
    const t = this.#timers.get(jid);
    if (t !== undefined) {
      clearTimeout(t);
      this.#timers.delete(jid);
    }
  }
}

function toJson(e: Entry): EntryJson {
  return { o: e.owner, x: e.expires, d: [...e.directed] };
}

/** A replicated event as received: anything malformed is refused (returns null). */
export function parseEvent(value: unknown): KnowledgeEvent | null {
  if (typeof value !== "object" || value === null) return null;
  const m = value as { k?: unknown; v?: unknown; o?: unknown };
  if (typeof m.k !== "string") return null;
  if (m.v === null) return typeof m.o === "string" ? { k: m.k, v: null, o: m.o } : null;
  const v = m.v as { o?: unknown; x?: unknown; d?: unknown };
  if (typeof v !== "object" || v === null || typeof v.o !== "string" || typeof v.x !== "number" || !Array.isArray(v.d) || !v.d.every((t) => typeof t === "string")) return null;
  return { k: m.k, v: { o: v.o, x: v.x, d: v.d as string[] } };
}

// ---------------------------------------------------------------------------
// Learning directed presence: an observing stage, last in the pipeline.

export interface KnowledgeStageOptions {
  readonly directory: SessionDirectory;
  /**
   * The sender's roster, when known: the server does not record directed
   * presence to a contact that has a subscription to the sender (from/both),
   * since ordinary presence reaches it anyway.
   */
  readonly roster?: RosterLookup | undefined;
}

/**
 * Sees every client stanza that every other stage let through (it is placed
 * last) and learns directed presence from it. It never decides anything.
 */
export class KnowledgeStage implements PolicyStage {
  readonly name = "knowledge";
  readonly only = { flow: "inbound", kinds: ["presence"] } as const;
  readonly #dir: SessionDirectory;
  readonly #roster: RosterLookup | undefined;

  constructor(options: KnowledgeStageOptions) {
    this.#dir = options.directory;
    this.#roster = options.roster;
  }

  /** The server's bind result (or a resumption): the full JID is online from now. */
  sessionBound(session: SessionInfo, resumed: boolean): void {
    if (session.type !== "c2s" || session.jid === undefined) return;
    const jid = prepJid(session.jid)!;
    if (resumed) this.#dir.resumed(session.id, jid);
    else this.#dir.bound(session.id, jid);
  }

  /** The connection is gone: offline now, or when the server's resumption time runs out. */
  sessionEnded(session: SessionInfo): void {
    if (session.type !== "c2s" || session.jid === undefined) return;
    this.#dir.ended(session.id, prepJid(session.jid)!, session.resumeMs ?? 0);
  }

  judge(stanza: StanzaView, session: SessionInfo, flow: Flow): Verdict | undefined {
    if (flow !== "inbound" || session.type !== "c2s" || stanza.name !== "presence") return undefined;
    const jid = session.jid;
    // Not yet bound: the server would not route it. Not jabber:client: the
    // server does not handle it as a presence stanza at all.
    if (jid === undefined || stanza.xmlns !== NS_CLIENT) return undefined;
    const self = prepJid(jid)!;
    const type = stanza.type;
    const rawTo = stanza.to;
    if (rawTo === undefined) {
      // Broadcast presence. Unavailable ends every directed presence.
      if (type === "unavailable") this.#dir.clearDirected(session.id, self);
      return undefined;
    }
    if (type !== undefined && type !== "unavailable" && type !== "error") return undefined; // subscriptions and probes
    // An error stanza without any child element is dropped by the server unrouted.
    if (type === "error" && stanza.firstChildName === undefined) return undefined;
    if (!isValidJid(rawTo)) return undefined; // the server answers jid-malformed
    const to = prepJid(rawTo)!;
    const parts = splitJid(to);
    if (parts.host === undefined) return undefined;
    const ownBare = bareJid(self);
    const toBare = bareJid(to);
    // To its own bare JID: the server routes it as broadcast presence.
    if (parts.resource === undefined && toBare === ownBare) {
      if (type === "unavailable") this.#dir.clearDirected(session.id, self);
      return undefined;
    }
    if (this.#roster !== undefined && ownBare !== undefined && toBare !== undefined) {
      const sub = this.#roster.entry(ownBare, toBare)?.subscription;
      if (sub === "from" || sub === "both") return undefined;
    }
    if (type === undefined) this.#dir.addDirected(session.id, self, to);
    else this.#dir.removeDirected(session.id, self, to);
    return undefined;
  }
}
