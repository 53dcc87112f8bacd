// Generated (pattern, subject) pairs for the Lua pattern differential test
// (lua-pattern.test.ts). Three kinds of pattern:
//
// - valid: built from a grammar of everything §6.4.1 of the Lua 5.4 manual
//   describes (literals and escapes, '.', every class and its complement,
//   sets with ranges and the ']' '^' '-' edge cases, the four quantifiers,
//   captures, position captures, back-references, %b, %f, anchors, stray
//   '^' '$' and quantifier characters that Lua reads literally), with
//   non-ASCII text in patterns and subjects. Lua must accept them.
// - fault: a simple valid prefix, one malformation, a simple suffix. The
//   witness subject matches the prefix (and suffix), so Lua's matcher reaches
//   the fault and raises its error.
// - junk: short strings of pattern metacharacters, valid or not.
//
// Each case also carries a subject built to hit the pattern often: its
// witness (a string it should match) with text around it, twice in a row, or
// random text from an alphabet that overlaps the pattern's.
//
// The random choices a witness needs are drawn into the nodes themselves, so
// the witness is a pure function of the node and shrinks with it.

import fc from "fast-check";

export type Quantifier = "" | "*" | "+" | "-" | "?";

export type Node =
  /** A literal: a raw character or an escape such as "%." (witness: what it stands for). */
  | { t: "lit"; text: string; stands: string; q: Quantifier; reps: number }
  | { t: "any"; q: Quantifier; reps: number; pick: number }
  | { t: "class"; c: string; q: Quantifier; reps: number; pick: number }
  | { t: "set"; neg: boolean; members: Member[]; q: Quantifier; reps: number; pick: number }
  | { t: "frontier"; neg: boolean; members: Member[] }
  | { t: "balance"; open: string; close: string; inner: string }
  | { t: "capture"; body: Node[] }
  | { t: "position" }
  | { t: "backref"; r: number }
  /** A character Lua reads literally here: '^' or '$' mid-pattern, a quantifier after ')' or %f[…]. */
  | { t: "stray"; text: string };

export interface Member {
  readonly text: string;
  /** Characters it certainly holds (for witnesses of non-negated sets). */
  readonly holds: string;
}

export interface PatternCase {
  readonly kind: "valid" | "fault" | "junk";
  readonly pattern: string;
  readonly subject: string;
  /** A subject the pattern should match (fault: up to the fault). */
  readonly witness: string;
  /** The fault's name (fault cases). */
  readonly fault?: string;
}

// ---------------------------------------------------------------------------
// Pieces

const QUANTIFIER = fc.constantFrom<Quantifier>("", "", "", "*", "+", "-", "?");

/** Literal characters, raw or escaped, and what they match. */
const LITERALS: ReadonlyArray<readonly [string, string]> = [
  ["a", "a"], ["b", "b"], ["x", "x"], ["A", "A"], ["1", "1"], [" ", " "], [",", ","], ["/", "/"], ["<", "<"],
  ["=", "="], ["@", "@"], ["é", "é"], ["€", "€"], ["😀", "😀"], ["ÿ", "ÿ"],
  ["%.", "."], ["%%", "%"], ["%-", "-"], ["%(", "("], ["%)", ")"], ["%[", "["], ["%]", "]"], ["%^", "^"],
  ["%$", "$"], ["%*", "*"], ["%+", "+"], ["%?", "?"],
  // An escaped letter that is not a class is the letter itself; %B and %F are not %b and %f.
  ["%q", "q"], ["%B", "B"], ["%F", "F"], ["%y", "y"],
];

/** A member of each class (lower case) and of each complement (upper case); several to pick from. */
const CLASS_MEMBERS: Record<string, string> = {
  a: "kQz", c: "\x01\x1f\x7f", d: "059", g: "!~a", l: "qaz", p: ",!~", s: " \t\n", u: "QAZ", w: "w0Z", x: "eF9", z: "\0",
  A: "5 é", C: "a é", D: "a-é", G: " é\t", L: "A1é", P: "a é", S: "aé,", U: "a1é", W: " -é", X: "zgé", Z: "a é",
};

const CLASS_LETTERS = Object.keys(CLASS_MEMBERS);

