// Load rule files from disk (or an injected reader) and compile them into one
// rule set, all-or-nothing: any error means no rule set, so a failed reload
// keeps the previous one live (Prosody drops the broken file's rules instead).
// `%LIST name: file:PATH` lists are read here too; relative paths resolve
// against the directory of the rule file that names them.
import { readFile as fsReadFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { compileRuleFiles, type CompileOptions, type CompiledRuleSet } from "./compile.js";
import { parseRuleFile } from "./parser.js";
import { Diagnostics, sortDiagnostics, type RuleError } from "./rule-error.js";

export type ReadTextFile = (path: string) => Promise<string>;

export type LoadOptions = Omit<CompileOptions, "readListFile">;

export interface LoadResult {
  readonly ruleset?: CompiledRuleSet;
  readonly errors: readonly RuleError[];
  readonly warnings: readonly RuleError[];
}

const defaultRead: ReadTextFile = (path) => fsReadFile(path, "utf8");

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message}` : String(e?.message ?? err);
}

/** Where a list file named in `ruleFile` lives. */
export function resolveListPath(listPath: string, ruleFile: string): string {
  return isAbsolute(listPath) ? listPath : resolve(dirname(ruleFile), listPath);
}

/**
 * Read, parse and compile `paths` in order. Errors and warnings are
 * `file:line:col` diagnostics (see RuleError.format()).
 */
export async function loadRuleFiles(paths: readonly string[], readFile: ReadTextFile = defaultRead, options: LoadOptions = {}): Promise<LoadResult> {
  const diag = new Diagnostics();
  const unique: string[] = [];
  for (const p of paths) {
    if (unique.includes(p)) diag.warn({ file: p, line: 1, column: 1 }, "rule file listed more than once; loaded once");
    else unique.push(p);
  }
  const texts = await Promise.all(
    unique.map(async (file) => {
      try {
        return await readFile(file);
      } catch (err) {
        diag.error({ file, line: 1, column: 1 }, `cannot read rule file (${describe(err)})`);
        return undefined;
      }
    }),
  );
  const asts = [];
  for (let i = 0; i < unique.length; i++) {
    const text = texts[i];
    if (text !== undefined) asts.push(parseRuleFile(unique[i]!, text, diag).ast);
  }
  // Pre-read every file list so compiling stays synchronous.
  const listTexts = new Map<string, string | undefined>();
  const wanted = new Set<string>();
  for (const ast of asts) {
    for (const d of ast.definitions) {
      if (d.spec.type === "LIST" && d.spec.list.backend === "file") wanted.add(resolveListPath(d.spec.list.path, ast.file));
    }
  }
  await Promise.all(
    [...wanted].map(async (path) => {
      try {
        listTexts.set(path, await readFile(path));
      } catch {
        listTexts.set(path, undefined);
      }
    }),
  );
  const result = compileRuleFiles(asts, { ...options, readListFile: (p, f) => listTexts.get(resolveListPath(p, f)) }, diag);
  const errors = sortDiagnostics(result.errors, unique);
  const warnings = sortDiagnostics(result.warnings, unique);
  return result.ruleset ? { ruleset: result.ruleset, errors, warnings } : { errors, warnings };
}
