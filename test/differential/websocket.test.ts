// The differential guarantee over WebSocket (docs/websocket.md): a c2s
// stream that arrives as RFC 7395 messages is translated at the edge
// (src/net/ws-framing.ts) into the byte stream the session frames and the
// server's c2s port reads. This test takes the generated c2s streams of
// streams.ts, writes each as WebSocket messages (wsMessages: the header as
// an <open/> that also carries the header's declarations, each stanza a
// message of its own), translates them as a websocket listener does, and
// holds the proxy's reading of the result (viewStream) to the server's
// parser (the oracle) on exactly those bytes, with the same agreement rule
// as xmppstream.test.ts.
//
// The stanzas written "prefixed, declared on the header" have their prefix
// declared on the <open/>: over WebSocket that declaration is in scope for
// nothing else, so both sides must refuse them as an unbound prefix.
//
//   node scripts/run-tests.mjs test/differential/websocket

import { test, after } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { viewStream } from "../helpers/view-stream.js";
import { DEFAULT_LIMITS } from "../../src/xml/framer.js";
import { InboundFraming, MSG_BAD, MSG_EMPTY } from "../../src/net/ws-framing.js";
import { agree, findProsodyLua, Oracle, serverView, type Mismatch } from "./oracle.js";
import { rawStream, wsMessages, type RawStream } from "./streams.js";

const RUNS = Number(process.env.DIFF_RUNS) || 10_000;
const SEED = Number(process.env.DIFF_SEED) || 20_240_611;

const found = findProsodyLua();
const missing = typeof found === "string" ? found : null;
const skip = missing !== null && !process.env.CI
  ? `${missing}. The differential test needs the server's stream parser: apt-get install prosody (CI installs it)`
  : false;

let oracle: Oracle | undefined;
after(async () => {
  await oracle?.close();
});

/** What a websocket listener hands the session for these messages, or the refusal. */
function translate(messages: string[]): { bytes: Buffer; refused: string | undefined } {
  const framing = new InboundFraming(DEFAULT_LIMITS);
  const parts: Buffer[] = [];
  for (const m of messages) {
    const kind = framing.classify(Buffer.from(m, "utf8"));
    if (kind === MSG_EMPTY) continue;
    if (kind === MSG_BAD) return { bytes: Buffer.concat(parts), refused: framing.code };
    parts.push(framing.bytes.subarray(framing.start, framing.end));
  }
  return { bytes: Buffer.concat(parts), refused: undefined };
}

test(`websocket: the proxy reads ${RUNS} generated c2s streams, sent as RFC 7395 messages, as the server does`, { skip, timeout: 50_000 }, async (t) => {
  if (missing !== null) assert.fail(`${missing}, and CI is set: the differential test must run in CI`);
  oracle = await Oracle.start(found as Exclude<typeof found, string>);
  const raws = fc.sample(rawStream, { seed: SEED, numRuns: RUNS }).filter((r) => r.kind === "c2s");
  const translated = raws.map((r) => translate(wsMessages(r)));
  const events = await oracle.runAll(translated.map((x) => ({ kind: "c2s" as const, segments: [x.bytes] })));
  const failures: string[] = [];
  let clean = 0;
  let stanzas = 0;
  let onOpen = 0;
  let refusedAtOpen = 0;
  translated.forEach((x, k) => {
    const raw: RawStream = raws[k]!;
    const server = serverView(events[k]!);
    const proxy = viewStream(x.bytes, "c2s");
    if (!server.end.startsWith("error")) clean++;
    stanzas += server.stanzas.length;
    // A message the listener refuses never reaches the server: what came before it must still agree.
    if (x.refused !== undefined) refusedAtOpen++;
    const m: Mismatch | null = agree(server, proxy);
    if (m !== null) failures.push(`[${m.category}] ${JSON.stringify(wsMessages(raw))}\n  ${m.message}`);
    // Declared only on <open/>, a prefix binds nothing: a first stanza that
    // uses it without declaring it itself is refused by both. (`stream:` is
    // the exception: the header the open becomes declares it.)
    const first = raw.stanzas[0]!;
    const text = wsMessages(raw)[1]!;
    if (first.prefix !== null && first.prefix !== "xml" && first.prefix !== "stream" && first.bind === "header" &&
      !text.includes(`xmlns:${first.prefix}=`) && x.refused === undefined) {
      onOpen++;
      if (server.stanzas.length > 0 || !server.end.startsWith("error")) failures.push(`[prefix declared on <open/> was in scope for the server] ${JSON.stringify(wsMessages(raw))}`);
      if (proxy.stanzas.length > 0 || proxy.error === undefined) failures.push(`[prefix declared on <open/> was in scope for the proxy] ${JSON.stringify(wsMessages(raw))}`);
    }
  });
  t.diagnostic(`${raws.length} c2s streams (seed ${SEED}): ${clean} read without error, ${stanzas} stanzas; ${onOpen} first stanzas prefixed on <open/>; ${refusedAtOpen} refused at the open`);
  assert.ok(clean >= raws.length * 0.5, `only ${clean} of ${raws.length} translated streams are read without error`);
  assert.ok(onOpen >= raws.length / 100, `only ${onOpen} streams test a prefix declared on <open/>`);
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${raws.length} differ`);
});
