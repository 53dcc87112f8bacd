// Incremental XMPP stream framer on raw Buffers. It finds the prolog + stream
// header, each top-level element's exact byte range, whitespace keepalives and
// the stream close, and enforces RFC 6120 §11 restricted XML plus hard limits.
// It never decodes to strings, never re-serializes, and never throws: a breach
// is reported once through onError and the framer goes inert.
//
// Guarantees (tested by property tests in framer.test.ts):
// - the concatenation of all emitted frames equals the input, byte for byte;
// - header/stanza/close frames are identical whatever the chunking;
// - bytes held for an incomplete frame never exceed the frame's limit.
//
// Why one long file: the framer touches every byte (docs/performance.md), so
// the scan is one state machine in one function (#scan), its state in
// locals and each state's work inline, with no call in its inner loops;
// splitting the states into functions would put calls there. Its tables
// and the pure restricted-XML checks live in framer-chars.ts. What the
// framer's owners use (frame kinds, limits, FrameSink, StreamFramer) stays
// here beside the class, so the WebAssembly framer (framer-wasm.ts) and
// every owner import one module.

import { isUtf8 } from "node:buffer";
import { ProxyError, type ErrorCode } from "../errors.js";
import * as chars from "./framer-chars.js";

// Module-local bindings, as the tables had before they moved: the scan
// reads them as it always did, not through the module's import cells.
const {
  AMP, BANG, C_BAD, C_NAME, C_NAME_START, C_WS, CDATA_OPEN, checkEntity, CLASS, DQ, EQ, findControl, GT, indexOrLen, LT,
  MAX_ENTITY, QMARK, RSQB, SEMI, seqLength, SHORT_RUN, SLASH, SQ, STOP_DQ, STOP_SQ, STOP_TEXT,
} = chars;

export const FRAME_HEADER = 1;
export const FRAME_STANZA = 2;
export const FRAME_WHITESPACE = 3;
export const FRAME_CLOSE = 4;
export type FrameKind = typeof FRAME_HEADER | typeof FRAME_STANZA | typeof FRAME_WHITESPACE | typeof FRAME_CLOSE;

export interface FramerLimits {
  /** Largest top-level element in bytes (max_stanza_size). */
  maxStanzaSize: number;
  /** Deepest element nesting inside a stanza (the stanza itself is depth 1). */
  maxDepth: number;
  /** Most attributes (including namespace declarations) on one element. */
  maxAttributes: number;
  /** Largest prolog + stream header in bytes. */
  maxHeaderSize: number;
}

export const DEFAULT_LIMITS: FramerLimits = Object.freeze({
  maxStanzaSize: 262_144,
  maxDepth: 64,
  maxAttributes: 64,
  maxHeaderSize: 8192,
});

/** Longest element or attribute name we accept; anything longer is an attack, not XMPP. */
const MAX_NAME = 1024;

export interface FrameSink {
  /**
   * One complete frame: bytes `data[start, end)`. `data` is either the chunk
   * passed to write() (zero-copy) or a fresh Buffer for a frame that spanned
   * chunks. The bytes stay valid after the call returns.
   */
  onFrame(kind: FrameKind, data: Buffer, start: number, end: number): void;
  /** Called at most once; the framer ignores all later input. */
  onError(error: ProxyError, offset: number): void;
}

// Parser states (plain numbers: they live in a hot switch).
const S_PROLOG = 0; // before the stream header: whitespace and <?xml ...?>
const S_STREAM = 1; // at stream level between frames
const S_LT = 2; // just read '<'
const S_START_NAME = 3;
const S_ATTRS = 4; // inside a start tag, between attributes
const S_ATTR_NAME = 5;
const S_ATTR_EQ = 6; // after an attribute name, expecting '='
const S_ATTR_QUOTE = 7; // after '=', expecting a quote
const S_ATTR_VALUE = 8;
const S_EMPTY_GT = 9; // after '/' in a start tag, expecting '>'
const S_END_NAME = 10;
const S_END_WS = 11; // after an end tag's name, expecting '>'
const S_TEXT = 12; // character data inside a stanza
const S_BANG = 13; // after '<!' inside a stanza: must be "[CDATA["
const S_CDATA = 14;
const S_ENTITY = 15; // after '&'
const S_PI = 16; // inside the <?xml ...?> declaration
const S_CLOSED = 17; // after </stream:stream>
const S_DEAD = 18; // after an error

