// Each handler (one file's rules for one chain), then each chain (its
// handlers in load order), composed into one function per stanza kind and
// effective type. Running a chain for a stanza is then a pick (kind, then
// type when some rule indexes on it) and one call, not a loop over handler,
// rule, condition and action lists. The composed function does exactly what
// runtime.ts's interpretHandler does, step for step: rules in order,
// conditions left to right with short-circuit, `matched` and `hits` filled
// as they are reached, the first action that does not go on ends the
// handler, the first handler that answers (not nil) ends the chain.
//
// The functions are generated (`new Function`), one per handler × kind ×
// type, because that is what lets V8 inline the conditions into them: each
// condition and action gets a call site of its own, which sees one target.
// Closures joined by a few shared function literals would share those call
// sites (and their feedback) across every rule and stay real calls. The
// generated source is built only from fixed fragments, numbers and names
// made here (never rule text): the conditions, actions, hit records and
// rule references are passed in as values. Where the runtime refuses code
// from strings (--disallow-code-generation-from-strings), nothing is
// composed and the interpreter runs. docs/performance.md, "The firewall:
// one call per chain".
//
// Two kinds of condition are decided by the pick instead of being tested:
// KIND (its entry declares `kinds`) and a TYPE (its entry declares `types`)
// that only head conditions precede in the rule's sorted list. Both read the
// stanza's name or effective type and nothing else, have no side effect and
// run before any condition that has one, so leaving out a rule they exclude
// is the same as running it, and testing them in a rule they admit is
// known to hold.
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
import { READS_ANYTHING, READS_NOTHING, type MemoEntry } from "./memo.js";

/** What compose needs to know about one compiled rule. */
export interface RuleShape {
  readonly rule: CompiledRule;
  /** Kinds (message, presence, iq) its KIND conditions admit. */
  readonly kinds: ReadonlySet<string>;
}

type KindName = "message" | "presence" | "iq";

/** One rule as one pick runs it: the conditions left to test, then the rule's actions. */
interface RulePlan {
  readonly rule: CompiledRule;
  readonly tests: readonly CompiledCondition["test"][];
  /** Per test, whether what it reads is known (memo.ts): a test that reads anything else marks its run unrepeatable when reached. */
  readonly known: readonly boolean[];
  /** What the tests whose reads are known read. */
  readonly reads: number;
}

/** Rules per generated function, and calls per generated sequence: each function stays small enough for V8 to optimise. */
const RULES_PER_FUNCTION = 32;
const CALLS_PER_FUNCTION = 64;

let generation: boolean | undefined;

/** Whether this runtime makes functions from source text (not under --disallow-code-generation-from-strings). */
export function canCompose(): boolean {
  if (generation === undefined) {
    try {
      generation = new Function("return 1")() === 1;
    } catch {
      generation = false;
    }
  }
  return generation;
}

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

/** The plan of `rule` with the conditions `decided` (known to hold for the pick) left out. */
function planOf(rule: CompiledRule, decided: (c: CompiledCondition, k: number) => boolean): RulePlan {
  const tests: CompiledCondition["test"][] = [];
  const known: boolean[] = [];
  let reads = READS_NOTHING;
  rule.conditions.forEach((c, k) => {
    if (decided(c, k)) return;
    tests.push(c.test);
    known.push(c.reads !== READS_ANYTHING);
    if (c.reads !== READS_ANYTHING) reads |= c.reads;
  });
  return { rule, tests, known, reads };
}

/**
 * Compose one handler for every stanza kind and type; null where no rule can
 * match. Undefined when this runtime cannot generate code: the handler is
 * then interpreted.
 */
export function composeHandler(rules: readonly RuleShape[]): KindIndex<HandlerRun | null> | undefined {
  if (!canCompose()) return undefined;
  // The hit records are the same for every stanza: one frozen object per action, made here.
  const hits = new Map<CompiledRule, readonly object[]>();
  for (const { rule } of rules) hits.set(rule, rule.actions.map((a) => Object.freeze({ rule: rule.ref, action: a.name })));
  const run = (plans: readonly RulePlan[]): HandlerRun | null => (plans.length === 0 ? null : (rulesRun(plans, hits, R_NIL) as HandlerRun));
  const forKind = (kind: KindName): TypeIndex<HandlerRun | null> => {
    const admitted = rules.filter((r) => r.kinds.has(kind)).map((r) => r.rule);
    const named = new Set<string>();
    for (const rule of admitted) {
      rule.conditions.forEach((c, k) => {
        if (typeIndexed(rule.conditions, k)) for (const v of c.types!.values) named.add(v);
      });
    }
    const build = (t: string | undefined): HandlerRun | null =>
      run(admitted.filter((rule) => admitsType(rule, t)).map((rule) => planOf(rule, (c, k) => c.kinds !== undefined || typeIndexed(rule.conditions, k))));
    // A type no rule names is admitted exactly as no type is (each indexed TYPE then holds only when negated).
    const other = build(undefined);
    if (named.size === 0) return { byType: undefined, other };
    const byType = new Map<string, HandlerRun | null>();
    for (const t of named) byType.set(t, build(t));
    return { byType, other };
  };
  return {
    message: forKind("message"),
    presence: forKind("presence"),
    iq: forKind("iq"),
    other: { byType: undefined, other: run(rules.map(({ rule }) => planOf(rule, () => false))) },
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
    const build = (t: string | undefined): HandlerRun | null => {
      const runs = tis.map((ti) => typeEntry(ti, t)).filter((r): r is HandlerRun => r !== null);
      return runs.length === 0 ? null : runs.length === 1 ? runs[0]! : (calls(runs, R_NIL, R_NIL) as HandlerRun);
    };
    const other = build(undefined);
    if (named.size === 0) return { byType: undefined, other };
    const byType = new Map<string, HandlerRun | null>();
    for (const t of named) byType.set(t, build(t));
    return { byType, other };
  };
  return { message: forKind("message"), presence: forKind("presence"), iq: forKind("iq"), other: forKind("other") };
}

