// The stream tracker: follows one proxied XMPP stream from both sides and
// knows, at every stanza, what the server knows (docs/stream-view.md): the
// namespace context and language each header set, whether the peer is
// authenticated, the c2s session's bound JID, and which domains an s2s peer
// has proven. Pure: stanza views in, events out; the session acts on them.
//
// What the tracker answers is what every policy reads:
// - the view of each stanza (Stanza over the current StreamContext), with
//   `from` stamped as the server's router stamps it on c2s;
// - on s2s, a stanza whose `from` domain this stream has not verified is
//   refused as the server refuses it (the stream closes, not-authorized);
// - identity for exemptions comes only from verified domains, never from the
//   stream header's claim.

import type { ErrorCode } from "../errors.js";
import { readHead } from "../xml/head.js";
import { NsScope } from "../xml/namespaces.js";
import { DEFAULT_LANG, NS_CLIENT, NS_SERVER, Stanza, StreamContext } from "../xml/stanza.js";
import { NS_STREAMS } from "../xml/stream-error.js";
import { NS_SASL, NS_TLS } from "../xml/stream-features.js";
import { checkStreamHeader, checkXmlDeclaration, headerElementStart } from "../xml/stream-header.js";
import { hostOf, prepJid } from "../xmpp/jid.js";

export const NS_SASL2 = "urn:xmpp:sasl:2";
export const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
export const NS_SM3 = "urn:xmpp:sm:3";
export const NS_DIALBACK = "jabber:server:dialback";

export type Phase = "open" | "authenticated" | "bound";

/** XEP-0198 resumption time when the server names none (Prosody's default, smacks_hibernation_time). */
export const DEFAULT_RESUME_MS = 600_000;
/** A larger `max` is taken as a day. */
const MAX_RESUME_S = 86_400;

/** Something the server said that changes the session. */
export type ServerEvent =
  /** SASL success: authenticated; both streams restart. */
  | { readonly kind: "sasl-success" }
  /** Authenticated without a restart (SASL2); `jid` when it carries a full JID (Bind 2). */
  | { readonly kind: "sasl2-success"; readonly jid: string | undefined }
  /** The bind result: the session's full JID. */
  | { readonly kind: "bound"; readonly jid: string }
  /** XEP-0198 resumption answered: the session is back (its JID is the resumed one's). */
  | { readonly kind: "resumed"; readonly previd: string }
  /** XEP-0198 enabled with resumption: remember `id` → JID. `max`: the server's resumption time, seconds, when it says. */
  | { readonly kind: "resumable"; readonly id: string; readonly max?: string }
  /** s2s: the server accepted the peer's dialback for `domain`. */
  | { readonly kind: "verified"; readonly domain: string }
  /** The server ends the stream with this condition. */
  | { readonly kind: "stream-error"; readonly condition: string }
  /**
   * The server refused a login: a SASL failure (`reason` its condition), or
   * on s2s a dialback key it found invalid (`reason` "dialback"). `mechanism`
   * and `user` come from the peer's attempt when it named them.
   */
  | { readonly kind: "auth-failure"; readonly reason: string; readonly mechanism: string | undefined; readonly user: string | undefined };

/** What the peer's stanza asks of the session (null: nothing, judge and forward it). */
export type PeerEvent =
  | { readonly kind: "starttls" }
  /** The server would end the stream here: close with this code. */
  | { readonly kind: "refuse"; readonly code: ErrorCode; readonly detail: string };

export class StreamTracker {
  readonly type: "c2s" | "s2s";
  readonly contentNs: string;
  /** Context of the peer's current stream (what its header declared). */
  inbound: StreamContext;
  /** Context of the server's current stream. */
  outbound: StreamContext;
  phase: Phase = "open";
  /** c2s: the bound full JID. */
  jid: string | undefined;
  /** c2s: the stream's `to`; s2s: the domain the peer's header claims (unverified). */
  claimedDomain: string | undefined;
  /** s2s: domains the server verified on this stream (dialback), prepped; null until the first (a c2s stream never has one). */
  #verified: Set<string> | null = null;
  /**
   * c2s: how long the server keeps this session for XEP-0198 resumption
   * after a lost connection: what its <enabled/> said, or the default for a
   * resumed session (its <enabled/> was on another connection); 0 when not
   * resumable.
   */
  resumeMs = 0;
  /** SASL success went by: both streams restart once it is forwarded (takeRestart). */
  #restart = false;
  #bindId: string | undefined;
  #resumePrevId: string | undefined;
  /** The peer's last SASL attempt: mechanism and the user it named (never a credential). */
  #attempt: { mechanism: string | undefined; user: string | undefined } | undefined;

