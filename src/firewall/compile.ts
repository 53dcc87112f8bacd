// AST → immutable CompiledRuleSet of closures (rule text is never evaluated as code).
// compileRuleFiles / compileRuleSources → { ruleset?, errors, warnings }, then
// ruleset.run(chain, ctx) → FirewallResult (types in context.ts). One handler
// per file and chain, run in file order; definitions scoped as in Prosody.
// LIMIT buckets and memory lists carry over from `options.previous` by stable
// identity. A compile with any error returns no rule set. docs/firewall.md.
import { randomBytes } from "node:crypto";
import { realClock, type Clock } from "../shaping/clock.js";
import { actionJumpTarget, compileAction } from "./actions/index.js";
import { BUILTIN_CHAINS, isChainName, type ChainName, type DefinitionNode, type RuleFileAst, type RuleNode } from "./ast.js";
import type { CompileEnv, DefinitionScope, PatternDef, RateDef } from "./compile-env.js";
import { compileCondition, conditionAllowsKind } from "./conditions/index.js";
import type { FirewallContext, FirewallProviders, FirewallResult, LocalTime, RuleRef, RunChain } from "./context.js";
import { errorReplyFor, mayAnswerWithError } from "./error-reply.js";
import { Facts } from "./facts.js";
import { MultiThrottle, SharedThrottle, type SharedLimits } from "./limits.js";
import { repeatableResult, RunMemo, type Versioned } from "./memo.js";
import { Throttle } from "../shaping/token-bucket.js";
import { fileListItems, MemoryList, RemoteMembershipList, withFilters, type MembershipList } from "./lists.js";
import { compileLuaPattern } from "./lua-pattern.js";
import { parseRuleFile } from "./parser.js";
import { Diagnostics, RuleError, sortDiagnostics } from "./rule-error.js";
import { prepJid } from "../xmpp/jid.js";
import { composeChain, composeHandler } from "./compose.js";
import {
  entryFor,
  R_FALSE,
  R_NIL,
  R_TRUE,
  RunState,
  runHandler,
  type CompiledAction,
  type CompiledCondition,
  type CompiledRule,
  type ChainReturn,
  type Handler,
  type HandlerRun,
  type KindIndex,
} from "./runtime.js";
import type { StanzaView } from "../xml/stanza-view.js";

export interface CompileOptions {
  /** Monotonic ms clock for LIMIT buckets and mark ages (default performance.now). */
  readonly clock?: Clock | undefined;
  /** Local wall-clock time for TIME/DAY (default: the process's local time). */
  readonly localTime?: (() => LocalTime) | undefined;
  /**
   * The server's local domains (config `hosts`): the `$local` zone, and which
   * client stanzas the proxy also runs through `deliver_remote` (see
   * CompiledRuleSet.localHosts). Undefined or empty: not known.
   */
  readonly localHosts?: readonly string[] | undefined;
  readonly providers?: FirewallProviders | undefined;
  /** The live rule set being replaced: LIMIT buckets and memory lists carry over. */
  readonly previous?: CompiledRuleSet | undefined;
  /** Default `entries` for `LIMIT … on` tables (firewall_multirate_cache_limit). */
  readonly multirateCacheLimit?: number | undefined;
  /** Id generator for REPORT TO messages. */
  readonly newId?: (() => string) | undefined;
  /**
   * Content of a `%LIST name: file:PATH` list, or undefined when the file is
   * missing. load.ts pre-reads the files and answers from memory.
   */
  readonly readListFile?: ((path: string, ruleFile: string) => string | undefined) | undefined;
  /** Where LIMIT buckets live fleet-wide (state.redis); undefined: in this process. */
  readonly sharedLimits?: SharedLimits | undefined;
  /**
   * Run the handlers with the interpreter (runtime.ts interpretHandler)
   * instead of composing them (compose.ts). Same results, slower: for the
   * tests that compare the two.
   */
  readonly interpret?: boolean | undefined;
}

export interface CompileResult {
  readonly ruleset?: CompiledRuleSet;
  readonly errors: readonly RuleError[];
  readonly warnings: readonly RuleError[];
}


function defaultLocalTime(): LocalTime {
  const d = new Date();
  return { hour: d.getHours(), minute: d.getMinutes(), weekday: d.getDay() };
}

