// `xmpp-guard check-rules FILE…`: load rule files exactly as the proxy would
// and say what is wrong with them, as `file:line:col: error|warning: message`
// lines, then one summary line per file. Returns the lines and the exit code
// (0 loaded, 1 any error); it prints nothing and never exits itself.
import type { CompiledRuleSet } from "./compile.js";
import { loadRuleFiles, type LoadOptions, type ReadTextFile } from "./load.js";
import type { RuleError } from "./rule-error.js";

export interface CheckOptions extends LoadOptions {
  /** Read rule and list files (default: fs, UTF-8). */
  readonly readFile?: ReadTextFile | undefined;
}

export interface RulesCheckResult {
  readonly ok: boolean;
  /** 0 when every file loaded, 1 on any error. */
  readonly exitCode: 0 | 1;
  /** What to print, in order: diagnostics, then the summary. */
  readonly lines: readonly string[];
  readonly errors: readonly RuleError[];
  readonly warnings: readonly RuleError[];
  /** The rule set, when it loaded. */
  readonly ruleset?: CompiledRuleSet | undefined;
}

/** `file:line:col: error: message`, the form compilers and editors parse. */
export function formatDiagnostic(severity: "error" | "warning", d: RuleError): string {
  return `${d.file}:${d.line}:${d.column}: ${severity}: ${d.message}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * One line per file: `rules/a.pfw: 5 rules (deliver 3, preroute 2)`. Chains
 * are listed built-in first, in Prosody's order, then user chains by name.
 */
export function summarizeRuleSet(ruleset: CompiledRuleSet): string[] {
  const perFile = new Map<string, Map<string, number>>(ruleset.files.map((f) => [f, new Map()]));
  for (const [chain, handlers] of ruleset.chains) {
    for (const h of handlers) perFile.get(h.file)?.set(chain, h.rules.length);
  }
  const order = (c: string): string => (c === "preroute" ? "0" : c === "deliver" ? "1" : c === "deliver_remote" ? "2" : `3${c}`);
  const lines: string[] = [];
  for (const [file, chains] of perFile) {
    const entries = [...chains].sort(([a], [b]) => order(a).localeCompare(order(b)));
    const total = entries.reduce((n, [, k]) => n + k, 0);
    const detail = entries.map(([c, k]) => `${c} ${k}`).join(", ");
    lines.push(`${file}: ${plural(total, "rule")}${detail === "" ? "" : ` (${detail})`}`);
  }
  return lines;
}

/** Load `paths` as one rule set (the order matters, as at run time) and report. */
export async function checkRules(paths: readonly string[], options: CheckOptions = {}): Promise<RulesCheckResult> {
  if (paths.length === 0) {
    const line = "check-rules: no rule files given";
    return { ok: false, exitCode: 1, lines: [line], errors: [], warnings: [] };
  }
  const { readFile, ...loadOptions } = options;
  const loaded = await loadRuleFiles(paths, readFile, loadOptions);
  // Errors and warnings are each sorted by file and position; merge them so
  // the output reads top to bottom like the files.
  const diagnostics = [
    ...loaded.errors.map((d) => ({ d, severity: "error" as const })),
    ...loaded.warnings.map((d) => ({ d, severity: "warning" as const })),
  ];
  const rank = new Map(paths.map((p, i) => [p, i] as const));
  diagnostics.sort(
    (x, y) =>
      (rank.get(x.d.file) ?? paths.length) - (rank.get(y.d.file) ?? paths.length) ||
      x.d.line - y.d.line ||
      x.d.column - y.d.column ||
      (x.severity === y.severity ? 0 : x.severity === "error" ? -1 : 1),
  );
  const lines = diagnostics.map(({ d, severity }) => formatDiagnostic(severity, d));
  const warnings = plural(loaded.warnings.length, "warning");
  if (!loaded.ruleset) {
    lines.push(`${plural(loaded.errors.length, "error")}, ${warnings}: rules not loaded`);
    return { ok: false, exitCode: 1, lines, errors: loaded.errors, warnings: loaded.warnings };
  }
  lines.push(...summarizeRuleSet(loaded.ruleset));
  lines.push(`OK: ${plural(loaded.ruleset.files.length, "file")}, ${plural(loaded.ruleset.ruleCount, "rule")}, ${warnings}`);
  return { ok: true, exitCode: 0, lines, errors: loaded.errors, warnings: loaded.warnings, ruleset: loaded.ruleset };
}
