// Latency suite: one connection, one stanza in flight, echoed by the sink,
// at a fixed moderate rate (far below saturation). Reports the round-trip
// percentiles per target and what each proxy adds over direct at the same
// percentile. Both directions cross the proxy, so "added" is two hops.
// Timers pace the sends, so the achieved rate can be a little below target.

import type { ChildProcess } from "node:child_process";
import { request, type Message } from "./lib/children.js";
import { num, type Table } from "./lib/table.js";
import type { Target, TargetName } from "./lib/targets.js";

export interface LatencyOptions {
  rate: number;
  warmupMs: number;
  durationMs: number;
}

export interface LatencyFigure {
  target: TargetName;
  count: number;
  rate: number;
  /** Round-trip percentiles in µs. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

type Done = Message & Omit<LatencyFigure, "target">;

export async function runLatencySuite(load: ChildProcess, targets: Target[], opts: LatencyOptions, progress: (line: string) => void): Promise<LatencyFigure[]> {
  const figures: LatencyFigure[] = [];
  for (const target of targets) {
    const d = await request<Done>(
      load,
      { type: "latency", port: target.port, tls: target.tls, rate: opts.rate, warmupMs: opts.warmupMs, durationMs: opts.durationMs },
      opts.warmupMs + opts.durationMs + 30_000,
    );
    figures.push({ target: target.name, count: d.count, rate: d.rate, p50: d.p50, p90: d.p90, p99: d.p99, p999: d.p999, max: d.max });
    progress(`  latency, ${target.name}: p50 ${num(d.p50)} µs, p99 ${num(d.p99)} µs over ${num(d.count)} round trips`);
  }
  return figures;
}

export function latencyTable(figures: LatencyFigure[], opts: LatencyOptions): Table {
  const direct = figures.find((f) => f.target === "direct");
  const added = (f: LatencyFigure, k: "p50" | "p99" | "p999"): string => {
    if (!direct || f === direct) return "–";
    const d = f[k] - direct[k];
    return (d >= 0 ? "+" : "") + num(d);
  };
  return {
    title: "Latency: one connection, request/echo round trip (µs)",
    headers: ["target", "round trips", "rate/s", "p50", "p99", "p99.9", "max", "added p50", "added p99", "added p99.9"],
    rows: figures.map((f) => [f.target, num(f.count), num(f.rate), num(f.p50), num(f.p99), num(f.p999), num(f.max), added(f, "p50"), added(f, "p99"), added(f, "p999")]),
    notes: [
      `${opts.durationMs / 1000} s at ${opts.rate}/s target after ${opts.warmupMs / 1000} s warm-up; "added" = target percentile − direct percentile (proxy hop both ways).`,
      "p99.9 needs ≥ 10,000 round trips to mean much; the quick run has fewer.",
    ],
  };
}
