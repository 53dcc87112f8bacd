// Attribute values as the server's parser reports them (entity references
// decoded, literal line breaks and tabs normalised to spaces), and the
// tables that make a repeated value cheap: short words that recur in nearly
// every stanza come back as shared constants, and the ASCII values decoded
// lately (addresses, ids) as the same string after one compare of their
// bytes (docs/performance.md, "Per stanza: no allocation"). The head
// reader (head.ts) decodes every value through here.

// Buffer#toString's argument handling costs more than the decode for the short
// strings read here: call the native slicers directly (fall back if absent).
type Slicer = (this: Buffer, start: number, end: number) => string;
const natives = Buffer.prototype as unknown as { utf8Slice?: Slicer; latin1Slice?: Slicer };
export const utf8Slice: Slicer = natives.utf8Slice ?? function (this: Buffer, start: number, end: number) {
  return this.toString("utf8", start, end);
};
/** For bytes known to be ASCII: the same string as utf8Slice, without UTF-8 decoding. */
export const asciiSlice: Slicer = natives.latin1Slice ?? utf8Slice;

/**
 * Words that occur in nearly every stanza, returned as shared constants
 * instead of a fresh string per stanza. A word of up to 12 bytes is packed
 * into three integers, so finding one costs a pass over its bytes and a few
 * integer compares among the words of its length.
 */
export class Words {
  static readonly LONGEST = 12;
  readonly texts: readonly string[];
  /** Per length: [a, b, c, index] for each word of that length, flat. */
  readonly #byLength: number[][] = Array.from({ length: Words.LONGEST + 1 }, () => []);

  constructor(words: readonly string[]) {
    this.texts = words;
    words.forEach((text, index) => {
      const bytes = Buffer.from(text, "latin1");
      if (bytes.length === 0 || bytes.length > Words.LONGEST) throw new Error(`Words: "${text}" does not fit`);
      this.#byLength[bytes.length]!.push(Words.#pack(bytes, 0, 0, bytes.length), Words.#pack(bytes, 0, 4, bytes.length), Words.#pack(bytes, 0, 8, bytes.length), index);
    });
  }

  /** Bytes from..from+3 of data[start, end) as one integer (zeros past the end). */
  static #pack(data: Buffer, start: number, from: number, n: number): number {
    let v = 0;
    for (let j = from; j < n && j < from + 4; j++) v |= data[start + j]! << ((j - from) * 8);
    return v;
  }

  /** The index of the word data[start, end) in `texts`, or -1. */
  index(data: Buffer, start: number, end: number): number {
    const n = end - start;
    if (n > Words.LONGEST || this.#byLength[n]!.length === 0) return -1;
    const a = Words.#pack(data, start, 0, n);
    const b = n > 4 ? Words.#pack(data, start, 4, n) : 0;
    const c = n > 8 ? Words.#pack(data, start, 8, n) : 0;
    return this.#match(n, a, b, c);
  }

  #match(n: number, a: number, b: number, c: number): number {
    const list = this.#byLength[n]!;
    for (let k = 0; k < list.length; k += 4) {
      if (list[k] === a && list[k + 1] === b && list[k + 2] === c) return list[k + 3]!;
    }
    return -1;
  }

  /** The shared string for the bytes data[start, end), or undefined. */
  find(data: Buffer, start: number, end: number): string | undefined {
    const k = this.index(data, start, end);
    return k < 0 ? undefined : this.texts[k];
  }
}

// Attribute values that recur in nearly every stanza (type, xml:lang).
const COMMON_VALUES = new Words(["chat", "groupchat", "normal", "headline", "error", "get", "set", "result",
  "subscribe", "subscribed", "unsubscribe", "unsubscribed", "unavailable", "probe", "en"]);

/** A value's hash from the framer (30 bits, see asm/framer.ts valueHash), or none. */
export const NO_HASH = -1;

/** Longest value kept among the recent ones, and how many slots each table has. */
export const RECENT_LONGEST = 128;
export const RECENT_SLOTS = 256;
const RECENT_MASK = RECENT_SLOTS - 1;

/** Decode an attribute value or text run: entities and (for attributes) nothing else. */
export function decodeValue(data: Buffer, start: number, end: number): string {
  const common = COMMON_VALUES.find(data, start, end);
  if (common !== undefined) return common;
  // Most values have no reference and no line break: one pass over the
  // bytes tells, whether they are all ASCII, and their slot in RECENT.
  let ascii = true;
  let h = 0;
  for (let i = start; i < end; i++) {
    const b = data[i]!;
    if (b === AMP || b === 0x09 || b === 0x0a || b === 0x0d) return decodeSpecial(utf8Slice.call(data, start, end));
    if (b >= 0x80) ascii = false;
    h = (h * 31 + b) | 0;
  }
  if (!ascii) return utf8Slice.call(data, start, end);
  const n = end - start;
  if (n > RECENT_LONGEST) return asciiSlice.call(data, start, end);
  const slot = h & RECENT_MASK;
  const seen = RECENT[slot];
  if (seen !== undefined && seen.length === n && sameBytes(seen, data, start, n)) return seen;
  return (RECENT[slot] = asciiSlice.call(data, start, end));
}

