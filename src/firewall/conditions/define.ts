// The shape of one condition's registry entry (docs/firewall.md, "Adding a
// condition"): everything about a condition in one place, as mod_firewall
// keeps it in conditions.lib.lua. The parser reads `param`, `spaceSensitive`
// and `parse`; the compiler reads `needs`, `compile` and `cost`; the per-kind
// rule index reads `kinds` and `types`.
import type { ConditionNode, ConditionSpec } from "../ast.js";
import type { CompileEnv } from "../compile-env.js";
import type { FirewallProviders, RuleRef } from "../context.js";
import type { ParamContext, ParamFail, ParamKind } from "../param.js";
import type { RunState } from "../runtime.js";

/** A compiled condition's test: runs per stanza, must not allocate. */
export type Test = (s: RunState) => boolean;

/** What a condition's compile step sees besides its parsed parameter. */
export interface ConditionCompile {
  readonly env: CompileEnv;
  readonly node: ConditionNode;
  readonly rule: RuleRef;
  /** The condition's name as written in rules (`TO FULL JID`). */
  readonly display: string;
  /** The provider `needs` named; present (the condition was refused otherwise). */
  provider<K extends keyof FirewallProviders>(name: K): NonNullable<FirewallProviders[K]>;
  /** Report an error at the condition's line; the rule is not loaded. */
  error(message: string): undefined;
  warn(message: string): void;
  /** A %RATE, %LIST, %SEARCH or %PATTERN it names is not defined. */
  undefinedRef(what: "rate limit" | "list" | "search" | "pattern", name: string): undefined;
}

export interface ConditionDef<S extends { readonly name: string } = ConditionSpec> {
  /** The names (spaces written as '_') this entry defines. */
  readonly names: readonly S["name"][];
  readonly param: ParamKind;
  /**
   * Prosody compares the parameter as written, so a leading space (two
   * after the colon) makes the condition never hold: the parser says so.
   */
  readonly spaceSensitive?: boolean;
  /**
   * The parameter (undefined when none was written) → its parsed form, or a
   * failure with an offset into it. Without parse the spec is `{ name }`.
   */
  parse?(param: string | undefined, name: S["name"], ctx: ParamContext): S | ParamFail;
  /** Server knowledge the condition needs; refused at load without it. */
  readonly needs?: keyof FirewallProviders;
  /**
   * Ordering within a rule (runtime.ts COST_*): head-only first, then
   * lookups, then the payload tree, side effects (LIMIT) last.
   */
  readonly cost: number | ((spec: S) => number);
  /**
   * What the test's answer depends on besides the stanza's name and the
   * origin session (memo.ts, READS_*): a session's last pass is repeated
   * without a run only when every condition it could test says. Absent:
   * READS_ANYTHING (never repeated). LIMIT says READS_* of its key: its
   * bucket is the one thing a repeat checks anew.
   */
  reads?(spec: S, cx: ConditionCompile): number;
  /** Spec → the per-stanza test, or undefined after reporting through `cx`. */
  compile(spec: S, cx: ConditionCompile): Test | undefined;
  /**
   * The stanza kinds (message, presence, iq) for which the condition can
   * hold, when it only depends on the kind: the per-kind rule index skips the
   * rule for other kinds (and, when negated, for these).
   */
  kinds?(spec: S): readonly string[];
  /**
   * The stanza effective types for which the condition holds, when it only
   * depends on the effective type (as TYPE reads it): the composed handlers
   * pick their rules by type instead of testing it (compose.ts).
   */
  types?(spec: S): readonly string[];
}

/** Type a registry entry by its spec (identity at run time). */
export function defineCondition<S extends { readonly name: string }>(def: ConditionDef<S>): ConditionDef<S> {
  return def;
}