/** Set members: characters, ranges (one reversed, one reaching a UTF-8 lead byte), classes, escapes. */
const MEMBERS: readonly Member[] = [
  { text: "a", holds: "a" }, { text: "b", holds: "b" }, { text: "x", holds: "x" }, { text: "0", holds: "0" },
  { text: " ", holds: " " }, { text: ".", holds: "." }, { text: "^", holds: "^" }, { text: "é", holds: "é" },
  { text: "a-f", holds: "acf" }, { text: "0-9", holds: "07" }, { text: "A-Z", holds: "AQ" }, { text: "z-a", holds: "" },
  { text: "!-/", holds: "!/" }, { text: "--/", holds: "-." }, { text: "a-é", holds: "q" },
  { text: "%a", holds: "k" }, { text: "%d", holds: "4" }, { text: "%s", holds: " " }, { text: "%W", holds: " " },
  { text: "%S", holds: "a" }, { text: "%p", holds: "," }, { text: "%z", holds: "\0" }, { text: "%x", holds: "e" },
  { text: "%]", holds: "]" }, { text: "%-", holds: "-" }, { text: "%^", holds: "^" }, { text: "%%", holds: "%" },
  { text: "%f", holds: "f" }, { text: "%b", holds: "b" }, { text: "%1", holds: "1" },
];

/** Edge-case member lists: a leading ']', a leading or trailing '-', a '-' before ']'. */
const MEMBER_EDGES: ReadonlyArray<readonly Member[]> = [
  [{ text: "]", holds: "]" }],
  [{ text: "]", holds: "]" }, { text: "a", holds: "a" }],
  [{ text: "]-a", holds: "]^_a" }],
  [{ text: "-", holds: "-" }, { text: "a", holds: "a" }],
  [{ text: "a", holds: "a" }, { text: "-", holds: "-" }],
  [{ text: "a-%", holds: "" }, { text: "]", holds: "]" }],
  [{ text: "a-%a", holds: "a" }],
];

const members = fc.oneof(
  { weight: 5, arbitrary: fc.array(fc.constantFrom(...MEMBERS), { minLength: 1, maxLength: 4 }) },
  { weight: 1, arbitrary: fc.constantFrom(...MEMBER_EDGES).map((m) => [...m]) },
);

const BALANCE_PAIRS = ["()", "<>", "ab", '""', "xx", "[]", "(("];

/** Subject alphabet: what patterns here match and what they do not, non-ASCII and NUL included. */
const SUBJECT_CHARS = [
  "a", "b", "x", "q", "A", "Z", "1", "0", " ", "\t", "\n", ".", "-", ",", "(", ")", "<", ">", "[", "]", "%", "^", "$", "=",
  "é", "€", "😀", "ÿ", "\0",
];

const randomText = (max: number) => fc.array(fc.constantFrom(...SUBJECT_CHARS), { maxLength: max }).map((a) => a.join(""));

// ---------------------------------------------------------------------------
// Nodes

const lit = fc.record({
  t: fc.constant("lit" as const),
  l: fc.constantFrom(...LITERALS),
  q: QUANTIFIER,
  reps: fc.nat(2),
}).map(({ l, q, reps }): Node => ({ t: "lit", text: l[0], stands: l[1], q, reps }));

const single: fc.Arbitrary<Node> = fc.oneof(
  { weight: 4, arbitrary: lit },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("any" as const), q: QUANTIFIER, reps: fc.nat(2), pick: fc.nat(99) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("class" as const), c: fc.constantFrom(...CLASS_LETTERS), q: QUANTIFIER, reps: fc.nat(2), pick: fc.nat(99) }) },
);

const set: fc.Arbitrary<Node> = fc.record({
  t: fc.constant("set" as const),
  neg: fc.boolean(),
  members,
  q: QUANTIFIER,
  reps: fc.nat(2),
  pick: fc.nat(99),
});

const { node } = fc.letrec<{ node: Node; capture: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { weight: 8, arbitrary: single },
    { weight: 3, arbitrary: set },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("frontier" as const), neg: fc.boolean(), members }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("balance" as const), pair: fc.constantFrom(...BALANCE_PAIRS), inner: randomText(3) })
      .map(({ pair, inner }): Node => ({ t: "balance", open: pair[0]!, close: pair[1]!, inner })) },
    { weight: 2, arbitrary: tie("capture") },
    { weight: 1, arbitrary: fc.constant<Node>({ t: "position" }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("backref" as const), r: fc.nat(5) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("stray" as const), text: fc.constantFrom("^", "$", "*", "+", "-", "?") }) },
  ),
  capture: fc.record({ t: fc.constant("capture" as const), body: fc.array(tie("node"), { maxLength: 3 }) }),
}));

// ---------------------------------------------------------------------------
// Rendering and witnesses

interface Rendered {
  pattern: string;
  witness: string;
}

/** One of the characters of `s`; only single-byte ones unless the item may repeat (a '.' or class takes one byte). */
function pickFrom(s: string, pick: number, q: Quantifier = "*"): string {
  let chars = [...s];
  if (q === "" || q === "?") {
    const narrow = chars.filter((c) => Buffer.byteLength(c) === 1);
    if (narrow.length > 0) chars = narrow;
  }
  return chars.length === 0 ? "" : chars[pick % chars.length]!;
}

