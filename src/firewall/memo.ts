// A session's last run, when a repeat of it needs no run (docs/performance.md,
// "A session's last pass"). A session's stanzas in a flood are alike: the
// same kind and type, the same `to` and `from`, and the rules they reach
// read nothing else. Each condition says what it reads (`reads` in its
// registry entry); one that reads anything else marks its run unrepeatable
// when the run reaches it. A run that reached only conditions that say takes
// the same path again for a stanza with the same values (each answer along
// it is the same), as long as each LIMIT on the way gives what it gave: a
// token where it gave one, none where its bucket was dry. A LIMIT is the
// only condition whose answer changes between two such stanzas. When the
// run ended in a plain pass, or in a lone DROP (repeatableResult), the memo
// checks those buckets, takes the same tokens in the same order, and gives
// the same result without a run.
//
// Exact by construction, never a guess:
// - the key is the chain's function itself (the rule set, the chain, the
//   stanza's kind and the type the pick read), the origin object the rules
//   see, and each value the function's conditions can read (all of them,
//   whichever the run reached), compared whole;
// - knowledge (online sessions) is keyed by its provider's version, which
//   moves with every change; a provider without one is never memoised;
// - every bucket is checked before any is taken from (a check is what a poll
//   does short of taking: the same refresh at the same time), so a bucket
//   that changed sends the stanza through a full run that finds the same
//   state; a bucket evicted from its table, or a LIMIT kept fleet-wide,
//   does the same.

import type { LimitBucket, MultiThrottle } from "./limits.js";
import type { FirewallResult, OriginSession } from "./context.js";
import type { HandlerRun } from "./runtime.js";
import type { Throttle } from "../shaping/token-bucket.js";
import type { StanzaView } from "../xml/stanza-view.js";
import type { Clock } from "../shaping/clock.js";

/**
 * What a condition's answer depends on, besides what every run of one chain
 * function shares (the rule set, the stanza's name, the type the pick read,
 * the origin session): bits of a mask, or READS_ANYTHING.
 */
export const READS_NOTHING = 0;
/** The stanza's `to` (as written; the facts derive every form of it, with the origin). */
export const READS_TO = 1;
/** The stanza's `from` as the server sees it (the view's `from`: stamped on a client's stanzas). */
export const READS_FROM = 2;
/** The `type` attribute (a TYPE the pick does not decide). */
export const READS_TYPE = 4;
/** Which sessions are online (the sessions provider's version). */
export const READS_SESSIONS = 8;
/** Anything else (the payload, the time, marks, lists, other attributes): never memoised. */
export const READS_ANYTHING = -1;

/** What two reads together read. */
export function readsBoth(a: number, b: number): number {
  return a < 0 || b < 0 ? READS_ANYTHING : a | b;
}

/** A knowledge provider that says when its answers may have changed. */
export interface Versioned {
  /**
   * Changes whenever an answer may have changed, by a write or by time alone
   * (an expiry instant passed). A provider that cannot tell may give a
   * negative version: it is never taken as unchanged.
   */
  readonly version: number;
}

/** A chain function with what its conditions that say read (compose.ts sets it; absent: interpreted, not memoised). */
export type MemoEntry = HandlerRun & { readonly reads?: number };

/** The LIMIT buckets a run polled, in order, and what each gave (RunState keeps them for learn()). */
export interface Polls {
  readonly count: number;
  /** Each bucket's table, or null for a LIMIT without `on`. */
  readonly tables: readonly (MultiThrottle | null)[];
  readonly buckets: readonly (LimitBucket | Throttle)[];
  /** Whether each poll took a token (else the bucket was dry). */
  readonly took: readonly boolean[];
}

/**
 * Whether a repeat may give `result` again: a plain pass, or a drop by a lone
 * DROP (nothing else done, said or changed; a BOUNCE's reply carries the
 * stanza's id, so it is not one).
 */
export function repeatableResult(result: FirewallResult): boolean {
  if (result.defaulted || result.logs.length !== 0 || result.emitted.length !== 0 || result.marks.length !== 0 || result.tags.length !== 0) return false;
  if (result.verdict === "pass") return result.rewrite === undefined && result.matched.length === 0;
  return result.verdict === "drop" && result.hits.length === 1 && result.hits[0]!.action === "DROP";
}

