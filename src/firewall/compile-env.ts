// What condition and action compilers see while compiling one rule: the
// definitions in scope for its file, the providers, the clock, and a way to
// get the rate limiter for (file, chain, rate) that survives reloads.
import type { Clock } from "../shaping/clock.js";
import type { ChainName, DefinitionNode, DefinitionSpec } from "./ast.js";
import type { FirewallProviders, LocalTime } from "./context.js";
import type { MultiThrottle } from "./limits.js";
import type { Throttle } from "../shaping/token-bucket.js";
import type { MembershipList } from "./lists.js";
import type { LuaPattern } from "./lua-pattern.js";
import type { Diagnostics } from "./rule-error.js";

export type RateDef = Extract<DefinitionSpec, { type: "RATE" }>;

/** A %PATTERN, compiled for string.gmatch (SCAN, COUNT). */
export type PatternDef = LuaPattern;

/** Definitions visible to one file: earlier files' plus its own (later wins). */
export interface DefinitionScope {
  readonly zones: ReadonlyMap<string, ReadonlySet<string>>;
  readonly rates: ReadonlyMap<string, { readonly def: RateDef; readonly node: DefinitionNode }>;
  readonly lists: ReadonlyMap<string, MembershipList>;
  readonly patterns: ReadonlyMap<string, PatternDef>;
  readonly searches: ReadonlyMap<string, DefinitionNode & { readonly spec: Extract<DefinitionSpec, { type: "SEARCH" }> }>;
}

export interface CompileEnv {
  readonly file: string;
  readonly chain: ChainName;
  readonly diag: Diagnostics;
  readonly defs: DefinitionScope;
  readonly providers: FirewallProviders;
  /** `$local` zone members (config); undefined = not configured. */
  readonly localHosts: ReadonlySet<string> | undefined;
  readonly clock: Clock;
  readonly localTime: () => LocalTime;
  readonly newId: () => string;
  /** The shared limiter of this file and chain for `rate` (carried over on reload when unchanged). */
  single(rate: string, def: RateDef): Throttle;
  multi(rate: string, def: RateDef): MultiThrottle;
  /** A number of its own for a condition that keeps something in a session's RunMemory (its index there). */
  memorySlot(): number;
}
