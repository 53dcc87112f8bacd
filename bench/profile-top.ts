// Summarise a V8 .cpuprofile (from BENCH_CPU_PROF=1 or node --cpu-prof):
// the functions with the most self time, and the share of each.
//
//   tsx bench/profile-top.ts bench/results/profiles/<file>.cpuprofile [count]

import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { REPO_ROOT } from "./lib/guard-source.js";
import { renderTable } from "./lib/table.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, countArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: tsx bench/profile-top.ts <file.cpuprofile> [count]");
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  const frame = byId.get(id)!.callFrame;
  const where = frame.url ? `${relative(REPO_ROOT, frame.url.replace(/^file:\/\//, ""))}:${frame.lineNumber + 1}` : "";
  const key = `${frame.functionName || "(anonymous)"}\u0000${where}`;
  self.set(key, (self.get(key) ?? 0) + dt);
  total += dt;
});
// Idle time is not work; leave it out of the shares.
const idle = [...self].filter(([k]) => k.startsWith("(idle)")).reduce((s, [, v]) => s + v, 0);
const busy = total - idle;
const top = [...self].filter(([k]) => !k.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, Number(countArg ?? 25));
console.log(
  renderTable({
    title: `${file}: ${(busy / 1000).toFixed(0)} ms busy of ${(total / 1000).toFixed(0)} ms`,
    headers: ["self ms", "share", "function", "where"],
    rows: top.map(([k, v]) => {
      const [fn, where] = k.split("\u0000");
      return [(v / 1000).toFixed(0), `${((v / busy) * 100).toFixed(1)} %`, fn!, where!];
    }),
  }),
);
