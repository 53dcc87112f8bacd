// The paths traffic can take from the load process to the sink: direct (the
// ceiling), a plain Node pipe() proxy, HAProxy in TCP mode, xmpp-guard with
// the shipped default rule set ("xmpp-guard") and without rules
// ("guard-norules"), for the TLS suite a Node TLS-terminating pipe proxy
// ("pipe-tls") and xmpp-guard on a c2s-tls listener ("guard-tls"), and for the
// WebSocket suite a plain WebSocket relay on the `ws` library ("ws-relay")
// and xmpp-guard on a websocket listener ("guard-ws").
// Each proxy is started once, alone in its own process, and stays up (idle)
// while the others are measured, so rounds can interleave the targets.

import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { forkTs, request, stopChild, waitFor, type Message } from "./children.js";
import { guardLabel, REPO_ROOT, type GuardSource } from "./guard-source.js";
import { procCpuMicros, procSyscalls } from "./system.js";
import { findHaproxy, haproxyVersion, startHaproxy } from "../proxies/haproxy.js";
import type { GuardOptions } from "../proxies/guard-proxy.js";

export type TargetName = "direct" | "pipe" | "haproxy" | "xmpp-guard" | "guard-b" | "guard-norules" | "pipe-tls" | "guard-tls" | "ws-relay" | "guard-ws";

export interface MemorySample {
  /** Resident set size from /proc/<pid>/status (bytes). */
  rss: number;
  /** V8 heap in use after a full GC (Node targets only). */
  heapUsed: number | null;
  /** Memory outside the V8 heap held by JS objects (Buffers etc.; Node only). */
  external: number | null;
  /**
   * Resident bytes of V8's young generation (new space; Node only). Its size
   * follows the recent allocation rate, not what the process holds: it grows
   * during a burst of connections and shrinks again after some idle seconds.
   */
  young?: number | null;
}

export interface Target {
  name: TargetName;
  /** Human description for the docs and the JSON. */
  detail: string;
  port: number;
  /** Clients must speak TLS from the first byte. */
  tls: boolean;
  /** Clients must speak XMPP over WebSocket (RFC 7395). */
  ws?: boolean;
  /** The proxy's process id (null for direct and the sink). */
  pid: number | null;
  /** CPU time of the proxy process in µs (null for direct). */
  cpuMicros(): Promise<number | null>;
  /** Read/write system calls of the proxy process so far (null for direct or without /proc). */
  syscalls(): { reads: number; writes: number } | null;
  /** Memory of the proxy process (null for direct). */
  memory(): Promise<MemorySample | null>;
  stop(): Promise<void>;
}

export interface Skipped {
  name: TargetName;
  reason: string;
}

