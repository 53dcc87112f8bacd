// Where the RSS of an idle session goes, beyond the V8 heap. Starts one proxy
// child (as bench/heap-sessions.ts does), opens N bound c2s sessions through
// it after a warm-up, and prints the growth per session of: each V8 space
// (used and committed), external and ArrayBuffer memory as V8 counts them,
// and the resident memory of each kind of mapping in /proc/<pid>/smaps (the
// malloc arena "[heap]", anonymous mappings, which hold V8's pages,
// WebAssembly memory and large malloc blocks, and the rest), read after a
// full GC.
//
//   npx tsx bench/rss-sessions.ts [--sessions=N] [--target=xmpp-guard|guard-norules|pipe]
//                                 [--guard=auto|dist|build|src|<dir>] [--settle=MS] [--no-warmup]
//
// --no-warmup: no 200 sessions opened and closed first, so the growth
// includes the one-time costs, as in the memory suite (a fresh process).
// --settle: how long the sessions sit idle before the second reading (default
// 1000 ms, as the memory suite waits).

import { readFileSync } from "node:fs";
import { installCleanup, request, stopChild, type Message } from "./lib/children.js";
import { holdSessions, probeArg, releaseSessions, startProbe, type Probe, type ProbeArgs } from "./lib/session-probe.js";

interface Args extends ProbeArgs {
  settleMs: number;
  warmup: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sessions: 5000, target: "xmpp-guard", guard: "auto", settleMs: 1000, warmup: true };
  for (const a of argv) {
    if (probeArg(args, a)) continue;
    if (a.startsWith("--settle=")) args.settleMs = Number(a.slice(9));
    else if (a === "--no-warmup") args.warmup = false;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

/** Resident kB per kind of mapping. */
function smaps(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let kind = "";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const name = m[1]!;
      kind = name === "" ? "anonymous" : name.startsWith("[") ? name : "files";
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r) out.set(kind, (out.get(kind) ?? 0) + Number(r[1]));
  }
  return out;
}

interface Spaces extends Message {
  spaces: Array<{ name: string; used: number; committed: number }>;
  external: number;
  arrayBuffers: number;
}

async function main(): Promise<void> {
  installCleanup();
  const args = parseArgs(process.argv.slice(2));
  const started: Partial<Probe> = {};
  try {
    // BENCH_PROXY_FLAGS as in the suites (e.g. "--max-semi-space-size=4").
    const flags = ["--expose-gc", ...(process.env.BENCH_PROXY_FLAGS?.split(/\s+/).filter(Boolean) ?? [])];
    const probe = await startProbe(args, flags, started);
    const sample = async (): Promise<{ v8: Spaces; maps: Map<string, number> }> => {
      const v8 = await request<Spaces>(probe.proxy!, { type: "heapspaces" }, 60_000);
      return { v8, maps: smaps(probe.pid) };
    };
    if (args.warmup) {
      await holdSessions(probe, Math.min(200, args.sessions));
      await releaseSessions(probe);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const before = await sample();
    const n = await holdSessions(probe, args.sessions);
    await new Promise((r) => setTimeout(r, args.settleMs));
    const after = await sample();
    await releaseSessions(probe);
    const per = (bytes: number): string => (bytes / n).toFixed(0).padStart(8);
    console.log(`${args.target}: ${n} idle sessions; growth per session, bytes`);
    console.log(`${"used".padStart(8)} ${"committed".padStart(9)}  V8 space`);
    let used = 0;
    let committed = 0;
    for (const s of after.v8.spaces) {
      const b = before.v8.spaces.find((x) => x.name === s.name) ?? { used: 0, committed: 0 };
      used += s.used - b.used;
      committed += s.committed - b.committed;
      if (s.used !== b.used || s.committed !== b.committed) console.log(`${per(s.used - b.used)} ${per(s.committed - b.committed).padStart(9)}  ${s.name}`);
    }
    console.log(`${per(used)} ${per(committed).padStart(9)}  all spaces`);
    console.log(`${per(after.v8.external - before.v8.external)}            external (of which ArrayBuffers ${per(after.v8.arrayBuffers - before.v8.arrayBuffers).trim()})`);
    let rss = 0;
    console.log(`${"resident".padStart(8)}  mapping`);
    for (const [kind, kb] of after.maps) {
      const d = (kb - (before.maps.get(kind) ?? 0)) * 1024;
      rss += d;
      if (d !== 0) console.log(`${per(d)}  ${kind}`);
    }
    console.log(`${per(rss)}  RSS`);
  } finally {
    if (started.proxy) await stopChild(started.proxy);
    if (started.load) await stopChild(started.load);
  }
}

await main();
