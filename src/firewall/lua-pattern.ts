// Lua patterns (Lua 5.4 manual §6.4.1) as Prosody runs them: `%PATTERN`
// (SCAN, COUNT), `INSPECT ~=`, `<<…>>` and globs in JID patterns, and the
// registration name checks. docs/firewall.md ("Lua patterns") lists the rules
// this file relies on; test/differential/lua-pattern.test.ts checks them
// against lua5.4.
//
// Lua matches bytes, and its classes are those of the C locale (ASCII only).
// So a pattern is compiled over the UTF-8 bytes of its text, and a subject is
// matched over the UTF-8 bytes of the string, seen as a "byte string" (one
// char per byte, 0-255). That view is only built when it can change the
// result: for an ASCII subject the string already is its byte string, and a
// pattern that can only ever consume ASCII bytes gives the same verdict and
// the same captures on the UTF-16 string (see `narrow` below).
//
// Most patterns become one RegExp. `%b` (balanced match) has no RegExp form,
// so patterns with `%b` run on a small backtracking matcher written for this
// file, with the same search order as Lua's.
//
// Lua reports a malformed pattern only when its matcher reaches the bad part,
// so some bad patterns work on some subjects. Here every malformed pattern is
// refused up front (LuaPatternError), as are patterns that could exceed Lua's
// limits (32 captures, 200 nested matcher calls) on some subject.

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

/** What string.find returns: 1-based inclusive byte positions, then captures. */
export interface LuaFindResult {
  readonly start: number;
  readonly end: number;
  /** Strings are byte strings (one char per byte); position captures are numbers. */
  readonly captures: readonly (string | number)[];
}

/** Lua's limits: captures per pattern, and nested matcher calls. */
const MAX_CAPTURES = 32;
const MAX_DEPTH = 200;

// ---------------------------------------------------------------------------
// Byte sets

