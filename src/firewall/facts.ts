// Per-run facts about one stanza, computed lazily and at most once: the
// variables Prosody's compiled handlers declare (to, from, bare_to, split_to…,
// docs/firewall.md, "The addresses a rule sees"), the payload tree (only when a condition needs it), and the
// stanza as re-serialised for copies. STRIP/INJECT switch the facts to a
// private mutable copy of the tree; the StanzaView's own tree is never touched.
import { readHead } from "../xml/head.js";
import type { StanzaView } from "../xml/stanza-view.js";
import type { BuiltinChain, CodeExpr, StanzaPath, Template, TemplatePart } from "./ast.js";
import type { OriginSession } from "./context.js";
import { bareJid, hostOf, NO_JID, splitJid, type JidForms, type JidParts } from "../xmpp/jid.js";
import { RunMemory } from "./run-memory.js";
import { findPath, prosodyForm, rootOf, type Located, type TreeForm } from "./stanza-path.js";
import { escapeXml } from "../xml/stream-error.js";
import { serializeHeld, type MutableXmlNode, type XmlNode } from "./xml.js";

const UNSET: unique symbol = Symbol("unset");
type Lazy<T> = T | typeof UNSET;

export class Facts {
  // Written only by the constructor and reset() (a rule set reuses one Facts per run).
  stanza: StanzaView;
  chain: BuiltinChain;
  origin: OriginSession | undefined;
  #hostOverride: string | undefined;
  /** The stanza is the server's own serialisation (server → client): attributes as written. */
  #fromServer: boolean;
  /** Local name: message, presence, iq. */
  name: string;
  /** The `type` attribute as written, read on first use (most runs never ask: TYPE conditions are decided by the pick). */
  #type: Lazy<string | undefined> = UNSET;

  /** The `to` attribute's forms as the server sees it (toAttr). */
  #toAttr: Lazy<JidForms> = UNSET;
  /** Prosody's `to` variable's forms (to). */
  #to: Lazy<JidForms> = UNSET;
  #from: Lazy<JidForms> = UNSET;
  /** The session's memory (FirewallContext.memory), or undefined: then #own, made on first use. */
  #memory: RunMemory | undefined;
  #own: RunMemory | undefined;
  #tree: Lazy<XmlNode | null> = UNSET;
  #modified: MutableXmlNode | undefined;
  #text: Lazy<string> = UNSET;
  #searches: Map<string, string> | undefined;

  constructor(stanza: StanzaView, chain: BuiltinChain, origin: OriginSession | undefined, host: string | undefined, fromServer = false, memory?: RunMemory) {
    this.#memory = memory;
    this.stanza = stanza;
    this.chain = chain;
    this.origin = origin;
    this.#hostOverride = host;
    this.#fromServer = fromServer;
    this.name = stanza.name;
  }

  /** The facts of another stanza, in this object: every lazy value is forgotten. */
  reset(stanza: StanzaView, chain: BuiltinChain, origin: OriginSession | undefined, host: string | undefined, fromServer: boolean, memory: RunMemory | undefined): void {
    this.#memory = memory;
    this.stanza = stanza;
    this.chain = chain;
    this.origin = origin;
    this.#hostOverride = host;
    this.#fromServer = fromServer;
    this.name = stanza.name;
    this.#type = UNSET;
    this.#toAttr = UNSET;
    this.#to = UNSET;
    this.#from = UNSET;
    this.#tree = UNSET;
    this.#modified = undefined;
    this.#text = UNSET;
    this.#searches = undefined;
  }

  get type(): string | undefined {
    if (this.#type === UNSET) this.#type = this.stanza.type;
    return this.#type;
  }

  /**
   * The `to` attribute as the server sees it: prepped, and in preroute removed
   * when it equals the sender's own bare JID (Prosody strips it before routing).
   */
  get toAttr(): string | undefined {
    return this.#toAttrForms().jid;
  }

  #toAttrForms(): JidForms {
    if (this.#toAttr === UNSET) {
      let to = this.#addr().to.of(this.stanza.to).prepped;
      // Strings are compared, not forms: after a memo clear one string may have two.
      if (to.jid !== undefined && this.chain === "preroute" && this.origin?.jid !== undefined && to.jid === this.#originBare().jid) {
        to = NO_JID;
      }
      this.#toAttr = to;
    }
    return this.#toAttr;
  }

