// The same stanza written the ways a namespace-aware server treats as one.
// A test writes a stanza the usual way (unprefixed, the stream's default
// namespace implied) and asks for its other forms:
//
//   plain               as written
//   prefixed            the stanza and every descendant in the content
//                       namespace get the prefix `c:`, declared on the stanza:
//                       <c:message xmlns:c='jabber:client'><c:body>…</c:body></c:message>
//   prefixed-on-header  the same names, but the prefix is declared on the
//                       stream header (streamHeader() below), not the stanza
//   explicit-ns         the stanza carries xmlns='jabber:client' itself
//
// A server that resolves namespaces (Prosody: expat with namespace
// processing) sees the same element in all four. `from` writes a forged
// sender on the top-level element in any form: on a c2s stream Prosody
// replaces it with the session's bound JID, so it must not change any verdict.
//
// Elements in other namespaces (a <query xmlns='jabber:iq:register'>, a MUC
// <x/>) and their subtrees are left alone, as is all text. The input must be
// one well-formed element without comments, CDATA or processing instructions
// (a test's own stanza; anything else throws).

export const NS_CLIENT = "jabber:client";
export const NS_SERVER = "jabber:server";
export const NS_STREAMS = "http://etherx.jabber.org/streams";

export const FORMS = ["plain", "prefixed", "prefixed-on-header", "explicit-ns"] as const;
export type Form = (typeof FORMS)[number];
/** The forms an attacker would use to slip past a proxy that reads raw names. */
export const ATTACKER_FORMS: readonly Form[] = FORMS.filter((f) => f !== "plain");

/** The prefix the prefixed forms use. */
export const PREFIX = "c";

export interface FormOptions {
  /** The stream's content namespace. Default jabber:client. */
  ns?: string;
  /** Write this `from` on the top-level element (replacing any). */
  from?: string;
}

/** True when the form needs its prefix declared on the stream header (a raw stream). */
export function needsHeaderPrefix(form: Form): boolean {
  return form === "prefixed-on-header";
}

/**
 * A stream header for `form`: for prefixed-on-header it also declares
 * xmlns:c; the others are the ordinary header. Use it for the first header
 * and for every restart (after SASL), so the prefix stays in scope.
 */
export function streamHeader(form: Form, attrs: { to?: string; from?: string; ns?: string; extra?: string } = {}): string {
  const ns = attrs.ns ?? NS_CLIENT;
  let open = `<?xml version='1.0'?><stream:stream xmlns='${ns}' xmlns:stream='${NS_STREAMS}'`;
  if (attrs.extra !== undefined) open += ` ${attrs.extra}`;
  if (needsHeaderPrefix(form)) open += ` xmlns:${PREFIX}='${ns}'`;
  if (attrs.from !== undefined) open += ` from='${escapeAttr(attrs.from)}'`;
  if (attrs.to !== undefined) open += ` to='${escapeAttr(attrs.to)}'`;
  return `${open} version='1.0'>`;
}

