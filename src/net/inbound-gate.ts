// The inbound gate: what stands between the peer's reads and the framer, and
// between the framer's frames and the rest of the session (docs/shaping.md).
// Bytes are charged to the byte bucket before they are framed, in slices, so
// the output is smooth; stanzas are charged to their kind's bucket right
// after framing. What the buckets do not cover waits here (bytes not framed
// yet, frames not handled yet) while the peer's reads are paused, until the
// pacer has repaid the debt; nothing is ever dropped. The gate also keeps
// why the peer's reader is paused (a bit mask of reasons: it reads again only
// when every reason has cleared) and which frame a partial stanza belongs to
// (for timeouts.stanza).
//
// The session subclasses it (it is the inbound framer's sink) and supplies
// the hooks: where paid bytes go, where passed frames go, the peer to pause.

import { Buffer } from "node:buffer"; // not the global accessor: docs/performance.md, "Globals that are accessors"
import type { ProxyError } from "../errors.js";
import type { SessionLimit } from "../config/schema.js";
import { realTimers, turnClock, type Clock, type Timers } from "../shaping/clock.js";
import { ReadPacer, type ThrottleReason } from "../shaping/pacer.js";
import { TokenBucket } from "../shaping/token-bucket.js";
import type { RatedStanzaKind } from "../shaping/units.js";
import { FRAME_STANZA, type FrameKind, type FrameSink } from "../xml/framer.js";
import type { StanzaKind } from "../xml/stanza-view.js";

// Reasons the peer's reader is paused.
export const PAUSE_DIAL = 1;
export const PAUSE_BACKPRESSURE = 2;
export const PAUSE_SHAPING = 4;

const RATED_KINDS: readonly RatedStanzaKind[] = ["message", "presence", "iq"];

interface GateBuckets {
  readonly bytes: TokenBucket | null;
  readonly stanzas: Partial<Record<RatedStanzaKind, TokenBucket>>;
}
/** Shared by every session without limits (the default), so none allocates its own. */
const NO_BUCKETS: GateBuckets = Object.freeze({ bytes: null, stanzas: Object.freeze({}) });

interface HeldFrame {
  readonly kind: FrameKind;
  readonly data: Buffer;
  readonly start: number;
  readonly end: number;
  /** Its stanza bucket was already charged (it is the frame that overdrew it). */
  charged: boolean;
}

// #bits
const HOLDING = 1;
const STANZA_SHAPING = 2;

/**
 * What only a session with limits needs: its pacer and buckets, and what
 * waits for them. Made by the first reconfigure() that sets a limit, so a
 * gate without limits (the default) holds none of it.
 */
class Shaping {
  pacer!: ReadPacer; // set right after construction (its hooks lead back here)
  buckets: GateBuckets = NO_BUCKETS;
  /** Bytes read but not yet framed; the first pendingPaid of them are already charged. */
  pending: Buffer | null = null;
  pendingPaid = 0;
  /** Frames a stanza bucket refused, and every frame after them (allocated when first needed). */
  held: HeldFrame[] | null = null;
  throttleReason: ThrottleReason = "bytes";
}

export abstract class InboundGate implements FrameSink {
  #pause = 0;
  #bits = 0;
  #shaping: Shaping | null = null;
  #frames = 0;
  #partialAt = -1;

  // ---- what the gate asks of the session -------------------------------------

  /** Paid bytes, in order: frame them. */
  protected abstract feed(data: Buffer): void;
  /** A frame through the gate, in order: handle it. */
  protected abstract pass(kind: FrameKind, data: Buffer, start: number, end: number): void;
  /** The kind a stanza is charged as (read in the peer's stream context). */
  protected abstract stanzaKind(data: Buffer, start: number, end: number): StanzaKind;
  /** True once the session is closing: nothing more is fed, passed, paused or resumed. */
  protected abstract isClosing(): boolean;
  protected abstract pausePeer(): void;
  protected abstract resumePeer(): void;
  /** Held data was released: send on what it produced. */
  protected abstract flush(): void;
  /** A throttle episode started (`reason`: the bucket in debt) or ended after `ms`. */
  protected abstract throttled(reason: ThrottleReason, ms: number | null): void;
  abstract onError(error: ProxyError): void;

