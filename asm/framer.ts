// The framer's byte scanner in AssemblyScript, compiled to WebAssembly
// (`npm run build:wasm`). It is a port of the state machine in
// src/xml/framer.ts and must behave identically: same frames, same errors at
// the same offsets, whatever the chunking (framer-wasm.test.ts checks this
// differentially). The JS wrapper (src/xml/framer-wasm.ts) copies a chunk into
// this module's memory and calls write() once; the scan records every frame
// boundary of the chunk, then the wrapper emits the frames as views of the
// caller's Buffer. Callbacks never run inside WebAssembly.
//
// One instance serves every framer of the process: each framer's state is a
// small struct in linear memory (STATE_SIZE bytes, with room for short element
// names inline), allocated by newState() and released by freeState().

// ---- state struct layout (byte offsets) ----------------------------------
const O_STATE = 0;
const O_DEPTH = 4;
const O_RETURN = 8; // where S_ENTITY goes back to
const O_PENDING = 12; // bytes held by the wrapper for the frame in progress
const O_NAMES = 16; // pointer to the open elements' names, back to back
const O_NAMES_CAP = 20;
const O_NAME_POS = 24;
const O_CMP = 28;
const O_CMP_END = 32;
const O_ATTRS = 36;
const O_ATTR_NAME_LEN = 40;
const O_SAW_SPACE = 44;
const O_QUOTE = 48;
const O_BANG = 52;
const O_BRACKETS = 56;
const O_ENTITY_LEN = 60;
const O_ENTITY = 64; // 12 bytes
const O_PI_LEN = 76;
const O_PI_TARGET = 80;
const O_PI_Q = 84;
const O_DECL_SEEN = 88;
const O_CARRY_LEN = 92;
const O_CARRY_NEED = 96;
const O_CARRY = 100; // 4 bytes
const O_MAX_STANZA = 104;
const O_MAX_DEPTH = 108;
const O_MAX_ATTRS = 112;
const O_MAX_HEADER = 116;
const O_ENDS = 120; // pointer to the end offsets of the open elements' names (i32 each)
const O_ENDS_CAP = 124; // entries
const HEAD_SIZE = 128;
// The allocator's blocks are 16-byte multiples with a 4-byte header: 204
// bytes make a 208-byte block; 208 bytes (48 of inline names) made a 224-byte one.
const INLINE_NAMES = 44;
const INLINE_ENDS = 8;
// The names area always has this many bytes past its last name, so that a
// name is copied and compared eight bytes at a time.
const NAME_SLACK = 8;
const STATE_SIZE = HEAD_SIZE + INLINE_NAMES + INLINE_ENDS * 4;

// ---- results of the last call (read by the wrapper right after it) --------
const RESULT = memory.data(20);
const R_CODE = 0; // error code, 0 = none
const R_DETAIL = 4;
const R_POS = 8; // error position in the chunk
const R_HOLD = 12; // start of the unfinished frame to hold, or -1
const R_HEADS = 16; // i32 words written to the heads area

// Error codes and details: indexes into the wrapper's tables.
const E_UTF8 = 1, E_NWF = 2, E_TEXT = 3, E_DEEP = 4, E_RESTRICTED = 5, E_NAME = 6;
const E_ATTRS = 7, E_HEADER_INVALID = 8, E_HEADER_SIZE = 9, E_STANZA_SIZE = 10;
const D_CONTROL = 1, D_EXPECT_HEADER = 2, D_END_BEFORE_HEADER = 3, D_BANG_OUTSIDE = 4, D_PI = 5;
const D_AFTER_LT = 6, D_ELEMENT_NAME = 7, D_START_TAG = 8, D_ATTR_NAME = 9, D_NO_VALUE = 10;
const D_UNQUOTED = 11, D_LT_IN_VALUE = 12, D_EXPECT_GT = 13, D_SELF_CLOSED_HEADER = 14;
const D_END_MISMATCH = 15, D_END_TAG = 16, D_COMMENT = 17, D_DOCTYPE = 18, D_BANG = 19;
const D_UNDECLARED = 20, D_BAD_REF = 21, D_BAD_ENTITY = 22;

// Frame kinds (as in framer.ts).
const FRAME_HEADER = 1, FRAME_STANZA = 2, FRAME_WHITESPACE = 3, FRAME_CLOSE = 4;

// Parser states (as in framer.ts).
const S_PROLOG = 0, S_STREAM = 1, S_LT = 2, S_START_NAME = 3, S_ATTRS = 4, S_ATTR_NAME = 5;
const S_ATTR_EQ = 6, S_ATTR_QUOTE = 7, S_ATTR_VALUE = 8, S_EMPTY_GT = 9, S_END_NAME = 10;
const S_END_WS = 11, S_TEXT = 12, S_BANG = 13, S_CDATA = 14, S_ENTITY = 15, S_PI = 16;
const S_CLOSED = 17, S_DEAD = 18;

const MAX_NAME = 1024;
const MAX_ENTITY = 12;

// Byte classes.
const C_WS: u8 = 1, C_NAME_START: u8 = 2, C_NAME: u8 = 4, C_BAD: u8 = 8;
const CLASS = memory.data(256);
const LT = 0x3c, GT = 0x3e, SLASH = 0x2f, BANG = 0x21, QMARK = 0x3f, AMP = 0x26;
const EQ = 0x3d, DQ = 0x22, SQ = 0x27, SEMI = 0x3b, RSQB = 0x5d;
const CDATA_OPEN = memory.data<u8>([0x5b, 0x43, 0x44, 0x41, 0x54, 0x41, 0x5b]); // "[CDATA["
const CDATA_LEN = 7;

let ready = false;
function init(): void {
  for (let b = 0; b < 256; b++) {
    let c: u8 = 0;
    if (b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d) c |= C_WS;
    else if (b < 0x20) c |= C_BAD;
    const alpha = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
    if (alpha || b == 0x5f || b == 0x3a || b >= 0x80) c |= C_NAME_START | C_NAME;
    if ((b >= 0x30 && b <= 0x39) || b == 0x2d || b == 0x2e) c |= C_NAME;
    store<u8>(CLASS + <usize>b, c);
  }
  ready = true;
}

// @ts-ignore: decorator
@inline function cls(b: u32): u8 {
  return load<u8>(CLASS + <usize>b);
}

// ---- memory for the wrapper ------------------------------------------------

/** Where the last write() or scan() left its results (R_* offsets). */
export function result(): usize {
  return RESULT;
}

export function alloc(size: i32): usize {
  return heap.alloc(<usize>size);
}

export function release(ptr: usize): void {
  heap.free(ptr);
}

