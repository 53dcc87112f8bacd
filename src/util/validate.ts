// A small declarative validator for configuration: a Spec checks one value and
// returns its normalised form, or INVALID after pushing issues. It collects
// every issue (never first-fail), rejects unknown keys with a "did you mean",
// and knows nothing about YAML or files: an issue carries a key path, and
// config/load.ts turns it into file:line:col. Objects are declared as maps of
// fields, each `required(spec)` or `optional(spec, default)`; `section(spec)`
// is an optional sub-object whose own fields carry the defaults; `refine`
// adds checks across the fields of a sound object. Generic: each feature
// declares its own section with it (MUC_LIMITS_SPEC in muc/, ...), and
// config/schema.ts composes them. See docs/configuration.md, "How the config
// is validated".

// sub-object whose own fields carry the defaults.

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

/**
 * Where an issue points: the value at `path`, the key at `path` (unknown or
 * renamed keys), or the nearest existing ancestor (a missing required key).
 */
export type IssueTarget = "value" | "key" | "parent";

export interface SchemaIssue {
  readonly path: Path;
  readonly target: IssueTarget;
  readonly message: string;
}

export const INVALID: unique symbol = Symbol("invalid");
export type Invalid = typeof INVALID;

export interface Spec<T> {
  /** What is accepted, in words; used in messages and in listOptions(). */
  readonly expected: string;
  /** Sub-structure, for listOptions() (docs and docs tests). */
  readonly shape?: Shape;
  check(value: unknown, path: Path, issues: SchemaIssue[]): T | Invalid;
}

export type Shape =
  | { readonly kind: "object"; readonly fields: Readonly<Record<string, Field<unknown>>> }
  | { readonly kind: "list"; readonly item: Spec<unknown> };

export interface Field<T> {
  readonly spec: Spec<T>;
  readonly required: boolean;
  /** Raw (YAML-form) default, run through `spec` when the key is absent. */
  readonly fallback?: unknown;
}

export function required<T>(spec: Spec<T>): Field<T> {
  return { spec, required: true };
}

export function optional<T>(spec: Spec<T>, fallback: unknown): Field<T> {
  return { spec, required: false, fallback };
}

/**
 * An optional sub-object. Absent or null (a YAML key whose children are all
 * commented out) means "all defaults".
 */
export function section<T>(spec: Spec<T>): Field<T> {
  return optional(nullAsEmpty(spec), {});
}

/** Records an issue and returns INVALID, for specs written by hand. */
export function issue(issues: SchemaIssue[], path: Path, message: string, target: IssueTarget = "value"): Invalid {
  issues.push({ path, target, message });
  return INVALID;
}

