// Random XMPP streams for the differential test: a fast-check arbitrary over
// the ways one stanza can be written that matter to a namespace-aware parser
// (prefixes and where they are declared, default-namespace redeclarations,
// explicit jabber:client / jabber:server, nested redefinitions, xml:lang on
// the header and the stanza, namespaced attributes, attribute order, quotes,
// references and whitespace), rendered to bytes.
//
// The arbitrary produces a small description of choices (RawStream), and
// render() turns it into text. Namespaces are symbolic ("content" is the
// stream's own, jabber:client on c2s and jabber:server on s2s) so the same
// choices make sense on both kinds of stream. Most generated streams are
// well-formed; a minority are not on purpose (an unbound prefix, a reserved
// prefix or namespace misused, a duplicate attribute through two prefixes),
// so that both sides' refusals are compared too.

import fc from "fast-check";
import { DEFAULT_NS, NS_STREAMS, type Kind } from "./oracle.js";

export const NS_DIALBACK = "jabber:server:dialback";
export const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
export const NS_XML = "http://www.w3.org/XML/1998/namespace";
export const NS_XMLNS = "http://www.w3.org/2000/xmlns/";

/** Namespace names by role. */
export type NsSym = "content" | "other" | "dialback" | "streams" | "foreign" | "foreign2" | "empty" | "xml" | "xmlns";

export function resolveNs(kind: Kind, ns: NsSym): string {
  switch (ns) {
    case "content":
      return DEFAULT_NS[kind];
    case "other":
      return kind === "c2s" ? DEFAULT_NS.s2s : DEFAULT_NS.c2s;
    case "dialback":
      return NS_DIALBACK;
    case "streams":
      return NS_STREAMS;
    case "foreign":
      return "urn:example:foo";
    case "foreign2":
      return "urn:example:bar";
    case "empty":
      return "";
    case "xml":
      return NS_XML;
    case "xmlns":
      return NS_XMLNS;
  }
}

export interface RawDecl {
  /** null: the default namespace (xmlns='…'). */
  prefix: string | null;
  ns: NsSym;
  quote: string;
}

export interface RawAttr {
  /** Qualified name is prefix:local, or local alone; "xml:lang" is written as its own local. */
  local: string;
  prefix: string | null;
  /** Declare the prefix on this element (else it must already be in scope). */
  bindHere: boolean;
  bindNs: NsSym;
  value: string[];
  quote: string;
  eq: string;
}

export interface RawText {
  text: string[];
}

export interface RawEl {
  local: string;
  prefix: string | null;
  /** Where the element's prefix is declared: on the element, on the stream header (top-level only), or nowhere new. */
  bind: "here" | "header" | "scope";
  bindNs: NsSym;
  /** xmlns='…' on the element. */
  defaultNs: NsSym | null;
  decls: RawDecl[];
  attrs: RawAttr[];
  /** Rotate the start tag's items (declarations and attributes) by this much: declarations may follow their use. */
  rotate: number;
  seps: string[];
  beforeGt: string;
  endWs: string;
  /** Without children: <x></x> rather than <x/>. */
  longForm: boolean;
  children: Array<RawEl | RawText>;
}

export interface RawStream {
  kind: Kind;
  xmlDecl: string | null;
  /** Prefix of the stream element; null: <stream xmlns='http://etherx.jabber.org/streams'>. */
  streamPrefix: string | null;
  /** False (rarely): the stream prefix is bound to the content namespace, so this is no stream header. */
  streamNsOk: boolean;
  headerDefault: NsSym | null;
  headerDialback: boolean;
  headerDecls: RawDecl[];
  headerLang: { value: string[]; quote: string } | null;
  headerFrom: boolean;
  headerVersion: boolean;
  headerSeps: string[];
  stanzas: RawEl[];
  gaps: string[];
  close: boolean;
}

// ---------------------------------------------------------------------------
// Arbitraries

/** One of the values, by weight; shrinks towards the first (list the plainest first). */
function weighted<T>(...pairs: Array<[number, T]>): fc.Arbitrary<T> {
  return fc.oneof({ withCrossShrink: true }, ...pairs.map(([weight, v]) => ({ weight, arbitrary: fc.constant(v) })));
}

const quote = fc.constantFrom("'", '"');
const sep = weighted<string>([6, " "], [1, "  "], [1, "\n"], [1, "\t"], [1, "\r\n"], [1, " \n\t"]);
const seps = fc.array(sep, { minLength: 1, maxLength: 3 });
const eq = weighted<string>([6, "="], [1, " = "], [1, "\n=\t"]);
const beforeGt = weighted<string>([6, ""], [1, " "], [1, "\n"]);