export function newState(maxStanza: i32, maxDepth: i32, maxAttrs: i32, maxHeader: i32): usize {
  if (!ready) init();
  const st = heap.alloc(STATE_SIZE);
  memory.fill(st, 0, HEAD_SIZE);
  store<i32>(st, S_PROLOG, O_STATE);
  store<i32>(st, S_TEXT, O_RETURN);
  store<u32>(st, <u32>(st + HEAD_SIZE), O_NAMES);
  store<i32>(st, INLINE_NAMES, O_NAMES_CAP);
  store<u32>(st, <u32>(st + HEAD_SIZE + INLINE_NAMES), O_ENDS);
  store<i32>(st, INLINE_ENDS, O_ENDS_CAP);
  memory.fill(st + HEAD_SIZE + INLINE_NAMES, 0, INLINE_ENDS * 4);
  setLimits(st, maxStanza, maxDepth, maxAttrs, maxHeader);
  return st;
}

export function setLimits(st: usize, maxStanza: i32, maxDepth: i32, maxAttrs: i32, maxHeader: i32): void {
  store<i32>(st, maxStanza, O_MAX_STANZA);
  store<i32>(st, maxDepth, O_MAX_DEPTH);
  store<i32>(st, maxAttrs, O_MAX_ATTRS);
  store<i32>(st, maxHeader, O_MAX_HEADER);
}

export function freeState(st: usize): void {
  const names = <usize>load<u32>(st, O_NAMES);
  if (names != st + HEAD_SIZE) heap.free(names);
  const ends = <usize>load<u32>(st, O_ENDS);
  if (ends != st + HEAD_SIZE + INLINE_NAMES) heap.free(ends);
  heap.free(st);
}

/** Stream restart: the next bytes are a new prolog and stream header. */
export function resetState(st: usize): void {
  store<i32>(st, S_PROLOG, O_STATE);
  store<i32>(st, 0, O_DEPTH);
  store<i32>(st, 0, O_NAME_POS);
  store<i32>(st, 0, O_PENDING);
  store<i32>(st, 0, O_DECL_SEEN);
}

export function stopState(st: usize): void {
  store<i32>(st, S_DEAD, O_STATE);
  store<i32>(st, 0, O_PENDING);
}

// ---- UTF-8 ----------------------------------------------------------------

/** UTF-8 sequence length announced by a lead byte (1 for ASCII and for invalid leads). */
// @ts-ignore: decorator
@inline function seqLength(lead: u32): i32 {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 1;
}

/**
 * Whether [p, end) is well-formed UTF-8 (Unicode Table 3-7). Reads up to 15
 * bytes past `end` (see findStop): every caller's range is followed by more
 * of its block (the chunk by the records area, the carry by the state).
 */
function validUtf8(p: usize, end: usize): bool {
  while (p < end) {
    // Whole ASCII blocks of 64 bytes with one test; then ASCII runs 16 bytes
    // at a time, the last block too (its lanes past end masked off); then
    // straight to the first byte of 0x80 or more.
    while (p + 64 <= end && !v128.any_true(v128.and(v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48))), i8x16.splat(<i8>0x80)))) p += 64;
    if (p >= end) break;
    const rest = end - p;
    let m = i8x16.bitmask(v128.load(p));
    if (rest < 16) m &= (1 << <i32>rest) - 1;
    if (m == 0) {
      p += rest < 16 ? rest : 16;
      continue;
    }
    p += <usize>ctz(m);
    const b0 = <u32>load<u8>(p);
    if (b0 < 0xc2) return false;
    if (b0 <= 0xdf) {
      if (p + 2 > end) return false;
      if ((<u32>load<u8>(p, 1) & 0xc0) != 0x80) return false;
      p += 2;
      continue;
    }
    if (b0 <= 0xef) {
      if (p + 3 > end) return false;
      const b1 = <u32>load<u8>(p, 1);
      const lo: u32 = b0 == 0xe0 ? 0xa0 : 0x80;
      const up: u32 = b0 == 0xed ? 0x9f : 0xbf;
      if (b1 < lo || b1 > up) return false;
      if ((<u32>load<u8>(p, 2) & 0xc0) != 0x80) return false;
      p += 3;
      continue;
    }
    if (b0 <= 0xf4) {
      if (p + 4 > end) return false;
      const b1 = <u32>load<u8>(p, 1);
      const lo: u32 = b0 == 0xf0 ? 0x90 : 0x80;
      const up: u32 = b0 == 0xf4 ? 0x8f : 0xbf;
      if (b1 < lo || b1 > up) return false;
      if ((<u32>load<u8>(p, 2) & 0xc0) != 0x80) return false;
      if ((<u32>load<u8>(p, 3) & 0xc0) != 0x80) return false;
      p += 4;
      continue;
    }
    return false;
  }
  return true;
}

/** framer.ts #checkUtf8: validate, carrying a sequence split at the end. */
function checkUtf8(st: usize, buf: usize, len: i32): bool {
  let start = 0;
  let carryLen = load<i32>(st, O_CARRY_LEN);
  if (carryLen > 0) {
    const need = load<i32>(st, O_CARRY_NEED);
    while (carryLen < need && start < len) {
      const b = <u32>load<u8>(buf + <usize>start);
      if ((b & 0xc0) != 0x80) return false;
      store<u8>(st + O_CARRY + <usize>carryLen, <u8>b);
      carryLen++;
      start++;
    }
    store<i32>(st, carryLen, O_CARRY_LEN);
    if (carryLen < need) return true;
    if (!validUtf8(st + O_CARRY, st + O_CARRY + <usize>carryLen)) return false;
    store<i32>(st, 0, O_CARRY_LEN);
  }
  let tail = len;
  let i = len - 1;
  let k = 0;
  while (i >= start && k < 3 && (<u32>load<u8>(buf + <usize>i) & 0xc0) == 0x80) {
    i--;
    k++;
  }
  if (i >= start) {
    const need = seqLength(<u32>load<u8>(buf + <usize>i));
    if (need > 1 && i + need > len) tail = i;
  }
  if (tail > start && !validUtf8(buf + <usize>start, buf + <usize>tail)) return false;
  if (tail < len) {
    store<i32>(st, seqLength(<u32>load<u8>(buf + <usize>tail)), O_CARRY_NEED);
    let n = 0;
    for (let j = tail; j < len; j++) store<u8>(st + O_CARRY + <usize>(n++), load<u8>(buf + <usize>j));
    store<i32>(st, n, O_CARRY_LEN);
  }
  return true;
}

/** Bytes of a sequence still missing at the end of the input so far (framer.ts finish()). */
export function carried(st: usize): i32 {
  return load<i32>(st, O_CARRY_LEN);
}

// ---- searches ---------------------------------------------------------------

