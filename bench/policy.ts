// Per-stanza policy cost in one process, no sockets: what xmpp-guard spends on
// a bound c2s client's <message/> (the throughput suite's 250-byte stanza)
// before it forwards the bytes, step by step, each step including the ones
// before it:
//
//   view+head   Stanza.within() over a read chunk and the start tag read
//               (name, attribute spans, duplicate check), as the session does
//   facts       + the firewall's per-run Facts (local name, type)
//   rules run   + CompiledRuleSet.run on preroute with the bench copy of the
//               shipped rules (bench/lib/rules.ts): every LIMIT takes a token
//   stage       + the firewall stage around it (route, origin, verdict), i.e.
//               Pipeline.judge as the session calls it
//
// CPU ns per stanza (process.cpuUsage, so time the process was not running is
// not counted), median of rounds, and heap bytes allocated per stanza (used
// heap growth over a few hundred stanzas after a full GC, median of trials;
// test/helpers/alloc.ts). Compare two builds with --guard=<dir>.
//
//   npx tsx bench/policy.ts [--guard=auto|dist|build|src|<dir>] [--stanzas=N] [--rounds=N]

import { readFileSync } from "node:fs";
import type { OriginSession } from "../src/firewall/context.js";
import { DEFAULT_RULES, RATE_SCALE, scaleRates } from "./lib/rules.js";
import { messageStanza } from "./lib/fixture.js";
import { chooseGuardSource, guardLabel, guardModule } from "./lib/guard-source.js";
import { median } from "./lib/stats.js";
import { num, renderTable } from "./lib/table.js";
import { bytesPerCall } from "../test/helpers/alloc.js";

type StanzaModule = typeof import("../src/xml/stanza.js");
type CompileModule = typeof import("../src/firewall/compile.js");
type FactsModule = typeof import("../src/firewall/facts.js");
type StageModule = typeof import("../src/firewall/stage.js");
type PipelineModule = typeof import("../src/policy/pipeline.js");

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const choice = chooseGuardSource((arg("guard") ?? "auto") as "auto");
const STANZAS = Number(arg("stanzas") ?? 2_000_000);
const ROUNDS = Number(arg("rounds") ?? 5);

const { Stanza } = (await import(guardModule(choice.source, "xml/stanza"))) as StanzaModule;
const { compileRuleSources } = (await import(guardModule(choice.source, "firewall/compile"))) as CompileModule;
const { knowledgeProviders } = (await import(guardModule(choice.source, "knowledge/providers"))) as typeof import("../src/knowledge/providers.js");
const { Facts } = (await import(guardModule(choice.source, "firewall/facts"))) as FactsModule;
const { FirewallStage } = (await import(guardModule(choice.source, "firewall/stage"))) as StageModule;
const { Pipeline } = (await import(guardModule(choice.source, "policy/pipeline"))) as PipelineModule;

const compiled = compileRuleSources([{ file: DEFAULT_RULES, text: scaleRates(readFileSync(DEFAULT_RULES, "utf8"), RATE_SCALE) }], { providers: knowledgeProviders() });
if (compiled.errors.length > 0 || compiled.ruleset === undefined) throw new Error(compiled.errors.map((e) => e.format()).join("\n"));
const ruleset = compiled.ruleset;
const pipeline = new Pipeline([new FirewallStage({ ruleset })]);

const JID = "bench@example.org/load";
const session = { id: "s1", listener: "c2s", type: "c2s", ip: "127.0.0.1", port: 1, jid: JID, domain: "example.org", authenticated: true } as const;
const origin: OriginSession = {
  type: "c2s", jid: JID, domain: undefined, ip: session.ip, authenticated: true, marks: new Map(),
};

