// The fair room limiter (docs/muc-limits.md, "Fair room limits"): one room's
// token bucket of `rate` events per second and `burst` tokens, shared among
// the senders that were active in the room during the last `windowMs`.
//
// With A active senders, each holds a meter: a token bucket of depth
// b = burst / (A + 1) refilled at rate / (A + 1). The "+ 1" is one share kept
// open for the next sender to arrive. Every attempt is taken from the
// sender's meter, admitted or not, so retrying only digs the sender's own
// hole. The room's bucket always holds at least the sum of the positive
// meters (capped at b): that is the invariant, and it is why an attempt the
// sender's meter covers is always admitted. An attempt the meter does not
// cover may only use tokens that nobody else has reserved; a sender already
// more than one share in debt must also leave one share (the headroom) for a
// newcomer.
//
// When b is smaller than the base cost no share could ever cover a message,
// so reservations are off: meters stay at or below 0 (a debt that the share's
// rate repays), and senders go by how much they owe: one that owes more than k
// of the n active senders must leave k / n of the rest of the burst in the
// bucket, so whoever owes least goes first.
//
// Pure: no clock, no I/O. The state is plain data (RoomState) so that a fleet
// can ship it through Redis; `attempt` decides and applies, `applyAttempt`
// replays an attempt whose verdict is already known (the Lua script in
// src/muc/redis-room-buckets.ts does the same arithmetic in the same order).

/** What a room follows from the options. */
export interface FairLimits {
  /** Room refill, events per second (>= 0). */
  readonly rate: number;
  /** Room capacity in tokens: rate × burst_factor. */
  readonly burst: number;
  /** The smallest cost of a charged stanza (limit_base_cost): shares below it are off. */
  readonly baseCost: number;
  /** A sender with no attempt for this long is no longer active. */
  readonly windowMs: number;
  /** Most senders counted in one room; later ones are judged as deep debtors. */
  readonly maxSenders: number;
}

/** One active sender: meter balance and time of its last attempt. */
export interface SenderState {
  m: number;
  last: number;
}

export interface RoomState {
  /** The room's bucket. */
  tokens: number;
  /** Time (ms) the bucket and meters were last brought up to date. */
  at: number;
  /** Active senders by key, in order of arrival. */
  readonly senders: Map<string, SenderState>;
}

/** How an attempt was judged: the class of the rule that applied. */
export type AttemptClass = "share" | "over" | "debtor";

export interface AttemptResult {
  readonly admitted: boolean;
  readonly how: AttemptClass;
}

const ADMITTED_FREE: AttemptResult = Object.freeze({ admitted: true, how: "share" });

export function newRoom(limits: FairLimits, now: number): RoomState {
  return { tokens: limits.burst, at: now, senders: new Map() };
}

export function cloneRoom(s: RoomState): RoomState {
  const senders = new Map<string, SenderState>();
  for (const [k, v] of s.senders) senders.set(k, { m: v.m, last: v.last });
  return { tokens: s.tokens, at: s.at, senders };
}

/** The depth of one share with `n` active senders (also the headroom). */
export function shareDepth(limits: FairLimits, n: number): number {
  return limits.burst / (n + 1);
}

/** A meter's ceiling: the share, or 0 while shares are below the base cost. */
function meterCap(limits: FairLimits, n: number): number {
  const b = shareDepth(limits, n);
  return b >= limits.baseCost && b > 0 ? b : 0;
}

/**
 * A meter never goes below this: a sender's debt is at most what the room
 * admits in one window (its burst plus its rate over the window). A flooder
 * stays active until it has repaid it.
 */
function meterFloor(limits: FairLimits): number {
  return -(limits.burst + (limits.rate * limits.windowMs) / 1000);
}

/** The room bucket's balance at `now`, refilled since the last update (capped at the burst). */
export function balanceAt(s: RoomState, limits: FairLimits, now: number): number {
  const elapsed = now - s.at;
  if (!(elapsed > 0)) return s.tokens;
  const t = s.tokens + (elapsed * limits.rate) / 1000;
  return t > limits.burst ? limits.burst : t;
}

/**
 * Brings the room up to `now`: the bucket and every meter refill for the time
 * since the last update (at the shares in force during it), then senders idle
 * for the window stop being active. Time never runs backwards.
 */
export function advance(s: RoomState, limits: FairLimits, now: number): void {
  const elapsed = now - s.at;
  // Nothing refills, and nobody can have become idle, until time moves on.
  if (!(elapsed > 0)) return;
  s.tokens = balanceAt(s, limits, now);
  s.at = now;
  const n = s.senders.size;
  if (n === 0) return;
  const cap = meterCap(limits, n);
  const gain = (elapsed * limits.rate) / (1000 * (n + 1));
  const window = limits.windowMs;
  let leaving = false;
  for (const v of s.senders.values()) {
    const m = v.m + gain;
    v.m = m > cap ? cap : m;
    if (now - v.last >= window && v.m >= cap) leaving = true;
  }
  if (!leaving) return;
  // A sender leaves once idle for the window with its meter full (its debt
  // repaid). Everyone's share grows by as much as it shrank when someone
  // arrived, and so does every meter: what a sender has used of its share is
  // remembered across the change.
  for (const [k, v] of s.senders) if (now - v.last >= window && v.m >= cap) s.senders.delete(k);
  const left = s.senders.size;
  if (left === 0) return;
  const capNew = meterCap(limits, left);
  // Only while shares were on: a room whose shares come back on starts from the meters as they are.
  if (cap > 0 && capNew > cap) {
    const d = capNew - cap;
    for (const v of s.senders.values()) v.m += d;
  }
}

