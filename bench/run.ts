// `npm run bench` (full, under 15 minutes) and `npm run bench:quick` (~2 min):
// every suite in one invocation. Prints a table per suite with ratios
// against the baselines and writes everything, with the machine and commit,
// to bench/results/<timestamp>.json (gitignored).
//
// Process layout, so that each proxy under test has a core to itself:
//   this process   orchestration only; idle while measuring
//   load child     clients + sink (bench/load.ts)
//   proxy children pipe proxy, HAProxy, xmpp-guard (one measured at a time)
//   clients child  the memory suite's idle sessions (a second load.ts)
//   Prosody        the shaping suite's real servers (test/helpers/prosody.ts)
//   framer child   the parser micro-benchmarks, after the proxies are gone
// All traffic is on 127.0.0.1. Every child is killed on the way out, errors
// and Ctrl-C included.

import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FRAMER_FULL, FRAMER_QUICK, framerTable, type FramerFigure, type FramerOptions } from "./framer.js";
import { latencyTable, runLatencySuite, type LatencyFigure, type LatencyOptions } from "./latency.js";
import { forkTs, installCleanup, request, stopAll, stopChild, waitFor, type Message } from "./lib/children.js";
import { makeCertificate } from "./lib/cert.js";
import { chooseGuardSource, guardLabel, guardSourceArg, REPO_ROOT, type GuardSource } from "./lib/guard-source.js";
import { benchRules, RATE_SCALE } from "./lib/rules.js";
import { environment, fdLimits, raiseFdLimit } from "./lib/system.js";
import { renderTable, type Table } from "./lib/table.js";
import { startTargets, type Skipped, type Target, type TargetName } from "./lib/targets.js";
import { memoryTable, runMemorySuite, sessionsThatFit, type MemoryFigure, type MemoryOptions } from "./memory.js";
import { runShapingSuite, shapingTable, type ShapingFigure, type ShapingOptions } from "./shaping.js";
import { runTsungSuite, tsungTable, type TsungFigure, type TsungOptions } from "./tsung.js";
import { pacedTable, ratioTable, rulesTable, runThroughputSuite, throughputTable, tlsTable, wsTable, type ThroughputFigure, type ThroughputOptions } from "./throughput.js";

const USAGE = `usage: tsx bench/run.ts [--quick] [--guard=auto|dist|build|src|<dir>] [--only=SUITE,...]

  --quick    short windows, one round, 1,000 idle sessions (about 2 minutes)
  --guard    which xmpp-guard to load: auto (default: dist/ if up to date, else build),
             dist, build (tsc src/ into bench/.build/), src (tsx; slower, see lib/guard-source.ts),
             or an absolute path to other compiled output (to A/B a patch)
  --only     run a subset of the suites: ${"throughput,paced,latency,memory,tls,websocket,shaping,tsung,framer"}
             (the rules-on/off table comes from throughput and paced)`;

type Suite = "throughput" | "paced" | "latency" | "memory" | "tls" | "websocket" | "shaping" | "tsung" | "framer";
const SUITES: Suite[] = ["throughput", "paced", "latency", "memory", "tls", "websocket", "shaping", "tsung", "framer"];

interface Plan {
  mode: "quick" | "full";
  throughput: ThroughputOptions;
  paced: ThroughputOptions;
  latency: LatencyOptions;
  memory: MemoryOptions;
  tls: ThroughputOptions;
  /** The WebSocket suite: flat out, then paced. */
  websocket: ThroughputOptions;
  websocketPaced: ThroughputOptions;
  shaping: ShapingOptions;
  tsung: TsungOptions;
  framer: Omit<FramerOptions, "guard">;
}

const QUICK: Plan = {
  mode: "quick",
  throughput: { conns: [1, 8], rounds: 1, warmupMs: 500, durationMs: 2000 },
  paced: { conns: [256], rounds: 1, warmupMs: 500, durationMs: 2000, ratePerConn: 80 },
  latency: { rate: 1000, warmupMs: 300, durationMs: 2000 },
  memory: { sessions: 1000, concurrency: 128, settleMs: 500, idleMs: 15_000 },
  tls: { conns: [8], rounds: 1, warmupMs: 500, durationMs: 2000 },
  websocket: { conns: [8], rounds: 1, warmupMs: 500, durationMs: 2000 },
  websocketPaced: { conns: [256], rounds: 1, warmupMs: 500, durationMs: 2000, ratePerConn: 80 },
  shaping: { rate: "3kb/s", burst: "2s", floodMs: 5000 },
  tsung: { users: 50, think: 0.04, loops: 150, size: 64 },
  framer: FRAMER_QUICK,
};

