// The firewall alone, in one process, per stanza shape: CompiledRuleSet.run
// and the firewall stage around it (FirewallStage.judge) over one view per
// shape, with the bench copy of the shipped rules (bench/lib/rules.ts: every
// LIMIT takes a token, none runs dry) and the knowledge providers. Some
// shapes go through LIMITs and roster lookups, some are seen by no rule of
// their chain (a preroute presence, a deliver groupchat or iq result): those
// show what a stanza costs that the rules' KIND and TYPE leave out.
//
// CPU ns per call (process.cpuUsage), median of rounds. Compare two builds
// with --guard=<dir> (bench/lib/guard-source.ts).
//
//   npx tsx bench/firewall-run.ts [--guard=auto|dist|build|src|<dir>] [--calls=N] [--rounds=N]

import { readFileSync } from "node:fs";
import type { OriginSession, RunChain } from "../src/firewall/context.js";
import { DEFAULT_RULES, RATE_SCALE, scaleRates } from "./lib/rules.js";
import { chooseGuardSource, guardLabel, guardModule } from "./lib/guard-source.js";
import { median } from "./lib/stats.js";
import { num, renderTable } from "./lib/table.js";

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const choice = chooseGuardSource((arg("guard") ?? "auto") as "auto");
const CALLS = Number(arg("calls") ?? 1_000_000);
const ROUNDS = Number(arg("rounds") ?? 5);
const m = async <T>(p: string): Promise<T> => (await import(guardModule(choice.source, p))) as T;

const { Stanza } = await m<typeof import("../src/xml/stanza.js")>("xml/stanza");
const { compileRuleSources } = await m<typeof import("../src/firewall/compile.js")>("firewall/compile");
const { FirewallStage } = await m<typeof import("../src/firewall/stage.js")>("firewall/stage");
const { knowledgeProviders } = await m<typeof import("../src/knowledge/providers.js")>("knowledge/providers");

const compiled = compileRuleSources([{ file: DEFAULT_RULES, text: scaleRates(readFileSync(DEFAULT_RULES, "utf8"), RATE_SCALE) }], {
  providers: knowledgeProviders(),
  localHosts: ["example.org"],
});
if (compiled.ruleset === undefined) throw new Error(compiled.errors.map((e) => e.format()).join("\n"));
const ruleset = compiled.ruleset;
const stage = new FirewallStage({ ruleset });

const JID = "bench@example.org/load";
const session = { id: "s1", listener: "c2s", type: "c2s", ip: "127.0.0.1", port: 1, jid: JID, domain: "example.org", authenticated: true } as const;
const origin: OriginSession = { type: "c2s", jid: JID, ip: session.ip, authenticated: true, marks: new Map() };

/** name, chain, stanza: preroute stanzas come from the bound client, deliver ones toward it. */
const SHAPES: readonly [string, RunChain, string][] = [
  ["preroute message chat (LIMIT)", "preroute", "<message type='chat' to='peer@example.org'><body>hello</body></message>"],
  ["preroute presence (no rule)", "preroute", "<presence/>"],
  ["preroute iq get (no rule)", "preroute", "<iq type='get' id='1' to='example.org'><query xmlns='jabber:iq:version'/></iq>"],
  ["deliver message chat, stranger", "deliver", "<message type='chat' from='x@remote.example/r' to='bench@example.org/load'><body>hi</body></message>"],
  ["deliver message groupchat (no rule)", "deliver", "<message type='groupchat' from='room@muc.example/n' to='bench@example.org/load'><body>hi</body></message>"],
  ["deliver presence, stranger", "deliver", "<presence from='x@remote.example/r' to='bench@example.org/load'/>"],
  ["deliver iq result (no rule)", "deliver", "<iq type='result' id='1' from='example.org' to='bench@example.org/load'/>"],
];

function round(call: () => number, n: number): number {
  let sink = 0;
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) sink += call();
  const u = process.cpuUsage(t0);
  if (sink < 0) throw new Error("unreachable");
  return ((u.user + u.system) * 1000) / n;
}

const rows: string[][] = [];
for (const [name, chain, xml] of SHAPES) {
  const preroute = chain === "preroute";
  const view = Stanza.withDefaultFrom(Buffer.from(xml), "jabber:client", preroute ? JID : undefined);
  const ctx = { stanza: view, origin: preroute ? origin : undefined, fromServer: !preroute };
  const calls: (() => number)[] = [
    () => ruleset.run(chain, ctx).verdict.length,
    () => (stage.judge(view, session, preroute ? "inbound" : "outbound") === undefined ? 1 : 0),
  ];
  const cells = calls.map((call) => {
    round(call, Math.min(CALLS, 200_000));
    const samples: number[] = [];
    for (let r = 0; r < ROUNDS; r++) samples.push(round(call, CALLS));
    return num(Math.round(median(samples)));
  });
  rows.push([name, ...cells]);
}
process.stdout.write(
  renderTable({
    title: "Firewall cost per stanza shape, in process (bench rules, knowledge providers)",
    headers: ["stanza", "run ns", "stage ns"],
    rows,
    notes: [`${ROUNDS} rounds of ${num(CALLS)} calls, medians; xmpp-guard ${guardLabel(choice.source)} (${choice.reason}).`],
  }) + "\n",
);
