// Where a run happened (Node, CPU, cores, commit) and how much CPU a process
// used. Process CPU comes from /proc (each thread's scheduler run time) so that Node
// proxies and HAProxy are measured the same way; where /proc is missing the
// Node children answer over IPC with process.cpuUsage() instead.

import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { REPO_ROOT } from "./guard-source.js";

export interface Environment {
  node: string;
  v8: string;
  platform: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  commit: string | null;
  dirty: boolean | null;
}

function git(args: string[]): string | null {
  try {
    return execFileSync("git", args, { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

export function environment(): Environment {
  const cpus = os.cpus();
  const commit = git(["rev-parse", "--short", "HEAD"]);
  const status = commit === null ? null : git(["status", "--porcelain", "--untracked-files=no"]);
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    commit,
    dirty: status === null ? null : status.length > 0,
  };
}

let clockTicks: number | null = null;

function ticksPerSecond(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * CPU time of a process in microseconds, or null without /proc: the
 * scheduler's run time of each of its threads (/proc/<pid>/task/<tid>/schedstat,
 * nanoseconds), or where that is missing utime + stime from /proc/<pid>/stat,
 * which counts in clock ticks (10 ms: too coarse for a figure per message
 * over a few hundred milliseconds). A thread that exits between two
 * readings takes its time with it; the proxies measured keep theirs.
 */
export function procCpuMicros(pid: number): number | null {
  return schedCpuMicros(pid) ?? statCpuMicros(pid);
}

function schedCpuMicros(pid: number): number | null {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  let ns = 0;
  for (const tid of tids) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "latin1").split(" ", 1)[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return Number.isFinite(ns) && ns > 0 ? ns / 1000 : null;
}

function statCpuMicros(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return null;
  }
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? (ticks * 1e6) / ticksPerSecond() : null;
}

/** Read and write system calls a process has made so far (/proc/<pid>/io syscr/syscw), or null without /proc. */
export function procSyscalls(pid: number): { reads: number; writes: number } | null {
  try {
    const io = readFileSync(`/proc/${pid}/io`, "latin1");
    const r = /^syscr:\s+(\d+)/m.exec(io);
    const w = /^syscw:\s+(\d+)/m.exec(io);
    return r && w ? { reads: Number(r[1]), writes: Number(w[1]) } : null;
  } catch {
    return null;
  }
}

/** This process's open-file limits (soft, hard), from /proc/self/limits; null without /proc. */
export function fdLimits(): { soft: number; hard: number } | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "latin1"));
    if (!m) return null;
    const n = (s: string): number => (s === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(s));
    return { soft: n(m[1]!), hard: n(m[2]!) };
  } catch {
    return null;
  }
}

/**
 * Raise this process's open-file limit to `wanted` (children inherit it),
 * with util-linux prlimit, as `ulimit -n` would in a shell. The hard limit
 * can only go up with privilege (CAP_SYS_RESOURCE), so when that is refused
 * the soft limit is raised to the hard one. Returns the soft limit now in force.
 */
export function raiseFdLimit(wanted: number): number | null {
  const before = fdLimits();
  if (before === null || before.soft >= wanted) return before?.soft ?? null;
  const attempts = [`${wanted}:${Math.max(wanted, before.hard)}`, `${Math.min(wanted, before.hard)}:${before.hard}`];
  for (const value of attempts) {
    try {
      execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${value}`], { stdio: "ignore" });
      break;
    } catch {
      // not permitted or no prlimit: try the next, smaller request
    }
  }
  return fdLimits()?.soft ?? null;
}
