// The StanzaView implementation over a frame's bytes. Construction is cheap
// (no parsing); the head is read on first attribute access, the ltx tree on
// first tree() call. Policy stages share one instance per stanza.
//
// Everything a stage reads is the stanza as the server's parser will hold it
// (docs/stream-view.md): names by namespace whatever prefix was written, the
// stream header's declarations in scope, `xml:lang` defaulted from the
// stream, and `from` stamped with the bound JID on a c2s stream.

import { parse as ltxParse, type Element } from "ltx";
import { A_FROM, A_ID, A_TO, A_TYPE, A_XML_LANG, ParsedHead, readFirstChild, readHead, type Head } from "./head.js";
import { checkAttributes, elementName, NamespaceProblem, NsScope, NS_XML, NS_XMLNS, RecordAttributes, type ExpandedName } from "./namespaces.js";
import type { StanzaKind, StanzaView } from "./stanza-view.js";
import { NS_STREAMS } from "./stream-error.js";

export const NS_CLIENT = "jabber:client";
export const NS_SERVER = "jabber:server";

/** The language a stream has when its header names none (the server's default). */
export const DEFAULT_LANG = "en";

/**
 * What one stream header establishes for the stanzas that follow it, in one
 * direction: the content namespace, the namespace declarations in scope, the
 * stream's xml:lang, and whether the server stamps `from` (c2s, peer side).
 */
export class StreamContext {
  readonly contentNs: string;
  readonly scope: NsScope;
  readonly lang: string;
  /** The server overwrites `from` on content stanzas with the session's bound JID (c2s peer streams). */
  readonly stampsFrom: boolean;

  constructor(contentNs: string, scope: NsScope, lang: string, stampsFrom: boolean) {
    this.contentNs = contentNs;
    this.scope = scope;
    this.lang = lang;
    this.stampsFrom = stampsFrom;
  }

  /** The usual header: default namespace `contentNs`, `stream` prefix bound, language "en". */
  static plain(contentNs: string, stampsFrom = false): StreamContext {
    const cached = stampsFrom ? PLAIN_STAMPED : PLAIN;
    let ctx = cached.get(contentNs);
    if (ctx === undefined) {
      const header = readHead(Buffer.from(`<stream:stream xmlns='${contentNs}' xmlns:stream='${NS_STREAMS}'>`), 0, 1 << 10)!;
      ctx = new StreamContext(contentNs, NsScope.EMPTY.enter(header) as NsScope, DEFAULT_LANG, stampsFrom);
      cached.set(contentNs, ctx);
    }
    return ctx;
  }

  /**
   * A context for a stream header just read: one equal to it that is already
   * shared when there is one (nearly every header declares the same
   * namespaces and language), else a new one, shared from then on. A context
   * is immutable, so sessions share it safely; a session that kept its own
   * held ~0.3 KiB per stream (the scope, its map, the decoded URIs).
   */
  static shared(contentNs: string, scope: NsScope, lang: string, stampsFrom: boolean): StreamContext {
    const key = `${contentNs}\u0000${stampsFrom ? "1" : "0"}\u0000${lang}\u0000${scope.key}`;
    let ctx = SHARED_CONTEXTS.get(key);
    if (ctx === undefined) {
      ctx = new StreamContext(contentNs, scope, lang, stampsFrom);
      // Bounded: a peer sending a new header each time only starts the table over.
      if (SHARED_CONTEXTS.size >= SHARED_MAX) SHARED_CONTEXTS.clear();
      SHARED_CONTEXTS.set(key, ctx);
    }
    return ctx;
  }
}
const PLAIN = new Map<string, StreamContext>();
const PLAIN_STAMPED = new Map<string, StreamContext>();
const SHARED_CONTEXTS = new Map<string, StreamContext>();
const SHARED_MAX = 256;

const MESSAGE = Buffer.from("message", "latin1");
const PRESENCE = Buffer.from("presence", "latin1");

function isNameEnd(b: number | undefined): boolean {
  return b === 0x20 || b === 0x3e || b === 0x2f || b === 0x09 || b === 0x0a || b === 0x0d;
}

/** True when data[at…] spells `word` and the name ends right after it. */
function nameIs(data: Buffer, at: number, word: Buffer): boolean {
  const n = word.length;
  for (let k = 1; k < n; k++) if (data[at + k] !== word[k]) return false;
  return isNameEnd(data[at + n]);
}

/**
 * Kind from the name bytes (for shaping and metrics on the fast path): an
 * unprefixed message, presence or iq is judged from its first bytes alone; a
 * prefixed name is resolved against the stream's declarations, so writing
 * `<c:message xmlns:c='jabber:client'>` is charged like `<message>`.
 */
