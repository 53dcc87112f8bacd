// Memory suite: resident memory per idle plaintext session. For each proxy,
// a fresh process is started, its RSS read (after a full GC for the Node
// proxies), then a separate clients process opens N c2s sessions through it
// (stream header, SASL PLAIN, restart, bind: the state a real idle client
// sits in) and keeps them open without traffic; after a settle pause the RSS
// is read again. Per session = (RSS after − RSS before) / N. The sink (the
// load process) holds the N upstream ends.
//
// File descriptors: the proxy needs two per session (client + upstream).
// run.ts raises the open-file limit first (prlimit, as `ulimit -n` would);
// where the hard limit forbids N sessions, N is lowered to what fits and the
// table says so.

import type { ChildProcess } from "node:child_process";
import { forkTs, request, stopChild, waitFor, type Message } from "./lib/children.js";
import { num, type Table } from "./lib/table.js";
import { startTargets, type MemorySample, type Skipped, type TargetName, type TargetSpec, type Target } from "./lib/targets.js";

export interface MemoryOptions {
  sessions: number;
  /** Handshakes in flight at once while opening. */
  concurrency: number;
  settleMs: number;
}

export interface MemoryFigure {
  target: TargetName;
  sessions: number;
  openMs: number;
  before: MemorySample;
  after: MemorySample;
  /** Bytes of RSS per session. */
  rssPerSession: number;
  /** Bytes of V8 heap per session (Node only). */
  heapPerSession: number | null;
  /**
   * Bytes of RSS per session less the young generation's growth between the
   * readings (Node only): what the sessions hold, without the new space a
   * burst of connections left grown (docs in bench/README.md).
   */
  rssLessYoungPerSession?: number | null;
}

const PROXIES: TargetName[] = ["pipe", "haproxy", "xmpp-guard"];
/** File descriptors a process needs besides the sessions' (stdio, IPC, listeners, loader). */
const FD_RESERVE = 64;

/** How many sessions fit under an open-file limit (two descriptors each in the proxy). */
export function sessionsThatFit(wanted: number, fdLimit: number | null): number {
  if (fdLimit === null) return wanted;
  return Math.max(0, Math.min(wanted, Math.floor((fdLimit - FD_RESERVE) / 2)));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runMemorySuite(
  sinkPort: number,
  spec: Omit<TargetSpec, "names">,
  opts: MemoryOptions,
  progress: (line: string) => void,
): Promise<{ figures: MemoryFigure[]; skipped: Skipped[] }> {
  const figures: MemoryFigure[] = [];
  const skipped: Skipped[] = [];
  const clients: ChildProcess = forkTs(new URL("./load.ts", import.meta.url));
  try {
    await waitFor(clients, "ready", 30_000);
    for (const name of PROXIES) {
      const started: Target[] = [];
      skipped.push(...(await startTargets(sinkPort, { ...spec, names: [name], haproxyMaxconn: opts.sessions + 16 }, started)));
      const target = started[0];
      if (!target) continue;
      try {
        await sleep(opts.settleMs);
        const before = await target.memory();
        const held = await request<Message & { opened: number; ms: number }>(
          clients,
          { type: "hold", port: target.port, conns: opts.sessions, concurrency: opts.concurrency },
          120_000 + opts.sessions * 20,
        );
        await sleep(opts.settleMs);
        const after = await target.memory();
        await request(clients, { type: "release" }, 60_000);
        if (before === null || after === null) {
          skipped.push({ name, reason: "skipped: cannot read its memory (no /proc?)" });
          continue;
        }
        const fig: MemoryFigure = {
          target: name,
          sessions: held.opened,
          openMs: held.ms,
          before,
          after,
          rssPerSession: (after.rss - before.rss) / held.opened,
          heapPerSession: before.heapUsed !== null && after.heapUsed !== null ? (after.heapUsed - before.heapUsed) / held.opened : null,
          rssLessYoungPerSession:
            before.young != null && after.young != null ? (after.rss - before.rss - (after.young - before.young)) / held.opened : null,
        };
        figures.push(fig);
        progress(`  memory, ${name}: ${num(fig.rssPerSession / 1024, 2)} KiB RSS per session over ${num(held.opened)} sessions (opened in ${num(held.ms / 1000, 1)} s)`);
      } finally {
        for (const t of started) await t.stop();
      }
    }
  } finally {
    await stopChild(clients);
  }
  return { figures, skipped };
}

export function memoryTable(figures: MemoryFigure[], opts: MemoryOptions, notes: string[]): Table {
  const of = (name: TargetName): MemoryFigure | undefined => figures.find((f) => f.target === name);
  const pipe = of("pipe");
  const haproxy = of("haproxy");
  const kib = (bytes: number): string => num(bytes / 1024, 2);
  return {
    title: "Memory per idle plaintext session (goal: xmpp-guard ≤ 6 KB)",
    headers: ["target", "sessions", "RSS before MiB", "RSS after MiB", "KiB/session", "heap KiB/session", "less young gen KiB", "vs pipe", "vs haproxy"],
    rows: figures.map((f) => [
      f.target,
      num(f.sessions),
      num(f.before.rss / 2 ** 20, 1),
      num(f.after.rss / 2 ** 20, 1),
      kib(f.rssPerSession),
      f.heapPerSession === null ? "–" : kib(f.heapPerSession),
      f.rssLessYoungPerSession == null ? "–" : kib(f.rssLessYoungPerSession),
      pipe ? `${(f.rssPerSession / pipe.rssPerSession).toFixed(2)} ×` : "–",
      haproxy ? `${(f.rssPerSession / haproxy.rssPerSession).toFixed(2)} ×` : "–",
    ]),
    notes: [
      `Each proxy fresh in its own process; RSS from /proc/<pid>/status, after a full GC for Node; ${opts.settleMs} ms settle before each reading. ` +
        "Sessions are bound c2s streams (header, SASL PLAIN, bind) with no traffic. Kernel socket buffers are not in RSS. KiB = 1024 B. " +
        "`less young gen`: KiB/session without the change in V8's new space between the readings (it grows while the sessions are opened and shrinks after some idle seconds; not per session).",
      ...notes,
    ],
  };
}
