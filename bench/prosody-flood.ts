// The data-path goals measured through a real Prosody (bench/README.md,
// "Through Prosody: CPU per delivered message"), standalone:
//
//   npx tsx bench/prosody-flood.ts [--rounds=3] [--messages=5000] [--pairs=4] [--modes=flood,paced] [--guard=auto|dist|build|src|<dir>] [--pin] [--norules] [--b=<dir>]
//
// --norules adds a setup, xmpp-guard without firewall rules
// ("guard-norules"), to tell the policy's share from the rest of the proxy;
// the goals table then adds guard-norules ÷ pipe and xmpp-guard ÷ guard-norules.
// --b=<guard source> adds "guard-b", a second xmpp-guard with the same rules
// from that source (and BENCH_GUARD_B_FLAGS, extra Node flags for it, e.g.
// a V8 setting): an A/B of two builds or settings in one run, through the
// same Prosody in the same rounds, which separate runs on a noisy machine
// cannot give. The goals table then adds guard-b ÷ xmpp-guard.
//
// --modes=flood alone, with BENCH_CPU_PROF=1, gives profiles of the flood only.
// BENCH_PERF=1 records each proxy's measured loads with Linux perf
// (`perf record -e cpu-clock -g`, kernel and native code included) into
// bench/results/perf/<setup>-<mode>-r<round>.data (the unmeasured pass: -warmup); with
// BENCH_PROXY_FLAGS=--perf-basic-prof the JavaScript frames have names.
// Summarise one with `npx tsx bench/perf-top.ts FILE`. BENCH_PERF=syscalls
// counts the proxy's system calls by kind, the packets it sends and its page faults instead
// (`perf stat` on kernel tracepoints) into <setup>-<mode>-r<round>.syscalls.csv.
//
// Prosody runs once; in front of it, in the same invocation: nothing
// (direct), the Node pipe proxy, HAProxy mode tcp and xmpp-guard with the
// shipped rules (rates scaled so every rule and LIMIT is evaluated and none
// limits, lib/rules.ts). Through each setup, `pairs` senders and as many
// receivers log in once (SASL PLAIN, bind, presence, each setup's sessions
// on their own resource) and stay for the whole run; for each round and each
// setup, in alternating order, two loads run over them while /proc counts
// the CPU of Prosody and of the proxy:
//
//   flood: each sender keeps a window of 64 messages in flight to its
//          receiver (closed loop: one more is written for each delivered),
//          `messages` per pair, several stanzas per write;
//   paced: each sender writes one stanza per write (one TCP segment, Nagle
//          off) every 5 ms, `messages / 5` per pair.
//
// A setup's figure is its CPU per delivered message: the proxy's (for
// direct: none) and Prosody's. The goals are ratios of xmpp-guard's to the
// pipe's and HAProxy's per-message CPU in the same run (min and median over
// rounds of the ratio in each round), after two unmeasured warm-up passes
// through every setup with a full collection in each Node proxy between
// them. The goals table also gives the ratio of each setup's least figure,
// which a baseline's disturbed rounds cannot pull down. CPU is each
// process's scheduler run time (lib/system.ts), exact to the microsecond.
// No thresholds: the table says where each goal stands.
//
// With --pin a speed meter (lib/speed-meter.ts) runs on the proxies' CPU
// through every load: a vCPU of this shared machine has spells of running
// about 1.5 × slower, and a round that falls in one says nothing about the
// setup it measured. The tables then add, per setup, which rounds ran on a
// quiet CPU (at most 10 % of the meter's runs during the load slower than
// 1.1 × its quiet speed, the 2nd percentile of its runs in the bench), and
// the goals table the ratio of least figures over those rounds alone.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import type { Socket } from "node:net";
import { availableParallelism } from "node:os";
import { haveProsody, startProsody, type ProsodyInstance } from "../test/helpers/prosody.js";
import { installCleanup, stopAll } from "./lib/children.js";
import { chooseGuardSource, guardLabel, guardSourceArg, type GuardSource } from "./lib/guard-source.js";
import { benchRules } from "./lib/rules.js";
import { median } from "./lib/stats.js";
import { procCpuMicros } from "./lib/system.js";
import { num, renderTable, times, type Table } from "./lib/table.js";
import { disturbedShare, quietSpeed, startSpeedMeter, type SpeedMeter } from "./lib/speed-meter.js";
import { startTargets, type Target, type TargetName } from "./lib/targets.js";
import { login } from "./lib/xmpp-login.js";

