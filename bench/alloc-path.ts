// Heap bytes per stanza on the session's data path, in one process: framer,
// kind, the stanza view, the stream tracker, the policy pipeline with the
// bench copy of the shipped rules (every LIMIT takes a token, none runs dry)
// and the write batch, over 64-stanza chunks of the throughput suite's
// 250-byte message, each chunk one turn of the proxy's clock (read once per
// chunk, as the session runs it). The same steps src/stream/per-stanza-alloc.test.ts
// bounds; this one loads any build, so two can be compared:
//
//   npx tsx bench/alloc-path.ts [--guard=auto|dist|build|src|<dir>]
import { readFileSync } from "node:fs";
import type { Writable } from "node:stream";
import { bytesPerCall } from "../test/helpers/alloc.js";
import { messageStanza } from "./lib/fixture.js";
import { chooseGuardSource, guardLabel, guardModule } from "./lib/guard-source.js";
import { DEFAULT_RULES, RATE_SCALE, scaleRates } from "./lib/rules.js";

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const choice = chooseGuardSource((arg("guard") ?? "auto") as "auto");
const m = async <T>(p: string): Promise<T> => (await import(guardModule(choice.source, p))) as T;
const { compileRuleSources } = await m<typeof import("../src/firewall/compile.js")>("firewall/compile");
const { knowledgeProviders } = await m<typeof import("../src/knowledge/providers.js")>("knowledge/providers");
const { FirewallStage } = await m<typeof import("../src/firewall/stage.js")>("firewall/stage");
const { Pipeline } = await m<typeof import("../src/policy/pipeline.js")>("policy/pipeline");
const { WriteBatch } = await m<typeof import("../src/net/write-batch.js")>("net/write-batch");
const { Framer, FRAME_STANZA } = await m<typeof import("../src/xml/framer.js")>("xml/framer");
const { kindOf } = await m<typeof import("../src/xml/stanza.js")>("xml/stanza");
const { StreamTracker } = await m<typeof import("../src/stream/tracker.js")>("stream/tracker");
const { beginTurn, endTurn, turnClock } = await m<typeof import("../src/shaping/clock.js")>("shaping/clock");

const JID = "bench@example.org/load";
const compiled = compileRuleSources([{ file: DEFAULT_RULES, text: scaleRates(readFileSync(DEFAULT_RULES, "utf8"), RATE_SCALE) }], { providers: knowledgeProviders(), clock: turnClock });
if (compiled.ruleset === undefined) throw new Error("rules did not compile");
const pipeline = new Pipeline([new FirewallStage({ ruleset: compiled.ruleset })]);
const tracker = new StreamTracker("c2s");
tracker.jid = JID;
tracker.phase = "bound";
const session = { id: "s1", listener: "c2s", type: "c2s", ip: "127.0.0.1", port: 1, jid: JID, domain: "example.org", authenticated: true } as const;
const stats = new Float64Array(8);
const batch = new WriteBatch();
const out = { write: () => true, cork() {}, uncork() {}, writableNeedDrain: false } as unknown as Writable;
let judged = 0;
const framer = new Framer({
  onFrame(kind, data, start, end) {
    if (kind === FRAME_STANZA) {
      const k = kindOf(data, start, end, tracker.inbound);
      stats[k === "message" ? 0 : 3]! += 1;
      const view = tracker.peerView(data, start, end) as ReturnType<typeof tracker.peerView> & { release?: () => void };
      try {
        if (view.head.duplicate === null && tracker.peerStanza(view) === null && pipeline.judge(view, session, "inbound") === null) judged++;
      } finally {
        view.release?.();
      }
    }
    batch.add(data, start, end);
  },
  onError(e) {
    throw new Error(e.code);
  },
});
framer.write(Buffer.from("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>"));
const chunks = Array.from({ length: 16 }, (_, c) => Buffer.concat(Array.from({ length: 64 }, (_, i) => messageStanza(c * 64 + i))));
const feed = (i: number) => {
  beginTurn();
  try {
    framer.write(chunks[i & 15]!);
  } finally {
    endTurn();
  }
  batch.flush(out);
  return judged;
};
for (let i = 0; i < 4000; i++) feed(i);
bytesPerCall(feed, 64, 3);
const samples = Array.from({ length: 5 }, () => bytesPerCall(feed, 64, 9) / 64).sort((a, b) => a - b);
console.log(`heap bytes per stanza, session data path (framer → view → tracker → firewall → write batch): ${samples[2]!.toFixed(1)} (5 runs: ${samples.map((s) => s.toFixed(1)).join(", ")}); xmpp-guard ${guardLabel(choice.source)}`);
