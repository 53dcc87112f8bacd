// Throughput suite: N loopback clients → [target] → sink, each client
// streaming ~250-byte message stanzas as fast as TCP takes them for a fixed
// window after a warm-up. Reports stanzas/s and MB/s (10^6 bytes) per
// target, the proxy's CPU time over the window (CPU ms per MB moved, and
// utilisation of its one core), and the load process's own utilisation: when
// that is near 100 % the load generator, not the proxy, is the limit.
// Rounds interleave the targets, and each figure is the median over rounds.

import type { ChildProcess } from "node:child_process";
import { request, type Message } from "./lib/children.js";
import { STANZA_BYTES } from "./lib/fixture.js";
import { median, spread } from "./lib/stats.js";
import { num, pct, times, type Table } from "./lib/table.js";
import type { Skipped, Target, TargetName } from "./lib/targets.js";

export interface ThroughputOptions {
  conns: number[];
  rounds: number;
  warmupMs: number;
  durationMs: number;
  /** Paced mode: stanzas/s per connection, one write() each. Absent: flat out. */
  ratePerConn?: number;
}

interface Done extends Message {
  bytes: number;
  seconds: number;
  loadCpuMicros: number;
  sent: number;
  received: number;
  verified: boolean;
}

export interface ThroughputSample {
  round: number;
  seconds: number;
  bytes: number;
  stanzasPerSec: number;
  mbPerSec: number;
  proxyCpuSec: number | null;
  /** Proxy read and write system calls over the window (null where not readable). */
  proxySyscalls: { reads: number; writes: number } | null;
  loadCpuSec: number;
  verified: boolean;
  sent: number;
  received: number;
}

export interface ThroughputFigure {
  conns: number;
  target: TargetName;
  stanzasPerSec: number;
  mbPerSec: number;
  /** Proxy CPU time per MB moved, in ms (null for direct). */
  proxyCpuMsPerMB: number | null;
  /** Proxy CPU time / wall time (1 = one core busy). */
  proxyCpuUtil: number | null;
  loadCpuUtil: number;
  /** (max − min) / median of stanzas/s across rounds. */
  spread: number;
  /** Proxy read / write system calls per stanza (medians; null where not readable). */
  readsPerStanza: number | null;
  writesPerStanza: number | null;
  verified: boolean;
  samples: ThroughputSample[];
}

async function measure(load: ChildProcess, target: Target, conns: number, round: number, opts: ThroughputOptions): Promise<ThroughputSample> {
  const cpu: Promise<number | null>[] = [];
  const sys: ({ reads: number; writes: number } | null)[] = [];
  const done = await request<Done>(
    load,
    { type: "throughput", port: target.port, tls: target.tls, ws: target.ws === true, conns, warmupMs: opts.warmupMs, durationMs: opts.durationMs, ratePerConn: opts.ratePerConn },
    opts.warmupMs + opts.durationMs + 40_000,
    (m) => {
      if (m.type === "mark") {
        sys.push(target.syscalls());
        cpu.push(target.cpuMicros());
      }
    },
  );
  const [c0, c1] = await Promise.all(cpu);
  const proxyCpuSec = c0 != null && c1 != null ? (c1 - c0) / 1e6 : null;
  const [s0, s1] = sys;
  const proxySyscalls = s0 && s1 ? { reads: s1.reads - s0.reads, writes: s1.writes - s0.writes } : null;
  return {
    round,
    seconds: done.seconds,
    bytes: done.bytes,
    stanzasPerSec: done.bytes / STANZA_BYTES / done.seconds,
    mbPerSec: done.bytes / 1e6 / done.seconds,
    proxyCpuSec,
    proxySyscalls,
    loadCpuSec: done.loadCpuMicros / 1e6,
    verified: done.verified,
    sent: done.sent,
    received: done.received,
  };
}

