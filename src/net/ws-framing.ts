// RFC 7395 framing, both ways, as pure translations (docs/websocket.md).
//
// Over WebSocket an XMPP stream has no byte stream: every message holds one
// complete XML element, the stream header is an <open/> element and the end
// tag a <close/> element, both in the framing namespace. The session reads a
// byte stream, so each way is translated at the edge:
//
// - in (peer → server): an <open/> becomes a c2s stream header built from its
//   attributes, a <close/> becomes </stream:stream>, and any other element
//   goes through byte for byte. What comes out is exactly what the session
//   frames, tracks and judges, and exactly what the server's c2s port reads,
//   so the proxy and the server read the same bytes.
// - out (server → peer): the stream header becomes an <open/>, the end tag a
//   <close/>, whitespace keepalives are dropped, and each top-level element
//   gets the namespace declarations it inherited from the server's stream
//   header (the default namespace, `stream:`), so that it means on its own
//   what it meant inside the stream.

import { Framer, FRAME_CLOSE, FRAME_HEADER, FRAME_STANZA, type FrameKind, type FramerLimits } from "../xml/framer.js";
import type { ErrorCode, ProxyError } from "../errors.js";
import { readHead, type Head } from "../xml/head.js";
import { elementName, NamespaceProblem, NsScope } from "../xml/namespaces.js";
import { NS_CLIENT } from "../xml/stanza.js";
import { escapeXml, NS_STREAMS, STREAM_CLOSE } from "../xml/stream-error.js";
import { checkXmlDeclaration, headerElementStart } from "../xml/stream-header.js";

export const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";

/** The message that ends the stream toward the peer. */
export const CLOSE_MESSAGE = `<close xmlns='${NS_FRAMING}'/>`;

const STREAM_CLOSE_BYTES = Buffer.from(STREAM_CLOSE, "latin1");

/** Attributes of <open/> that carry over to the stream header and back, in this order. */
const OPEN_ATTRIBUTES = ["to", "from", "id", "version", "xml:lang"] as const;
/** The peer's header never names the stream: the server does. */
const PEER_HEADER_ATTRIBUTES = ["to", "from", "version", "xml:lang"] as const;

const LT = 0x3c, GT = 0x3e, SLASH = 0x2f, EQ = 0x3d, COLON = 0x3a, QMARK = 0x3f;

function isWs(b: number | undefined): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

// ---- peer → server ---------------------------------------------------------

export const MSG_ELEMENT = 1;
export const MSG_OPEN = 2;
export const MSG_CLOSE = 3;
export const MSG_EMPTY = 4;
export const MSG_BAD = 5;
export type MessageKind = typeof MSG_ELEMENT | typeof MSG_OPEN | typeof MSG_CLOSE | typeof MSG_EMPTY | typeof MSG_BAD;

/**
 * Reads the peer's messages one at a time. After classify(), the fields say
 * what to hand the session: `bytes[start, end)` (the element, or the header
 * or end tag an <open/> or <close/> became), or the refusal.
 */
export class InboundFraming {
  bytes: Buffer = STREAM_CLOSE_BYTES;
  start = 0;
  end = 0;
  /** MSG_BAD: why. */
  code: ErrorCode = "XPX_ERR_WS_FRAMING";
  detail = "";
  readonly #limits: FramerLimits;

  constructor(limits: FramerLimits) {
    this.#limits = limits;
  }

  /**
   * One text message. Whitespace around the element is dropped (it means
   * nothing in a document); a message of nothing but whitespace is MSG_EMPTY.
   */
  classify(msg: Buffer): MessageKind {
    let s = 0;
    let e = msg.length;
    while (s < e && isWs(msg[s])) s++;
    while (e > s && isWs(msg[e - 1])) e--;
    if (s === e) return MSG_EMPTY;
    this.bytes = msg;
    this.start = s;
    this.end = e;
    if (msg[s] !== LT) return MSG_ELEMENT; // the session's framer refuses it as it would on TCP
    let at = s;
    if (msg[s + 1] === QMARK) {
      // A message is a document, so it may open with an XML declaration (and
      // nothing else before its element): check it, then drop it.
      if (!isXmlDeclaration(msg, s, e)) return this.#bad("XPX_ERR_XML_RESTRICTED", "processing instruction");
      const close = msg.indexOf("?>", s, "latin1");
      at = close < 0 || close >= e ? e : close + 2;
      while (at < e && isWs(msg[at])) at++;
      if (at >= e || msg[at] !== LT || msg[at + 1] === QMARK || msg[at + 1] === 0x21) return this.#bad("XPX_ERR_WS_FRAMING", "no element after the XML declaration");
      const problem = checkXmlDeclaration(msg, s, at);
      if (problem !== null) return this.#bad(problem.code, problem.detail);
      this.start = at;
    }
    const local = localName(msg, at, e);
    if (local !== "open" && local !== "close") return MSG_ELEMENT;
    return this.#framing(msg, at, e, local);
  }

