// How fast one CPU runs right now, for benches on a shared machine.
//
// On this 2-vCPU VM a vCPU runs either at its normal speed or, for seconds
// to minutes at a time, about 1.5 × slower, every kind of code alike
// (JavaScript, WebAssembly, the kernel), one vCPU at a time, with no steal
// time reported: most likely the host core's other hardware thread going
// busy. A latency-bound loop (one dependent multiply chain, a pointer chase
// in the L2 cache) does not notice; a loop of independent operations does
// (0.63–0.67 ns per iteration quiet, 0.75–0.93 while a data-path bench on the
// same vCPU ran 1.5 × slower). So the meter runs such a loop.
//
// A small child process pinned to the CPU runs the loop for about 2 ms every
// PERIOD_MS (1 % of the CPU, taken from every setup alike) and keeps the ns
// per iteration of each run, in CPU time: the proxy it shares the CPU with
// preempts it during a load, and wall time would count that (a run then
// measured 2.5 ns in wall time and 1.17 in CPU time). mark() hands over what it kept since the last
// mark() and starts afresh: call it before and after a measured load.

import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

const PERIOD_MS = 200;
const ITERATIONS = 3_000_000;

// The child: plain JavaScript (no loader), six independent integer chains
// per iteration; a few untimed runs first so that the loop is optimised.
const CHILD = `
let sink = 0;
function probe(n) {
  let a = 1, b = 2, c = 3, d = 4, e = 5, f = 6;
  const t = process.cpuUsage();
  for (let i = 0; i < n; i++) { a = (a + i) | 0; b = (b ^ a) | 0; c = (c + (i << 1)) | 0; d = (d ^ c) | 0; e = (e + (i >> 1)) | 0; f = (f ^ e) | 0; }
  const used = process.cpuUsage(t);
  const ns = ((used.user + used.system) * 1000) / n;
  sink ^= a + b + c + d + e + f;
  return ns;
}
for (let k = 0; k < 20; k++) probe(${ITERATIONS / 10});
let kept = [];
setInterval(() => kept.push(probe(${ITERATIONS})), ${PERIOD_MS});
require("readline").createInterface({ input: process.stdin }).on("line", () => {
  process.stdout.write(JSON.stringify(kept) + "\\n");
  kept = [];
});
`;

export interface SpeedMeter {
  /** The loop's ns per iteration for each run since the last mark() (oldest first). */
  mark(): Promise<number[]>;
  stop(): void;
}

/** Start a meter on `cpu` (taskset); null when taskset is missing. */
export function startSpeedMeter(cpu: number): SpeedMeter | null {
  let child: ChildProcess;
  try {
    child = spawn("taskset", ["-c", String(cpu), process.execPath, "-e", CHILD], { stdio: ["pipe", "pipe", "ignore"] });
  } catch {
    return null;
  }
  const waiting: Array<(runs: number[]) => void> = [];
  createInterface({ input: child.stdout! }).on("line", (line) => waiting.shift()?.(JSON.parse(line) as number[]));
  let gone = false;
  child.on("error", () => { gone = true; });
  child.on("exit", () => {
    gone = true;
    for (const w of waiting.splice(0)) w([]);
  });
  return {
    mark() {
      if (gone) return Promise.resolve([]);
      return new Promise((resolve) => {
        waiting.push(resolve);
        child.stdin!.write("\n");
      });
    },
    stop() {
      gone = true;
      child.kill();
    },
  };
}

/**
 * The meter's quiet speed over a whole bench: the 2nd percentile of all its
 * runs (ns per iteration). Not the quickest run, which may be an outlier.
 */
export function quietSpeed(runs: readonly number[]): number {
  const sorted = [...runs].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) * 0.02)]!;
}

/**
 * The runs of a load that found the CPU disturbed: slower than `quiet` ×
 * `best` (quietSpeed of the whole bench), as a share of the load's runs
 * (null when the meter took no run during it).
 */
export function disturbedShare(runs: readonly number[], best: number, quiet: number): number | null {
  if (runs.length === 0) return null;
  let slow = 0;
  for (const r of runs) if (r > best * quiet) slow++;
  return slow / runs.length;
}
