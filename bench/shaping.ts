// Shaping suite: c2s rate limiting against a real Prosody, same rate and
// burst both ways, in the same run:
//
//   prosody mod_limits   Prosody with mod_limits (limits.c2s = rate, burst),
//                        the sender connects to Prosody directly;
//   xmpp-guard limits    Prosody without limits behind xmpp-guard with
//                        limits.c2s = the same rate and burst.
//
// One sender logs in (SASL PLAIN, bind) and floods fixed-size messages to a
// receiver at full speed for `floodMs`; the receiver, connected straight to
// Prosody (its own traffic is not limited), timestamps every delivery. Each
// delivered stanza stands for STANZA bytes read from the sender, so the
// delivery curve is the limiter's read curve. Reported: bytes let through in
// the first 0.5 s (the burst; expected rate × burst + 0.5 s of refill), the
// steady rate over the last two thirds of the flood (expected: rate), and the
// CPU time the limiting path used (Prosody alone vs Prosody + xmpp-guard).
// Login bytes come out of the same bucket in both setups.

import { performance } from "node:perf_hooks";
import { haveProsody, startProsody, type ProsodyInstance } from "../test/helpers/prosody.js";
import type { GuardSource } from "./lib/guard-source.js";
import { procCpuMicros } from "./lib/system.js";
import { num, pct, type Table } from "./lib/table.js";
import { startGuard, type Target } from "./lib/targets.js";
import { login } from "./lib/xmpp-login.js";

export interface ShapingOptions {
  /** mod_limits syntax, e.g. "3kb/s" and "2s". */
  rate: string;
  burst: string;
  floodMs: number;
}

export interface ShapingFigure {
  setup: "prosody mod_limits" | "xmpp-guard limits";
  configuredRate: number;
  configuredBurstBytes: number;
  /** Sender bytes delivered within 0.5 s of the flood's start. */
  firstHalfSecond: number;
  /** Sender bytes/s delivered over the last two thirds of the flood. */
  steadyRate: number;
  delivered: number;
  /** CPU seconds of Prosody (+ xmpp-guard) over the flood. */
  cpuSec: number;
  guardCpuSec: number | null;
  /** [ms since flood start, cumulative sender bytes] at each delivery. */
  curve: [number, number][];
}

const STANZA = 250;
const DOMAIN = "localhost";

function floodStanza(i: number): Buffer {
  const head = `<message to='receiver@${DOMAIN}/recv' type='chat' id='f-${String(i).padStart(8, "0")}'><body>`;
  const tail = "</body></message>";
  const s = head + "x".repeat(STANZA - head.length - tail.length) + tail;
  return Buffer.from(s);
}

