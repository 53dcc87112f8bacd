// The "registration" policy stage (docs/registration.md). Inbound on
// pre-auth c2s streams it judges XEP-0077 registration sets with Prosody's
// rules and answers refusals with Prosody's exact error stanzas; outbound it
// watches the server's answers to learn what really happened: a result to a
// registration set records the account (and tells the watchers), a result to
// an authenticated <remove/> tombstones the name, a bind result teaches a
// known account. It never rewrites bytes, never throws out of judge(), and
// keeps no cache in front of the store (Prosody's tombstone cache bug).
import { buildErrorReply, errorReplyFor } from "../firewall/error-reply.js";
import { serializeAttrs } from "../firewall/xml.js";
import { compileLuaPattern, type LuaPattern } from "../firewall/lua-pattern.js";
import type { Flow, PolicyStage, SessionInfo, Verdict } from "../policy/pipeline.js";
import type { Clock } from "../shaping/clock.js";
import type { RegistrationStore } from "../state/registration-store.js";
import type { StanzaView } from "../xml/stanza-view.js";
import { prepJid, splitJid } from "../xmpp/jid.js";
import { nodeprep } from "../xmpp/stringprep.js";
import { throttleSpec, type RegistrationOptions } from "./options.js";
import { isRegisterSet, readRegisterQuery } from "./register-query.js";
import { SKELETON_VERSION, skeleton } from "./skeleton.js";
import { pollThrottle, throttleKey, type ThrottleSpec } from "./throttle.js";
import { knownAccount } from "./user-import.js";
import { notificationText } from "./watchers.js";

/** Why a registration was refused; bounded, so usable as a metric label. */
export type RefusalReason =
  | "invalid-username"
  | "reserved"
  | "length"
  | "matching"
  | "require"
  | "blocklisted"
  | "not-allowlisted"
  | "throttled"
  | "tombstoned"
  | "look-alike"
  | "store-error";

export interface Refusal {
  readonly type: "auth" | "cancel" | "modify" | "wait";
  readonly condition: string;
  readonly text?: string;
}

/**
 * The stanza error each refusal carries, exactly as Prosody's modules send it
 * (docs/registration.md, "How Prosody handles a registration", "Refusals"). `store-error` is
 * ours: the state database failed, so we refuse rather than guess.
 */
export const REFUSALS: Readonly<Record<RefusalReason, Refusal>> = Object.freeze({
  "invalid-username": { type: "modify", condition: "not-acceptable", text: "The requested username is invalid." },
  reserved: { type: "modify", condition: "not-acceptable" },
  length: { type: "modify", condition: "not-acceptable" },
  matching: { type: "modify", condition: "not-acceptable" },
  require: { type: "modify", condition: "not-acceptable" },
  blocklisted: { type: "auth", condition: "forbidden", text: "Your IP address is blocklisted" },
  "not-allowlisted": { type: "auth", condition: "forbidden", text: "Your IP address is not allowlisted" },
  throttled: { type: "wait", condition: "policy-violation", text: "Too many registrations from this IP address recently" },
  tombstoned: { type: "modify", condition: "not-acceptable" },
  "look-alike": { type: "modify", condition: "not-acceptable" },
  "store-error": { type: "wait", condition: "internal-server-error" },
});

export interface RefusedEvent {
  readonly reason: RefusalReason;
  /** The requested name as sent (may be huge or invalid: truncate before logging). */
  readonly username: string | null;
  readonly host: string;
  readonly ip: string;
  readonly sessionId: string;
  /** For look-alike: the existing account it resembles. */
  readonly resembles?: string;
}

export interface RegisteredEvent {
  readonly username: string;
  readonly host: string;
  readonly ip: string;
  readonly sessionId: string;
  /** Epoch ms. */
  readonly at: number;
  /** `registration_notification` with the variables substituted. */
  readonly text: string;
}

export interface DeletedEvent {
  readonly username: string;
  readonly host: string;
  readonly ip: string;
  readonly sessionId: string;
  readonly at: number;
}