let SETUPS: TargetName[] = ["direct", "pipe", "haproxy", "xmpp-guard"];
const WINDOW = 64;
const PACE_MS = 5;
const TRICKLE_MS = 20;
const KEEPALIVE_MS = 15_000;
const END = Buffer.from("</message>");

type Mode = "flood" | "paced";

interface Options { rounds: number; messages: number; pairs: number; modes: Mode[]; guard: "auto" | GuardSource; pin: boolean; norules: boolean; b: GuardSource | undefined }

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 3, messages: 5000, pairs: 4, modes: ["flood", "paced"], guard: "auto", pin: false, norules: false, b: undefined };
  for (const arg of argv) {
    const [k, v] = arg.split("=", 2);
    if (k === "--rounds") o.rounds = Number(v);
    else if (k === "--messages") o.messages = Number(v);
    else if (k === "--pairs") o.pairs = Number(v);
    else if (k === "--modes") o.modes = (v ?? "").split(",").map((m) => { if (m !== "flood" && m !== "paced") throw new Error(`--modes: flood and/or paced, not ${m}`); return m; });
    else if (k === "--guard") o.guard = v === "auto" ? "auto" : guardSourceArg(v);
    else if (k === "--pin") o.pin = true;
    else if (k === "--norules") o.norules = true;
    else if (k === "--b") o.b = guardSourceArg(v);
    else throw new Error(`unknown argument ${arg}; usage: tsx bench/prosody-flood.ts [--rounds=N] [--messages=N] [--pairs=N] [--modes=flood,paced] [--guard=...] [--pin] [--norules] [--b=<dir>]`);
  }
  return o;
}

interface Pair { sender: Socket; receiver: Socket; to: string; sent: number; got: number; tail: Buffer }

function chat(to: string, i: number): string {
  return `<message to='${to}' type='chat' id='m${i}'><body>Message ${i}: tomorrow at ten works &amp; I will bring the caf\u00e9 notes.</body></message>`;
}

/** Count `</message>` in a receiver's bytes, across chunk borders. */
function countEnds(p: Pair, chunk: Buffer): number {
  const data = p.tail.length > 0 ? Buffer.concat([p.tail, chunk]) : chunk;
  let n = 0;
  for (let at = data.indexOf(END); at >= 0; at = data.indexOf(END, at + END.length)) n++;
  p.tail = Buffer.from(data.subarray(Math.max(0, data.length - END.length + 1)));
  return n;
}

async function connectPairs(port: number, prosody: ProsodyInstance, pairs: number, setup: number, prefix = ""): Promise<Pair[]> {
  const out: Pair[] = [];
  for (let i = 0; i < pairs; i++) {
    const resource = `r${setup}`;
    const receiver = await login(port, `${prefix}recv${i}`, "pw", prosody.domain, resource);
    const sender = await login(port, `${prefix}send${i}`, "pw", prosody.domain, resource);
    out.push({ sender: sender.sock, receiver: receiver.sock, to: receiver.jid, sent: 0, got: 0, tail: Buffer.alloc(0) });
  }
  // Let the presence broadcasts of the logins settle before measuring.
  await new Promise((r) => setTimeout(r, 300));
  return out;
}