/**
 * First byte in [i, len) that ends character data ('<', '&', a forbidden
 * control byte) or, with q != 0, an attribute value (also the quote q); len
 * when none. Sixteen bytes at a time with SIMD, the last block too: it may
 * read up to 15 bytes past len, whose lanes are masked off. The chunk is
 * followed in memory by its records area (framer-wasm.ts scratch()), so
 * those bytes are always there to read.
 */
// @ts-ignore: decorator
@inline function findStop(buf: usize, i: i32, len: i32, q: i32): i32 {
  const vLt = i8x16.splat(<i8>LT);
  const vAmp = i8x16.splat(<i8>AMP);
  const vQ = i8x16.splat(<i8>q);
  const vSp = i8x16.splat(0x20);
  const vTab = i8x16.splat(0x09);
  const vLf = i8x16.splat(0x0a);
  const vCr = i8x16.splat(0x0d);
  while (i < len) {
    const v = v128.load(buf + <usize>i);
    const ctl = v128.andnot(i8x16.lt_u(v, vSp), v128.or(v128.or(i8x16.eq(v, vTab), i8x16.eq(v, vLf)), i8x16.eq(v, vCr)));
    let m = i8x16.bitmask(v128.or(v128.or(i8x16.eq(v, vLt), i8x16.eq(v, vAmp)), v128.or(i8x16.eq(v, vQ), ctl)));
    const rest = len - i;
    if (rest < 16) m &= (1 << rest) - 1;
    if (m != 0) return i + ctz(m);
    i += 16;
  }
  return len;
}

// ---- the scan ---------------------------------------------------------------

let st: usize = 0; // the framer being scanned
let out: usize = 0; // frame records: (end << 3) | kind, one u32 each
let nOut = 0;

// The heads area: for each stanza whose start tag lies wholly inside the
// scanned bytes, one entry of i32 words, in frame order (offsets count from
// the chunk's first byte):
//   [tag start ('<'), name end, tag end (past '>'), attribute count n,
//    the name's first 8 bytes packed, flags,
//    then n × (name start, name end, value start, value end, name packed,
//              value hash, name's common index)]
// where "packed" is two words: bytes 0-3 and 4-7 of the name, little-endian,
// zero past its end (both zero for a name longer than 8 bytes), the value
// hash mixes the value's length with its first and last eight bytes (see
// valueHash), a common index is the name's place in the wrapper's table of
// common names (setNames) or -1, and the flags are the element name's common
// index + 1 (bits 0-7), HF_DUPLICATE (a name repeats), HF_NAMESPACED (a
// name needs namespace work: a prefix but xml:lang, or an xmlns
// attribute) and, from bit HF_POSITIONS, four bits for each of the first
// common names that setNames says are attribute names: the index + 1 of the
// attribute of that name, 0 when the tag has none, 15 when it is the 15th
// or later (the reader then looks for it). The wrapper hands an entry to the head reader
// (src/xml/head.ts), which then need not scan the tag, nor recognise names,
// nor look for repeated ones, nor hash a value to find it among the values
// it decoded lately. An entry costs at most 1.75 words per byte of its tag
// (`<a/>`: 4 bytes, 7 words; each attribute ` b=''`: 5 bytes, 8 words), so
// 2 × len + 16 words hold a chunk's entries, an unfinished one included.
const HEAD_WORDS = 7;
const ATTR_WORDS = 8;
const HF_DUPLICATE = 1 << 8;
const HF_NAMESPACED = 1 << 9;
const HF_POSITIONS = 10;
/** At most this many names have a position in the flags (bits 10-29). */
const MAX_POSITIONED = 5;
let heads: usize = 0;
let nHead = 0;
// The stanza start tag being read: its flags so far, and the common
// attribute names it has, by index (a mask).
let hf = 0;
let seen: u32 = 0;

// The wrapper's common names (setNames), in an open-addressed table of
// NAME_SLOTS entries of (length, packed low, packed high, index), length 0
// when empty: a name is found by its hash and usually one compare. And which
// of them are xmlns and xml:lang.
const NAME_SLOTS = 32;
const NAME_TABLE = memory.data(NAME_SLOTS * 16);
let nameXmlns = -1;
let nameXmlLang = -1;
let namePositioned = 0;

// @ts-ignore: decorator
@inline function nameSlot(n: i32, lo: i32, hi: i32): u32 {
  return (<u32>(lo ^ (hi * 31) ^ n) * 0x9e3779b1) >> 27;
}

/**
 * `table`: n entries of (length, packed low, packed high), each name at most
 * 8 bytes (at most NAME_SLOTS / 2 of them, and 32 in all: a mask holds them);
 * the first `positioned` of them (at most MAX_POSITIONED) have their
 * attribute's position recorded in an entry's flags.
 */
export function setNames(table: usize, n: i32, xmlns: i32, xmlLang: i32, positioned: i32): void {
  memory.fill(NAME_TABLE, 0, NAME_SLOTS * 16);
  for (let k = 0; k < n && k < NAME_SLOTS / 2; k++) {
    const e = table + <usize>k * 12;
    const len = load<i32>(e), lo = load<i32>(e, 4), hi = load<i32>(e, 8);
    let slot = nameSlot(len, lo, hi);
    while (load<i32>(NAME_TABLE + <usize>(slot << 4)) != 0) slot = (slot + 1) & (NAME_SLOTS - 1);
    const t = NAME_TABLE + <usize>(slot << 4);
    store<i32>(t, len);
    store<i32>(t, lo, 4);
    store<i32>(t, hi, 8);
    store<i32>(t, k, 12);
  }
  nameXmlns = xmlns;
  nameXmlLang = xmlLang;
  namePositioned = min(positioned, MAX_POSITIONED);
}

/** The common index of the name of n bytes packed as (lo, hi), or -1. */
function commonName(n: i32, lo: i32, hi: i32): i32 {
  if (n > 8) return -1;
  let slot = nameSlot(n, lo, hi);
  let t = NAME_TABLE + <usize>(slot << 4);
  let len = load<i32>(t);
  while (len != 0) {
    if (len == n && load<i32>(t, 4) == lo && load<i32>(t, 8) == hi) return load<i32>(t, 12);
    slot = (slot + 1) & (NAME_SLOTS - 1);
    t = NAME_TABLE + <usize>(slot << 4);
    len = load<i32>(t);
  }
  return -1;
}

/** Whether the name buf[from, to) with common index `common` needs namespace work (see the flags above). */
function namespaced(buf: usize, from: i32, to: i32, common: i32, element: bool): bool {
  if (common >= 0) return element ? common == nameXmlLang : common == nameXmlns;
  for (let j = from; j < to; j++) if (load<u8>(buf + <usize>j) == 0x3a) return true;
  return false;
}

