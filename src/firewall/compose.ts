// Each handler (one file's rules for one chain), then each chain (its
// handlers in load order), composed into one function per stanza kind and
// effective type, from the compiled conditions and actions: closures built
// once at load time (no eval, no new Function). Running a chain for a stanza
// is then a pick (kind, then type when some rule indexes on it) and one
// call, not a loop over handler, rule, condition and action lists. The
// composed function does exactly what runtime.ts's interpretHandler does,
// step for step: rules in order, conditions left to right with
// short-circuit, `matched` and `hits` filled as they are reached, the first
// action that does not go on ends the handler, the first handler that
// answers (not nil) ends the chain.
//
// Two kinds of condition are decided by the pick instead of being tested:
// KIND (its entry declares `kinds`) and a TYPE (its entry declares `types`)
// that only head conditions precede in the rule's sorted list. Both read the
// stanza's name or effective type and nothing else, have no side effect and
// run before any condition that has one, so leaving out a rule they exclude
// is the same as running it, and testing them in a rule they admit is
// known to hold. docs/performance.md, "The firewall: one call per chain".
import {
  A_NEXT,
  A_PASS,
  COST_HEAD,
  R_NIL,
  typeEntry,
  type ChainReturn,
  type CompiledCondition,
  type CompiledRule,
  type HandlerRun,
  type KindIndex,
  type RunState,
  type TypeIndex,
} from "./runtime.js";

/** A composed rule or run of rules: A_NEXT when the handler goes on, else what it returns. */
type Body = (s: RunState, pass: ChainReturn) => number;
type Test = (s: RunState) => boolean;

/** What compose needs to know about one compiled rule. */
export interface RuleShape {
  readonly rule: CompiledRule;
  /** Kinds (message, presence, iq) its KIND conditions admit. */
  readonly kinds: ReadonlySet<string>;
}

type KindName = "message" | "presence" | "iq";

/** Whether condition `k` of a sorted list may be decided by the type index (only head conditions before it). */
function typeIndexed(conditions: readonly CompiledCondition[], k: number): boolean {
  if (conditions[k]!.types === undefined) return false;
  for (let j = 0; j <= k; j++) if (conditions[j]!.cost !== COST_HEAD) return false;
  return true;
}

/** Whether a rule admits effective type `t` (undefined: none) by its indexed TYPE conditions. */
function admitsType(rule: CompiledRule, t: string | undefined): boolean {
  const cs = rule.conditions;
  for (let k = 0; k < cs.length; k++) {
    if (!typeIndexed(cs, k)) continue;
    const ty = cs[k]!.types!;
    if ((t !== undefined && ty.values.has(t)) === ty.negated) return false;
  }
  return true;
}

/** Compose one handler for every stanza kind and type; null where no rule can match. */
export function composeHandler(rules: readonly RuleShape[]): KindIndex<HandlerRun | null> {
  // Actions do not depend on the pick: one composed sequence per rule.
  const acts = new Map<CompiledRule, Body>();
  for (const { rule } of rules) acts.set(rule, composeActions(rule));
  const forKind = (kind: KindName): TypeIndex<HandlerRun | null> => {
    const admitted = rules.filter((r) => r.kinds.has(kind)).map((r) => r.rule);
    const named = new Set<string>();
    for (const rule of admitted) {
      rule.conditions.forEach((c, k) => {
        if (typeIndexed(rule.conditions, k)) for (const v of c.types!.values) named.add(v);
      });
    }
    const build = (t: string | undefined): HandlerRun | null => {
      const list = admitted.filter((rule) => admitsType(rule, t));
      const bodies = list.map((rule) => composeRule(rule, acts.get(rule)!, (c, k) => c.kinds !== undefined || typeIndexed(rule.conditions, k)));
      return handlerRun(bodies);
    };
    // A type no rule names is admitted exactly as no type is (each indexed TYPE then holds only when negated).
    const other = build(undefined);
    if (named.size === 0) return { byType: undefined, other };
    const byType = new Map<string, HandlerRun | null>();
    for (const t of named) byType.set(t, build(t));
    return { byType, other };
  };
  const all = rules.map(({ rule }) => composeRule(rule, acts.get(rule)!, () => false));
  const anyName = handlerRun(all);
  return {
    message: forKind("message"),
    presence: forKind("presence"),
    iq: forKind("iq"),
    other: { byType: undefined, other: anyName },
  };
}

