// Translate Lua patterns (Lua 5.4 manual §6.4.1) into RegExp sources, so rule
// files keep their `%PATTERN`, `INSPECT ~=` and `<<…>>` JID patterns. Classes
// are ASCII (the C locale Prosody runs in). `%b` and position captures have no
// RegExp equivalent and are reported as errors, never approximated. Matching is
// per UTF-16 unit where Lua matches bytes: only non-ASCII text can differ.

export interface LuaPattern {
  /** RegExp source (use without flags; `.` is translated to `[^]`). */
  readonly source: string;
  /** Number of capture groups. */
  readonly captures: number;
}

const CLASS_BODIES: Record<string, string> = {
  a: "A-Za-z",
  c: "\\x00-\\x1f\\x7f",
  d: "0-9",
  g: "\\x21-\\x7e",
  l: "a-z",
  p: "!-\\/:-@\\[-`{-~",
  s: "\\t\\n\\v\\f\\r ",
  u: "A-Z",
  w: "A-Za-z0-9",
  x: "0-9A-Fa-f",
};

/** Escape one literal character for use inside or outside a RegExp class. */
function lit(ch: string): string {
  return /[\\^$.*+?()[\]{}|\/-]/.test(ch) ? `\\${ch}` : ch;
}

/** `%x` → RegExp item (outside a set). */
function classItem(c: string): string {
  const body = CLASS_BODIES[c.toLowerCase()];
  if (body === undefined) return lit(c);
  return c === c.toLowerCase() ? `[${body}]` : `[^${body}]`;
}

/**
 * Translate a Lua pattern. Throws an Error with a readable message when the
 * pattern is malformed or uses a feature without a RegExp equivalent.
 */
export function translateLuaPattern(pattern: string): LuaPattern {
  let out = "";
  let i = 0;
  let captures = 0;
  const open: number[] = [];
  const n = pattern.length;
  if (pattern[0] === "^") {
    out += "^";
    i = 1;
  }
  while (i < n) {
    const ch = pattern[i]!;
    // `$` anchors only as the last character.
    if (ch === "$" && i === n - 1) {
      out += "$";
      i++;
      continue;
    }
    if (ch === "(") {
      if (pattern[i + 1] === ")") throw new Error("position captures '()' are not supported");
      captures++;
      open.push(captures);
      out += "(";
      i++;
      continue;
    }
    if (ch === ")") {
      if (open.length === 0) throw new Error("invalid pattern capture (unmatched ')')");
      open.pop();
      out += ")";
      i++;
      continue;
    }
    let item: string;
    if (ch === "%") {
      const c = pattern[i + 1];
      if (c === undefined) throw new Error("malformed pattern (ends with '%')");
      if (c === "b") throw new Error("'%b' (balanced match) is not supported");
      if (c === "f") {
        if (pattern[i + 2] !== "[") throw new Error("missing '[' after '%f' in pattern");
        const { set, next } = readSet(pattern, i + 2);
        out += `(?<!${set})(?=${set})`;
        i = next;
        continue;
      }
      if (c >= "0" && c <= "9") {
        const k = Number(c);
        if (k === 0 || k > captures || open.includes(k)) throw new Error(`invalid capture index %${c}`);
        out += `\\${k}`;
        i += 2;
        continue;
      }
      item = classItem(c);
      i += 2;
    } else if (ch === "[") {
      const { set, next } = readSet(pattern, i);
      item = set;
      i = next;
    } else if (ch === ".") {
      item = "[^]";
      i++;
    } else {
      item = lit(ch);
      i++;
    }
    const q = pattern[i];
    if (q === "*" || q === "+" || q === "?") {
      out += item + q;
      i++;
    } else if (q === "-") {
      out += `${item}*?`;
      i++;
    } else {
      out += item;
    }
  }
  if (open.length > 0) throw new Error("unfinished capture");
  return { source: out, captures };
}

/** Read a `[...]` set starting at `start` (the '['); returns the RegExp class. */
function readSet(p: string, start: number): { set: string; next: number } {
  let i = start + 1;
  let negate = false;
  if (p[i] === "^") {
    negate = true;
    i++;
  }
  let body = "";
  let first = true;
  for (;;) {
    const ch = p[i];
    if (ch === undefined) throw new Error("malformed pattern (missing ']')");
    if (ch === "]" && !first) {
      i++;
      break;
    }
    first = false;
    if (ch === "%") {
      const c = p[i + 1];
      if (c === undefined) throw new Error("malformed pattern (ends with '%')");
      const cls = CLASS_BODIES[c.toLowerCase()];
      if (cls !== undefined && c === c.toLowerCase()) body += cls;
      else if (cls !== undefined) {
        // A negated class inside a set: expand to its complement over ASCII+.
        body += complementBody(c.toLowerCase());
      } else body += lit(c);
      i += 2;
      continue;
    }
    if (p[i + 1] === "-" && p[i + 2] !== undefined && p[i + 2] !== "]") {
      // Lua: a reversed range like z-a matches nothing (JS would refuse the RegExp).
      if (ch <= p[i + 2]!) body += `${lit(ch)}-${lit(p[i + 2]!)}`;
      i += 3;
      continue;
    }
    body += lit(ch);
    i++;
  }
  return { set: `[${negate ? "^" : ""}${body}]`, next: i };
}

/** Complement of an ASCII class as a set body (everything else up to U+FFFF). */
function complementBody(c: string): string {
  const inClass = new RegExp(`[${CLASS_BODIES[c]}]`);
  let body = "";
  let runStart = -1;
  for (let code = 0; code <= 0x80; code++) {
    const inside = code < 0x80 && inClass.test(String.fromCharCode(code));
    if (!inside && code < 0x80 && runStart < 0) runStart = code;
    if ((inside || code === 0x80) && runStart >= 0) {
      body += `\\x${hex(runStart)}-\\x${hex(code - 1)}`;
      runStart = -1;
    }
  }
  return `${body}\\x80-\\uffff`;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** Anchored RegExp for a whole-string match (`^…$`), as mod_firewall builds for JIDs. */
export function anchoredLuaPattern(pattern: string): string {
  return `^(?:${translateLuaPattern(pattern).source})$`;
}

/**
 * Lua's string.gmatch: every match left to right, yielding the first capture
 * when the pattern has captures, else the whole match. An empty match advances
 * by one position and is not allowed right where the previous match ended
 * (Lua 5.4 semantics).
 */
export function* gmatch(text: string, re: RegExp, captures: number): Generator<string> {
  const g = new RegExp(re.source, "g");
  let lastEnd = -1;
  let from = 0;
  while (from <= text.length) {
    g.lastIndex = from;
    const m = g.exec(text);
    if (!m) return;
    const end = m.index + m[0].length;
    if (m[0].length === 0 && m.index === lastEnd) {
      from = m.index + 1;
      continue;
    }
    yield captures > 0 ? (m[1] ?? "") : m[0];
    lastEnd = end;
    from = m[0].length === 0 ? end + 1 : end;
  }
}
