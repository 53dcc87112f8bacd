// Memory suite: resident memory per idle plaintext session. For each proxy,
// a fresh process is started, its RSS read (after a full GC for the Node
// proxies), then a separate clients process opens N c2s sessions through it
// (stream header, SASL PLAIN, restart, bind: the state a real idle client
// sits in) and keeps them open without traffic; after a settle pause the RSS
// is read again. Per session = (RSS after − RSS before) / N. The sink (the
// load process) holds the N upstream ends.
//
// Two pairs of readings: after `settleMs` (1 s), and after the process has
// been idle for `idleMs` (15 s). The first is the suite's old figure: V8's
// young generation, grown by the burst of connections, is still grown then.
// V8 shrinks it by itself once allocation has stayed low for some seconds
// (its memory reducer, ~8 s after the last full GC), so the idle pair reads
// the process as it sits with N idle sessions, before and after (README).
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
  /** Idle time before the second pair of readings (V8 has shrunk its young generation by then). */
  idleMs: number;
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
  /** The same readings after `idleMs` of idleness, before and after opening the sessions. */
  beforeIdle?: MemorySample | null;
  afterIdle?: MemorySample | null;
  /** Bytes of RSS per session between the idle readings: the suite's figure for the goal. */
  rssIdlePerSession?: number | null;
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
        await sleep(opts.idleMs);
        const beforeIdle = await target.memory();
        const held = await request<Message & { opened: number; ms: number }>(
          clients,
          { type: "hold", port: target.port, conns: opts.sessions, concurrency: opts.concurrency },
          120_000 + opts.sessions * 20,
        );
        await sleep(opts.settleMs);
        const after = await target.memory();
        await sleep(opts.idleMs);
        const afterIdle = await target.memory();
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
          beforeIdle,
          afterIdle,
          rssIdlePerSession: beforeIdle != null && afterIdle != null ? (afterIdle.rss - beforeIdle.rss) / held.opened : null,
        };
        figures.push(fig);
        const idle = fig.rssIdlePerSession == null ? "–" : num(fig.rssIdlePerSession / 1024, 2);
        progress(`  memory, ${name}: ${idle} KiB RSS per session when idle (${num(fig.rssPerSession / 1024, 2)} after ${opts.settleMs} ms) over ${num(held.opened)} sessions (opened in ${num(held.ms / 1000, 1)} s)`);
      } finally {
        for (const t of started) await t.stop();
      }
    }
  } finally {
    await stopChild(clients);
  }
  return { figures, skipped };
}

/** `f` against `base`, both idle (or both at 1 s when an idle reading is missing). */
function ratio(f: MemoryFigure, base: MemoryFigure | undefined): string {
  if (base === undefined) return "–";
  const idle = f.rssIdlePerSession != null && base.rssIdlePerSession != null;
  return `${(idle ? f.rssIdlePerSession! / base.rssIdlePerSession! : f.rssPerSession / base.rssPerSession).toFixed(2)} ×`;
}

export function memoryTable(figures: MemoryFigure[], opts: MemoryOptions, notes: string[]): Table {
  const of = (name: TargetName): MemoryFigure | undefined => figures.find((f) => f.target === name);
  const pipe = of("pipe");
  const haproxy = of("haproxy");
  const kib = (bytes: number): string => num(bytes / 1024, 2);
  return {
    title: "Memory per idle plaintext session (goal: xmpp-guard ≤ 6 KB)",
    headers: ["target", "sessions", "RSS before MiB", "RSS after MiB", "KiB/session idle", `KiB/session at ${opts.settleMs / 1000} s`, "heap KiB/session", "less young gen KiB", "vs pipe", "vs haproxy"],
    rows: figures.map((f) => [
      f.target,
      num(f.sessions),
      num((f.beforeIdle ?? f.before).rss / 2 ** 20, 1),
      num((f.afterIdle ?? f.after).rss / 2 ** 20, 1),
      f.rssIdlePerSession == null ? "–" : kib(f.rssIdlePerSession),
      kib(f.rssPerSession),
      f.heapPerSession === null ? "–" : kib(f.heapPerSession),
      f.rssLessYoungPerSession == null ? "–" : kib(f.rssLessYoungPerSession),
      ratio(f, pipe),
      ratio(f, haproxy),
    ]),
    notes: [
      `Each proxy fresh in its own process; RSS from /proc/<pid>/status, after a full GC for Node. \`idle\`: both readings after ${opts.idleMs / 1000} s without traffic ` +
        `(V8 has shrunk the young generation the connection burst grew); \`at ${opts.settleMs / 1000} s\`: ${opts.settleMs} ms settle before each reading (the suite's figure before). Ratios use the idle figures. ` +
        "Sessions are bound c2s streams (header, SASL PLAIN, bind) with no traffic. Kernel socket buffers are not in RSS. KiB = 1024 B. " +
        "`less young gen`: KiB/session without the change in V8's new space between the readings (it grows while the sessions are opened and shrinks after some idle seconds; not per session).",
      ...notes,
    ],
  };
}