/** Sum of the reservations min(m, cap)⁺ of every sender but `except`. */
function reserved(s: RoomState, cap: number, except: SenderState | undefined): number {
  if (cap <= 0) return 0;
  let sum = 0;
  for (const v of s.senders.values()) {
    if (v === except || v.m <= 0) continue;
    sum += v.m > cap ? cap : v.m;
  }
  return sum;
}

/**
 * Counts `key` as active, funding its meter with what the bucket holds beyond
 * the others' reservations (capped at the new, smaller share). Returns the
 * sender, or undefined when the room already counts maxSenders.
 */
function arrive(s: RoomState, limits: FairLimits, key: string, now: number): SenderState | undefined {
  if (s.senders.size >= limits.maxSenders) return undefined;
  const capOld = meterCap(limits, s.senders.size);
  const cap = meterCap(limits, s.senders.size + 1);
  // Shares shrink for everyone already here, and every meter by as much:
  // what a sender has used of its share still counts against the smaller one.
  const d = capOld - cap;
  if (d > 0) {
    const floor = meterFloor(limits);
    for (const v of s.senders.values()) {
      const m = v.m - d;
      v.m = m < floor ? floor : m;
    }
  }
  let fund = s.tokens - reserved(s, cap, undefined);
  if (fund > cap) fund = cap;
  if (!(fund > 0)) fund = 0;
  const e: SenderState = { m: fund, last: now };
  s.senders.set(key, e);
  return e;
}

/**
 * Judges one attempt of `cost` by `key` at `now` and applies it: the meter is
 * debited either way, the bucket only when admitted. `verdict` replays an
 * attempt judged elsewhere (a fleet member's local copy) with that answer.
 */
export function applyAttempt(s: RoomState, limits: FairLimits, key: string, cost: number, now: number, verdict?: boolean): AttemptResult {
  advance(s, limits, now);
  let e = s.senders.get(key);
  if (e === undefined) e = arrive(s, limits, key, now);
  if (e !== undefined && now > e.last) e.last = now;
  if (cost < 0) {
    // A refund (the room creator's first join): back to the meter and the
    // bucket, never above their caps. Both grow by at most the amount, so the
    // bucket still holds every reservation.
    const give = -cost;
    if (e !== undefined) {
      const m = e.m + give;
      const cap = meterCap(limits, s.senders.size);
      e.m = m > cap ? cap : m;
    }
    const t = s.tokens + give;
    s.tokens = t > limits.burst ? limits.burst : t;
    return ADMITTED_FREE;
  }
  if (!(cost > 0)) return ADMITTED_FREE;
  const n = s.senders.size;
  const cap = meterCap(limits, n);
  const b = shareDepth(limits, n);
  const m = e === undefined ? -Infinity : e.m;
  let how: AttemptClass;
  let ok: boolean;
  if (cap <= 0) {
    // Shares are off: senders go by how much they owe. One that owes less
    // than k others must leave k / n of the rest of the burst in the bucket,
    // so the least indebted may use it all and a flooder, owing the most,
    // only what the others leave.
    how = m < 0 ? "debtor" : "over";
    let ahead = 0;
    for (const v of s.senders.values()) if (v !== e && v.m > m) ahead++;
    const n = s.senders.size;
    const need = n > 0 ? ((limits.burst - cost) * ahead) / n : 0;
    ok = s.tokens >= cost && s.tokens - cost >= need;
  } else if (m >= cost) {
    how = "share";
    ok = s.tokens >= cost;
  } else if (m - cost >= -(cap > cost ? cap : cost)) {
    how = "over";
    ok = s.tokens - cost >= reserved(s, cap, e);
  } else {
    how = "debtor";
    ok = s.tokens - cost >= reserved(s, cap, e) + b;
  }
  if (verdict !== undefined) ok = verdict;
  if (e !== undefined) {
    const after = m - cost;
    const floor = meterFloor(limits);
    e.m = after < floor ? floor : after;
  }
  if (ok) s.tokens -= cost;
  return { admitted: ok, how };
}

/**
 * New limits for a live room: time up to `now` is credited at the old ones,
 * then the bucket is capped at the new burst (never refilled) and meters at
 * the new share.
 */
export function reconfigureRoom(s: RoomState, old: FairLimits, limits: FairLimits, now: number): void {
  advance(s, old, now);
  if (s.tokens > limits.burst) s.tokens = limits.burst;
  const cap = meterCap(limits, s.senders.size);
  const floor = meterFloor(limits);
  for (const v of s.senders.values()) {
    if (v.m > cap) v.m = cap;
    if (v.m < floor) v.m = floor;
  }
  advance(s, limits, now);
}