/**
 * What a framer's owner uses: the JS Framer below and the WebAssembly one
 * (framer-wasm.ts) behave identically through it; createFramer() picks one.
 */
export interface StreamFramer {
  /** Bytes held for the frame in progress (bounded by the frame's limit). */
  readonly bufferedBytes: number;
  /** True between frames, i.e. nothing partial is held. */
  readonly atBoundary: boolean;
  readonly closed: boolean;
  readonly failed: boolean;
  setLimits(limits: FramerLimits): void;
  /** Stream restart: the next bytes are a new prolog and stream header. Safe to call from onFrame. */
  reset(): void;
  /** Ignore all further input. Safe to call from onFrame. */
  stop(): void;
  /** End of input: an error when the peer stopped inside an element. */
  finish(): ProxyError | null;
  write(chunk: Buffer): void;
}

export class Framer implements StreamFramer {
  readonly #sink: FrameSink;
  #limits: FramerLimits;

  #state = S_PROLOG;
  #depth = 0; // open elements, the stream element included
  #returnState = S_TEXT; // where S_ENTITY goes back to

  // Incomplete frame carried across chunks (copied, so chunks can be freed).
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #total = 0; // bytes consumed so far, for error offsets

  // Names of open elements, back to back, to check end tags byte for byte.
  // Both start small (a typed array up to 64 bytes lives inside the V8 heap,
  // with no separate backing store) and grow with the names and depth seen.
  // The ends are a plain small-integer array: a typed array costs its view and
  // an ArrayBuffer object besides the bytes (~230 B for 8 ends, against ~110 B).
  #names = new Uint8Array(48);
  #nameEnds: number[] = [0, 0, 0, 0, 0, 0, 0, 0];
  #namePos = 0; // write position in #names
  #cmp = 0; // end-tag comparison cursor
  #cmpEnd = 0;

  #attrs = 0;
  #attrNameLen = 0; // bytes of an attribute name split by the end of the last chunk
  #sawSpace = false;
  #quote = 0;
  #bang = 0;
  #brackets = 0;
  #entity: Uint8Array | null = null; // allocated at the first entity reference
  #entityLen = 0;
  #piLen = 0;
  #piTarget = 0; // first bytes of the PI target, packed
  #piQ = false; // previous PI byte was '?'
  #declSeen = false;

  // UTF-8 sequence split across chunks.
  #carry: Uint8Array | null = null; // allocated at the first split sequence
  #carryLen = 0;
  #carryNeed = 0;

  /** Bumped by reset()/stop() so the scan loop notices a change made from a callback. */
  #epoch = 0;

  constructor(sink: FrameSink, limits: FramerLimits = DEFAULT_LIMITS) {
    this.#sink = sink;
    this.#limits = limits;
  }

  /** Bytes held for the frame in progress (bounded by the frame's limit). */
  get bufferedBytes(): number {
    return this.#pendingLen;
  }

  /** True between frames, i.e. nothing partial is held. */
  get atBoundary(): boolean {
    return this.#pendingLen === 0 && (this.#state === S_STREAM || this.#state === S_PROLOG || this.#state === S_CLOSED);
  }

  get closed(): boolean {
    return this.#state === S_CLOSED;
  }

  get failed(): boolean {
    return this.#state === S_DEAD;
  }

  setLimits(limits: FramerLimits): void {
    this.#limits = limits;
  }