export interface TargetSpec {
  names: TargetName[];
  guard: GuardSource;
  /** The rule file for "xmpp-guard" (see lib/rules.ts). */
  rules: string;
  /** HAProxy maxconn (default 4096). */
  haproxyMaxconn?: number;
  /** Certificate for the TLS targets. */
  tls?: { cert: string; key: string };
  /** "guard-b": a second xmpp-guard with the same rules, from this source, with these extra Node flags (an A/B in one run). */
  b?: { guard: GuardSource; flags: string[] };
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

/** VmRSS of a process in bytes, or null without /proc. */
export function procRss(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function memoryReader(pid: number, child: ChildProcess | null): () => Promise<MemorySample | null> {
  return async () => {
    if (child === null) {
      const rss = procRss(pid);
      return rss === null ? null : { rss, heapUsed: null, external: null, young: null };
    }
    // The child collects garbage first; read RSS after, from outside, like HAProxy's.
    const m = await request<Message & { rss: number; heapUsed: number; external: number; young?: number | null }>(child, { type: "memory" }, 30_000);
    return { rss: procRss(pid) ?? m.rss, heapUsed: m.heapUsed, external: m.external, young: m.young ?? null };
  };
}

/**
 * Extra Node flags for the proxy children, for digging into a result:
 * BENCH_CPU_PROF=1 adds --cpu-prof (each proxy writes a .cpuprofile into
 * bench/results/profiles/ when it exits; summarise one with
 * `tsx bench/profile-top.ts <file>` or open it in Chrome DevTools), and
 * BENCH_PROXY_FLAGS passes anything else (e.g. "--trace-deopt").
 * --expose-gc is always on, so memory figures are taken after a full GC.
 */
function proxyFlags(): string[] {
  const flags = ["--expose-gc", ...(process.env.BENCH_PROXY_FLAGS?.split(/\s+/).filter(Boolean) ?? [])];
  if (process.env.BENCH_CPU_PROF) flags.push("--cpu-prof", `--cpu-prof-dir=${join(REPO_ROOT, "bench", "results", "profiles")}`);
  return flags;
}

async function startNodeProxy(name: TargetName, file: string, args: string[], detail: string, tls = false, ws = false, extraFlags: string[] = []): Promise<Target> {
  const child = forkTs(new URL(file, import.meta.url), args, [...proxyFlags(), ...extraFlags]);
  let ready: Ready;
  try {
    ready = await waitFor<Ready>(child, "ready", 30_000);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return {
    name,
    detail,
    port: ready.port,
    tls,
    ws,
    pid: ready.pid,
    cpuMicros: cpuReader(ready.pid, child),
    syscalls: () => procSyscalls(ready.pid),
    memory: memoryReader(ready.pid, child),
    stop: () => stopChild(child),
  };
}

function guardArgs(sinkPort: number, spec: TargetSpec, options: GuardOptions): string[] {
  return [String(sinkPort), spec.guard, JSON.stringify(options)];
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message.replace(/^child \d+: /, "") : String(err);
}

/**
 * Start the targets named in `spec`, in that order, appending to `targets`
 * as each comes up (so the caller can stop the ones that started if a later
 * one fails). HAProxy and the TLS targets are skipped with a reason when
 * they cannot run; the others must start. Returns the skipped.
 */
export async function startTargets(sinkPort: number, spec: TargetSpec, targets: Target[]): Promise<Skipped[]> {
  const skipped: Skipped[] = [];
  const label = guardLabel(spec.guard);
  for (const name of spec.names) {
    switch (name) {
      case "direct":
        targets.push({ name, detail: "clients connect to the sink", port: sinkPort, tls: false, pid: null, cpuMicros: async () => null, syscalls: () => null, memory: async () => null, stop: async () => {} });
        break;
      case "pipe":
        targets.push(await startNodeProxy(name, "../proxies/pipe-proxy.ts", [String(sinkPort)], `Node ${process.version} net + stream.pipe()`));
        break;
      case "haproxy": {
        const bin = findHaproxy();
        if (bin === null) {
          skipped.push({ name, reason: "skipped: haproxy not installed (Debian: apt-get install haproxy)" });
          break;
        }
        try {
          const maxconn = spec.haproxyMaxconn ?? 4096;
          const h = await startHaproxy(bin, sinkPort, maxconn);
          targets.push({
            name,
            detail: `HAProxy ${haproxyVersion(bin)}, mode tcp, nbthread 1, maxconn ${maxconn}`,
            port: h.port,
            tls: false,
            pid: h.child.pid!,
            cpuMicros: cpuReader(h.child.pid!, null),
            syscalls: () => procSyscalls(h.child.pid!),
            memory: memoryReader(h.child.pid!, null),
            stop: () => h.stop(),
          });
        } catch (err) {
          skipped.push({ name, reason: `skipped: ${reason(err)}` });
        }
        break;
      }
      case "xmpp-guard":
        targets.push(
          await startNodeProxy(name, "../proxies/guard-proxy.ts", guardArgs(sinkPort, spec, { rules: [spec.rules] }), `xmpp-guard from ${label}, default config, rules/default.pfw (rates scaled, see lib/rules.ts)`),
        );
        break;
      case "guard-b": {
        const b = spec.b ?? { guard: spec.guard, flags: [] };
        const flags = b.flags.length > 0 ? ` with ${b.flags.join(" ")}` : "";
        targets.push(
          await startNodeProxy(name, "../proxies/guard-proxy.ts", guardArgs(sinkPort, { ...spec, guard: b.guard }, { rules: [spec.rules] }), `xmpp-guard from ${guardLabel(b.guard)}${flags}, default config, rules/default.pfw (the A/B's other side)`, false, false, b.flags),
        );
        break;
      }
      case "guard-norules":
        targets.push(await startNodeProxy(name, "../proxies/guard-proxy.ts", guardArgs(sinkPort, spec, {}), `xmpp-guard from ${label}, default config, no firewall rules`));
        break;
      case "pipe-tls":
      case "guard-tls": {
        if (!spec.tls) {
          skipped.push({ name, reason: "skipped: no certificate (openssl missing?)" });
          break;
        }
        try {
          targets.push(
            name === "pipe-tls"
              ? await startNodeProxy(name, "../proxies/tls-pipe-proxy.ts", [String(sinkPort), spec.tls.cert, spec.tls.key], `Node ${process.version} tls.createServer + stream.pipe()`, true)
              : await startNodeProxy(name, "../proxies/guard-proxy.ts", guardArgs(sinkPort, spec, { rules: [spec.rules], tls: spec.tls }), `xmpp-guard from ${label}, c2s-tls listener, rules/default.pfw`, true),
          );
        } catch (err) {
          skipped.push({ name, reason: `skipped: ${name === "guard-tls" ? "this xmpp-guard build has no usable c2s-tls listener with tls.certificates: " : ""}${reason(err)}` });
        }
        break;
      }
      case "ws-relay":
        targets.push(await startNodeProxy(name, "../proxies/ws-relay.ts", [String(sinkPort)], `Node ${process.version} ws WebSocketServer, a relay that only turns <open/>/<close/> into the c2s header/end tag`, false, true));
        break;
      case "guard-ws":
        try {
          targets.push(await startNodeProxy(name, "../proxies/guard-proxy.ts", guardArgs(sinkPort, spec, { rules: [spec.rules], websocket: true }), `xmpp-guard from ${label}, websocket listener (ws://), rules/default.pfw`, false, true));
        } catch (err) {
          skipped.push({ name, reason: `skipped: this xmpp-guard build has no websocket listener: ${reason(err)}` });
        }
        break;
    }
  }
  return skipped;
}

/** One xmpp-guard child with any options (the shaping suite's limits), in front of `upstreamPort`. */
export function startGuard(upstreamPort: number, guard: GuardSource, options: GuardOptions, detail: string): Promise<Target> {
  return startNodeProxy("xmpp-guard", "../proxies/guard-proxy.ts", [String(upstreamPort), guard, JSON.stringify(options)], detail);
}