function repeat(w: string, q: Quantifier, reps: number): string {
  // A quantifier applies to one byte: after a multibyte character only its
  // last byte repeats, so the witness keeps the character once.
  if (Buffer.byteLength(w) > 1) return w;
  switch (q) {
    case "":
      return w;
    case "+":
      return w.repeat(1 + (reps % 2));
    case "?":
      return reps % 2 === 0 ? w : "";
    default:
      return w.repeat(reps);
  }
}

function setText(neg: boolean, ms: readonly Member[]): string {
  let text = ms.map((m) => m.text).join("");
  // A '^' member first would negate the set: move it to the end.
  if (!neg && text.startsWith("^")) text = text.length > 1 ? text.slice(1) + "^" : "%^";
  return `[${neg ? "^" : ""}${text}]`;
}

/** Pattern text and witness of a node list; captures are numbered in `caps` (witness per capture). */
function render(nodes: readonly Node[], caps: { closed: number[]; witness: string[] }, out: Rendered): void {
  let last: Node["t"] | undefined;
  for (const n of nodes) {
    switch (n.t) {
      case "lit":
        out.pattern += n.text + n.q;
        out.witness += repeat(n.stands, n.q, n.reps);
        break;
      case "any":
        out.pattern += `.${n.q}`;
        out.witness += repeat(pickFrom("qé.-\0 ", n.pick, n.q), n.q, n.reps);
        break;
      case "class":
        out.pattern += `%${n.c}${n.q}`;
        out.witness += repeat(pickFrom(CLASS_MEMBERS[n.c]!, n.pick, n.q), n.q, n.reps);
        break;
      case "set": {
        out.pattern += setText(n.neg, n.members) + n.q;
        const holds = n.neg ? "q~é\t" : n.members.map((m) => m.holds).join("");
        out.witness += repeat(pickFrom(holds, n.pick, n.q), n.q, n.reps);
        break;
      }
      case "frontier":
        out.pattern += `%f${setText(n.neg, n.members)}`;
        break;
      case "balance":
        out.pattern += `%b${n.open}${n.close}`;
        out.witness += n.open + n.inner.replaceAll(n.open, "").replaceAll(n.close, "") + n.close;
        break;
      case "capture": {
        const k = caps.witness.length + 1;
        caps.witness.push("");
        const inner: Rendered = { pattern: "", witness: "" };
        render(n.body, caps, inner);
        out.pattern += `(${inner.pattern})`;
        out.witness += inner.witness;
        caps.witness[k - 1] = inner.witness;
        caps.closed.push(k);
        break;
      }
      case "position":
        caps.witness.push("");
        caps.closed.push(caps.witness.length);
        out.pattern += "()";
        break;
      case "backref": {
        if (caps.closed.length === 0) {
          out.pattern += "%%";
          out.witness += "%";
          break;
        }
        const k = caps.closed[n.r % caps.closed.length]!;
        if (k > 9) break;
        out.pattern += `%${k}`;
        out.witness += caps.witness[k - 1]!;
        break;
      }
      case "stray":
        // A quantifier character is only literal after something that takes none.
        if ("*+-?".includes(n.text) && !(last === "capture" || last === "position" || last === "frontier" || last === "balance" || last === "backref" || last === undefined)) break;
        out.pattern += n.text;
        out.witness += n.text;
        break;
    }
    last = n.t;
  }
}

function renderAll(nodes: readonly Node[]): Rendered {
  const out: Rendered = { pattern: "", witness: "" };
  render(nodes, { closed: [], witness: [] }, out);
  return out;
}

// ---------------------------------------------------------------------------
// Cases

/** Text around a witness: before, after, and whether to repeat it. */
const surroundings = fc.record({
  how: fc.constantFrom("witness", "around", "twice", "random", "empty", "around", "twice"),
  before: randomText(3),
  after: randomText(3),
  random: randomText(10),
});

function subjectFor(witness: string, s: { how: string; before: string; after: string; random: string }): string {
  switch (s.how) {
    case "witness":
      return witness;
    case "around":
      return s.before + witness + s.after;
    case "twice":
      return witness + s.before + witness;
    case "random":
      return s.random;
    default:
      return "";
  }
}

const validCase: fc.Arbitrary<PatternCase> = fc
  .record({
    // Anchors one time in five: '$' allows one gmatch value at most, and a
    // leading '^' is a literal character there.
    start: fc.constantFrom(false, false, false, false, true),
    nodes: fc.array(node, { minLength: 0, maxLength: 6 }),
    end: fc.constantFrom(false, false, false, false, true),
    around: surroundings,
  })
  .map(({ start, nodes, end, around }) => {
    const r = renderAll(nodes);
    let pattern = r.pattern;
    if (start) pattern = `^${pattern}`;
    if (end) pattern += "$";
    return { kind: "valid" as const, pattern, subject: subjectFor(r.witness, around), witness: r.witness };
  });

