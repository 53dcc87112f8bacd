// Rule-file lexer: physical lines → classified logical lines (docs/firewall.md, "Files and syntax").
// Each line is trimmed of ASCII whitespace; a line ending in `\` is joined to
// the next trimmed line with the backslash dropped and no space inserted. The
// kind of a line depends only on its form; whether it is allowed where it
// stands (e.g. a chain header inside a rule) is the parser's business.
import { Diagnostics, type SourceLoc } from "./rule-error.js";

export type LineKind = "blank" | "comment" | "chain" | "definition" | "metadata" | "action" | "condition";

interface Segment {
  /** Offset of this physical line's text within the logical text. */
  readonly offset: number;
  readonly line: number;
  /** Column of the segment's first character. */
  readonly column: number;
}

export class LogicalLine {
  readonly kind: LineKind;
  readonly text: string;
  readonly file: string;
  readonly #segments: readonly Segment[];

  constructor(kind: LineKind, text: string, file: string, segments: readonly Segment[]) {
    this.kind = kind;
    this.text = text;
    this.file = file;
    this.#segments = segments;
  }

  /** Position of the first character. */
  get loc(): SourceLoc {
    return this.locAt(0);
  }

  /** Physical position of the character at `offset` in the logical text. */
  locAt(offset: number): SourceLoc {
    let seg = this.#segments[0]!;
    for (const s of this.#segments) {
      if (s.offset <= offset) seg = s;
      else break;
    }
    return { file: this.file, line: seg.line, column: seg.column + (offset - seg.offset) };
  }

  /** Last physical line this logical line spans. */
  get lastLine(): number {
    return this.#segments[this.#segments.length - 1]!.line;
  }
}

const LEADING_WS = /^[ \t\n\v\f\r]*/;
const TRAILING_WS = /[ \t\n\v\f\r]*$/;
const ACTION_RE = /^[A-Za-z0-9_ ]+[.=]/;

export function classify(text: string): LineKind {
  if (text === "") return "blank";
  const c = text[0];
  if (c === "#" || c === ";") return "comment";
  if (text.startsWith("::")) return "chain";
  if (text.startsWith("@@")) return "metadata";
  if (c === "%") return "definition";
  if (ACTION_RE.test(text)) return "action";
  return "condition";
}

/** Split a rule file into logical lines; reports a dangling continuation. */
export function lex(file: string, source: string, diag: Diagnostics): LogicalLine[] {
  if (source.charCodeAt(0) === 0xfeff) {
    source = source.slice(1);
    diag.warn(
      { file, line: 1, column: 1 },
      "the file starts with a byte order mark: Prosody reads it as part of the first line and fails to load the file (save it as UTF-8 without BOM)",
    );
  }
  const physical = source.split("\n");
  // A final newline does not start another line.
  if (physical.length > 1 && physical[physical.length - 1] === "") physical.pop();
  const out: LogicalLine[] = [];
  let held = "";
  let heldSegments: Segment[] = [];
  for (let i = 0; i < physical.length; i++) {
    const raw = physical[i]!;
    const lead = LEADING_WS.exec(raw)![0].length;
    const text = raw.slice(lead).replace(TRAILING_WS, "");
    const segment: Segment = { offset: held.length, line: i + 1, column: lead + 1 };
    if (text.endsWith("\\")) {
      held += text.slice(0, -1);
      heldSegments.push(segment);
      continue;
    }
    const joined = held + text;
    const segments = [...heldSegments, segment];
    held = "";
    heldSegments = [];
    out.push(new LogicalLine(classify(joined), joined, file, segments));
  }
  if (heldSegments.length > 0) {
    const first = heldSegments[0]!;
    diag.error(
      { file, line: first.line, column: first.column },
      "line continuation ('\\') at the end of the file: the continued line is never completed",
    );
  }
  return out;
}