export function kindOf(data: Buffer, start: number, end: number, ctx: StreamContext): StanzaKind {
  const at = start + 1;
  const c = data[at];
  if (c === 0x6d && nameIs(data, at, MESSAGE)) return "message";
  if (c === 0x70 && nameIs(data, at, PRESENCE)) return "presence";
  if (c === 0x69 && data[at + 1] === 0x71 && isNameEnd(data[at + 2])) return "iq";
  // Any other spelling: only a prefixed name can still be a stanza.
  let i = at;
  while (i < end && data[i] !== 0x3a && !isNameEnd(data[i])) i++;
  if (data[i] !== 0x3a) return "other";
  return new Stanza(data, ctx, undefined, start, end).kind;
}

const UNRESOLVED = 0;
const RESOLVED = 1;
const REFUSED = 2;

export class Stanza implements StanzaView {
  // Fields are written by the constructor and by #point() only (a borrowed
  // view is re-pointed at each stanza; see borrow()).
  /** The chunk the element lies in, and where: bytes() is cut from it only when asked for. */
  #data: Buffer;
  #start: number;
  #end: number;
  #bytes: Buffer | undefined;
  #ctx: StreamContext;
  #sessionJid: string | undefined;
  /** The start tag object, read into again when the view is re-pointed. */
  #ownHead: ParsedHead | undefined;
  /** A borrowed shared view that has not been given back yet. */
  #lent = false;
  // The start tag, resolved once (#resolve): plain fields, so every getter
  // after the first is a field load.
  #state = UNRESOLVED;
  #head: ParsedHead | undefined;
  /** Scope inside the element (its own declarations applied). */
  #scope: NsScope | undefined;
  #ns = "";
  #local = "";
  #kind: StanzaKind = "other";
  #problem: string | null = null;
  #tree: Element | null | undefined;
  #child: ExpandedName | null | undefined;

  /** True: `sessionJid` only fills a missing `from` (trace --from), it overrides nothing. */
  #fillOnly: boolean;

  /**
   * @param bytes exactly the element's bytes (or the chunk holding them, with start/end)
   * @param ctx the stream it arrived on; a bare content namespace means the usual
   *   header (and, with `sessionJid`, a c2s stream whose `from` is stamped)
   * @param sessionJid the bound full JID of the c2s session that sent the stanza:
   *   the server sets `from` to it on every stanza in the stream's namespace,
   *   whatever the client wrote (so policy keyed on `from` cannot be dodged)
   */
  constructor(bytes: Buffer, ctx: StreamContext | string, sessionJid?: string, start = 0, end = bytes.length, fillOnly = false) {
    this.#fillOnly = fillOnly;
    this.#data = bytes;
    this.#start = start;
    this.#end = end;
    this.#bytes = start === 0 && end === bytes.length ? bytes : undefined;
    this.#ctx = typeof ctx === "string" ? StreamContext.plain(ctx, sessionJid !== undefined && !fillOnly) : ctx;
    this.#sessionJid = sessionJid;
  }

  /**
   * A view of the element data[start, end) inside a larger chunk (a read
   * buffer holding several frames), without copying or slicing it.
   */
  static within(data: Buffer, start: number, end: number, ctx: StreamContext | string, sessionJid?: string): Stanza {
    return new Stanza(data, ctx, sessionJid, start, end);
  }

