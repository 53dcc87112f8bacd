// The action registry (docs/firewall.md, "Actions", "Adding a condition"):
// every action is one entry in one of the group modules next to this file;
// this module gathers them by name and compiles a parsed action into a step
// that says how control goes on: next action, return nil/true/false from the
// handler, or return the chain's pass value. Actions that need the server's
// internals (EVENT, UNSUBSCRIBE SENDER) are refused at load.
import type { ActionNode } from "../ast.js";
import type { CompileEnv } from "../compile-env.js";
import type { CompiledAction } from "../runtime.js";
import { CONTROL } from "./control.js";
import type { ActionCompile, ActionDef } from "./define.js";
import { REWRITE } from "./rewrite.js";
import { ROUTING } from "./routing.js";
import { STATE } from "./state.js";
import { VERDICTS } from "./verdicts.js";

const GROUPS = [...VERDICTS, ...ROUTING, ...REWRITE, ...CONTROL, ...STATE] as const;

type SpecOf<D> = D extends ActionDef<infer S> ? S : never;

/** A parsed action: the union of every entry's spec (ast.ts re-exports it). */
export type ActionSpec = SpecOf<(typeof GROUPS)[number]>;

/** Registry entries by name (spaces written as '_'). */
export const ACTIONS: ReadonlyMap<string, ActionDef<ActionSpec>> = new Map(
  GROUPS.flatMap((def) => def.names.map((name) => [name, def as unknown as ActionDef<ActionSpec>] as const)),
);

/** Compile one action; reports and returns undefined when it is refused. */
export function compileAction(node: ActionNode, env: CompileEnv): CompiledAction | undefined {
  const spec = node.spec;
  const cx: ActionCompile = {
    env,
    node,
    refuse(why) {
      env.diag.error(node.loc, `${spec.name.replace(/_/g, " ")} refused: ${why}`);
      return undefined;
    },
    error(message) {
      env.diag.error(node.loc, message);
      return undefined;
    },
  };
  const run = ACTIONS.get(spec.name)!.compile(spec, cx);
  return run === undefined ? undefined : { name: spec.name, loc: node.loc, run };
}

/** The chain an action jumps to (JUMP CHAIN), or undefined. */
export function actionJumpTarget(node: ActionNode): string | undefined {
  return ACTIONS.get(node.spec.name)?.jumpsTo?.(node.spec);
}
