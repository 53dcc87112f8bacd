// Heap bytes allocated per call of a function, measured without a heap
// profiler: a full GC empties the young generation, then `n` calls run and
// the growth of the used heap is read. A trial during which a scavenge ran
// shows a drop (or far less growth); the median of several trials is
// reported. Deterministic enough to hold a bound in a test (V8's escape
// analysis makes optimised code allocate less, so warm the function up
// first); never a timing.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let gcFn: (() => void) | undefined;

/** A full garbage collection (enables --expose-gc at run time when needed). */
export function fullGc(): void {
  if (gcFn === undefined) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (typeof g === "function") gcFn = g;
    else {
      setFlagsFromString("--expose-gc");
      gcFn = runInNewContext("gc") as () => void;
    }
  }
  gcFn();
}

/**
 * Median heap bytes allocated per call of `fn(i)` over `trials` runs of `n`
 * calls each. Keep n × (bytes per call) well under a megabyte so a trial fits
 * the young generation without a scavenge.
 */
export function bytesPerCall(fn: (i: number) => unknown, n = 500, trials = 9): number {
  const samples: number[] = [];
  let sink = 0;
  for (let t = 0; t < trials; t++) {
    fullGc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) if (fn(i) === sink) sink++;
    const after = process.memoryUsage().heapUsed;
    samples.push(Math.max(0, after - before) / n);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1]!;
}