/** Callbacks the app binds to logs, metrics, the component and the webhook. All optional. */
export interface RegistrationHooks {
  onRefused?(event: RefusedEvent): void;
  /** A registration the server accepted; deliver the watcher notification from here. */
  onRegistered?(event: RegisteredEvent): void;
  /** An account deleted itself (XEP-0077 <remove/> answered with a result). */
  onDeleted?(event: DeletedEvent): void;
  /** Presence to a deleted account was answered with `gone` (mod_tombstones). */
  onGone?(event: { readonly username: string; readonly host: string; readonly sessionId: string }): void;
  /** The store failed; `op` names what was being done. */
  onStoreError?(error: unknown, op: string): void;
}

export interface RegistrationStageInit {
  readonly options: RegistrationOptions;
  readonly store: RegistrationStore;
  /** Wall clock in Unix epoch ms (not the monotonic shaping clock: the times are stored). */
  readonly clock?: Clock;
  readonly hooks?: RegistrationHooks;
  /** How long an unanswered registration or removal is remembered. */
  readonly pendingTtlMs?: number;
}

/** Date.now() as a Clock, for the stage's default. */
export const WALL_CLOCK: Clock = Object.freeze({ now: () => Date.now() });

/** At most this many unanswered register iqs are remembered per session (the oldest goes). */
export const MAX_PENDING_PER_SESSION = 8;

const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

/** What #guard returns when the store threw. */
const STORE_FAILED: unique symbol = Symbol("store failed");

interface Pending {
  readonly kind: "register" | "remove";
  readonly username: string;
  readonly host: string;
  readonly ip: string;
  readonly at: number;
}

/** Compiled name rules of mod_block_registrations. */
interface NamePolicy {
  readonly reserved: ReadonlySet<string>;
  readonly confusable: boolean;
  readonly matching: readonly LuaPattern[];
  readonly require: LuaPattern | null;
  readonly min: number;
  readonly max: number;
}

function compileNames(o: RegistrationOptions): NamePolicy {
  const confusable = o.block_registrations_confusable;
  const reserved = new Set<string>();
  for (const name of o.block_registrations_users) {
    const prepped = nodeprep(name) ?? name;
    reserved.add(confusable ? (skeleton(prepped) ?? prepped) : prepped);
  }
  return {
    reserved,
    confusable,
    // mod_block_registrations: username:find(p) for each _matching pattern
    // (plain text when p has no special characters), username:match(p) for _require.
    matching: o.block_registrations_matching.map((p) => compileLuaPattern(p, { mode: "find" })),
    require: o.block_registrations_require === null ? null : compileLuaPattern(o.block_registrations_require, { mode: "match" }),
    min: o.block_registrations_length_minimum,
    max: o.block_registrations_length_maximum,
  };
}

/**
 * The account a full or bare JID names: its localpart as written (callers
 * nodeprep it) and its domain prepped as jid.prep does; null when it has no
 * localpart or is malformed.
 */
function accountParts(jid: string): { local: string; domain: string } | null {
  const p = splitJid(jid);
  if (p.node === undefined || p.host === undefined) return null;
  return { local: p.node, domain: prepJid(p.host)!.toLowerCase() };
}

export class RegistrationStage implements PolicyStage {
  readonly name = "registration";
  /** Registration iqs both ways, presence toward a deleted account. */
  readonly only = { flow: "both", kinds: ["presence", "iq"] } as const;
  readonly options: RegistrationOptions;
  readonly #store: RegistrationStore;
  readonly #clock: Clock;
  readonly #hooks: RegistrationHooks;
  readonly #ttl: number;
  readonly #names: NamePolicy;
  readonly #throttle: ThrottleSpec | null;
  readonly #pending = new Map<string, Map<string, Pending>>();
  #debits = 0;
  #remembered = 0;

  constructor(init: RegistrationStageInit) {
    this.options = init.options;
    this.#store = init.store;
    this.#clock = init.clock ?? WALL_CLOCK;
    this.#hooks = init.hooks ?? {};
    this.#ttl = init.pendingTtlMs ?? 60_000;
    this.#names = compileNames(init.options);
    this.#throttle = throttleSpec(init.options);
    // Stored skeletons follow the confusables data in use (a no-op when current).
    this.#guard("reindex", () => init.store.reindexSkeletons(SKELETON_VERSION, (u) => skeleton(u) ?? u));
  }