const FULL: Plan = {
  mode: "full",
  throughput: { conns: [1, 8, 64], rounds: 3, warmupMs: 750, durationMs: 2500 },
  paced: { conns: [256], rounds: 3, warmupMs: 750, durationMs: 2500, ratePerConn: 80 },
  latency: { rate: 1000, warmupMs: 500, durationMs: 10_000 },
  memory: { sessions: 10_000, concurrency: 256, settleMs: 1000, idleMs: 15_000 },
  tls: { conns: [1, 8], rounds: 3, warmupMs: 750, durationMs: 2500 },
  websocket: { conns: [1, 8], rounds: 3, warmupMs: 750, durationMs: 2500 },
  websocketPaced: { conns: [256], rounds: 3, warmupMs: 750, durationMs: 2500, ratePerConn: 80 },
  shaping: { rate: "3kb/s", burst: "2s", floodMs: 12_000 },
  tsung: { users: 100, think: 0.04, loops: 500, size: 64 },
  framer: FRAMER_FULL,
};

/** Targets of the plaintext suites, in measuring order. */
const PLAIN_TARGETS: TargetName[] = ["direct", "pipe", "haproxy", "xmpp-guard", "guard-norules"];

function parseArgs(argv: string[]): { plan: Plan; guard: "auto" | GuardSource; suites: Suite[] } {
  let plan = FULL;
  let guard: "auto" | GuardSource = "auto";
  let suites = SUITES;
  for (const arg of argv) {
    if (arg === "--quick") plan = QUICK;
    else if (arg.startsWith("--guard=")) guard = arg.slice(8) === "auto" ? "auto" : guardSourceArg(arg.slice(8));
    else if (arg.startsWith("--only=")) {
      suites = arg.slice(7).split(",") as Suite[];
      if (suites.some((s) => !SUITES.includes(s))) throw new Error(`unknown suite in ${arg}\n${USAGE}`);
    } else if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}\n${USAGE}`);
  }
  return { plan, guard, suites };
}

function log(line: string): void {
  console.log(line);
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/:/g, "-").replace(/\.\d+Z$/, "Z");
}

async function main(): Promise<void> {
  installCleanup();
  const { plan, guard: wanted, suites } = parseArgs(process.argv.slice(2));
  const env = environment();
  const guard = chooseGuardSource(wanted);
  const startedAt = new Date();
  log(`xmpp-guard bench (${plan.mode}): Node ${env.node}, ${env.cpuModel} × ${env.cores}, commit ${env.commit ?? "unknown"}${env.dirty ? " (dirty)" : ""}`);
  log(`xmpp-guard from ${guardLabel(guard.source)}: ${guard.reason}`);
  const rules = benchRules();
  const rulesNote = `xmpp-guard loads rules/default.pfw with its ${rules.scaled} %RATE definitions × ${RATE_SCALE.toLocaleString("en-US")} (lib/rules.ts): every stanza walks the same rules and LIMIT buckets, none runs dry, so all are forwarded.`;

  // Two descriptors per idle session in the proxy; the clients and the sink each hold one.
  const wantedFds = plan.memory.sessions * 2 + 256;
  const before = fdLimits();
  const fdLimit = suites.includes("memory") ? raiseFdLimit(wantedFds) : before?.soft ?? null;
  const memoryOptions: MemoryOptions = { ...plan.memory, sessions: sessionsThatFit(plan.memory.sessions, fdLimit) };
  const memoryNotes: string[] = [];
  if (suites.includes("memory")) {
    memoryNotes.push(`Open-file limit ${fdLimit ?? "unknown"} (was ${before?.soft ?? "?"}, hard ${before?.hard ?? "?"}).`);
    if (memoryOptions.sessions < plan.memory.sessions) {
      const msg = `Sessions lowered from ${plan.memory.sessions.toLocaleString("en-US")} to ${memoryOptions.sessions.toLocaleString("en-US")}: the hard open-file limit (${before?.hard}) cannot be raised here (needs CAP_SYS_RESOURCE); raise it (ulimit -Hn, LimitNOFILE) for the full count.`;
      memoryNotes.push(msg);
      log(msg);
    }
  }

  const tables: Table[] = [];
  const targets: Target[] = [];
  let targetInfo: { name: string; detail: string }[] = [];
  let skipped: Skipped[] = [];
  let throughput: ThroughputFigure[] = [];
  let paced: ThroughputFigure[] = [];
  let latency: LatencyFigure[] = [];
  let memory: { figures: MemoryFigure[]; skipped: Skipped[] } | null = null;
  let tls: { figures: ThroughputFigure[]; skipped: Skipped[] } | null = null;
  let websocket: { flat: ThroughputFigure[]; paced: ThroughputFigure[]; skipped: Skipped[] } | null = null;
  let shaping: { figures: ShapingFigure[]; skipped: string | null } | null = null;
  let tsung: { figures: TsungFigure[]; skipped: string | null } | null = null;
  let framer: { figures: FramerFigure[]; skipped: string[] } | null = null;
  let load: ChildProcess | null = null;
  let framerChild: ChildProcess | null = null;
  const plainSuites = suites.filter((s) => s === "throughput" || s === "paced" || s === "latency");

  try {
    if (suites.some((s) => s !== "framer" && s !== "shaping")) {
      load = forkTs(new URL("./load.ts", import.meta.url));
      const ready = await waitFor<Message & { port: number }>(load, "ready", 30_000);

      if (plainSuites.length > 0) {
        skipped = await startTargets(ready.port, { names: PLAIN_TARGETS, guard: guard.source, rules: rules.path }, targets);
        for (const s of skipped) log(`${s.name} ${s.reason}`);
        targetInfo = targets.map((t) => ({ name: t.name, detail: t.detail }));
        log(`targets: ${targetInfo.map((t) => `${t.name} (${t.detail})`).join("; ")}`);
      }
      if (suites.includes("throughput")) {
        log("throughput:");
        throughput = await runThroughputSuite(load, targets, plan.throughput, log);
        tables.push(throughputTable(throughput, plan.throughput, skipped), ratioTable(throughput, plan.throughput));
      }
      if (suites.includes("paced")) {
        log("paced:");
        paced = await runThroughputSuite(load, targets, plan.paced, log);
        tables.push(pacedTable(paced, plan.paced));
      }
      if (throughput.length > 0 || paced.length > 0) tables.push(rulesTable(throughput, paced, rulesNote));
      if (suites.includes("latency")) {
        log("latency:");
        latency = await runLatencySuite(load, targets, plan.latency, log);
        tables.push(latencyTable(latency, plan.latency));
      }
      for (const t of targets.splice(0)) await t.stop();

      if (suites.includes("memory")) {
        log(`memory (${memoryOptions.sessions.toLocaleString("en-US")} idle sessions per proxy):`);
        memory = await runMemorySuite(ready.port, { guard: guard.source, rules: rules.path }, memoryOptions, log);
        tables.push(memoryTable(memory.figures, memoryOptions, [...memoryNotes, ...memory.skipped.map((s) => `${s.name}: ${s.reason}`)]));
      }

      if (suites.includes("tls")) {
        log("tls:");
        const cert = makeCertificate();
        const tlsTargets: Target[] = [];
        const tlsSkipped: Skipped[] = [];
        try {
          const spec = { names: ["pipe-tls", "guard-tls"] as TargetName[], guard: guard.source, rules: rules.path, ...("cert" in cert ? { tls: cert } : {}) };
          tlsSkipped.push(...(await startTargets(ready.port, spec, tlsTargets)));
          if ("error" in cert) tlsSkipped.push({ name: "guard-tls", reason: `skipped: ${cert.error}` });
          for (const s of tlsSkipped) log(`  ${s.name} ${s.reason}`);
          // Without xmpp-guard's TLS there is nothing to compare: say so instead of printing half a table.
          const figures = tlsTargets.some((t) => t.name === "guard-tls") ? await runThroughputSuite(load, tlsTargets, plan.tls, log) : [];
          tls = { figures, skipped: tlsSkipped };
          tables.push(tlsTable(figures, plan.tls, tlsSkipped));
        } finally {
          for (const t of tlsTargets) await t.stop();
        }
      }
      if (suites.includes("websocket")) {
        log("websocket:");
        const wsTargets: Target[] = [];
        try {
          const wsSkipped = await startTargets(ready.port, { names: ["ws-relay", "guard-ws"], guard: guard.source, rules: rules.path }, wsTargets);
          for (const s of wsSkipped) log(`  ${s.name} ${s.reason}`);
          const measured = wsTargets.some((t) => t.name === "guard-ws");
          const flat = measured ? await runThroughputSuite(load, wsTargets, plan.websocket, log) : [];
          const pacedWs = measured ? await runThroughputSuite(load, wsTargets, plan.websocketPaced, log) : [];
          websocket = { flat, paced: pacedWs, skipped: wsSkipped };
          tables.push(wsTable(flat, pacedWs, plan.websocket, plan.websocketPaced, wsSkipped));
        } finally {
          for (const t of wsTargets) await t.stop();
        }
      }
      await stopChild(load);
      load = null;
    }

    if (suites.includes("shaping")) {
      log("shaping:");
      try {
        shaping = await runShapingSuite(guard.source, plan.shaping, log);
      } catch (err) {
        shaping = { figures: [], skipped: `failed: ${err instanceof Error ? err.message : String(err)}` };
      }
      if (shaping.skipped) log(`  ${shaping.skipped}`);
      tables.push(shapingTable(shaping.figures, plan.shaping, shaping.skipped));
    }

    if (suites.includes("tsung")) {
      log("tsung:");
      try {
        tsung = await runTsungSuite(guard.source, plan.tsung, log);
      } catch (err) {
        tsung = { figures: [], skipped: `failed: ${err instanceof Error ? err.message : String(err)}` };
      }
      if (tsung.skipped) log(`  ${tsung.skipped}`);
      tables.push(tsungTable(tsung.figures, plan.tsung, tsung.skipped));
    }

    // The framer suite gets the machine to itself.
    if (suites.includes("framer")) {
      log("framer:");
      const options: FramerOptions = { ...plan.framer, guard: guard.source };
      framerChild = forkTs(new URL("./framer.ts", import.meta.url), [], ["--expose-gc"]);
      await waitFor(framerChild, "ready", 30_000);
      framer = await request<Message & { figures: FramerFigure[]; skipped: string[] }>(framerChild, { type: "framer", options }, 600_000, (m) => {
        if (m.type === "progress") log(String(m.line));
      });
      tables.push(framerTable(framer.figures, options, framer.skipped));
      await stopChild(framerChild);
      framerChild = null;
    }
  } finally {
    await Promise.allSettled(targets.map((t) => t.stop()));
    await stopAll();
  }

  const finishedAt = new Date();
  log("");
  log(`Machine: ${env.cpuModel}, ${env.cores} cores, ${env.memoryGiB} GiB, ${env.platform}; Node ${env.node}; commit ${env.commit ?? "unknown"}${env.dirty ? " (dirty)" : ""}; xmpp-guard from ${guardLabel(guard.source)}.`);
  log(`Run: ${plan.mode}, ${Math.round((finishedAt.getTime() - startedAt.getTime()) / 1000)} s.`);
  for (const t of tables) log("\n" + renderTable(t));

  const dir = join(REPO_ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${timestamp(startedAt)}.json`);
  const record = {
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    mode: plan.mode,
    environment: env,
    xmppGuard: guard,
    plan: { ...plan, memory: memoryOptions },
    targets: targetInfo,
    skipped,
    throughput,
    paced,
    latency,
    memory,
    tls,
    websocket,
    shaping,
    tsung,
    framer,
    tables,
  };
  writeFileSync(file, JSON.stringify(record, null, 2) + "\n");
  log(`\nresults: ${file}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
