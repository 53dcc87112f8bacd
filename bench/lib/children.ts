// Child processes for the benchmarks: fork TypeScript children through the
// tsx loader, talk to them over IPC with request/reply, and make sure every
// child dies with the run. All children are tracked in one set; killAll()
// runs from run.ts's finally block and from exit/signal handlers.

import { fork, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const live = new Set<ChildProcess>();
const cleanups = new Set<() => void>();

/** A synchronous cleanup (temp files) to run on every way out; returns its remover. */
export function onCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/** Fork a bench/ TypeScript module as its own Node process (tsx loader, IPC channel). */
export function forkTs(moduleUrl: URL, args: string[] = [], nodeFlags: string[] = []): ChildProcess {
  const child = fork(fileURLToPath(moduleUrl), args, {
    execArgv: ["--import", "tsx", ...nodeFlags],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    serialization: "advanced",
  });
  return track(child);
}

/** Spawn a non-Node program (HAProxy); stdout is dropped, stderr kept for errors. */
export function spawnTracked(cmd: string, args: string[]): ChildProcess {
  return track(spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] }));
}

export interface Message {
  type: string;
  id?: number;
  [key: string]: unknown;
}

let nextId = 1;

/**
 * Send `msg` and wait for the child's reply carrying the same id (or a
 * `{type: "error"}`). Rejects if the child exits or `timeoutMs` passes.
 */
export function request<T extends Message>(child: ChildProcess, msg: Message, timeoutMs: number, onOther?: (m: Message) => void): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`child ${child.pid}: no reply to ${msg.type} within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (m: Message): void => {
      if (m.id !== id) return;
      if (m.type === "error") finish(new Error(`child ${child.pid}: ${String(m.message)}`));
      else if (m.type === msg.type + ":done") finish(null, m as T);
      else onOther?.(m);
    };
    const onExit = (code: number | null, signal: string | null): void =>
      finish(new Error(`child ${child.pid} exited (${signal ?? code}) during ${msg.type}`));
    function finish(err: Error | null, value?: T): void {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve(value!);
    }
    child.on("message", onMessage);
    child.once("exit", onExit);
    child.send({ ...msg, id });
  });
}

/** Wait for a child's first message of `type` (its "ready" announcement). */
export async function waitFor<T extends Message>(child: ChildProcess, type: string, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`child ${child.pid}: no ${type} within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (m: Message): void => {
      if (m.type === type) finish(null, m as T);
      else if (m.type === "error") finish(new Error(`child ${child.pid}: ${String(m.message)}`));
    };
    const onExit = (code: number | null, signal: string | null): void =>
      finish(new Error(`child ${child.pid} exited (${signal ?? code}) before ${type}`));
    function finish(err: Error | null, value?: T): void {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve(value!);
    }
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

/** Stop one child: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Stop every child still alive (used from finally blocks). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => stopChild(c)));
}

/** Last resort on process exit: synchronous SIGKILL to whatever is left, then the cleanups. */
export function killAllNow(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  }
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      // best effort on the way out
    }
  }
  cleanups.clear();
}

/**
 * Kill children on every way out: normal exit, Ctrl-C, SIGTERM, crash.
 * Signals re-raise after cleanup so the exit status stays honest.
 */
export function installCleanup(): void {
  process.once("exit", killAllNow);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      killAllNow();
      process.kill(process.pid, sig);
    });
  }
}

/**
 * For children: exit when the parent goes away (IPC closed), so a crashed
 * orchestrator never leaves a proxy behind.
 */
export function exitWithParent(cleanup?: () => void): void {
  process.on("disconnect", () => {
    try {
      cleanup?.();
    } finally {
      process.exit(0);
    }
  });
}