function sameBytes(text: string, data: Buffer, start: number, n: number): boolean {
  let j = 0;
  while (j < n && text.charCodeAt(j) === data[start + j]) j++;
  return j === n;
}

/**
 * The ASCII values decoded lately (addresses, ids), by a hash of their
 * bytes: a stream repeats its addresses, and a value found here costs a
 * compare instead of a new string. Bounded: one string per slot.
 */
const RECENT: Array<string | undefined> = new Array<string | undefined>(RECENT_SLOTS).fill(undefined);

/**
 * A value of the frame on offer (its bytes at `base` + start in the module's
 * memory), given the framer's hash of it: found among the recent values of
 * offered frames with a compare four bytes at a time, and no pass over its
 * bytes to hash it.
 */
export function decodeOffered(data: Buffer, start: number, end: number, hash: number, base: number): string {
  const n = end - start;
  const slot = hash & RECENT_MASK;
  const seen = OFFERED_RECENT[slot];
  // What a slot holds is plain ASCII of at most RECENT_LONGEST bytes: the same bytes are the same value.
  if (seen !== undefined && seen.length === n && OFFERED_MEMORY.same(base + start, OFFERED_MEMORY.table + slot * RECENT_LONGEST, n)) return seen;
  return keepOffered(data, start, end, slot, base);
}

/** decodeOffered's miss: decode, and keep the value in its slot when its bytes are its text (plain ASCII, no reference or line break). */
function keepOffered(data: Buffer, start: number, end: number, slot: number, base: number): string {
  const memory = OFFERED_MEMORY;
  if (end - start > RECENT_LONGEST || memory.table === 0) return decodeValue(data, start, end);
  for (let i = start; i < end; i++) {
    const b = data[i]!;
    if (b >= 0x80 || b === AMP || b === 0x09 || b === 0x0a || b === 0x0d) return decodeValue(data, start, end);
  }
  const v = COMMON_VALUES.find(data, start, end) ?? asciiSlice.call(data, start, end);
  OFFERED_RECENT[slot] = v;
  memory.bytes.copyWithin(memory.table + slot * RECENT_LONGEST, base + start, base + end);
  return v;
}

/** The values decoded lately from offered frames, by the framer's hash; their bytes are in OFFERED_MEMORY's table. */
const OFFERED_RECENT: Array<string | undefined> = new Array<string | undefined>(RECENT_SLOTS).fill(undefined);

/**
 * The module's memory as the head reader sees it: where the offered chunks
 * lie, and a table of RECENT_SLOTS × RECENT_LONGEST bytes (at `table`)
 * holding the bytes of each OFFERED_RECENT value. The WebAssembly framer
 * attaches it, and again after the memory grew (the old buffer is then detached).
 */
export class OfferedMemory {
  view = new DataView(new ArrayBuffer(0));
  bytes = new Uint8Array(0);
  table = 0;

  attach(buffer: ArrayBuffer, table: number): void {
    this.view = new DataView(buffer);
    this.bytes = new Uint8Array(buffer);
    if (this.table !== table) OFFERED_RECENT.fill(undefined);
    this.table = table;
  }

  /** Whether the n bytes at a and at b are the same (four at a time; a last, overlapping four for the tail). */
  same(a: number, b: number, n: number): boolean {
    const view = this.view;
    if (n < 4) {
      for (let j = 0; j < n; j++) if (view.getUint8(a + j) !== view.getUint8(b + j)) return false;
      return true;
    }
    for (let j = 0; j + 4 <= n; j += 4) if (view.getInt32(a + j, true) !== view.getInt32(b + j, true)) return false;
    return view.getInt32(a + n - 4, true) === view.getInt32(b + n - 4, true);
  }
}

export const OFFERED_MEMORY = new OfferedMemory();

function decodeSpecial(raw: string): string {
  // XML attribute-value normalisation: a literal tab, line feed or carriage
  // return (a CR LF pair counts once) reads as a space; written as a
  // character reference it stays. So: normalise first, then decode.
  const spaced = WS_IN_VALUE.test(raw) ? raw.replace(WS_RUN, " ") : raw;
  return spaced.includes("&") ? unescapeXml(spaced) : spaced;
}

const AMP = 0x26;
const WS_IN_VALUE = /[\t\n\r]/;
const WS_RUN = /\r\n|[\t\n\r]/g;

const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

export function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, ref: string) => {
    if (ref.charCodeAt(0) === 0x23) {
      const code = ref[1] === "x" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return NAMED[ref] ?? m;
  });
}
