// tsung suite (bench/README.md, "tsung"): the Debian tsung load generator drives a real
// Prosody four times in the same run: directly, through a plain Node pipe()
// proxy, through HAProxy (mode tcp), and through xmpp-guard (shipped rule
// set, rates scaled as in the throughput suite), with the same scenario: M users log in (SASL PLAIN, bind, session, presence), then each
// sends `loops` chat messages of `size` bytes to random online users,
// `think` seconds apart, then closes. Offered load ≈ users / think msg/s.
//
// Reported per setup, over the chat phase (tsung's 1-s statistics, the first
// and last partial seconds left out): chat messages sent per second, bytes/s
// the server delivered back to tsung (every delivered chat comes back once,
// so delivered bytes compare delivered messages between setups), and the CPU
// seconds of Prosody and of xmpp-guard over the whole run (/proc). Goals:
// delivered within 5 % of direct; xmpp-guard's CPU ≤ 15 % of Prosody's.
//
// Bounded: the scenario's <load duration>, tsung under `timeout`, and tsung's
// Erlang distribution and epmd kept on loopback (epmd is stopped afterwards
// if this run started it).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { canConnect, freePort, haveProsody, startProsody } from "../test/helpers/prosody.js";
import { benchRules } from "./lib/rules.js";
import { procCpuMicros } from "./lib/system.js";
import { num, pct, type Table } from "./lib/table.js";
import { guardModule, type GuardSource } from "./lib/guard-source.js";
import { startTargets, type Target } from "./lib/targets.js";

export interface TsungOptions {
  users: number;
  /** Seconds between one user's messages. */
  think: number;
  loops: number;
  /** Chat body size in bytes. */
  size: number;
}

export type TsungSetup = "direct" | "pipe" | "haproxy" | "xmpp-guard";

export interface TsungFigure {
  setup: TsungSetup;
  usersLoggedIn: number;
  chatsSent: number;
  sentPerSec: number;
  /** Bytes/s from the server to tsung over the chat phase. */
  deliveredBytesPerSec: number;
  /** Received / sent bytes over the chat phase (about 1.3 when every chat is delivered). */
  rcvSentRatio: number;
  errors: Record<string, number>;
  prosodyCpuSec: number;
  /** CPU seconds of the proxy in front (null for direct). */
  guardCpuSec: number | null;
  chatSeconds: number;
}

const TSUNG = "/usr/bin/tsung";

export function haveTsung(): boolean {
  return existsSync(TSUNG);
}

/** The scenario file. Hand-written for this suite; see tsung's manual for the ts_jabber options. */
export function scenario(port: number, o: TsungOptions, maxSeconds: number): string {
  return `<?xml version="1.0"?>
<!DOCTYPE tsung SYSTEM "/usr/share/tsung/tsung-1.0.dtd">
<tsung loglevel="notice" dumptraffic="false" version="1.0">
  <clients><client host="localhost" use_controller_vm="true" maxusers="${o.users + 10}"/></clients>
  <servers><server host="127.0.0.1" port="${port}" type="tcp"/></servers>
  <load duration="${maxSeconds}" unit="second">
    <arrivalphase phase="1" duration="${Math.ceil(o.users / 50) + 1}" unit="second">
      <users maxnumber="${o.users}" arrivalrate="50" unit="second"/>
    </arrivalphase>
  </load>
  <options>
    <option type="ts_jabber" name="global_number" value="${o.users}"/>
    <option type="ts_jabber" name="userid_max" value="${o.users}"/>
    <option type="ts_jabber" name="domain" value="localhost"/>
    <option type="ts_jabber" name="username" value="tsung"/>
    <option type="ts_jabber" name="passwd" value="pass"/>
  </options>
  <sessions>
    <session probability="100" name="chat" type="ts_jabber" bidi="true">
      <request><jabber type="connect" ack="local"/></request>
      <transaction name="auth">
        <request><jabber type="auth_sasl" ack="local"/></request>
        <request><jabber type="connect" ack="local"/></request>
        <request><jabber type="auth_sasl_bind" ack="local"/></request>
        <request><jabber type="auth_sasl_session" ack="local"/></request>
      </transaction>
      <request><jabber type="presence:initial" ack="no_ack"/></request>
      <thinktime value="${Math.ceil(o.users / 50) + 2}" random="false"/>
      <for from="1" to="${o.loops}" var="i">
        <transaction name="chat">
          <request><jabber type="chat" ack="no_ack" size="${o.size}" destination="online" stamped="true"/></request>
        </transaction>
        <thinktime value="${o.think}" random="false"/>
      </for>
      <thinktime value="2" random="false"/>
      <transaction name="close"><request><jabber type="close" ack="no_ack"/></request></transaction>
    </session>
  </sessions>
</tsung>
`;
}

