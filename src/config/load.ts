// Reads a YAML config, validates it with schema.ts, and returns a frozen Config
// or throws one ConfigError holding every issue. Issues point at the offending
// YAML node (file:line:col): the value, the key for unknown/renamed keys, the
// enclosing mapping for missing keys. Never logs and never exits; callers decide.
import { readFile } from "node:fs/promises";
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from "yaml";
import type { Node as YamlNode, YAMLError } from "yaml";
import { checkConfig } from "./schema.js";
import type { Config } from "./schema.js";
import { formatPath, validate, type Path, type SchemaIssue, type Spec } from "../util/validate.js";

export interface ConfigIssue {
  /** File name as given, or "<object>" for configFromObject(). */
  readonly file: string;
  /** 1-based; null when there is no source position. */
  readonly line: number | null;
  readonly column: number | null;
  /** "listeners[0].type"; "" for file-level problems (YAML syntax, unreadable file). */
  readonly path: string;
  readonly message: string;
}

/** One line per issue: `file:line:col: path: message`. */
export function formatIssue(i: ConfigIssue): string {
  const where = i.line === null ? i.file : `${i.file}:${i.line}:${i.column ?? 1}`;
  return i.path === "" ? `${where}: ${i.message}` : `${where}: ${i.path}: ${i.message}`;
}

export class ConfigError extends Error {
  override name = "ConfigError";
  readonly code = "XPX_ERR_CONFIG_INVALID";
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const count = issues.length === 1 ? "1 issue" : `${issues.length} issues`;
    super(`invalid configuration (${count}):\n${issues.map(formatIssue).join("\n")}`);
    this.issues = issues;
  }

  format(): string {
    return this.issues.map(formatIssue).join("\n");
  }
}

export async function loadConfigFile(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError([{ file: path, line: null, column: null, path: "", message: `cannot read config file: ${reason}` }]);
  }
  return loadConfigText(text, path);
}

export function loadConfigText(text: string, fileName: string): Config {
  const source = parseYaml(text, fileName);
  const result = checkConfig(source.value);
  if (!result.ok) throw new ConfigError(source.locate(result.issues));
  return result.config;
}

/** For tests and programmatic use; issues have no positions ("<object>: path: message"). */
export function configFromObject(obj: unknown): Config {
  const result = checkConfig(obj);
  if (!result.ok) {
    throw new ConfigError(
      result.issues.map((i) => ({ file: "<object>", line: null, column: null, path: formatPath(i.path), message: i.message })),
    );
  }
  return result.config;
}

/**
 * Validates YAML text against any spec (no cross-field checks, no freezing).
 * Exposed so that DSL features such as `renamed` can be tested with positions.
 */
export function loadYamlWithSpec<T>(text: string, fileName: string, spec: Spec<T>): T {
  const source = parseYaml(text, fileName);
  const result = validate(spec, source.value);
  if (!result.ok) throw new ConfigError(source.locate(result.issues));
  return result.value;
}

interface ParsedYaml {
  readonly value: unknown;
  locate(issues: readonly SchemaIssue[]): ConfigIssue[];
}

/** Parses YAML 1.2 (core schema); throws ConfigError on syntax errors and warnings. */
function parseYaml(text: string, fileName: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number, path: string, message: string): ConfigIssue => {
    const { line, col } = lineCounter.linePos(offset);
    return { file: fileName, line, column: col, path, message };
  };
  const problems: YAMLError[] = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    throw new ConfigError(problems.map((e) => at(e.pos[0], "", `YAML: ${e.message}`)));
  }
  let value: unknown;
  try {
    // An empty file (or one with only comments) is an empty mapping, so the
    // report is "listeners: required option is missing", not "must be a mapping".
    value = doc.contents === null ? {} : doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // toJS throws on alias bombs ("Excessive alias count") and similar.
    throw new ConfigError([at(0, "", `YAML: ${err instanceof Error ? err.message : String(err)}`)]);
  }
  return {
    value,
    locate: (issues) =>
      issues
        .map((i) => at(findOffset(doc.contents, i.path, i.target === "key"), formatPath(i.path), i.message))
        .sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0)),
  };
}

/**
 * Walks `path` through the YAML AST and returns the start offset of the node it
 * names: the value, or the key when `wantKey`. If the path leaves the document
 * (a missing key, or a value filled in from defaults), the deepest node reached
 * is used, which for a missing key is the mapping that should contain it.
 */
function findOffset(root: unknown, path: Path, wantKey: boolean): number {
  let node: unknown = root;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    // Inside an alias, the user's view of this path is the alias itself; the
    // anchored node belongs to another path (and is reported there).
    if (isAlias(node)) return offset;
    let keyNode: unknown;
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (!pair) return offset;
      keyNode = pair.key;
      next = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      next = node.items[seg];
      if (next === undefined) return offset;
    } else {
      return offset;
    }
    const last = i === path.length - 1;
    if (last && wantKey && keyNode !== undefined) return rangeStart(keyNode) ?? offset;
    // `key:` with nothing after it has an empty null scalar; point at the key instead.
    const empty = isScalar(next) && next.range !== undefined && next.range !== null && next.range[0] === next.range[1];
    offset = (empty ? undefined : rangeStart(next)) ?? rangeStart(keyNode) ?? offset;
    node = next;
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  if (typeof node !== "object" || node === null || !("range" in node)) return undefined;
  const range = (node as YamlNode).range;
  return range ? range[0] : undefined;
}