/** `stanza` (written the usual way) in the given form. */
export function writeAs(form: Form, stanza: string, opts: FormOptions = {}): string {
  const ns = opts.ns ?? NS_CLIENT;
  const tokens = tokenize(stanza);
  const out: string[] = [];
  // Per open element: its default namespace, the prefixes it binds, and how its end tag is written.
  const scopes: Array<{ dflt: string | undefined; prefixes: Map<string, string>; writtenName: string }> = [];
  const prefixing = form === "prefixed" || form === "prefixed-on-header";
  for (const t of tokens) {
    if (t.kind === "text") {
      out.push(t.raw);
      continue;
    }
    if (t.kind === "end") {
      const scope = scopes.pop();
      if (scope === undefined) throw new Error(`stanza-forms: unexpected </${t.name}>`);
      out.push(`</${scope.writtenName}>`);
      continue;
    }
    const top = scopes.length === 0;
    if (top && out.length > 0) throw new Error("stanza-forms: more than one top-level element");
    const parent = scopes[scopes.length - 1];
    // Inside a stanza the stream's default namespace applies until an xmlns says otherwise.
    const inherited = parent === undefined ? ns : parent.dflt;
    const declared = attrValue(t.attrs, "xmlns");
    const dflt = declared ?? inherited;
    const prefixes = new Map(parent?.prefixes ?? []);
    for (const a of t.attrs) if (a.name.startsWith("xmlns:")) prefixes.set(a.name.slice(6), a.value);
    if (prefixes.has(PREFIX) && prefixes.get(PREFIX) !== ns) {
      throw new Error(`stanza-forms: the stanza already binds the prefix ${PREFIX}: to another namespace`);
    }
    const colon = t.name.indexOf(":");
    if (colon >= 0 && !prefixes.has(t.name.slice(0, colon))) throw new Error(`stanza-forms: unbound prefix in <${t.name}>`);
    const elementNs = colon >= 0 ? prefixes.get(t.name.slice(0, colon)) : dflt;

    let name = t.name;
    const attrs = t.attrs.map((a) => ({ ...a }));
    if (prefixing && colon < 0 && elementNs === ns) name = `${PREFIX}:${t.name}`;
    if (top) {
      if (opts.from !== undefined) setAttr(attrs, "from", escapeAttr(opts.from));
      if (form === "prefixed") setAttr(attrs, `xmlns:${PREFIX}`, ns);
      if (form === "explicit-ns") {
        if (declared !== undefined && declared !== ns) throw new Error(`stanza-forms: the stanza is in ${declared}, not ${ns}`);
        setAttr(attrs, "xmlns", ns);
      }
    }
    const written = `<${name}${attrs.map((a) => ` ${a.name}=${a.quote}${a.raw}${a.quote}`).join("")}${t.selfClosing ? "/>" : ">"}`;
    out.push(written);
    if (!t.selfClosing) scopes.push({ dflt, prefixes, writtenName: name });
  }
  if (scopes.length > 0) throw new Error(`stanza-forms: <${scopes[scopes.length - 1]!.writtenName}> is not closed`);
  return out.join("");
}

/**
 * The payload namespace `ns` written with a prefix instead of a default
 * namespace: every element in `ns` gets `prefix:`, and where the stanza
 * declared xmlns='ns' it now declares xmlns:prefix='ns'. E.g. the bind
 * request `<iq type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>…`
 * becomes `<iq type='set'><b:bind xmlns:b='urn:ietf:params:xml:ns:xmpp-bind'>…`.
 * The same element to a namespace-aware server.
 */
export function prefixPayload(stanza: string, ns: string, prefix: string, streamNs = NS_CLIENT): string {
  const out: string[] = [];
  const scopes: Array<{ dflt: string | undefined; prefixes: Map<string, string>; writtenName: string }> = [];
  for (const t of tokenize(stanza)) {
    if (t.kind === "text") {
      out.push(t.raw);
      continue;
    }
    if (t.kind === "end") {
      const scope = scopes.pop();
      if (scope === undefined) throw new Error(`stanza-forms: unexpected </${t.name}>`);
      out.push(`</${scope.writtenName}>`);
      continue;
    }
    const parent = scopes[scopes.length - 1];
    const declared = attrValue(t.attrs, "xmlns");
    const dflt = declared ?? (parent === undefined ? streamNs : parent.dflt);
    const prefixes = new Map(parent?.prefixes ?? []);
    for (const a of t.attrs) if (a.name.startsWith("xmlns:")) prefixes.set(a.name.slice(6), a.value);
    if (prefixes.has(prefix) && prefixes.get(prefix) !== ns) throw new Error(`stanza-forms: the stanza already binds the prefix ${prefix}: to another namespace`);
    const colon = t.name.indexOf(":");
    const elementNs = colon >= 0 ? prefixes.get(t.name.slice(0, colon)) : dflt;
    let name = t.name;
    let attrs = t.attrs.map((a) => ({ ...a }));
    if (colon < 0 && elementNs === ns) {
      name = `${prefix}:${t.name}`;
      if (declared === ns) {
        // Declare the prefix where the default namespace was declared.
        attrs = attrs.filter((a) => a.name !== "xmlns");
        if (!prefixes.has(prefix)) setAttr(attrs, `xmlns:${prefix}`, ns);
        prefixes.set(prefix, ns);
      }
      if (!prefixes.has(prefix)) throw new Error(`stanza-forms: ${ns} is not declared on an element that could carry the prefix`);
    }
    out.push(`<${name}${attrs.map((a) => ` ${a.name}=${a.quote}${a.raw}${a.quote}`).join("")}${t.selfClosing ? "/>" : ">"}`);
    // Names resolve as in the input; unprefixed descendants in `ns` are
    // prefixed too, so none relies on the default declaration that was dropped.
    if (!t.selfClosing) scopes.push({ dflt, prefixes, writtenName: name });
  }
  return out.join("");
}