  /**
   * Stream restart (RFC 6120 §4.3.3, after STARTTLS or SASL success): the next
   * bytes are a new prolog and stream header. Safe to call from onFrame.
   */
  reset(): void {
    if (this.#state === S_DEAD) return;
    this.#state = S_PROLOG;
    this.#depth = 0;
    this.#namePos = 0;
    this.#pending.length = 0;
    this.#pendingLen = 0;
    this.#declSeen = false;
    this.#epoch++;
  }

  /** Ignore all further input (the session is closing). Safe to call from onFrame. */
  stop(): void {
    this.#state = S_DEAD;
    this.#pending.length = 0;
    this.#pendingLen = 0;
    this.#epoch++;
  }

  /**
   * End of input. Returns an error when the peer stopped inside an element
   * (a truncated stanza or header); a stream that simply ends is fine.
   */
  finish(): ProxyError | null {
    if (this.#state === S_DEAD) return null;
    const mid = this.#carryLen > 0 || !(this.#state === S_STREAM || this.#state === S_PROLOG || this.#state === S_CLOSED);
    this.stop();
    if (mid) return new ProxyError("XPX_ERR_XML_TRUNCATED");
    return null;
  }

  write(chunk: Buffer): void {
    if (this.#state === S_DEAD || chunk.length === 0) return;
    if (!this.#checkUtf8(chunk)) {
      this.#fail("XPX_ERR_XML_INVALID_UTF8", undefined, 0);
      return;
    }
    this.#scan(chunk);
    this.#total += chunk.length;
  }

  #fail(code: ErrorCode, detail: string | undefined, pos: number): void {
    this.#state = S_DEAD;
    this.#pending.length = 0;
    this.#pendingLen = 0;
    this.#epoch++;
    this.#sink.onError(new ProxyError(code, detail), this.#total + pos);
  }

  // Validate UTF-8 with native isUtf8, carrying a sequence split at the end.
  #checkUtf8(chunk: Buffer): boolean {
    let start = 0;
    const len = chunk.length;
    if (this.#carryLen > 0) {
      const carry = this.#carry!;
      while (this.#carryLen < this.#carryNeed && start < len) {
        const b = chunk[start]!;
        if ((b & 0xc0) !== 0x80) return false;
        carry[this.#carryLen++] = b;
        start++;
      }
      if (this.#carryLen < this.#carryNeed) return true;
      if (!isUtf8(carry.subarray(0, this.#carryLen))) return false;
      this.#carryLen = 0;
    }
    // Find a lead byte in the last 3 whose sequence runs past the end.
    let tail = len;
    let i = len - 1;
    let k = 0;
    while (i >= start && k < 3 && (chunk[i]! & 0xc0) === 0x80) {
      i--;
      k++;
    }
    if (i >= start) {
      const need = seqLength(chunk[i]!);
      if (need > 1 && i + need > len) tail = i;
    }
    if (tail > start && !isUtf8(chunk.subarray(start, tail))) return false;
    if (tail < len) {
      this.#carryNeed = seqLength(chunk[tail]!);
      this.#carryLen = 0;
      const carry = (this.#carry ??= new Uint8Array(4));
      for (let j = tail; j < len; j++) carry[this.#carryLen++] = chunk[j]!;
    }
    return true;
  }

  #emit(kind: FrameKind, chunk: Buffer, frameStart: number, end: number): void {
    if (this.#pendingLen === 0) {
      this.#sink.onFrame(kind, chunk, frameStart, end);
      return;
    }
    const parts = this.#pending;
    parts.push(chunk.subarray(0, end));
    const total = this.#pendingLen + end;
    const data = Buffer.concat(parts, total);
    parts.length = 0;
    this.#pendingLen = 0;
    this.#sink.onFrame(kind, data, 0, total);
  }

  #growNameEnds(): void {
    const ends = this.#nameEnds;
    for (let i = ends.length; i > 0; i--) ends.push(0); // double it
  }

  #pushName(chunk: Buffer, from: number, to: number): boolean {
    const n = to - from;
    const level = this.#depth; // index of the element being named
    const startOfName = level === 0 ? 0 : this.#nameEnds[level - 1]!;
    if (this.#namePos + n - startOfName > MAX_NAME) return false;
    if (this.#namePos + n > this.#names.length) {
      const grown = new Uint8Array(Math.max(this.#names.length * 2, this.#namePos + n));
      grown.set(this.#names.subarray(0, this.#namePos));
      this.#names = grown;
    }
    // Names are short: a byte loop beats a subarray() view per element.
    const names = this.#names;
    let pos = this.#namePos;
    for (let k = from; k < to; k++) names[pos++] = chunk[k]!;
    this.#namePos = pos;
    return true;
  }

  #scan(chunk: Buffer): void {
    const len = chunk.length;
    const limits = this.#limits;
    let state = this.#state;
    let frameStart = 0; // start of the current frame within this chunk
    let wsStart = -1; // start of a whitespace run at stream level
    let nameStart = 0; // start of the name being read within this chunk
    let attrStart = 0; // start of the attribute name being read (negative: it began in an earlier chunk)
    let i = 0;
    const epoch = this.#epoch;

    // A name (element name) may be split across chunks; resume recording at 0.
    if (state === S_START_NAME) nameStart = 0;
    // An attribute name is only measured, not kept: carry its length so far.
    else if (state === S_ATTR_NAME) attrStart = -this.#attrNameLen;

    // Next '<' and '&' at or after i (len: none); -1 = not looked up yet.
    let nextLt = -1;
    let nextAmp = -1;

    for (; i < len; i++) {
      let c = chunk[i]!;
      switch (state) {
        case S_STREAM: {
          if (c === LT) {
            if (wsStart >= 0) {
              this.#sink.onFrame(FRAME_WHITESPACE, chunk, wsStart, i);
              wsStart = -1;
              if (this.#epoch !== epoch) return this.#afterCallback(chunk, i - 1);
            }
            frameStart = i;
            state = S_LT;
          } else if (CLASS[c]! & C_WS) {
            if (wsStart < 0) wsStart = i;
            while (i + 1 < len && CLASS[chunk[i + 1]!]! & C_WS) i++;
          } else if (CLASS[c]! & C_BAD) {
            // NUL and other C0 controls are not XML characters at all (XML 1.0 §2.2).
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "control character", i);
            return;
          } else {
            this.#fail("XPX_ERR_XML_TEXT_AT_STREAM_LEVEL", undefined, i);
            return;
          }
          break;
        }
        case S_PROLOG: {
          if (c === LT) state = S_LT;
          else if (!(CLASS[c]! & C_WS)) {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "expected a stream header", i);
            return;
          }
          break;
        }
        case S_LT: {
          if (CLASS[c]! & C_NAME_START) {
            if (this.#depth > limits.maxDepth) {
              this.#fail("XPX_ERR_XML_TOO_DEEP", undefined, i);
              return;
            }
            state = S_START_NAME;
            nameStart = i;
            this.#attrs = 0;
          } else if (c === SLASH) {
            if (this.#depth === 0) {
              this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "end tag before the stream header", i);
              return;
            }
            const level = this.#depth - 1;
            this.#cmp = level === 0 ? 0 : this.#nameEnds[level - 1]!;
            this.#cmpEnd = this.#nameEnds[level]!;
            state = S_END_NAME;
          } else if (c === BANG) {
            if (this.#depth < 2) {
              this.#fail("XPX_ERR_XML_RESTRICTED", "comment or DOCTYPE outside a stanza", i);
              return;
            }
            this.#bang = 0;
            state = S_BANG;
          } else if (c === QMARK) {
            if (this.#depth === 0 && !this.#declSeen) {
              this.#piLen = 0;
              this.#piTarget = 0;
              this.#piQ = false;
              state = S_PI;
            } else {
              this.#fail("XPX_ERR_XML_RESTRICTED", "processing instruction", i);
              return;
            }
          } else {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "bad character after '<'", i);
            return;
          }
          break;
        }
        case S_START_NAME: {
          let cls = CLASS[c]!;
          if (cls & C_NAME) {
            while (++i < len && (cls = CLASS[chunk[i]!]!) & C_NAME);
            if (i === len) break;
            c = chunk[i]!;
          }
          if (!this.#pushName(chunk, nameStart, i)) {
            this.#fail("XPX_ERR_XML_NAME_TOO_LONG", undefined, i);
            return;
          }
          if (this.#depth >= this.#nameEnds.length) this.#growNameEnds();
          this.#nameEnds[this.#depth] = this.#namePos;
          if (cls & C_WS) {
            state = S_ATTRS;
            this.#sawSpace = true;
          } else if (c === GT) {
            state = this.#openDone(chunk, frameStart, i);
            if (this.#epoch !== epoch) return this.#afterCallback(chunk, i);
            if (state === S_STREAM) frameStart = i + 1;
          } else if (c === SLASH) {
            state = S_EMPTY_GT;
          } else {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "bad character in element name", i);
            return;
          }
          break;
        }
        case S_ATTRS: {
          const cls = CLASS[c]!;
          if (cls & C_WS) {
            this.#sawSpace = true;
            while (i + 1 < len && CLASS[chunk[i + 1]!]! & C_WS) i++;
          } else if (c === GT) {
            state = this.#openDone(chunk, frameStart, i);
            if (this.#epoch !== epoch) return this.#afterCallback(chunk, i);
            if (state === S_STREAM) frameStart = i + 1;
          } else if (c === SLASH) {
            state = S_EMPTY_GT;
          } else if ((cls & C_NAME_START) && this.#sawSpace) {
            if (++this.#attrs > limits.maxAttributes) {
              this.#fail("XPX_ERR_XML_TOO_MANY_ATTRIBUTES", undefined, i);
              return;
            }
            attrStart = i;
            state = S_ATTR_NAME;
          } else {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "bad character in start tag", i);
            return;
          }
          break;
        }
        case S_ATTR_NAME: {
          let cls = CLASS[c]!;
          if (cls & C_NAME) {
            while (++i < len && (cls = CLASS[chunk[i]!]!) & C_NAME);
            if (i === len) break;
            c = chunk[i]!;
          }
          // Measured once the name has ended (or in #holdPartial when a chunk
          // ends inside it), so the byte loop above does no extra work.
          if (i - attrStart > MAX_NAME) {
            this.#fail("XPX_ERR_XML_NAME_TOO_LONG", "attribute name", i);
            return;
          }
          if (c === EQ) state = S_ATTR_QUOTE;
          else if (cls & C_WS) state = S_ATTR_EQ;
          else {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "attribute without value", i);
            return;
          }
          break;
        }
        case S_ATTR_EQ: {
          if (c === EQ) state = S_ATTR_QUOTE;
          else if (!(CLASS[c]! & C_WS)) {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "attribute without value", i);
            return;
          }
          break;
        }
        case S_ATTR_QUOTE: {
          if (c === DQ || c === SQ) {
            this.#quote = c;
            state = S_ATTR_VALUE;
          } else if (!(CLASS[c]! & C_WS)) {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "unquoted attribute value", i);
            return;
          }
          break;
        }
        case S_ATTR_VALUE: {
          // Up to the closing quote, '<', '&' or a forbidden control byte: short
          // values byte by byte, long ones with native searches.
          const q = this.#quote;
          let j = i;
          const stop = i + SHORT_RUN < len ? i + SHORT_RUN : len;
          let b = c;
          const stops = q === SQ ? STOP_SQ : STOP_DQ;
          while (stops[b] === 0 && ++j < stop) b = chunk[j]!;
          if (j === stop) {
            j = indexOrLen(chunk, q, j);
            if (nextLt < i) nextLt = indexOrLen(chunk, LT, i);
            if (nextLt < j) j = nextLt;
            if (nextAmp < i) nextAmp = indexOrLen(chunk, AMP, i);
            if (nextAmp < j) j = nextAmp;
            j = findControl(chunk, stop, j);
            if (j === len) {
              i = len;
              break;
            }
            b = chunk[j]!;
          }
          i = j;
          if (b === q) {
            state = S_ATTRS;
            this.#sawSpace = false;
          } else if (b === AMP) {
            this.#entityLen = 0;
            this.#returnState = S_ATTR_VALUE;
            state = S_ENTITY;
          } else {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", b === LT ? "'<' in attribute value" : "control character", j);
            return;
          }
          break;
        }
        case S_EMPTY_GT: {
          if (c !== GT) {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "expected '>' after '/'", i);
            return;
          }
          // Self-closed: the name pushed for this element is popped again.
          const level = this.#depth;
          this.#namePos = level === 0 ? 0 : this.#nameEnds[level - 1]!;
          if (level === 0) {
            this.#fail("XPX_ERR_STREAM_HEADER_INVALID", "self-closed stream header", i);
            return;
          }
          if (level === 1) {
            this.#emit(FRAME_STANZA, chunk, frameStart, i + 1);
            if (this.#epoch !== epoch) return this.#afterCallback(chunk, i);
            frameStart = i + 1;
            state = S_STREAM;
          } else {
            state = S_TEXT;
          }
          break;
        }
        case S_END_NAME: {
          let cmp = this.#cmp;
          const cmpEnd = this.#cmpEnd;
          const names = this.#names;
          while (cmp < cmpEnd && c === names[cmp]) {
            cmp++;
            if (++i === len) break;
            c = chunk[i]!;
          }
          this.#cmp = cmp;
          if (i === len) break;
          if (this.#cmp === this.#cmpEnd && (c === GT || CLASS[c]! & C_WS)) {
            if (c === GT) {
              state = this.#closeDone(chunk, frameStart, i);
              if (this.#epoch !== epoch) return this.#afterCallback(chunk, i);
              if (state === S_STREAM || state === S_CLOSED) frameStart = i + 1;
            } else {
              state = S_END_WS;
            }
            break;
          }
          this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "end tag does not match start tag", i);
          return;
        }
        case S_END_WS: {
          if (c === GT) {
            state = this.#closeDone(chunk, frameStart, i);
            if (this.#epoch !== epoch) return this.#afterCallback(chunk, i);
            if (state === S_STREAM || state === S_CLOSED) frameStart = i + 1;
          } else if (!(CLASS[c]! & C_WS)) {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "bad character in end tag", i);
            return;
          }
          break;
        }
        case S_TEXT: {
          // Character data up to the next '<', '&' or forbidden control byte:
          // the first SHORT_RUN bytes one by one (most runs between tags are
          // empty or short), the rest with native searches.
          let j = i;
          const stop = i + SHORT_RUN < len ? i + SHORT_RUN : len;
          let b = c;
          while (STOP_TEXT[b] === 0 && ++j < stop) b = chunk[j]!;
          if (j === stop) {
            if (nextLt < j) nextLt = indexOrLen(chunk, LT, j);
            j = nextLt;
            if (nextAmp < i) nextAmp = indexOrLen(chunk, AMP, i);
            if (nextAmp < j) j = nextAmp;
            j = findControl(chunk, stop, j);
            if (j === len) {
              i = len;
              break;
            }
            b = chunk[j]!;
          }
          i = j;
          if (b === LT) state = S_LT;
          else if (b === AMP) {
            this.#entityLen = 0;
            this.#returnState = S_TEXT;
            state = S_ENTITY;
          } else {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "control character", j);
            return;
          }
          break;
        }
        case S_BANG: {
          // Only CDATA sections are allowed here; comments and DOCTYPE are restricted.
          if (this.#bang === 0 && (c === 0x2d || c === 0x44)) {
            this.#fail("XPX_ERR_XML_RESTRICTED", c === 0x2d ? "comment" : "DOCTYPE", i);
            return;
          }
          if (c !== CDATA_OPEN[this.#bang]) {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "bad markup after '<!'", i);
            return;
          }
          if (++this.#bang === CDATA_OPEN.length) {
            this.#brackets = 0;
            state = S_CDATA;
          }
          break;
        }
        case S_CDATA: {
          if (c === RSQB) this.#brackets++;
          else if (c === GT && this.#brackets >= 2) state = S_TEXT;
          else if (CLASS[c]! & C_BAD) {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "control character", i);
            return;
          } else this.#brackets = 0;
          break;
        }
        case S_ENTITY: {
          if (c === SEMI) {
            const problem = checkEntity(this.#entity!, this.#entityLen);
            if (problem !== null) {
              this.#fail(problem === "restricted" ? "XPX_ERR_XML_RESTRICTED" : "XPX_ERR_XML_NOT_WELL_FORMED",
                problem === "restricted" ? "undeclared entity reference" : "bad character or entity reference", i);
              return;
            }
            state = this.#returnState;
          } else if (this.#entityLen < MAX_ENTITY && (CLASS[c]! & C_NAME || c === 0x23)) {
            (this.#entity ??= new Uint8Array(MAX_ENTITY))[this.#entityLen++] = c;
          } else {
            this.#fail("XPX_ERR_XML_NOT_WELL_FORMED", "bad entity reference", i);
            return;
          }
          break;
        }
        case S_PI: {
          // <?xml ...?>: the only processing instruction allowed, and only before the header.
          if (this.#piLen < 4) this.#piTarget = (this.#piTarget << 8) | c;
          this.#piLen++;
          if (this.#piLen === 4) {
            const t = this.#piTarget;
            const isXml = (t >>> 8) === 0x786d6c && (CLASS[t & 0xff]! & C_WS) !== 0; // "xml" + space
            if (!isXml) {
              this.#fail("XPX_ERR_XML_RESTRICTED", "processing instruction", i);
              return;
            }
          }
          if (c === GT && this.#piQ && this.#piLen >= 6) {
            this.#declSeen = true;
            state = S_PROLOG;
          }
          this.#piQ = c === QMARK;
          break;
        }
        case S_CLOSED:
          // After </stream:stream> nothing more is XMPP; swallow it.
          i = len;
          break;
        default:
          return;
      }
    }

    // End of chunk.
    this.#state = state;
    if (state === S_STREAM) {
      if (wsStart >= 0) this.#sink.onFrame(FRAME_WHITESPACE, chunk, wsStart, len);
      return;
    }
    if (state === S_CLOSED || state === S_DEAD) return;
    this.#holdPartial(chunk, state, nameStart, attrStart, frameStart, len);
  }

  /**
   * End of a chunk inside a frame: keep a copy of its bytes, within the limit.
   * Out of #scan on purpose: its rare branches (a name split by the chunk
   * end, a limit breach) would otherwise sit in #scan's optimized code
   * without type feedback, and every full GC that flushed it sent #scan
   * through deoptimization again (3× slower framing, seen with --trace-deopt).
   */
  #holdPartial(chunk: Buffer, state: number, nameStart: number, attrStart: number, frameStart: number, len: number): void {
    const limits = this.#limits;
    if (state === S_START_NAME && !this.#pushName(chunk, nameStart, len)) {
      this.#fail("XPX_ERR_XML_NAME_TOO_LONG", undefined, len);
      return;
    }
    if (state === S_ATTR_NAME) {
      // Refused as it arrives, whatever the chunking, like an element name.
      this.#attrNameLen = len - attrStart;
      if (this.#attrNameLen > MAX_NAME) {
        this.#fail("XPX_ERR_XML_NAME_TOO_LONG", "attribute name", len);
        return;
      }
    }
    const held = this.#pendingLen + (len - frameStart);
    if (this.#depth === 0) {
      if (held > limits.maxHeaderSize) {
        this.#fail("XPX_ERR_HEADER_TOO_LARGE", undefined, len);
        return;
      }
    } else if (held > limits.maxStanzaSize) {
      this.#fail("XPX_ERR_STANZA_TOO_LARGE", undefined, len);
      return;
    }
    if (frameStart < len) {
      this.#pending.push(Buffer.from(chunk.subarray(frameStart, len)));
      this.#pendingLen = held;
    }
  }

  /** A callback called reset() or stop(): continue with the rest of the chunk as a new stream. */
  #afterCallback(chunk: Buffer, i: number): void {
    if (this.#state === S_DEAD) return;
    this.#pending.length = 0;
    this.#pendingLen = 0;
    if (i + 1 < chunk.length) this.#scan(chunk.subarray(i + 1));
  }

  // '>' closed a start tag.
  #openDone(chunk: Buffer, frameStart: number, i: number): number {
    if (this.#depth === 0) {
      const size = this.#pendingLen + (i + 1 - frameStart);
      if (size > this.#limits.maxHeaderSize) {
        this.#fail("XPX_ERR_HEADER_TOO_LARGE", undefined, i);
        return S_DEAD;
      }
      this.#depth = 1;
      this.#emit(FRAME_HEADER, chunk, frameStart, i + 1);
      return S_STREAM;
    }
    this.#depth++;
    return S_TEXT;
  }

  // '>' closed an end tag whose name matched.
  #closeDone(chunk: Buffer, frameStart: number, i: number): number {
    const level = --this.#depth;
    this.#namePos = level === 0 ? 0 : this.#nameEnds[level - 1]!;
    if (level === 1) {
      const size = this.#pendingLen + (i + 1 - frameStart);
      if (size > this.#limits.maxStanzaSize) {
        this.#fail("XPX_ERR_STANZA_TOO_LARGE", undefined, i);
        return S_DEAD;
      }
      this.#emit(FRAME_STANZA, chunk, frameStart, i + 1);
      return S_STREAM;
    }
    if (level === 0) {
      this.#emit(FRAME_CLOSE, chunk, frameStart, i + 1);
      return S_CLOSED;
    }
    return S_TEXT;
  }
}

// One Framer that lives as long as the module. V8 reaches a class's hidden
// classes through transitions it holds weakly: at a full GC with no Framer
// alive (a proxy between sessions) they are collected, and the optimized
// write()/#scan that check for them are thrown away ("weak objects" in
// --trace-deopt). After a few such rounds the scan was measured to settle at
// ~140 MB/s instead of ~360 (bench/framer.ts with a forced GC between
// passes). A resident instance keeps the hidden classes, and the code, alive.
// Not exported: it is kept for its side effect alone.
const RESIDENT_FRAMER = new Framer({ onFrame() {}, onError() {} });
