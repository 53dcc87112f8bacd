// What every Node proxy child does besides proxying: announce its port,
// answer CPU-time requests (process.cpuUsage, user + system) and memory
// requests (a full GC first when the child runs with --expose-gc, then
// process.memoryUsage()), V8 space statistics (bench/rss-sessions.ts) and heap
// snapshot requests (bench/heap-sessions.ts),
// and exit when the orchestrator goes away.

import { connect, type Socket } from "node:net";
import { getHeapSpaceStatistics, writeHeapSnapshot } from "node:v8";
import type { Message } from "./children.js";
import { exitWithParent } from "./children.js";

export function serveProxyChild(port: number, detail: Record<string, unknown>, onExit?: () => void): void {
  const send = (m: Message): void => {
    process.send?.(m);
  };
  process.on("message", (m: Message) => {
    if (m.type === "cpu") {
      const u = process.cpuUsage();
      send({ type: "cpu:done", id: m.id, micros: u.user + u.system });
    } else if (m.type === "memory") {
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      gc?.();
      const mem = process.memoryUsage();
      const young = getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.physical_space_size ?? null;
      send({ type: "memory:done", id: m.id, gc: gc !== undefined, rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, arrayBuffers: mem.arrayBuffers, young });
    } else if (m.type === "heapspaces") {
      // bench/rss-sessions.ts: V8's spaces (used and committed) after a full GC.
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      gc?.();
      const spaces = getHeapSpaceStatistics().map((s) => ({ name: s.space_name, used: s.space_used_size, committed: s.physical_space_size }));
      const mem = process.memoryUsage();
      send({ type: "heapspaces:done", id: m.id, spaces, external: mem.external, arrayBuffers: mem.arrayBuffers });
    } else if (m.type === "heapsnapshot") {
      // bench/heap-sessions.ts: a V8 heap snapshot written to m.path.
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      gc?.();
      send({ type: "heapsnapshot:done", id: m.id, path: writeHeapSnapshot(String(m.path)) });
    }
  });
  process.on("SIGTERM", () => {
    onExit?.();
    process.exit(0);
  });
  exitWithParent(onExit);
  send({ type: "ready", port, pid: process.pid, ...detail });
}

/** The upstream port passed as the first argument. */
export function upstreamPortArg(): number {
  const port = Number(process.argv[2]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`usage: <upstream-port>, got ${process.argv[2]}`);
  return port;
}

/**
 * The pipe baselines' whole proxy: one plaintext upstream connection per
 * client, bytes moved with stream.pipe() both ways, Nagle off on both sides
 * (as xmpp-guard does), either side's error tears down both. Both sockets are
 * kept in `sockets` while open, for teardown on exit.
 */
export function pipeToUpstream(client: Socket, upstreamPort: number, sockets: Set<Socket>): void {
  const upstream = connect({ host: "127.0.0.1", port: upstreamPort });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  sockets.add(client).add(upstream);
  const teardown = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", teardown).on("close", () => sockets.delete(client));
  upstream.on("error", teardown).on("close", () => sockets.delete(upstream));
  client.pipe(upstream);
  upstream.pipe(client);
}
