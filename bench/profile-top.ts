// Summarise a V8 .cpuprofile (from BENCH_CPU_PROF=1 or node --cpu-prof):
// the functions with the most self time, and the share of each.
//
//   tsx bench/profile-top.ts bench/results/profiles/<file>.cpuprofile [count]
//   tsx bench/profile-top.ts --by=module <file>.cpuprofile
//
// --by=module sums self time by area of xmpp-guard instead (framer, head and
// view, firewall, pipeline, session, net glue, GC, …; see MODULES below).
// --after=S leaves out the first S seconds of the profile (the process's
// start-up: module loading, compiling, the first GCs of a growing heap), so
// that what is left is the steady state of the load that followed.

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

const byModule = process.argv.includes("--by=module");
const afterArg = process.argv.find((a) => a.startsWith("--after="));
const skipMicros = afterArg === undefined ? 0 : Number(afterArg.slice("--after=".length)) * 1e6;
const [file, countArg] = process.argv.slice(2).filter((a) => !a.startsWith("--"));
if (!file) {
  console.error("usage: tsx bench/profile-top.ts <file.cpuprofile> [count]");
  process.exit(2);
}
/** Area of a sample, from its function and script: first match wins. */
const MODULES: Array<[string, RegExp]> = [
  ["GC", /^\(garbage collector\)/],
  ["start-up (module loading, compiling)", /node:internal\/(modules|bootstrap|source_map|deps\/cjs-module-lexer)|\/node_modules\/|\/(state|config)\//],
  ["framer", /\/xml\/framer(-wasm|-chars)?\.|^wasm-function/],
  ["head/view", /\/xml\/(head|stanza|namespaces|stanza-view)\./],
  ["firewall", /\/firewall\/|\/xmpp\/jid\./],
  ["pipeline and other stages", /\/policy\/|\/muc\/|\/registration\/|\/shaping\//],
  ["session", /\/net\/(session|session-core|inbound-gate|upstream|peer|verdicts|session-timers)\.|\/stream\//],
  ["write batch", /\/net\/write-batch\./],
  ["metrics", /\/metrics\//],
  ["net glue (Node streams, syscalls)", /^(writeBuffer|writev|writeUtf8String|readStart|readStop|shutdown)\u0000|node:(net|internal\/streams|internal\/stream_base_commons|stream|events|buffer|internal\/buffer)/],
  ["(program: V8/libuv outside JS)", /^\(program\)/],
];
function moduleOf(key: string): string {
  for (const [name, re] of MODULES) if (re.test(key)) return name;
  return "other";
}

const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let total = 0;
let elapsed = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  elapsed += dt;
  if (elapsed < skipMicros) return;
  const frame = byId.get(id)!.callFrame;
  const where = frame.url ? `${relative(REPO_ROOT, frame.url.replace(/^file:\/\//, ""))}:${frame.lineNumber + 1}` : "";
  const key = `${frame.functionName || "(anonymous)"}\u0000${where}`;
  self.set(key, (self.get(key) ?? 0) + dt);
  total += dt;
});
// Idle time is not work; leave it out of the shares.
const idle = [...self].filter(([k]) => k.startsWith("(idle)")).reduce((s, [, v]) => s + v, 0);
const busy = total - idle;
if (byModule) {
  const areas = new Map<string, number>();
  for (const [k, v] of self) if (!k.startsWith("(idle)")) areas.set(moduleOf(k), (areas.get(moduleOf(k)) ?? 0) + v);
  console.log(
    renderTable({
      title: `${file}: ${(busy / 1000).toFixed(0)} ms busy, self time by area`,
      headers: ["area", "self ms", "share"],
      rows: [...areas].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, (v / 1000).toFixed(0), `${((v / busy) * 100).toFixed(1)} %`]),
    }),
  );
  process.exit(0);
}
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