/** Simple nodes (literals, '.', classes, quantified): every witness really matches. */
const simpleNodes = fc.array(fc.oneof(lit, single), { maxLength: 3 });

const FAULTS = [
  "set-unclosed", "percent-at-end", "frontier-without-set", "frontier-set-unclosed", "balance-short", "close-unmatched",
  "open-unclosed", "backref-zero", "backref-unknown", "backref-open", "too-many-captures",
] as const;

const faultCase: fc.Arbitrary<PatternCase> = fc
  .record({
    fault: fc.constantFrom(...FAULTS),
    prefix: simpleNodes,
    inner: simpleNodes,
    suffix: simpleNodes,
    ms: members,
    around: surroundings,
  })
  .map(({ fault, prefix, inner, suffix, ms, around }) => {
    const pre = renderAll(prefix);
    const suf = renderAll(suffix);
    const body = renderAll(inner);
    let pattern = pre.pattern;
    let witness = pre.witness;
    switch (fault) {
      case "set-unclosed":
        pattern += `[${ms.map((m) => m.text).join("").replaceAll("]", "")}`;
        break;
      case "percent-at-end":
        pattern += "%";
        break;
      case "frontier-without-set":
        pattern += `%fa${suf.pattern}`;
        break;
      case "frontier-set-unclosed":
        pattern += `%f[${ms.map((m) => m.text).join("").replaceAll("]", "")}`;
        break;
      case "balance-short":
        pattern += ms.length % 2 === 0 ? "%b" : "%b(";
        break;
      case "close-unmatched":
        pattern += `)${suf.pattern}`;
        break;
      case "open-unclosed":
        pattern += `(${suf.pattern}`;
        witness += suf.witness;
        break;
      case "backref-zero":
        pattern += `%0${suf.pattern}`;
        break;
      case "backref-unknown":
        pattern += `(a)%2${suf.pattern}`;
        witness += "a";
        break;
      case "backref-open":
        pattern += `(${body.pattern}%1)${suf.pattern}`;
        witness += body.witness;
        break;
      case "too-many-captures":
        pattern += `${"()".repeat(33)}${suf.pattern}`;
        break;
    }
    return { kind: "fault" as const, fault, pattern, subject: subjectFor(witness, around), witness };
  });

const JUNK = ["(", ")", "[", "]", "%", "^", "$", "*", "+", "-", "?", ".", "a", "b", "f", "1", "0", "z", "Z", "é", "(", ")", "%"];

const junkCase: fc.Arbitrary<PatternCase> = fc
  .record({ chars: fc.array(fc.constantFrom(...JUNK), { maxLength: 8 }), subject: randomText(8) })
  .map(({ chars, subject }) => ({ kind: "junk" as const, pattern: chars.join(""), subject, witness: subject }));

export const patternCase: fc.Arbitrary<PatternCase> = fc.oneof(
  { weight: 15, arbitrary: validCase },
  { weight: 2, arbitrary: faultCase },
  { weight: 3, arbitrary: junkCase },
);

/** Feature tags of a case, to show the generator covers the grammar. */
export function features(c: PatternCase): string[] {
  const f: string[] = [c.kind];
  const p = c.pattern;
  if (c.fault) f.push(`fault ${c.fault}`);
  if (c.kind !== "valid") return f;
  if (p.startsWith("^")) f.push("^ first");
  if (/(^|[^%])\$$/.test(p)) f.push("$ last");
  if (/%f\[/.test(p)) f.push("%f");
  if (/%b/.test(p)) f.push("%b");
  if (/%[1-9]/.test(p)) f.push("back-reference");
  if (p.includes("()")) f.push("position capture");
  if (/\((?!\))/.test(p)) f.push("capture");
  if (/%[zZ]/.test(p)) f.push("%z");
  if (/\[\^/.test(p)) f.push("negated set");
  if (/\[\]/.test(p) || /\[\^\]/.test(p)) f.push("set with leading ]");
  if (/[^%]-/.test(p)) f.push("lazy -");
  if (/[^\x00-\x7f]/.test(p)) f.push("non-ASCII pattern");
  if (/[^\x00-\x7f]/.test(c.subject)) f.push("non-ASCII subject");
  if (c.subject === "") f.push("empty subject");
  for (const q of ["*", "+", "?"]) if (p.includes(q)) f.push(`quantifier ${q}`);
  return f;
}
