// Read-side backpressure for one session: charges bytes read (and optionally
// framed stanzas) to token buckets and pauses/resumes the reader, with exactly
// one pending timer set to the instant the debt is repaid. It never drops or
// buffers data and never touches a socket: the session binds the hooks.
// Semantics (what "admitted" means, hold vs forward): docs/shaping.md.
import type { StanzaKind } from "../xml/stanza-view.js";
import type { CancelTimer, Clock, Timers } from "./clock.js";
import type { TokenBucket } from "./token-bucket.js";
import type { RatedStanzaKind } from "./units.js";

/** Which bucket started a throttle episode. */
export type ThrottleReason = "bytes" | RatedStanzaKind;

export interface PacerHooks {
  /** Stop reading (e.g. socket.pause()). Called once per throttle episode. */
  pause(): void;
  /** Start reading again; release anything held back first. Called once per episode. */
  resume(): void;
  /** A throttle episode began (called right after pause()). */
  onThrottleStart(reason: ThrottleReason): void;
  /** A throttle episode ended after `ms` (called right before resume(), or on close()). */
  onThrottleEnd(ms: number): void;
}

export interface PacerBuckets {
  /** Bytes read, after TLS decryption. Absent or null: no byte limit. */
  readonly bytes?: TokenBucket | null | undefined;
  /** One bucket per stanza kind, one token per stanza. */
  readonly stanzas?: Readonly<Partial<Record<RatedStanzaKind, TokenBucket>>> | undefined;
}

export interface ReadPacerOptions {
  readonly buckets: PacerBuckets;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly hooks: PacerHooks;
  /** Start exempt (e.g. a listener with no limits). Default false. */
  readonly unlimited?: boolean | undefined;
}

export class ReadPacer {
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #hooks: PacerHooks;
  #bytes: TokenBucket | null = null;
  #message: TokenBucket | null = null;
  #presence: TokenBucket | null = null;
  #iq: TokenBucket | null = null;
  #unlimited: boolean;
  #paused = false;
  #closed = false;
  #cancel: CancelTimer | null = null;
  #resumeAt = 0;
  #throttleStart = 0;
  #throttledMs = 0;
  /** Set by #maxDebtMs: the bucket owing the longest wait. */
  #worst: ThrottleReason = "bytes";
  /** Bound once so scheduling a timer allocates no closure. */
  readonly #onTimer = (): void => this.#timerFired();

  constructor(options: ReadPacerOptions) {
    this.#clock = options.clock;
    this.#timers = options.timers;
    this.#hooks = options.hooks;
    this.#unlimited = options.unlimited === true;
    this.#assign(options.buckets);
    this.refresh();
  }

  /** True while reading is paused (some bucket is in debt). */
  get paused(): boolean {
    return this.#paused;
  }

  get unlimited(): boolean {
    return this.#unlimited;
  }

  /** Total time spent throttled, including the current episode, in ms. */
  throttledMs(): number {
    return this.#throttledMs + (this.#paused ? this.#clock.now() - this.#throttleStart : 0);
  }