/** Prosody's util.id.short(): 6 random bytes, URL-safe base64. */
function shortId(): string {
  return randomBytes(6).toString("base64url");
}

const EMPTY: readonly never[] = Object.freeze([]);

const PASS_RESULT: FirewallResult = Object.freeze({
  verdict: "pass",
  defaulted: false,
  emitted: EMPTY,
  logs: EMPTY,
  marks: EMPTY,
  matched: EMPTY,
  hits: EMPTY,
  tags: EMPTY,
});

/**
 * A built-in chain's handlers (undefined: no rule hooks it), their composed
 * index (undefined: interpreted), and what runs a stanza of the chain when
 * there is no index: the interpreter over the handlers.
 */
interface ChainSlot {
  readonly handlers: readonly Handler[] | undefined;
  readonly index: KindIndex<HandlerRun | null> | undefined;
  readonly interpreted: HandlerRun | null;
}

/** State that outlives one rule set: keyed by stable identities. */
interface CarriedState {
  readonly limiters: Map<string, Throttle | MultiThrottle>;
  readonly memoryLists: Map<string, MemoryList>;
}

export class CompiledRuleSet {
  readonly files: readonly string[];
  /** Handlers per chain name (built-in and user/…), in file order. */
  readonly chains: ReadonlyMap<string, readonly Handler[]>;
  readonly ruleCount: number;
  /**
   * The server's local domains this rule set was compiled with (prepped), or
   * undefined when they are not known. A bound client's stanza to any other
   * domain leaves for a remote server: the proxy runs `deliver_remote` on it.
   */
  readonly localHosts: ReadonlySet<string> | undefined;
  /**
   * Whether a bound client's stanza may also run `deliver_remote`: the local
   * domains are known and some rule hooks that chain.
   */
  readonly runsRemote: boolean;
  readonly #clock: Clock;
  /** The online sessions the rules read, when the provider has a version (memo.ts keys it). */
  readonly #sessions: Versioned | undefined;
  readonly #state: CarriedState;
  /** The run state (with its Facts) the next run reuses; undefined while a run holds it. */
  #spare: RunState | undefined;
  /** Per chain, its handlers composed into one function per kind and type (null: no rule can match). */
  readonly #composed: ReadonlyMap<string, KindIndex<HandlerRun | null>>;
  /** The built-in chains' entries of `chains` and #composed, found per stanza without a Map lookup (#slot). */
  readonly #preroute: ChainSlot;
  readonly #deliver: ChainSlot;
  readonly #deliverRemote: ChainSlot;

  constructor(
    files: readonly string[],
    chains: ReadonlyMap<string, readonly Handler[]>,
    clock: Clock,
    state: CarriedState,
    localHosts?: ReadonlySet<string> | undefined,
    sessions?: Versioned | undefined,
  ) {
    this.#sessions = sessions;
    this.files = Object.freeze([...files]);
    this.chains = chains;
    this.localHosts = localHosts;
    let n = 0;
    for (const hs of chains.values()) for (const h of hs) n += h.rules.length;
    this.ruleCount = n;
    this.#clock = clock;
    this.#state = state;
    const composed = new Map<string, KindIndex<HandlerRun | null>>();
    for (const [name, hs] of chains) {
      const each = hs.map((h) => h.composed);
      if (each.every((c) => c !== undefined)) composed.set(name, composeChain(each));
    }
    this.#composed = composed;
    const slot = (chain: RunChain): ChainSlot => {
      const handlers = chains.get(chain);
      return { handlers, index: composed.get(chain), interpreted: handlers === undefined ? null : (state) => interpretChain(handlers, state) };
    };
    this.#preroute = slot("preroute");
    this.#deliver = slot("deliver");
    this.#deliverRemote = slot("deliver_remote");
    this.runsRemote = localHosts !== undefined && this.#deliverRemote.handlers !== undefined;
    Object.freeze(this);
  }

  /** @internal carried over into the next compile. */
  get carried(): CarriedState {
    return this.#state;
  }

  /** Whether any rule hooks `chain` (so a session can skip building a context). */
  hasChain(chain: RunChain): boolean {
    return this.#slot(chain).handlers !== undefined;
  }