// @ts-ignore: decorator
@inline function headAt(k: i32): i32 {
  return load<i32>(heads + (<usize>k << 2));
}

/**
 * Whether attribute `a` of the entry at `hd`, whose name is not a common one,
 * has the same name as an earlier one (common names are told apart by their
 * index: the scan keeps a mask of those seen).
 */
function repeated(buf: usize, hd: i32, a: i32): bool {
  const start = headAt(attrWord(hd, a, 0));
  const n = headAt(attrWord(hd, a, 1)) - start;
  const lo = headAt(attrWord(hd, a, 4));
  const hi = headAt(attrWord(hd, a, 5));
  for (let k = 0; k < a; k++) {
    if (headAt(attrWord(hd, k, 7)) >= 0) continue;
    const ks = headAt(attrWord(hd, k, 0));
    if (headAt(attrWord(hd, k, 1)) - ks != n || headAt(attrWord(hd, k, 4)) != lo || headAt(attrWord(hd, k, 5)) != hi) continue;
    if (n <= 8 || memory.compare(buf + <usize>start, buf + <usize>ks, <usize>n) == 0) return true;
  }
  return false;
}

// @ts-ignore: decorator
@inline function headWord(k: i32, v: i32): void {
  store<i32>(heads + (<usize>k << 2), v);
}

/** Word k of attribute a of the entry at `at`. */
// @ts-ignore: decorator
@inline function attrWord(at: i32, a: i32, k: i32): i32 {
  return at + HEAD_WORDS + a * ATTR_WORDS + k;
}

/**
 * The name buf[from, to) packed: its bytes 0-7, little-endian, zero past its
 * end; zero for a name longer than 8 bytes. The load may read past the chunk
 * (into the records after it, which are in memory): the mask drops those bytes.
 */
// @ts-ignore: decorator
@inline function packed(buf: usize, from: i32, to: i32): u64 {
  const n = to - from;
  if (n > 8) return 0;
  const v = load<u64>(buf + <usize>from);
  return n == 8 ? v : v & ((<u64>1 << (<u64>n << 3)) - 1);
}

/** Words k and k + 1 of the heads area: the two halves of `v` (little-endian). */
// @ts-ignore: decorator
@inline function headWords(k: i32, v: u64): void {
  store<u64>(heads + (<usize>k << 2), v);
}

/**
 * A hash of the value buf[from, to), 30 bits: its length and its first and last eight
 * bytes (the loads may read outside the value, into the chunk or the records
 * after it; the bytes outside are masked off). Values that differ only in
 * the middle of a long value share a hash: the reader compares the bytes.
 */
// @ts-ignore: decorator
@inline function valueHash(buf: usize, from: i32, to: i32): i32 {
  const n = to - from;
  let a = load<u64>(buf + <usize>from);
  let b: u64 = 0;
  if (n < 8) a &= (<u64>1 << (<u64>n << 3)) - 1;
  else b = load<u64>(buf + <usize>(to - 8));
  let h = (a * 0x9e3779b97f4a7c15) ^ (b * 0xc2b2ae3d27d4eb4f) ^ <u64>n;
  h ^= h >> 29;
  return <i32>(<u32>(h ^ (h >> 32)) & 0x3fffffff); // 30 bits: a small integer in V8, and -1 stays free for "none"
}

/** The entry begun at word `at` is complete: its tag ends at `end`, with n attributes and these flags. */
// @ts-ignore: decorator
@inline function headDone(at: i32, n: i32, end: i32, flags: i32): void {
  headWord(at + 2, end);
  headWord(at + 3, n);
  headWord(at + 6, flags);
  nHead = attrWord(at, n, 0);
}

/**
 * Attribute `a` of the entry at `hd` is named buf[from, to): its words, its
 * common index, and the flags it sets (a repeated name, namespace work).
 */
// @ts-ignore: decorator
@inline function attrName(buf: usize, hd: i32, a: i32, from: i32, to: i32): void {
  headWord(attrWord(hd, a, 0), from);
  headWord(attrWord(hd, a, 1), to);
  const p = packed(buf, from, to);
  headWords(attrWord(hd, a, 4), p);
  const common = commonName(to - from, <i32>p, <i32>(p >> 32));
  headWord(attrWord(hd, a, 7), common);
  if (common >= 0) {
    if (seen & (<u32>1 << <u32>common)) hf |= HF_DUPLICATE;
    seen |= <u32>1 << <u32>common;
    if (common == nameXmlns) hf |= HF_NAMESPACED;
    if (common < namePositioned) hf |= min(a + 1, 15) << (HF_POSITIONS + (common << 2));
  } else {
    if (namespaced(buf, from, to, common, false)) hf |= HF_NAMESPACED;
    if (repeated(buf, hd, a)) hf |= HF_DUPLICATE;
  }
}

/** Attribute `a` of the entry at `hd` has the value buf[from, to). */
// @ts-ignore: decorator
@inline function attrValue(buf: usize, hd: i32, a: i32, from: i32, to: i32): void {
  headWord(attrWord(hd, a, 2), from);
  headWord(attrWord(hd, a, 3), to);
  headWord(attrWord(hd, a, 6), valueHash(buf, from, to));
}

/**
 * The length of the reference at `j` ('&') when it is one of the five
 * predefined entities and ends before `len`; 0 for anything else, which
 * S_ENTITY then reads byte by byte. (Loads may read past len, into the
 * records after the chunk: only bytes before len decide.)
 */
// @ts-ignore: decorator
@inline function predefined(buf: usize, j: i32, len: i32): i32 {
  const w = load<u32>(buf + <usize>j, 1);
  if ((w & 0xffffff) == 0x3b746c || (w & 0xffffff) == 0x3b7467) return j + 4 <= len ? 4 : 0; // lt; gt;
  if (w == 0x3b706d61) return j + 5 <= len ? 5 : 0; // amp;
  if ((w == 0x746f7571 || w == 0x736f7061) && j + 6 <= len && load<u8>(buf + <usize>j, 5) == SEMI) return 6; // quot; apos;
  return 0;
}

/**
 * findStop, stepping over the predefined entities that end before `len`: the
 * first byte from `i` that ends character data (or, with q, a value) other
 * than such an entity, or len.
 */
// @ts-ignore: decorator
@inline function findStopPast(buf: usize, i: i32, len: i32, q: i32): i32 {
  let j = findStop(buf, i, len, q);
  while (j < len && load<u8>(buf + <usize>j) == AMP) {
    const n = predefined(buf, j, len);
    if (n == 0) break;
    j = findStop(buf, j + n, len, q);
  }
  return j;
}

// Where simpleAttr() found the name's end and the value's start.
let simpleNameEnd = 0;
let simpleValueStart = 0;

