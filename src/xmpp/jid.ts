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
// session's bound JID, the contacts it writes to): small bounded memos keyed by
// the string. A full memo is simply cleared; a miss costs what it always did.
const MEMO_MAX = 2048;
const splitMemo = new Map<string, JidParts>();
const prepMemo = new Map<string, string>();
const bareMemo = new Map<string, string | undefined>();

function remember<V>(memo: Map<string, V>, key: string, value: V): V {
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(key, value);
  return value;
}

/** util.jid.split: node@host/resource; any malformed JID yields no parts. */
// One-entry caches in front of the memos: consecutive stanzas of a session
// ask about the same JID string object, and comparing it with the last one
// is cheaper than hashing it into a Map.
let lastSplitIn: string | undefined;
let lastSplitOut: JidParts = NONE;
let lastBareIn: string | undefined;
let lastBareOut: string | undefined;
let lastPrepIn: string | undefined;
let lastPrepOut: string | undefined;

export function splitJid(jid: string | undefined): JidParts {
  if (jid === undefined) return NONE;
  if (jid === lastSplitIn) return lastSplitOut;
  let known = splitMemo.get(jid);
  if (known === undefined) known = remember(splitMemo, jid, splitUncached(jid));
  lastSplitIn = jid;
  return (lastSplitOut = known);
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
  if (jid === undefined) return undefined;
  if (jid === lastBareIn) return lastBareOut;
  let bare: string | undefined;
  if (bareMemo.has(jid)) bare = bareMemo.get(jid);
  else {
    const p = splitJid(jid);
    bare = remember(bareMemo, jid, joinJid(p.node, p.host));
  }
  lastBareIn = jid;
  return (lastBareOut = bare);
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
  if (jid === undefined) return undefined;
  if (jid === lastPrepIn) return lastPrepOut;
  const out = prepFresh(jid);
  lastPrepIn = jid;
  return (lastPrepOut = out);
}

function prepFresh(jid: string): string {
  // Printable ASCII without upper case: NFKC and lower-casing change nothing,
  // so only a trailing dot on the domain can (the usual case by far).
  if (!NOT_PLAIN.test(jid)) {
    let hostEnd = jid.indexOf("/");
    if (hostEnd < 0) hostEnd = jid.length;
    if (jid.charCodeAt(hostEnd - 1) !== 0x2e) return jid;
  }
  const known = prepMemo.get(jid);
  if (known !== undefined) return known;
  return remember(prepMemo, jid, prepUncached(jid));
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