/** Run one load to completion; resolves when every pair got `total` messages (or rejects after 120 s). */
function load(pairs: Pair[], total: number, mode: Mode): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const timers: NodeJS.Timeout[] = [];
    const watchdog = setTimeout(() => finish(new Error(`${mode}: timed out; delivered ${pairs.map((p) => p.got).join(", ")} of ${total} each`)), 120_000);
    function finish(err?: Error): void {
      clearTimeout(watchdog);
      for (const t of timers) clearInterval(t);
      for (const p of pairs) p.receiver.removeAllListeners("data");
      if (err) reject(err);
      else resolve();
    }
    const write = (p: Pair, n: number): void => {
      let text = "";
      for (let k = 0; k < n && p.sent < total; k++) text += chat(p.to, p.sent++);
      if (text) p.sender.write(text);
    };
    for (const p of pairs) {
      p.receiver.on("data", (chunk: Buffer) => {
        const n = countEnds(p, chunk);
        p.got += n;
        if (mode === "flood") write(p, n);
        if (p.got >= total && p.got - n < total && ++done === pairs.length) finish();
      });
      if (mode === "flood") write(p, WINDOW);
      else timers.push(setInterval(() => write(p, 1), PACE_MS));
    }
  });
}

/**
 * --pin: every proxy on the last CPU, Prosody and this load process on the
 * others (taskset, all threads); returns the proxies' CPU. A process that
 * moves between CPUs mid-run ran up to 1.5 × slower here, uniformly,
 * JavaScript and WebAssembly alike: it shares the slow spells of both vCPUs
 * (lib/speed-meter.ts).
 */
function pin(prosodyPid: number, targets: Target[]): number {
  const cpus = availableParallelism();
  if (cpus < 2) throw new Error("--pin needs two CPUs or more");
  const last = String(cpus - 1);
  const rest = cpus === 2 ? "0" : `0-${cpus - 2}`;
  const set = (cpu: string, pid: number): void => void execFileSync("taskset", ["-a", "-p", "-c", cpu, String(pid)], { stdio: "ignore" });
  for (const t of targets) if (t.pid !== null) set(last, t.pid);
  set(rest, prosodyPid);
  set(rest, process.pid);
  return cpus - 1;
}

const PERF_DIR = new URL("./results/perf/", import.meta.url).pathname;

/**
 * BENCH_PERF=1: `perf record` the proxy while one load runs (null when off or
 * for direct). `pass`: "r1", "r2", … for the measured rounds, "warmup" for the
 * unmeasured pass.
 */
function startPerf(target: Target, mode: Mode, pass: string): ChildProcess | null {
  const how = process.env.BENCH_PERF;
  if ((how !== "1" && how !== "syscalls") || target.pid === null) return null;
  mkdirSync(PERF_DIR, { recursive: true });
  const at = `${PERF_DIR}${target.name}-${mode}-${pass}`;
  if (how === "syscalls") {
    const events = [...SYSCALLS.map((c) => `syscalls:sys_enter_${c}`), "net:net_dev_xmit", "page-faults"].join(",");
    return spawn("perf", ["stat", "-x", ",", "-e", events, "-p", String(target.pid), "-o", `${at}.syscalls.csv`], { stdio: "ignore" });
  }
  return spawn("perf", ["record", "-q", "-e", "cpu-clock", "-g", "-p", String(target.pid), "-o", `${at}.data`], { stdio: "ignore" });
}

/**
 * The system calls BENCH_PERF=syscalls counts (kernel tracepoints; perf stat,
 * every thread of the proxy), with the packets sent in the proxy's context
 * (net_dev_xmit: its segments and the ACKs its reads send) and its page faults.
 */
const SYSCALLS = ["read", "write", "writev", "epoll_pwait", "epoll_wait", "epoll_ctl", "mprotect", "madvise", "futex"];

async function stopPerf(perf: ChildProcess | null): Promise<void> {
  if (perf === null || perf.exitCode !== null) return;
  const exited = new Promise((r) => perf.once("exit", r));
  perf.kill("SIGINT");
  await exited;
}

interface Sample {
  setup: TargetName;
  mode: Mode;
  proxyUsPerMsg: number | null;
  prosodyUsPerMsg: number;
  /** The proxy's read and write system calls per message (null for direct or without /proc). */
  syscallsPerMsg: { reads: number; writes: number } | null;
  /** The speed meter's runs on the proxies' CPU during the load (ns per iteration; empty without --pin). */
  speed: number[];
}