  /** A candidate <open/> or <close/>: a well-formed element in the framing namespace, alone in its message. */
  #framing(msg: Buffer, at: number, e: number, local: "open" | "close"): MessageKind {
    const problem = wellFormedAlone(msg.subarray(at, e), this.#limits);
    if (problem !== null) return this.#bad(problem.code, problem.message);
    const head = readHead(msg, at, e);
    if (head === null) return this.#bad("XPX_ERR_XML_NOT_WELL_FORMED", `<${local}> is not a start tag`);
    if (head.duplicate !== null) return this.#bad("XPX_ERR_XML_DUPLICATE_ATTRIBUTE", head.duplicate);
    const scope = NsScope.EMPTY.enter(head);
    if (scope instanceof NamespaceProblem) return this.#bad("XPX_ERR_XML_NAMESPACE", scope.detail);
    const name = elementName(head.name, scope);
    if (name instanceof NamespaceProblem) return this.#bad("XPX_ERR_XML_NAMESPACE", name.detail);
    if (name.ns !== NS_FRAMING) return MSG_ELEMENT;
    if (!head.selfClosing && head.end !== e - (head.name.length + 3)) {
      // <open ...></open> is the same element; anything inside it is not framing.
      return this.#bad("XPX_ERR_WS_FRAMING", `<${head.name}> with content`);
    }
    if (local === "close") {
      this.bytes = STREAM_CLOSE_BYTES;
      this.start = 0;
      this.end = STREAM_CLOSE_BYTES.length;
      return MSG_CLOSE;
    }
    const header = peerHeader(head);
    this.bytes = header;
    this.start = 0;
    this.end = header.length;
    return MSG_OPEN;
  }

  #bad(code: ErrorCode, detail: string): MessageKind {
    this.code = code;
    this.detail = detail;
    return MSG_BAD;
  }
}

function isXmlDeclaration(msg: Buffer, s: number, e: number): boolean {
  return e - s > 6 && msg.toString("latin1", s, s + 5) === "<?xml" && isWs(msg[s + 5]);
}

/** The local part of the name of the element starting at msg[at] ('<'). */
function localName(msg: Buffer, at: number, end: number): string {
  let i = at + 1;
  let local = i;
  while (i < end) {
    const b = msg[i]!;
    if (isWs(b) || b === GT || b === SLASH) break;
    if (b === COLON) local = i + 1;
    i++;
  }
  // Only two names matter; anything longer is neither.
  return i - local <= 5 ? msg.toString("latin1", local, i) : "";
}

/**
 * The c2s stream header an <open/> stands for: the streams prefix and the
 * client namespace as default, and the open's own addressing, version and
 * language. Nothing else the open declares carries over: each WebSocket
 * message is a document of its own, so a prefix declared on <open/> is not in
 * scope for the stanzas after it (they must declare what they use).
 */
function peerHeader(open: Head): Buffer {
  let out = `<stream:stream xmlns='${NS_CLIENT}' xmlns:stream='${NS_STREAMS}'`;
  for (const name of PEER_HEADER_ATTRIBUTES) {
    const value = open.attr(name);
    if (value !== undefined) out += ` ${name}='${escapeXml(value)}'`;
  }
  return Buffer.from(out + ">", "utf8");
}

const VALIDATION_HEADER = Buffer.from(`<stream:stream xmlns:stream='${NS_STREAMS}'>`, "latin1");

/**
 * Null when `element` is exactly one well-formed element under the framer's
 * rules (restricted XML, UTF-8, entities, limits), else why not. Used for the
 * few messages that the proxy rewrites rather than forwards, so that what it
 * builds from them was read from valid XML.
 */
function wellFormedAlone(element: Buffer, limits: FramerLimits): ProxyError | { code: ErrorCode; message: string } | null {
  let frames = 0;
  let whole = false;
  let error: ProxyError | null = null;
  const framer = new Framer({
    onFrame(kind: FrameKind, _data: Buffer, start: number, end: number): void {
      if (kind === FRAME_HEADER) return;
      frames++;
      whole = kind === FRAME_STANZA && end - start === element.length;
    },
    onError(e: ProxyError): void {
      error = e;
    },
  }, limits);
  framer.write(VALIDATION_HEADER);
  framer.write(element);
  if (error !== null) return error;
  if (frames !== 1 || !whole || !framer.atBoundary) return { code: "XPX_ERR_WS_FRAMING", message: "not exactly one element" };
  return null;
}

// ---- server → peer -----------------------------------------------------------

interface Declaration {
  /** `xmlns` or `xmlns:p`, as the header wrote it. */
  readonly name: string;
  /** The bytes to insert: ` xmlns:p='uri'`. */
  readonly text: Buffer;
  /** `p:` for a prefix (null for the default namespace): only elements that contain it need the declaration. */
  readonly needle: Buffer | null;
  // The first `needle` at or after scanFrom in scanBuf is at scanPos (-1: none).
  scanBuf: Buffer | null;
  scanFrom: number;
  scanPos: number;
}

