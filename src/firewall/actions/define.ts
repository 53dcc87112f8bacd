// The shape of one action's registry entry (docs/firewall.md, "Adding a
// condition"; actions work the same way): name, parameter, how it parses,
// whether it ends the rule, and how it compiles to a step of the rule, in one
// place, as mod_firewall keeps it in actions.lib.lua.
import type { ActionNode } from "../ast.js";
import type { CompileEnv } from "../compile-env.js";
import type { ParamContext, ParamFail, ParamKind } from "../param.js";
import type { ActionFlow, CompiledRule, RunState } from "../runtime.js";

/** A compiled action: runs per matching stanza and says how control goes on. */
export type Run = (state: RunState, rule: CompiledRule) => ActionFlow;

/** What an action's compile step sees besides its parsed parameter. */
export interface ActionCompile {
  readonly env: CompileEnv;
  readonly node: ActionNode;
  /** Report `<NAME> refused: why` at the action's line; the rule is not loaded. */
  refuse(why: string): undefined;
  /** Report an error at the action's line. */
  error(message: string): undefined;
}

export interface ActionDef<S extends { readonly name: string } = { readonly name: string }> {
  /** The names (spaces written as '_') this entry defines. */
  readonly names: readonly S["name"][];
  readonly param: ParamKind;
  /** It ends the rule: actions written after it are unreachable. */
  readonly terminal?: boolean;
  /**
   * The parameter (undefined when none was written) → its parsed form, or a
   * failure with an offset into it. Without parse the spec is `{ name }`.
   */
  parse?(param: string | undefined, name: S["name"], ctx: ParamContext): S | ParamFail;
  /** Spec → the step, or undefined after reporting through `cx`. */
  compile(spec: S, cx: ActionCompile): Run | undefined;
  /** The chain it jumps to: once every file is compiled, a jump to a chain no file has rules in is reported. */
  jumpsTo?(spec: S): string;
}

/** Type a registry entry by its spec (identity at run time). */
export function defineAction<S extends { readonly name: string }>(def: ActionDef<S>): ActionDef<S> {
  return def;
}