async function measure(target: Target, pairs: Pair[], prosody: ProsodyInstance, opts: Options, pass: string, meter: SpeedMeter | null): Promise<Sample[]> {
  const out: Sample[] = [];
  for (const mode of opts.modes) {
    const perPair = mode === "flood" ? opts.messages : Math.round(opts.messages / 5);
    for (const p of pairs) { p.sent = 0; p.got = 0; }
    const proxy0 = await target.cpuMicros();
    const prosody0 = procCpuMicros(prosody.pid) ?? 0;
    const sys0 = target.syscalls();
    const perf = startPerf(target, mode, pass);
    await meter?.mark();
    await load(pairs, perPair, mode);
    const speed = (await meter?.mark()) ?? [];
    await stopPerf(perf);
    const proxy1 = await target.cpuMicros();
    const prosody1 = procCpuMicros(prosody.pid) ?? 0;
    const sys1 = target.syscalls();
    const messages = perPair * pairs.length;
    out.push({
      setup: target.name,
      mode,
      proxyUsPerMsg: proxy0 === null || proxy1 === null ? null : (proxy1 - proxy0) / messages,
      prosodyUsPerMsg: (prosody1 - prosody0) / messages,
      syscallsPerMsg: sys0 && sys1 ? { reads: (sys1.reads - sys0.reads) / messages, writes: (sys1.writes - sys0.writes) / messages } : null,
      speed,
    });
  }
  return out;
}

/** One figure of every round of `setup` in `mode`, rounds without it left out. */
function figures(samples: Sample[], mode: Mode, setup: TargetName, pick: (s: Sample) => number | null): number[] {
  return samples.filter((s) => s.setup === setup && s.mode === mode).map(pick).filter((v): v is number => v !== null);
}

function summarise(samples: Sample[], mode: Mode): Table {
  const rows: string[][] = [];
  const of = (setup: TargetName, pick: (s: Sample) => number | null): number[] => figures(samples, mode, setup, pick);
  for (const setup of SETUPS) {
    const proxy = of(setup, (s) => s.proxyUsPerMsg);
    const server = of(setup, (s) => s.prosodyUsPerMsg);
    const reads = of(setup, (s) => s.syscallsPerMsg?.reads ?? null);
    const writes = of(setup, (s) => s.syscallsPerMsg?.writes ?? null);
    const share = of(setup, (s) => (s.proxyUsPerMsg === null ? null : s.proxyUsPerMsg / s.prosodyUsPerMsg));
    if (server.length === 0) continue;
    rows.push([
      setup,
      proxy.length ? `${num(Math.min(...proxy), 1)} / ${num(median(proxy), 1)}` : "–",
      `${num(Math.min(...server), 1)} / ${num(median(server), 1)}`,
      share.length ? `${num(Math.min(...share), 2)} / ${num(median(share), 2)}` : "–",
      reads.length ? `${num(median(reads), 2)} / ${num(median(writes), 2)}` : "–",
    ]);
  }
  return {
    title: `${mode}: CPU per delivered message (µs, min / median over rounds)`,
    headers: ["setup", "proxy CPU", "Prosody CPU", "proxy ÷ Prosody", "proxy reads / writes per msg (median)"],
    rows,
  };
}

/** xmpp-guard's per-message CPU over a baseline's, round by round (same round, same Prosody). */
function ratios(samples: Sample[], mode: Mode, base: TargetName, of: TargetName = "xmpp-guard"): number[] {
  const guard = samples.filter((s) => s.setup === of && s.mode === mode);
  const other = samples.filter((s) => s.setup === base && s.mode === mode);
  return guard.map((g, i) => (g.proxyUsPerMsg ?? NaN) / (other[i]?.proxyUsPerMsg ?? NaN)).filter(Number.isFinite);
}

/**
 * xmpp-guard's least per-message CPU over the baseline's least. Disturbance
 * (a busy neighbour on a shared machine, the other processes' work) only
 * ever adds CPU, so a setup's minimum is its least disturbed figure; when a
 * baseline has disturbed rounds and xmpp-guard has not, the per-round
 * ratios fall below what either costs, and this says so.
 */
function ratioOfMinima(samples: Sample[], mode: Mode, base: TargetName, of: TargetName = "xmpp-guard"): number {
  const least = (setup: TargetName): number => Math.min(...figures(samples, mode, setup, (s) => s.proxyUsPerMsg));
  return least(of) / least(base);
}