/** What the last stream header in force declared, for the elements after it. */
export class OutboundFraming {
  #decls: Declaration[] = [];

  /**
   * The server's (or the proxy's own) stream header as an <open/>. Its
   * namespace declarations are remembered for the elements that follow.
   */
  open(data: Buffer, start: number, end: number): string {
    const head = readHead(data, headerElementStart(data, start, end), end);
    const decls: Declaration[] = [];
    let out = `<open xmlns='${NS_FRAMING}'`;
    if (head !== null) {
      for (const name of OPEN_ATTRIBUTES) {
        const value = head.attr(name);
        if (value !== undefined) out += ` ${name}='${escapeXml(value)}'`;
      }
      const names = head.attrNames;
      for (let k = 0; k < names.length; k++) {
        const name = names[k]!;
        if (name !== "xmlns" && !name.startsWith("xmlns:")) continue;
        const prefix = name.length > 6 ? name.slice(6) : "";
        decls.push({
          name,
          text: Buffer.from(` ${name}='${escapeXml(head.attrAt(k))}'`, "utf8"),
          needle: prefix === "" ? null : Buffer.from(`${prefix}:`, "utf8"),
          scanBuf: null,
          scanFrom: 0,
          scanPos: -1,
        });
      }
    }
    this.#decls = decls;
    return out + "/>";
  }

  /**
   * A top-level element that means the same on its own: the header's
   * declarations it does not make itself are added to its start tag (the
   * default namespace always, a prefix when the element's bytes contain it).
   * Returns the bytes in place when nothing is missing.
   */
  element(data: Buffer, start: number, end: number): Buffer {
    const decls = this.#decls;
    if (decls.length === 0) return data.subarray(start, end);
    const tag = scanStartTag(data, start, end);
    let insert: Buffer[] | null = null;
    let extra = 0;
    for (let k = 0; k < decls.length; k++) {
      const d = decls[k]!;
      if (tag.declared !== null && tag.declared.includes(d.name)) continue;
      if (d.needle !== null && !contains(d, data, start, end)) continue;
      (insert ??= []).push(d.text);
      extra += d.text.length;
    }
    if (insert === null) return data.subarray(start, end);
    const out = Buffer.allocUnsafe(end - start + extra);
    let o = data.copy(out, 0, start, tag.nameEnd);
    for (const part of insert) o += part.copy(out, o);
    data.copy(out, o, tag.nameEnd, end);
    return out;
  }
}

/**
 * Whether data[start, end) contains the declaration's prefix. The last match
 * found in the same buffer is remembered: elements come in order through a
 * read, so one native search serves every element before the match (no
 * search from each element to the end of a large read).
 */
function contains(d: Declaration, data: Buffer, start: number, end: number): boolean {
  if (d.scanBuf !== data || start < d.scanFrom || (d.scanPos >= 0 && d.scanPos < start)) {
    d.scanBuf = data;
    d.scanFrom = start;
    d.scanPos = data.indexOf(d.needle!, start);
  }
  return d.scanPos >= 0 && d.scanPos < end;
}

/** Where the element's name ends, and the namespace declarations its start tag makes (null: none). */
function scanStartTag(data: Buffer, start: number, end: number): { nameEnd: number; declared: string[] | null } {
  let i = start + 1;
  while (i < end) {
    const b = data[i]!;
    if (isWs(b) || b === GT || b === SLASH) break;
    i++;
  }
  const nameEnd = i;
  let declared: string[] | null = null;
  for (;;) {
    while (i < end && isWs(data[i])) i++;
    if (i >= end) break;
    const b = data[i]!;
    if (b === GT || b === SLASH) break;
    const an = i;
    while (i < end && data[i] !== EQ && !isWs(data[i])) i++;
    if (i - an >= 5 && data[an] === 0x78 && data[an + 1] === 0x6d && data[an + 2] === 0x6c && data[an + 3] === 0x6e && data[an + 4] === 0x73 &&
      (i - an === 5 || data[an + 5] === COLON)) {
      (declared ??= []).push(data.toString("latin1", an, i));
    }
    while (i < end && data[i] !== EQ) i++;
    i++;
    while (i < end && isWs(data[i])) i++;
    const quote = data[i];
    i++;
    while (i < end && data[i] !== quote) i++;
    i++;
  }
  return { nameEnd, declared };
}

/** The message for a frame the session sends the peer; null: nothing to send (whitespace). */
export function outboundMessage(framing: OutboundFraming, kind: FrameKind, data: Buffer, start: number, end: number): Buffer | string | null {
  switch (kind) {
    case FRAME_STANZA:
      return framing.element(data, start, end);
    case FRAME_HEADER:
      return framing.open(data, start, end);
    case FRAME_CLOSE:
      return CLOSE_MESSAGE;
    default:
      return null;
  }
}
