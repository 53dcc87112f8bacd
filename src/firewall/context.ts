// Public types of the firewall's evaluation API: what the session passes in
// (the stanza, its origin session, optional lookups for server state the proxy
// learns) and what a run returns (verdict, stanzas to emit, logs, marks, hits).
// Providers are given at LOAD time: a rule that needs one that is absent is
// refused with a message, never silently ignored. See docs/firewall.md.
import type { StanzaView } from "../xml/stanza-view.js";
import type { ActionName, BuiltinChain, LogActionLevel } from "./ast.js";
import type { RunMemory } from "./run-memory.js";

/**
 * The session a stanza came from, when the proxy knows it: the client for
 * `preroute`, the s2s link for `deliver` over s2s. For `deliver` on a c2s link
 * (server → client) the sender's session is not visible: pass no origin.
 */
export interface OriginSession {
  readonly type: "c2s" | "s2sin";
  /** Bound full JID (c2s). */
  readonly jid?: string | undefined;
  /** Peer domain (s2sin). */
  readonly domain?: string | undefined;
  /** Real peer IP address. */
  readonly ip?: string | undefined;
  readonly authenticated: boolean;
  /**
   * Session marks (MARK ORIGIN / ORIGIN MARKED): name → time set, in the
   * ruleset clock's ms. Owned by the session; runs write to it directly.
   */
  readonly marks: Map<string, number>;
}

export interface FirewallContext {
  readonly stanza: StanzaView;
  readonly origin?: OriginSession | undefined;
  /**
   * The local host handling the stanza (Prosody's module.host; FORWARD and
   * REPORT TO send from it). Default: the origin's host in preroute and
   * deliver_remote, the recipient's host in deliver.
   */
  readonly host?: string | undefined;
  /**
   * True when the stanza comes from the server, toward a client (`deliver` on
   * a c2s link): its bytes are the server's own serialisation of the stanza,
   * so attributes are read exactly as written. In particular xml:lang is not
   * filled in from the stream: a stanza the server made itself has none.
   */
  readonly fromServer?: boolean | undefined;
  /**
   * What the session's earlier stanzas left for its next run (run-memory.ts):
   * the firewall stage passes each session's own. Without it the rule set's
   * own is used, which sessions that take turns overwrite each other's in.
   */
  readonly memory?: RunMemory | undefined;
  /**
   * How many times this stanza was already produced by REDIRECT/COPY and fed
   * back in (0 for a stanza from the wire). Copies stop at MAX_REENTRY.
   */
  readonly depth?: number | undefined;
}

/** Identity of a rule for logs, metrics and traces: `id` is `file:line`. */
export interface RuleRef {
  readonly id: string;
  readonly file: string;
  readonly line: number;
  readonly chain: string;
}

export interface EmittedStanza {
  readonly kind: "reply" | "copy" | "forward" | "redirect" | "report";
  /**
   * `origin`: send straight back to the origin session, unrouted (REPLY).
   * `route`: hand to the server to route as if the origin session sent it
   * (REDIRECT, COPY, FORWARD, REPORT TO); it passes the firewall again.
   */
  readonly via: "origin" | "route";
  readonly to: string | undefined;
  readonly stanza: string;
  readonly rule: RuleRef;
}

export interface FirewallLog {
  readonly level: LogActionLevel;
  readonly message: string;
  readonly rule: RuleRef;
}

export interface MarkChange {
  readonly op: "mark" | "unmark";
  readonly scope: "origin" | "user";
  readonly name: string;
  /** Bare JID for user marks. */
  readonly user?: string | undefined;
  readonly at: number;
  readonly rule: RuleRef;
}

export interface RuleHit {
  readonly rule: RuleRef;
  readonly action: ActionName;
}

export type ChainVerdict = "pass" | "drop" | "bounce" | "disconnect";

