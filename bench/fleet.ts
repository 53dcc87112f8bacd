// Fleet mode's cost per stanza (docs/deploy.md, "Fleets: every limit across
// instances"): the same keyed firewall LIMIT judged with its buckets in this
// process, and with them in Redis (state.redis) through the fleet's leases
// (src/state/fleet-buckets.ts), on a private redis-server on loopback.
//
// 1,024 different <message/> stanzas (1,024 recipients: one bucket each,
// `LIMIT … on $<@to|bare>`) are run through CompiledRuleSet.run on preroute,
// in reads of 64 with an event-loop turn between reads, so that Redis's
// answers come in as they would. Two buckets:
//
//   admitted   %RATE 100000 (burst 1): everything passes; a lease is 64
//              tokens, so a key costs about one script call per 64 stanzas
//   refused    %RATE 0.001 (burst 1000): a bucket of 1, a flood refused
//              from the second stanza on; a refused key asks Redis nothing
//              until a token is due
//
// Reported: this process's CPU ns per stanza (process.cpuUsage: the rules,
// and in fleet mode the lease bookkeeping and the ioredis client's work),
// redis-server's CPU ns per stanza (INFO cpu), and Redis script calls per
// stanza (INFO commandstats), medians of rounds.
//
//   npx tsx bench/fleet.ts [--stanzas=N] [--rounds=N]

import { Redis } from "ioredis";
import type { OriginSession } from "../src/firewall/context.js";
import { compileRuleSources, type CompiledRuleSet } from "../src/firewall/compile.js";
import { FleetBuckets } from "../src/state/fleet-buckets.js";
import { Stanza, StreamContext } from "../src/xml/stanza.js";
import { startRedis } from "../test/helpers/redis.js";
import { messageStanza } from "./lib/fixture.js";
import { median } from "./lib/stats.js";
import { num, renderTable } from "./lib/table.js";

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const STANZAS = Number(arg("stanzas") ?? 400_000);
const ROUNDS = Number(arg("rounds") ?? 5);

const JID = "bench@example.org/load";
const origin: OriginSession = { type: "c2s", jid: JID, domain: undefined, ip: "127.0.0.1", authenticated: true, marks: new Map() };
const CHUNK = 64;
const chunks = Array.from({ length: 16 }, (_, c) => Buffer.concat(Array.from({ length: CHUNK }, (_, i) => messageStanza(c * CHUNK + i))));
const size = messageStanza(0).length;
const ctx = StreamContext.plain("jabber:client", true);

const rules = (rate: string): string => `%RATE perpeer: ${rate} (entries 100000)

::preroute
KIND: message
LIMIT: perpeer on $<@to|bare>
DROP.
`;

function compile(rate: string, fleet: FleetBuckets | null): CompiledRuleSet {
  const sharedLimits = fleet === null ? undefined : { poll: (name: string, r: number, burst: number) => fleet.poll("firewall", name, { rate: r, capacity: r * burst }) };
  const out = compileRuleSources([{ file: "bench.pfw", text: rules(rate) }], { sharedLimits });
  if (out.ruleset === undefined) throw new Error(out.errors.map((e) => e.format()).join("\n"));
  return out.ruleset;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** One round: `n` stanzas in reads of 64, a turn of the event loop after each read. */
async function round(ruleset: CompiledRuleSet, n: number, fleet: FleetBuckets | null): Promise<{ cpuNs: number; dropped: number }> {
  let dropped = 0;
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i += CHUNK) {
    const data = chunks[(i >> 6) & 15]!;
    for (let k = 0; k < CHUNK; k++) {
      const v = Stanza.borrowStamped(data, k * size, (k + 1) * size, ctx, JID);
      if (ruleset.run("preroute", { stanza: v, origin }).verdict === "drop") dropped++;
      v.release();
    }
    await turn();
  }
  await fleet?.flush();
  const u = process.cpuUsage(t0);
  return { cpuNs: ((u.user + u.system) * 1000) / n, dropped };
}

async function redisStats(r: Redis): Promise<{ calls: number; cpuUs: number }> {
  const stats = await r.info("commandstats");
  let calls = 0;
  for (const m of stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) calls += Number(m[1]);
  const cpu = await r.info("cpu");
  const user = Number(/used_cpu_user:([\d.]+)/.exec(cpu)?.[1] ?? 0);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(cpu)?.[1] ?? 0);
  return { calls, cpuUs: (user + sys) * 1e6 };
}

const redis = await startRedis();
const admin = new Redis(redis.url);
const rows: string[][] = [];
try {
  for (const [label, rate] of [["admitted", "100000 (burst 1)"], ["refused", "0.001 (burst 1000)"]] as const) {
    const fleet = await FleetBuckets.open({ url: redis.url, prefix: `bench-${label}:` });
    if (!fleet.up) throw new Error(`redis: ${fleet.why}`);
    const modes = [
      { mode: "one instance", fleet: null, ruleset: compile(rate, null), cpu: [] as number[], redisCpu: [] as number[], calls: [] as number[], dropped: 0 },
      { mode: "fleet (Redis)", fleet, ruleset: compile(rate, fleet), cpu: [] as number[], redisCpu: [] as number[], calls: [] as number[], dropped: 0 },
    ];
    for (const m of modes) await round(m.ruleset, Math.min(STANZAS, 100_000), m.fleet); // warm-up
    // Rounds alternate between the modes, so that a busy machine weighs on both alike.
    for (let r = 0; r < ROUNDS; r++) {
      for (const m of modes) {
        const before = await redisStats(admin);
        const res = await round(m.ruleset, STANZAS, m.fleet);
        const after = await redisStats(admin);
        m.cpu.push(res.cpuNs);
        m.redisCpu.push(((after.cpuUs - before.cpuUs) * 1000) / STANZAS);
        // The INFO calls are not scripts: only the fleet's own calls count.
        m.calls.push((after.calls - before.calls) / STANZAS);
        m.dropped = res.dropped;
      }
    }
    if (fleet.localDecisions.firewall > 0) throw new Error("decisions were made locally: Redis did not answer");
    fleet.close();
    const base = median(modes[0]!.cpu);
    for (const m of modes) {
      const ns = median(m.cpu);
      rows.push([label, m.mode, num(ns), m.fleet === null ? "–" : `+${num(ns - base)}`, m.fleet === null ? "–" : num(median(m.redisCpu)), m.fleet === null ? "–" : median(m.calls).toFixed(4), `${Math.round((m.dropped / STANZAS) * 100)} %`]);
    }
  }
} finally {
  admin.disconnect();
  await redis.stop();
}
process.stdout.write(
  renderTable({
    title: "Fleet mode: a keyed LIMIT per stanza, buckets in this process vs in Redis (1,024 keys, reads of 64)",
    headers: ["bucket", "mode", "proxy CPU ns/stanza", "fleet adds", "redis-server CPU ns/stanza", "script calls/stanza", "dropped"],
    rows,
    notes: [`${ROUNDS} rounds of ${num(STANZAS)} stanzas, medians; redis-server ${redis.url} on loopback, no persistence.`],
  }) + "\n",
);
