// Lua patterns, the syntax half: what a pattern is made of (byte sets,
// items, quantifiers), the parser that reads and checks a pattern over its
// UTF-8 bytes, and the RegExp source of a pattern without `%b`. The matching
// half (subjects, the backtracking matcher, LuaPattern) is lua-pattern.ts;
// docs/firewall.md ("Lua patterns") lists the rules both rely on.


/** A malformed pattern; `index` is the UTF-16 index of the offending character. */
export class LuaPatternError extends Error {
  readonly index: number;

  constructor(message: string, index: number) {
    super(message);
    this.name = "LuaPatternError";
    this.index = index;
  }
}

/**
 * Which Lua function runs the pattern:
 * - `match`: string.match; a leading `^` anchors.
 * - `find`: string.find, the same except that a pattern with none of the
 *   characters ^ $ * + ? . ( [ % - is searched for as plain text, so `a)`
 *   finds "a)" where string.match would raise an error.
 * - `gmatch`: string.gmatch; a leading `^` is an ordinary character (gmatch
 *   never anchors).
 */
export type LuaPatternMode = "find" | "match" | "gmatch";

/** The characters whose absence makes string.find search for plain text. */
const SPECIALS = /[\^$*+?.(\[%-]/;

/** Lua's limits: captures per pattern, and nested matcher calls. */
const MAX_CAPTURES = 32;
const MAX_DEPTH = 200;

// ---------------------------------------------------------------------------
// Byte sets

/** 256 flags, one per byte value. */
export type ByteSet = Uint8Array;

function byteSet(ranges: readonly (readonly [number, number])[]): ByteSet {
  const s = new Uint8Array(256);
  for (const [a, b] of ranges) for (let c = a; c <= b; c++) s[c] = 1;
  return s;
}

function complement(s: ByteSet): ByteSet {
  const out = new Uint8Array(256);
  for (let c = 0; c < 256; c++) out[c] = s[c] ? 0 : 1;
  return out;
}

// The C-locale classes (what <ctype.h> says for bytes 0-255 in locale "C").
export const CLASSES: Record<string, ByteSet> = {
  a: byteSet([[0x41, 0x5a], [0x61, 0x7a]]),
  c: byteSet([[0x00, 0x1f], [0x7f, 0x7f]]),
  d: byteSet([[0x30, 0x39]]),
  g: byteSet([[0x21, 0x7e]]),
  l: byteSet([[0x61, 0x7a]]),
  p: byteSet([[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]]),
  s: byteSet([[0x09, 0x0d], [0x20, 0x20]]),
  u: byteSet([[0x41, 0x5a]]),
  w: byteSet([[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]]),
  x: byteSet([[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]]),
  // Deprecated in the manual since 5.2 but still understood by 5.4: the zero byte.
  z: byteSet([[0x00, 0x00]]),
};

/** `%c` (c one byte): a class, its complement (upper case), or the byte itself. */
function escapeSet(c: number): ByteSet {
  const lower = String.fromCharCode(c).toLowerCase();
  const cls = c < 0x80 ? CLASSES[lower] : undefined;
  if (cls === undefined) return byteSet([[c, c]]);
  return lower.charCodeAt(0) === c ? cls : complement(cls);
}

const ALL = byteSet([[0, 255]]);

function hasHighBytes(s: ByteSet): boolean {
  for (let c = 0x80; c < 256; c++) if (s[c]) return true;
  return false;
}

// ---------------------------------------------------------------------------
// Parsed form

type Quantifier = "" | "*" | "+" | "-" | "?";

export type Item =
  /** One byte from `set`, with an optional quantifier. */
  | { readonly k: "set"; readonly set: ByteSet; readonly q: Quantifier }
  | { readonly k: "open"; readonly n: number }
  | { readonly k: "close"; readonly n: number }
  /** `()`: captures the position (1-based byte index). */
  | { readonly k: "position"; readonly n: number }
  | { readonly k: "balance"; readonly open: number; readonly close: number }
  | { readonly k: "frontier"; readonly set: ByteSet }
  | { readonly k: "backref"; readonly n: number }
  /** `$` as the last character. (A leading `^` outside gmatch is Parsed.anchored.) */
  | { readonly k: "end" };

export interface Parsed {
  readonly items: readonly Item[];
  readonly anchored: boolean;
  readonly captures: number;
  /** Capture n (1-based) is a position capture. */
  readonly positions: readonly boolean[];
  /** Shortest possible match, in bytes (back-references count 0). */
  readonly minLength: number;
  /**
   * Nothing in the pattern can consume a byte ≥ 0x80, it has no non-ASCII
   * bytes and no position captures. Such a pattern matches only inside ASCII
   * runs (a `%b` span aside, whose delimiters are ASCII), and all its sets
   * treat every byte ≥ 0x80 alike, so running it on the UTF-16 string gives
   * the same verdict, the same captures and the same non-empty matches as on
   * the bytes. Empty matches can still sit between the bytes of one
   * character, so gmatch uses this only when minLength > 0.
   */
  readonly narrow: boolean;
  /**
   * All bytes of the pattern are ASCII, it has no back-references, and every
   * item that can consume a byte ≥ 0x80 repeats without bound (`*`, `+`,
   * `-`; its set then holds every such byte). A match on the bytes can then
   * be moved to character boundaries and one on the UTF-16 string spelled
   * out in bytes, so both find a match or neither does, and gmatch takes as
   * many steps when every match is non-empty. Captures can still split a
   * character between two repetitions, so loose patterns get the fast path
   * for test() and count(), and for tokens() only without captures.
   */
  readonly loose: boolean;
  readonly balance: boolean;
}

/** UTF-8 bytes of `s` as a byte string. */
export function toBytes(s: string): string {
  return Buffer.from(s, "utf8").toString("latin1");
}


export const NON_ASCII = /[^\x00-\x7f]/;

export function parse(pattern: string, mode: LuaPatternMode): Parsed {
  const p = toBytes(pattern);
  const n = p.length;
  // Byte offset → UTF-16 index in `pattern`, for error messages.
  const at = (byte: number): number => Buffer.from(p.slice(0, byte), "latin1").toString("utf8").length;
  const fail = (message: string, byte: number): never => {
    throw new LuaPatternError(message, at(Math.min(byte, n)));
  };

  /** The set starting at `start` (a '['); returns it and the index after ']'. */
  const readSet = (start: number): { set: ByteSet; next: number } => {
    let i = start + 1;
    let negate = false;
    if (p[i] === "^") {
      negate = true;
      i++;
    }
    // Find the closing ']': the first character is always a member (so
    // `[]]` and `[^]]` hold ']'), and `%x` skips x.
    const first = i;
    let close = i;
    do {
      if (close >= n) fail("malformed pattern (missing ']')", start);
      if (p[close++] === "%" && close < n) close++;
    } while (p[close] !== "]");
    const set = new Uint8Array(256);
    for (let j = first; j < close; j++) {
      const c = p.charCodeAt(j);
      if (c === 0x25 /* % */) {
        const cls = escapeSet(p.charCodeAt(++j));
        for (let b = 0; b < 256; b++) if (cls[b]) set[b] = 1;
      } else if (p[j + 1] === "-" && j + 2 < close) {
        // A range; a reversed one (z-a) holds nothing.
        const to = p.charCodeAt(j + 2);
        for (let b = c; b <= to; b++) set[b] = 1;
        j += 2;
      } else {
        set[c] = 1;
      }
    }
    return { set: negate ? complement(set) : set, next: close + 1 };
  };

  const items: Item[] = [];
  if (mode === "find" && !SPECIALS.test(p)) {
    for (let i = 0; i < n; i++) items.push({ k: "set", set: byteSet([[p.charCodeAt(i), p.charCodeAt(i)]]), q: "" });
    const ascii = !NON_ASCII.test(p);
    return { items, anchored: false, captures: 0, positions: [false], minLength: n, narrow: ascii, loose: ascii, balance: false };
  }
  const positions: boolean[] = [false];
  /** Captures not closed yet, innermost last, with the byte offset of their '('. */
  const open: number[] = [];
  const openAt: number[] = [];
  let captures = 0;
  let depth = 1;
  let minLength = 0;
  let narrow = !NON_ASCII.test(p);
  let loose = narrow;
  let balance = false;
  let i = 0;
  let anchored = false;
  if (mode !== "gmatch" && p[0] === "^") {
    anchored = true;
    i = 1;
  }
  while (i < n) {
    const ch = p[i]!;
    if (ch === "(") {
      if (captures >= MAX_CAPTURES) fail("too many captures", i);
      captures++;
      depth++;
      if (p[i + 1] === ")") {
        items.push({ k: "position", n: captures });
        positions.push(true);
        narrow = false;
        i += 2;
      } else {
        items.push({ k: "open", n: captures });
        positions.push(false);
        open.push(captures);
        openAt.push(i);
        i++;
      }
      continue;
    }
    if (ch === ")") {
      const k = open.pop();
      openAt.pop();
      if (k === undefined) fail("invalid pattern capture (no open capture for this ')')", i);
      items.push({ k: "close", n: k! });
      depth++;
      i++;
      continue;
    }
    if (ch === "$" && i === n - 1) {
      items.push({ k: "end" });
      i++;
      continue;
    }
    let set: ByteSet;
    if (ch === "%") {
      if (i + 1 >= n) fail("malformed pattern (ends with '%')", i);
      const c = p[i + 1]!;
      if (c === "b") {
        if (i + 3 >= n) fail("malformed pattern (missing arguments to '%b')", i);
        items.push({ k: "balance", open: p.charCodeAt(i + 2), close: p.charCodeAt(i + 3) });
        minLength += 2;
        balance = true;
        i += 4;
        continue;
      }
      if (c === "f") {
        if (p[i + 2] !== "[") fail("missing '[' after '%f' in pattern", i);
        const r = readSet(i + 2);
        items.push({ k: "frontier", set: r.set });
        i = r.next;
        continue;
      }
      if (c >= "0" && c <= "9") {
        const k = c.charCodeAt(0) - 0x30;
        if (k === 0 || k > captures || open.includes(k)) fail(`invalid capture index %${c} (no closed capture ${c} before it)`, i);
        items.push({ k: "backref", n: k });
        loose = false;
        i += 2;
        continue;
      }
      set = escapeSet(p.charCodeAt(i + 1));
      i += 2;
    } else if (ch === "[") {
      const r = readSet(i);
      set = r.set;
      i = r.next;
    } else if (ch === ".") {
      set = ALL;
      i++;
    } else {
      set = byteSet([[p.charCodeAt(i), p.charCodeAt(i)]]);
      i++;
    }
    let q: Quantifier = "";
    const next = p[i];
    if (next === "*" || next === "+" || next === "-" || next === "?") {
      q = next;
      i++;
      depth++;
    }
    if (q === "" || q === "+") minLength++;
    if (hasHighBytes(set)) {
      narrow = false;
      if (q === "" || q === "?") loose = false;
    }
    items.push({ k: "set", set, q });
  }
  if (open.length > 0) fail("unfinished capture", openAt[openAt.length - 1]!);
  // Lua's matcher recurses once per capture boundary and per quantified item
  // that it enters; past 200 nested calls it gives up ("pattern too complex").
  if (depth > MAX_DEPTH) fail(`pattern too complex (Lua's matcher may nest ${depth} calls; its limit is ${MAX_DEPTH})`, 0);
  return { items, anchored, captures, positions, minLength, narrow, loose, balance };
}

// ---------------------------------------------------------------------------
// RegExp form (every pattern without `%b`)

function hex2(c: number): string {
  return c.toString(16).padStart(2, "0");
}

/** One byte as a RegExp atom (inside or outside a class). */
function atom(c: number): string {
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) return String.fromCharCode(c);
  return `\\x${hex2(c)}`;
}

/**
 * A byte set as a RegExp item. When it holds every byte ≥ 0x80 the class
 * reaches up to U+FFFF, so it reads a UTF-16 string (narrow patterns, see
 * Parsed.narrow) the way it reads bytes.
 */
function classSource(s: ByteSet): string {
  let count = 0;
  let single = -1;
  for (let c = 0; c < 256; c++) {
    if (s[c]) {
      count++;
      single = c;
    }
  }
  if (count === 256) return "[^]";
  if (count === 0) return "[]";
  if (count === 1) return atom(single);
  let body = "";
  let highAll = true;
  for (let c = 0x80; c < 256; c++) if (!s[c]) highAll = false;
  const top = highAll ? 0x7f : 0xff;
  for (let c = 0; c <= top; c++) {
    if (!s[c]) continue;
    let e = c;
    while (e < top && s[e + 1]) e++;
    body += e === c ? atom(c) : e === c + 1 ? atom(c) + atom(e) : `${atom(c)}-${atom(e)}`;
    c = e;
  }
  if (highAll) body += "\\x80-\\uffff";
  return `[${body}]`;
}

function hasZero(s: ByteSet): boolean {
  return s[0] === 1;
}

export function regexpSource(parsed: Parsed): string {
  let out = parsed.anchored ? "^" : "";
  for (const it of parsed.items) {
    switch (it.k) {
      case "set":
        out += classSource(it.set) + (it.q === "-" ? "*?" : it.q);
        break;
      case "open":
        out += "(";
        break;
      case "close":
        out += ")";
        break;
      case "position":
        out += "()";
        break;
      case "backref":
        // Lua never matches a back-reference to a position capture.
        out += parsed.positions[it.n] ? "(?!)" : `(?:\\${it.n})`;
        break;
      case "frontier": {
        // The previous byte must be outside the set and the current one
        // inside, where Lua reads the position before the subject and the one
        // after it as '\0'. With '\0' in the set the start never qualifies
        // as "previous outside" (so: a byte outside must precede) and the end
        // always qualifies as "current inside" (so: no byte outside may
        // follow); without it, the other way round.
        const outside = complement(it.set);
        out += hasZero(it.set) ? `(?<=${classSource(outside)})` : `(?<!${classSource(it.set)})`;
        out += hasZero(it.set) ? `(?!${classSource(outside)})` : `(?=${classSource(it.set)})`;
        break;
      }
      case "end":
        out += "$";
        break;
      case "balance":
        throw new Error("%b has no RegExp form");
    }
  }
  return out;
}