  // ---- reads ----------------------------------------------------------------

  /** True when this session has limits (its bytes are charged). */
  get shaped(): boolean {
    return this.#shaping !== null;
  }

  /** True while the proxy holds the peer back (paused reads, bytes or frames waiting). */
  get heldBack(): boolean {
    return this.#pause !== 0 || (this.#shaping !== null && this.#shaping.pending !== null) || (this.#bits & HOLDING) !== 0;
  }

  /** True while the peer's reader is paused for any reason. */
  get paused(): boolean {
    return this.#pause !== 0;
  }

  /** Bytes read from the peer: framed now, or as the byte bucket allows. */
  write(chunk: Buffer): void {
    const sh = this.#shaping;
    if (sh === null) {
      this.feed(chunk);
      return;
    }
    sh.pending = sh.pending === null ? chunk : Buffer.concat([sh.pending, chunk]);
    if (!sh.pacer.paused) InboundGate.#pump(this, sh);
  }

  /** Bytes read but not framed yet, handed over (STARTTLS: they are TLS, for the listener). */
  takePending(): Buffer | null {
    const sh = this.#shaping;
    if (sh === null) return null;
    const p = sh.pending;
    sh.pending = null;
    return p;
  }

  pause(reason: number): void {
    if (this.#pause === 0 && !this.isClosing()) this.pausePeer();
    this.#pause |= reason;
  }

  resume(reason: number): void {
    this.#pause &= ~reason;
    if (this.#pause === 0 && !this.isClosing()) this.resumePeer();
  }

  // Private helpers are static, the instance passed in: a private instance method
  // would give every instance one more slot (8 bytes per object).
  /**
   * Feed the pending bytes to the framer as the byte bucket allows, in slices
   * of at most an eighth of the bucket: each slice is charged before it is
   * read, so the debt never exceeds one slice and the output is smooth at the
   * configured rate (no burst of a whole 64 KiB read after a long pause).
   */
  static #pump(self: InboundGate, sh: Shaping): void {
    const pacer = sh.pacer;
    const bucket = sh.buckets.bytes;
    while (sh.pending !== null && !self.isClosing()) {
      let pending = sh.pending;
      if (bucket === null || pacer.unlimited) {
        sh.pending = null;
        sh.pendingPaid = 0;
        self.feed(pending);
        return;
      }
      if (sh.pendingPaid === 0) {
        const n = Math.min(pending.length, Math.max(256, Math.floor(bucket.capacity / 8)));
        const covered = pacer.charge(n);
        sh.pendingPaid = n;
        if (covered < n) {
          // Forward what the bucket covered; the rest of this slice is paid and
          // waits for the pacer's resume (which calls #release → #pump).
          if (covered > 0) {
            self.feed(pending.subarray(0, covered));
            pending = pending.subarray(covered);
            sh.pending = pending;
            sh.pendingPaid = n - covered;
          }
          return;
        }
      }
      const paid = sh.pendingPaid;
      sh.pendingPaid = 0;
      sh.pending = paid < pending.length ? pending.subarray(paid) : null;
      self.feed(paid < pending.length ? pending.subarray(0, paid) : pending);
    }
  }

  // ---- frames -----------------------------------------------------------------

  /** The framer's frame: held while a stanza bucket is in debt, else passed on. */
  onFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
    this.#frames++;
    const bits = this.#bits;
    if (bits !== 0) {
      // Only a gate with limits sets these bits.
      const sh = this.#shaping!;
      if ((bits & HOLDING) !== 0) {
        (sh.held ??= []).push({ kind, data, start, end, charged: false });
        return;
      }
      if (kind === FRAME_STANZA && (bits & STANZA_SHAPING) !== 0 && !sh.pacer.chargeStanza(this.stanzaKind(data, start, end))) {
        (sh.held ??= []).push({ kind, data, start, end, charged: true });
        this.#bits |= HOLDING;
        return;
      }
    }
    this.pass(kind, data, start, end);
  }