  judge(stanza: StanzaView, session: SessionInfo, flow: Flow): Verdict | undefined {
    if (stanza.kind === "presence") return flow === "inbound" ? this.#presenceToTombstone(stanza, session) : undefined;
    if (session.type !== "c2s" || stanza.kind !== "iq") return undefined;
    try {
      return flow === "inbound" ? this.#inbound(stanza, session) : this.#outbound(stanza, session);
    } catch (err) {
      // Peer input never throws out of a stage; a bug here must not kill the session.
      this.#hooks.onStoreError?.(err, "judge");
      return undefined;
    }
  }

  /** Drop what is remembered for a session; the app calls this when the session closes. */
  forget(sessionId: string): void {
    this.#pending.delete(sessionId);
  }

  sessionEnded(session: SessionInfo): void {
    this.forget(session.id);
  }

  /** Number of sessions with unanswered register iqs (for tests and metrics). */
  get pendingSessions(): number {
    return this.#pending.size;
  }

  /**
   * Record an account the proxy learned of another way (`xmpp-guard users
   * import`, a bind). `username` is nodeprepped here. False when invalid or known.
   */
  learnAccount(host: string, username: string, source: "bind" | "import", ip: string | null = null): boolean {
    const account = knownAccount(host, username, source, this.#clock.now(), ip);
    return account !== null && this.#store.addAccount(account);
  }

  // -------------------------------------------------------------------------
  // Inbound: the client's register iqs.

  #inbound(stanza: StanzaView, session: SessionInfo): Verdict | undefined {
    if (!isRegisterSet(stanza)) return undefined;
    const id = stanza.id;
    if (id === undefined) return undefined;
    const query = readRegisterQuery(stanza);
    if (query === null) return undefined;
    if (session.authenticated) {
      if (query.kind === "remove") this.#noteRemoval(stanza, session, id);
      return undefined;
    }
    // Before authentication <remove/> gets registration-required from the
    // server; a set without username or password gets "Required value missing".
    if (query.kind !== "fields" || query.username === null || !query.hasPassword) return undefined;
    const host = session.domain?.toLowerCase();
    if (host === undefined || host === "") return undefined;

    let accepted: string | null = null;
    for (const requested of query.usernames) {
      const result = this.#judgeName(requested);
      if (result.refused !== undefined) return this.#refuse(stanza, session, host, requested, result.refused);
      if (requested === query.username) accepted = result.name;
    }
    if (accepted === null) return undefined;
    // The IP checks and the throttle run once per attempt, after the name
    // checks (mod_block_registrations runs first, at priority 10).
    const ipRefusal = this.#judgeIp(session.ip);
    if (ipRefusal !== undefined) return this.#refuse(stanza, session, host, query.username, ipRefusal);
    for (const requested of query.usernames) {
      const name = nodeprep(requested)!;
      const later = this.#judgeStored(name, host);
      if (later.refused !== undefined) return this.#refuse(stanza, session, host, requested, later.refused, later.resembles);
    }
    this.#remember(session.id, id, { kind: "register", username: accepted, host, ip: session.ip, at: this.#clock.now() });
    return undefined;
  }