/** Namespace for a prefix declaration: mostly usable ones, a few the parser refuses. */
const prefixNs = weighted<NsSym>([120, "content"], [36, "foreign"], [24, "dialback"], [18, "other"], [12, "streams"],
  [6, "foreign2"], [1, "empty"], [1, "xml"], [1, "xmlns"]);
/** Namespace for a default-namespace declaration. */
const defaultNs = weighted<NsSym>([60, "content"], [18, "other"], [24, "foreign"], [12, "empty"], [6, "streams"],
  [6, "dialback"], [1, "xml"]);
const prefix = weighted<string>([6, "c"], [3, "db"], [2, "stream"], [2, "a"], [1, "s"], [1, "xml"]);
const attrPrefix = weighted<string | null>([10, null], [3, "c"], [1, "a"], [1, "db"], [1, "stream"], [1, "xml"]);

const VALUE_PIECES = [
  "a@example.com", "example.com", "b@example.org/r", "chat", "get", "x", "é", "\u{1F600}",
  " ", "\t", "\n", "\r\n", "\r", "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#65;", "&#x42;",
  "&#9;", "&#10;", "&#13;", "&#x20;", "'", '"', ">",
];
const value = fc.array(fc.constantFrom(...VALUE_PIECES), { maxLength: 3 });
const LANGS = ["en", "fr", "de-CH", "", "EN", " de", "&#x66;r", "x\ty"];
// An index rather than constantFrom: it shrinks through the list, not only to its head.
const langValue = fc.nat(LANGS.length - 1).map((k) => [LANGS[k]!]);

const rawDecl: fc.Arbitrary<RawDecl> = fc.record({
  prefix: weighted<string | null>([20, null], [80, "c"], [40, "db"], [20, "a"], [20, "s"], [20, "stream"], [1, "xml"]),
  ns: prefixNs,
  quote,
});

const plainAttr: fc.Arbitrary<RawAttr> = fc.record({
  local: weighted<string>([5, "to"], [3, "from"], [4, "type"], [2, "id"], [1, "lang"], [1, "x"]),
  prefix: attrPrefix,
  bindHere: weighted<boolean>([12, true], [1, false]),
  bindNs: prefixNs,
  value,
  quote,
  eq,
});
const langAttr: fc.Arbitrary<RawAttr> = fc.record({
  local: fc.constant("xml:lang"),
  prefix: fc.constant(null),
  bindHere: fc.constant(false),
  bindNs: fc.constant<NsSym>("xml"),
  value: langValue,
  quote,
  eq,
});
const rawAttr = fc.oneof({ weight: 4, arbitrary: plainAttr }, { weight: 1, arbitrary: langAttr });

const TEXT_PIECES = ["hi", " ", "\n", "&amp;", "&lt;", "é", "&#65;", "<![CDATA[x<y]]>", ">"];
const rawText: fc.Arbitrary<RawText> = fc.record({ text: fc.array(fc.constantFrom(...TEXT_PIECES), { minLength: 1, maxLength: 3 }) });

function element(locals: fc.Arbitrary<string>, depth: number): fc.Arbitrary<RawEl> {
  const children: fc.Arbitrary<Array<RawEl | RawText>> = depth <= 0
    ? fc.array(rawText, { maxLength: 1 })
    : fc.array(fc.oneof(
      { weight: 3, arbitrary: element(CHILD_LOCAL, depth - 1) as fc.Arbitrary<RawEl | RawText> },
      { weight: 1, arbitrary: rawText as fc.Arbitrary<RawEl | RawText> },
    ), { maxLength: 2 });
  const top = depth === STANZA_DEPTH;
  return fc.record({
    local: locals,
    prefix: fc.option(prefix, { nil: null, freq: 2 }),
    bind: weighted<"here" | "header" | "scope">([10, "here"], [6, "header"], [1, "scope"]),
    bindNs: prefixNs,
    defaultNs: fc.option(defaultNs, { nil: null, freq: 2 }),
    decls: fc.array(rawDecl, { maxLength: top ? 2 : 1 }),
    attrs: fc.array(rawAttr, { maxLength: top ? 4 : 1 }),
    rotate: fc.nat(6),
    seps,
    beforeGt,
    endWs: beforeGt,
    longForm: fc.boolean(),
    children,
  });
}

const STANZA_DEPTH = 2;
const STANZA_LOCAL = weighted<string>([6, "message"], [4, "presence"], [4, "iq"], [1, "result"], [1, "verify"],
  [1, "error"], [1, "features"], [1, "auth"], [1, "foo"], [1, "stream"]);
const CHILD_LOCAL = fc.constantFrom("body", "x", "query", "item", "error", "result");