  #slot(chain: RunChain): ChainSlot {
    return chain === "preroute" ? this.#preroute : chain === "deliver" ? this.#deliver : this.#deliverRemote;
  }

  /** Every rule, for pre-registering metrics labels. */
  rules(): RuleRef[] {
    const out: RuleRef[] = [];
    for (const hs of this.chains.values()) for (const h of hs) for (const r of h.rules) out.push(r.ref);
    return out;
  }

  /**
   * What runs `stanza` in `chain` (for runEntry): the chain's composed
   * function for the stanza's kind and effective type, or the interpreter
   * where the chain is not composed. Null when no rule of the chain can
   * match it: the chain has no rules, or the KIND and TYPE conditions the
   * rules start with leave none for the stanza's name and effective type (a
   * run of it passes with nothing to report). Nonzas (kind "other") never
   * reach a chain, as in Prosody.
   */
  entry(chain: RunChain, stanza: StanzaView): HandlerRun | null {
    if (stanza.kind === "other") return null;
    const slot = this.#slot(chain);
    const index = slot.index;
    return index === undefined ? slot.interpreted : entryFor(index, stanza);
  }

  /**
   * Run a built-in chain over one stanza. Handlers of the chain run in file
   * order: PASS and RETURN go on to the next file's handler; DROP, BOUNCE,
   * REDIRECT and DISCONNECT stop everything; DEFAULT stops and applies
   * Prosody's default.
   */
  run(chain: RunChain, ctx: FirewallContext): FirewallResult {
    const entry = this.entry(chain, ctx.stanza);
    return entry === null ? PASS_RESULT : this.runEntry(chain, entry, ctx);
  }

  /**
   * run() with its entry() already found for `ctx.stanza` (the firewall stage
   * asks entry() first, to pass over stanzas no rule can see).
   */
  runEntry(chain: RunChain, entry: HandlerRun, ctx: FirewallContext): FirewallResult {
    // A stanza like the session's last, which passed or was dropped: the same tokens taken, no run (memo.ts).
    const memory = ctx.memory;
    const memo = memory?.memo;
    if (memo !== undefined) {
      const repeated = memo.repeats(entry, ctx.origin, ctx.stanza, this.#sessions, this.#clock);
      if (repeated !== null) return repeated;
    }
    // One Facts and RunState per rule set, reset per run (no allocation on the
    // common path); a run started while another is in progress gets its own.
    let facts: Facts;
    let state: RunState;
    const spare = this.#spare;
    if (spare !== undefined) {
      this.#spare = undefined;
      facts = spare.facts;
      facts.reset(ctx.stanza, chain, ctx.origin, ctx.host, ctx.fromServer === true, ctx.memory);
      state = spare;
      state.reset(facts, ctx, this.#clock, this.chains, this.#composed);
    } else {
      facts = new Facts(ctx.stanza, chain, ctx.origin, ctx.host, ctx.fromServer === true, ctx.memory);
      state = new RunState(facts, ctx, this.#clock, this.chains, this.#composed);
    }
    try {
      // Handlers in file order, the first answer (not nil) wins; PASS answers nil.
      const result = this.#result(chain, entry(state, R_NIL), facts, state);
      if (memory !== undefined) {
        if (state.repeatable && repeatableResult(result)) (memory.memo ??= new RunMemo()).learn(entry, ctx.origin, ctx.stanza, this.#sessions, state, result);
        else memo?.forget();
      }
      return result;
    } finally {
      this.#spare = state;
    }
  }

  #result(chain: RunChain, r: ChainReturn, facts: Facts, state: RunState): FirewallResult {
    let outcome = state.outcome;
    let defaulted = false;
    if (r === R_TRUE) outcome = state.outcome ?? { verdict: "drop" };
    else if (r === R_FALSE) {
      defaulted = true;
      outcome = defaultOutcome(chain, facts);
    }
    if (outcome === undefined && !defaulted && !facts.modified && !state.produced) {
      return PASS_RESULT; // the common case: no rule matched, nothing to report
    }
    const base = {
      defaulted,
      emitted: state.emitted,
      logs: state.logs,
      marks: state.marks,
      matched: state.matched,
      hits: state.hits,
      tags: state.tags,
    };
    if (outcome === undefined) {
      const rewrite = facts.rewrite();
      return rewrite === undefined ? { verdict: "pass", ...base } : { verdict: "pass", rewrite, ...base };
    }
    switch (outcome.verdict) {
      case "drop":
        return { verdict: "drop", ...base };
      case "bounce": {
        const { condition, type, text, stanza } = outcome;
        return { verdict: "bounce", bounce: text === undefined ? { condition, type, stanza } : { condition, type, text, stanza }, ...base };
      }
      case "disconnect": {
        const { condition, text } = outcome;
        return { verdict: "disconnect", disconnect: text === undefined ? { condition } : { condition, text }, ...base };
      }
    }
  }
}

/** The handlers of a chain run by the interpreter: the first answer (not nil) wins. */
function interpretChain(handlers: readonly Handler[], state: RunState): ChainReturn {
  for (let k = 0; k < handlers.length; k++) {
    const r = runHandler(handlers[k]!, state, R_NIL);
    if (r !== R_NIL) return r;
  }
  return R_NIL;
}

/** What Prosody does when a handler returns false (DEFAULT): docs/firewall.md, "What a handler's answer means". */
function defaultOutcome(chain: RunChain, f: Facts): RunState["outcome"] {
  if (chain === "preroute") return undefined;
  if (!mayAnswerWithError(f.name, f.type)) return { verdict: "drop" };
  const [condition, text] =
    chain === "deliver" ? ["service-unavailable", undefined] : ["not-allowed", "Communication with remote domains is not enabled"];
  const stanza = errorReplyFor({ name: f.name, to: f.toAttr, from: f.from, id: f.stanza.id, type: f.type }, condition, "cancel", text);
  return { verdict: "bounce", condition, type: "cancel", text, stanza };
}

// ---------------------------------------------------------------------------

type MutableScope = { -readonly [K in keyof DefinitionScope]: Map<string, DefinitionScope[K] extends ReadonlyMap<string, infer V> ? V : never> };

function copyScope(s: DefinitionScope): MutableScope {
  return {
    zones: new Map(s.zones),
    rates: new Map(s.rates),
    lists: new Map(s.lists),
    patterns: new Map(s.patterns),
    searches: new Map(s.searches),
  };
}

type StanzaKindName = "message" | "presence" | "iq";
const STANZA_KINDS: readonly StanzaKindName[] = ["message", "presence", "iq"];

/** The stanza kinds a rule's conditions (KIND, negated or not) leave it able to match. */
function stanzaKindsOf(rule: RuleNode): ReadonlySet<StanzaKindName> {
  const out = new Set<StanzaKindName>();
  for (const kind of STANZA_KINDS) {
    if (rule.conditions.every((c) => conditionAllowsKind(c, kind))) out.add(kind);
  }
  return out;
}

function limiterKey(file: string, chain: string, rate: string, def: RateDef, multi: boolean, entries: number): string {
  const params = multi ? `${def.rate}|${def.burst}|${entries}|${def.allowOverflow}` : `${def.rate}|${def.burst}`;
  return `${file}\u0000${chain}\u0000${rate}\u0000${multi ? "multi" : "single"}\u0000${params}`;
}

/**
 * A LIMIT's fleet-wide bucket name: like limiterKey, with the rule file's base
 * name (instances may keep their rules in different directories).
 */
function sharedLimitName(file: string, chain: string, rate: string, def: RateDef): string {
  const base = file.slice(Math.max(file.lastIndexOf("/"), file.lastIndexOf("\\")) + 1);
  return `fw:${base}:${chain}:${rate}:${def.rate}/${def.burst}`;
}

/** Compile parsed files into one rule set; all-or-nothing. */
export function compileRuleFiles(files: readonly RuleFileAst[], options: CompileOptions = {}, diag: Diagnostics = new Diagnostics()): CompileResult {
  const clock = options.clock ?? realClock;
  const providers = options.providers ?? {};
  const previous = options.previous?.carried;
  const state: CarriedState = { limiters: new Map(), memoryLists: new Map() };
  const multirateLimit = options.multirateCacheLimit ?? 1000;
  const localHosts = options.localHosts && options.localHosts.length > 0 ? new Set(options.localHosts.map((h) => prepJid(h) ?? h)) : undefined;
  const chains = new Map<string, Handler[]>();
  const jumps: { chain: string; action: CompiledAction & { target: string } }[] = [];
  let scope: DefinitionScope = { zones: new Map(), rates: new Map(), lists: new Map(), patterns: new Map(), searches: new Map() };
  // Numbers of the conditions that keep something in a session's RunMemory, unique in the rule set.
  let memorySlots = 0;

  for (const ast of files) {
    const fileScope = copyScope(scope);
    const seen = new Map<string, DefinitionNode>();
    for (const d of ast.definitions) {
      const key = `${d.spec.type} ${d.name}`;
      const before = seen.get(key);
      if (before) diag.warn(d.loc, `%${d.spec.type} ${d.name} redefines the one on line ${before.loc.line}; the last definition wins`);
      seen.set(key, d);
      instantiateDefinition(d, ast.file, fileScope, { options, providers, previous, state, diag });
    }
    for (const m of ast.metadata) {
      if (m.key !== "trace") diag.warn(m.loc, `unknown metadata key '${m.key}' is ignored`);
    }
    const handlers = new Map<ChainName, CompiledRule[]>();
    const kindsOf = new Map<CompiledRule, ReadonlySet<StanzaKindName>>();
    for (const rule of ast.rules) {
      const ref: RuleRef = { id: `${ast.file}:${rule.loc.line}`, file: ast.file, line: rule.loc.line, chain: rule.chain };
      const env: CompileEnv = {
        file: ast.file,
        chain: rule.chain,
        diag,
        defs: fileScope,
        providers,
        localHosts,
        clock,
        localTime: options.localTime ?? defaultLocalTime,
        newId: options.newId ?? shortId,
        single(rate, def) {
          const key = limiterKey(ast.file, rule.chain, rate, def, false, 0);
          let t = state.limiters.get(key) ?? previous?.limiters.get(key);
          const shared = options.sharedLimits;
          if (shared !== undefined) {
            if (!(t instanceof SharedThrottle)) t = new SharedThrottle(def.rate, def.burst, clock.now(), sharedLimitName(ast.file, rule.chain, rate, def), shared);
          } else if (!(t instanceof Throttle) || t instanceof SharedThrottle) t = new Throttle(def.rate, def.burst, clock.now());
          state.limiters.set(key, t);
          return t;
        },
        memorySlot() {
          return memorySlots++;
        },
        multi(rate, def) {
          const entries = def.entries ?? multirateLimit;
          const key = limiterKey(ast.file, rule.chain, rate, def, true, entries);
          let t = state.limiters.get(key) ?? previous?.limiters.get(key);
          const shared = options.sharedLimits;
          if (!(t instanceof MultiThrottle) || t.shared !== (shared !== undefined)) {
            t = new MultiThrottle(def.rate, def.burst, entries, def.allowOverflow, shared === undefined ? undefined : { name: sharedLimitName(ast.file, rule.chain, rate, def), limits: shared });
          }
          state.limiters.set(key, t);
          return t;
        },
      };
      let ok = true;
      const conditions: CompiledCondition[] = [];
      for (const c of rule.conditions) {
        const compiled = compileCondition(c, env, ref);
        if (compiled) conditions.push(compiled);
        else ok = false;
      }
      const actions: CompiledAction[] = [];
      for (const a of rule.actions) {
        const compiled = compileAction(a, env);
        if (!compiled) {
          ok = false;
          continue;
        }
        actions.push(compiled);
        const target = actionJumpTarget(a);
        if (target !== undefined) jumps.push({ chain: rule.chain, action: { ...compiled, target } });
      }
      if (!ok) continue;
      // Stable sort: cheap conditions first, LIMIT (side effects) last.
      conditions.sort((x, y) => x.cost - y.cost);
      let list = handlers.get(rule.chain);
      if (!list) handlers.set(rule.chain, (list = []));
      list.push({ ref, conditions: Object.freeze(conditions), actions: Object.freeze(actions) });
      kindsOf.set(list[list.length - 1]!, stanzaKindsOf(rule));
    }
    for (const [chain, rules] of handlers) {
      let hs = chains.get(chain);
      if (!hs) chains.set(chain, (hs = []));
      const only = (k: StanzaKindName) => Object.freeze(rules.filter((r) => kindsOf.get(r)!.has(k)));
      const byKind = Object.freeze({ message: only("message"), presence: only("presence"), iq: only("iq") });
      const composed = options.interpret === true ? undefined : composeHandler(rules.map((rule) => ({ rule, kinds: kindsOf.get(rule)! })));
      hs.push(Object.freeze({ file: ast.file, chain, rules: Object.freeze(rules), byKind, composed }));
    }
    scope = fileScope;
  }

  for (const { action } of jumps) {
    // A name no chain can have was reported by the parser.
    if (!chains.has(action.target) && isChainName(action.target)) {
      const builtin = (BUILTIN_CHAINS as readonly string[]).includes(action.target);
      diag.warn(action.loc, `JUMP CHAIN=${action.target}: no loaded file has rules in ${builtin ? "this chain" : "this user chain"}, so the jump does nothing`);
    }
  }

  if (localHosts === undefined) {
    const remote = chains.get("deliver_remote")?.[0]?.rules[0];
    if (remote !== undefined) {
      diag.warn(
        { file: remote.ref.file, line: remote.ref.line, column: 1 },
        "rules in deliver_remote only run when the proxy knows the server's local domains (`hosts:` in the configuration; " +
          "check-rules and trace: --host): without them no stanza counts as leaving for a remote domain",
      );
    }
  }

  const fileNames = files.map((f) => f.file);
  const errors = sortDiagnostics(diag.errors, fileNames);
  const warnings = sortDiagnostics(diag.warnings, fileNames);
  if (errors.length > 0) return { errors, warnings };
  for (const hs of chains.values()) Object.freeze(hs);
  const sessions = providers.sessions;
  const versioned = sessions?.version !== undefined ? (sessions as Versioned) : undefined;
  return { ruleset: new CompiledRuleSet(fileNames, chains, clock, state, localHosts, versioned), errors, warnings };
}

interface InstantiateDeps {
  readonly options: CompileOptions;
  readonly providers: FirewallProviders;
  readonly previous: CarriedState | undefined;
  readonly state: CarriedState;
  readonly diag: Diagnostics;
}

function instantiateDefinition(d: DefinitionNode, file: string, scope: MutableScope, deps: InstantiateDeps): void {
  const spec = d.spec;
  switch (spec.type) {
    case "ZONE":
      scope.zones.set(d.name, new Set(spec.members));
      return;
    case "RATE":
      scope.rates.set(d.name, { def: spec, node: d });
      return;
    case "PATTERN": {
      const p: PatternDef = compileLuaPattern(spec.source, { mode: "gmatch" });
      scope.patterns.set(d.name, p);
      return;
    }
    case "SEARCH":
      scope.searches.set(d.name, d as DefinitionNode & { spec: typeof spec });
      return;
    case "LIST": {
      const l = spec.list;
      let list: MembershipList;
      switch (l.backend) {
        case "memory": {
          const key = `${file}\u0000${d.name}\u0000${d.text}`;
          const carried = deps.previous?.memoryLists.get(key);
          const mem = carried ?? new MemoryList(l.limit);
          deps.state.memoryLists.set(key, mem);
          list = mem;
          break;
        }
        case "file": {
          const text = deps.options.readListFile?.(l.path, file);
          if (text === undefined && !l.missingOk) {
            deps.diag.error(d.loc, `list file '${l.path}' cannot be read (add '(missing: ignore)' to start with an empty list)`);
            return;
          }
          if (text?.includes("\r\n")) {
            deps.diag.warn(
              d.loc,
              `list file '${l.path}' has CR LF line ends: Prosody keeps the CR at the end of every entry, so no entry equals an address or a word, ` +
                "and xmpp-guard reads the file the same way (convert it to LF line ends)",
            );
          }
          list = new MemoryList(undefined, text === undefined ? [] : fileListItems(text));
          break;
        }
        case "http":
        case "pubsubitemid": {
          const factory = deps.providers.remoteLists;
          if (!factory) {
            deps.diag.error(d.loc, `%LIST ${d.name} refused: ${l.backend === "http" ? "HTTP" : "pubsub"} lists are fetched by a remote list provider, and none is configured`);
            return;
          }
          try {
            list = new RemoteMembershipList(factory.open(l.url, l.options, { name: d.name }));
          } catch (e) {
            deps.diag.error(d.loc, e instanceof Error ? e.message : String(e));
            return;
          }
          break;
        }
      }
      scope.lists.set(d.name, withFilters(list, spec.filters));
      return;
    }
  }
}

/** Parse and compile rule texts in one step (tests, check-rules, trace). */
export function compileRuleSources(
  sources: readonly { readonly file: string; readonly text: string }[],
  options: CompileOptions = {},
): CompileResult {
  const diag = new Diagnostics();
  const asts = sources.map((s) => parseRuleFile(s.file, s.text, diag).ast);
  return compileRuleFiles(asts, options, diag);
}
