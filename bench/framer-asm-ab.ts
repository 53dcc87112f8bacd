// The WebAssembly framer's scan, two or more versions of its source side by
// side: each file is compiled as `npm run build:wasm` compiles asm/framer.ts,
// instantiated on its own, and driven directly (copy a chunk into the
// module's memory, call write(); no JavaScript delivery, no sink), so that a
// change to the scan is measured without the rest of the path. The versions
// take turns pass by pass in one process (the first and last passes in each
// order), which keeps a machine whose speed drifts from favouring one; each
// figure is the median of the passes, in ns per byte of the stream. Each
// pass makes a fresh state, writes the stream header and every chunk, and
// the frame counts of all versions must agree.
//
// The shapes are the flood's two messages (bench/lib/fixture.ts): a client's
// chat message and the server's delivery of it, in 16 KiB chunks, or one
// stanza per chunk with --chunk=0.
//
//   npx tsx bench/framer-asm-ab.ts <framer.ts> <other framer.ts>... [--chunk=16384] [--passes=21]
//
// For instance, the committed source against the one in a work tree:
//   git show HEAD:asm/framer.ts > /tmp/before.ts && npx tsx bench/framer-asm-ab.ts /tmp/before.ts asm/framer.ts

import { performance } from "node:perf_hooks";
import { buildWasm } from "../asm/build.js";
import { commonNameKeys } from "../src/xml/head.js";
import { headsAt, recordsAt, scratchSize } from "../src/xml/framer-wasm.js";
import { floodClientMessage, floodServerDelivery } from "./lib/fixture.js";
import { median } from "./lib/stats.js";

const HEADER = Buffer.from("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.net' version='1.0' xml:lang='en'>");
const SHAPES: Array<[string, (i: number) => string]> = [
  ["client's message", floodClientMessage],
  ["server's delivery", floodServerDelivery],
];
const STREAM_BYTES = 2_000_000;
const MAX_CHUNK = 65_536;

interface Exports {
  memory: { readonly buffer: ArrayBuffer };
  alloc(size: number): number;
  newState(maxStanza: number, maxDepth: number, maxAttrs: number, maxHeader: number): number;
  freeState(st: number): void;
  setNames(table: number, n: number, xmlns: number, xmlLang: number, positioned: number): void;
  write(st: number, buf: number, len: number, records: number, heads: number): number;
}
const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object; Instance: new (m: object, i: object) => { exports: unknown } } };

/** One pass over `chunks` by the module compiled from one source: frames seen. */
type Pass = (chunks: readonly Buffer[]) => number;

async function version(path: string): Promise<Pass> {
  const { binary } = await buildWasm(false, path);
  const w = new wasmApi.Instance(new wasmApi.Module(binary), {}).exports as Exports;
  const { keys, xmlns, xmlLang, positioned } = commonNameKeys();
  const table = w.alloc(keys.byteLength);
  new Int32Array(w.memory.buffer).set(keys, table >> 2);
  w.setNames(table, keys.length / 3, xmlns, xmlLang, positioned);
  // The chunk, then its records, then its heads, laid out as the framer lays out its scratch area.
  const at = w.alloc(scratchSize(MAX_CHUNK));
  const u8 = new Uint8Array(w.memory.buffer); // the module's memory does not grow after this
  return (chunks) => {
    const st = w.newState(262_144, 64, 128, 8_192);
    let frames = 0;
    const one = (c: Buffer): void => {
      u8.set(c, at);
      const records = recordsAt(at, c.length);
      frames += w.write(st, at, c.length, records, headsAt(records, c.length));
    };
    one(HEADER);
    for (const c of chunks) one(c);
    w.freeState(st);
    return frames;
  };
}

function chunksOf(stanza: (i: number) => string, size: number): { chunks: Buffer[]; bytes: number } {
  const parts: Buffer[] = [];
  let bytes = 0;
  for (let i = 0; bytes < STREAM_BYTES; i++) {
    const b = Buffer.from(stanza(i));
    parts.push(b);
    bytes += b.length;
  }
  if (size === 0) return { chunks: parts, bytes };
  const all = Buffer.concat(parts);
  const chunks: Buffer[] = [];
  for (let i = 0; i < all.length; i += size) chunks.push(Buffer.from(all.subarray(i, i + size)));
  return { chunks, bytes };
}

const paths: string[] = [];
let chunk = 16_384;
let passes = 21;
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith("--chunk=")) chunk = Number(arg.slice(8));
  else if (arg.startsWith("--passes=")) passes = Number(arg.slice(9));
  else if (arg.startsWith("--")) throw new Error(`unknown argument ${arg}`);
  else paths.push(arg);
}
if (paths.length < 2) throw new Error("usage: npx tsx bench/framer-asm-ab.ts <framer.ts> <other framer.ts>... [--chunk=16384] [--passes=21]");
if (chunk > MAX_CHUNK) throw new Error(`--chunk: at most ${MAX_CHUNK}`);
const versions = await Promise.all(paths.map(version));

console.log(`node ${process.version}, ${passes} alternated passes of ~${(STREAM_BYTES / 1e6).toFixed(1)} MB per shape, ${chunk === 0 ? "one stanza per chunk" : `${chunk}-byte chunks`}, medians in ns per byte\n`);
console.log(`| shape | ${paths.join(" | ")} | ${paths.slice(1).map((p) => `${p} ÷ ${paths[0]}`).join(" | ")} |`);
console.log(`|---|${paths.map(() => "---:").join("|")}|${paths.slice(1).map(() => "---:").join("|")}|`);
for (const [name, stanza] of SHAPES) {
  const { chunks, bytes } = chunksOf(stanza, chunk);
  const frames = versions.map((v) => v(chunks));
  if (frames.some((f) => f !== frames[0])) throw new Error(`${name}: the versions saw ${frames.join(", ")} frames`);
  for (let w = 0; w < 5; w++) for (const v of versions) v(chunks);
  const times: number[][] = versions.map(() => []);
  for (let p = 0; p < passes; p++) {
    const order = versions.map((_, k) => k);
    if (p % 2 === 1) order.reverse();
    for (const k of order) {
      const t0 = performance.now();
      versions[k]!(chunks);
      times[k]!.push(performance.now() - t0);
    }
  }
  const nsB = times.map((t) => (median(t) * 1e6) / (bytes + HEADER.length));
  console.log(`| ${name} | ${nsB.map((x) => x.toFixed(3)).join(" | ")} | ${nsB.slice(1).map((x) => (x / nsB[0]!).toFixed(3)).join(" | ")} |`);
}
