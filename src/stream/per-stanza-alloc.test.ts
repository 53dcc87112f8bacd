// The per-stanza data path allocates (next to) nothing: framer, kind, the
// borrowed stanza view, the tracker, the policy pipeline with the shipped
// rules (every rule and LIMIT evaluated, none limiting) and the write batch,
// as the session runs them for a bound c2s client's messages. Measured as
// heap bytes per stanza (test/helpers/alloc.ts), not time: no thresholds on
// speed. The bound is below one boxed number per stanza; before this path was
// made allocation-free it was over 2 KB. docs/performance.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { Writable } from "node:stream";
import { bytesPerCall } from "../../test/helpers/alloc.js";
import { compileRuleSources } from "../firewall/compile.js";
import { knowledgeProviders } from "../knowledge/providers.js";
import { FirewallStage } from "../firewall/stage.js";
import { Pipeline, type SessionInfo } from "../policy/pipeline.js";
import { WriteBatch } from "../net/write-batch.js";
import { FRAME_STANZA, Framer, type FrameKind, type FrameSink, type StreamFramer } from "../xml/framer.js";
import { WasmFramer } from "../xml/framer-wasm.js";
import { kindOf } from "../xml/stanza.js";
import { inTurn, turnClock } from "../shaping/clock.js";
import { StreamTracker } from "./tracker.js";

const JID = "alice@example.org/phone";
const RULES = new URL("../../rules/default.pfw", import.meta.url);

function message(i: number, type: string): Buffer {
  return Buffer.from(`<message to='bob${i % 97}@example.net/x' type='${type}' id='m-${i}' xml:lang='en'><body>hello &amp; caf\u00e9 ${i}</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`);
}

function setup(stanza: (i: number) => Buffer, makeFramer: (sink: FrameSink) => StreamFramer) {
  // The shipped rules with every rate raised so nothing is ever limited, to a
  // rate with a fraction (a million times, and a half) so that, as with real
  // rates, a bucket's balance is fractional and every poll stores a new one.
  const text = readFileSync(RULES, "utf8").replace(/^(\s*%RATE\s+[^:\n]+:\s*)([\d.]+)/gm, (_, h: string, r: string) => `${h}${Number(r) * 1e6 + 0.5}`);
  // The stranger rules need the knowledge providers (on by default). The
  // clock is the proxy's: read once per turn (one chunk), as the session runs it.
  const compiled = compileRuleSources([{ file: "default.pfw", text }], { providers: knowledgeProviders(), clock: turnClock });
  assert.equal(compiled.errors.length, 0);
  const pipeline = new Pipeline([new FirewallStage({ ruleset: compiled.ruleset })]);
  const tracker = new StreamTracker("c2s");
  tracker.jid = JID;
  tracker.phase = "bound";
  const session: SessionInfo = { id: "s1", listener: "c2s", type: "c2s", ip: "127.0.0.1", port: 5222, jid: JID, domain: "example.org", authenticated: true };
  const stats = [0, 0, 0, 0];
  const batch = new WriteBatch();
  let written = 0;
  const out = { write: (b: Buffer) => ((written += b.length), true), cork() {}, uncork() {}, writableNeedDrain: false } as unknown as Writable;
  let verdicts = 0;
  const framer = makeFramer({
    onFrame(kind: FrameKind, data: Buffer, start: number, end: number) {
      if (kind === FRAME_STANZA) {
        const k = kindOf(data, start, end, tracker.inbound);
        if (k === "message") stats[0]!++;
        else if (k === "presence") stats[1]!++;
        const view = tracker.peerView(data, start, end);
        try {
          if (view.head.duplicate !== null) throw new Error("duplicate attribute");
          if (tracker.peerStanza(view) !== null) throw new Error("unexpected event");
          if (pipeline.judge(view, session, "inbound") !== null) verdicts++;
        } finally {
          view.release();
        }
      }
      batch.add(data, start, end);
    },
    onError(e) {
      throw new Error(e.code);
    },
  });
  framer.write(Buffer.from("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>"));
  batch.flush(out);
  const chunks = Array.from({ length: 16 }, (_, c) => Buffer.concat(Array.from({ length: 64 }, (_, k) => stanza(c * 64 + k))));
  const feed = (i: number) => {
    inTurn(() => framer.write(chunks[i & 15]!));
    batch.flush(out);
    return written;
  };
  return { feed, stats, verdicts: () => verdicts };
}

for (const [name, stanza] of [
  ["chat messages (preroute rule 5: KIND, LIMIT on $<@from|bare>)", (i: number) => message(i, "chat")],
  ["subscription requests (preroute rule 4: KIND, TYPE, LIMIT)", (i: number) => Buffer.from(`<presence to='bob${i % 97}@example.net' type='subscribe' id='p-${i}'/>`)],
] as const) {
  for (const [impl, makeFramer] of [["js", (sink: FrameSink) => new Framer(sink)], ["wasm", (sink: FrameSink) => new WasmFramer(sink)]] as const) {
    test(`per-stanza data path allocates (next to) nothing, ${impl} framer: ${name}`, () => {
      const { feed, stats, verdicts } = setup(stanza, makeFramer);
      for (let i = 0; i < 2000; i++) feed(i); // let the JIT settle (128,000 stanzas)
      bytesPerCall(feed, 64, 3); // the measuring loop's own first run
      const perChunk = bytesPerCall(feed, 64, 9);
      const perStanza = perChunk / 64;
      assert.equal(verdicts(), 0, "nothing limited");
      assert.ok(stats[0]! + stats[1]! > 0);
      // What is left is per chunk (under 2 B per stanza at 64 stanzas a
      // chunk). One boxed number per stanza adds 16 B, the smallest object 24 B;
      // before this work it was ~2,000 B.
      assert.ok(perStanza < 8, `heap bytes per stanza: ${perStanza.toFixed(1)}`);
      console.log(`# heap bytes per stanza (${impl} framer, ${name}): ${perStanza.toFixed(1)}`);
    });
  }
}