/** A meter run more than this × its quiet speed (quietSpeed) found the CPU disturbed… */
const QUIET_FACTOR = 1.1;
/** …and a load with at most this share of such runs counts as run on a quiet CPU. */
const QUIET_SHARE = 0.1;

/** What the speed meter says of the rounds: its quiet speed over the whole bench, and each sample's share of disturbed runs. */
interface Quiet {
  readonly best: number;
  readonly share: ReadonlyMap<Sample, number | null>;
  /** The samples measured on a quiet CPU. */
  readonly samples: Sample[];
}

/** The meter's reading of `samples` (speed-meter.ts), or undefined when it did not run (no --pin). */
function quietOf(samples: Sample[]): Quiet | undefined {
  const runs = samples.flatMap((s) => s.speed);
  if (runs.length === 0) return undefined;
  const best = quietSpeed(runs);
  const share = new Map(samples.map((s) => [s, disturbedShare(s.speed, best, QUIET_FACTOR)] as const));
  return { best, share, samples: samples.filter((s) => (share.get(s) ?? Infinity) <= QUIET_SHARE) };
}

/** How many of each setup's rounds ran on a quiet CPU, per mode. */
function quietTable(samples: Sample[], quiet: Quiet, modes: Mode[]): Table {
  const best = quiet.best;
  const rows = SETUPS.filter((setup) => samples.some((s) => s.setup === setup)).map((setup) => [
    setup,
    ...modes.map((mode) => {
      const all = samples.filter((s) => s.setup === setup && s.mode === mode);
      const shares = all.map((s) => quiet.share.get(s) ?? null).map((d) => (d === null ? "–" : `${Math.round(d * 100)} %`));
      return `${quiet.samples.filter((s) => s.setup === setup && s.mode === mode).length} of ${all.length} (${shares.join(", ")})`;
    }),
  ]);
  return {
    title: `Rounds on a quiet CPU: the speed meter's runs on the proxies' CPU during each load, the share slower than ${QUIET_FACTOR} × its quiet speed (2nd percentile of all its runs, ${num(best, 3)} ns); a round counts as quiet at ≤ ${QUIET_SHARE * 100} %`,
    headers: ["setup", ...modes.map((m) => `${m}: quiet rounds (share disturbed, per round)`)],
    rows,
  };
}

function goals(samples: Sample[], quiet: Sample[] | undefined): Table {
  const rows: string[][] = [];
  /** The quiet rounds' column (when the meter ran): least ÷ least over them, when both setups have one. */
  const quietLeast = (mode: Mode, base: TargetName, of: TargetName = "xmpp-guard", limit = Infinity): string[] => {
    if (quiet === undefined) return [];
    const has = (setup: TargetName): boolean => figures(quiet, mode, setup, (s) => s.proxyUsPerMsg).length > 0;
    if (!has(base) || !has(of)) return ["no quiet round"];
    const m = ratioOfMinima(quiet, mode, base, of);
    return [`${times(m)}${m <= limit ? "" : " (over)"}`];
  };
  const goal = (label: string, mode: Mode, base: TargetName, limit: number): void => {
    const r = ratios(samples, mode, base);
    if (r.length === 0) return void rows.push([label, `≤ ${limit} ×`, "not measured", "–", "–", ...quietLeast(mode, base).map(() => "–")]);
    const m = ratioOfMinima(samples, mode, base);
    rows.push([label, `≤ ${limit} ×`, `${times(Math.min(...r))} / ${times(median(r))}`, median(r) <= limit ? "met" : "not met", `${times(m)}${m <= limit ? "" : " (over)"}`, ...quietLeast(mode, base, "xmpp-guard", limit)]);
  };
  goal("flood, CPU per message, xmpp-guard ÷ Node pipe", "flood", "pipe", 1.25);
  goal("flood, CPU per message, xmpp-guard ÷ HAProxy", "flood", "haproxy", 2);
  goal("paced, CPU per message, xmpp-guard ÷ Node pipe", "paced", "pipe", 1.1);
  goal("paced, CPU per message, xmpp-guard ÷ HAProxy", "paced", "haproxy", 1.5);
  // Ratios with no goal, in both loads: `of`'s figure over `base`'s (below 1: `of` costs less).
  const compare = (label: string, base: TargetName, of: TargetName): void => {
    for (const mode of ["flood", "paced"] as const) {
      const r = ratios(samples, mode, base, of);
      if (r.length === 0) continue;
      rows.push([`${mode}, ${label}`, "–", `${times(Math.min(...r))} / ${times(median(r))}`, "–", times(ratioOfMinima(samples, mode, base, of)), ...quietLeast(mode, base, of)]);
    }
  };
  if (SETUPS.includes("guard-norules")) {
    // Where the proxy stands without its policy (the relay, framing and
    // stream tracking alone), and what the shipped rules add to it.
    compare("guard-norules ÷ Node pipe (no rules)", "pipe", "guard-norules");
    compare("xmpp-guard ÷ guard-norules (what the rules add)", "guard-norules", "xmpp-guard");
  }
  if (SETUPS.includes("guard-b")) compare("guard-b ÷ xmpp-guard (the A/B)", "xmpp-guard", "guard-b");
  return {
    title: "Goals through Prosody (ratio in the same round; min / median over rounds; and the ratio of each setup's least figure)",
    headers: ["goal", "target", "measured (min / median)", "median", "least ÷ least", ...(quiet === undefined ? [] : ["least ÷ least, quiet rounds"])],
    rows,
  };
}