function summarize(conns: number, target: TargetName, samples: ThroughputSample[]): ThroughputFigure {
  const cpu = samples.filter((s) => s.proxyCpuSec !== null);
  // /proc/<pid>/io counts read(v)/write(v) only; a proxy that moved bytes with
  // none of them (HAProxy: recv/send) is "not measured", not "zero".
  const sys = samples.filter((s) => s.proxySyscalls !== null && s.bytes > 0 && s.proxySyscalls.reads + s.proxySyscalls.writes > 0);
  return {
    conns,
    target,
    stanzasPerSec: median(samples.map((s) => s.stanzasPerSec)),
    mbPerSec: median(samples.map((s) => s.mbPerSec)),
    proxyCpuMsPerMB: cpu.length === 0 ? null : median(cpu.map((s) => (s.proxyCpuSec! * 1000) / (s.bytes / 1e6))),
    proxyCpuUtil: cpu.length === 0 ? null : median(cpu.map((s) => s.proxyCpuSec! / s.seconds)),
    loadCpuUtil: median(samples.map((s) => s.loadCpuSec / s.seconds)),
    spread: spread(samples.map((s) => s.stanzasPerSec)),
    readsPerStanza: sys.length === 0 ? null : median(sys.map((s) => s.proxySyscalls!.reads / (s.bytes / STANZA_BYTES))),
    writesPerStanza: sys.length === 0 ? null : median(sys.map((s) => s.proxySyscalls!.writes / (s.bytes / STANZA_BYTES))),
    verified: samples.every((s) => s.verified),
    samples,
  };
}

export async function runThroughputSuite(
  load: ChildProcess,
  targets: Target[],
  opts: ThroughputOptions,
  progress: (line: string) => void,
): Promise<ThroughputFigure[]> {
  const figures: ThroughputFigure[] = [];
  for (const conns of opts.conns) {
    const samples = new Map<TargetName, ThroughputSample[]>(targets.map((t) => [t.name, []]));
    for (let round = 1; round <= opts.rounds; round++) {
      for (const target of targets) {
        const s = await measure(load, target, conns, round, opts);
        samples.get(target.name)!.push(s);
        progress(`  ${opts.ratePerConn ? "paced, " : ""}${conns} conn${conns === 1 ? "" : "s"}, round ${round}/${opts.rounds}, ${target.name}: ${num(s.stanzasPerSec)} stanzas/s${s.verified ? "" : "  (BYTES LOST)"}`);
      }
    }
    for (const target of targets) figures.push(summarize(conns, target.name, samples.get(target.name)!));
  }
  return figures;
}

/** Ratio of two targets' stanzas/s at one connection count, or NaN. */
export function ratio(figures: ThroughputFigure[], conns: number, a: TargetName, b: TargetName): number {
  const fa = figures.find((f) => f.conns === conns && f.target === a);
  const fb = figures.find((f) => f.conns === conns && f.target === b);
  return fa && fb ? fa.stanzasPerSec / fb.stanzasPerSec : Number.NaN;
}

export function throughputTable(figures: ThroughputFigure[], opts: ThroughputOptions, skipped: Skipped[]): Table {
  const rows = figures.map((f) => [
    String(f.conns),
    f.target,
    num(f.stanzasPerSec),
    num(f.mbPerSec, 1),
    pct(ratio(figures, f.conns, f.target, "direct")),
    f.target === "direct" ? "–" : pct(ratio(figures, f.conns, f.target, "pipe")),
    f.proxyCpuUtil === null ? "–" : pct(f.proxyCpuUtil),
    f.proxyCpuMsPerMB === null ? "–" : num(f.proxyCpuMsPerMB, 2),
    pct(f.loadCpuUtil),
    opts.rounds > 1 ? pct(f.spread) : "–",
    f.verified ? "yes" : "NO",
  ]);
  const notes = [
    `${opts.rounds} round(s) of ${opts.durationMs / 1000} s after ${opts.warmupMs / 1000} s warm-up; medians. MB = 10^6 bytes; ${STANZA_BYTES}-byte stanzas.`,
    "proxy CPU: the proxy process's user+system time over the window / wall time (100 % = one core).",
    "load CPU: the load process (clients + sink together); near 100 % means the load generator is the limit.",
    ...skipped.map((s) => `${s.name}: ${s.reason}`),
  ];
  return {
    title: "Throughput: clients → proxy → sink",
    headers: ["conns", "target", "stanzas/s", "MB/s", "vs direct", "vs pipe", "proxy CPU", "CPU ms/MB", "load CPU", "spread", "bytes ok"],
    rows,
    notes,
  };
}

export function ratioTable(figures: ThroughputFigure[], opts: ThroughputOptions): Table {
  const eff = (conns: number, a: TargetName, b: TargetName): number => {
    const fa = figures.find((f) => f.conns === conns && f.target === a)?.proxyCpuMsPerMB;
    const fb = figures.find((f) => f.conns === conns && f.target === b)?.proxyCpuMsPerMB;
    return fa != null && fb != null ? fa / fb : Number.NaN;
  };
  const rows = opts.conns.map((c) => [
    String(c),
    pct(ratio(figures, c, "xmpp-guard", "pipe")),
    pct(ratio(figures, c, "xmpp-guard", "haproxy")),
    pct(ratio(figures, c, "pipe", "haproxy")),
    times(eff(c, "xmpp-guard", "pipe")),
    times(eff(c, "xmpp-guard", "haproxy")),
  ]);
  return {
    title: "Throughput ratios (stanzas/s; goal: xmpp-guard ≥ 80 % of pipe)",
    headers: ["conns", "guard / pipe", "guard / haproxy", "pipe / haproxy", "guard CPU/MB ÷ pipe", "guard CPU/MB ÷ haproxy"],
    rows,
    notes: ["CPU/MB ratios compare work per byte independent of who was the bottleneck (1.00 × = same cost)."],
  };
}

