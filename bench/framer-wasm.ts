// The WebAssembly framer against the JS framer, in one process, on the same
// chunks: ns per byte (and per chunk) for a few traffic shapes. Both do the
// full work: UTF-8 validation, restricted-XML checks, limits, and a sink
// called per frame; for WebAssembly the copy of each chunk into the module's
// memory is included. Each pass makes a fresh framer, writes the stream header
// and then every chunk, and must see every stanza. After warm-up passes the
// two take turns pass by pass; figures are medians.
//
//   npx tsx bench/framer-wasm.ts [--iterations=N] [--bytes=N] [--only=substring]

import { performance } from "node:perf_hooks";
import { DEFAULT_LIMITS, FRAME_STANZA, Framer, type FrameSink, type StreamFramer } from "../src/xml/framer.js";
import { WasmFramer } from "../src/xml/framer-wasm.js";
import { floodClientMessage, floodServerDelivery } from "./lib/fixture.js";
import { median, spread } from "./lib/stats.js";

const HEADER = Buffer.from("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.net' version='1.0' xml:lang='en'>");

/** A chat message padded to exactly `size` bytes in its body. */
function chat(size: number, i: number): string {
  const head = `<message from='juliet@example.com/balcony' to='romeo@example.net' type='chat' id='m${String(i % 100000).padStart(5, "0")}'><body>`;
  const tail = "</body></message>";
  const words = "Art thou not Romeo, and a Montague? Neither, fair maid, if either thee dislike. ";
  let body = "";
  while (Buffer.byteLength(head + body + tail) < size) body += words[body.length % words.length];
  return head + body + tail;
}

const PRESENCE = "<presence from='room@conference.example.org/nick' to='juliet@example.com/balcony' id='p1'>" +
  "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='nick@example.org/res'/></x>" +
  "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>";

function roster(items: number): string {
  let s = "<iq type='result' id='roster_1' to='juliet@example.com/balcony'><query xmlns='jabber:iq:roster' ver='ver7'>";
  for (let i = 0; i < items; i++) s += `<item jid='contact${i}@example.org' name='Contact ${i}' subscription='both'><group>Friends</group></item>`;
  return s + "</query></iq>";
}

interface Shape {
  name: string;
  stanza: (i: number) => string;
  chunk: number; // 0: one stanza per chunk
}


const SHAPES: Shape[] = [
  { name: "flood: client's message, 16 KiB chunks", stanza: floodClientMessage, chunk: 16384 },
  { name: "flood: server's delivery, 16 KiB chunks", stanza: floodServerDelivery, chunk: 16384 },
  { name: "chat 174 B, 1,400 B chunks", stanza: (i) => chat(174, i), chunk: 1400 },
  { name: "chat 174 B, 16 KiB chunks", stanza: (i) => chat(174, i), chunk: 16384 },
  { name: "chat 174 B, one stanza per chunk", stanza: (i) => chat(174, i), chunk: 0 },
  { name: "MUC presence 357 B, 1,400 B chunks", stanza: () => PRESENCE, chunk: 1400 },
  { name: "chat 4 KiB bodies, 16 KiB chunks", stanza: (i) => chat(4096, i), chunk: 16384 },
  { name: "roster 200 items (24 KiB), 16 KiB chunks", stanza: () => roster(200), chunk: 16384 },
];

interface Args {
  iterations: number;
  bytes: number;
  only: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { iterations: 21, bytes: 2_000_000, only: "" };
  for (const arg of argv) {
    if (arg.startsWith("--iterations=")) a.iterations = Number(arg.slice(13));
    else if (arg.startsWith("--bytes=")) a.bytes = Number(arg.slice(8));
    else if (arg.startsWith("--only=")) a.only = arg.slice(7);
    else throw new Error(`unknown argument ${arg}`);
  }
  return a;
}

function chunksOf(shape: Shape, bytes: number): { chunks: Buffer[]; stanzas: number; total: number } {
  const stanzas: Buffer[] = [];
  let total = 0;
  for (let i = 0; total < bytes; i++) {
    const b = Buffer.from(shape.stanza(i));
    stanzas.push(b);
    total += b.length;
  }
  if (shape.chunk === 0) return { chunks: stanzas.map((b) => Buffer.from(b)), stanzas: stanzas.length, total };
  const all = Buffer.concat(stanzas);
  const chunks: Buffer[] = [];
  // Each chunk in its own Buffer, as socket reads arrive.
  for (let i = 0; i < all.length; i += shape.chunk) chunks.push(Buffer.from(all.subarray(i, i + shape.chunk)));
  return { chunks, stanzas: stanzas.length, total };
}

class CountingSink implements FrameSink {
  stanzas = 0;
  onFrame(kind: number): void {
    if (kind === FRAME_STANZA) this.stanzas++;
  }
  onError(err: Error): void {
    throw err;
  }
}

type Make = (sink: FrameSink) => StreamFramer;
const IMPLS: Array<[string, Make]> = [
  ["js", (sink) => new Framer(sink, DEFAULT_LIMITS)],
  ["wasm", (sink) => new WasmFramer(sink, DEFAULT_LIMITS)],
];

function pass(make: Make, chunks: Buffer[], expected: number): number {
  const sink = new CountingSink();
  const t0 = performance.now();
  const f = make(sink);
  f.write(HEADER);
  for (const c of chunks) f.write(c);
  f.stop();
  const ms = performance.now() - t0;
  if (sink.stanzas !== expected) throw new Error(`saw ${sink.stanzas} stanzas, expected ${expected}`);
  return ms;
}

const args = parseArgs(process.argv.slice(2));
console.log(`node ${process.version}, ${args.iterations} alternated passes of ~${(args.bytes / 1e6).toFixed(1)} MB per shape, medians\n`);
console.log("| shape | JS ns/byte | WASM ns/byte | JS ns/chunk | WASM ns/chunk | WASM speed-up | spread JS / WASM |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const shape of SHAPES) {
  if (args.only && !shape.name.includes(args.only)) continue;
  const { chunks, stanzas, total } = chunksOf(shape, args.bytes);
  const runs = new Map<string, number[]>(IMPLS.map(([n]) => [n, []]));
  for (let w = 0; w < 5; w++) for (const [, make] of IMPLS) pass(make, chunks, stanzas);
  for (let it = 0; it < args.iterations; it++) {
    // Alternate which goes first.
    const order = it % 2 === 0 ? IMPLS : [...IMPLS].reverse();
    for (const [name, make] of order) runs.get(name)!.push(pass(make, chunks, stanzas));
  }
  const bytes = total + HEADER.length;
  const js = median(runs.get("js")!);
  const wasm = median(runs.get("wasm")!);
  const nsB = (ms: number): string => ((ms * 1e6) / bytes).toFixed(3);
  const nsC = (ms: number): string => ((ms * 1e6) / (chunks.length + 1)).toFixed(0);
  console.log(`| ${shape.name} | ${nsB(js)} | ${nsB(wasm)} | ${nsC(js)} | ${nsC(wasm)} | ${(js / wasm).toFixed(2)}× | ${spread(runs.get("js")!).toFixed(2)} / ${spread(runs.get("wasm")!).toFixed(2)} |`);
}
