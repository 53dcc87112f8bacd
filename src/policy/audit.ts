// The audit trail of policy actions: one info line ("policy action") per
// stanza a stage dropped or bounced, or per stream it closed, with who (sid,
// jid, ip, listener), what (stage, rule file:line, action, reason) and which
// stanza. Metrics count every action; the lines are rate-limited so that a
// flood cannot fill the disk: each session may write a burst and then a few
// per second, and the whole process a larger budget. Lines left out are
// counted, and the next line written says how many were.
import { realClock, type Clock } from "../shaping/clock.js";
import { TokenBucket } from "../shaping/token-bucket.js";

/** Per session: a burst of 20 lines, then 2 per second. */
const SESSION_RATE = 2;
const SESSION_BURST = 20;
/** Per process: a burst of 200 lines, then 50 per second. */
const GLOBAL_RATE = 50;
const GLOBAL_BURST = 200;

/** `file:line` at the start of a firewall reason ("rules/a.pfw:12 DROP"), if any. */
export function ruleOf(reason: string): string | undefined {
  const m = /^(\S+:\d+) /.exec(reason);
  return m?.[1];
}

export class AuditLimiter {
  readonly #clock: Clock;
  readonly #global: TokenBucket;
  readonly #sessions = new WeakMap<object, TokenBucket>();
  #suppressed = 0;
  readonly #onSuppressed: (() => void) | undefined;

  constructor(options: { clock?: Clock; onSuppressed?: () => void } = {}) {
    this.#clock = options.clock ?? realClock;
    this.#global = new TokenBucket(GLOBAL_RATE, GLOBAL_BURST, this.#clock.now());
    this.#onSuppressed = options.onSuppressed;
  }

  /**
   * Whether a line for `session` may be written now. Returns null when not
   * (the line is counted as suppressed), else how many lines were left out
   * since the last one written (0 mostly).
   */
  admit(session: object): number | null {
    const now = this.#clock.now();
    let own = this.#sessions.get(session);
    if (own === undefined) this.#sessions.set(session, (own = new TokenBucket(SESSION_RATE, SESSION_BURST, now)));
    if (own.balance(now) < 1 || this.#global.balance(now) < 1) {
      this.#suppressed++;
      this.#onSuppressed?.();
      return null;
    }
    own.take(1, now);
    this.#global.take(1, now);
    const n = this.#suppressed;
    this.#suppressed = 0;
    return n;
  }
}
