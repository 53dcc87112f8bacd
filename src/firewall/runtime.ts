// The evaluation machinery shared by compiled conditions and actions: compiled
// rule and handler shapes, the per-run state that collects results, and the
// control flow of docs/firewall.md, "What a handler's answer means" (handlers return nil / true / false; PASS
// returns the chain's pass value; JUMP CHAIN fires a chain's handlers).
import type { ActionName, ChainName, SourceLoc } from "./ast.js";
import type {
  EmittedStanza,
  FirewallContext,
  FirewallLog,
  MarkChange,
  RuleHit,
  RuleRef,
} from "./context.js";
import type { Facts } from "./facts.js";
import type { StanzaView } from "../xml/stanza-view.js";
import type { Clock } from "../shaping/clock.js";
import type { Throttle } from "../shaping/token-bucket.js";
import type { LimitBucket, MultiThrottle } from "./limits.js";
import type { Polls } from "./memo.js";

/** Handler and chain return values: Lua nil, true (handled), false (default/accepted). */
export const R_NIL = 0;
export const R_TRUE = 1;
export const R_FALSE = 2;
export type ChainReturn = typeof R_NIL | typeof R_TRUE | typeof R_FALSE;

/** Action flow besides returning: go on with the next action, or return the pass value. */
export const A_NEXT = 3;
export const A_PASS = 4;
export type ActionFlow = ChainReturn | typeof A_NEXT | typeof A_PASS;

/** Jumps nested deeper than this are a loop in the rules: the stanza is dropped. */
export const MAX_JUMP_DEPTH = 32;
/** A stanza produced by REDIRECT/COPY this many times is not copied again. */
export const MAX_REENTRY = 4;

/** Cost classes for ordering a rule's conditions (cheap first, side effects last). */
export const COST_HEAD = 0;
export const COST_LOOKUP = 1;
export const COST_PAYLOAD = 2;
export const COST_SIDE_EFFECT = 3;

export interface CompiledCondition {
  readonly loc: SourceLoc;
  readonly text: string;
  readonly cost: number;
  /** What the answer depends on (memo.ts READS_*; READS_ANYTHING: unknown). */
  readonly reads: number;
  readonly test: (state: RunState) => boolean;
  /** Set when the test depends on the stanza's name alone (KIND): the kinds it holds for, before negation. */
  readonly kinds?: readonly string[] | undefined;
  /** Set when the test depends on the stanza's effective type alone (TYPE): the types it holds for, and whether it is negated. */
  readonly types?: { readonly values: ReadonlySet<string>; readonly negated: boolean } | undefined;
}

export interface CompiledAction {
  readonly name: ActionName;
  readonly loc: SourceLoc;
  readonly run: (state: RunState, rule: CompiledRule) => ActionFlow;
}

export interface CompiledRule {
  readonly ref: RuleRef;
  /** Sorted by cost; LIMIT (side effects) last, in written order. */
  readonly conditions: readonly CompiledCondition[];
  readonly actions: readonly CompiledAction[];
}

/** One file's rules for one chain: Prosody's per-file chain handler. */
export interface Handler {
  readonly file: string;
  readonly chain: ChainName;
  readonly rules: readonly CompiledRule[];
  /**
   * `rules` without those a KIND condition rules out for a stanza of that
   * name (same order). A skipped rule could not match: KIND is read before
   * any condition with a side effect (conditions run cheapest first).
   */
  readonly byKind?: { readonly message: readonly CompiledRule[]; readonly presence: readonly CompiledRule[]; readonly iq: readonly CompiledRule[] };
  /**
   * The handler composed into one function per stanza kind and effective
   * type (compose.ts); null where no rule can match. Without it the
   * handler is interpreted (interpretHandler).
   */
  readonly composed?: KindIndex<HandlerRun | null> | undefined;
}

/** One handler composed for stanzas of one kind and type: what the handler returns. */
export type HandlerRun = (s: RunState, pass: ChainReturn) => ChainReturn;

/**
 * Something per stanza effective type: `byType` for the types some indexed
 * TYPE condition names, `other` for every other type and for a stanza
 * without one (TYPE never holds for those unless negated). No `byType`: the
 * same for every type, and the type is not read.
 */
export interface TypeIndex<T> {
  readonly byType: ReadonlyMap<string, T> | undefined;
  readonly other: T;
}