/** A rule run or a run of rules: `end` when every rule went on, else what the handler returns. */
type Body = (s: RunState, pass: ChainReturn) => number;

/**
 * Rules in order as one function (several, joined by `calls`, past
 * RULES_PER_FUNCTION): for each rule its tests left to right, then
 * `matched`, then each action's hit and run. An action that does not go on
 * (A_NEXT) ends the rules with what it says, its pass value for A_PASS.
 * After the last rule: `end`.
 */
function rulesRun(plans: readonly RulePlan[], hits: ReadonlyMap<CompiledRule, readonly object[]>, end: number): Body {
  if (plans.length > RULES_PER_FUNCTION) return calls(inGroups(plans, RULES_PER_FUNCTION, (group) => rulesRun(group, hits, A_NEXT)), A_NEXT, end);
  const values: unknown[] = [];
  const name = (v: unknown): string => {
    values.push(v);
    return `v${values.length - 1}`;
  };
  let src = "";
  for (const { rule, tests, known } of plans) {
    // A test whose reads are unknown, once reached, keeps a memo from repeating the run.
    const call = (t: CompiledCondition["test"], k: number): string => (known[k] ? `${name(t)}(s)` : `(s.repeatable = false, ${name(t)}(s))`);
    src += tests.length === 0 ? "{" : `if (${tests.map(call).join(" && ")}) {`;
    src += `s.matched.push(${name(rule.ref)});`;
    const r = name(rule);
    const hs = hits.get(rule)!;
    rule.actions.forEach((a, k) => {
      src += `s.hits.push(${name(hs[k])}); f = ${name(a.run)}(s, ${r}); if (f !== ${A_NEXT}) return f === ${A_PASS} ? p : f;`;
    });
    src += "}";
  }
  return withReads(generate(values, `function firewall_rules(s, p) { let f = 0; ${src} return ${end}; }`), plans.reduce((r, p) => r | p.reads, READS_NOTHING));
}

/**
 * `bodies` in order as one function: each called in turn until one returns
 * something other than `go` (returned); after the last, `end`. Past
 * CALLS_PER_FUNCTION, a function of such functions.
 */
function calls(bodies: readonly Body[], go: number, end: number): Body {
  if (bodies.length > CALLS_PER_FUNCTION) return calls(inGroups(bodies, CALLS_PER_FUNCTION, (group) => calls(group, go, go)), go, end);
  const src = bodies.map((_, k) => `r = v${k}(s, p); if (r !== ${go}) return r;`).join(" ");
  return withReads(generate(bodies, `function firewall_calls(s, p) { let r = 0; ${src} return ${end}; }`), bodies.reduce((r, b) => r | readsOf(b), READS_NOTHING));
}

/**
 * `body` marked with what the conditions it can test read, those whose reads
 * are known (MemoEntry's `reads`: what a memo of its runs keys); a run that
 * reaches any other marks itself unrepeatable.
 */
function withReads(body: Body, reads: number): Body {
  (body as { reads?: number }).reads = reads;
  return body;
}

function readsOf(body: Body): number {
  return (body as MemoEntry).reads!;
}

/** `items` cut into groups of `size` (the last may be shorter), each made into one Body by `make`, in order. */
function inGroups<T>(items: readonly T[], size: number, make: (group: readonly T[]) => Body): Body[] {
  const out: Body[] = [];
  for (let i = 0; i < items.length; i += size) out.push(make(items.slice(i, i + size)));
  return out;
}

/** The function `fn` (source made here: fixed fragments, numbers, names v0…) over `values`, bound to v0, v1, … */
function generate(values: readonly unknown[], fn: string): Body {
  const bind = values.length === 0 ? "" : `const ${values.map((_, k) => `v${k} = c[${k}]`).join(", ")};`;
  return new Function("c", `"use strict"; ${bind} return ${fn};`)(values) as Body;
}
