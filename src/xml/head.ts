// Cheap reads of a framed element's opening tag: name, attributes and the
// first child's name/xmlns, without building a tree. Input is a frame the
// Framer already proved well-formed, so this only has to find boundaries;
// it still refuses duplicate attributes (a parser-differential hazard:
// policy must never read a different `to` than the server would).

import { decodeOffered, decodeValue, NO_HASH, utf8Slice, Words } from "./values.js";

const LT = 0x3c, GT = 0x3e, SLASH = 0x2f, EQ = 0x3d, BANG = 0x21, QMARK = 0x3f, COLON = 0x3a;

function isWs(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/**
 * The attribute names the stanza view asks for by number (ParsedHead.attrOf):
 * the first common names, whose place in a tag the WebAssembly framer
 * records (the flags of an offered head, from bit HF_POSITIONS).
 */
export const A_TO = 0, A_FROM = 1, A_TYPE = 2, A_ID = 3, A_XML_LANG = 4;
const POSITIONED = 5;
const COMMON_NAMES = new Words(["to", "from", "type", "id", "xml:lang", "xmlns", "message", "presence", "iq", "body"]);
const W_XML_LANG = COMMON_NAMES.texts.indexOf("xml:lang");
const W_XMLNS = COMMON_NAMES.texts.indexOf("xmlns");

/**
 * The start tag of the frame being delivered, as the framer that found the
 * frame already read it: offsets into `data` and the names' first bytes
 * packed (an entry of asm/framer.ts's heads area, at words[at]:
 * OFFERED_HEAD_WORDS, then OFFERED_ATTR_WORDS per attribute). The
 * WebAssembly framer offers it around its frame callback and withdraws it
 * after; a head read of that same frame
 * (same chunk object, same start) takes the offsets instead of scanning the
 * tag again. Anything else, a frame carried across chunks, a head read later
 * or from a copy, or module memory that grew meanwhile (words detached, so
 * empty), reads the bytes as usual: the offer only saves work.
 *
 * The chunk's bytes are in the module's memory too, at `base` (the address
 * of data[0]), for as long as the offer stands: a value of the frame is then
 * compared with a recent one four bytes at a time (values.ts, OfferedMemory), not byte by byte.
 * `serial` changes with every offer and withdrawal, so a head knows whether
 * the offer it was read from still stands.
 */
export class OfferedHead {
  data: Buffer | null = null;
  start = -1;
  words: Int32Array = new Int32Array(0);
  at = 0;
  base = 0;
  serial = 0;

  offer(data: Buffer, start: number, words: Int32Array, at: number, base: number): void {
    this.data = data;
    this.start = start;
    this.words = words;
    this.at = at;
    this.base = base;
    this.serial++;
  }

  withdraw(): void {
    this.data = null;
    this.start = -1;
    this.serial++;
  }
}

/** The one offer of the process: frames are delivered one at a time. */
export const FRAME_HEAD = new OfferedHead();
export const OFFERED_HEAD_WORDS = 7;
export const OFFERED_ATTR_WORDS = 8;
/**
 * An offered head's flags word (its word 6): the element name's common index
 * + 1 in its low byte, these two, and from bit HF_POSITIONS four bits per
 * positioned name (A_TO…): its attribute's index + 1, 0 when the tag has no
 * such attribute, 15 when it is the fifteenth or later.
 */
const HF_DUPLICATE = 1 << 8;
const HF_NAMESPACED = 1 << 9;
const HF_POSITIONS = 10;

/**
 * The common names as the WebAssembly framer recognises them (its setNames):
 * (length, bytes 0-3, bytes 4-7) per name, in COMMON_NAMES order, so that an
 * offered head gives each name's index; and the indexes of xmlns and xml:lang.
 */
export function commonNameKeys(): { keys: Int32Array; xmlns: number; xmlLang: number; positioned: number } {
  const keys = new Int32Array(COMMON_NAMES.texts.length * 3);
  COMMON_NAMES.texts.forEach((text, k) => {
    const bytes = Buffer.alloc(8);
    const n = bytes.write(text, "latin1");
    if (n > 8) throw new Error(`common name "${text}" is longer than 8 bytes`);
    keys[3 * k] = n;
    keys[3 * k + 1] = bytes.readInt32LE(0);
    keys[3 * k + 2] = bytes.readInt32LE(4);
  });
  return { keys, xmlns: W_XMLNS, xmlLang: W_XML_LANG, positioned: POSITIONED };
}

export interface Head {
  /** Qualified element name as written. */
  readonly name: string;
  /** Attributes in document order, values entity-decoded (built on first use). */
  readonly attrs: Map<string, string>;
  /** Attribute names as written (qualified), in document order, each once. */
  readonly attrNames: readonly string[];
  /** One attribute's value, entity-decoded; decodes only that value. */
  attr(name: string): string | undefined;
  /** The value of attrNames[k], entity-decoded. */
  attrAt(k: number): string;
  /** Offset just past the opening tag's '>'. */
  readonly end: number;
  readonly selfClosing: boolean;
  /** A repeated attribute name, if any (the element must be refused). */
  readonly duplicate: string | null;
  /**
   * True when no name here involves namespaces: the element name has no
   * prefix, and no attribute is a declaration or prefixed (but xml:lang).
   * Such an element is in its parent's default namespace, with its scope.
   */
  readonly nsPlain: boolean;
}

/**
 * The start tag's boundaries are found eagerly (names, and duplicates, which
 * must be refused); values are decoded only when asked for: policy usually
 * reads one or two of them, and a forwarded stanza needs none. A head read
 * from an offer (#readOffered) does not even copy the attribute names out
 * until a caller wants them: its attributes are found in the offer.
 *
 * A head can be read again into the same object (readHead's `into`): the
 * session's stanza view does that for every stanza, so reading a start tag
 * allocates nothing but the strings a caller asks for. Such a head is valid
 * until the next read into it.
 */
export class ParsedHead implements Head {
  name = "";
  end = 0;
  selfClosing = false;
  duplicate: string | null = null;
  nsPlain = true;
  #data: Buffer = EMPTY_BUFFER;
  /** First occurrence of each attribute name, in document order (exactly #count long). */
  readonly #names: string[] = [];
  /** Per name: its value's start and end offsets and the framer's hash of it or NO_HASH (may be longer than 3 × #count). */
  readonly #spans: number[] = [];
  #count = 0;
  /** Decoded values by index; entries past #count are stale. */
  readonly #values: Array<string | undefined> = [];
  #map: Map<string, string> | undefined;
  /**
   * The offer (FRAME_HEAD.serial) this head was read from, or -1. While that
   * offer stands, FRAME_HEAD's words, entry index (`at`) and base are this
   * head's, so the head keeps no copy of them.
   */
  #serial = -1;
  /**
   * A lazy head's flags word (see #readOffered; the positions of A_TO…), or
   * -1 when the head is not lazy: its attributes are in #names and #spans.
   */
  #flags = -1;
  /** A lazy head's start, limit and origin: how to read its bytes once the offer is gone. */
  readonly #bytesAt: number[] = [0, 0, 0];

  /** Parse the start tag at data[start] into this object (see readHead); false when there is none. */
  read(data: Buffer, start: number, limit: number, origin: number): boolean {
    const offered = FRAME_HEAD;
    if (offered.data === data && offered.start === start) {
      const words = offered.words;
      // Not when the memory grew (the words are detached), nor for a repeated name (the bytes say which).
      if (words.length !== 0 && (words[offered.at + 6]! & HF_DUPLICATE) === 0) return this.#readOffered(data, offered, words, start, limit, origin);
    }
    return this.#readBytes(data, start, limit, origin);
  }

  /** read() from the bytes themselves. */
  #readBytes(data: Buffer, start: number, limit: number, origin: number): boolean {
    this.#serial = -1;
    if (data[start] !== LT) return false;
    let i = start + 1;
    const nameStart = i;
    let colon = false;
    while (i < limit) {
      const b = data[i]!;
      if (isWs(b) || b === GT || b === SLASH) break;
      if (b === COLON) colon = true;
      i++;
    }
    const word = COMMON_NAMES.index(data, nameStart, i);
    this.#begin(data, nameStart, i, word, !(word >= 0 ? word === W_XML_LANG : colon));
    for (;;) {
      while (i < limit && isWs(data[i]!)) i++;
      if (i >= limit) return this.#none();
      const b = data[i]!;
      if (b === GT || b === SLASH) {
        this.#finish(b === GT ? i + 1 - origin : i + 2 - origin, b === SLASH);
        return true;
      }
      const an = i;
      colon = false;
      for (let c = data[i]; i < limit && c !== EQ && !isWs(c!); c = data[++i]) if (c === COLON) colon = true;
      const ane = i;
      while (i < limit && data[i] !== EQ) i++;
      i++;
      while (i < limit && isWs(data[i]!)) i++;
      const quote = data[i]!;
      const vs = ++i;
      // Attribute values are short: a byte loop beats a native indexOf call here.
      let ve = vs;
      while (ve < limit && data[ve] !== quote) ve++;
      if (ve >= limit) return this.#none();
      this.#attribute(data, an, ane, vs, ve, colon, COMMON_NAMES.index(data, an, ane));
      i = ve + 1;
    }
  }

  /**
   * The framer's reading of this tag (FRAME_HEAD): the same head without
   * scanning the tag again, nor recognising names, nor looking for repeated
   * ones. A tag with a repeated name is read from its bytes (to say which).
   *
   * The attributes are left where the framer wrote them: attr() and the
   * values find them in the offered words while the offer stands (nearly
   * every read: policy judges inside the frame callback), and only a caller
   * that wants the names themselves, or an uncommon one, has them copied
   * out (#settle). A head read after the offer ended reads its bytes again.
   */
  #readOffered(data: Buffer, offered: OfferedHead, words: Int32Array, start: number, limit: number, origin: number): true {
    // #begin and #finish, written out: this runs for every stanza, and stays one small function.
    const at = offered.at;
    const flags = words[at + 6]!;
    this.#data = data;
    this.#serial = offered.serial;
    this.#flags = flags;
    const bytesAt = this.#bytesAt;
    bytesAt[0] = start;
    bytesAt[1] = limit;
    bytesAt[2] = origin;
    const word = (flags & 0xff) - 1;
    this.name = word >= 0 ? COMMON_NAMES.texts[word]! : utf8Slice.call(data, words[at]! + 1, words[at + 1]!);
    this.nsPlain = (flags & HF_NAMESPACED) === 0;
    this.duplicate = null;
    const count = (this.#count = words[at + 3]!);
    const end = words[at + 2]!;
    this.end = end - origin;
    this.selfClosing = data[end - 2] === SLASH;
    const values = this.#values;
    for (let k = 0; k < count && k < values.length; k++) values[k] = undefined;
    this.#map = undefined;
    return true;
  }

  /** Whether the offer this head was read from still stands (no other frame offered since, memory not grown). */
  #offerStands(): boolean {
    return this.#serial === FRAME_HEAD.serial && FRAME_HEAD.words.length !== 0;
  }

  /** A lazy head's attributes copied out of the offer into #names and #spans, or, the offer gone, read from the bytes. */
  #settle(): void {
    if (!this.#offerStands()) {
      const bytesAt = this.#bytesAt;
      this.#readBytes(this.#data, bytesAt[0]!, bytesAt[1]!, bytesAt[2]!);
      return;
    }
    this.#flags = -1;
    const words = FRAME_HEAD.words;
    const data = this.#data;
    const first = FRAME_HEAD.at + OFFERED_HEAD_WORDS;
    const count = this.#count;
    const names = this.#names;
    const spans = this.#spans;
    for (let n = 0, k = first; n < count; n++, k += OFFERED_ATTR_WORDS) {
      const word = words[k + 7]!;
      names[n] = word >= 0 ? COMMON_NAMES.texts[word]! : utf8Slice.call(data, words[k]!, words[k + 1]!);
      spans[3 * n] = words[k + 2]!;
      spans[3 * n + 1] = words[k + 3]!;
      spans[3 * n + 2] = words[k + 6]!;
    }
    if (names.length !== count) names.length = count;
  }

  // A read from the bytes in three steps: the element name, each attribute,
  // the tag's end. `word`: a name's index in COMMON_NAMES, or -1; `plain`:
  // nsPlain as far as the element name tells (an offered head's, as the
  // whole tag tells); `colon`: whether an attribute name has one.

  #begin(data: Buffer, start: number, end: number, word: number, plain: boolean): void {
    this.#data = data;
    this.#flags = -1;
    this.name = word >= 0 ? COMMON_NAMES.texts[word]! : utf8Slice.call(data, start, end);
    this.nsPlain = plain;
    this.duplicate = null;
    this.#count = 0;
  }

  #attribute(data: Buffer, an: number, ane: number, vs: number, ve: number, colon: boolean, word: number): void {
    const name = word >= 0 ? COMMON_NAMES.texts[word]! : utf8Slice.call(data, an, ane);
    // xml:lang needs no namespace work, xmlns always does; so does any other prefixed name.
    if (word === W_XMLNS || (word < 0 && colon)) this.nsPlain = false;
    const names = this.#names;
    const n = this.#count;
    for (let k = 0; k < n; k++) {
      if (names[k] === name) {
        this.duplicate ??= name;
        return;
      }
    }
    names[n] = name;
    this.#spans[3 * n] = vs;
    this.#spans[3 * n + 1] = ve;
    this.#spans[3 * n + 2] = NO_HASH; // read from the bytes: no framer hash
    this.#count = n + 1;
  }

  #finish(end: number, selfClosing: boolean): void {
    this.end = end;
    this.selfClosing = selfClosing;
    const count = this.#count;
    // attrNames is handed out as it is: keep it exactly `count` long.
    if (this.#names.length !== count) this.#names.length = count;
    const values = this.#values;
    for (let k = 0; k < count && k < values.length; k++) values[k] = undefined;
    this.#map = undefined;
  }

  /** No start tag: leave the object empty rather than half filled. */
  #none(): false {
    this.#data = EMPTY_BUFFER;
    this.name = "";
    this.nsPlain = true;
    this.duplicate = null;
    this.#count = 0;
    this.#finish(0, false);
    return false;
  }

  attr(name: string): string | undefined {
    if (this.#flags >= 0) return this.#offeredAttr(name);
    const names = this.#names;
    for (let k = 0; k < this.#count; k++) if (names[k] === name) return this.#value(k);
    return undefined;
  }

  /**
   * attr() of one of the names the view asks for by number (A_TO…). A lazy
   * head knows from the framer's flags where in the tag that name is, or
   * that it is absent (a fact of the bytes, so true after the offer too):
   * its value is decoded straight from the offer, no name compared.
   */
  attrOf(which: number): string | undefined {
    const flags = this.#flags;
    if (flags >= 0) {
      const p = (flags >>> (HF_POSITIONS + 4 * which)) & 15;
      if (p === 0) return undefined;
      if (p !== 15) {
        const n = p - 1;
        const v = this.#values[n];
        if (v !== undefined) return v;
        if (this.#offerStands()) return this.#offeredValue(n);
      }
    }
    return this.attr(COMMON_NAMES.texts[which]!);
  }

  /**
   * attr() of a lazy head: while the offer stands, the names' common indexes
   * are in it, so a common name is found, and its value decoded, without
   * copying anything out. Otherwise (offer gone, or an uncommon name asked of
   * a tag that has uncommon ones) the head is settled and asked again.
   */
  #offeredAttr(name: string): string | undefined {
    if (this.#offerStands()) {
      const words = FRAME_HEAD.words;
      const texts = COMMON_NAMES.texts;
      const count = this.#count;
      let uncommon = false;
      for (let n = 0, k = FRAME_HEAD.at + OFFERED_HEAD_WORDS; n < count; n++, k += OFFERED_ATTR_WORDS) {
        const word = words[k + 7]!;
        if (word < 0) uncommon = true;
        else if (texts[word] === name) return this.#values[n] ?? this.#offeredValue(n);
      }
      // An attribute the framer did not recognise is never a common name.
      if (!uncommon) return undefined;
    }
    this.#settle();
    return this.attr(name);
  }

  /** The value of attribute `n` of a lazy head, decoded from the offer (which must still stand) and kept. */
  #offeredValue(n: number): string {
    const offered = FRAME_HEAD;
    const words = offered.words;
    const k = offered.at + OFFERED_HEAD_WORDS + OFFERED_ATTR_WORDS * n;
    return (this.#values[n] = decodeOffered(this.#data, words[k + 2]!, words[k + 3]!, words[k + 6]!, offered.base));
  }

  get attrNames(): readonly string[] {
    if (this.#flags >= 0) this.#settle();
    return this.#names;
  }

  attrAt(k: number): string {
    return this.#value(k);
  }

  #value(k: number): string {
    if (this.#flags >= 0) this.#settle();
    const values = this.#values;
    let v = values[k];
    if (v === undefined) {
      const spans = this.#spans;
      const hash = spans[3 * k + 2]!;
      // The offer still stands (no other frame offered since, memory not grown): compare in the module's memory.
      const offered = hash !== NO_HASH && this.#offerStands();
      values[k] = v = offered ? decodeOffered(this.#data, spans[3 * k]!, spans[3 * k + 1]!, hash, FRAME_HEAD.base) : decodeValue(this.#data, spans[3 * k]!, spans[3 * k + 1]!);
    }
    return v;
  }

  get attrs(): Map<string, string> {
    if (this.#flags >= 0) this.#settle();
    if (this.#map === undefined) {
      const map = new Map<string, string>();
      for (let k = 0; k < this.#count; k++) map.set(this.#names[k]!, this.#value(k));
      this.#map = map;
    }
    return this.#map;
  }
}

const EMPTY_BUFFER = Buffer.alloc(0);

/**
 * Parse the start tag at data[start]. `limit` bounds the scan (frame end).
 * `origin` is where the element's bytes begin in `data`: the returned `end`
 * counts from there (a frame inside a read chunk needs no subarray()).
 * `into`: read into this head instead of a new one (it is returned).
 * Returns null if the bytes are not a start tag (never happens for frames).
 */
export function readHead(data: Buffer, start: number, limit: number, origin = 0, into?: ParsedHead): Head | null {
  const head = into ?? new ParsedHead();
  return head.read(data, start, limit, origin) ? head : null;
}

/**
 * The start tag of the first child element after the opening tag ending at
 * `headEnd`, skipping text and CDATA. Null when the element has no children.
 */
export function readFirstChild(data: Buffer, headEnd: number, limit: number): Head | null {
  let i = headEnd;
  while (i < limit) {
    const lt = data.indexOf(LT, i);
    if (lt < 0 || lt >= limit) return null;
    const next = data[lt + 1];
    if (next === SLASH) return null; // end of the element itself
    if (next === BANG) {
      // CDATA: skip past "]]>"
      const close = data.indexOf("]]>", lt, "latin1");
      if (close < 0 || close >= limit) return null;
      i = close + 3;
      continue;
    }
    if (next === QMARK) return null;
    return readHead(data, lt, limit);
  }
  return null;
}