/** Per stanza name: message, presence, iq, and any other name. */
export interface KindIndex<T> {
  readonly message: TypeIndex<T>;
  readonly presence: TypeIndex<T>;
  readonly iq: TypeIndex<T>;
  readonly other: TypeIndex<T>;
}

/** The entry of `index` for a stanza named `name`. */
function kindEntry<T>(index: KindIndex<T>, name: string): TypeIndex<T> {
  return name === "message" ? index.message : name === "presence" ? index.presence : name === "iq" ? index.iq : index.other;
}

/** The entry of `ti` for effective type `t`. */
export function typeEntry<T>(ti: TypeIndex<T>, t: string | undefined): T {
  const by = ti.byType;
  if (by === undefined || t === undefined) return ti.other;
  const hit = by.get(t);
  return hit === undefined ? ti.other : hit;
}

/** The rules of `handler` that can match a stanza named `name`. */
function rulesFor(handler: Handler, name: string): readonly CompiledRule[] {
  const by = handler.byKind;
  if (by === undefined) return handler.rules;
  return name === "message" ? by.message : name === "presence" ? by.presence : name === "iq" ? by.iq : handler.rules;
}

export type Outcome =
  | { readonly verdict: "drop" }
  | { readonly verdict: "bounce"; readonly condition: string; readonly type: string; readonly text: string | undefined; readonly stanza: string }
  | { readonly verdict: "disconnect"; readonly condition: string; readonly text: string | undefined };

/**
 * Mutable state of one run(); results are copied out at the end. A rule set
 * keeps one and resets it for each run (reset()), so a run allocates nothing
 * unless it has something to report; the result lists handed out in a result
 * are never reused (reset() drops them, a later run starts new ones).
 */
export class RunState implements Polls {
  // Set by reset(), which the constructor calls.
  facts!: Facts;
  ctx!: FirewallContext;
  /** Where `now` is read from, on first use in a run: most runs never ask (no LIMIT, mark or age among the rules they reach). */
  #clock!: Clock;
  /** NaN until read: a number field, so that setting it allocates nothing (a field that may hold undefined boxes each time it gets). */
  #now = NaN;
  chains!: ReadonlyMap<string, readonly Handler[]>;
  /** Each chain's handlers composed into one function per kind and type (compose.ts), when they are. */
  composed: ReadonlyMap<string, KindIndex<HandlerRun | null>> | undefined;
  outcome: Outcome | undefined;
  jumpDepth = 0;
  // Result lists, allocated on first use: most runs fill none of them.
  #emitted: EmittedStanza[] | undefined;
  #logs: FirewallLog[] | undefined;
  #marks: MarkChange[] | undefined;
  #matched: RuleRef[] | undefined;
  #hits: RuleHit[] | undefined;
  #tags: string[] | undefined;
  // The LIMIT buckets the run polled, in order, and whether each gave a token (memo.ts learns them): kept between runs, `count` reset.
  count = 0;
  readonly tables: (MultiThrottle | null)[] = [];
  readonly buckets: (LimitBucket | Throttle)[] = [];
  readonly took: boolean[] = [];
  /** False once the run reached something a memo cannot repeat (a LIMIT kept fleet-wide). */
  repeatable = true;

  /** A LIMIT polled `bucket` (of `table`; null: a LIMIT without `on`) and took a token (`took`) or found it dry. */
  polled(table: MultiThrottle | null, bucket: LimitBucket | Throttle, took: boolean): void {
    const n = this.count;
    this.tables[n] = table;
    this.buckets[n] = bucket;
    this.took[n] = took;
    this.count = n + 1;
  }