  /** The pacer repaid its debt: replay held frames, then held bytes, then read again. */
  static #release(self: InboundGate, sh: Shaping): void {
    if (self.isClosing()) return;
    const pacer = sh.pacer;
    self.#bits &= ~HOLDING;
    const held = sh.held;
    while (held !== null && held.length > 0) {
      const f = held[0]!;
      if (!f.charged && f.kind === FRAME_STANZA && (self.#bits & STANZA_SHAPING) !== 0 && !pacer.chargeStanza(self.stanzaKind(f.data, f.start, f.end))) {
        f.charged = true;
        self.#bits |= HOLDING;
        break;
      }
      held.shift();
      self.pass(f.kind, f.data, f.start, f.end);
      if (self.isClosing()) return;
    }
    const holding = (self.#bits & HOLDING) !== 0;
    if (!holding) InboundGate.#pump(self, sh);
    self.flush();
    if (!pacer.paused && !holding && sh.pending === null) self.resume(PAUSE_SHAPING);
  }

  // ---- partial stanza ---------------------------------------------------------

  /** The partial frame buffered now is the one markPartial() saw (still dripping). */
  get samePartial(): boolean {
    return this.#partialAt === this.#frames;
  }

  /** A partial frame is buffered: its clock starts now. */
  markPartial(): void {
    this.#partialAt = this.#frames;
  }

  // ---- limits -------------------------------------------------------------------

  /**
   * (Re)apply a session limit (null: none). On reload, existing buckets keep
   * their tokens (capped at the new capacity) instead of starting over full.
   * The clock is the turn clock by default: the session reads each chunk in
   * a turn, so the byte charge, every stanza's charge and the firewall's
   * LIMITs share one reading per read (outside a turn, in the pacer's
   * timers, it is the real clock).
   */
  reconfigure(spec: SessionLimit | null, clock: Clock = turnClock, timers: Timers = realTimers): void {
    const now = clock.now();
    const sh = this.#shaping;
    const old = sh === null ? NO_BUCKETS : sh.buckets;
    const bytes = spec?.bytes ? (old.bytes ? (old.bytes.reconfigure(spec.bytes.rate, spec.bytes.capacity, now), old.bytes) : new TokenBucket(spec.bytes.rate, spec.bytes.capacity, now)) : null;
    const stanzas: Partial<Record<RatedStanzaKind, TokenBucket>> = {};
    for (const kind of RATED_KINDS) {
      const r = spec?.stanzas[kind];
      if (!r) continue;
      const b = old.stanzas[kind];
      if (b) b.reconfigure(r.rate, r.capacity, now);
      stanzas[kind] = b ?? new TokenBucket(r.rate, r.capacity, now);
    }
    const stanzaShaping = Object.keys(stanzas).length > 0;
    const buckets = { bytes, stanzas };
    if (sh !== null) {
      sh.buckets = bytes === null && !stanzaShaping ? NO_BUCKETS : buckets;
      sh.pacer.setBuckets(buckets);
    } else if (bytes !== null || stanzaShaping) {
      const shaping = new Shaping();
      shaping.buckets = buckets;
      this.#shaping = shaping;
      shaping.pacer = new ReadPacer({
        buckets,
        clock,
        timers,
        hooks: {
          pause: () => this.pause(PAUSE_SHAPING),
          resume: () => InboundGate.#release(this, shaping),
          onThrottleStart: (reason) => {
            shaping.throttleReason = reason;
            this.throttled(reason, null);
          },
          onThrottleEnd: (ms) => this.throttled(shaping.throttleReason, ms),
        },
      });
    }
    this.#bits = stanzaShaping ? this.#bits | STANZA_SHAPING : this.#bits & ~STANZA_SHAPING;
  }

  /** limits.unlimited_jids: exempt the session from its limits, or limit it again. True when that changed. */
  setUnlimited(exempt: boolean): boolean {
    const pacer = this.#shaping?.pacer;
    if (pacer === undefined || exempt === pacer.unlimited) return false;
    pacer.setUnlimited(exempt);
    return true;
  }

  /** The session ended: stop the pacer (reporting an open throttle episode) and let go of what waits. */
  close(): void {
    const sh = this.#shaping;
    if (sh === null) return;
    sh.pacer.close();
    sh.pending = null;
    sh.held = null;
  }
}
