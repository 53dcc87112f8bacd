// Small XML helpers for the firewall: a structural element type that ltx
// Elements satisfy, Prosody-compatible escaping and serialization (used for
// every stanza the firewall builds), namespace resolution for stanza paths,
// and a strict parser for INJECT snippets. Never used to re-serialize a stanza
// that is forwarded unchanged: those keep their original bytes.
import { NS_CLIENT, NS_SERVER } from "../xml/stanza.js";
import { escapeXml } from "../xml/stream-error.js";

/** The shape of an ltx Element that the firewall reads. */
export interface XmlNode {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string | undefined>>;
  readonly children: readonly (XmlNode | string)[];
}

/** A private, mutable copy used when STRIP/INJECT modify a stanza. */
export interface MutableXmlNode {
  name: string;
  attrs: Record<string, string | undefined>;
  children: (MutableXmlNode | string)[];
}

export const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

/** Attributes as ` k='v'` in insertion order, skipping undefined values. */
export function serializeAttrs(attrs: Readonly<Record<string, string | undefined>>): string {
  let out = "";
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined) out += ` ${k}='${escapeXml(String(v))}'`;
  }
  return out;
}

/** Serialize like Prosody: single-quoted attributes, empty elements self-closed. */
export function serialize(node: XmlNode | string): string {
  if (typeof node === "string") return escapeXml(node);
  const open = `<${node.name}${serializeAttrs(node.attrs)}`;
  if (node.children.length === 0) return `${open}/>`;
  let inner = "";
  for (const c of node.children) inner += serialize(c);
  return `${open}>${inner}</${node.name}>`;
}

/**
 * Serialize a tree held in the server's form (stanza-path.ts prosodyForm:
 * `xmlns` is the namespace recorded on each element) as the server writes
 * it: an element's `xmlns` is left out when it equals its parent's. For an
 * element on its own, the parent is "nothing recorded".
 */
export function serializeHeld(node: XmlNode | string, parentNs?: string): string {
  if (typeof node === "string") return escapeXml(node);
  const ns = node.attrs.xmlns;
  let open = `<${node.name}`;
  for (const [k, v] of Object.entries(node.attrs)) {
    if (v === undefined || (k === "xmlns" && v === parentNs)) continue;
    open += ` ${k}='${escapeXml(String(v))}'`;
  }
  if (node.children.length === 0) return `${open}/>`;
  let inner = "";
  for (const c of node.children) inner += serializeHeld(c, ns);
  return `${open}>${inner}</${node.name}>`;
}

export function cloneNode(node: XmlNode): MutableXmlNode {
  return {
    name: node.name,
    attrs: { ...node.attrs },
    children: node.children.map((c) => (typeof c === "string" ? c : cloneNode(c))),
  };
}

export function localName(qname: string): string {
  const i = qname.indexOf(":");
  return i < 0 ? qname : qname.slice(i + 1);
}

/**
 * Both content namespaces (jabber:client, jabber:server) as "no namespace",
 * for callers that only need "is this the stanza's own namespace" on a c2s
 * stream (the MUC limits). The firewall compares what the server records
 * instead, which tells the two apart (stanza-path.ts).
 */
export function normNs(ns: string | undefined): string {
  return ns === undefined || ns === NS_CLIENT || ns === NS_SERVER ? "" : ns;
}

/** Prosody's get_text(): the concatenated text, or undefined if there are child elements. */
export function textOf(el: XmlNode): string | undefined {
  let out = "";
  for (const c of el.children) {
    if (typeof c !== "string") return undefined;
    out += c;
  }
  return out;
}

// ---------------------------------------------------------------------------
// INJECT snippets: a strict little parser (elements, quoted attributes, text,
// the five predefined entities and character references).

const NAME_RE = /[A-Za-z_][\w.:-]*/y;
const ATTR_RE = /\s+([A-Za-z_][\w.:-]*)\s*=\s*(?:'([^'<]*)'|"([^"<]*)")/y;

function decodeEntities(s: string): string | null {
  let bad = false;
  const out = s.replace(/&([^;&]*);?/g, (m, ref: string) => {
    if (!m.endsWith(";")) {
      bad = true;
      return m;
    }
    switch (ref) {
      case "amp":
        return "&";
      case "lt":
        return "<";
      case "gt":
        return ">";
      case "apos":
        return "'";
      case "quot":
        return '"';
    }
    const code = /^#x[0-9a-fA-F]+$/.test(ref)
      ? parseInt(ref.slice(2), 16)
      : /^#[0-9]+$/.test(ref)
        ? parseInt(ref.slice(1), 10)
        : NaN;
    if (!(code > 0 && code <= 0x10ffff)) {
      bad = true;
      return m;
    }
    return String.fromCodePoint(code);
  });
  return bad ? null : out;
}

/** Parse one element with optional children; returns an error message on failure. */
export function parseXmlSnippet(src: string): { node: MutableXmlNode } | { error: string } {
  let pos = 0;
  const fail = (msg: string): { error: string } => ({ error: `${msg} at offset ${pos}` });

  const parseElement = (): MutableXmlNode | { error: string } => {
    if (src[pos] !== "<") return fail("expected '<'");
    pos++;
    NAME_RE.lastIndex = pos;
    const nm = NAME_RE.exec(src);
    if (!nm) return fail("expected an element name");
    pos = NAME_RE.lastIndex;
    const node: MutableXmlNode = { name: nm[0], attrs: {}, children: [] };
    for (;;) {
      ATTR_RE.lastIndex = pos;
      const am = ATTR_RE.exec(src);
      if (!am) break;
      const value = decodeEntities(am[2] ?? am[3] ?? "");
      if (value === null) return fail("bad entity in attribute");
      if (am[1]! in node.attrs) return fail(`duplicate attribute '${am[1]}'`);
      node.attrs[am[1]!] = value;
      pos = ATTR_RE.lastIndex;
    }
    while (/\s/.test(src[pos] ?? "")) pos++;
    if (src.startsWith("/>", pos)) {
      pos += 2;
      return node;
    }
    if (src[pos] !== ">") return fail("expected '>' or '/>'");
    pos++;
    for (;;) {
      const lt = src.indexOf("<", pos);
      if (lt < 0) return fail(`unclosed element '${node.name}'`);
      if (lt > pos) {
        const text = decodeEntities(src.slice(pos, lt));
        if (text === null) return fail("bad entity in text");
        node.children.push(text);
        pos = lt;
      }
      if (src.startsWith("</", pos)) {
        const close = `</${node.name}`;
        if (!src.startsWith(close, pos)) return fail(`expected '</${node.name}>'`);
        pos += close.length;
        while (/\s/.test(src[pos] ?? "")) pos++;
        if (src[pos] !== ">") return fail("expected '>'");
        pos++;
        return node;
      }
      const child = parseElement();
      if ("error" in child) return child;
      node.children.push(child);
    }
  };

  const trimmed = src.trim();
  src = trimmed;
  const result = parseElement();
  if ("error" in result) return result;
  if (pos !== src.length) return fail("unexpected text after the element");
  return { node: result };
}
