// A bounded map of entries that are forgotten when idle: the memory cap behind
// the MUC limits' room and occupant tables. Map iteration order is kept as
// least-recently-touched first, so both the idle sweep and the cap eviction
// only ever look at the head. It reads no clock: every call gets `now` (ms,
// monotonic). Pure; no timers.

/** What the table needs from an entry: when it was last touched. */
export interface IdleEntry {
  last: number;
}

/** How many expired heads a single insert or touch clears on the way. */
const LAZY_SWEEP = 4;

export class IdleTable<V extends IdleEntry> {
  #map = new Map<string, V>();
  #idleMs: number;
  #cap: number;
  #capEvictions = 0;

  /**
   * @param idleMs an entry untouched for this long is gone
   * @param cap most entries; inserting past it forgets the least recently touched
   */
  constructor(idleMs: number, cap: number) {
    this.#idleMs = idleMs;
    this.#cap = cap;
  }

  get size(): number {
    return this.#map.size;
  }

  /** Entries forgotten because the table was full (not because they were idle). */
  get capEvictions(): number {
    return this.#capEvictions;
  }

  /** The live entry for `key`, without touching it; an expired one is removed and not returned. */
  get(key: string, now: number): V | undefined {
    const e = this.#map.get(key);
    if (e === undefined) return undefined;
    if (now - e.last >= this.#idleMs) {
      this.#map.delete(key);
      return undefined;
    }
    return e;
  }

  /** The live entry for `key` marked used at `now`, or a new one from `create` stored as the most recent. */
  use(key: string, now: number, create: () => V): V {
    let e = this.get(key, now);
    if (e === undefined) this.insert(key, (e = create()), now);
    else this.touch(key, e, now);
    return e;
  }

  /** Marks `entry` (stored under `key`) used at `now`: it becomes the most recent. */
  touch(key: string, entry: V, now: number): void {
    entry.last = now;
    this.#map.delete(key);
    this.#map.set(key, entry);
    this.sweep(now, LAZY_SWEEP);
  }

  /** Stores a new entry as the most recent, making room first if the table is full. */
  insert(key: string, entry: V, now: number): void {
    entry.last = now;
    this.#map.delete(key);
    this.sweep(now, LAZY_SWEEP);
    while (this.#map.size >= this.#cap) this.#evictHead();
    this.#map.set(key, entry);
  }

  delete(key: string): void {
    this.#map.delete(key);
  }

  /** Forgets expired entries, oldest first, at most `limit` of them; returns how many. */
  sweep(now: number, limit = Infinity): number {
    let n = 0;
    for (const [key, e] of this.#map) {
      if (n >= limit || now - e.last < this.#idleMs) break;
      this.#map.delete(key);
      n++;
    }
    return n;
  }

  /** New limits; a smaller cap forgets the least recently touched at once. */
  reconfigure(idleMs: number, cap: number, now: number): void {
    this.#idleMs = idleMs;
    this.#cap = cap;
    this.sweep(now);
    while (this.#map.size > this.#cap) this.#evictHead();
  }

  /** Live iteration over [key, entry], least recently touched first; deleting the current key is safe. */
  entries(): IterableIterator<[string, V]> {
    return this.#map.entries();
  }

  #evictHead(): void {
    for (const key of this.#map.keys()) {
      this.#map.delete(key);
      this.#capEvictions++;
      return;
    }
  }
}
