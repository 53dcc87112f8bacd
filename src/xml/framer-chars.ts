// The framer's character tables and restricted-XML checks (RFC 6120 §11,
// XML 1.0 §2.2): byte classes, the bytes that end a run of character data
// or an attribute value, the native and word-at-a-time searches the scan
// uses for long runs, UTF-8 lead bytes, and what an entity reference may
// name. Tables and pure functions only; the state machine is framer.ts.

// Byte classes.
export const C_WS = 1;
export const C_NAME_START = 2;
export const C_NAME = 4;
export const C_BAD = 8; // control characters XML 1.0 forbids (§2.2 Char)
export const CLASS = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  let c = 0;
  if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) c |= C_WS;
  else if (b < 0x20) c |= C_BAD;
  const alpha = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
  // Multi-byte UTF-8 (>= 0x80) is accepted in names; isUtf8 already vetted it.
  if (alpha || b === 0x5f || b === 0x3a || b >= 0x80) c |= C_NAME_START | C_NAME;
  if ((b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2e) c |= C_NAME;
  CLASS[b] = c;
}

export const LT = 0x3c, GT = 0x3e, SLASH = 0x2f, BANG = 0x21, QMARK = 0x3f, AMP = 0x26;
export const EQ = 0x3d, DQ = 0x22, SQ = 0x27, SEMI = 0x3b, RSQB = 0x5d;
// Bytes that end a run of character data, and of an attribute value in '…' / "…".
export const STOP_TEXT = new Uint8Array(256);
for (let b = 0; b < 256; b++) if (b === LT || b === AMP || CLASS[b]! & C_BAD) STOP_TEXT[b] = 1;
export const STOP_SQ = STOP_TEXT.slice();
STOP_SQ[SQ] = 1;
export const STOP_DQ = STOP_TEXT.slice();
STOP_DQ[DQ] = 1;
export const CDATA_OPEN = Buffer.from("[CDATA[", "latin1");
export const MAX_ENTITY = 12;

/** UTF-8 sequence length announced by a lead byte (1 for ASCII and for invalid leads). */
export function seqLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 1;
}

/** Runs shorter than this are scanned byte by byte; longer ones natively (a native call costs ~15 ns). */
export const SHORT_RUN = 24;

/** Offset of `byte` at or after `from`, or the length when absent (native memchr). */
export function indexOrLen(chunk: Buffer, byte: number, from: number): number {
  const j = chunk.indexOf(byte, from);
  return j < 0 ? chunk.length : j;
}

/**
 * Offset of the first C0 control byte XML forbids (all but tab, LF, CR) in
 * [from, len), or len. Four bytes at a time where the buffer allows: a
 * word with no byte below 0x20 (the classic "has less than" bit trick) is
 * skipped without looking at its bytes.
 */
export function findControl(chunk: Buffer, from: number, len: number): number {
  let i = from;
  if (len - i >= 16) {
    const base = chunk.byteOffset;
    const lead = i + ((4 - ((base + i) & 3)) & 3);
    for (; i < lead; i++) if (CLASS[chunk[i]!]! & C_BAD) return i;
    const words = wordsOf(chunk.buffer);
    const w0 = (base + i) >> 2;
    const w1 = w0 + ((len - i) >> 2);
    for (let w = w0; w < w1; w++) {
      const x = words[w]!;
      if (((x - 0x20202020) & ~x & 0x80808080) !== 0) {
        const k0 = w * 4 - base;
        for (let k = k0; k < k0 + 4; k++) if (CLASS[chunk[k]!]! & C_BAD) return k;
      }
    }
    i = w1 * 4 - base;
  }
  for (; i < len; i++) if (CLASS[chunk[i]!]! & C_BAD) return i;
  return len;
}

// A 32-bit view of the last input's backing store, reused while the input
// comes from the same ArrayBuffer (one per socket read, or a shared pool).
let lastStore: ArrayBufferLike | null = null;
let lastWords: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
function wordsOf(store: ArrayBufferLike): Uint32Array<ArrayBufferLike> {
  // Also rebuilt when the store's size changed (a resizable ArrayBuffer), so the
  // view always covers every byte of the chunk.
  if (store !== lastStore || lastWords.length !== store.byteLength >> 2) {
    lastStore = store;
    lastWords = new Uint32Array(store, 0, store.byteLength >> 2);
  }
  return lastWords;
}

/**
 * The bytes between '&' and ';' (`n` of `e`): a character reference that
 * names an XML Char, or one of the five predefined entities (XML 1.0 §4.6).
 * Any other name was never declared: restricted XML (RFC 6120 §11.1).
 */
export function checkEntity(e: Uint8Array, n: number): "restricted" | "malformed" | null {
  if (n === 0) return "malformed";
  if (e[0] === 0x23) {
    // Character reference: &#NNN; or &#xHHH;, and it must name an XML Char.
    let code = 0;
    let k = 1;
    const hex = n > 1 && e[1] === 0x78;
    if (hex) k = 2;
    if (k >= n) return "malformed";
    for (; k < n; k++) {
      const d = e[k]!;
      let v: number;
      if (d >= 0x30 && d <= 0x39) v = d - 0x30;
      else if (hex && d >= 0x61 && d <= 0x66) v = d - 0x57;
      else if (hex && d >= 0x41 && d <= 0x46) v = d - 0x37;
      else return "malformed";
      code = code * (hex ? 16 : 10) + v;
      if (code > 0x10ffff) return "malformed";
    }
    const ok = code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
    return ok ? null : "malformed";
  }
  if (!(CLASS[e[0]!]! & C_NAME_START)) return "malformed";
  for (let k = 1; k < n; k++) if (!(CLASS[e[k]!]! & C_NAME)) return "malformed";
  // The five predefined entities (XML 1.0 §4.6); anything else was never declared.
  if (matches(e, n, "amp") || matches(e, n, "lt") || matches(e, n, "gt") || matches(e, n, "quot") || matches(e, n, "apos")) {
    return null;
  }
  return "restricted";
}

function matches(e: Uint8Array, n: number, word: string): boolean {
  if (n !== word.length) return false;
  for (let k = 0; k < n; k++) if (e[k] !== word.charCodeAt(k)) return false;
  return true;
}
