// XEP-0198 resumption ids → the JID they were bound to. A resumed stream
// re-binds nothing, so without this the proxy would not know who a resumed
// session belongs to. Bounded: the oldest entries go first.

export class ResumptionRegistry {
  readonly #max: number;
  readonly #map = new Map<string, string>();

  constructor(max = 100_000) {
    this.#max = max;
  }

  get size(): number {
    return this.#map.size;
  }

  remember(id: string, jid: string): void {
    this.#map.delete(id);
    this.#map.set(id, jid);
    if (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value;
      if (oldest !== undefined) this.#map.delete(oldest);
    }
  }

  lookup(id: string): string | undefined {
    return this.#map.get(id);
  }
}