// ---- a tokenizer for the test's own, simple XML ---------------------------

interface Attr {
  name: string;
  /** The value as written between the quotes (entities kept). */
  raw: string;
  /** The value with the five predefined entities decoded. */
  value: string;
  quote: "'" | '"';
}

type Token =
  | { kind: "start"; name: string; attrs: Attr[]; selfClosing: boolean }
  | { kind: "end"; name: string }
  | { kind: "text"; raw: string };

const NAME = /^[A-Za-z_][A-Za-z0-9._:-]*/;

function tokenize(xml: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    if (lt < 0) {
      tokens.push({ kind: "text", raw: xml.slice(i) });
      break;
    }
    if (lt > i) tokens.push({ kind: "text", raw: xml.slice(i, lt) });
    if (xml.startsWith("<!", lt) || xml.startsWith("<?", lt)) throw new Error("stanza-forms: comments, CDATA and PIs are not supported");
    if (xml[lt + 1] === "/") {
      const gt = xml.indexOf(">", lt);
      if (gt < 0) throw new Error("stanza-forms: unterminated end tag");
      tokens.push({ kind: "end", name: xml.slice(lt + 2, gt).trim() });
      i = gt + 1;
      continue;
    }
    let j = lt + 1;
    const m = NAME.exec(xml.slice(j));
    if (m === null) throw new Error(`stanza-forms: bad element name at ${lt}`);
    const name = m[0];
    j += name.length;
    const attrs: Attr[] = [];
    for (;;) {
      while (/\s/.test(xml[j] ?? "")) j++;
      if (xml.startsWith("/>", j)) {
        tokens.push({ kind: "start", name, attrs, selfClosing: true });
        j += 2;
        break;
      }
      if (xml[j] === ">") {
        tokens.push({ kind: "start", name, attrs, selfClosing: false });
        j += 1;
        break;
      }
      const am = NAME.exec(xml.slice(j));
      if (am === null) throw new Error(`stanza-forms: bad attribute in <${name}> at ${j}`);
      j += am[0].length;
      while (/\s/.test(xml[j] ?? "")) j++;
      if (xml[j] !== "=") throw new Error(`stanza-forms: attribute ${am[0]} has no value`);
      j++;
      while (/\s/.test(xml[j] ?? "")) j++;
      const quote = xml[j];
      if (quote !== "'" && quote !== '"') throw new Error(`stanza-forms: attribute ${am[0]} is not quoted`);
      const close = xml.indexOf(quote, j + 1);
      if (close < 0) throw new Error(`stanza-forms: attribute ${am[0]} is not terminated`);
      const raw = xml.slice(j + 1, close);
      if (attrs.some((a) => a.name === am[0])) throw new Error(`stanza-forms: duplicate attribute ${am[0]}`);
      attrs.push({ name: am[0], raw, value: decode(raw), quote });
      j = close + 1;
    }
    i = j;
  }
  return tokens;
}

function attrValue(attrs: readonly Attr[], name: string): string | undefined {
  return attrs.find((a) => a.name === name)?.value;
}

/** Set (or replace) an attribute; `raw` must already be escaped for single quotes. */
function setAttr(attrs: Attr[], name: string, raw: string): void {
  const a: Attr = { name, raw, value: decode(raw), quote: "'" };
  const k = attrs.findIndex((x) => x.name === name);
  if (k >= 0) attrs[k] = a;
  else attrs.push(a);
}

function decode(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|apos);/g, (_, e: string) => ({ lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" })[e]!);
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/'/g, "&apos;");
}