function describeRange(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return ` between ${min} and ${max}`;
  if (min !== undefined) return ` >= ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return "";
}

export function str(options: { pattern?: RegExp; hint?: string } = {}): Spec<string> {
  const expected = options.hint ?? "a string";
  return {
    expected,
    check(value, path, issues) {
      if (typeof value !== "string") return issue(issues, path, "must be a string");
      if (value.length === 0) return issue(issues, path, "must not be empty");
      if (options.pattern && !options.pattern.test(value)) return issue(issues, path, `must be ${expected}`);
      return value;
    },
  };
}

export function int(options: { min?: number; max?: number } = {}): Spec<number> {
  const expected = `an integer${describeRange(options.min, options.max)}`;
  return {
    expected,
    check(value, path, issues) {
      const ok =
        typeof value === "number" &&
        Number.isSafeInteger(value) &&
        (options.min === undefined || value >= options.min) &&
        (options.max === undefined || value <= options.max);
      return ok ? value : issue(issues, path, `must be ${expected}`);
    },
  };
}

/** A finite number; `above` is an exclusive lower bound, `min`/`max` inclusive. */
export function num(options: { above?: number; min?: number; max?: number } = {}): Spec<number> {
  const parts: string[] = [];
  if (options.above !== undefined) parts.push(`greater than ${options.above}`);
  if (options.min !== undefined) parts.push(`>= ${options.min}`);
  if (options.max !== undefined) parts.push(`at most ${options.max}`);
  const expected = parts.length > 0 ? `a number ${parts.join(" and ")}` : "a number";
  return {
    expected,
    check(value, path, issues) {
      const ok =
        typeof value === "number" &&
        Number.isFinite(value) &&
        (options.above === undefined || value > options.above) &&
        (options.min === undefined || value >= options.min) &&
        (options.max === undefined || value <= options.max);
      return ok ? value : issue(issues, path, `must be ${expected}`);
    },
  };
}

export function oneOf<const V extends readonly string[]>(values: V): Spec<V[number]> {
  const expected = `one of ${values.join(", ")}`;
  return {
    expected,
    check(value, path, issues) {
      return typeof value === "string" && values.includes(value) ? value : issue(issues, path, `must be ${expected}`);
    },
  };
}

export function bool(): Spec<boolean> {
  return {
    expected: "true or false",
    check(value, path, issues) {
      return typeof value === "boolean" ? value : issue(issues, path, "must be true or false");
    },
  };
}

export function nullable<T>(spec: Spec<T>): Spec<T | null> {
  return {
    expected: `${spec.expected}, or null`,
    ...(spec.shape ? { shape: spec.shape } : {}),
    check: (value, path, issues) => (value === null ? null : spec.check(value, path, issues)),
  };
}

export function nullAsEmpty<T>(spec: Spec<T>): Spec<T> {
  return { ...spec, check: (value, path, issues) => spec.check(value ?? {}, path, issues) };
}

/** Rewrites the raw value before checking, e.g. to accept a legacy spelling. */
export function coerce<T>(fn: (value: unknown) => unknown, spec: Spec<T>): Spec<T> {
  return { ...spec, check: (value, path, issues) => spec.check(fn(value), path, issues) };
}

/**
 * Maps a checked value to its typed form. `fn` may throw; the error's message
 * becomes the issue (so parsers like parseHostPort plug in directly).
 */
export function transform<A, B>(spec: Spec<A>, fn: (value: A) => B, expected = spec.expected): Spec<B> {
  return {
    expected,
    ...(spec.shape ? { shape: spec.shape } : {}),
    check(value, path, issues) {
      const checked = spec.check(value, path, issues);
      if (checked === INVALID) return INVALID;
      try {
        return fn(checked);
      } catch (err) {
        return issue(issues, path, err instanceof Error ? err.message : String(err));
      }
    },
  };
}

export function list<T>(item: Spec<T>, options: { minItems?: number } = {}): Spec<readonly T[]> {
  const min = options.minItems ?? 0;
  return {
    expected: `a list of ${item.expected}`,
    shape: { kind: "list", item },
    check(value, path, issues) {
      if (!Array.isArray(value)) return issue(issues, path, "must be a list");
      if (value.length < min) return issue(issues, path, `must have at least ${min} ${min === 1 ? "entry" : "entries"}`);
      const out: T[] = [];
      let ok = true;
      value.forEach((v: unknown, i) => {
        const checked = item.check(v, [...path, i], issues);
        if (checked === INVALID) ok = false;
        else out.push(checked);
      });
      return ok ? out : INVALID;
    },
  };
}

export interface ObjOptions {
  /** Old key → new name (a sibling key or a full dotted path), reported as "`old` was renamed to `new`". */
  readonly renamed?: Readonly<Record<string, string>>;
  /**
   * The message for an unknown key, when a section has a better one than
   * "unknown option" (another product's spelling, an option that does not
   * apply); undefined falls back to the default with its suggestion.
   */
  readonly unknown?: (key: string, known: readonly string[]) => string | undefined;
  /** The message when the value is not a mapping at all (default "must be a mapping"). */
  readonly notMapping?: (value: unknown) => string;
}

type FieldsOutput<F> = { readonly [K in keyof F]: F[K] extends Field<infer T> ? T : never };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export function obj<F extends Record<string, Field<unknown>>>(
  fields: F,
  options: ObjOptions = {},
): Spec<FieldsOutput<F>> {
  const known = Object.keys(fields);
  const renamed = options.renamed ?? {};
  return {
    expected: "a mapping",
    shape: { kind: "object", fields },
    check(value, path, issues) {
      if (!isPlainObject(value)) return issue(issues, path, options.notMapping?.(value) ?? "must be a mapping");
      const out: Record<string, unknown> = {};
      let ok = true;
      const present = new Set<string>();
      for (const key of Object.keys(value)) {
        // hasOwn, not `in`: "constructor" or "__proto__" must not look like known keys.
        if (Object.hasOwn(fields, key)) {
          present.add(key);
          continue;
        }
        ok = false;
        if (Object.hasOwn(renamed, key)) {
          const to = renamed[key]!;
          present.add(to); // do not also report the new key as missing
          issue(issues, [...path, key], `\`${key}\` was renamed to \`${to}\``, "key");
        } else {
          const custom = options.unknown?.(key, known);
          const hint = custom === undefined ? suggestKey(key, known) : undefined;
          issue(issues, [...path, key], custom ?? (hint ? `unknown option; did you mean \`${hint}\`?` : "unknown option"), "key");
        }
      }
      for (const key of known) {
        const field = fields[key]!;
        const fieldPath = [...path, key];
        let checked: unknown;
        if (Object.hasOwn(value, key)) {
          checked = field.spec.check(value[key], fieldPath, issues);
        } else if (field.required) {
          if (!present.has(key)) issue(issues, fieldPath, "required option is missing", "parent");
          checked = INVALID;
        } else {
          checked = field.spec.check(field.fallback, fieldPath, issues);
        }
        if (checked === INVALID) ok = false;
        else out[key] = checked;
      }
      return ok ? (out as FieldsOutput<F>) : INVALID;
    },
  };
}

export type ValidateResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly issues: readonly SchemaIssue[] };

