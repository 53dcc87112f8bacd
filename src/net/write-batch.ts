// Coalesces the frames forwarded while one input chunk is processed into as
// few socket writes as possible. Consecutive frames that sit back to back in
// the same chunk merge into one slice, so a chunk whose frames all pass is
// written once, zero-copy.
//
// Memory: most batches hold one slice at a time (a whole chunk's frames
// merge), so the first slice lives in fields and the array for further ones is
// allocated only when a batch needs it. An idle session's two batches then
// hold no arrays (three JS arrays grown to 17 slots each were ~0.5 KiB per
// batch).

import type { Writable } from "node:stream";

export class WriteBatch {
  // Slice 0.
  #buf: Buffer | null = null;
  #start = 0;
  #end = 0;
  // Slices 1…n-1 as (buffer, start, end) triples in one array, allocated on first use.
  #more: Array<Buffer | number> | null = null;
  #n = 0;

  get empty(): boolean {
    return this.#n === 0;
  }

  add(data: Buffer, start: number, end: number): void {
    const n = this.#n;
    if (n === 0) {
      this.#buf = data;
      this.#start = start;
      this.#end = end;
      this.#n = 1;
      return;
    }
    if (n === 1) {
      if (this.#buf === data && this.#end === start) {
        this.#end = end;
        return;
      }
    } else {
      const more = this.#more!;
      const last = (n - 2) * 3;
      if (more[last] === data && more[last + 2] === start) {
        more[last + 2] = end;
        return;
      }
    }
    const more = (this.#more ??= []);
    const at = (n - 1) * 3;
    more[at] = data;
    more[at + 1] = start;
    more[at + 2] = end;
    this.#n = n + 1;
  }

  /** Write everything out; returns what the last write() returned (false = apply backpressure). */
  flush(out: Writable): boolean {
    const n = this.#n;
    if (n === 0) return true;
    const b0 = this.#buf!;
    const s0 = this.#start;
    const e0 = this.#end;
    this.#buf = null; // release the chunk
    if (n === 1) {
      this.#n = 0;
      const ok = out.write(s0 === 0 && e0 === b0.length ? b0 : b0.subarray(s0, e0));
      return ok && !out.writableNeedDrain;
    }
    out.cork();
    let ok = out.write(s0 === 0 && e0 === b0.length ? b0 : b0.subarray(s0, e0));
    const more = this.#more!;
    for (let i = 0; i < (n - 1) * 3; i += 3) {
      const b = more[i] as Buffer;
      const s = more[i + 1] as number;
      const e = more[i + 2] as number;
      ok = out.write(s === 0 && e === b.length ? b : b.subarray(s, e));
      more[i] = 0; // release the chunk
    }
    out.uncork();
    this.#n = 0;
    return ok && !out.writableNeedDrain;
  }
}