  /** Validity and mod_block_registrations, in its order (docs/registration.md, "Refusals"). */
  #judgeName(requested: string): { name: string; refused?: RefusalReason } {
    const name = nodeprep(requested);
    if (name === null) return { name: "", refused: "invalid-username" };
    const n = this.#names;
    const normal = n.confusable ? (skeleton(name) ?? name) : name;
    if (n.reserved.has(name) || n.reserved.has(normal)) return { name, refused: "reserved" };
    const length = [...name].length;
    if (length < n.min || length > n.max) return { name, refused: "length" };
    if (n.matching.some((re) => re.test(name))) return { name, refused: "matching" };
    if (n.require !== null && !n.require.test(name)) return { name, refused: "require" };
    return { name };
  }

  /** mod_register_limits: blocklist, allowlist-only, then the bucket (docs/registration.md, "Refusals"). */
  #judgeIp(ip: string): RefusalReason | undefined {
    const o = this.options;
    if (o.registration_blocklist.has(ip)) return "blocklisted";
    const allowlisted = o.registration_allowlist.has(ip);
    if (o.allowlist_registration_only && !allowlisted) return "not-allowlisted";
    const spec = this.#throttle;
    if (spec === null || allowlisted) return undefined;
    const key = throttleKey(ip, o.registration_throttle_ipv6_prefix);
    if (key === null) return undefined;
    const verdict = this.#guard("throttle", (): RefusalReason | undefined => {
      const now = this.#clock.now();
      const poll = pollThrottle(this.#store.getThrottle(key), spec, now);
      // A refused poll debits nothing, so nothing is written: a flood costs reads only.
      if (!poll.ok) return "throttled";
      this.#store.putThrottle(key, poll.next, { capacity: spec.capacity, perMs: spec.perMs, now });
      if ((++this.#debits & 255) === 0) this.#store.pruneThrottles(now, spec.capacity, spec.perMs);
      return undefined;
    });
    return verdict === STORE_FAILED ? "store-error" : verdict;
  }

  /** mod_tombstones, then mod_mimicking; both read through to the store. */
  #judgeStored(name: string, host: string): { refused?: RefusalReason; resembles?: string } {
    const result = this.#guard("lookup", (): { refused?: RefusalReason; resembles?: string } => {
      if (this.#tombstoned(host, name)) return { refused: "tombstoned" };
      if (this.options.mimicking) {
        const sk = skeleton(name);
        const existing = sk === null ? undefined : this.#store.findBySkeleton(host, sk);
        if (existing !== undefined) return { refused: "look-alike", resembles: existing };
      }
      return {};
    });
    return result === STORE_FAILED ? { refused: "store-error" } : result;
  }

  /**
   * mod_tombstones' expiry: a tombstone holds until `user_tombstone_expiry`
   * seconds after the deletion, that instant included (0: only the instant
   * itself). An expired one is deleted when it is next looked up, as in Prosody.
   */
  #tombstoned(host: string, name: string): boolean {
    const tomb = this.#store.getTombstone(host, name);
    if (tomb === undefined) return false;
    const expiry = this.options.user_tombstone_expiry;
    if (expiry === null || tomb.deleted_at + expiry * 1000 >= this.#clock.now()) return true;
    this.#store.deleteTombstone(host, name);
    return false;
  }

  /**
   * mod_tombstones' answer to presence for a deleted account: presence
   * (available, unavailable or a probe) to the bare JID of a local user with
   * a tombstone gets `cancel/gone` "User deleted", followed by an
   * unsubscribe (unsubscribed for a probe) from the deleted JID, so the
   * sender drops the contact. The server never sees the presence.
   */
  #presenceToTombstone(stanza: StanzaView, session: SessionInfo): Verdict | undefined {
    const type = stanza.type;
    if (type !== undefined && type !== "unavailable" && type !== "probe") return undefined;
    const to = stanza.to;
    if (to === undefined || to.includes("/")) return undefined;
    const target = accountParts(to);
    if (target === null) return undefined;
    const name = nodeprep(target.local);
    if (name === null) return undefined;
    // The server stamps a c2s stanza's from with the bound JID.
    const from = session.type === "c2s" ? session.jid : stanza.from;
    const found = this.#guard("tombstone-presence", () => this.#tombstoned(target.domain, name));
    if (found !== true) return undefined;
    const error = errorReplyFor({ name: "presence", to, from, id: stanza.id, type }, "gone", "cancel", "User deleted");
    const follow = `<presence${serializeAttrs({ type: type === "probe" ? "unsubscribed" : "unsubscribe", to: from, from: to })}/>`;
    this.#hooks.onGone?.({ username: name, host: target.domain, sessionId: session.id });
    return { action: "bounce", reply: error + follow, reason: "registration: presence to a deleted account" };
  }

  #noteRemoval(stanza: StanzaView, session: SessionInfo, id: string): void {
    const me = session.jid === undefined ? null : accountParts(session.jid);
    if (me === null) return;
    // Only a removal addressed to the account itself (or its server, Prosody's
    // registration_compat) deletes the account; one sent to a gateway or any
    // other service unregisters from that service.
    const to = stanza.to;
    if (to !== undefined) {
      const lower = prepJid(to)!.toLowerCase();
      const target = accountParts(to);
      const toServer = lower === me.domain;
      const toSelf = target !== null && target.domain === me.domain && nodeprep(target.local) === nodeprep(me.local) && !to.includes("/");
      if (!toServer && !toSelf) return;
    }
    const username = nodeprep(me.local);
    if (username === null) return;
    this.#remember(session.id, id, { kind: "remove", username, host: me.domain, ip: session.ip, at: this.#clock.now() });
  }

  #refuse(stanza: StanzaView, session: SessionInfo, host: string, username: string | null, reason: RefusalReason, resembles?: string): Verdict {
    const r = REFUSALS[reason];
    this.#hooks.onRefused?.({
      reason,
      username,
      host,
      ip: session.ip,
      sessionId: session.id,
      ...(resembles === undefined ? {} : { resembles }),
    });
    return { action: "bounce", reply: buildErrorReply(stanza, r.condition, r.type, r.text), reason: `registration ${reason}` };
  }

  #remember(sessionId: string, id: string, p: Pending): void {
    // Sessions the app never forget()s must not pile up: now and then, drop
    // every entry past its TTL.
    if ((++this.#remembered & 255) === 0) this.#sweep(p.at);
    let m = this.#pending.get(sessionId);
    if (m === undefined) {
      m = new Map();
      this.#pending.set(sessionId, m);
    }
    m.delete(id);
    m.set(id, p);
    if (m.size > MAX_PENDING_PER_SESSION) m.delete(m.keys().next().value!);
  }

  #sweep(now: number): void {
    for (const [sid, m] of this.#pending) {
      for (const [id, p] of m) if (now - p.at > this.#ttl) m.delete(id);
      if (m.size === 0) this.#pending.delete(sid);
    }
  }

  // -------------------------------------------------------------------------
  // Outbound: the server's answers.

  #outbound(stanza: StanzaView, session: SessionInfo): Verdict | undefined {
    const type = stanza.type;
    if (type !== "result" && type !== "error") return undefined;
    const id = stanza.id;
    const pending = id === undefined ? undefined : this.#pending.get(session.id);
    const p = pending?.get(id!);
    if (p !== undefined) {
      pending!.delete(id!);
      if (pending!.size === 0) this.#pending.delete(session.id);
      const now = this.#clock.now();
      if (type === "result" && now - p.at <= this.#ttl) {
        if (p.kind === "register") this.#registered(p, session, now);
        else this.#deleted(p, session, now);
      }
      return undefined;
    }
    if (type === "result" && stanza.firstChildName === "bind" && stanza.firstChildXmlns === NS_BIND && this.options.mimicking) {
      this.#learnFromBind(stanza);
    }
    return undefined;
  }

  #registered(p: Pending, session: SessionInfo, now: number): void {
    this.#guard("record", () =>
      this.#store.addAccount({ host: p.host, username: p.username, skeleton: skeleton(p.username) ?? p.username, source: "registration", created_at: now, ip: p.ip }),
    );
    const account = { username: p.username, host: p.host, ip: p.ip };
    this.#hooks.onRegistered?.({ ...account, sessionId: session.id, at: now, text: notificationText(this.options, account) });
  }

  #deleted(p: Pending, session: SessionInfo, now: number): void {
    // Written through, so the very next registration of the name is refused.
    this.#guard("tombstone", () => {
      this.#store.putTombstone({ username: p.username, host: p.host, deleted_at: now });
      this.#store.removeAccount(p.host, p.username);
    });
    this.#hooks.onDeleted?.({ username: p.username, host: p.host, ip: p.ip, sessionId: session.id, at: now });
  }

  #learnFromBind(stanza: StanzaView): void {
    const jid = stanza.tree()?.getChild("bind", NS_BIND)?.getChildText("jid", NS_BIND);
    if (jid === null || jid === undefined) return;
    const parts = accountParts(jid);
    if (parts === null) return;
    this.#guard("bind", () => this.learnAccount(parts.domain, parts.local, "bind"));
  }

  /** Runs a store operation; a failure is reported and yields STORE_FAILED. */
  #guard<T>(op: string, fn: () => T): T | typeof STORE_FAILED {
    try {
      return fn();
    } catch (err) {
      this.#hooks.onStoreError?.(err, op);
      return STORE_FAILED;
    }
  }
}