/** Runs a spec over a whole value, collecting every issue. */
export function validate<T>(spec: Spec<T>, value: unknown): ValidateResult<T> {
  const issues: SchemaIssue[] = [];
  const checked = spec.check(value, [], issues);
  if (checked === INVALID || issues.length > 0) return { ok: false, issues };
  return { ok: true, value: checked };
}

/** "listeners[0].type"; the empty path is "<root>". */
export function formatPath(path: Path): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? seg : `.${seg}`;
  }
  return out === "" ? "<root>" : out;
}

export interface OptionInfo {
  /** "xml.max_depth", "listeners[].name". */
  readonly path: string;
  readonly required: boolean;
  /** Raw default, or undefined for required options and sections. */
  readonly default: unknown;
  readonly expected: string;
  readonly section: boolean;
}

/** Flattens a schema into its options, in declaration order (for docs and their tests). */
export function listOptions(spec: Spec<unknown>, prefix = ""): OptionInfo[] {
  const out: OptionInfo[] = [];
  const shape = spec.shape;
  if (shape?.kind === "list") return listOptions(shape.item, `${prefix}[]`);
  if (shape?.kind !== "object") return out;
  for (const [key, field] of Object.entries(shape.fields)) {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    const inner = field.spec.shape;
    const isSection = inner?.kind === "object" || (inner?.kind === "list" && inner.item.shape?.kind === "object");
    out.push({
      path,
      required: field.required,
      default: field.required || isSection ? undefined : field.fallback,
      expected: field.spec.expected,
      section: isSection,
    });
    out.push(...listOptions(field.spec, path));
  }
  return out;
}

// ---------------------------------------------------------------------------
// "Did you mean": optimal string alignment distance (Levenshtein plus adjacent
// transpositions, so "lsiten" is one edit from "listen").

export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, d[(i - 2) * cols + j - 2]! + 1);
      }
      d[i * cols + j] = v;
    }
  }
  return d[rows * cols - 1]!;
}

/**
 * The closest known key within edit distance 2 (1 for keys of four characters or
 * fewer, where 2 edits match nearly anything), ignoring case and `-`/`_`/camelCase
 * differences. Ties go to the earlier-declared key.
 */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const squash = (s: string): string => s.toLowerCase().replace(/[-_]/g, "");
  const limit = key.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = squash(key) === squash(candidate) ? 0 : editDistance(key, candidate);
    if (d <= limit && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}


// ---------------------------------------------------------------------------
// Combinators beyond the shapes

/** A report from a cross-field check: a path below the checked value, and a message. */
export type Report = (path: Path, message: string) => void;

/**
 * Checks across the fields of a value that passed `spec` (e.g. "min not above
 * max"). `check` reports with paths relative to the value; any report makes
 * the value INVALID. Runs only once the shape is sound, so it sees typed data.
 */
export function refine<T>(spec: Spec<T>, check: (value: T, report: Report) => void): Spec<T> {
  return {
    ...spec,
    check(value, path, issues) {
      const checked = spec.check(value, path, issues);
      if (checked === INVALID) return INVALID;
      let ok = true;
      check(checked, (sub, message) => {
        ok = false;
        issue(issues, [...path, ...sub], message);
      });
      return ok ? checked : INVALID;
    },
  };
}

/**
 * The same checks, without the sub-structure: listOptions() shows the value as
 * one option. For sections documented on a page of their own.
 */
export function opaque<T>(spec: Spec<T>, expected = spec.expected): Spec<T> {
  return { expected, check: (value, path, issues) => spec.check(value, path, issues) };
}

/** Freezes the checked value (and only its own top level). */
export function frozen<T>(spec: Spec<T>): Spec<T> {
  return transform(spec, (v) => (typeof v === "object" && v !== null ? Object.freeze(v) : v));
}

/**
 * Adapts a parser that never throws and returns `{ ok, value }` or
 * `{ ok: false, message, at? }` (`at` a dotted sub-path) to a Spec.
 */
export function parsed<T>(
  expected: string,
  parse: (value: unknown) => { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string; readonly at?: string },
): Spec<T> {
  return {
    expected,
    check(value, path, issues) {
      const r = parse(value);
      if (r.ok) return r.value;
      return issue(issues, r.at === undefined ? path : [...path, ...r.at.split(".")], r.message);
    },
  };
}

/**
 * The first issue of a validation as a `{ ok: false, message, at }` with a
 * dotted `at` (undefined for the value itself): for callers that show one
 * problem, such as a feature's own parse function in its tests.
 */
export function firstIssue<T>(result: ValidateResult<T>): { readonly ok: true; readonly value: T; readonly notes: readonly string[] } | { readonly ok: false; readonly message: string; readonly at?: string } {
  if (result.ok) return { ok: true, value: result.value, notes: [] };
  const first = result.issues[0]!;
  return first.path.length === 0 ? { ok: false, message: first.message } : { ok: false, message: first.message, at: first.path.join(".") };
}

/** Freezes a value and everything reachable through its own enumerable properties. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
