// One fair room as a fleet member holds it (src/muc/redis-room-buckets.ts):
// the last state the shared store committed (with the store's sequence
// number) plus this member's own attempts that are sent and not yet
// committed. Answers come from the speculative copy: the committed state with
// the pending attempts replayed on it, each with the verdict it was given, so
// a member never forgets its own attempts while they travel and never counts
// a committed one twice. Pure: no clock, no I/O.
import { applyAttempt, balanceAt, cloneRoom, newRoom, reconfigureRoom, type AttemptResult, type FairLimits, type RoomState } from "./fair-room.js";

/** An attempt as sent to the store: the verdict travels with it. */
export interface SentAttempt {
  readonly sender: string;
  readonly cost: number;
  readonly at: number;
  readonly admitted: boolean;
}

/** A room state in the store's wire form: tokens, time, [sender, meter, last] in arrival order. */
export interface WireRoom {
  readonly t: number;
  readonly a: number;
  readonly s: readonly (readonly [string, number, number])[];
}

export function toWire(s: RoomState): WireRoom {
  return { t: s.tokens, a: s.at, s: [...s.senders].map(([k, v]) => [k, v.m, v.last] as const) };
}

export function fromWire(w: WireRoom): RoomState {
  const senders = new Map<string, { m: number; last: number }>();
  for (const [k, m, last] of w.s) senders.set(k, { m, last });
  return { tokens: w.t, at: w.a, senders };
}

export function isWireRoom(v: unknown): v is WireRoom {
  if (typeof v !== "object" || v === null) return false;
  const w = v as Record<string, unknown>;
  if (typeof w.t !== "number" || !Number.isFinite(w.t) || typeof w.a !== "number" || !Number.isFinite(w.a) || !Array.isArray(w.s)) return false;
  return w.s.every((e: unknown) => Array.isArray(e) && e.length === 3 && typeof e[0] === "string" && typeof e[1] === "number" && typeof e[2] === "number");
}

export class SharedRoom {
  #committed: RoomState;
  #seq = 0;
  readonly #pending = new Map<number, SentAttempt>();
  #view: RoomState;

  constructor(limits: FairLimits, now: number) {
    this.#committed = newRoom(limits, now);
    this.#view = cloneRoom(this.#committed);
  }

  get seq(): number {
    return this.#seq;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The speculative state: what this member answers from. */
  get view(): RoomState {
    return this.#view;
  }

  /** The committed state's tokens (sent as the store's ceiling for a room it lost). */
  committedTokens(limits: FairLimits, now: number): number {
    return balanceAt(this.#committed, limits, now);
  }

  /** Judges an attempt on the speculative copy and records it as pending `op`. */
  attempt(limits: FairLimits, op: number, sender: string, cost: number, now: number): AttemptResult {
    const r = applyAttempt(this.#view, limits, sender, cost, now);
    this.#pending.set(op, { sender, cost, at: now, admitted: r.admitted });
    return r;
  }

  pendingAttempt(op: number): SentAttempt | undefined {
    return this.#pending.get(op);
  }

  /**
   * A state the store committed; `op` is set when it commits this member's
   * own attempt. A newer state is adopted as it is (it holds every attempt
   * committed up to it); an own attempt answered with an older state (the
   * store's counter went back: it lost its data) is kept locally.
   */
  apply(limits: FairLimits, state: RoomState, seq: number, op?: number): void {
    const own = op === undefined ? undefined : this.#pending.get(op);
    if (own !== undefined) this.#pending.delete(op!);
    if (seq > this.#seq) {
      this.#seq = seq;
      this.#committed = state;
    } else if (own !== undefined) {
      applyAttempt(this.#committed, limits, own.sender, own.cost, own.at, own.admitted);
    } else {
      return;
    }
    this.#replay(limits);
  }

  /** Own attempt `op` was not committed (the store failed): it stays a local one. */
  fail(limits: FairLimits, op: number): void {
    const own = this.#pending.get(op);
    if (own === undefined) return;
    this.#pending.delete(op);
    applyAttempt(this.#committed, limits, own.sender, own.cost, own.at, own.admitted);
    this.#replay(limits);
  }

  reconfigure(old: FairLimits, limits: FairLimits, now: number): void {
    reconfigureRoom(this.#committed, old, limits, now);
    reconfigureRoom(this.#view, old, limits, now);
  }

  #replay(limits: FairLimits): void {
    const v = cloneRoom(this.#committed);
    for (const p of this.#pending.values()) applyAttempt(v, limits, p.sender, p.cost, p.at, p.admitted);
    this.#view = v;
  }
}