  constructor(type: "c2s" | "s2s") {
    this.type = type;
    this.contentNs = type === "s2s" ? NS_SERVER : NS_CLIENT;
    this.inbound = StreamContext.plain(this.contentNs, type === "c2s");
    this.outbound = StreamContext.plain(this.contentNs);
  }

  get authenticated(): boolean {
    return this.phase !== "open";
  }

  /**
   * c2s: the stream's `to`. s2s: the peer's domain once the server verified
   * it (the header's claim when that is verified, else the first verified).
   */
  get peerDomain(): string | undefined {
    if (this.type === "c2s") return this.claimedDomain;
    const claimed = this.claimedDomain?.toLowerCase();
    const verified = this.#verified;
    if (verified === null) return undefined;
    if (claimed !== undefined && verified.has(claimed)) return claimed;
    for (const d of verified) return d;
    return undefined;
  }

  /**
   * True once, right after the SASL success is on its way: both streams
   * restart (RFC 6120 §6.4.6). The peer's next bytes are a new header; so
   * are the server's once it sees that header.
   */
  takeRestart(): boolean {
    if (!this.#restart) return false;
    this.#restart = false;
    return true;
  }

  /**
   * The peer's stream header (the first, or a restart). Returns the problem
   * that ends the stream, or null. The language carries over a restart
   * whose header names none, as in the server's parser.
   */
  peerHeader(data: Buffer, start: number, end: number): { code: ErrorCode; detail: string } | null {
    const at = headerElementStart(data, start, end);
    const head = readHead(data, at, end);
    const problem = checkXmlDeclaration(data, start, at) ?? checkStreamHeader(head, this.contentNs);
    if (problem !== null) return problem;
    const scope = NsScope.EMPTY.enter(head!) as NsScope; // checked above
    this.inbound = StreamContext.shared(this.contentNs, scope, head!.attr("xml:lang") ?? this.inbound.lang, this.type === "c2s");
    const claimed = this.type === "s2s" ? head!.attr("from") : head!.attr("to");
    // The same domain again (a restarted stream) keeps the string already held (the log has it too).
    if (claimed !== undefined && claimed !== this.claimedDomain) this.claimedDomain = sharedDomain(claimed);
    return null;
  }

  /** The server's stream header: its declarations are in scope for what it sends. */
  serverHeader(data: Buffer, start: number, end: number): void {
    const head = readHead(data, headerElementStart(data, start, end), end);
    if (head === null || checkStreamHeader(head, this.contentNs) !== null) return;
    this.outbound = StreamContext.shared(this.contentNs, NsScope.EMPTY.enter(head) as NsScope, head.attr("xml:lang") ?? DEFAULT_LANG, false);
  }

  /** The view policy judges for a stanza from the peer. */
  // Both are borrowed views (Stanza.borrow): the caller gives them back with
  // release() when it is done with the stanza.
  peerView(data: Buffer, start: number, end: number): Stanza {
    return Stanza.borrowStamped(data, start, end, this.inbound, this.jid);
  }

  /** The view of a stanza from the server. */
  serverView(data: Buffer, start: number, end: number): Stanza {
    return Stanza.borrow(data, start, end, this.outbound);
  }

  /** Read a stanza from the peer before it is judged. */
  peerStanza(view: Stanza): PeerEvent | null {
    const problem = view.namespaceProblem;
    if (problem !== null) return { kind: "refuse", code: "XPX_ERR_XML_NAMESPACE", detail: problem };
    const name = view.name;
    const ns = view.xmlns;
    if (view.kind !== "other") {
      if (this.type === "s2s") return StreamTracker.#checkS2sFrom(this, view);
      if (name === "iq" && this.phase !== "bound" && view.type === "set" && view.firstChildName === "bind" && view.firstChildXmlns === NS_BIND) this.#bindId = view.id;
      return null;
    }
    if (name === "starttls" && ns === NS_TLS) return { kind: "starttls" };
    if ((name === "auth" && ns === NS_SASL) || (name === "authenticate" && ns === NS_SASL2)) {
      const mechanism = view.attr("mechanism");
      const initial = ns === NS_SASL ? view.tree()?.getText() : view.tree()?.getChildText("initial-response", NS_SASL2);
      this.#attempt = { mechanism: mechanism?.slice(0, 32), user: saslUser(mechanism, initial ?? undefined) };
      return null;
    }
    if (name === "resume" && ns === NS_SM3) this.#resumePrevId = view.attr("previd");
    return null;
  }

  // Private helpers are static, the instance passed in: a private instance method
  // would give every instance one more slot (8 bytes per object).
  /**
   * s2s: the server closes the stream (not-authorized) on a stanza whose
   * `from` domain is not verified on it; so does the proxy, before judging.
   */
  static #checkS2sFrom(self: StreamTracker, view: Stanza): PeerEvent | null {
    const from = view.from;
    const domain = hostOf(prepJid(from));
    if (domain !== undefined && self.#verified?.has(domain) === true) return null;
    return { kind: "refuse", code: "XPX_ERR_S2S_UNVERIFIED_FROM", detail: `from ${from ?? "(none)"}` };
  }

  /** Read a stanza from the server; returns what changed, if anything. */
  serverStanza(view: Stanza): ServerEvent | null {
    const name = view.name;
    const ns = view.xmlns;
    if (ns === NS_SASL) {
      if (name === "failure") return StreamTracker.#authFailure(this, view.firstChildName);
      if (name !== "success") return null;
      this.phase = "authenticated";
      this.#restart = true;
      this.#attempt = undefined; // kept only to name a failed attempt
      return { kind: "sasl-success" };
    }
    if (ns === NS_DIALBACK) {
      if (name === "result" && this.type === "s2s" && view.type === "invalid") {
        return { kind: "auth-failure", reason: "dialback", mechanism: "dialback", user: prepJid(view.to) };
      }
      // XEP-0220: <db:result type='valid' to='peer'/> proves `to` on this stream.
      if (name !== "result" || this.type !== "s2s" || view.type !== "valid") return null;
      const domain = prepJid(view.to);
      if (domain === undefined) return null;
      (this.#verified ??= new Set()).add(domain);
      if (this.phase === "open") this.phase = "authenticated";
      return { kind: "verified", domain };
    }
    if (ns === NS_SASL2) {
      if (name === "failure") return StreamTracker.#authFailure(this, view.firstChildName);
      if (name !== "success") return null;
      const id = childText(view, "authorization-identifier", NS_SASL2);
      this.#attempt = undefined;
      if (id !== undefined && id.includes("/")) {
        this.jid = ownCopy(id);
        this.phase = "bound";
      } else if (this.phase === "open") this.phase = "authenticated";
      return { kind: "sasl2-success", jid: id };
    }
    if (ns === NS_SM3) {
      if (name === "enabled") {
        const id = view.attr("id");
        const resume = view.attr("resume");
        const max = view.attr("max");
        if (id !== undefined && this.jid !== undefined && (resume === "true" || resume === "1")) {
          const s = max === undefined ? NaN : Number(max);
          this.resumeMs = Number.isFinite(s) && s > 0 ? Math.min(s, MAX_RESUME_S) * 1000 : DEFAULT_RESUME_MS;
          return max === undefined ? { kind: "resumable", id } : { kind: "resumable", id, max };
        }
      } else if (name === "resumed" && this.#resumePrevId !== undefined) {
        this.phase = "bound";
        return { kind: "resumed", previd: this.#resumePrevId };
      }
      return null;
    }
    if (ns === NS_STREAMS && name === "error") {
      return { kind: "stream-error", condition: view.firstChildName ?? "undefined-condition" };
    }
    if (view.kind === "iq" && this.#bindId !== undefined && view.id === this.#bindId && view.type === "result") {
      this.#bindId = undefined;
      const bind = view.tree()?.getChild("bind", NS_BIND);
      const jid = bind?.getChildText("jid", NS_BIND) ?? undefined;
      if (jid) {
        this.jid = ownCopy(jid);
        this.phase = "bound";
        return { kind: "bound", jid: this.jid };
      }
    }
    return null;
  }

  static #authFailure(self: StreamTracker, condition: string | undefined): ServerEvent {
    const attempt = self.#attempt;
    self.#attempt = undefined;
    return { kind: "auth-failure", reason: condition ?? "other", mechanism: attempt?.mechanism, user: attempt?.user };
  }

  /** A resumed session's JID, once the session found it. A resumed session stays resumable. */
  resume(jid: string | undefined): void {
    if (jid !== undefined) this.jid = ownCopy(jid);
    this.phase = "bound";
    this.resumeMs = DEFAULT_RESUME_MS;
  }

  /**
   * The identity exemptions (limits.unlimited_jids) are keyed on: c2s the
   * bound bare JID; s2s the verified domains (every one must be exempt).
   */
  exemptionKeys(): readonly string[] {
    if (this.type === "c2s") return this.jid === undefined ? [] : [this.jid.split("/")[0]!];
    return this.#verified === null ? [] : [...this.#verified];
  }
}

/** Domains named in stream headers lately: the sessions of one domain hold one string. */
const DOMAINS = new Map<string, string>();

function sharedDomain(domain: string): string {
  const known = DOMAINS.get(domain);
  if (known !== undefined) return known;
  // Bounded: a peer naming a new domain each time only starts the table over.
  if (DOMAINS.size >= 256) DOMAINS.clear();
  DOMAINS.set(domain, domain);
  return domain;
}

/**
 * A JID comes out of the parsed stanza's text as a slice that would keep that
 * whole text alive for the session's life: keep an own copy.
 */
function ownCopy(jid: string): string {
  return Buffer.from(jid, "utf8").toString("utf8");
}

/**
 * After binding, only a server nonza starting with s(tream:error) or
 * e(nabled), or any prefixed name (a server may prefix them), needs a look
 * (a check on raw bytes, before any view is built).
 */
export function mayMatterAfterBind(data: Buffer, start: number, end: number): boolean {
  const first = data[start + 1];
  if (first === 0x73 || first === 0x65) return true;
  for (let i = start + 1; i < end; i++) {
    const b = data[i];
    if (b === 0x3a) return true;
    if (b === 0x20 || b === 0x3e || b === 0x2f || b === 0x09 || b === 0x0a || b === 0x0d) return false;
  }
  return false;
}

function childText(view: Stanza, name: string, ns: string): string | undefined {
  const el = view.tree()?.getChild(name, ns);
  return el === undefined ? undefined : el.getText();
}

/**
 * The user a SASL initial response names, for the log: PLAIN's authcid
 * (authzid NUL authcid NUL password: only the middle part is read), or the
 * SCRAM client-first message's `n=`. Nothing for other mechanisms. Cut to 64
 * printable characters; never the password.
 */
export function saslUser(mechanism: string | undefined, initial: string | undefined): string | undefined {
  if (mechanism === undefined || initial === undefined || initial === "" || initial === "=") return undefined;
  let text: string;
  try {
    text = Buffer.from(initial.trim(), "base64").toString("utf8");
  } catch {
    return undefined;
  }
  let user: string | undefined;
  if (mechanism === "PLAIN") {
    const parts = text.split("\0");
    user = parts.length === 3 ? parts[1] : undefined;
  } else if (mechanism.startsWith("SCRAM-")) {
    const m = /(?:^|,)n=([^,]*)/.exec(text.replace(/^[nyp][^,]*,[^,]*,/, ""));
    user = m?.[1]?.replace(/=2C/g, ",").replace(/=3D/g, "=");
  }
  if (user === undefined || user === "") return undefined;
  return user.replace(/[^\x20-\x7e\u00a0-\uffff]/g, "?").slice(0, 64);
}
