// Where the V8 heap of an idle session goes. Starts one proxy child (as the
// memory suite does: xmpp-guard with the bench rules, guard-norules, or the
// pipe proxy) in front of the load process's sink, takes a heap snapshot,
// opens N bound c2s sessions through it (bench/load.ts "hold"; after a
// warm-up of 200 sessions opened and closed), takes a
// second snapshot, and prints the growth per session grouped by node type
// and constructor (self sizes, not retained sizes), biggest first.
//
//   npx tsx bench/heap-sessions.ts [--sessions=N] [--target=xmpp-guard|guard-norules|pipe]
//                                  [--guard=auto|dist|build|src|<dir>] [--top=N] [--keep]
//
// Snapshots go to a temporary directory, removed at the end unless --keep.
// The `native system / JSArrayBufferData` row is mostly the WebAssembly
// framer's memory growing, in steps that double it; of that only the framer
// states in use (208 bytes each, two per session) are resident (see
// bench/rss-sessions.ts for RSS).

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installCleanup, request, stopChild, type Message } from "./lib/children.js";
import { holdSessions, probeArg, releaseSessions, startProbe, type Probe, type ProbeArgs } from "./lib/session-probe.js";

interface Args extends ProbeArgs {
  top: number;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sessions: 1000, target: "xmpp-guard", guard: "auto", top: 30, keep: false };
  for (const a of argv) {
    if (probeArg(args, a)) continue;
    if (a.startsWith("--top=")) args.top = Number(a.slice(6));
    else if (a === "--keep") args.keep = true;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

interface Group {
  count: number;
  size: number;
}

/** Self size and count per "type name" (objects and closures by constructor/function name). */
function summarise(path: string): Map<string, Group> {
  const snap = JSON.parse(readFileSync(path, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const stride = fields.length;
  const fType = fields.indexOf("type");
  const fName = fields.indexOf("name");
  const fSize = fields.indexOf("self_size");
  const out = new Map<string, Group>();
  const nodes = snap.nodes;
  for (let i = 0; i < nodes.length; i += stride) {
    const type = types[nodes[i + fType]!]!;
    const name = snap.strings[nodes[i + fName]!]!;
    let key: string;
    if (type === "object" || type === "closure" || type === "native" || type === "hidden" || type === "array" || type === "object shape") {
      key = `${type} ${name.length > 60 ? name.slice(0, 57) + "…" : name}`;
    } else key = type;
    const g = out.get(key);
    if (g) {
      g.count++;
      g.size += nodes[i + fSize]!;
    } else out.set(key, { count: 1, size: nodes[i + fSize]! });
  }
  return out;
}

async function main(): Promise<void> {
  installCleanup();
  const args = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), "xmpp-guard-heap-"));
  const started: Partial<Probe> = {};
  try {
    const probe = await startProbe(args, ["--expose-gc"], started);
    const snap = async (name: string): Promise<string> =>
      (await request<Message & { path: string }>(probe.proxy!, { type: "heapsnapshot", path: join(dir, name) }, 300_000)).path;
    // Warm up first (and release): code compiled and shapes created on the
    // first sessions are a one-time cost, not a per-session one.
    await holdSessions(probe, Math.min(200, args.sessions));
    await releaseSessions(probe);
    await new Promise((r) => setTimeout(r, 1000));
    const before = await snap("before.heapsnapshot");
    const n = await holdSessions(probe, args.sessions);
    await new Promise((r) => setTimeout(r, 1000));
    const after = await snap("after.heapsnapshot");
    await releaseSessions(probe);
    const a = summarise(after);
    const b = summarise(before);
    const rows: Array<[string, number, number]> = [];
    let total = 0;
    for (const [key, g] of a) {
      const was = b.get(key) ?? { count: 0, size: 0 };
      const size = (g.size - was.size) / n;
      total += size;
      rows.push([key, (g.count - was.count) / n, size]);
    }
    rows.sort((x, y) => y[2] - x[2]);
    console.log(`${args.target}: ${n} idle sessions; heap self size growth per session: ${total.toFixed(0)} B`);
    console.log(`${"bytes/session".padStart(14)} ${"count/session".padStart(14)}  type and name`);
    for (const [key, count, size] of rows.slice(0, args.top)) {
      console.log(`${size.toFixed(1).padStart(14)} ${count.toFixed(2).padStart(14)}  ${key}`);
    }
    if (args.keep) console.log(`snapshots kept in ${dir}`);
  } finally {
    if (started.proxy) await stopChild(started.proxy);
    if (started.load) await stopChild(started.load);
    if (!args.keep) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