export const rawStream: fc.Arbitrary<RawStream> = fc.record({
  kind: fc.constantFrom<Kind>("c2s", "s2s"),
  xmlDecl: weighted<string | null>([3, null], [3, "<?xml version='1.0'?>"], [1, '<?xml version="1.0" encoding="UTF-8"?>'],
    [1, "<?xml version='1.0' encoding='utf-8' standalone='yes'?>"]),
  streamPrefix: weighted<string | null>([12, "stream"], [2, "s"], [1, null]),
  streamNsOk: weighted<boolean>([40, true], [1, false]),
  headerDefault: weighted<NsSym | null>([12, "content"], [2, null], [1, "other"], [1, "foreign"], [1, "empty"]),
  headerDialback: fc.boolean(),
  headerDecls: fc.array(rawDecl, { maxLength: 2 }),
  headerLang: fc.option(fc.record({ value: langValue, quote }), { nil: null, freq: 2 }),
  headerFrom: fc.boolean(),
  headerVersion: fc.boolean(),
  headerSeps: seps,
  stanzas: fc.array(element(STANZA_LOCAL, STANZA_DEPTH), { minLength: 1, maxLength: 3 }),
  gaps: fc.array(weighted<string>([4, ""], [1, " "], [1, "\n"], [1, "\r\n\t"]), { minLength: 1, maxLength: 3 }),
  close: weighted<boolean>([4, false], [1, true]),
});

// ---------------------------------------------------------------------------
// Rendering

function attrValue(pieces: string[], q: string): string {
  return pieces.map((p) => (p === q ? (q === "'" ? "&apos;" : "&quot;") : p)).join("");
}

/** A start tag's items: qualified name → rendered item, first occurrence of each name kept. */
class Items {
  readonly #names = new Set<string>();
  readonly list: string[] = [];

  has(name: string): boolean {
    return this.#names.has(name);
  }

