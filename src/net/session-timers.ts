// A session's timers, in one owner: the wait for the peer's stream header
// (timeouts.stream_header), the pre-authentication bounds (timeouts.pre_auth
// and pre_auth_idle on one timer, with the pre_auth byte and stanza counts),
// the slow-drip bound on a partial stanza (timeouts.stanza) and the grace a
// closing session gives the peer. It only keeps time: what a deadline means
// is the session's to decide (its `fire` callbacks). The upstream's connect
// timeout belongs to the dialler (upstream.ts).

import type { TimeoutsConfig } from "../config/schema.js";

/** The timeouts the proxy counts by kind (metric label). */
export type TimeoutKind = "stream_header" | "pre_auth" | "pre_auth_idle" | "stanza";

/** A pre-authentication bound that passed. */
export interface Expired {
  readonly kind: "pre_auth" | "pre_auth_idle";
  readonly detail?: string;
}

/**
 * What an unauthenticated peer has used so far. Dropped at authentication,
 * so a bound session holds none of it (nor its two boxed times).
 */
interface PreAuth {
  timer: NodeJS.Timeout | undefined;
  readonly acceptedAt: number;
  lastActivity: number;
  bytes: number;
  stanzas: number;
}

/** How long a closing session waits for the peer to finish closing before destroying what is left. */
const CLOSE_GRACE_MS = 5000;
/**
 * The same for a connection refused by a per-IP cap. Its answer fits in one
 * segment and there is nothing to drain, and a flood of refused connections
 * must not hold a descriptor each for long, whether or not the peer reads.
 */
const REFUSED_CLOSE_MS = 1000;

/** The grace a closing session gives its peer (`refused`: a connection refused by a per-IP cap). */
export function closeGraceMs(refused: boolean): number {
  return refused ? REFUSED_CLOSE_MS : CLOSE_GRACE_MS;
}

export class SessionTimers {
  #header: NodeJS.Timeout | undefined;
  #stanza: NodeJS.Timeout | undefined;
  #close: NodeJS.Timeout | undefined;
  #preAuth: PreAuth | null = null;

  // ---- stream header --------------------------------------------------------

  /** Call `fire` after `ms` unless headerSeen() comes first. */
  startHeader(ms: number, fire: () => void): void {
    this.#header = setTimeout(fire, ms);
  }

  headerSeen(): void {
    clearTimeout(this.#header);
    this.#header = undefined; // a cleared Timeout still holds its closure (and the session's graph)
  }

  // ---- pre-authentication -----------------------------------------------------

  /**
   * Both pre-authentication bounds on one timer: it fires at the nearer of
   * the idle deadline and the lifetime deadline (counted from `acceptedAt`,
   * before any PROXY header or TLS), and preAuthFired() works out which
   * passed, so a byte from the peer only stores a time and never touches a
   * timer. The lifetime is a ceiling: time the proxy holds the peer back
   * counts too.
   */
  startPreAuth(acceptedAt: number, t: TimeoutsConfig, fire: () => void): void {
    const now = Date.now();
    const p: PreAuth = { timer: undefined, acceptedAt, lastActivity: now, bytes: 0, stanzas: 0 };
    this.#preAuth = p;
    p.timer = setTimeout(fire, Math.min(t.pre_auth_idle * 1000, acceptedAt + t.pre_auth * 1000 - now));
  }

  /** A read from either side before authentication: the idle bound starts over. */
  activity(): void {
    if (this.#preAuth !== null) this.#preAuth.lastActivity = Date.now();
  }

  /** Count `n` bytes read before authentication: true once more than `max` (0: no limit). */
  overBytes(n: number, max: number): boolean {
    const p = this.#preAuth;
    return p !== null && max > 0 && (p.bytes += n) > max;
  }

  /** Count one stanza before authentication: true once more than `max` (0: no limit). */
  overStanzas(max: number): boolean {
    const p = this.#preAuth;
    return p !== null && max > 0 && ++p.stanzas > max;
  }

  /**
   * The pre-authentication timer fired: the bound that passed, or null when
   * none did and the timer is armed again (also while `paused`: the proxy
   * holds the peer's reads, so its silence is not its own).
   */
  preAuthFired(t: TimeoutsConfig, paused: boolean, fire: () => void): Expired | null {
    const p = this.#preAuth;
    if (p === null) return null;
    p.timer = undefined;
    const now = Date.now();
    const lifetimeLeft = p.acceptedAt + t.pre_auth * 1000 - now;
    if (lifetimeLeft <= 0) return { kind: "pre_auth", detail: `${Math.round((now - p.acceptedAt) / 1000)} s after accept` };
    const left = p.lastActivity + t.pre_auth_idle * 1000 - now;
    if (left > 0 || paused) {
      p.timer = setTimeout(fire, Math.min(Math.max(left, 1000), lifetimeLeft));
      return null;
    }
    return { kind: "pre_auth_idle" };
  }

  /** pre_auth_idle and pre_auth no longer apply: their timer would only return, so drop it now. */
  authenticated(): void {
    if (this.#preAuth === null) return;
    clearTimeout(this.#preAuth.timer);
    this.#preAuth = null;
  }

  // ---- partial stanza (slow drip) ---------------------------------------------

  get stanzaArmed(): boolean {
    return this.#stanza !== undefined;
  }

  /** (Re)start timeouts.stanza: `fire` after `ms` unless disarmed. */
  armStanza(ms: number, fire: () => void): void {
    clearTimeout(this.#stanza);
    this.#stanza = setTimeout(() => {
      this.#stanza = undefined;
      fire();
    }, ms);
  }

  disarmStanza(): void {
    clearTimeout(this.#stanza);
    this.#stanza = undefined;
  }

  // ---- endings ----------------------------------------------------------------

  /** The closing session's grace (the first call wins): `fire` after `ms` (closeGraceMs()); never keeps the process alive. */
  closeAfter(ms: number, fire: () => void): void {
    this.#close ??= setTimeout(fire, ms);
    this.#close.unref();
  }

  /** The session is closing: every deadline but the close grace is off. */
  stop(): void {
    clearTimeout(this.#header);
    this.#header = undefined;
    if (this.#preAuth !== null) clearTimeout(this.#preAuth.timer);
    this.disarmStanza();
  }

  /** The session ended: nothing is left armed. */
  end(): void {
    this.stop();
    clearTimeout(this.#close);
  }
}