interface Dump {
  at: number;
  stats: Map<string, number[]>;
}

/** tsung.log: "# stats: dump at EPOCH" blocks of "stats: NAME v1 v2 ..." lines. */
export function parseTsungLog(text: string): Dump[] {
  const dumps: Dump[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("# stats: dump at")) {
      dumps.push({ at: Number(line.trim().split(/\s+/).pop()), stats: new Map() });
    } else if (line.startsWith("stats: ") && dumps.length > 0) {
      const [, name, ...values] = line.trim().split(/\s+/);
      dumps[dumps.length - 1]!.stats.set(name!, values.map(Number));
    }
  }
  return dumps;
}

/** Chat-phase figures from a parsed log: full seconds with chats, first and last left out. */
export function summarise(dumps: Dump[]): Pick<TsungFigure, "usersLoggedIn" | "chatsSent" | "sentPerSec" | "deliveredBytesPerSec" | "rcvSentRatio" | "errors" | "chatSeconds"> {
  const active: { dt: number; chats: number; sent: number; rcv: number }[] = [];
  const errors: Record<string, number> = {};
  let prev: number | null = null;
  let chats = 0;
  let auth = 0;
  for (const d of dumps) {
    const dt = prev === null ? 1 : d.at - prev;
    prev = d.at;
    const c = d.stats.get("tr_chat")?.[0] ?? 0;
    chats += c;
    auth += d.stats.get("tr_auth")?.[0] ?? 0;
    for (const [name, v] of d.stats) if (name.startsWith("error_")) errors[name] = (errors[name] ?? 0) + (v[0] ?? 0);
    if (c > 0) active.push({ dt, chats: c, sent: d.stats.get("size_sent")?.[0] ?? 0, rcv: d.stats.get("size_rcv")?.[0] ?? 0 });
  }
  const core = active.length > 2 ? active.slice(1, -1) : active;
  const span = core.reduce((a, x) => a + x.dt, 0) || 1;
  const sent = core.reduce((a, x) => a + x.sent, 0);
  const rcv = core.reduce((a, x) => a + x.rcv, 0);
  return {
    usersLoggedIn: auth,
    chatsSent: chats,
    sentPerSec: core.reduce((a, x) => a + x.chats, 0) / span,
    deliveredBytesPerSec: rcv / span,
    rcvSentRatio: sent > 0 ? rcv / sent : 0,
    errors,
    chatSeconds: span,
  };
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => { out += d.toString(); });
    child.stderr.on("data", (d: Buffer) => { out += d.toString(); });
    child.on("close", (code) => resolve({ code, out }));
  });
}