/**
 * The end (past its closing quote) of a whole attribute `name='value'` or
 * `name="value"` that begins at `a` (a name-start byte) and ends before
 * `len`, with nothing in its value the byte-wise states would stop at but
 * its quote and predefined entities (no other reference, no '<', no control
 * byte); -1 for anything else, which those states then read as before.
 */
// @ts-ignore: decorator
@inline function simpleAttr(buf: usize, a: i32, len: i32): i32 {
  let i = a + 1;
  while (i < len && (cls(load<u8>(buf + <usize>i)) & C_NAME)) i++;
  if (i + 1 >= len || load<u8>(buf + <usize>i) != EQ) return -1;
  const q = <i32>load<u8>(buf + <usize>(i + 1));
  if (q != DQ && q != SQ) return -1;
  const j = findStopPast(buf, i + 2, len, q);
  if (j == len || <i32>load<u8>(buf + <usize>j) != q) return -1;
  simpleNameEnd = i;
  simpleValueStart = i + 2;
  return j + 1;
}

// @ts-ignore: decorator
@inline function record(kind: i32, end: i32): void {
  store<u32>(out + (<usize>nOut << 2), (<u32>end << 3) | <u32>kind);
  nOut++;
}

function fail(code: i32, detail: i32, pos: i32): i32 {
  store<i32>(st, S_DEAD, O_STATE);
  store<i32>(st, 0, O_PENDING);
  store<i32>(RESULT, code, R_CODE);
  store<i32>(RESULT, detail, R_DETAIL);
  store<i32>(RESULT, pos, R_POS);
  return nOut;
}

/** A frame ended at `end`: record it; the held bytes went into it. */
// @ts-ignore: decorator
@inline function emit(kind: i32, end: i32): void {
  record(kind, end);
  store<i32>(st, 0, O_PENDING);
}

function pushName(buf: usize, from: i32, to: i32, depth: i32): bool {
  const n = to - from;
  const ends = <usize>load<u32>(st, O_ENDS);
  const startOfName = depth == 0 ? 0 : load<i32>(ends + (<usize>(depth - 1) << 2));
  let pos = load<i32>(st, O_NAME_POS);
  if (pos + n - startOfName > MAX_NAME) return false;
  let names = <usize>load<u32>(st, O_NAMES);
  const cap = load<i32>(st, O_NAMES_CAP);
  if (pos + n + NAME_SLACK > cap) {
    const grown = max(cap * 2, pos + n + NAME_SLACK);
    const fresh = heap.alloc(<usize>grown);
    memory.copy(fresh, names, <usize>pos);
    if (names != st + HEAD_SIZE) heap.free(names);
    names = fresh;
    store<u32>(st, <u32>names, O_NAMES);
    store<i32>(st, grown, O_NAMES_CAP);
  }
  // Eight bytes at a time: the names area keeps NAME_SLACK bytes past its
  // last name, and the chunk is followed by its records area.
  const dst = names + <usize>pos;
  const src = buf + <usize>from;
  for (let k = 0; k < n; k += 8) store<u64>(dst + <usize>k, load<u64>(src + <usize>k));
  store<i32>(st, pos + n, O_NAME_POS);
  return true;
}

function growEnds(): void {
  const ends = <usize>load<u32>(st, O_ENDS);
  const cap = load<i32>(st, O_ENDS_CAP);
  const fresh = heap.alloc(<usize>cap << 3);
  memory.copy(fresh, ends, <usize>cap << 2);
  memory.fill(fresh + (<usize>cap << 2), 0, <usize>cap << 2);
  if (ends != st + HEAD_SIZE + INLINE_NAMES) heap.free(ends);
  store<u32>(st, <u32>fresh, O_ENDS);
  store<i32>(st, cap * 2, O_ENDS_CAP);
}

// @ts-ignore: decorator
@inline function nameEnd(level: i32): i32 {
  return load<i32>(<usize>load<u32>(st, O_ENDS) + (<usize>level << 2));
}

/**
 * Whether the n bytes at a and at b are the same, compared eight at a time:
 * the loads may read up to 7 bytes past either run (a chunk is followed by
 * its records area, the names area keeps NAME_SLACK bytes), masked off.
 */
// @ts-ignore: decorator
@inline function sameBytes(a: usize, b: usize, n: i32): bool {
  for (let k = 0; k < n; k += 8) {
    const diff = load<u64>(a + <usize>k) ^ load<u64>(b + <usize>k);
    const m = n - k;
    if ((m >= 8 ? diff : diff & ((<u64>1 << (<u64>m << 3)) - 1)) != 0) return false;
  }
  return true;
}

/**
 * Where the '>' is of an end tag at j ('<') that closes the element open at
 * `depth` - 1 (depth >= 2, in character data) with its name and nothing else
 * before the '>', wholly before len; -1 for anything else.
 */
// @ts-ignore: decorator
@inline function closingTag(buf: usize, j: i32, len: i32, depth: i32): i32 {
  if (j + 1 >= len || load<u8>(buf + <usize>(j + 1)) != SLASH) return -1;
  const level = depth - 1;
  const from = nameEnd(level - 1);
  const rest = nameEnd(level) - from;
  const at = j + 2;
  if (at + rest >= len || load<u8>(buf + <usize>(at + rest)) != GT) return -1;
  return sameBytes(buf + <usize>at, <usize>load<u32>(st, O_NAMES) + <usize>from, rest) ? at + rest : -1;
}

/**
 * A new chunk `buf[0, len)`: check its UTF-8, then scan it from 0. Returns the
 * number of frame records written to `records`; RESULT says how it ended.
 */
export function write(state: usize, buf: usize, len: i32, records: usize, headsAt: usize): i32 {
  st = state;
  if (!checkUtf8(state, buf, len)) {
    out = records;
    nOut = 0;
    store<i32>(RESULT, 0, R_HEADS);
    return fail(E_UTF8, 0, 0);
  }
  return scan(state, buf, 0, len, records, headsAt);
}

/** Scan `buf[from, len)` (from > 0 after a stream restart inside the chunk). */
export function scan(state: usize, buf: usize, from: i32, len: i32, records: usize, headsAt: usize): i32 {
  st = state;
  out = records;
  nOut = 0;
  heads = headsAt;
  nHead = 0;
  store<i32>(RESULT, 0, R_CODE);
  store<i32>(RESULT, -1, R_HOLD);
  const n = scanChunk(buf, from, len);
  store<i32>(RESULT, nHead, R_HEADS);
  return n;
}