  get emitted(): EmittedStanza[] {
    return (this.#emitted ??= []);
  }
  get logs(): FirewallLog[] {
    return (this.#logs ??= []);
  }
  get marks(): MarkChange[] {
    return (this.#marks ??= []);
  }
  get matched(): RuleRef[] {
    return (this.#matched ??= []);
  }
  get hits(): RuleHit[] {
    return (this.#hits ??= []);
  }
  get tags(): string[] {
    return (this.#tags ??= []);
  }

  /** The run's time (the rule set's clock, ms), read once per run and only if a rule asks. */
  get now(): number {
    let t = this.#now;
    if (t !== t) t = this.#now = this.#clock.now();
    return t;
  }

  /** True when the run produced anything to report (a matched rule, a log, a copy…). */
  get produced(): boolean {
    return this.#emitted !== undefined || this.#logs !== undefined || this.#marks !== undefined ||
      this.#matched !== undefined || this.#hits !== undefined || this.#tags !== undefined;
  }

  constructor(...run: Parameters<RunState["reset"]>) {
    this.reset(...run);
  }

  /** Start a new run with this object (the previous run's results stay with their result). */
  reset(
    facts: Facts,
    ctx: FirewallContext,
    clock: Clock,
    chains: ReadonlyMap<string, readonly Handler[]>,
    composed?: ReadonlyMap<string, KindIndex<HandlerRun | null>> | undefined,
  ): void {
    this.facts = facts;
    this.ctx = ctx;
    this.#clock = clock;
    this.#now = NaN;
    this.chains = chains;
    this.composed = composed;
    this.outcome = undefined;
    this.jumpDepth = 0;
    this.#emitted = undefined;
    this.#logs = undefined;
    this.#marks = undefined;
    this.#matched = undefined;
    this.#hits = undefined;
    this.#tags = undefined;
    this.count = 0;
    this.repeatable = true;
  }
}

/**
 * Run one handler for the run's stanza: its composed function for the
 * stanza's kind and effective type, or nothing when no rule can match.
 */
export function runHandler(handler: Handler, state: RunState, passReturn: ChainReturn): ChainReturn {
  const composed = handler.composed;
  if (composed === undefined) return interpretHandler(handler, state, passReturn);
  const run = entryFor(composed, state.facts.stanza);
  return run === null ? R_NIL : run(state, passReturn);
}

/** The entry of `index` for `stanza`: by its name, then by its effective type where the index reads it (only then is the type read). */
export function entryFor<T>(index: KindIndex<T>, stanza: StanzaView): T {
  const ti = kindEntry(index, stanza.name);
  return ti.byType === undefined ? ti.other : typeEntry(ti, stanza.effectiveType);
}

/** Interpret one handler: rules in order; the first action that returns ends it. */
// Indexed loops throughout the per-stanza path: the compiled lists are frozen
// arrays, and V8 (Node 20) does not optimise for…of over a frozen array (an
// iterator and a result object per element, ~50 × slower); docs/performance.md.
export function interpretHandler(handler: Handler, state: RunState, passReturn: ChainReturn): ChainReturn {
  const rules = rulesFor(handler, state.facts.name);
  for (let r = 0; r < rules.length; r++) {
    const rule = rules[r]!;
    const conditions = rule.conditions;
    let ok = true;
    for (let k = 0; k < conditions.length; k++) {
      if (!conditions[k]!.test(state)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    state.matched.push(rule.ref);
    const actions = rule.actions;
    for (let k = 0; k < actions.length; k++) {
      const a = actions[k]!;
      state.hits.push({ rule: rule.ref, action: a.name });
      const flow = a.run(state, rule);
      if (flow === A_NEXT) continue;
      return flow === A_PASS ? passReturn : flow;
    }
  }
  return R_NIL;
}

/**
 * Fire `firewall/chains/<name>`: every handler of that chain (one per file, in
 * load order) with pass value false; the first non-nil return wins. A chain
 * nobody defines returns nil, as in Prosody.
 */
export function fireChain(name: string, state: RunState): ChainReturn {
  const handlers = state.chains.get(name);
  if (!handlers) return R_NIL;
  if (state.jumpDepth >= MAX_JUMP_DEPTH) {
    const first = handlers[0]!.rules[0]?.ref;
    if (first) state.logs.push({ level: "error", message: `JUMP CHAIN=${name}: jumps nested deeper than ${MAX_JUMP_DEPTH} (a loop in the rules); stanza dropped`, rule: first });
    state.outcome = { verdict: "drop" };
    return R_TRUE;
  }
  state.jumpDepth++;
  try {
    const composed = state.composed?.get(name);
    if (composed !== undefined) {
      const run = entryFor(composed, state.facts.stanza);
      return run === null ? R_NIL : run(state, R_FALSE);
    }
    for (let k = 0; k < handlers.length; k++) {
      const r = runHandler(handlers[k]!, state, R_FALSE);
      if (r !== R_NIL) return r;
    }
    return R_NIL;
  } finally {
    state.jumpDepth--;
  }
}