async function main(): Promise<void> {
  installCleanup();
  const opts = parseArgs(process.argv.slice(2));
  if (opts.norules) SETUPS = [...SETUPS, "guard-norules"];
  const bFlags = process.env.BENCH_GUARD_B_FLAGS?.split(/\s+/).filter(Boolean) ?? [];
  if (opts.b !== undefined || bFlags.length > 0) SETUPS = [...SETUPS, "guard-b"];
  if (!haveProsody()) {
    console.log("skipped: prosody not installed (Debian: apt-get install prosody)");
    return;
  }
  const guard = chooseGuardSource(opts.guard);
  console.log(`xmpp-guard from ${guardLabel(guard.source)}: ${guard.reason}`);
  const prosody = await startProsody({ offline: false, muc: false });
  const targets: Target[] = [];
  const standing: Pair[] = [];
  const measured = new Map<Target, Pair[]>();
  let trickle: NodeJS.Timeout | undefined;
  let keepalive: NodeJS.Timeout | undefined;
  let meter: SpeedMeter | null = null;
  try {
    await prosody.createUser("standing-send0", "pw");
    await prosody.createUser("standing-recv0", "pw");
    for (let i = 0; i < opts.pairs; i++) {
      await prosody.createUser(`send${i}`, "pw");
      await prosody.createUser(`recv${i}`, "pw");
    }
    const b = SETUPS.includes("guard-b") ? { guard: opts.b ?? guard.source, flags: bFlags } : undefined;
    const skipped = await startTargets(prosody.port, { names: SETUPS, guard: guard.source, rules: benchRules().path, ...(b ? { b } : {}) }, targets);
    for (const s of skipped) console.log(`${s.name}: ${s.reason}`);
    if (opts.pin) meter = startSpeedMeter(pin(prosody.pid, targets));
    // A proxy in front of a server always has sessions open and some traffic
    // going through. Without that, every round's pairs would be a proxy's
    // only sessions and the setup would sit idle while the others ran: V8
    // would collect the hidden classes of the closed sessions' objects and
    // throw away the code optimised for them ("weak objects" under
    // --trace-deopt), and age out the idle functions' bytecode, so that each
    // round would start by parsing and compiling the data path again. So
    // one pair stays logged in through each setup for the whole run and
    // exchanges a message every TRICKLE_MS, the same for every setup (about
    // 0.1 % of a flood round's messages, but about 6 % of a paced round's,
    // which lasts 20 s at the defaults: it adds the same small cost per
    // second to every setup's paced figure).
    // Each setup's pair binds its own resource: a second login with the same
    // one would replace the first at the server (resource conflict), and only
    // the last setup's pair would stay connected and carry the trickle.
    for (const [index, t] of targets.entries()) {
      const pair = await connectPairs(t.port, prosody, 1, index, "standing-");
      await load(pair, 200, "flood");
      standing.push(...pair);
    }
    // The measured pairs, too, log in once per setup and stay for the whole
    // run, as a server's sessions do. Closing them after each round made V8
    // throw away code optimised while they were open (it had embedded objects
    // of theirs: "weak objects" under --trace-deopt), in the pipe and in
    // xmpp-guard alike, and --trace-opt showed the next measured round
    // optimising the data path (judge, #run, peerStanza, …) all over again.
    for (const [index, t] of targets.entries()) measured.set(t, await connectPairs(t.port, prosody, opts.pairs, index));
    // While the other setups run, a setup's pairs are idle for minutes: a
    // space every KEEPALIVE_MS from each end keeps them inside HAProxy's idle
    // timeouts (whitespace between stanzas; it is no message and counts nothing).
    keepalive = setInterval(() => {
      for (const p of [...measured.values()].flat()) { p.sender.write(" "); p.receiver.write(" "); }
    }, KEEPALIVE_MS);
    keepalive.unref();
    let trickled = 0;
    for (const p of standing) p.receiver.on("data", () => {});
    trickle = setInterval(() => {
      for (const p of standing) p.sender.write(chat(p.to, trickled));
      trickled++;
    }, TRICKLE_MS);
    trickle.unref();
    // Unmeasured passes through every setup first, so that no setup's
    // first round pays for its JIT warming up or its first logins.
    const warmup = { ...opts, messages: Math.max(500, Math.round(opts.messages / 4)) };
    for (const t of targets) await measure(t, measured.get(t)!, prosody, warmup, "warmup", meter);
    // The logins' and the warm-up's own objects die at a proxy's next full
    // collection, and with them the code V8 optimised with one embedded
    // ("weak objects" under --trace-deopt: judge, onStreamRead, writeOrBuffer…,
    // in the pipe and in xmpp-guard). Left alone, that collection came right
    // before the first measured round, which then spent a tenth of its CPU
    // compiling the data path again (perf: "V8 compilers" 433 samples of the
    // guard's 4,306 in round 1, 17 in round 2). So: collect now (memory()
    // runs gc() in a Node proxy), then warm up once more (after this, 82 of
    // 4,188 in round 1: the recompiling happens in the second warm-up).
    for (const t of targets) await t.memory();
    for (const t of targets) await measure(t, measured.get(t)!, prosody, warmup, "warmup2", meter);
    const samples: Sample[] = [];
    for (let round = 0; round < opts.rounds; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        const got = await measure(t, measured.get(t)!, prosody, opts, `r${round + 1}`, meter);
        samples.push(...got);
        for (const s of got) {
          const sys = s.syscallsPerMsg ? `, ${num(s.syscallsPerMsg.reads, 2)} reads + ${num(s.syscallsPerMsg.writes, 2)} writes` : "";
          const speed = s.speed.length > 0 ? `, speed meter ${num(Math.min(...s.speed), 2)}–${num(Math.max(...s.speed), 2)} ns (${s.speed.length} runs)` : "";
          console.log(`round ${round + 1}, ${s.setup}, ${s.mode}: proxy ${s.proxyUsPerMsg === null ? "–" : num(s.proxyUsPerMsg, 1)} µs/msg${sys}, Prosody ${num(s.prosodyUsPerMsg, 1)} µs/msg${speed}`);
        }
      }
    }
    console.log("");
    const quiet = quietOf(samples);
    const tables = [...opts.modes.map((m) => summarise(samples, m)), ...(quiet ? [quietTable(samples, quiet, opts.modes)] : []), goals(samples, quiet?.samples)];
    for (const t of tables) console.log(renderTable(t) + "\n");
  } finally {
    clearInterval(trickle);
    clearInterval(keepalive);
    meter?.stop();
    for (const p of [...standing, ...measured.values()].flat()) { p.sender.destroy(); p.receiver.destroy(); }
    for (const t of targets) await t.stop();
    await prosody.stop();
    await stopAll();
  }
}

await main();
