// What one session's stanzas remember between firewall runs, so that the
// next stanza of the same session finds again what the last one worked out:
// the forms of the JIDs it named (per address role) and the LIMIT bucket each
// `LIMIT … on` condition took a token from, and the last pass or drop
// (memo.ts). The firewall stage keeps one per
// session (docs/performance.md, "A session's own memory"); a run without one
// (trace, tests) uses its rule set's. Everything here is a hint checked
// before use: a stale entry costs a lookup, never a wrong answer.
import { jidForms, NO_JID, type JidForms } from "../xmpp/jid.js";
import type { LimitBucket } from "./limits.js";
import type { RunMemo } from "./memo.js";

/**
 * The forms (jid.ts's JidForms) of the last JID asked about in one address
 * role: a session's consecutive stanzas bring the same `to` or `from` string
 * again, and reach its forms (and the very string objects of its prepared,
 * bare and split forms, whose hashes Map lookups keep) with one comparison.
 * A miss is one memo lookup.
 */
export class LastForms {
  #in: string | undefined = undefined;
  #out: JidForms = NO_JID;

  of(jid: string | undefined): JidForms {
    if (jid !== this.#in) {
      this.#out = jidForms(jid);
      this.#in = jid;
    }
    return this.#out;
  }
}

export class RunMemory {
  /** Per address role: `to`, `from`, the origin's JID; roles do not evict each other. */
  readonly to = new LastForms();
  readonly from = new LastForms();
  readonly origin = new LastForms();
  /** Per `LIMIT … on` condition (the number its rule set gave it): the bucket of its last key. */
  readonly buckets: Array<LimitBucket | null> = [];
  /** The last pass or drop of these stanzas, to repeat without a run (memo.ts); made on the first. */
  memo: RunMemo | undefined = undefined;
}
