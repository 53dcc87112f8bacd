// Per-stanza cost of rules that use Lua patterns, in one process, no sockets:
// one small rule set per row (each a single rule whose only condition is the
// pattern test, so nothing cheaper short-circuits it), run on the preroute
// chain over the throughput suite's 250-byte <message/>, whose body has
// non-ASCII text (café), and over the same stanza with that text made ASCII.
// The stanza is parsed once (its tree is cached on the view, as when several
// stages look at one stanza), so a row is the rule run: reading the body
// text plus the test. The first row is a plain `body#=` comparison, so the
// rows below it show what the pattern itself adds.
//
// CPU ns per stanza (process.cpuUsage), median of rounds. Compare two builds
// with --guard=<dir>, as in bench/policy.ts.
//
//   npx tsx bench/lua-patterns.ts [--guard=auto|dist|build|src|<dir>] [--stanzas=N] [--rounds=N]

import type { OriginSession } from "../src/firewall/context.js";
import { messageStanza } from "./lib/fixture.js";
import { chooseGuardSource, guardLabel, guardModule } from "./lib/guard-source.js";
import { median } from "./lib/stats.js";
import { num, renderTable } from "./lib/table.js";

type StanzaModule = typeof import("../src/xml/stanza.js");
type CompileModule = typeof import("../src/firewall/compile.js");

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const choice = chooseGuardSource((arg("guard") ?? "auto") as "auto");
const STANZAS = Number(arg("stanzas") ?? 1_000_000);
const ROUNDS = Number(arg("rounds") ?? 5);

const { Stanza } = (await import(guardModule(choice.source, "xml/stanza"))) as StanzaModule;
const { compileRuleSources } = (await import(guardModule(choice.source, "firewall/compile"))) as CompileModule;

const HEAD = "%SEARCH body: body#\n%PATTERN word: %a+\n%PATTERN url: https?://%S+\n%LIST words: memory\n::preroute\n";
const CASES: Array<[string, string]> = [
  ["body#= (no pattern)", "INSPECT: body#=nothing"],
  ["~= literal", "INSPECT: body#~=viagra"],
  ["~= ^%s*[Ff][Rr][Ee][Ee]%s", "INSPECT: body#~=^%s*[Ff][Rr][Ee][Ee]%s"],
  ["~= %f[%a]viagra%f[%A]", "INSPECT: body#~=%f[%a]viagra%f[%A]"],
  ["~= https?://%S+", "INSPECT: body#~=https?://%S+"],
  ["~= ^.*%d$", "INSPECT: body#~=^.*%d$"],
  ["SCAN %a+ in a list", "SCAN: body for word in words"],
  ["COUNT https?://%S+", "COUNT: url in body > 2"],
  ["FROM <<bench%d*>>@…", "FROM: <<bench%d+>>@example.org"],
];

const JID = "bench@example.org/load";
const origin: OriginSession = { type: "c2s", jid: JID, domain: undefined, ip: "127.0.0.1", authenticated: true, marks: new Map() };

const utf8 = messageStanza(0);
const ascii = Buffer.from(utf8.toString("utf8").replace(/é/g, "e").replace(/<\/body>/, ".</body>"));
if (ascii.length !== utf8.length) throw new Error("the ASCII variant must keep the size");

function round(run: (data: Buffer) => string, data: Buffer, n: number): number {
  let sink = 0;
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) sink += run(data).length;
  const u = process.cpuUsage(t0);
  if (sink === 0) throw new Error("nothing judged");
  return ((u.user + u.system) * 1000) / n;
}

const runs = CASES.map(([, rule]) => {
  const compiled = compileRuleSources([{ file: "bench.pfw", text: `${HEAD}${rule}\nDROP.\n` }]);
  if (compiled.errors.length > 0 || compiled.ruleset === undefined) throw new Error(compiled.errors.map((e) => e.format()).join("\n"));
  const ruleset = compiled.ruleset;
  const views = new Map<Buffer, InstanceType<typeof Stanza>>();
  return (data: Buffer) => {
    let stanza = views.get(data);
    if (stanza === undefined) {
      stanza = Stanza.within(data, 0, data.length, "jabber:client", JID);
      views.set(data, stanza);
    }
    const verdict = ruleset.run("preroute", { stanza, origin }).verdict;
    if (verdict !== "pass") throw new Error(`${rule}: ${verdict}`);
    return verdict;
  };
});

for (const run of runs) {
  round(run, utf8, Math.min(STANZAS, 100_000));
  round(run, ascii, Math.min(STANZAS, 100_000));
}
const samples = runs.map(() => ({ utf8: [] as number[], ascii: [] as number[] }));
for (let r = 0; r < ROUNDS; r++) {
  runs.forEach((run, k) => {
    samples[k]!.utf8.push(round(run, utf8, STANZAS));
    samples[k]!.ascii.push(round(run, ascii, STANZAS));
  });
}
process.stdout.write(
  renderTable({
    title: "Rules with Lua patterns: cost per stanza, in process (250 B <message/>, preroute, one rule each)",
    headers: ["condition", "CPU ns, body with café", "CPU ns, ASCII body"],
    rows: CASES.map(([name], k) => [name, num(median(samples[k]!.utf8)), num(median(samples[k]!.ascii))]),
    notes: [`${ROUNDS} rounds of ${num(STANZAS)} stanzas, medians; xmpp-guard ${guardLabel(choice.source)} (${choice.reason}).`],
  }) + "\n",
);