function scanChunk(buf: usize, from: i32, len: i32): i32 {

  let s = load<i32>(st, O_STATE);
  let depth = load<i32>(st, O_DEPTH);
  let frameStart = from;
  let wsStart = -1;
  let nameStart = from;
  let attrStart = from;
  if (s == S_ATTR_NAME) attrStart = from - load<i32>(st, O_ATTR_NAME_LEN);
  const maxDepth = load<i32>(st, O_MAX_DEPTH);
  const maxAttrs = load<i32>(st, O_MAX_ATTRS);
  // The heads entry of the stanza start tag being read (its first word), or
  // -1: none, or the tag began before this call; and its attributes so far.
  let hd = -1;
  let ha = 0;
  hf = 0;
  seen = 0;

  let i = from;
  for (; i < len; i++) {
    let c = <i32>load<u8>(buf + <usize>i);
    switch (s) {
      case S_STREAM: {
        if (c == LT) {
          if (wsStart >= 0) {
            record(FRAME_WHITESPACE, i);
            wsStart = -1;
          }
          frameStart = i;
          s = S_LT;
        } else if (cls(c) & C_WS) {
          if (wsStart < 0) wsStart = i;
          while (i + 1 < len && (cls(load<u8>(buf + <usize>(i + 1))) & C_WS)) i++;
        } else if (cls(c) & C_BAD) {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_CONTROL, i);
        } else {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_TEXT, 0, i);
        }
        break;
      }
      case S_PROLOG: {
        if (c == LT) s = S_LT;
        else if (!(cls(c) & C_WS)) return fail(E_NWF, D_EXPECT_HEADER, i);
        break;
      }
      case S_LT: {
        if (cls(c) & C_NAME_START) {
          if (depth > maxDepth) {
            store<i32>(st, depth, O_DEPTH);
            return fail(E_DEEP, 0, i);
          }
          s = S_START_NAME;
          nameStart = i;
          store<i32>(st, 0, O_ATTRS);
          if (depth == 1) {
            hd = i > from ? nHead : -1;
            ha = 0;
            if (hd >= 0) headWord(hd, i - 1);
          }
        } else if (c == SLASH) {
          if (depth == 0) return fail(E_NWF, D_END_BEFORE_HEADER, i);
          const level = depth - 1;
          store<i32>(st, level == 0 ? 0 : nameEnd(level - 1), O_CMP);
          store<i32>(st, nameEnd(level), O_CMP_END);
          s = S_END_NAME;
        } else if (c == BANG) {
          if (depth < 2) {
            store<i32>(st, depth, O_DEPTH);
            return fail(E_RESTRICTED, D_BANG_OUTSIDE, i);
          }
          store<i32>(st, 0, O_BANG);
          s = S_BANG;
        } else if (c == QMARK) {
          if (depth == 0 && !load<i32>(st, O_DECL_SEEN)) {
            store<i32>(st, 0, O_PI_LEN);
            store<i32>(st, 0, O_PI_TARGET);
            store<i32>(st, 0, O_PI_Q);
            s = S_PI;
          } else {
            store<i32>(st, depth, O_DEPTH);
            return fail(E_RESTRICTED, D_PI, i);
          }
        } else {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_AFTER_LT, i);
        }
        break;
      }
      case S_START_NAME: {
        let k = cls(c);
        if (k & C_NAME) {
          while (++i < len && ((k = cls(load<u8>(buf + <usize>i))) & C_NAME));
          if (i == len) break;
          c = <i32>load<u8>(buf + <usize>i);
        }
        if (!pushName(buf, nameStart, i, depth)) {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NAME, 0, i);
        }
        if (depth >= load<i32>(st, O_ENDS_CAP)) growEnds();
        store<i32>(<usize>load<u32>(st, O_ENDS) + (<usize>depth << 2), load<i32>(st, O_NAME_POS));
        if (hd >= 0) {
          headWord(hd + 1, i);
          const p = packed(buf, nameStart, i);
          headWords(hd + 4, p);
          const common = commonName(i - nameStart, <i32>p, <i32>(p >> 32));
          hf = common + 1;
          seen = 0;
          if (namespaced(buf, nameStart, i, common, true)) hf |= HF_NAMESPACED;
        }
        if (k & C_WS) {
          s = S_ATTRS;
          store<i32>(st, 1, O_SAW_SPACE);
        } else if (c == GT) {
          // '>' closed a start tag (framer.ts #openDone).
          if (depth == 0) {
            if (load<i32>(st, O_PENDING) + (i + 1 - frameStart) > load<i32>(st, O_MAX_HEADER)) return fail(E_HEADER_SIZE, 0, i);
            depth = 1;
            emit(FRAME_HEADER, i + 1);
            s = S_STREAM;
            frameStart = i + 1;
          } else {
            if (hd >= 0) {
              headDone(hd, ha, i + 1, hf);
              hd = -1;
            }
            depth++;
            s = S_TEXT;
          }
        } else if (c == SLASH) {
          s = S_EMPTY_GT;
        } else {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_ELEMENT_NAME, i);
        }
        break;
      }
      case S_ATTRS: {
        const k = cls(c);
        if (k & C_WS) {
          store<i32>(st, 1, O_SAW_SPACE);
          while (i + 1 < len && (cls(load<u8>(buf + <usize>(i + 1))) & C_WS)) i++;
        } else if (c == GT) {
          if (depth == 0) {
            if (load<i32>(st, O_PENDING) + (i + 1 - frameStart) > load<i32>(st, O_MAX_HEADER)) return fail(E_HEADER_SIZE, 0, i);
            depth = 1;
            emit(FRAME_HEADER, i + 1);
            s = S_STREAM;
            frameStart = i + 1;
          } else {
            if (hd >= 0) {
              headDone(hd, ha, i + 1, hf);
              hd = -1;
            }
            depth++;
            s = S_TEXT;
          }
        } else if (c == SLASH) {
          s = S_EMPTY_GT;
        } else if ((k & C_NAME_START) && load<i32>(st, O_SAW_SPACE)) {
          // Whole attributes at once, while each is simple and complete
          // (simpleAttr); the first that is not is read byte by byte, from
          // its first byte, by the states after this one.
          let p = i;
          let a = load<i32>(st, O_ATTRS);
          for (;;) {
            const end = simpleAttr(buf, p, len);
            if (end < 0 || a >= maxAttrs || simpleNameEnd - p > MAX_NAME) break;
            a++;
            if (hd >= 0) {
              attrName(buf, hd, ha, p, simpleNameEnd);
              attrValue(buf, hd, ha, simpleValueStart, end - 1);
              ha++;
            }
            p = end;
            let q = p;
            while (q < len && (cls(load<u8>(buf + <usize>q)) & C_WS)) q++;
            if (q == p || q == len || !(cls(load<u8>(buf + <usize>q)) & C_NAME_START)) break;
            p = q;
          }
          if (p != i) {
            store<i32>(st, a, O_ATTRS);
            // After a value, the byte-wise states need a space before the next name.
            store<i32>(st, (cls(load<u8>(buf + <usize>(p - 1))) & C_WS) ? 1 : 0, O_SAW_SPACE);
            i = p - 1;
            break;
          }
          a++;
          store<i32>(st, a, O_ATTRS);
          if (a > maxAttrs) {
            store<i32>(st, depth, O_DEPTH);
            return fail(E_ATTRS, 0, i);
          }
          attrStart = i;
          s = S_ATTR_NAME;
        } else {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_START_TAG, i);
        }
        break;
      }
      case S_ATTR_NAME: {
        let k = cls(c);
        if (k & C_NAME) {
          while (++i < len && ((k = cls(load<u8>(buf + <usize>i))) & C_NAME));
          if (i == len) break;
          c = <i32>load<u8>(buf + <usize>i);
        }
        if (i - attrStart > MAX_NAME) {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NAME, D_ATTR_NAME, i);
        }
        if (hd >= 0) attrName(buf, hd, ha, attrStart, i);
        if (c == EQ) s = S_ATTR_QUOTE;
        else if (k & C_WS) s = S_ATTR_EQ;
        else {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_NO_VALUE, i);
        }
        break;
      }
      case S_ATTR_EQ: {
        if (c == EQ) s = S_ATTR_QUOTE;
        else if (!(cls(c) & C_WS)) {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_NO_VALUE, i);
        }
        break;
      }
      case S_ATTR_QUOTE: {
        if (c == DQ || c == SQ) {
          store<i32>(st, c, O_QUOTE);
          s = S_ATTR_VALUE;
          if (hd >= 0) headWord(attrWord(hd, ha, 2), i + 1);
        } else if (!(cls(c) & C_WS)) {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_UNQUOTED, i);
        }
        break;
      }
      case S_ATTR_VALUE: {
        const q = load<i32>(st, O_QUOTE);
        const j = findStopPast(buf, i, len, q);
        if (j == len) {
          i = len;
          break;
        }
        i = j;
        const b = <i32>load<u8>(buf + <usize>j);
        if (b == q) {
          s = S_ATTRS;
          store<i32>(st, 0, O_SAW_SPACE);
          if (hd >= 0) {
            attrValue(buf, hd, ha, headAt(attrWord(hd, ha, 2)), j);
            ha++;
          }
        } else if (b == AMP) {
          store<i32>(st, 0, O_ENTITY_LEN);
          store<i32>(st, S_ATTR_VALUE, O_RETURN);
          s = S_ENTITY;
        } else {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, b == LT ? D_LT_IN_VALUE : D_CONTROL, j);
        }
        break;
      }
      case S_EMPTY_GT: {
        if (c != GT) {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_EXPECT_GT, i);
        }
        store<i32>(st, depth == 0 ? 0 : nameEnd(depth - 1), O_NAME_POS);
        if (depth == 0) return fail(E_HEADER_INVALID, D_SELF_CLOSED_HEADER, i);
        if (depth == 1) {
          if (hd >= 0) {
            headDone(hd, ha, i + 1, hf);
            hd = -1;
          }
          // framer.ts emits this frame without a size check.
          emit(FRAME_STANZA, i + 1);
          frameStart = i + 1;
          s = S_STREAM;
        } else {
          s = S_TEXT;
        }
        break;
      }
      case S_END_NAME: {
        let cmp = load<i32>(st, O_CMP);
        const cmpEnd = load<i32>(st, O_CMP_END);
        const names = <usize>load<u32>(st, O_NAMES);
        // The whole name at once when it is in this chunk and matches (the
        // loads past either end are masked off); else byte by byte, which
        // finds where a mismatch is.
        const rest = cmpEnd - cmp;
        if (i + rest < len && sameBytes(buf + <usize>i, names + <usize>cmp, rest)) {
          i += rest;
          cmp = cmpEnd;
          c = <i32>load<u8>(buf + <usize>i);
        }
        while (cmp < cmpEnd && c == <i32>load<u8>(names + <usize>cmp)) {
          cmp++;
          if (++i == len) break;
          c = <i32>load<u8>(buf + <usize>i);
        }
        store<i32>(st, cmp, O_CMP);
        if (i == len) break;
        if (cmp != cmpEnd || !(c == GT || (cls(c) & C_WS))) {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_END_MISMATCH, i);
        }
        if (c != GT) {
          s = S_END_WS;
          break;
        }
        // '>' right after the name closes the end tag as in S_END_WS: fall through.
      }
      case S_END_WS: {
        if (c == GT) {
          // '>' closed an end tag whose name matched (framer.ts #closeDone).
          const level = --depth;
          store<i32>(st, level == 0 ? 0 : nameEnd(level - 1), O_NAME_POS);
          if (level == 1) {
            if (load<i32>(st, O_PENDING) + (i + 1 - frameStart) > load<i32>(st, O_MAX_STANZA)) {
              store<i32>(st, depth, O_DEPTH);
              return fail(E_STANZA_SIZE, 0, i);
            }
            emit(FRAME_STANZA, i + 1);
            s = S_STREAM;
            frameStart = i + 1;
          } else if (level == 0) {
            emit(FRAME_CLOSE, i + 1);
            s = S_CLOSED;
            frameStart = i + 1;
          } else {
            s = S_TEXT;
          }
        } else if (!(cls(c) & C_WS)) {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_END_TAG, i);
        }
        break;
      }
      case S_TEXT: {
        // Character data, and in it the end tags that close the open element
        // right away (`</name>`, wholly in this chunk): those are read here,
        // not byte by byte through S_LT, S_END_NAME and S_END_WS. Anything
        // else after '<', or such a tag that would fail, goes to S_LT, which
        // reads it as before (and finds the same error at the same offset).
        for (;;) {
          const j = findStopPast(buf, i, len, LT);
          if (j == len) {
            i = len;
            break;
          }
          i = j;
          const b = <i32>load<u8>(buf + <usize>j);
          if (b == LT) {
            s = S_LT;
            const g = closingTag(buf, j, len, depth);
            if (g < 0) break;
            const level = depth - 1;
            if (level == 1 && load<i32>(st, O_PENDING) + (g + 1 - frameStart) > load<i32>(st, O_MAX_STANZA)) break;
            depth = level;
            store<i32>(st, nameEnd(level - 1), O_NAME_POS);
            if (level == 1) {
              emit(FRAME_STANZA, g + 1);
              s = S_STREAM;
              frameStart = g + 1;
              i = g;
              break;
            }
            s = S_TEXT;
            i = g + 1;
            continue;
          }
          if (b == AMP) {
            store<i32>(st, 0, O_ENTITY_LEN);
            store<i32>(st, S_TEXT, O_RETURN);
            s = S_ENTITY;
            break;
          }
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_CONTROL, j);
        }
        break;
      }
      case S_BANG: {
        const bang = load<i32>(st, O_BANG);
        if (bang == 0 && (c == 0x2d || c == 0x44)) {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_RESTRICTED, c == 0x2d ? D_COMMENT : D_DOCTYPE, i);
        }
        if (c != <i32>load<u8>(CDATA_OPEN + <usize>bang)) {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_BANG, i);
        }
        store<i32>(st, bang + 1, O_BANG);
        if (bang + 1 == CDATA_LEN) {
          store<i32>(st, 0, O_BRACKETS);
          s = S_CDATA;
        }
        break;
      }
      case S_CDATA: {
        // Up to "]]>", refusing control bytes.
        let brackets = load<i32>(st, O_BRACKETS);
        for (;;) {
          if (c == RSQB) brackets++;
          else if (c == GT && brackets >= 2) {
            s = S_TEXT;
            break;
          } else if (cls(c) & C_BAD) {
            store<i32>(st, depth, O_DEPTH);
            return fail(E_NWF, D_CONTROL, i);
          } else brackets = 0;
          if (++i == len) break;
          c = <i32>load<u8>(buf + <usize>i);
        }
        store<i32>(st, brackets, O_BRACKETS);
        break;
      }
      case S_ENTITY: {
        const n = load<i32>(st, O_ENTITY_LEN);
        if (c == SEMI) {
          const problem = checkEntity(n);
          if (problem != 0) {
            store<i32>(st, depth, O_DEPTH);
            return problem == 1 ? fail(E_RESTRICTED, D_UNDECLARED, i) : fail(E_NWF, D_BAD_REF, i);
          }
          s = load<i32>(st, O_RETURN);
        } else if (n < MAX_ENTITY && ((cls(c) & C_NAME) || c == 0x23)) {
          store<u8>(st + O_ENTITY + <usize>n, <u8>c);
          store<i32>(st, n + 1, O_ENTITY_LEN);
        } else {
          store<i32>(st, depth, O_DEPTH);
          return fail(E_NWF, D_BAD_ENTITY, i);
        }
        break;
      }
      case S_PI: {
        let piLen = load<i32>(st, O_PI_LEN);
        if (piLen < 4) store<i32>(st, (load<i32>(st, O_PI_TARGET) << 8) | c, O_PI_TARGET);
        piLen++;
        store<i32>(st, piLen, O_PI_LEN);
        if (piLen == 4) {
          const t = <u32>load<i32>(st, O_PI_TARGET);
          const isXml = (t >>> 8) == 0x786d6c && (cls(t & 0xff) & C_WS) != 0;
          if (!isXml) return fail(E_RESTRICTED, D_PI, i);
        }
        if (c == GT && load<i32>(st, O_PI_Q) && piLen >= 6) {
          store<i32>(st, 1, O_DECL_SEEN);
          s = S_PROLOG;
        }
        store<i32>(st, c == QMARK ? 1 : 0, O_PI_Q);
        break;
      }
      case S_CLOSED: {
        i = len;
        break;
      }
      default:
        return nOut;
    }
  }

  // End of chunk.
  store<i32>(st, s, O_STATE);
  store<i32>(st, depth, O_DEPTH);
  if (s == S_STREAM) {
    if (wsStart >= 0) record(FRAME_WHITESPACE, len);
    return nOut;
  }
  if (s == S_CLOSED) return nOut;
  // framer.ts #holdPartial: keep the frame's bytes, within the limit.
  if (s == S_START_NAME && !pushName(buf, nameStart, len, depth)) return fail(E_NAME, 0, len);
  if (s == S_ATTR_NAME) {
    const n = len - attrStart;
    store<i32>(st, n, O_ATTR_NAME_LEN);
    if (n > MAX_NAME) return fail(E_NAME, D_ATTR_NAME, len);
  }
  const held = load<i32>(st, O_PENDING) + (len - frameStart);
  if (depth == 0) {
    if (held > load<i32>(st, O_MAX_HEADER)) return fail(E_HEADER_SIZE, 0, len);
  } else if (held > load<i32>(st, O_MAX_STANZA)) {
    return fail(E_STANZA_SIZE, 0, len);
  }
  if (frameStart < len) {
    store<i32>(st, held, O_PENDING);
    store<i32>(RESULT, frameStart, R_HOLD);
  }
  return nOut;
}