export class RunMemo {
  #entry: MemoEntry | null = null;
  #origin: OriginSession | undefined;
  #reads = 0;
  #to: string | undefined;
  #from: string | undefined;
  #type: string | undefined;
  #sessions = -1;
  #result: FirewallResult | null = null;
  #count = 0;
  readonly #tables: (MultiThrottle | null)[] = [];
  readonly #buckets: (LimitBucket | Throttle)[] = [];
  readonly #took: boolean[] = [];

  /**
   * The learned result when `stanza` (run by `entry` for `origin`) repeats the
   * learned run, having taken its tokens: exactly what a run would have
   * answered and done. Null: run it (nothing was taken).
   */
  repeats(entry: MemoEntry, origin: OriginSession | undefined, stanza: StanzaView, sessions: Versioned | undefined, clock: Clock): FirewallResult | null {
    if (entry !== this.#entry || origin !== this.#origin) return null;
    const reads = this.#reads;
    if ((reads & READS_TO) !== 0 && stanza.to !== this.#to) return null;
    if ((reads & READS_FROM) !== 0 && stanza.from !== this.#from) return null;
    if ((reads & READS_TYPE) !== 0 && stanza.type !== this.#type) return null;
    if ((reads & READS_SESSIONS) !== 0 && (this.#sessions < 0 || sessions === undefined || sessions.version !== this.#sessions)) return null;
    const n = this.#count;
    if (n === 0) return this.#result;
    const now = clock.now();
    const tables = this.#tables;
    const buckets = this.#buckets;
    const took = this.#took;
    // Each poll must give what it gave: a token where one was taken, none where the bucket was dry.
    for (let k = 0; k < n; k++) {
      const table = tables[k]!;
      if (table !== null && !table.holds(buckets[k] as LimitBucket)) return null;
      if (buckets[k]!.ready(now) !== took[k]) return null;
    }
    for (let k = 0; k < n; k++) {
      if (!took[k]) continue;
      const table = tables[k]!;
      if (table === null) buckets[k]!.poll(now);
      else table.take(buckets[k] as LimitBucket, now);
    }
    return this.#result;
  }

  /**
   * Learn a run of `entry` that gave `result` (repeatableResult) and reached
   * only conditions that say what they read (the caller checks both). A
   * composed entry only, each bucket polled at most once (else forget).
   */
  learn(entry: MemoEntry, origin: OriginSession | undefined, stanza: StanzaView, sessions: Versioned | undefined, polls: Polls, result: FirewallResult): void {
    const reads = entry.reads;
    if (reads === undefined || !distinct(polls)) return this.forget();
    this.#entry = entry;
    this.#origin = origin;
    this.#reads = reads;
    this.#to = (reads & READS_TO) !== 0 ? stanza.to : undefined;
    this.#from = (reads & READS_FROM) !== 0 ? stanza.from : undefined;
    this.#type = (reads & READS_TYPE) !== 0 ? stanza.type : undefined;
    this.#sessions = (reads & READS_SESSIONS) !== 0 && sessions !== undefined ? sessions.version : -1;
    this.#result = result;
    const n = (this.#count = polls.count);
    for (let k = 0; k < n; k++) {
      this.#tables[k] = polls.tables[k]!;
      this.#buckets[k] = polls.buckets[k]!;
      this.#took[k] = polls.took[k]!;
    }
  }

  /** Nothing learned (the last run did something a repeat cannot, or read more than a memo keys). */
  forget(): void {
    if (this.#entry === null) return;
    this.#entry = null;
    this.#origin = undefined;
    this.#to = this.#from = this.#type = undefined;
    this.#result = null;
    // Keep no bucket or table alive for a run that will not repeat.
    this.#tables.length = 0;
    this.#buckets.length = 0;
    this.#took.length = 0;
    this.#count = 0;
  }
}

/** Whether no bucket appears twice (its second poll depends on its first, which one check does not see). */
function distinct(polls: Polls): boolean {
  const b = polls.buckets;
  for (let i = 1; i < polls.count; i++) for (let j = 0; j < i; j++) if (b[i] === b[j]) return false;
  return true;
}
