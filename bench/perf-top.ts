// Summarise a Linux perf recording of one proxy (prosody-flood.ts with
// BENCH_PERF=1): every sample, kernel and native code included, which a V8
// .cpuprofile cannot see.
//
//   tsx bench/perf-top.ts bench/results/perf/<setup>-<mode>-r<round>.data [count]
//
// Three tables:
//   - by kind of code: kernel, libc, V8's garbage collector, its compilers,
//     its builtins, the rest of V8 and Node's C++, JavaScript (by area);
//   - by area of the nearest JavaScript frame on the stack: a system call, a
//     builtin or a GC step counts towards the JavaScript that caused it
//     (the kernel's write under Node's writeBuffer is net glue, a builtin
//     under the firewall is firewall); samples with no JavaScript frame at
//     all (the event loop's poll and read, background GC threads) are
//     "outside JavaScript";
//   - the symbols with the most self samples.
// JavaScript frames have names only when the proxy ran with
// BENCH_PROXY_FLAGS=--perf-basic-prof.

import { execFileSync } from "node:child_process";
import { renderTable } from "./lib/table.js";

const [file, countArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: tsx bench/perf-top.ts <file.data> [count]");
  process.exit(2);
}

/** Area of a JavaScript frame, from its name and script: first match wins. */
const AREAS: Array<[string, RegExp]> = [
  ["framer", /\/xml\/framer(-wasm|-chars)?\.|wasm-function/],
  ["head/view", /\/xml\/(head|stanza|namespaces|stanza-view)\./],
  ["firewall", /\/firewall\/|\/xmpp\/jid\./],
  ["pipeline and other stages", /\/policy\/|\/muc\/|\/registration\/|\/shaping\/|\/knowledge\//],
  ["session", /\/net\/(session|session-core|inbound-gate|upstream|peer|verdicts|session-timers)\.|\/stream\//],
  ["write batch", /\/net\/write-batch\./],
  ["metrics", /\/metrics\//],
  ["bench proxy (pipe)", /\/bench\/(proxies|lib)\//],
  ["net glue (Node streams, sockets)", /node:(net|internal\/streams|internal\/stream_base_commons|stream|events|buffer|internal\/buffer|internal\/process\/task_queues|internal\/timers|timers)/],
];

function areaOfJs(sym: string): string {
  for (const [name, re] of AREAS) if (re.test(sym)) return name;
  return "other JavaScript";
}

function kindOf(sym: string, dso: string): string {
  if (dso.includes("kernel")) return "kernel";
  if (/\/libc\.so|libc\.so/.test(dso)) return "libc";
  if (sym.startsWith("JS:") || /\[JIT\]|perf-\d+\.map/.test(dso)) return `JavaScript: ${areaOfJs(sym)}`;
  if (/Scaveng|Marking|Mark(er|Compact)|Sweep|Heap::|Evacuat|MemoryChunk|Compactor|MemoryAllocator|GCTracer|IncrementalMarking/.test(sym)) return "V8 garbage collector";
  if (/compiler::|Maglev|maglev|Turbofan|interpreter::|Parser|Scanner|Bytecode|Deserializer/.test(sym)) return "V8 compilers, parser";
  if (sym.startsWith("Builtins_")) return "V8 builtins";
  if (/^(node::|uv_|uv__)/.test(sym)) return "Node C++, libuv";
  if (dso.endsWith("/node") || dso === "node") return "V8 runtime, other native";
  return `other (${dso.split("/").pop()})`;
}

function isJsFrame(sym: string, dso: string): boolean {
  return sym.startsWith("JS:") || /\[JIT\]|perf-\d+\.map/.test(dso);
}

const text = execFileSync("perf", ["script", "-i", file, "-F", "ip,sym,dso"], { maxBuffer: 1 << 30, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
const kinds = new Map<string, number>();
const nearest = new Map<string, number>();
const symbols = new Map<string, number>();
let total = 0;
const add = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);

for (const block of text.split(/\n\s*\n/)) {
  const frames: Array<{ sym: string; dso: string }> = [];
  for (const line of block.split("\n")) {
    const m = /^\s*[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)\s*$/.exec(line);
    if (m) frames.push({ sym: m[1]!, dso: m[2]! });
  }
  if (frames.length === 0) continue;
  total++;
  const leaf = frames[0]!;
  add(kinds, kindOf(leaf.sym, leaf.dso));
  add(symbols, `${leaf.sym === "[unknown]" ? "?" : leaf.sym.slice(0, 90)} (${leaf.dso.split("/").pop()})`);
  const js = frames.find((f) => isJsFrame(f.sym, f.dso));
  add(nearest, js === undefined ? "outside JavaScript (event loop, GC threads)" : areaOfJs(js.sym));
}

const share = (v: number): string => `${((v / total) * 100).toFixed(1)} %`;
const table = (title: string, m: Map<string, number>, n = Infinity): string =>
  renderTable({
    title: `${file}: ${title} (${total} samples)`,
    headers: ["", "samples", "share"],
    rows: [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => [k, String(v), share(v)]),
  });
console.log(table("self samples by kind of code", kinds) + "\n");
console.log(table("samples by the nearest JavaScript frame", nearest) + "\n");
console.log(table("top symbols", symbols, Number(countArg ?? 30)));