/** Bytes per second from a mod_limits rate ("3kb/s" → 3000; decimal units, as Prosody). */
export function parseModLimitsRate(rate: string): number {
  const m = /^(\d+) ?([bkmg])[^/]*\/s$/i.exec(rate);
  if (!m) throw new Error(`bad rate ${rate}`);
  return Number(m[1]) * 10 ** { b: 0, k: 3, m: 6, g: 9 }[m[2]!.toLowerCase() as "b"]!;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function flood(prosody: ProsodyInstance, senderPort: number, opts: ShapingOptions, guard: Target | null): Promise<Omit<ShapingFigure, "setup" | "configuredRate" | "configuredBurstBytes">> {
  const receiver = await login(prosody.port, "receiver", "pw", DOMAIN, "recv");
  const sender = await login(senderPort, "sender", "pw", DOMAIN, "send");
  const arrivals: number[] = [];
  let tail = "";
  let t0 = 0;
  receiver.sock.on("data", (chunk: Buffer) => {
    const text = tail + chunk.toString("latin1");
    let at = text.indexOf("</message>");
    let last = 0;
    while (at >= 0) {
      arrivals.push(performance.now() - t0);
      last = at + 10;
      at = text.indexOf("</message>", last);
    }
    tail = text.slice(Math.max(last, text.length - 10));
  });
  await sleep(300); // presence settles
  const cpu0 = procCpuMicros(prosody.pid) ?? 0;
  const g0 = guard ? await guard.cpuMicros() : null;
  t0 = performance.now();
  let i = 0;
  let running = true;
  const pump = (): void => {
    while (running && !sender.sock.destroyed) {
      if (!sender.sock.write(floodStanza(i++))) return;
    }
  };
  sender.sock.on("drain", pump);
  pump();
  await sleep(opts.floodMs);
  running = false;
  const cpu1 = procCpuMicros(prosody.pid) ?? 0;
  const g1 = guard ? await guard.cpuMicros() : null;
  sender.sock.destroy();
  receiver.sock.destroy();
  const within = arrivals.filter((t) => t <= opts.floodMs);
  const from = opts.floodMs / 3;
  const steady = within.filter((t) => t > from).length;
  return {
    firstHalfSecond: within.filter((t) => t <= 500).length * STANZA,
    steadyRate: (steady * STANZA) / ((opts.floodMs - from) / 1000),
    delivered: within.length * STANZA,
    cpuSec: (cpu1 - cpu0) / 1e6 + (g0 !== null && g1 !== null ? (g1 - g0) / 1e6 : 0),
    guardCpuSec: g0 !== null && g1 !== null ? (g1 - g0) / 1e6 : null,
    curve: within.filter((_, k) => k % 4 === 0).map((t, k) => [Math.round(t), (k * 4 + 1) * STANZA]),
  };
}

export async function runShapingSuite(guardSource: GuardSource, opts: ShapingOptions, progress: (line: string) => void): Promise<{ figures: ShapingFigure[]; skipped: string | null }> {
  if (!haveProsody()) return { figures: [], skipped: "skipped: prosody not installed (Debian: apt-get install prosody)" };
  const rate = parseModLimitsRate(opts.rate);
  const burstBytes = rate * Number(/^(\d+)/.exec(opts.burst)?.[1] ?? 2);
  const figures: ShapingFigure[] = [];
  // logLevel stays at the helper's "info": its readiness check reads the "Activated service" line.
  const common = { offline: false, muc: false };
  const lua = `limits = { c2s = { rate = "${opts.rate}"; burst = "${opts.burst}" } }`;

  for (const setup of ["prosody mod_limits", "xmpp-guard limits"] as const) {
    const prosody = await startProsody(setup === "prosody mod_limits" ? { ...common, extraModules: ["limits"], extraConfig: lua } : common);
    let guard: Target | null = null;
    try {
      await prosody.createUser("sender", "pw");
      await prosody.createUser("receiver", "pw");
      if (setup === "xmpp-guard limits") {
        guard = await startGuard(prosody.port, guardSource, { limits: { c2s: { rate: opts.rate, burst: opts.burst } } }, "xmpp-guard with limits.c2s");
      }
      const r = await flood(prosody, guard ? guard.port : prosody.port, opts, guard);
      figures.push({ setup, configuredRate: rate, configuredBurstBytes: burstBytes, ...r });
      progress(`  shaping, ${setup}: ${num(r.firstHalfSecond)} B in the first 0.5 s, then ${num(r.steadyRate)} B/s (configured ${num(rate)} B/s, burst ${num(burstBytes)} B)`);
    } finally {
      await guard?.stop();
      await prosody.stop();
    }
  }
  return { figures, skipped: null };
}

export function shapingTable(figures: ShapingFigure[], opts: ShapingOptions, skipped: string | null): Table {
  const rate = figures[0]?.configuredRate ?? parseModLimitsRate(opts.rate);
  const burst = figures[0]?.configuredBurstBytes ?? 0;
  const expectedFirst = burst + rate * 0.5;
  return {
    title: `Shaping: c2s flood against limits rate "${opts.rate}", burst "${opts.burst}" (real Prosody behind)`,
    headers: ["setup", "first 0.5 s B", "expected B", "steady B/s", "rate error", "delivered B", "CPU s (total)", "of which guard"],
    rows: figures.map((f) => [
      f.setup,
      num(f.firstHalfSecond),
      num(expectedFirst),
      num(f.steadyRate),
      pct((f.steadyRate - rate) / rate).replace(/^(\d)/, "+$1"),
      num(f.delivered),
      num(f.cpuSec, 3),
      f.guardCpuSec === null ? "–" : num(f.guardCpuSec, 3),
    ]),
    notes: [
      `${opts.floodMs / 1000} s flood of ${STANZA}-byte messages per setup; steady = last two thirds of the flood; expected first 0.5 s = rate × burst + 0.5 s × rate (login bytes come out of the same bucket).`,
      "Prosody 0.12 (net.server_epoll) limits with conn:setlimit, which has no burst support (\"Currently no burst support\" in mod_limits.lua).",
      ...(skipped ? [skipped] : []),
    ],
  };
}