/**
 * The paced run: every proxy carries the same offered load, so the figure
 * that matters is what it costs (CPU per stanza), not how much gets through.
 */
export function pacedTable(figures: ThroughputFigure[], opts: ThroughputOptions): Table {
  const offered = (conns: number): number => conns * (opts.ratePerConn ?? 0);
  const cpuPerStanza = (f: ThroughputFigure): number | null =>
    f.proxyCpuMsPerMB === null ? null : (f.proxyCpuMsPerMB * 1000 * STANZA_BYTES) / 1e6; // µs per stanza
  const pipeCost = (conns: number): number | null => {
    const p = figures.find((f) => f.conns === conns && f.target === "pipe");
    return p ? cpuPerStanza(p) : null;
  };
  return {
    title: "Paced load: many connections, one write() per stanza, same offered rate for every target",
    headers: ["conns", "target", "offered/s", "stanzas/s", "proxy CPU", "CPU µs/stanza", "CPU vs pipe", "reads/stanza", "writes/stanza", "load CPU", "bytes ok"],
    rows: figures.map((f) => {
      const c = cpuPerStanza(f);
      const p = pipeCost(f.conns);
      return [
        String(f.conns),
        f.target,
        num(offered(f.conns)),
        num(f.stanzasPerSec),
        f.proxyCpuUtil === null ? "–" : pct(f.proxyCpuUtil),
        c === null ? "–" : num(c, 2),
        c === null || p === null ? "–" : times(c / p),
        f.readsPerStanza === null ? "–" : num(f.readsPerStanza, 2),
        f.writesPerStanza === null ? "–" : num(f.writesPerStanza, 2),
        pct(f.loadCpuUtil),
        f.verified ? "yes" : "NO",
      ];
    }),
    notes: [
      `${opts.rounds} round(s) of ${opts.durationMs / 1000} s after ${opts.warmupMs / 1000} s warm-up; medians. ` +
        `Each connection sends ${opts.ratePerConn} stanzas/s, paced in 10 ms ticks, one write() per stanza.`,
      "reads/writes per stanza: the proxy's read(v)/write(v) system calls (/proc/<pid>/io syscr, syscw) ÷ stanzas; HAProxy uses recv/send, which those counters do not see (–).",
      "CPU vs pipe: the proxy's CPU per stanza ÷ the pipe proxy's (1.00 × = same cost).",
    ],
  };
}

/** Rules on vs off: the same proxy with rules/default.pfw and with no rules, from the throughput and paced runs. */
export function rulesTable(throughput: ThroughputFigure[], paced: ThroughputFigure[], note: string): Table {
  const rows: string[][] = [];
  const add = (label: string, figures: ThroughputFigure[]): void => {
    for (const conns of [...new Set(figures.map((f) => f.conns))]) {
      const on = figures.find((f) => f.conns === conns && f.target === "xmpp-guard");
      const off = figures.find((f) => f.conns === conns && f.target === "guard-norules");
      if (!on || !off) continue;
      const cpu = on.proxyCpuMsPerMB !== null && off.proxyCpuMsPerMB !== null ? on.proxyCpuMsPerMB / off.proxyCpuMsPerMB : Number.NaN;
      rows.push([label, String(conns), num(off.stanzasPerSec), num(on.stanzasPerSec), pct(on.stanzasPerSec / off.stanzasPerSec), times(cpu)]);
    }
  };
  add("flat out", throughput);
  add("paced", paced);
  return {
    title: "Firewall rules on vs off (same proxy; rules/default.pfw vs no rules)",
    headers: ["load", "conns", "no rules stanzas/s", "rules stanzas/s", "rules / no rules", "CPU/MB rules ÷ none"],
    rows,
    notes: [note, "Paced rows carry the same offered load either way, so there the CPU ratio is the figure that matters."],
  };
}

