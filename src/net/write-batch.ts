// Coalesces the frames forwarded while one input chunk is processed into as
// few socket writes as possible. Consecutive frames that sit back to back in
// the same chunk merge into one slice, so a chunk whose frames all pass is
// written once, zero-copy.

import type { Writable } from "node:stream";

export class WriteBatch {
  #bufs: Buffer[] = [];
  #starts: number[] = [];
  #ends: number[] = [];
  #n = 0;

  get empty(): boolean {
    return this.#n === 0;
  }

  add(data: Buffer, start: number, end: number): void {
    const n = this.#n;
    if (n > 0 && this.#bufs[n - 1] === data && this.#ends[n - 1] === start) {
      this.#ends[n - 1] = end;
      return;
    }
    this.#bufs[n] = data;
    this.#starts[n] = start;
    this.#ends[n] = end;
    this.#n = n + 1;
  }

  /** Write everything out; returns what the last write() returned (false = apply backpressure). */
  flush(out: Writable): boolean {
    const n = this.#n;
    if (n === 0) return true;
    let ok = true;
    if (n > 1) out.cork();
    for (let i = 0; i < n; i++) {
      const b = this.#bufs[i]!;
      const s = this.#starts[i]!;
      const e = this.#ends[i]!;
      ok = out.write(s === 0 && e === b.length ? b : b.subarray(s, e));
      this.#bufs[i] = undefined as unknown as Buffer; // release the chunk
    }
    if (n > 1) out.uncork();
    this.#n = 0;
    return ok && !out.writableNeedDrain;
  }
}