// The view as the build's session makes it: a borrowed shared view (given
// back before the next stanza, as the session does) where Stanza.borrow
// exists; else Stanza.within (a view into the read chunk); builds older than
// that took a subarray per stanza, as their sessions did.
type View = InstanceType<typeof Stanza>;
type Borrowing = { borrowStamped(d: Buffer, s: number, e: number, ctx: unknown, jid: string): View; plainContext(ns: string): unknown };
const S = Stanza as unknown as { within?: unknown; borrowStamped?: Borrowing["borrowStamped"] };
const stanzaModule = (await import(guardModule(choice.source, "xml/stanza"))) as { StreamContext?: { plain(ns: string, stamped?: boolean): unknown } };
const stamped = stanzaModule.StreamContext?.plain("jabber:client", true);
let lent: (View & { release?: () => void }) | undefined;
const view: (data: Buffer, start: number, end: number, ns: string, jid: string) => View =
  typeof S.borrowStamped === "function" && stamped !== undefined
    ? (d, s, e, _ns, jid) => {
        lent?.release?.();
        return (lent = S.borrowStamped!(d, s, e, stamped, jid));
      }
    : typeof S.within === "function"
      ? (d, s, e, ns, jid) => Stanza.within(d, s, e, ns, jid)
      : (d, s, e, ns, jid) => new Stanza(d.subarray(s, e), ns, jid);

// 1,024 different stanzas back to back in 16 chunks of 64, as a read delivers them.
const CHUNK = 64;
const chunks = Array.from({ length: 16 }, (_, c) => Buffer.concat(Array.from({ length: CHUNK }, (_, i) => messageStanza(c * CHUNK + i))));
const size = messageStanza(0).length;

const steps: Array<[string, (data: Buffer, start: number, end: number) => number]> = [
  ["view+head", (d, s, e) => (view(d, s, e, "jabber:client", JID).head.duplicate === null ? 1 : 0)],
  ["facts", (d, s, e) => {
    const v = view(d, s, e, "jabber:client", JID);
    return v.head.duplicate === null ? new Facts(v, "preroute", origin, undefined).name.length : 0;
  }],
  ["rules run", (d, s, e) => {
    const v = view(d, s, e, "jabber:client", JID);
    return v.head.duplicate === null ? ruleset.run("preroute", { stanza: v, origin }).verdict.length : 0;
  }],
  ["stage", (d, s, e) => {
    const v = view(d, s, e, "jabber:client", JID);
    return v.head.duplicate === null && pipeline.judge(v, session, "inbound") === null ? 1 : 0;
  }],
];

function round(step: (data: Buffer, start: number, end: number) => number, n: number): number {
  let sink = 0;
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const k = i % CHUNK;
    sink += step(chunks[(i >> 6) & 15]!, k * size, (k + 1) * size);
  }
  const u = process.cpuUsage(t0);
  if (sink === 0) throw new Error("nothing judged");
  return ((u.user + u.system) * 1000) / n;
}

// Warm every step up first, then take turns, so no step is measured while
// the JIT is still busy with the others.
for (const [, step] of steps) round(step, Math.min(STANZAS, 300_000));
const samples = steps.map(() => [] as number[]);
for (let r = 0; r < ROUNDS; r++) steps.forEach(([, step], k) => samples[k]!.push(round(step, STANZAS)));
const allocs = steps.map(([, step]) => bytesPerCall((i) => {
  const k = i % CHUNK;
  return step(chunks[(i >> 6) & 15]!, k * size, (k + 1) * size);
}, 512, 9));
const rows: string[][] = [];
let previous = 0;
steps.forEach(([name], k) => {
  const ns = median(samples[k]!);
  rows.push([name, num(ns), previous === 0 ? "–" : `${ns >= previous ? "+" : "−"}${num(Math.abs(ns - previous))}`, num(Math.round(allocs[k]!))]);
  previous = ns;
});
process.stdout.write(
  renderTable({
    title: "Policy cost per stanza, in process (bound c2s <message/>, 250 B, bench rules, preroute)",
    headers: ["step (cumulative)", "CPU ns/stanza", "step adds", "heap B/stanza"],
    rows,
    notes: [`${ROUNDS} rounds of ${num(STANZAS)} stanzas, medians; xmpp-guard ${guardLabel(choice.source)} (${choice.reason}).`],
  }) + "\n",
);
