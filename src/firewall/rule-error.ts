// Diagnostics for rule files: one value type for errors and warnings, carrying
// the physical position (1-based line and column) of the offending text.
// Diagnostics are collected, never thrown out of the lexer, parser or compiler,
// so one pass reports every problem it can. See docs/firewall.md.

export interface SourceLoc {
  readonly file: string;
  /** 1-based physical line. */
  readonly line: number;
  /** 1-based column (in UTF-16 code units) within that line. */
  readonly column: number;
}

export class RuleError extends Error {
  readonly file: string;
  readonly line: number;
  readonly column: number;

  constructor(loc: SourceLoc, message: string) {
    super(message);
    this.name = "RuleError";
    this.file = loc.file;
    this.line = loc.line;
    this.column = loc.column;
  }

  /** `file:line:col: message`, the form every tool prints. */
  format(): string {
    return `${this.file}:${this.line}:${this.column}: ${this.message}`;
  }
}

/** Collects errors and warnings for one load; order is the order reported. */
export class Diagnostics {
  readonly errors: RuleError[] = [];
  readonly warnings: RuleError[] = [];

  error(loc: SourceLoc, message: string): void {
    this.errors.push(new RuleError(loc, message));
  }

  warn(loc: SourceLoc, message: string): void {
    this.warnings.push(new RuleError(loc, message));
  }
}

/** Sort diagnostics by file order given, then line, then column (stable). */
export function sortDiagnostics(list: readonly RuleError[], files: readonly string[]): RuleError[] {
  const rank = new Map(files.map((f, i) => [f, i] as const));
  return [...list].sort(
    (a, b) =>
      (rank.get(a.file) ?? files.length) - (rank.get(b.file) ?? files.length) ||
      a.line - b.line ||
      a.column - b.column,
  );
}