/** 256 flags, one per byte value. */
type ByteSet = Uint8Array;

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
const CLASSES: Record<string, ByteSet> = {
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

type Item =
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

interface Parsed {
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
function toBytes(s: string): string {
  return Buffer.from(s, "utf8").toString("latin1");
}

// The rules of one stanza usually test the same text (its body) with several
// patterns: the last conversion is kept. Short texts are encoded into a
// reused buffer (about 20% faster than a fresh one).
let lastText = "";
let lastBytes = "";
const ENCODER = new TextEncoder();
const SCRATCH = Buffer.allocUnsafe(16 * 1024);

/** The byte string of a subject. */
function subjectBytes(text: string): string {
  if (text !== lastText) {
    if (text.length * 3 <= SCRATCH.length) {
      const { written } = ENCODER.encodeInto(text, SCRATCH);
      lastBytes = SCRATCH.toString("latin1", 0, written);
    } else {
      lastBytes = toBytes(text);
    }
    lastText = text;
  }
  return lastBytes;
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/** A byte string back to text, or undefined when it is not valid UTF-8. */
function fromBytesStrict(b: string): string | undefined {
  try {
    return STRICT_UTF8.decode(Buffer.from(b, "latin1"));
  } catch {
    return undefined;
  }
}

const NON_ASCII = /[^\x00-\x7f]/;

/** Whether a subject is all ASCII (then it is its own byte string). Faster than a RegExp scan. */
function isAscii(text: string): boolean {
  return Buffer.byteLength(text, "utf8") === text.length;
}

function parse(pattern: string, mode: LuaPatternMode): Parsed {
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

function regexpSource(parsed: Parsed): string {
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

// ---------------------------------------------------------------------------
// Backtracking matcher (patterns with `%b`; also a cross-check in tests)

const UNFINISHED = -1;
const POSITION = -2;

/**
 * The byte at `i`. On a UTF-16 string (narrow patterns only) a unit above
 * 0xFF stands for any byte ≥ 0x80: narrow sets treat all of those alike.
 */
function byteAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c > 0xff ? 0x80 : c;
}

class Matcher {
  readonly #items: readonly Item[];
  readonly start: number[] = [];
  readonly len: number[] = [];
  #s = "";

  constructor(items: readonly Item[]) {
    this.#items = items;
  }

  /** End of a match of the whole pattern at `at`, or -1. */
  run(s: string, at: number): number {
    this.#s = s;
    return this.#match(at, 0);
  }

  #match(si: number, pi: number): number {
    const s = this.#s;
    const items = this.#items;
    for (;;) {
      if (pi === items.length) return si;
      const it = items[pi]!;
      switch (it.k) {
        case "open":
        case "position": {
          this.start[it.n] = si;
          this.len[it.n] = it.k === "open" ? UNFINISHED : POSITION;
          return this.#match(si, pi + 1);
        }
        case "close": {
          this.len[it.n] = si - this.start[it.n]!;
          const r = this.#match(si, pi + 1);
          if (r < 0) this.len[it.n] = UNFINISHED;
          return r;
        }
        case "end":
          return si === s.length ? si : -1;
        case "balance": {
          if (si >= s.length || byteAt(s, si) !== it.open) return -1;
          let depth = 1;
          let j = si + 1;
          for (; j < s.length; j++) {
            const c = byteAt(s, j);
            if (c === it.close) {
              if (--depth === 0) break;
            } else if (c === it.open) depth++;
          }
          if (j >= s.length) return -1;
          si = j + 1;
          pi++;
          continue;
        }
        case "frontier": {
          const prev = si === 0 ? 0 : byteAt(s, si - 1);
          const cur = si < s.length ? byteAt(s, si) : 0;
          if (it.set[prev] || !it.set[cur]) return -1;
          pi++;
          continue;
        }
        case "backref": {
          const l = this.len[it.n]!;
          if (l < 0) return -1;
          const from = this.start[it.n]!;
          if (s.length - si < l || s.slice(si, si + l) !== s.slice(from, from + l)) return -1;
          si += l;
          pi++;
          continue;
        }
        case "set": {
          const one = si < s.length && it.set[byteAt(s, si)] === 1;
          switch (it.q) {
            case "":
              if (!one) return -1;
              si++;
              pi++;
              continue;
            case "?":
              if (one) {
                const r = this.#match(si + 1, pi + 1);
                if (r >= 0) return r;
              }
              pi++;
              continue;
            case "+":
              return one ? this.#greedy(si + 1, it.set, pi) : -1;
            case "*":
              return this.#greedy(si, it.set, pi);
            case "-":
              for (;;) {
                const r = this.#match(si, pi + 1);
                if (r >= 0) return r;
                if (si < s.length && it.set[byteAt(s, si)]) si++;
                else return -1;
              }
          }
        }
      }
    }
  }

  #greedy(si: number, set: ByteSet, pi: number): number {
    const s = this.#s;
    let i = 0;
    while (si + i < s.length && set[byteAt(s, si + i)]) i++;
    for (; i >= 0; i--) {
      const r = this.#match(si + i, pi + 1);
      if (r >= 0) return r;
    }
    return -1;
  }
}

// ---------------------------------------------------------------------------
// Compiled pattern

/** One match: byte offsets (0-based, end exclusive) and the raw captures. */
interface Hit {
  readonly index: number;
  readonly end: number;
  /** Capture k at [k-1]: a substring of the subject, or a 1-based position. */
  readonly captures: readonly (string | number)[];
}

export interface LuaPatternOptions {
  readonly mode?: LuaPatternMode;
  /** Force the backtracking matcher (tests compare it with the RegExp form). */
  readonly engine?: "auto" | "backtrack";
}

/** A compiled Lua pattern. Immutable; safe to share between stanzas. */
export class LuaPattern {
  readonly pattern: string;
  readonly mode: LuaPatternMode;
  /** Number of captures, position captures included. */
  readonly captures: number;
  /** The RegExp source over byte strings, or null when `%b` needs the backtracking matcher. */
  readonly source: string | null;
  readonly #parsed: Parsed;
  /** For test(): no flags. */
  readonly #re: RegExp | null;
  /** For searching from an offset: `g`, plus `d` when positions are captured. */
  readonly #reg: RegExp | null;
  readonly #matcher: Matcher | null;

  constructor(pattern: string, options: LuaPatternOptions = {}) {
    this.pattern = pattern;
    this.mode = options.mode ?? "match";
    const parsed = parse(pattern, this.mode);
    this.#parsed = parsed;
    this.captures = parsed.captures;
    if (parsed.balance || options.engine === "backtrack") {
      this.source = parsed.balance ? null : regexpSource(parsed);
      this.#re = null;
      this.#reg = null;
      this.#matcher = new Matcher(parsed.items);
    } else {
      this.source = regexpSource(parsed);
      this.#re = new RegExp(this.source);
      this.#reg = new RegExp(this.source, parsed.positions.includes(true) ? "dg" : "g");
      this.#matcher = null;
    }
  }

  /** Whether string.find / string.match find the pattern in `text`. */
  test(text: string): boolean {
    const p = this.#parsed;
    const subject = p.narrow || p.loose || isAscii(text) ? text : subjectBytes(text);
    if (this.#re !== null) return this.#re.test(subject);
    return this.#first(subject, 0) !== null;
  }

  /** string.find(text, pattern): byte positions and captures as byte strings. */
  find(text: string): LuaFindResult | null {
    const hit = this.#first(subjectBytes(text), 0);
    if (hit === null) return null;
    return { start: hit.index + 1, end: hit.end, captures: hit.captures };
  }

  /** string.match(text, pattern): the captures, or the whole match when there are none (byte strings). */
  match(text: string): (string | number)[] | null {
    const s = subjectBytes(text);
    const hit = this.#first(s, 0);
    if (hit === null) return null;
    return hit.captures.length > 0 ? [...hit.captures] : [s.slice(hit.index, hit.end)];
  }

  /**
   * string.gmatch(text, pattern): what each step yields first (the first
   * capture, or the whole match when there is none), as byte strings or
   * positions.
   */
  gmatchBytes(text: string): (string | number)[] {
    const out: (string | number)[] = [];
    this.#each(subjectBytes(text), (hit, s) => {
      out.push(hit.captures.length > 0 ? hit.captures[0]! : s.slice(hit.index, hit.end));
    });
    return out;
  }

  /** How many steps string.gmatch takes over `text` (COUNT). */
  count(text: string): number {
    const p = this.#parsed;
    const subject = ((p.narrow || p.loose) && p.minLength > 0) || isAscii(text) ? text : subjectBytes(text);
    let n = 0;
    this.#each(subject, () => n++);
    return n;
  }

  /**
   * The string values string.gmatch yields over `text` (SCAN's tokens).
   * Positions (numbers in Lua) and byte runs that are not whole UTF-8 text
   * are left out: neither can equal a list entry.
   */
  tokens(text: string): string[] {
    const p = this.#parsed;
    const direct = (p.narrow || (p.loose && p.captures === 0)) && p.minLength > 0;
    const subject = direct || isAscii(text) ? text : subjectBytes(text);
    const bytes = subject !== text;
    const out: string[] = [];
    this.#each(subject, (hit, s) => {
      const v = hit.captures.length > 0 ? hit.captures[0]! : s.slice(hit.index, hit.end);
      if (typeof v !== "string") return;
      if (!bytes || !NON_ASCII.test(v)) out.push(v);
      else {
        const t = fromBytesStrict(v);
        if (t !== undefined) out.push(t);
      }
    });
    return out;
  }

  /** The first match at or after byte `from` (find semantics: anchored patterns only try `from`). */
  #first(s: string, from: number): Hit | null {
    if (this.#matcher !== null) {
      const m = this.#matcher;
      const last = this.#parsed.anchored ? from : s.length;
      for (let at = from; at <= last; at++) {
        const end = m.run(s, at);
        if (end >= 0) return { index: at, end, captures: this.#matcherCaptures(s) };
      }
      return null;
    }
    const re = this.#reg!;
    re.lastIndex = from;
    const m = re.exec(s);
    if (m === null) return null;
    return { index: m.index, end: m.index + m[0].length, captures: this.#regexpCaptures(m) };
  }

  /** Every gmatch step over `s`, Lua 5.4 style. */
  #each(s: string, yieldHit: (hit: Hit, s: string) => void): void {
    // An empty match is not taken where the previous match ended; the scan
    // then moves one byte on.
    let lastEnd = -1;
    let from = 0;
    if (this.#matcher !== null) {
      const m = this.#matcher;
      while (from <= s.length) {
        const end = m.run(s, from);
        if (end >= 0 && end !== lastEnd) {
          yieldHit({ index: from, end, captures: this.#matcherCaptures(s) }, s);
          from = lastEnd = end;
        } else from++;
      }
      return;
    }
    const re = this.#reg!;
    while (from <= s.length) {
      re.lastIndex = from;
      const m = re.exec(s);
      if (m === null) return;
      const end = m.index + m[0].length;
      if (end === lastEnd) {
        // Only an empty match can end where the previous one did.
        from = m.index + 1;
        continue;
      }
      yieldHit({ index: m.index, end, captures: this.captures > 0 ? this.#regexpCaptures(m) : [] }, s);
      from = lastEnd = end;
    }
  }

  #regexpCaptures(m: RegExpExecArray): (string | number)[] {
    const out: (string | number)[] = [];
    for (let k = 1; k <= this.captures; k++) {
      out.push(this.#parsed.positions[k] ? m.indices![k]![0] + 1 : m[k]!);
    }
    return out;
  }

  #matcherCaptures(s: string): (string | number)[] {
    const m = this.#matcher!;
    const out: (string | number)[] = [];
    for (let k = 1; k <= this.captures; k++) {
      const start = m.start[k]!;
      out.push(m.len[k] === POSITION ? start + 1 : s.slice(start, start + m.len[k]!));
    }
    return out;
  }
}

/** Compile `pattern`; throws LuaPatternError when it is malformed. */
export function compileLuaPattern(pattern: string, options?: LuaPatternOptions): LuaPattern {
  return new LuaPattern(pattern, options);
}

const cache = new Map<string, LuaPattern | LuaPatternError>();
const CACHE_SIZE = 256;

/**
 * Like compileLuaPattern, for patterns built per stanza (INSPECT `$~=`):
 * remembers the last few hundred, errors included.
 */
export function cachedLuaPattern(pattern: string, mode: LuaPatternMode = "match"): LuaPattern | LuaPatternError {
  const key = `${mode}\0${pattern}`;
  let v = cache.get(key);
  if (v !== undefined) return v;
  try {
    v = new LuaPattern(pattern, { mode });
  } catch (err) {
    if (!(err instanceof LuaPatternError)) throw err;
    v = err;
  }
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
  cache.set(key, v);
  return v;
}

/**
 * The pattern mod_firewall builds from a `<glob>` JID part: every ASCII
 * punctuation character escaped with '%', then `*` → `.*` and `?` → `.`,
 * anchored at both ends. Like everything else it matches bytes, so `?` is one
 * byte of a non-ASCII character.
 */
export function globToLuaPattern(glob: string): string {
  let out = "^";
  for (const ch of glob) {
    const c = ch.charCodeAt(0);
    if (ch === "*") out += ".*";
    else if (ch === "?") out += ".";
    else if (c < 0x80 && CLASSES.p![c]) out += `%${ch}`;
    else out += ch;
  }
  return `${out}$`;
}