  /** Prosody's `to` variable: the attribute, else the origin's bare JID. */
  get to(): string | undefined {
    return this.#toForms().jid;
  }

  #toForms(): JidForms {
    if (this.#to === UNSET) {
      const attr = this.#toAttrForms();
      this.#to = attr.jid === undefined && this.origin?.type === "c2s" ? this.#originBare() : attr;
    }
    return this.#to;
  }

  /** The forms of prepJid(bareJid(origin.jid)). */
  #originBare(): JidForms {
    return this.#addr().origin.of(this.origin?.jid).bareForms.prepped;
  }

  /** The run's memory of addresses: the session's, else this rule set's own. */
  #addr(): RunMemory {
    return this.#memory ?? (this.#own ??= new RunMemory());
  }

  /** `from` as the server sees it (the bound JID for c2s stanzas without one), prepped. */
  get from(): string | undefined {
    return this.#fromForms().jid;
  }

  #fromForms(): JidForms {
    if (this.#from === UNSET) this.#from = this.#addr().from.of(this.stanza.from).prepped;
    return this.#from;
  }

  get toParts(): JidParts {
    return this.#toForms().parts;
  }

  get fromParts(): JidParts {
    return this.#fromForms().parts;
  }

  /** The bare form of `to`: node@host of its parts (bareJid), the same string object while `to` stays the same. */
  get bareTo(): string | undefined {
    return this.#toForms().bare;
  }

  get bareFrom(): string | undefined {
    return this.#fromForms().bare;
  }

  /** Prosody's module.host for this stanza (see FirewallContext.host). */
  get currentHost(): string | undefined {
    if (this.#hostOverride !== undefined) return this.#hostOverride;
    if (this.chain === "deliver") return this.toParts.host;
    return hostOf(this.origin?.jid) ?? this.fromParts.host;
  }

  /**
   * An attribute as the server's stanza holds it: to/from adjusted (see
   * above), and xml:lang defaulted to the stream's language when the stanza
   * has none, as the server's parser stamps it. A stanza that comes from the
   * server (server → client) is the server's own serialisation, so its
   * xml:lang is read as written: one the server made itself has none.
   */
  attr(name: string): string | undefined {
    if (name === "to") return this.toAttr;
    if (name === "from") return this.from;
    if (name === "xml:lang" && this.#fromServer) return this.#writtenLang();
    return this.stanza.attr(name);
  }

  #writtenLang(): string | undefined {
    for (const [k, v] of this.stanza.attrs()) if (k === "xml:lang") return v;
    return undefined;
  }

  /** The payload tree: the current (possibly modified) one, parsed on first use. */
  tree(): XmlNode | null {
    if (this.#modified) return this.#modified;
    if (this.#tree === UNSET) this.#tree = (this.stanza.tree() as XmlNode | null) ?? null;
    return this.#tree;
  }

  /** How tree() records namespaces: the view's normalised tree, or the private copy in the server's form. */
  get treeForm(): TreeForm {
    return this.#modified ? "prosody" : "normalised";
  }

  /**
   * A private copy to modify (STRIP/INJECT), in the server's form (see
   * stanza-path.ts), so INJECTed elements sit in it exactly as the server
   * would hold them; null when the stanza is unparsable.
   */
  mutableTree(): MutableXmlNode | null {
    if (!this.#modified) {
      const t = this.tree();
      if (t === null) return null;
      this.#modified = prosodyForm(rootOf(t, this.stanza.xmlns), this.stanza.xmlns);
    }
    this.#text = UNSET;
    this.#searches = undefined;
    return this.#modified;
  }

  get modified(): boolean {
    return this.#modified !== undefined;
  }

  /** util.stanza find(): the stanza's own attributes as attr() reads them (no parse), the rest from the tree. */
  find(path: StanzaPath): Located | string | undefined {
    if (path.never === true) return undefined;
    if (path.steps.length === 0 && path.end.kind === "attr") return this.attr(path.end.name);
    return findPath(this.tree(), this.stanza.xmlns, path, this.treeForm);
  }

  /** A find() result as Lua's tostring() gives it: elements serialised as the server holds them. */
  stringOf(r: Located | string | undefined): string | undefined {
    if (r === undefined || typeof r === "string") return r;
    return serializeHeld(this.treeForm === "prosody" ? r.el : prosodyForm(r, this.stanza.xmlns));
  }

  /** `%SEARCH` text: tostring(stanza:find(path) or ""), cached per run. */
  search(name: string, path: StanzaPath): string {
    this.#searches ??= new Map();
    let v = this.#searches.get(name);
    if (v === undefined) {
      v = this.stringOf(this.find(path)) ?? "";
      this.#searches.set(name, v);
    }
    return v;
  }

  /**
   * The head as the server holds it: attributes in document order with `to`
   * and `from` adjusted, and `overrides` applied (undefined removes).
   */
  head(overrides: Readonly<Record<string, string | undefined>> = {}): { open: string; selfClosing: boolean; bodyStart: number } {
    const bytes = this.stanza.bytes;
    const h = readHead(bytes, 0, bytes.length);
    const attrs = new Map<string, string | undefined>();
    if (overrides.xmlns !== undefined) attrs.set("xmlns", undefined);
    for (const [k, v] of this.stanza.attrs()) attrs.set(k, v);
    attrs.set("to", this.toAttr);
    attrs.set("from", this.from);
    // The language the server's parser stamped on a stanza that named none.
    if (!attrs.has("xml:lang")) attrs.set("xml:lang", this.attr("xml:lang"));
    for (const [k, v] of Object.entries(overrides)) attrs.set(k, v);
    return { open: openTag(this.stanza.name, attrs), selfClosing: h?.selfClosing ?? true, bodyStart: h?.end ?? bytes.length };
  }

  /** True when the written head is prefixed or declares prefixes its payload may use. */
  #payloadNeedsHead(): boolean {
    const bytes = this.stanza.bytes;
    const h = readHead(bytes, 0, bytes.length);
    return h === null || h.name.includes(":") || h.attrNames.some((n) => n.startsWith("xmlns:"));
  }

  /** Prosody's stanza:top_tag(). */
  topTag(): string {
    return `${this.head().open}>`;
  }

  /**
   * The stanza as the server holds it, re-serialised for copies (COPY,
   * REDIRECT, FORWARD, `$(stanza)`): adjusted head, original payload bytes
   * unless STRIP/INJECT changed the payload.
   */
  serialize(overrides: Readonly<Record<string, string | undefined>> = {}): string {
    if (Object.keys(overrides).length === 0 && this.#text !== UNSET) return this.#text;
    const { open, selfClosing, bodyStart } = this.head(overrides);
    const name = this.stanza.name;
    let out: string;
    if (this.#modified) {
      const inner = this.#modified.children.map((c) => serializeHeld(c)).join("");
      out = inner === "" ? `${open}/>` : `${open}>${inner}</${name}>`;
    } else if (selfClosing) {
      out = `${open}/>`;
    } else if (this.#payloadNeedsHead()) {
      // The payload's prefixes were declared on a head that is rebuilt
      // without them: serialise it from the tree instead, as the server holds it.
      const t = this.tree();
      const inner = t === null ? "" : prosodyForm(rootOf(t, this.stanza.xmlns), this.stanza.xmlns).children.map((c) => serializeHeld(c)).join("");
      out = inner === "" ? `${open}/>` : `${open}>${inner}</${name}>`;
    } else {
      out = `${open}>${this.stanza.bytes.toString("utf8", bodyStart)}`;
    }
    if (Object.keys(overrides).length === 0) this.#text = out;
    return out;
  }

  /**
   * The stanza as the server writes it (`$(stanza)`, Lua's tostring): the
   * head as in copies, the payload written from the tree the way the server
   * writes its own (single quotes, every special character escaped, xmlns
   * where it differs from the parent's). Only the order of attributes may
   * differ, which in Lua is arbitrary.
   */
  held(): string {
    const t = this.tree();
    if (t === null) return this.serialize();
    const { open } = this.head();
    const root = this.#modified ?? prosodyForm(rootOf(t, this.stanza.xmlns), this.stanza.xmlns);
    const inner = root.children.map((c) => serializeHeld(c)).join("");
    return inner === "" ? `${open}/>` : `${open}>${inner}</${this.stanza.name}>`;
  }

  /**
   * The stanza after STRIP/INJECT, for `rewrite`: its own attributes as
   * written (nothing stamped or prepped), names without prefixes (the
   * payload is serialised from the normalised tree, so the head must not
   * declare a default namespace its children would fall into).
   */
  rewrite(): string | undefined {
    if (!this.#modified) return undefined;
    const name = this.stanza.name;
    const inner = this.#modified.children.map((c) => serializeHeld(c)).join("");
    const open = openTag(name, new Map(this.stanza.attrs()));
    return inner === "" ? `${open}/>` : `${open}>${inner}</${name}>`;
  }


  // -------------------------------------------------------------------------
  // Expressions.

  #code(code: CodeExpr): string | undefined {
    const o = this.origin;
    switch (code.kind) {
      case "session":
        switch (code.field) {
          case "ip":
            return o?.ip;
          case "type":
            return o?.type;
          case "host":
            return o?.type === "c2s" ? hostOf(o.jid) : o ? this.currentHost : undefined;
          case "username":
            return o?.type === "c2s" ? splitJid(o.jid).node : undefined;
          case "full_jid":
            return o?.type === "c2s" ? o.jid : undefined;
        }
        return undefined;
      case "stanza":
        return this.held();
      case "top_tag":
        return this.topTag();
      case "stanza_name":
        return this.name;
      case "stanza_attr":
        return this.attr(code.name);
    }
  }

  /** Evaluate a `$<…>`/`$(…)` template to a string, as Prosody's meta() does. */
  expand(t: Template): string {
    const parts = t.parts;
    // One part (`$<@from|bare>`, the usual LIMIT key): its value as it is, no concatenation.
    if (parts.length === 1 && parts[0]!.kind === "path") return this.#pathValue(parts[0]!);
    let out = "";
    for (let k = 0; k < parts.length; k++) {
      const part = parts[k]!;
      if (part.kind === "text") out += part.value;
      // tostring(nil) is "nil" in Lua.
      else if (part.kind === "code") out += this.#code(part.code) ?? "nil";
      else out += this.#pathValue(part);
    }
    return out;
  }

  /** One `$<path|funcs>` part of a template. */
  #pathValue(part: Extract<TemplatePart, { kind: "path" }>): string {
    const { path, funcs } = part;
    let v: string | undefined;
    let k = 0;
    const own = part.address;
    if (own !== undefined) {
      // `to` is Prosody's variable (the attribute, else the origin's bare
      // JID); `from` the attribute as attr() reads it. A first function is
      // read from the role's remembered forms (the key of `LIMIT … on
      // $<@from|bare>` is then the same string object stanza after stanza).
      const to = own === "to";
      v = to ? this.to : this.from;
      if (funcs.length > 0 && v !== undefined) {
        const f = funcs[0]!;
        v = f === "bare" ? (to ? this.bareTo : this.bareFrom) : (to ? this.toParts : this.fromParts)[f];
        k = 1;
      }
    } else {
      v = this.stringOf(this.find(path));
    }
    // splitJid and bareJid are memoised: a session's own JID gives back the
    // same string every time (cheap as a LIMIT key), not a new one per stanza.
    for (; k < funcs.length; k++) {
      if (v === undefined) break;
      const f = funcs[k]!;
      v = f === "bare" ? bareJid(v) : splitJid(v)[f];
    }
    return v ?? part.fallback;
  }
}

/** `<name k='v'…` (no closing bracket), skipping undefined values. */
function openTag(name: string, attrs: ReadonlyMap<string, string | undefined>): string {
  let open = `<${name}`;
  for (const [k, v] of attrs) if (v !== undefined) open += ` ${k}='${escapeXml(v)}'`;
  return open;
}