  add(name: string, pieces: string[], q: string, eqSign = "="): void {
    if (this.#names.has(name)) return;
    this.#names.add(name);
    this.list.push(`${name}${eqSign}${q}${attrValue(pieces, q)}${q}`);
  }
}

function startTag(name: string, items: string[], seps: string[], rotate: number, end: string): string {
  const n = items.length;
  const ordered = n === 0 ? [] : items.map((_, i) => items[(i + rotate) % n]!);
  let s = `<${name}`;
  ordered.forEach((item, i) => {
    s += seps[i % seps.length]! + item;
  });
  return s + end;
}

function renderEl(el: RawEl, kind: Kind, topLevel: boolean): string {
  const items = new Items();
  if (el.defaultNs !== null) items.add("xmlns", [resolveNs(kind, el.defaultNs)], "'");
  for (const d of el.decls) items.add(d.prefix === null ? "xmlns" : `xmlns:${d.prefix}`, [resolveNs(kind, d.ns)], d.quote);
  // A top-level element bound "on the header" had its declaration put there
  // by render(). The xml prefix is bound from the start: never declared here.
  if (el.prefix !== null && el.prefix !== "xml" && (el.bind === "here" || (el.bind === "header" && !topLevel))) {
    items.add(`xmlns:${el.prefix}`, [resolveNs(kind, el.bindNs)], "'");
  }
  for (const a of el.attrs) {
    const name = a.prefix === null ? a.local : `${a.prefix}:${a.local}`;
    if (a.prefix !== null && a.prefix !== "xml" && a.bindHere) items.add(`xmlns:${a.prefix}`, [resolveNs(kind, a.bindNs)], a.quote);
    items.add(name, a.value, a.quote, a.eq);
  }
  const name = el.prefix === null ? el.local : `${el.prefix}:${el.local}`;
  const empty = el.children.length === 0 && !el.longForm;
  let s = startTag(name, items.list, el.seps, el.rotate, `${el.beforeGt}${empty ? "/>" : ">"}`);
  if (empty) return s;
  for (const c of el.children) s += "text" in c ? c.text.join("") : renderEl(c, kind, false);
  return `${s}</${name}${el.endWs}>`;
}

/** The stream's text. */
export function render(r: RawStream): string {
  const kind = r.kind;
  const items = new Items();
  const streamName = r.streamPrefix === null ? "stream" : `${r.streamPrefix}:stream`;
  const streamsNs = r.streamNsOk ? NS_STREAMS : DEFAULT_NS[kind];
  if (r.streamPrefix === null) {
    items.add("xmlns", [streamsNs], "'");
  } else {
    if (r.headerDefault !== null) items.add("xmlns", [resolveNs(kind, r.headerDefault)], "'");
    items.add(`xmlns:${r.streamPrefix}`, [streamsNs], "'");
  }
  if (r.headerDialback) items.add("xmlns:db", [NS_DIALBACK], "'");
  for (const d of r.headerDecls) items.add(d.prefix === null ? "xmlns" : `xmlns:${d.prefix}`, [resolveNs(kind, d.ns)], d.quote);
  for (const el of r.stanzas) {
    if (el.prefix !== null && el.prefix !== "xml" && el.bind === "header") items.add(`xmlns:${el.prefix}`, [resolveNs(kind, el.bindNs)], "'");
  }
  items.add("to", [kind === "c2s" ? "example.com" : "b.example"], "'");
  if (r.headerFrom) items.add("from", [kind === "c2s" ? "u@example.com" : "a.example"], '"');
  if (r.headerVersion) items.add("version", ["1.0"], "'");
  if (r.headerLang !== null) items.add("xml:lang", r.headerLang.value, r.headerLang.quote);
  let s = (r.xmlDecl ?? "") + startTag(streamName, items.list, r.headerSeps, 0, ">");
  r.stanzas.forEach((el, i) => {
    s += r.gaps[i % r.gaps.length]! + renderEl(el, kind, true);
  });
  if (r.close) s += `</${streamName}>`;
  return s;
}

/**
 * The same stream as XMPP over WebSocket (RFC 7395) would carry it: one
 * message per element. The header becomes an <open/> in the framing
 * namespace with the header's addressing, version and language, and its
 * namespace declarations too (where, each message being a document of its
 * own, they are in scope for nothing else); each stanza is its own message,
 * written exactly as in the stream; a close becomes <close/>. Whitespace
 * between stanzas has no message to go in. c2s only: there is no s2s over
 * WebSocket.
 */
export function wsMessages(r: RawStream): string[] {
  const items = new Items();
  items.add("xmlns", [NS_FRAMING], "'");
  if (r.headerDialback) items.add("xmlns:db", [NS_DIALBACK], "'");
  for (const d of r.headerDecls) if (d.prefix !== null) items.add(`xmlns:${d.prefix}`, [resolveNs(r.kind, d.ns)], d.quote);
  for (const el of r.stanzas) {
    if (el.prefix !== null && el.prefix !== "xml" && el.bind === "header") items.add(`xmlns:${el.prefix}`, [resolveNs(r.kind, el.bindNs)], "'");
  }
  items.add("to", ["example.com"], "'");
  if (r.headerFrom) items.add("from", ["u@example.com"], '"');
  if (r.headerVersion) items.add("version", ["1.0"], "'");
  if (r.headerLang !== null) items.add("xml:lang", r.headerLang.value, r.headerLang.quote);
  const out = [(r.xmlDecl ?? "") + startTag("open", items.list, r.headerSeps, 0, "/>")];
  for (const el of r.stanzas) out.push(renderEl(el, r.kind, true));
  if (r.close) out.push(`<close xmlns='${NS_FRAMING}'/>`);
  return out;
}

/** Features of a stream, for counting what a run covered. */
export function features(r: RawStream): string[] {
  const f = new Set<string>();
  f.add(r.kind);
  if (r.headerLang !== null) f.add("xml:lang on header");
  if (r.close) f.add("stream close");
  if (r.stanzas.length > 1) f.add("several stanzas");
  if (r.headerDefault !== "content" || r.streamPrefix === null) f.add("header default namespace not the stream's");
  const visit = (el: RawEl, top: boolean): void => {
    if (top && el.prefix !== null) f.add(`prefixed stanza, declared ${el.bind === "scope" ? "in scope (or unbound)" : `on the ${el.bind === "here" ? "stanza" : "header"}`}`);
    if (top && el.defaultNs === "content") f.add("explicit default namespace = the stream's");
    if (top && el.defaultNs !== null && el.defaultNs !== "content") f.add("stanza redefines the default namespace");
    if (!top && el.defaultNs !== null) f.add("nested default-namespace redefinition");
    for (const a of el.attrs) {
      if (a.local === "xml:lang") f.add(top ? "xml:lang on stanza" : "xml:lang on child");
      else if (a.prefix !== null && top) f.add("prefixed attribute on stanza");
      if (a.value.some((p) => p.startsWith("&"))) f.add("references in attribute values");
      if (a.value.some((p) => /^[\t\n\r]/.test(p))) f.add("literal whitespace in attribute values");
    }
    if (el.rotate > 0 && el.attrs.length > 0) f.add("declarations after attributes");
    for (const c of el.children) if (!("text" in c)) visit(c, false);
  };
  for (const el of r.stanzas) visit(el, true);
  return [...f];
}