/** framer.ts #checkEntity: 0 fine, 1 undeclared (restricted), 2 malformed. */
function checkEntity(n: i32): i32 {
  if (n == 0) return 2;
  const e = st + O_ENTITY;
  if (load<u8>(e) == 0x23) {
    let code: u32 = 0;
    let k = 1;
    const hex = n > 1 && load<u8>(e, 1) == 0x78;
    if (hex) k = 2;
    if (k >= n) return 2;
    for (; k < n; k++) {
      const d = <u32>load<u8>(e + <usize>k);
      let v: u32;
      if (d >= 0x30 && d <= 0x39) v = d - 0x30;
      else if (hex && d >= 0x61 && d <= 0x66) v = d - 0x57;
      else if (hex && d >= 0x41 && d <= 0x46) v = d - 0x37;
      else return 2;
      code = code * (hex ? 16 : 10) + v;
      if (code > 0x10ffff) return 2;
    }
    const ok = code == 0x9 || code == 0xa || code == 0xd || (code >= 0x20 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
    return ok ? 0 : 2;
  }
  if (!(cls(load<u8>(e)) & C_NAME_START)) return 2;
  for (let k = 1; k < n; k++) if (!(cls(load<u8>(e + <usize>k)) & C_NAME)) return 2;
  // The five predefined entities (XML 1.0 §4.6).
  const w0 = <u32>load<u8>(e), w1 = n > 1 ? <u32>load<u8>(e, 1) : 0, w2 = n > 2 ? <u32>load<u8>(e, 2) : 0;
  const w3 = n > 3 ? <u32>load<u8>(e, 3) : 0;
  if (n == 3 && w0 == 0x61 && w1 == 0x6d && w2 == 0x70) return 0; // amp
  if (n == 2 && w0 == 0x6c && w1 == 0x74) return 0; // lt
  if (n == 2 && w0 == 0x67 && w1 == 0x74) return 0; // gt
  if (n == 4 && w0 == 0x71 && w1 == 0x75 && w2 == 0x6f && w3 == 0x74) return 0; // quot
  if (n == 4 && w0 == 0x61 && w1 == 0x70 && w2 == 0x6f && w3 == 0x73) return 0; // apos
  return 1;
}
