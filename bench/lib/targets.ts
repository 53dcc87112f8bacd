// The paths traffic can take from the load process to the sink: direct (the
// ceiling), a plain Node pipe() proxy, HAProxy in TCP mode, and xmpp-guard.
// Each proxy is started once, alone in its own process, and stays up (idle)
// while the others are measured, so rounds can interleave the targets.

import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { forkTs, request, stopChild, waitFor, type Message } from "./children.js";
import { guardLabel, REPO_ROOT, type GuardSource } from "./guard-source.js";
import { procCpuMicros } from "./system.js";
import { findHaproxy, haproxyVersion, startHaproxy } from "../proxies/haproxy.js";

export type TargetName = "direct" | "pipe" | "haproxy" | "xmpp-guard";

export interface Target {
  name: TargetName;
  /** Human description for the docs and the JSON. */
  detail: string;
  port: number;
  /** CPU time of the proxy process in µs (null for direct). */
  cpuMicros(): Promise<number | null>;
  stop(): Promise<void>;
}

export interface Skipped {
  name: TargetName;
  reason: string;
}

interface Ready extends Message {
  port: number;
  pid: number;
}

/** Read /proc now (synchronously); fall back to asking the Node child. */
function cpuReader(pid: number, child: ChildProcess | null): () => Promise<number | null> {
  return () => {
    const micros = procCpuMicros(pid);
    if (micros !== null || child === null) return Promise.resolve(micros);
    return request<Message & { micros: number }>(child, { type: "cpu" }, 5000).then((m) => m.micros);
  };
}

/**
 * Extra Node flags for the proxy children, for digging into a result:
 * BENCH_CPU_PROF=1 adds --cpu-prof (each proxy writes a .cpuprofile into
 * bench/results/profiles/ when it exits; summarise one with
 * `tsx bench/profile-top.ts <file>` or open it in Chrome DevTools), and
 * BENCH_PROXY_FLAGS passes anything else (e.g. "--trace-deopt").
 */
function profileFlags(): string[] {
  const flags = process.env.BENCH_PROXY_FLAGS?.split(/\s+/).filter(Boolean) ?? [];
  if (process.env.BENCH_CPU_PROF) flags.push("--cpu-prof", `--cpu-prof-dir=${join(REPO_ROOT, "bench", "results", "profiles")}`);
  return flags;
}

async function startNodeProxy(name: "pipe" | "xmpp-guard", file: string, args: string[], detail: string): Promise<Target> {
  const child = forkTs(new URL(file, import.meta.url), args, profileFlags());
  const ready = await waitFor<Ready>(child, "ready", 30_000);
  return { name, detail, port: ready.port, cpuMicros: cpuReader(ready.pid, child), stop: () => stopChild(child) };
}

/**
 * Start every target, appending to `targets` as each comes up (so the caller
 * can stop the ones that started if a later one fails). Returns the skipped.
 */
export async function startTargets(sinkPort: number, guard: GuardSource, targets: Target[]): Promise<Skipped[]> {
  const skipped: Skipped[] = [];
  targets.push({ name: "direct", detail: "clients connect to the sink", port: sinkPort, cpuMicros: () => Promise.resolve(null), stop: async () => {} });
  targets.push(await startNodeProxy("pipe", "../proxies/pipe-proxy.ts", [String(sinkPort)], `Node ${process.version} net + stream.pipe()`));
  const bin = findHaproxy();
  if (bin === null) {
    skipped.push({ name: "haproxy", reason: "skipped: haproxy not installed" });
  } else {
    try {
      const h = await startHaproxy(bin, sinkPort);
      targets.push({
        name: "haproxy",
        detail: `HAProxy ${haproxyVersion(bin)}, mode tcp, nbthread 1`,
        port: h.port,
        cpuMicros: cpuReader(h.child.pid!, null),
        stop: () => h.stop(),
      });
    } catch (err) {
      skipped.push({ name: "haproxy", reason: `skipped: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  targets.push(await startNodeProxy("xmpp-guard", "../proxies/guard-proxy.ts", [String(sinkPort), guard], `xmpp-guard from ${guardLabel(guard)}, default limits, no policy stages`));
  return skipped;
}
