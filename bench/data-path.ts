// CPU per delivered message on xmpp-guard's JavaScript data path, in one
// process and without sockets: the part of prosody-flood.ts's per-message
// figure that is xmpp-guard's own (the rest is the kernel, libuv and Node's
// streams, which the Node pipe pays too). Each message crosses the proxy
// twice, as in the flood through Prosody:
//
//   in:  a sender's chat message, in read chunks of `batch` messages:
//        framer → kind → stanza view → tracker → pipeline (preroute) → write batch
//   out: Prosody's delivery of it to the receiver (from stamped, xml:lang):
//        framer → kind → stanza view → pipeline (deliver) → write batch
//
// `pairs` sender/receiver sessions interleave, each with its own tracker
// and framers, so per-key caches see several keys as they do in the flood.
// The pipeline is the firewall with the shipped rules (bench/lib/rules.ts:
// rates scaled so every LIMIT takes a token and none runs dry), the
// receivers known to be online. The session's own steps (gate, statistics,
// flags) are not run: this is the cost of framing and judging.
//
// CPU ns per message (process.cpuUsage), median of rounds. To compare two
// builds (A/B: `npx tsc -p tsconfig.json --outDir .ab/x`), give both:
// --guard=<dir> --against=<dir> loads both into this one process and
// alternates them round by round (each warmed up first), so a machine whose
// speed drifts during the run (a shared VM's neighbours) moves both alike;
// the line then also gives the ratio of their medians and of each round's
// pair. Two copies of one build (cp -r) gave ratios from 0.88 to 1.09,
// each steady within its process: where a build's code and data land decides
// several percent, whatever the code. So one process resolves nothing
// finer than ~10 %; run several (both ways round) and take the geometric
// mean of their ratios, which stays clear of drift in the machine's speed.
//
// --evict=KiB writes to that much other memory before each chunk (one byte
// per cache line), as the kernel and the server do between two reads of the
// real proxy, so the data path finds its data caches cold. The figure is then
// the wall time of the chunks alone (pin the process to an idle CPU), less
// the clock's own cost. The timed spans may still absorb the tail of the
// eviction's own memory traffic (its dirty lines are written back while the
// chunk runs): read the figure as an upper bound, and compare it with a
// --cpu-prof of the same run, which charges that traffic to `evict`.
//
// --upto=framer|view stops each stanza early, to see what each part costs:
// framer (frames found and batched, nothing read), view (+ kind, the stanza
// view and the tracker), judge (the default: + the pipeline). The parts do
// not add up: values the pipeline reads lazily (the server's stanza's start
// tag, to, from, type) move to judge, and V8 compiles each configuration
// differently (on one run: 364, 430 and 1,216 ns, while a profile of the
// whole path puts the firewall's own functions at about a quarter of it).
// Read the framer figure as the floor of framing alone.
//
// --work=<steps> says what each stanza gets instead (comma list; the
// default is judge): `view` (nothing more: --upto=view), `addresses` (read
// the view's to, from and effective type, which the firewall would read
// first), `judge`, `judge2` (judge the same view once more: what judging
// costs with everything it reads already at hand), `fixed-clock` (the rules
// on a clock that never moves: no clock reading per chunk). With --against,
// --b-work and --b-rules set the second build's (default: the same as the
// first's), so that two ways of running one build alternate in one process
// (two copies of one build: `cp -r dist .ab/copy`). For instance, what
// reading the addresses costs: --work=view,addresses --b-work=view.
//
//   npx tsx bench/data-path.ts [--guard=auto|dist|build|src|<dir>] [--against=<dir>] [--messages=N] [--rounds=N] [--pairs=N] [--batch=N] [--evict=KiB] [--upto=framer|view|judge] [--rules=<file>] [--work=<steps>] [--b-work=<steps>] [--b-rules=<file>]

import { readFileSync } from "node:fs";
import type { Writable } from "node:stream";
import { chooseGuardSource, guardLabel, guardModule } from "./lib/guard-source.js";
import { DEFAULT_RULES, RATE_SCALE, scaleRates } from "./lib/rules.js";
import { median } from "./lib/stats.js";

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const MESSAGES = Number(arg("messages") ?? 400_000);
const ROUNDS = Number(arg("rounds") ?? 5);
const PAIRS = Number(arg("pairs") ?? 4);
const BATCH = Number(arg("batch") ?? 20);
const EVICT_BYTES = Number(arg("evict") ?? 0) * 1024;
// Another rule file instead of the shipped one (its rates scaled the same way), to see what each rule costs.
const RULES = arg("rules") ?? DEFAULT_RULES;
// How far each stanza goes: framer (frames found, batched), view (+ kind, stanza view, tracker), judge (+ the pipeline: all).
const UPTO = ["framer", "view", "judge"].indexOf(arg("upto") ?? "judge");
if (UPTO < 0) throw new Error("--upto: framer, view or judge");

