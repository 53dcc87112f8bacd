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
// file, with the same search order as Lua's. Reading and checking a pattern,
// and its RegExp source, are in lua-pattern-syntax.ts.
//
// Lua reports a malformed pattern only when its matcher reaches the bad part,
// so some bad patterns work on some subjects. Here every malformed pattern is
// refused up front (LuaPatternError), as are patterns that could exceed Lua's
// limits (32 captures, 200 nested matcher calls) on some subject.

import { CLASSES, LuaPatternError, NON_ASCII, parse, regexpSource, toBytes, type ByteSet, type Item, type LuaPatternMode, type Parsed } from "./lua-pattern-syntax.js";

export { LuaPatternError, type LuaPatternMode };

/** What string.find returns: 1-based inclusive byte positions, then captures. */
export interface LuaFindResult {
  readonly start: number;
  readonly end: number;
  /** Strings are byte strings (one char per byte); position captures are numbers. */
  readonly captures: readonly (string | number)[];
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


/** Whether a subject is all ASCII (then it is its own byte string). Faster than a RegExp scan. */
function isAscii(text: string): boolean {
  return Buffer.byteLength(text, "utf8") === text.length;
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
