// `npm run bench` (full, a few minutes) and `npm run bench:quick` (~1 min):
// every suite in one invocation. Prints a table per suite with ratios
// against the baselines and writes everything, with the machine and commit,
// to bench/results/<timestamp>.json (gitignored).
//
// Process layout, so that each proxy under test has a core to itself:
//   this process   orchestration only; idle while measuring
//   load child     clients + sink (bench/load.ts)
//   proxy children pipe proxy, HAProxy, xmpp-guard (one measured at a time)
//   framer child   the parser micro-benchmarks, after the proxies are gone
// All traffic is on 127.0.0.1. Every child is killed on the way out, errors
// and Ctrl-C included.

import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FRAMER_FULL, FRAMER_QUICK, framerTable, type FramerFigure, type FramerOptions } from "./framer.js";
import { latencyTable, runLatencySuite, type LatencyFigure, type LatencyOptions } from "./latency.js";
import { forkTs, installCleanup, request, stopAll, stopChild, waitFor, type Message } from "./lib/children.js";
import { chooseGuardSource, guardLabel, guardSourceArg, REPO_ROOT, type GuardSource } from "./lib/guard-source.js";
import { environment } from "./lib/system.js";
import { renderTable, type Table } from "./lib/table.js";
import { startTargets, type Skipped, type Target } from "./lib/targets.js";
import { pacedTable, ratioTable, runThroughputSuite, throughputTable, type ThroughputFigure, type ThroughputOptions } from "./throughput.js";

const USAGE = `usage: tsx bench/run.ts [--quick] [--guard=auto|dist|build|src|<dir>] [--only=throughput,paced,latency,framer]

  --quick    1 and 8 connections, one round, short windows (~1 minute)
  --guard    which xmpp-guard to load: auto (default: dist/ if up to date, else build),
             dist, build (tsc src/ into bench/.build/), src (tsx; slower, see lib/guard-source.ts),
             or an absolute path to other compiled output (to A/B a patch)
  --only     run a subset of the suites`;

type Suite = "throughput" | "paced" | "latency" | "framer";
const SUITES: Suite[] = ["throughput", "paced", "latency", "framer"];

interface Plan {
  mode: "quick" | "full";
  throughput: ThroughputOptions;
  paced: ThroughputOptions;
  latency: LatencyOptions;
  framer: Omit<FramerOptions, "guard">;
}

const QUICK: Plan = {
  mode: "quick",
  throughput: { conns: [1, 8], rounds: 1, warmupMs: 500, durationMs: 2000 },
  paced: { conns: [256], rounds: 1, warmupMs: 500, durationMs: 2000, ratePerConn: 80 },
  latency: { rate: 1000, warmupMs: 300, durationMs: 2000 },
  framer: FRAMER_QUICK,
};

const FULL: Plan = {
  mode: "full",
  throughput: { conns: [1, 8, 64], rounds: 3, warmupMs: 750, durationMs: 2500 },
  paced: { conns: [256], rounds: 3, warmupMs: 750, durationMs: 2500, ratePerConn: 80 },
  latency: { rate: 1000, warmupMs: 500, durationMs: 10_000 },
  framer: FRAMER_FULL,
};

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

  const tables: Table[] = [];
  const targets: Target[] = [];
  let targetInfo: { name: string; detail: string }[] = [];
  let skipped: Skipped[] = [];
  let throughput: ThroughputFigure[] = [];
  let paced: ThroughputFigure[] = [];
  let latency: LatencyFigure[] = [];
  let framer: { figures: FramerFigure[]; skipped: string[] } | null = null;
  let load: ChildProcess | null = null;
  let framerChild: ChildProcess | null = null;

  try {
    if (suites.some((s) => s !== "framer")) {
      load = forkTs(new URL("./load.ts", import.meta.url));
      const ready = await waitFor<Message & { port: number }>(load, "ready", 30_000);
      skipped = await startTargets(ready.port, guard.source, targets);
      for (const s of skipped) log(`haproxy ${s.reason}`);
      targetInfo = targets.map((t) => ({ name: t.name, detail: t.detail }));
      log(`targets: ${targetInfo.map((t) => `${t.name} (${t.detail})`).join("; ")}`);

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
      if (suites.includes("latency")) {
        log("latency:");
        latency = await runLatencySuite(load, targets, plan.latency, log);
        tables.push(latencyTable(latency, plan.latency));
      }
      // The framer suite gets the machine to itself.
      for (const t of targets.splice(0)) await t.stop();
      await stopChild(load);
      load = null;
    }

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
    plan,
    targets: targetInfo,
    skipped,
    throughput,
    paced,
    latency,
    framer,
  };
  writeFileSync(file, JSON.stringify(record, null, 2) + "\n");
  log(`\nresults: ${file}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