/**
 * A chain's handlers (one per file, in load order) as one function per kind
 * and type: each handler in turn, the first that answers (not nil) wins, as
 * CompiledRuleSet.run and fireChain do with the pass value they give. Null
 * where no handler has a rule that can match.
 */
export function composeChain(handlers: readonly KindIndex<HandlerRun | null>[]): KindIndex<HandlerRun | null> {
  const forKind = (kind: KindName | "other"): TypeIndex<HandlerRun | null> => {
    const tis = handlers.map((h) => h[kind]);
    const named = new Set<string>();
    for (const ti of tis) if (ti.byType !== undefined) for (const t of ti.byType.keys()) named.add(t);
    const build = (t: string | undefined): HandlerRun | null => firstAnswer(tis.map((ti) => typeEntry(ti, t)).filter((r): r is HandlerRun => r !== null));
    const other = build(undefined);
    if (named.size === 0) return { byType: undefined, other };
    const byType = new Map<string, HandlerRun | null>();
    for (const t of named) byType.set(t, build(t));
    return { byType, other };
  };
  return { message: forKind("message"), presence: forKind("presence"), iq: forKind("iq"), other: forKind("other") };
}

/** Handlers in order: the first that does not return nil wins. */
function firstAnswer(runs: readonly HandlerRun[]): HandlerRun | null {
  if (runs.length === 0) return null;
  return balanced(runs, 0, runs.length, (a, b) => (s, p) => {
    const r = a(s, p);
    return r !== R_NIL ? r : b(s, p);
  });
}

/**
 * `items` lo…hi-1 joined pairwise by `join` (which keeps their order) as a
 * balanced tree: a composed list of n steps is log n calls deep, so a rule
 * file of thousands of rules cannot overflow the stack.
 */
function balanced<T>(items: readonly T[], lo: number, hi: number, join: (a: T, b: T) => T): T {
  if (hi - lo === 1) return items[lo]!;
  const mid = lo + ((hi - lo) >> 1);
  return join(balanced(items, lo, mid, join), balanced(items, mid, hi, join));
}

/** A handler over rule bodies: null when there are none. */
function handlerRun(bodies: readonly Body[]): HandlerRun | null {
  if (bodies.length === 0) return null;
  const body = sequence(bodies);
  return (s, pass) => {
    const r = body(s, pass);
    return r === A_NEXT ? R_NIL : (r as ChainReturn);
  };
}

/** Rule bodies in order: the first that does not go on (A_NEXT) ends them. */
function sequence(bodies: readonly Body[]): Body {
  return balanced(bodies, 0, bodies.length, (a, b) => (s, p) => {
    const r = a(s, p);
    return r !== A_NEXT ? r : b(s, p);
  });
}

/** One rule: its conditions less those `decided` (known to hold here), then `matched`, then its actions. */
function composeRule(rule: CompiledRule, actions: Body, decided: (c: CompiledCondition, k: number) => boolean): Body {
  const tests: Test[] = [];
  rule.conditions.forEach((c, k) => {
    if (!decided(c, k)) tests.push(c.test);
  });
  const ref = rule.ref;
  if (tests.length === 0) {
    return (s, p) => {
      s.matched.push(ref);
      return actions(s, p);
    };
  }
  const test = allOf(tests);
  return (s, p) => {
    if (!test(s)) return A_NEXT;
    s.matched.push(ref);
    return actions(s, p);
  };
}

/** Tests left to right, stopping at the first that fails. */
function allOf(tests: readonly Test[]): Test {
  return balanced(tests, 0, tests.length, (a, b) => (s) => a(s) && b(s));
}

/**
 * A rule's actions in order: each records its hit, runs, and either goes on
 * (A_NEXT), returns the pass value (A_PASS) or returns what it says. After
 * the last one the handler goes on with the next rule.
 */
function composeActions(rule: CompiledRule): Body {
  let next: Body | undefined;
  for (let k = rule.actions.length - 1; k >= 0; k--) {
    const a = rule.actions[k]!;
    // The hit is the same for every stanza: one frozen object, made here.
    const hit = Object.freeze({ rule: rule.ref, action: a.name });
    const run = a.run;
    const then = next;
    next =
      then === undefined
        ? (s, p) => {
            s.hits.push(hit);
            const f = run(s, rule);
            return f === A_PASS ? p : f;
          }
        : (s, p) => {
            s.hits.push(hit);
            const f = run(s, rule);
            return f === A_NEXT ? then(s, p) : f === A_PASS ? p : f;
          };
  }
  return next ?? (() => A_NEXT);
}
