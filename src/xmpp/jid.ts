// JID helpers with Prosody's util.jid semantics: split() rejects malformed
// JIDs by returning no parts at all, bare() drops the resource. prep() applies
// the stringprep profiles of xmpp/stringprep.ts (nodeprep, nameprep,
// resourceprep) so that rule patterns written in lower case match as they do
// behind Prosody.
import { nameprep, nodeprep, resourceprep } from "./stringprep.js";

export interface JidParts {
  readonly node: string | undefined;
  readonly host: string | undefined;
  readonly resource: string | undefined;
}

const NONE: JidParts = Object.freeze({ node: undefined, host: undefined, resource: undefined });

// Per-stanza JID work is mostly the same few strings over and over (a
// session's bound JID, the contacts it writes to): one bounded memo keyed by
// the string holds each string's forms (its parts, its bare JID, its prepared
// form), each worked out on first use. A full memo is simply cleared; a miss
// costs what it always did. Sessions that take turns (one stanza each, as
// paced traffic arrives) find their JIDs with one Map lookup, whose key hash
// the string keeps.
const MEMO_MAX = 2048;
const memo = new Map<string, JidForms>();

/** One JID string's derived forms, each computed once (see jidForms()). */
export class JidForms {
  /** The string; undefined for "no JID" (NO_JID). */
  readonly jid: string | undefined;
  #parts: JidParts | undefined;
  #bare: JidForms | undefined;
  #prepped: JidForms | undefined;

  constructor(jid: string | undefined) {
    this.jid = jid;
  }

  /** splitJid(jid). */
  get parts(): JidParts {
    return (this.#parts ??= this.jid === undefined ? NONE : splitUncached(this.jid));
  }

  /** The forms of bareJid(jid) (this object when the JID is bare). */
  get bareForms(): JidForms {
    if (this.#bare === undefined) {
      const p = this.parts;
      // No host: no JID (malformed, or none), whose bare form is none; no resource: bare already.
      this.#bare = p.host === undefined ? NO_JID : p.resource === undefined ? this : jidForms(joinJid(p.node, p.host));
    }
    return this.#bare;
  }

  /** bareJid(jid). */
  get bare(): string | undefined {
    return this.bareForms.jid;
  }

  /** The forms of prepJid(jid) (this object when the JID is already prepared). */
  get prepped(): JidForms {
    if (this.#prepped === undefined) {
      const out = this.jid === undefined ? undefined : prepFresh(this.jid);
      this.#prepped = out === this.jid ? this : jidForms(out);
    }
    return this.#prepped;
  }
}

/** The forms of no JID at all (an absent attribute). */
export const NO_JID = new JidForms(undefined);

/** The forms of `jid`, from the memo (the same object while it stays there). */
export function jidForms(jid: string | undefined): JidForms {
  if (jid === undefined) return NO_JID;
  let forms = memo.get(jid);
  if (forms === undefined) {
    if (memo.size >= MEMO_MAX) memo.clear();
    forms = new JidForms(jid);
    memo.set(jid, forms);
  }
  return forms;
}

/** util.jid.split: node@host/resource; any malformed JID yields no parts. */
export function splitJid(jid: string | undefined): JidParts {
  return jid === undefined ? NONE : jidForms(jid).parts;
}

function splitUncached(jid: string): JidParts {
  let node: string | undefined;
  let hostStart = 0;
  const at = jid.indexOf("@");
  const slash = jid.indexOf("/");
  if (at > 0 && (slash < 0 || at < slash)) {
    node = jid.slice(0, at);
    hostStart = at + 1;
  }
  // The host runs up to the first '/' (and may not contain '@').
  let hostEnd = jid.indexOf("/", hostStart);
  if (hostEnd < 0) hostEnd = jid.length;
  const host = jid.slice(hostStart, hostEnd);
  if (host === "" || host.includes("@")) return NONE;
  if (hostEnd === jid.length) return Object.freeze({ node, host, resource: undefined });
  const resource = jid.slice(hostEnd + 1);
  if (resource === "") return NONE;
  return Object.freeze({ node, host, resource });
}

export function joinJid(node: string | undefined, host: string | undefined, resource?: string): string | undefined {
  if (host === undefined) return undefined;
  let out = node !== undefined ? `${node}@${host}` : host;
  if (resource !== undefined) out += `/${resource}`;
  return out;
}

export function bareJid(jid: string | undefined): string | undefined {
  return jid === undefined ? undefined : jidForms(jid).bare;
}

export function hostOf(jid: string | undefined): string | undefined {
  return splitJid(jid).host;
}

/**
 * jid.prep: nodeprep, nameprep and resourceprep on the parts, the domain's
 * trailing dot removed. Input that is malformed or fails a profile is
 * returned as is (Prosody would have rejected the stanza before any firewall
 * chain ran).
 */
export function prepJid(jid: string | undefined): string | undefined {
  return jid === undefined ? undefined : jidForms(jid).prepped.jid;
}

/** prepJid's work, once per string (JidForms.prepped). */
function prepFresh(jid: string): string {
  // Printable ASCII without upper case: NFKC and lower-casing change nothing,
  // so only a trailing dot on the domain can (the usual case by far).
  if (!NOT_PLAIN.test(jid)) {
    let hostEnd = jid.indexOf("/");
    if (hostEnd < 0) hostEnd = jid.length;
    if (jid.charCodeAt(hostEnd - 1) !== 0x2e) return jid;
  }
  return prepUncached(jid);
}

const NOT_PLAIN = /[^\x21-\x40\x5b-\x7e]/;

function prepUncached(jid: string): string {
  const p = splitJid(jid);
  if (p.host === undefined || p.host === ".") return jid;
  // As jid.prep: the root label's dot goes before nameprep.
  const host = nameprep(p.host.endsWith(".") ? p.host.slice(0, -1) : p.host);
  const node = p.node === undefined ? undefined : nodeprep(p.node);
  const resource = p.resource === undefined ? undefined : resourceprep(p.resource);
  if (host === null || node === null || resource === null) return jid;
  return joinJid(node, host, resource)!;
}

/** Loose JID syntax check for action parameters (REDIRECT=…, FORWARD=…). */
export function isValidJid(jid: string): boolean {
  if (/\s/.test(jid)) return false;
  return splitJid(jid).host !== undefined;
}