/** What each stanza that reaches the view gets, per build (--work, --b-work). */
interface Work { readonly addresses: boolean; readonly judge: boolean; readonly judge2: boolean; readonly fixedClock: boolean; /** As given, for the report (undefined: the default). */ readonly given: string | undefined }
function work(list: string | undefined): Work {
  const steps = new Set((list ?? (UPTO > 1 ? "judge" : "view")).split(","));
  for (const s of steps) if (!["view", "addresses", "judge", "judge2", "fixed-clock"].includes(s)) throw new Error(`--work: view, addresses, judge, judge2, fixed-clock; not ${s}`);
  return { addresses: steps.has("addresses"), judge: steps.has("judge") || steps.has("judge2"), judge2: steps.has("judge2"), fixedClock: steps.has("fixed-clock"), given: list };
}
const WORK = [work(arg("work")), work(arg("b-work") ?? arg("work"))] as const;
const RULES_OF = [RULES, arg("b-rules") ?? RULES] as const;
/** Where read addresses go, so that reading them is not optimised away. */
let addressBytes = 0;
const choices = [chooseGuardSource((arg("guard") ?? "auto") as "auto")];
const against = arg("against");
if (against !== undefined) choices.push(chooseGuardSource(against as "auto"));

const DOMAIN = "localhost";
const HEADER_IN = `<?xml version='1.0'?><stream:stream to='${DOMAIN}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
const HEADER_OUT = `<?xml version='1.0'?><stream:stream from='${DOMAIN}' id='s1' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>`;
const body = (i: number): string => `<body>Message ${i}: tomorrow at ten works &amp; I will bring the caf\u00e9 notes.</body>`;

interface Pair { sender: { write(c: Buffer): void }; receiver: { write(c: Buffer): void }; chunksIn: Buffer[]; chunksOut: Buffer[] }

/** One build of xmpp-guard, set up with its own rule set, sessions and framers. */
interface Build {
  readonly label: string;
  readonly pairs: readonly Pair[];
  /** The V8 inlining budget the build sets (undefined: an older build that sets none). */
  readonly inlineBudget: number | undefined;
}

async function load(source: string, rules: string, w: Work): Promise<Build> {
  const m = async <T>(p: string): Promise<T> => (await import(guardModule(source, p))) as T;
  const { compileRuleSources } = await m<typeof import("../src/firewall/compile.js")>("firewall/compile");
  const { knowledgeProviders } = await m<typeof import("../src/knowledge/providers.js")>("knowledge/providers");
  const { FirewallStage } = await m<typeof import("../src/firewall/stage.js")>("firewall/stage");
  const { Pipeline } = await m<typeof import("../src/policy/pipeline.js")>("policy/pipeline");
  const { WriteBatch } = await m<typeof import("../src/net/write-batch.js")>("net/write-batch");
  const { FRAME_STANZA } = await m<typeof import("../src/xml/framer.js")>("xml/framer");
  const { createFramer } = await m<typeof import("../src/xml/framer-wasm.js")>("xml/framer-wasm");
  const { kindOf } = await m<typeof import("../src/xml/stanza.js")>("xml/stanza");
  const { StreamTracker } = await m<typeof import("../src/stream/tracker.js")>("stream/tracker");
  // The proxy raises V8's inlining budget when it starts (util/v8-tuning.ts); so does this
  // bench, with a build that has the setting (an older one runs with V8's default). The
  // flag is the process's: with two builds, the last one loaded that sets it decides.
  const tuning = await m<Partial<typeof import("../src/util/v8-tuning.js")>>("util/v8-tuning").catch(() => ({}) as Partial<typeof import("../src/util/v8-tuning.js")>);
  const inlineBudget = tuning.tuneV8?.();

  // The proxy's clock (wiring.ts): read once per chunk where the build has one.
  const clock = await m<Partial<typeof import("../src/shaping/clock.js")> & Pick<typeof import("../src/shaping/clock.js"), "realClock">>("shaping/clock");
  const turns = { begin: clock.beginTurn ?? (() => {}), end: clock.endTurn ?? (() => {}) };
  // The receivers are online, as the proxy learns from their binds (TO FULL JID
  // holds, so the stranger rules stop there, as in the flood through Prosody).
  const online = new Set(Array.from({ length: PAIRS }, (_, p) => `recv${p}@${DOMAIN}/r0`));
  // The set never changes: its version (which the firewall's memo keys) stays 0, as the proxy's directory's does between binds.
  const sessions = { isOnline: (jid: string) => online.has(jid), hasSentTo: () => false, version: 0 };
  const providers = { ...knowledgeProviders(), sessions, directedPresence: sessions };
  const ruleClock = w.fixedClock ? { now: () => 1000 } : (clock.turnClock ?? clock.realClock);
  const compiled = compileRuleSources([{ file: rules, text: scaleRates(readFileSync(rules, "utf8"), RATE_SCALE) }], { providers, clock: ruleClock });
  if (compiled.ruleset === undefined) throw new Error(compiled.errors.map((e) => e.format()).join("\n"));
  const pipeline = new Pipeline([new FirewallStage({ ruleset: compiled.ruleset })]);
  const sink = { write: () => true, cork() {}, uncork() {}, writableNeedDrain: false } as unknown as Writable;

  /** One direction of one session: its framer feeds the steps the session runs per stanza. */
  function direction(tracker: InstanceType<typeof StreamTracker>, session: object, dir: "inbound" | "outbound"): { write(chunk: Buffer): void } {
    const batch = new WriteBatch();
    let passed = 0;
    const framer = createFramer({
      onFrame(kind, data, start, end) {
        if (kind === FRAME_STANZA) {
          const k = kindOf(data, start, end, dir === "inbound" ? tracker.inbound : tracker.outbound);
          if (UPTO > 0 && pipeline.wants(dir, k)) {
            const view = dir === "inbound" ? tracker.peerView(data, start, end) : tracker.serverView(data, start, end);
            try {
              if (dir === "inbound" && (view.head.duplicate !== null || tracker.peerStanza(view) !== null)) throw new Error("refused");
              if (w.addresses) addressBytes += (view.to?.length ?? 0) + (view.from?.length ?? 0) + (view.effectiveType?.length ?? 0);
              if (w.judge && pipeline.judge(view, session as never, dir) === null) passed++;
              if (w.judge2 && pipeline.judge(view, session as never, dir) === null) passed++;
            } finally {
              view.release();
            }
          }
        } else if (dir === "outbound") tracker.serverHeader(data, start, end);
        batch.add(data, start, end);
      },
      onError(e) {
        throw new Error(e.code);
      },
    });
    return {
      write(chunk) {
        turns.begin();
        try {
          framer.write(chunk);
        } finally {
          turns.end();
        }
        batch.flush(sink);
      },
    };
  }

  const pairs: Pair[] = Array.from({ length: PAIRS }, (_, p) => {
    const from = `send${p}@${DOMAIN}/r0`;
    const to = `recv${p}@${DOMAIN}/r0`;
    const mk = (jid: string) => {
      const tracker = new StreamTracker("c2s");
      tracker.jid = jid;
      tracker.phase = "bound";
      const session = { id: `s-${jid}`, listener: "c2s", type: "c2s", ip: "127.0.0.1", port: 1, jid, domain: DOMAIN, authenticated: true };
      return { tracker, session };
    };
    const s = mk(from);
    const r = mk(to);
    const sender = direction(s.tracker, s.session, "inbound");
    const receiver = direction(r.tracker, r.session, "outbound");
    sender.write(Buffer.from(HEADER_IN));
    receiver.write(Buffer.from(HEADER_OUT));
    // 16 distinct chunks per direction, so ids and bodies vary as in the flood.
    const chunksIn: Buffer[] = [];
    const chunksOut: Buffer[] = [];
    for (let c = 0; c < 16; c++) {
      let a = "";
      let b = "";
      for (let i = c * BATCH; i < (c + 1) * BATCH; i++) {
        a += `<message to='${to}' type='chat' id='m${i}'>${body(i)}</message>`;
        b += `<message xml:lang='en' type='chat' id='m${i}' to='${to}' from='${from}'>${body(i)}</message>`;
      }
      chunksIn.push(Buffer.from(a));
      chunksOut.push(Buffer.from(b));
    }
    return { sender, receiver, chunksIn, chunksOut };
  });
  return { label: guardLabel(source), pairs, inlineBudget };
}

const evictee = new Uint8Array(EVICT_BYTES);
/** Dirty one byte per 64-byte line of `evictee`. */
function evict(): void {
  for (let i = 0; i < EVICT_BYTES; i += 64) evictee[i]!++;
}

function run(pairs: readonly Pair[], messages: number): void {
  const rounds = Math.ceil(messages / BATCH / PAIRS);
  for (let i = 0; i < rounds; i++) {
    for (const p of pairs) {
      p.sender.write(p.chunksIn[i & 15]!);
      p.receiver.write(p.chunksOut[i & 15]!);
    }
  }
}

/**
 * With --evict: the same writes, each after an eviction, timed one by one
 * (wall clock on a pinned, otherwise idle CPU; the eviction is outside the
 * timed spans). The cost of reading the clock is measured on empty spans and
 * taken off.
 */
function runCold(pairs: readonly Pair[], messages: number): number {
  const rounds = Math.ceil(messages / BATCH / PAIRS);
  let spent = 0;
  let spans = 0;
  for (let i = 0; i < rounds; i++) {
    for (const p of pairs) {
      evict();
      let t = performance.now();
      p.sender.write(p.chunksIn[i & 15]!);
      spent += performance.now() - t;
      evict();
      t = performance.now();
      p.receiver.write(p.chunksOut[i & 15]!);
      spent += performance.now() - t;
      spans += 2;
    }
  }
  // The clock's own cost per span, on empty spans.
  let clock = 0;
  for (let k = 0; k < spans; k++) {
    const t = performance.now();
    clock += performance.now() - t;
  }
  return ((spent - clock) * 1e6) / messages;
}

/** CPU ns per message of run(). */
function cpu(pairs: readonly Pair[], messages: number): number {
  const t0 = process.cpuUsage();
  run(pairs, messages);
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / messages;
}

const builds: Build[] = [];
for (const [k, c] of choices.entries()) builds.push(await load(c.source, RULES_OF[k]!, WORK[k]!));
// Warm-up: each build alone, then one untimed alternation (a build's first
// round after the other's warm-up ran slow by a third in trials).
for (const b of builds) run(b.pairs, MESSAGES / 4);
for (const b of builds) run(b.pairs, MESSAGES / 4);
const figures: number[][] = builds.map(() => []);
for (let r = 0; r < ROUNDS; r++) {
  // Alternate which build goes first, so neither always follows the other's garbage.
  for (let j = 0; j < builds.length; j++) {
    const k = (j + r) % builds.length;
    const pairs = builds[k]!.pairs;
    figures[k]!.push(EVICT_BYTES > 0 ? runCold(pairs, MESSAGES) : cpu(pairs, MESSAGES));
  }
}
const evicted = EVICT_BYTES > 0 ? `, ${EVICT_BYTES / 1024} KiB evicted before each chunk, wall time of the chunks` : "";
const budget = builds.map((b) => b.inlineBudget).findLast((v) => v !== undefined);
const upto = UPTO < 2 ? `, up to the ${arg("upto")} only` : "";
const what = `${ROUNDS} rounds of ${MESSAGES.toLocaleString("en")} messages, ${PAIRS} pairs, ${BATCH} per chunk${evicted}${upto}`;
builds.forEach((b, k) => {
  const f = figures[k]!;
  const own = [WORK[k]!.given, RULES_OF[k] === DEFAULT_RULES ? undefined : `rules ${RULES_OF[k]}`].filter((x) => x !== undefined);
  console.log(`CPU ns per delivered message (in + out), JavaScript data path: median ${median(f).toFixed(0)}, min ${Math.min(...f).toFixed(0)} (${what}); xmpp-guard ${b.label}${own.length > 0 ? ` (${own.join(", ")})` : ""}${budget === undefined ? "" : `, V8 inlining budget ${budget}`}`);
});
if (builds.length === 2) {
  const [a, b] = figures as [number[], number[]];
  const pairRatios = a.map((x, r) => x / b[r]!);
  console.log(`ratio first ÷ second (rounds alternated in this process): medians ${(median(a) / median(b)).toFixed(3)}, median of round pairs ${median(pairRatios).toFixed(3)} (${pairRatios.map((x) => x.toFixed(2)).join(" ")})`);
}
