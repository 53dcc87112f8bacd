// The condition registry (docs/firewall.md, "Conditions", "Adding a
// condition"): every condition is one entry in one of the group modules next
// to this file; this module gathers them by name and compiles a parsed
// condition into its test. A condition needing server knowledge the proxy
// has no provider for is refused here. Each compiled condition carries its
// entry's cost, so a rule tests head-only conditions first, then lookups,
// then conditions that need the payload tree, and LIMIT last: a rule only
// takes a token when everything else in it matched (docs/firewall.md,
// "Prosody bugs we fix", 3).
import type { ConditionNode } from "../ast.js";
import type { CompileEnv } from "../compile-env.js";
import type { FirewallProviders, RuleRef } from "../context.js";
import { READS_ANYTHING } from "../memo.js";
import type { CompiledCondition } from "../runtime.js";
import { ADDRESSING } from "./addressing.js";
import { CONTENT } from "./content.js";
import type { ConditionCompile, ConditionDef } from "./define.js";
import { KNOWLEDGE } from "./knowledge.js";
import { ORIGIN } from "./origin.js";
import { SERVER } from "./server.js";
import { STATE } from "./state.js";
import { CLOCK } from "./time.js";

const GROUPS = [...ADDRESSING, ...ORIGIN, ...CONTENT, ...STATE, ...KNOWLEDGE, ...SERVER, ...CLOCK] as const;

type SpecOf<D> = D extends ConditionDef<infer S> ? S : never;

/** A parsed condition: the union of every entry's spec (ast.ts re-exports it). */
export type ConditionSpec = SpecOf<(typeof GROUPS)[number]>;

/** Registry entries by name (spaces written as '_'). */
export const CONDITIONS: ReadonlyMap<string, ConditionDef> = new Map(
  GROUPS.flatMap((def) => def.names.map((name) => [name, def as unknown as ConditionDef] as const)),
);

const REFUSALS: Readonly<Record<keyof FirewallProviders, string>> = {
  roster:
    "needs the recipient's roster; the proxy only knows rosters it learns from the server's roster results and pushes, and no roster provider is configured (knowledge.rosters is off)",
  sessions:
    "needs the set of online sessions (full JIDs), which the proxy learns from the client connections it carries; the session directory is off (knowledge.sessions)",
  directedPresence: "needs each local session's directed-presence targets; the session directory that learns them is off (knowledge.sessions)",
  groups: "needs the server's shared roster groups (mod_groups); no group source is configured",
  roles: "needs user roles, which live in the server's configuration; no role source is configured",
  admins: "needs the server's admin list; no admin list is configured",
  permissions: "needs Prosody's permission system (module:may), which a proxy cannot evaluate; no permission provider is configured",
  userMarks: "needs per-account marks, which Prosody keeps in its storage; no user-mark store is configured",
  geoip: "needs a GeoIP database; none is configured",
  remoteLists: "needs a remote list provider",
};

/** Compile one condition; reports and returns undefined when it is refused. */
export function compileCondition(node: ConditionNode, env: CompileEnv, rule: RuleRef): CompiledCondition | undefined {
  const spec = node.spec;
  const def = CONDITIONS.get(spec.name)!;
  const display = spec.name.replace(/_/g, " ");
  if (def.needs !== undefined && !env.providers[def.needs]) {
    env.diag.error(node.loc, `${display} refused: it ${REFUSALS[def.needs]}`);
    return undefined;
  }
  const cx: ConditionCompile = {
    env,
    node,
    rule,
    display,
    provider: (name) => env.providers[name]!,
    error(message) {
      env.diag.error(node.loc, message);
      return undefined;
    },
    warn: (message) => env.diag.warn(node.loc, message),
    undefinedRef(what, name) {
      env.diag.error(node.loc, `Unknown ${what}: ${name} (define it with %${what === "rate limit" ? "RATE" : what.toUpperCase()} ${name}: …)`);
      return undefined;
    },
  };
  const test = def.compile(spec, cx);
  if (test === undefined) return undefined;
  const cost = typeof def.cost === "number" ? def.cost : def.cost(spec);
  const kinds = def.kinds?.(spec);
  const types = def.types?.(spec);
  return {
    loc: node.loc,
    text: node.text,
    cost,
    reads: def.reads?.(spec, cx) ?? READS_ANYTHING,
    test: node.negated ? (s) => !test(s) : test,
    kinds,
    types: types === undefined ? undefined : { values: new Set(types), negated: node.negated },
  };
}

/**
 * The stanza kinds a condition leaves its rule able to match (the per-kind
 * rule index): all three unless its entry says which kinds it depends on.
 */
export function conditionAllowsKind(node: ConditionNode, kind: string): boolean {
  const kinds = CONDITIONS.get(node.spec.name)?.kinds?.(node.spec);
  return kinds === undefined || kinds.includes(kind) !== node.negated;
}
