// What bench/heap-sessions.ts and bench/rss-sessions.ts share: their common
// arguments, one proxy child (xmpp-guard with the bench rules,
// guard-norules, or the pipe proxy) in front of the load process's sink, and
// idle sessions held through it.

import type { ChildProcess } from "node:child_process";
import { forkTs, request, waitFor, type Message } from "./children.js";
import { chooseGuardSource, guardSourceArg, type GuardSource } from "./guard-source.js";
import { benchRules } from "./rules.js";

export interface ProbeArgs {
  sessions: number;
  target: "xmpp-guard" | "guard-norules" | "pipe";
  guard: "auto" | GuardSource;
}

/** Reads --sessions, --target or --guard into `args`; false for any other argument. */
export function probeArg(args: ProbeArgs, a: string): boolean {
  if (a.startsWith("--sessions=")) args.sessions = Number(a.slice(11));
  else if (a.startsWith("--target=")) args.target = a.slice(9) as ProbeArgs["target"];
  else if (a.startsWith("--guard=")) args.guard = a.slice(8) === "auto" ? "auto" : guardSourceArg(a.slice(8));
  else return false;
  return true;
}

export interface Probe {
  load: ChildProcess;
  /** null until the proxy child was forked. */
  proxy: ChildProcess | null;
  /** The proxy's listening port and process id. */
  port: number;
  pid: number;
}

/**
 * Forks the load process, then the proxy child with `flags` (Node options);
 * `probe.proxy` is set as soon as the child exists, so a caller's cleanup
 * can stop it even when it never gets ready.
 */
export async function startProbe(args: ProbeArgs, flags: string[], probe: Partial<Probe>): Promise<Probe> {
  const load = forkTs(new URL("../load.ts", import.meta.url));
  probe.load = load;
  const ready = await waitFor<Message & { port: number }>(load, "ready", 30_000);
  let proxy: ChildProcess;
  if (args.target === "pipe") {
    proxy = forkTs(new URL("../proxies/pipe-proxy.ts", import.meta.url), [String(ready.port)], flags);
  } else {
    const guard = chooseGuardSource(args.guard);
    const options = args.target === "xmpp-guard" ? { rules: [benchRules().path] } : {};
    proxy = forkTs(new URL("../proxies/guard-proxy.ts", import.meta.url), [String(ready.port), guard.source, JSON.stringify(options)], flags);
  }
  probe.proxy = proxy;
  const p = await waitFor<Message & { port: number; pid: number }>(proxy, "ready", 30_000);
  return { load, proxy, port: p.port, pid: p.pid };
}

/** Opens `n` bound c2s sessions through the proxy and leaves them idle; the number opened. */
export async function holdSessions(probe: Probe, n: number): Promise<number> {
  const held = await request<Message & { opened: number }>(probe.load, { type: "hold", port: probe.port, conns: n, concurrency: 64 }, 120_000 + n * 20);
  return held.opened;
}

/** Closes every session held. */
export async function releaseSessions(probe: Probe): Promise<void> {
  await request(probe.load, { type: "release" }, 60_000);
}