  /**
   * Charges a chunk of `bytes` just read to the byte bucket. If that overdraws
   * it, calls pause() and arms the resume timer. Returns how many leading bytes
   * of the chunk were covered by tokens at the time of the call: forwarding
   * only those now and holding the rest until resume() keeps the forwarded
   * total within capacity + rate × t exactly. While paused it returns 0.
   * A return below `bytes` always means a resume() is coming.
   */
  charge(bytes: number): number {
    if (this.#closed || this.#unlimited || !(bytes > 0)) return bytes > 0 ? bytes : 0;
    const wasPaused = this.#paused;
    const bucket = this.#bytes;
    if (bucket === null) return wasPaused ? 0 : bytes;
    const now = this.#clock.now();
    const before = bucket.balance(now);
    const wait = bucket.take(bytes, now);
    if (wait === 0) return wasPaused ? 0 : bytes;
    this.#throttle(now, wait, "bytes");
    return wasPaused || before <= 0 ? 0 : Math.min(bytes, Math.floor(before));
  }

  /**
   * Charges one framed stanza of `kind` to its bucket, if one is configured
   * ("other", e.g. XEP-0198 <r/>/<a/>, is never charged). Returns true when
   * the stanza may be forwarded now; false when it overdrew its bucket or the
   * pacer is already paused: a strict session holds it, and what follows it,
   * until resume(). Reading is paused either way until the debt is repaid.
   */
  chargeStanza(kind: StanzaKind): boolean {
    if (this.#closed || this.#unlimited) return true;
    const wasPaused = this.#paused;
    let bucket: TokenBucket | null;
    switch (kind) {
      case "message":
        bucket = this.#message;
        break;
      case "presence":
        bucket = this.#presence;
        break;
      case "iq":
        bucket = this.#iq;
        break;
      default:
        return !wasPaused;
    }
    if (bucket === null) return !wasPaused;
    const now = this.#clock.now();
    const wait = bucket.take(1, now);
    if (wait > 0) this.#throttle(now, wait, kind);
    return !wasPaused && wait === 0;
  }

  /**
   * Exempts the session (e.g. its bound JID is in unlimited_jids) or re-limits
   * it. Exempting a paused session resumes it immediately; while exempt
   * nothing is charged. Re-limiting re-checks the buckets as they are then.
   */
  setUnlimited(unlimited: boolean): void {
    if (this.#closed || unlimited === this.#unlimited) return;
    this.#unlimited = unlimited;
    if (unlimited) {
      if (this.#paused) this.#resumeNow(this.#clock.now());
    } else {
      this.refresh();
    }
  }

  /** Replaces the set of buckets (config reload), then refresh(). */
  setBuckets(buckets: PacerBuckets): void {
    if (this.#closed) return;
    this.#assign(buckets);
    this.refresh();
  }

  /**
   * Re-evaluates the pause deadline. Call after reconfiguring a bucket in
   * place (its rate changed, so the debt is repaid sooner or later) or after
   * a bucket shared with other sessions was charged elsewhere.
   */
  refresh(): void {
    if (this.#closed || this.#unlimited) return;
    const now = this.#clock.now();
    const wait = this.#maxDebtMs(now);
    if (wait > 0) {
      if (this.#paused) this.#schedule(now, now + wait);
      else this.#throttle(now, wait, this.#worst);
    } else if (this.#paused) {
      this.#resumeNow(now);
    }
  }

  /**
   * Stops the pacer for good: cancels the timer and, if throttled, reports
   * the episode through onThrottleEnd (resume() is not called).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelTimer();
    if (this.#paused) {
      this.#paused = false;
      const ms = this.#clock.now() - this.#throttleStart;
      this.#throttledMs += ms;
      this.#hooks.onThrottleEnd(ms);
    }
  }

  #assign(buckets: PacerBuckets): void {
    this.#bytes = buckets.bytes ?? null;
    this.#message = buckets.stanzas?.message ?? null;
    this.#presence = buckets.stanzas?.presence ?? null;
    this.#iq = buckets.stanzas?.iq ?? null;
  }

  #throttle(now: number, wait: number, reason: ThrottleReason): void {
    const at = now + wait;
    if (!this.#paused) {
      this.#paused = true;
      this.#throttleStart = now;
      this.#schedule(now, at);
      this.#hooks.pause();
      this.#hooks.onThrottleStart(reason);
    } else if (at > this.#resumeAt || this.#cancel === null) {
      this.#schedule(now, at);
    }
  }

  #schedule(now: number, at: number): void {
    this.#cancelTimer();
    this.#resumeAt = at;
    this.#cancel = this.#timers.setTimer(at - now, this.#onTimer);
  }

  #cancelTimer(): void {
    if (this.#cancel !== null) {
      this.#cancel();
      this.#cancel = null;
    }
  }

  #timerFired(): void {
    this.#cancel = null;
    if (this.#closed || this.#unlimited || !this.#paused) return;
    const now = this.#clock.now();
    // Real timers can fire a little early; re-arm for the remainder if so.
    const wait = this.#maxDebtMs(now);
    if (wait > 0) this.#schedule(now, now + wait);
    else this.#resumeNow(now);
  }

  #resumeNow(now: number): void {
    this.#cancelTimer();
    this.#paused = false;
    const ms = now - this.#throttleStart;
    this.#throttledMs += ms;
    this.#hooks.onThrottleEnd(ms);
    this.#hooks.resume();
  }

  #maxDebtMs(now: number): number {
    let worst = 0;
    if (this.#bytes !== null) worst = this.#worse(worst, this.#bytes.debtMs(now), "bytes");
    if (this.#message !== null) worst = this.#worse(worst, this.#message.debtMs(now), "message");
    if (this.#presence !== null) worst = this.#worse(worst, this.#presence.debtMs(now), "presence");
    if (this.#iq !== null) worst = this.#worse(worst, this.#iq.debtMs(now), "iq");
    return worst;
  }

  #worse(current: number, candidate: number, reason: ThrottleReason): number {
    if (candidate <= current) return current;
    this.#worst = reason;
    return candidate;
  }
}