export interface FirewallResult {
  readonly verdict: ChainVerdict;
  /** For "bounce": the error stanza to send to the origin session (docs/firewall.md, "Error replies"). */
  readonly bounce?: { readonly condition: string; readonly type: string; readonly text?: string | undefined; readonly stanza: string };
  /** For "disconnect": the stream error to close the origin session with. */
  readonly disconnect?: { readonly condition: string; readonly text?: string | undefined };
  /** Set when STRIP/INJECT changed the stanza: forward these bytes instead of stanza.bytes. */
  readonly rewrite?: string;
  /** True when the verdict came from DEFAULT (Prosody's default handling). */
  readonly defaulted: boolean;
  readonly emitted: readonly EmittedStanza[];
  readonly logs: readonly FirewallLog[];
  readonly marks: readonly MarkChange[];
  /** Rules whose conditions all matched, in evaluation order. */
  readonly matched: readonly RuleRef[];
  /** One entry per action executed (for metrics: rule id × action). */
  readonly hits: readonly RuleHit[];
  /** TAG TRACE tags, in order. */
  readonly tags: readonly string[];
}

/** The chains a session runs directly; user chains are only reached by JUMP CHAIN. */
export type RunChain = BuiltinChain;

// ---------------------------------------------------------------------------
// Providers: server state the proxy learns or is configured with.

export interface RosterEntry {
  readonly subscription: "none" | "to" | "from" | "both";
  /** Outgoing request pending (ask='subscribe'). */
  readonly ask?: "subscribe" | undefined;
  readonly groups: readonly string[];
}

/** A learned roster: unknown rosters answer "no entry" (docs/firewall.md, "What is refused, and why"). */
export interface RosterLookup {
  /** The entry `owner` (bare JID) has for `contact` (bare JID), if known. */
  entry(owner: string, contact: string): RosterEntry | undefined;
  /** Whether `owner` has an unanswered subscription request from `contact`. Needed by PENDING SUBSCRIPTION FROM SENDER. */
  pendingIn?(owner: string, contact: string): boolean;
}

export interface OnlineSessions {
  /** Whether a session with this full JID is bound on the server. */
  isOnline(fullJid: string): boolean;
  /**
   * Moves whenever an answer of isOnline may have changed (memo.ts, Versioned);
   * without it, rules that read online sessions are never memoised.
   */
  readonly version?: number;
}

export interface DirectedPresence {
  /** Whether `sender` (full JID of a local session) has sent directed presence to `target`. */
  hasSentTo(sender: string, target: string): boolean;
}

export interface GroupLookup {
  contains(group: string, bareJid: string): boolean;
}

export interface RoleLookup {
  /** The role name of `bareJid` on `host`, if any. */
  roleOf(bareJid: string, host: string): string | undefined;
}

export interface AdminLookup {
  isAdmin(bareJid: string, host: string): boolean;
}

export interface PermissionCheck {
  /** Prosody's module:may(permission) for the acting entity. */
  may(permission: string, actor: { readonly jid: string | undefined; readonly host: string | undefined }): boolean;
}

export interface UserMarkStore {
  /** When `user` (local bare JID) was marked `name`, in ruleset clock ms. */
  get(user: string, name: string): number | undefined;
  set(user: string, name: string, at: number): void;
  unset(user: string, name: string): void;
}

export interface GeoIpLookup {
  lookup(ip: string): { readonly code?: string; readonly code3?: string; readonly continent?: string } | undefined;
}

/** A list whose content the shell keeps current (HTTP polling, pubsub). */
export interface RemoteList {
  contains(item: string): boolean;
}

export interface RemoteListFactory {
  /**
   * Open (or reuse) the list at `url` with the definition's options (ttl,
   * pattern, hash, checkcert…); `def.name` is the %LIST name. May throw an
   * Error whose message says why the list cannot work (reported at the %LIST
   * line, and the rule set is refused).
   */
  open(url: string, options: Readonly<Record<string, string>>, def?: { readonly name: string }): RemoteList;
}

export interface FirewallProviders {
  readonly roster?: RosterLookup | undefined;
  readonly sessions?: OnlineSessions | undefined;
  readonly directedPresence?: DirectedPresence | undefined;
  readonly groups?: GroupLookup | undefined;
  readonly roles?: RoleLookup | undefined;
  readonly admins?: AdminLookup | undefined;
  readonly permissions?: PermissionCheck | undefined;
  readonly userMarks?: UserMarkStore | undefined;
  readonly geoip?: GeoIpLookup | undefined;
  readonly remoteLists?: RemoteListFactory | undefined;
}

/** Local wall-clock time for TIME and DAY. */
export interface LocalTime {
  readonly hour: number;
  readonly minute: number;
  /** 0 = Sunday … 6 = Saturday. */
  readonly weekday: number;
}
