// JID helpers with Prosody's util.jid semantics: split() rejects malformed
// JIDs by returning no parts at all, bare() drops the resource. prep() is an
// approximation of stringprep (NFKC, and lower-casing node and domain) so that
// rule patterns written in lower case match as they do behind Prosody.

export interface JidParts {
  readonly node: string | undefined;
  readonly host: string | undefined;
  readonly resource: string | undefined;
}

const NONE: JidParts = Object.freeze({ node: undefined, host: undefined, resource: undefined });

/** util.jid.split: node@host/resource; any malformed JID yields no parts. */
export function splitJid(jid: string | undefined): JidParts {
  if (jid === undefined) return NONE;
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
  if (hostEnd === jid.length) return { node, host, resource: undefined };
  const resource = jid.slice(hostEnd + 1);
  if (resource === "") return NONE;
  return { node, host, resource };
}

export function joinJid(node: string | undefined, host: string | undefined, resource?: string): string | undefined {
  if (host === undefined) return undefined;
  let out = node !== undefined ? `${node}@${host}` : host;
  if (resource !== undefined) out += `/${resource}`;
  return out;
}

export function bareJid(jid: string | undefined): string | undefined {
  const p = splitJid(jid);
  return joinJid(p.node, p.host);
}

export function hostOf(jid: string | undefined): string | undefined {
  return splitJid(jid).host;
}

/**
 * Approximate jid.prep: NFKC on every part, case-folded node and domain, a
 * trailing dot removed from the domain. Malformed input is returned as is
 * (Prosody would have rejected the stanza before any firewall chain ran).
 */
export function prepJid(jid: string | undefined): string | undefined {
  if (jid === undefined) return undefined;
  const p = splitJid(jid);
  if (p.host === undefined) return jid;
  let host = p.host.normalize("NFKC").toLowerCase();
  if (host.endsWith(".") && host.length > 1) host = host.slice(0, -1);
  const node = p.node?.normalize("NFKC").toLowerCase();
  const resource = p.resource?.normalize("NFKC");
  return joinJid(node, host, resource);
}

/** Loose JID syntax check for action parameters (REDIRECT=…, FORWARD=…). */
export function isValidJid(jid: string): boolean {
  if (/\s/.test(jid)) return false;
  return splitJid(jid).host !== undefined;
}