interface GuardProcess {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/**
 * xmpp-guard as production runs it: `node cli.js run -c FILE` from the
 * compiled build, no loader hooks; the config is the shipped defaults plus
 * one listener, the bench rule set, and no admin port.
 */
async function startGuardCli(source: GuardSource, upstreamPort: number, dir: string): Promise<GuardProcess> {
  if (source === "src") throw new Error("the tsung suite runs compiled xmpp-guard: use --guard=dist or build");
  const port = await freePort();
  const config = join(dir, "guard.yaml");
  writeFileSync(config, [
    "listeners:",
    `  - { name: c2s, type: c2s, listen: "127.0.0.1:${port}", upstream: "127.0.0.1:${upstreamPort}" }`,
    `firewall: { scripts: [${JSON.stringify(benchRules().path)}], watch: false }`,
    "admin: { listen: null }",
    "log: { level: warn }",
    `state: { path: ${JSON.stringify(join(dir, "state.sqlite"))} }`,
    "",
  ].join("\n"));
  const prof = process.env.BENCH_CPU_PROF === "1" ? ["--cpu-prof", `--cpu-prof-dir=${join(fileURLToPath(new URL("./results/profiles/", import.meta.url)))}`] : [];
  const child = spawn(process.execPath, [...prof, fileURLToPath(guardModule(source, "cli")), "run", "-c", config], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
  const deadline = Date.now() + 15_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`xmpp-guard did not start: ${stderr.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    pid: child.pid!,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    }),
  };
}

async function runTsung(port: number, o: TsungOptions, dir: string): Promise<Dump[]> {
  const chatSeconds = o.loops * o.think;
  const maxSeconds = Math.ceil(chatSeconds + o.users / 50 + 15);
  const xmlPath = join(dir, `scenario-${port}.xml`);
  writeFileSync(xmlPath, scenario(port, o, maxSeconds));
  const logDir = mkdtempSync(join(dir, "log-"));
  const env = {
    ...process.env,
    ERL_EPMD_ADDRESS: "127.0.0.1",
    ERL_AFLAGS: "-tsung_controller dumpstats_interval 1000 -kernel inet_dist_use_interface {127,0,0,1}",
  };
  const r = await run("timeout", [String(maxSeconds + 60), TSUNG, "-n", "-l", logDir, "-f", xmlPath, "start"], env);
  const runDir = readdirSync(logDir).map((d) => join(logDir, d)).find((d) => existsSync(join(d, "tsung.log")));
  if (runDir === undefined) throw new Error(`tsung wrote no tsung.log (exit ${r.code}): ${r.out.slice(-500)}`);
  return parseTsungLog(readFileSync(join(runDir, "tsung.log"), "utf8"));
}

export async function runTsungSuite(guardSource: GuardSource, o: TsungOptions, progress: (line: string) => void): Promise<{ figures: TsungFigure[]; skipped: string | null }> {
  if (!haveTsung()) return { figures: [], skipped: "skipped: tsung not installed (Debian: apt-get install tsung)" };
  if (!haveProsody()) return { figures: [], skipped: "skipped: prosody not installed (Debian: apt-get install prosody)" };
  const dir = mkdtempSync(join(tmpdir(), "xmpp-guard-tsung-"));
  const epmdWasUp = await canConnect(4369); // Erlang's port mapper
  const prosody = await startProsody({ offline: false, muc: false });
  let guard: GuardProcess | null = null;
  const baselines: Target[] = [];
  const figures: TsungFigure[] = [];
  try {
    for (let i = 1; i <= o.users; i++) await prosody.createUser(`tsung${i}`, `pass${i}`);
    guard = await startGuardCli(guardSource, prosody.port, dir);
    // The L4 baselines in front of the same Prosody: what any proxy costs here.
    const skipped = await startTargets(prosody.port, { names: ["pipe", "haproxy"], guard: guardSource, rules: "" }, baselines);
    for (const s of skipped) progress(`  tsung, ${s.name}: ${s.reason}`);
    const g = guard;
    const setups: { setup: TsungSetup; port: number; cpu: () => Promise<number | null> }[] = [
      { setup: "direct", port: prosody.port, cpu: () => Promise.resolve(null) },
      ...baselines.map((t) => ({ setup: t.name as TsungSetup, port: t.port, cpu: () => t.cpuMicros() })),
      { setup: "xmpp-guard", port: g.port, cpu: () => Promise.resolve(procCpuMicros(g.pid)) },
    ];
    for (const { setup, port, cpu } of setups) {
      const p0 = procCpuMicros(prosody.pid) ?? 0;
      const g0 = await cpu();
      const dumps = await runTsung(port, o, dir);
      const p1 = procCpuMicros(prosody.pid) ?? 0;
      const g1 = await cpu();
      const f: TsungFigure = {
        setup,
        ...summarise(dumps),
        prosodyCpuSec: (p1 - p0) / 1e6,
        guardCpuSec: g0 !== null && g1 !== null ? (g1 - g0) / 1e6 : null,
      };
      figures.push(f);
      progress(`  tsung, ${setup}: ${num(f.sentPerSec)} chats/s sent, ${num(f.deliveredBytesPerSec / 1000)} kB/s delivered (rcv/sent ${num(f.rcvSentRatio, 2)}), Prosody CPU ${num(f.prosodyCpuSec, 2)} s${f.guardCpuSec === null ? "" : `, proxy CPU ${num(f.guardCpuSec, 2)} s`}`);
    }
  } finally {
    for (const t of baselines) await t.stop();
    await guard?.stop();
    await prosody.stop();
    if (!epmdWasUp) await run("epmd", ["-kill"], process.env);
    rmSync(dir, { recursive: true, force: true });
  }
  return { figures, skipped: null };
}

export function tsungTable(figures: TsungFigure[], o: TsungOptions, skipped: string | null): Table {
  const direct = figures.find((f) => f.setup === "direct");
  return {
    title: `tsung → Prosody, direct vs through a proxy (${o.users} users × ${num(1 / o.think, 1)} msg/s, ${o.loops} messages each)`,
    headers: ["setup", "logins", "chats/s sent", "delivered kB/s", "delivered vs direct", "rcv/sent", "Prosody CPU s", "proxy CPU s", "proxy / Prosody CPU", "errors"],
    rows: figures.map((f) => [
      f.setup,
      num(f.usersLoggedIn),
      num(f.sentPerSec),
      num(f.deliveredBytesPerSec / 1000, 1),
      direct && f !== direct ? pct(f.deliveredBytesPerSec / direct.deliveredBytesPerSec) : "–",
      num(f.rcvSentRatio, 2),
      num(f.prosodyCpuSec, 2),
      f.guardCpuSec === null ? "–" : num(f.guardCpuSec, 2),
      f.guardCpuSec === null ? "–" : pct(f.guardCpuSec / f.prosodyCpuSec),
      Object.keys(f.errors).length === 0 ? "0" : Object.entries(f.errors).map(([k, v]) => `${k}=${v}`).join(" "),
    ]),
    notes: [
      `Offered ≈ ${num(o.users / o.think)} chats/s of ${o.size}-byte bodies; chat phase ≈ ${num(o.loops * o.think)} s; figures over its full seconds (tsung 1-s stats). Goals (xmpp-guard): delivered within 5 % of direct; proxy CPU ≤ 15 % of Prosody's. pipe (Node net + pipe()) and haproxy (mode tcp) show what a byte-copying proxy costs in the same place.`,
      "Delivered = bytes the server sent back to tsung per second: every delivered chat comes back once, so the ratio between setups is the ratio of delivered messages (tsung's own latency count undercounts under load).",
      ...(skipped ? [skipped] : []),
    ],
  };
}

// Standalone: tsx bench/tsung.ts [users think loops]
if (import.meta.url === `file://${process.argv[1]}`) {
  const [users, think, loops] = process.argv.slice(2).map(Number);
  const o: TsungOptions = { users: users || 50, think: think || 0.04, loops: loops || 150, size: 64 };
  const { chooseGuardSource } = await import("./lib/guard-source.js");
  const { figures, skipped } = await runTsungSuite(chooseGuardSource("auto").source, o, (l) => console.log(l));
  const { renderTable } = await import("./lib/table.js");
  console.log(renderTable(tsungTable(figures, o, skipped)));
}