  /**
   * Like within(), but a view shared by the whole process, re-pointed at this
   * element: no allocation per stanza. The caller must give it back with
   * release() once nothing reads it any more (everything that judges a
   * stanza does so synchronously, inside the frame callback; no stage keeps
   * a view: docs/stream-view.md). While it is lent, borrow() makes a new view.
   */
  static borrow(data: Buffer, start: number, end: number, ctx: StreamContext): Stanza {
    const shared = SHARED;
    if (shared.#lent) return new Stanza(data, ctx, undefined, start, end);
    shared.#lent = true;
    shared.#point(data, start, end, ctx, undefined);
    return shared;
  }

  /** borrow() with a c2s session's bound JID (see the constructor). */
  static borrowStamped(data: Buffer, start: number, end: number, ctx: StreamContext, sessionJid: string | undefined): Stanza {
    const shared = SHARED_STAMPED;
    if (shared.#lent) return new Stanza(data, ctx, sessionJid, start, end);
    shared.#lent = true;
    shared.#point(data, start, end, ctx, sessionJid);
    return shared;
  }

  /** Give a borrowed view back (a view from anywhere else: nothing happens). */
  release(): void {
    if (!this.#lent) return;
    this.#lent = false;
    // Drop what would keep the chunk or a tree alive until the next stanza.
    this.#data = EMPTY;
    this.#bytes = undefined;
    this.#tree = undefined;
  }

  #point(data: Buffer, start: number, end: number, ctx: StreamContext, sessionJid: string | undefined): void {
    this.#data = data;
    this.#start = start;
    this.#end = end;
    this.#bytes = start === 0 && end === data.length ? data : undefined;
    this.#ctx = ctx;
    this.#sessionJid = sessionJid;
    this.#fillOnly = false;
    this.#state = UNRESOLVED;
    this.#head = undefined;
    this.#scope = undefined;
    this.#ns = "";
    this.#local = "";
    this.#kind = "other";
    this.#problem = null;
    this.#tree = undefined;
    this.#child = undefined;
  }

  /** A stanza whose `from`, when it has none, reads as `from` (what `trace --from` stamps). */
  static withDefaultFrom(bytes: Buffer, streamNs: string, from: string | undefined): Stanza {
    return new Stanza(bytes, streamNs, from, 0, bytes.length, true);
  }

  /** Exactly the element's bytes (a subarray of the chunk, made on first use). */
  get bytes(): Buffer {
    return (this.#bytes ??= this.#data.subarray(this.#start, this.#end));
  }

  /** The stream this stanza arrived on. */
  get context(): StreamContext {
    return this.#ctx;
  }

  /** The start tag as written (qualified names, raw attributes). */
  get head(): Head {
    if (this.#state === UNRESOLVED) this.#resolve();
    return this.#head!;
  }

  #resolve(): void {
    const head = (this.#ownHead ??= new ParsedHead());
    // Frames are well-formed, so a missing head means a bug upstream of us.
    if (!head.read(this.#data, this.#start, this.#end, this.#start)) throw new Error("frame has no start tag");
    this.#head = head;
    if (head.nsPlain) {
      // The common stanza: no prefix, no declaration; the stream's scope as it is.
      this.#state = RESOLVED;
      const scope = (this.#scope = this.#ctx.scope);
      const ns = (this.#ns = scope.defaultNs ?? "");
      const local = (this.#local = head.name);
      if (ns === this.#ctx.contentNs && (local === "message" || local === "presence" || local === "iq")) this.#kind = local;
      return;
    }
    this.#state = REFUSED;
    const scope = this.#ctx.scope.enter(head);
    if (scope instanceof NamespaceProblem) return void (this.#problem = scope.detail);
    const name = elementName(head.name, scope);
    if (name instanceof NamespaceProblem) return void (this.#problem = name.detail);
    const bad = checkAttributes(head, scope);
    if (bad !== null) return void (this.#problem = bad.detail);
    this.#state = RESOLVED;
    this.#scope = scope;
    this.#ns = name.ns;
    const local = (this.#local = name.local);
    if (name.ns === this.#ctx.contentNs && (local === "message" || local === "presence" || local === "iq")) this.#kind = local;
  }

  /** The start tag when it resolved (undefined when the server's parser refuses it). */
  #resolvedHead(): ParsedHead | undefined {
    if (this.#state === UNRESOLVED) this.#resolve();
    return this.#state === RESOLVED ? this.#head : undefined;
  }

  /**
   * Why the server's parser would refuse this element's start tag (an unbound
   * prefix, an illegal declaration), or null. Such a stanza has no name.
   */
  get namespaceProblem(): string | null {
    if (this.#state === UNRESOLVED) this.#resolve();
    return this.#problem;
  }

  get name(): string {
    if (this.#state === UNRESOLVED) this.#resolve();
    return this.#local;
  }

  get xmlns(): string {
    if (this.#state === UNRESOLVED) this.#resolve();
    return this.#ns;
  }

  get kind(): StanzaKind {
    if (this.#state === UNRESOLVED) this.#resolve();
    return this.#kind;
  }

  get lang(): string {
    return this.#resolvedHead()?.attrOf(A_XML_LANG) ?? this.#ctx.lang;
  }

  attr(name: string): string | undefined {
    const head = this.#resolvedHead();
    if (head === undefined) return undefined;
    if (name.indexOf(":") < 0) {
      // `xmlns` as the server holds it: set only when not the stream's namespace.
      if (name === "xmlns") return this.#ns === this.#ctx.contentNs ? undefined : this.#ns;
      return head.attr(name);
    }
    // Only the xml prefix is fixed; any other prefixed name is not a plain attribute.
    if (name === "xml:lang") return head.attr(name) ?? this.#ctx.lang;
    return name.startsWith("xml:") ? head.attr(name) : undefined;
  }

  /**
   * The attributes as the server holds them, in document order: namespace
   * declarations and namespaced attributes left out, `xmlns` first when the
   * element is not in the stream's namespace.
   */
  attrs(): Array<[string, string]> {
    const head = this.#resolvedHead();
    if (head === undefined) return [];
    const out: Array<[string, string]> = [];
    if (this.#ns !== this.#ctx.contentNs) out.push(["xmlns", this.#ns]);
    const names = head.attrNames;
    for (let k = 0; k < names.length; k++) {
      const n = names[k]!;
      if (n === "xmlns" || n.startsWith("xmlns:") || (n.includes(":") && !n.startsWith("xml:"))) continue;
      out.push([n, head.attrAt(k)]);
    }
    return out;
  }

  get to(): string | undefined {
    return this.#resolvedHead()?.attrOf(A_TO);
  }

  get from(): string | undefined {
    const head = this.#resolvedHead();
    const jid = this.#sessionJid;
    if (this.#fillOnly) return head?.attrOf(A_FROM) ?? jid;
    // The server's router: `from` := the bound JID on every content stanza of a
    // c2s stream, whatever was written (nothing before the session is bound).
    if (this.#ctx.stampsFrom && this.#kind !== "other") return jid;
    return head?.attrOf(A_FROM);
  }

  get type(): string | undefined {
    return this.#resolvedHead()?.attrOf(A_TYPE);
  }

  get effectiveType(): string | undefined {
    const t = this.type;
    if (t !== undefined) return t;
    const kind = this.kind;
    return kind === "message" ? "normal" : kind === "presence" ? "available" : undefined;
  }

  get id(): string | undefined {
    return this.#resolvedHead()?.attrOf(A_ID);
  }

  get firstChildName(): string | undefined {
    return this.#firstChild()?.local;
  }

  get firstChildXmlns(): string | undefined {
    return this.#firstChild()?.ns;
  }

  #firstChild(): ExpandedName | null {
    if (this.#child === undefined) {
      this.#child = null;
      const head = this.#resolvedHead();
      if (head !== undefined && !head.selfClosing) {
        const child = readFirstChild(this.#data, this.#start + head.end, this.#end);
        if (child !== null) {
          const scope = this.#scope!.enter(child);
          const name = scope instanceof NamespaceProblem ? scope : elementName(child.name, scope);
          if (!(name instanceof NamespaceProblem)) this.#child = name;
        }
      }
    }
    return this.#child;
  }

  /**
   * The element as a tree the way the server holds it: every name local,
   * `xmlns` on the root and wherever the namespace changes, no prefixes or
   * declarations. Null when the bytes do not parse or a prefix is unbound.
   */
  tree(): Element | null {
    if (this.#tree === undefined) {
      this.#tree = null;
      if (this.#resolvedHead() !== undefined) {
        try {
          this.#tree = normalise(ltxParse(this.bytes.toString("utf8")), this.#ctx.scope, undefined);
        } catch {
          this.#tree = null;
        }
      }
    }
    return this.#tree;
  }
}

const EMPTY = Buffer.alloc(0);
const PLAIN_CLIENT = StreamContext.plain(NS_CLIENT);
/** The views Stanza.borrow() and borrowStamped() lend out. */
const SHARED = new Stanza(EMPTY, PLAIN_CLIENT);
const SHARED_STAMPED = new Stanza(EMPTY, PLAIN_CLIENT);

/**
 * Give the freshly parsed `el` (and its subtree) expanded names in place (see
 * Stanza.tree); throws the NamespaceProblem the server's parser would stop at.
 * An element that writes no prefix and declares nothing is left as parsed,
 * but for `xmlns` (kept only where the namespace changes).
 */
function normalise(el: Element, parentScope: NsScope, parentNs: string | undefined): Element {
  const attrs = el.attrs as Record<string, string>;
  let scope = parentScope;
  let plain = el.name.indexOf(":") < 0;
  for (const k in attrs) {
    if (k.indexOf(":") >= 0 && !(k.charCodeAt(0) === 0x78 && k.startsWith("xml:"))) {
      plain = false;
      break;
    }
  }
  let ns: string;
  if (plain) {
    const own = attrs.xmlns;
    if (own !== undefined && (own === NS_XML || own === NS_XMLNS)) throw new NamespaceProblem(`default namespace bound to reserved ${own}`);
    ns = own ?? scope.defaultNs ?? "";
    if (own !== undefined) scope = scope.enter(new RecordAttributes(attrs)) as NsScope;
  } else {
    const list = new RecordAttributes(attrs);
    const entered = scope.enter(list);
    if (entered instanceof NamespaceProblem) throw entered;
    scope = entered;
    const name = elementName(el.name, scope);
    if (name instanceof NamespaceProblem) throw name;
    const bad = checkAttributes(list, scope);
    if (bad !== null) throw bad;
    ns = name.ns;
    el.name = name.local;
    for (const k of list.attrNames) {
      const colon = k.indexOf(":");
      if (colon < 0) continue;
      const prefix = k.slice(0, colon);
      if (prefix !== "xml") delete attrs[k];
      else if (scope.resolve(prefix) !== NS_XML) delete attrs[k];
    }
  }
  if (ns !== parentNs) attrs.xmlns = ns;
  else delete attrs.xmlns;
  for (const c of el.children) if (typeof c !== "string") normalise(c as Element, scope, ns);
  return el;
}