/** TLS suite: xmpp-guard's c2s-tls listener vs a Node TLS-terminating pipe proxy. */
export function tlsTable(figures: ThroughputFigure[], opts: ThroughputOptions, skipped: Skipped[]): Table {
  const rows: string[][] = [];
  for (const conns of opts.conns) {
    const pipe = figures.find((f) => f.conns === conns && f.target === "pipe-tls");
    const guard = figures.find((f) => f.conns === conns && f.target === "guard-tls");
    for (const f of [pipe, guard]) {
      if (!f) continue;
      rows.push([
        String(conns),
        f.target,
        num(f.stanzasPerSec),
        num(f.mbPerSec, 1),
        f === guard && pipe ? pct(guard.stanzasPerSec / pipe.stanzasPerSec) : "–",
        f.proxyCpuUtil === null ? "–" : pct(f.proxyCpuUtil),
        f.proxyCpuMsPerMB === null ? "–" : num(f.proxyCpuMsPerMB, 2),
        pct(f.loadCpuUtil),
        f.verified ? "yes" : "NO",
      ]);
    }
  }
  return {
    title: "TLS throughput: clients →(TLS)→ proxy → sink (plaintext)",
    headers: ["conns", "target", "stanzas/s", "MB/s", "guard / pipe-tls", "proxy CPU", "CPU ms/MB", "load CPU", "bytes ok"],
    rows,
    notes: [
      `${opts.rounds} round(s) of ${opts.durationMs / 1000} s after ${opts.warmupMs / 1000} s warm-up; medians. Direct TLS from the first byte (XEP-0368), self-signed P-256 certificate, Node's default cipher choice.`,
      "The load process encrypts for every client, so it is often the limit here: read load CPU before the ratio.",
      ...skipped.map((s) => `${s.name}: ${s.reason}`),
    ],
  };
}

/**
 * WebSocket suite: xmpp-guard's websocket listener vs a plain WebSocket relay
 * on the same library, flat out and paced; the paced CPU per stanza is the
 * figure to read (the same offered load through both).
 */
export function wsTable(flat: ThroughputFigure[], paced: ThroughputFigure[], flatOpts: ThroughputOptions, pacedOpts: ThroughputOptions, skipped: Skipped[]): Table {
  const cpuPerStanza = (f: ThroughputFigure): number | null =>
    f.proxyCpuMsPerMB === null ? null : (f.proxyCpuMsPerMB * 1000 * STANZA_BYTES) / 1e6;
  const rows: string[][] = [];
  const add = (load: string, figures: ThroughputFigure[]): void => {
    for (const conns of [...new Set(figures.map((f) => f.conns))]) {
      const relay = figures.find((f) => f.conns === conns && f.target === "ws-relay");
      const guard = figures.find((f) => f.conns === conns && f.target === "guard-ws");
      for (const f of [relay, guard]) {
        if (!f) continue;
        const c = cpuPerStanza(f);
        const r = relay ? cpuPerStanza(relay) : null;
        rows.push([
          load,
          String(conns),
          f.target,
          num(f.stanzasPerSec),
          f === guard && relay ? pct(guard.stanzasPerSec / relay.stanzasPerSec) : "–",
          f.proxyCpuUtil === null ? "–" : pct(f.proxyCpuUtil),
          c === null ? "–" : num(c, 2),
          f === guard && c !== null && r !== null ? times(c / r) : "–",
          pct(f.loadCpuUtil),
          f.verified ? "yes" : "NO",
        ]);
      }
    }
  };
  add("flat out", flat);
  add(`paced ${pacedOpts.ratePerConn}/s each`, paced);
  return {
    title: "XMPP over WebSocket: clients →(RFC 7395)→ proxy →(c2s TCP)→ sink",
    headers: ["load", "conns", "target", "stanzas/s", "guard / relay", "proxy CPU", "CPU µs/stanza", "CPU vs relay", "load CPU", "bytes ok"],
    rows,
    notes: [
      `${flatOpts.rounds} round(s) of ${flatOpts.durationMs / 1000} s after ${flatOpts.warmupMs / 1000} s warm-up; medians. One text message per ${STANZA_BYTES}-byte stanza; the same opening (open, SASL PLAIN, restart, bind) as the TCP suites.`,
      "ws-relay: the same `ws` library with the same options, relaying messages to the sink over TCP with no XML read at all; xmpp-guard: its websocket listener with rules/default.pfw (rates scaled), as the xmpp-guard target.",
      "CPU vs relay: the proxy's CPU per stanza ÷ the relay's (1.00 × = same cost); paced rows carry the same offered load through both.",
      ...skipped.map((s) => `${s.name}: ${s.reason}`),
    ],
  };
}
