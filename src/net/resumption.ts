// XEP-0198 resumption ids → the JID they were bound to, and the session's
// stream-management ledger (stream/sm-ledger.ts). A resumed stream re-binds
// nothing, so without this the proxy would not know who a resumed session
// belongs to, nor how its counts differ from the server's. Bounded: the
// oldest entries go first.
import type { SmLedger } from "../stream/sm-ledger.js";

interface Entry {
  readonly jid: string;
  readonly ledger: SmLedger | undefined;
}

export class ResumptionRegistry {
  readonly #max: number;
  readonly #map = new Map<string, Entry>();

  constructor(max = 100_000) {
    this.#max = max;
  }

  get size(): number {
    return this.#map.size;
  }

  remember(id: string, jid: string, ledger?: SmLedger): void {
    this.#map.delete(id);
    this.#map.set(id, { jid, ledger });
    if (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value;
      if (oldest !== undefined) this.#map.delete(oldest);
    }
  }

  lookup(id: string): string | undefined {
    return this.#map.get(id)?.jid;
  }

  /** The ledger of the session that `id` resumes, when this process saw it. */
  ledger(id: string): SmLedger | undefined {
    return this.#map.get(id)?.ledger;
  }
}
