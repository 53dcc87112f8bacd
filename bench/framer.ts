// Framer suite: the xmpp-guard Framer against the parsers an XMPP proxy in
// JavaScript would otherwise use, on the same realistic stream (c2s header +
// message stanzas of 250 bytes) fed as the same Buffer chunks:
//
//   framer       xmpp-guard's Framer on Buffers (frames only, no strings);
//   ltx sax      ltx's SaxLtx tokenizer with counting handlers; it takes
//                strings, so the UTF-8 decode (StringDecoder, which is also
//                correct across chunk splits) is part of its cost;
//   @xmpp/xml    xmpp.js's Parser: SaxLtx plus an ltx Element tree per stanza,
//                what @xmpp/client does with every chunk.
//
// Each pass builds a fresh parser and must see every stanza. After warm-up
// passes, the parsers take turns for each measured iteration, with a GC
// before each pass when --expose-gc is on; figures are medians.
//
// Standalone: tsx bench/framer.ts [--quick] [--guard=auto|dist|build|src]. Under run.ts
// it is a forked child answering one {type: "framer"} request.

import type { EventEmitter } from "node:events";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { StringDecoder } from "node:string_decoder";
import { pathToFileURL } from "node:url";
// SaxLtx is not re-exported from "ltx"'s main entry; "ltx/src/*" is in the
// package's "exports" map, and this deep import lives in bench/ only.
import SaxLtxModule from "ltx/src/parsers/ltx.js";
import type { Message } from "./lib/children.js";
import { exitWithParent } from "./lib/children.js";
import { clientStream, STANZA_BYTES } from "./lib/fixture.js";
import { chooseGuardSource, guardLabel, guardModule, guardSourceArg, type GuardSource } from "./lib/guard-source.js";
import { median, spread } from "./lib/stats.js";
import { num, renderTable, times, type Table } from "./lib/table.js";

type FramerModule = typeof import("../src/xml/framer.js");

// @types/ltx types this file as CommonJS, so its default import types as the
// module object; at run time it is the ESM SaxLtx class.
const SaxLtx = SaxLtxModule as unknown as new () => EventEmitter & { write(data: string): void };

export interface FramerOptions {
  stanzas: number;
  chunkSizes: number[];
  warmup: number;
  iterations: number;
  guard: GuardSource;
}

export interface FramerFigure {
  parser: string;
  chunk: number;
  mbPerSec: number;
  stanzasPerSec: number;
  /** MB/s of the fastest pass: what the code does once V8 has settled. */
  bestMbPerSec: number;
  medianMs: number;
  spread: number;
  runsMs: number[];
}

/** One pass over all chunks with a fresh parser; returns the stanza count. */
type Pass = (chunks: Buffer[]) => number;

interface Contender {
  name: string;
  pass: Pass;
}

async function contenders(guard: GuardSource): Promise<{ list: Contender[]; skipped: string[] }> {
  const { Framer, FRAME_STANZA, DEFAULT_LIMITS } = (await import(guardModule(guard, "xml/framer"))) as FramerModule;
  const list: Contender[] = [];
  const skipped: string[] = [];

  // The sink is an instance of one class, as the proxy's sessions are.
  class CountingSink {
    stanzas = 0;
    onFrame(kind: number): void {
      if (kind === FRAME_STANZA) this.stanzas++;
    }
    onError(err: Error): void {
      throw err;
    }
  }
  list.push({
    name: "framer",
    pass(chunks) {
      const sink = new CountingSink();
      const framer = new Framer(sink, DEFAULT_LIMITS);
      for (const c of chunks) framer.write(c);
      return sink.stanzas;
    },
  });

  list.push({
    name: "ltx sax",
    pass(chunks) {
      let stanzas = 0;
      let depth = 0;
      const sax = new SaxLtx();
      sax.on("startElement", () => {
        depth++;
      });
      sax.on("endElement", () => {
        if (--depth === 1) stanzas++;
      });
      const decoder = new StringDecoder("utf8");
      for (const c of chunks) sax.write(decoder.write(c));
      return stanzas;
    },
  });

  try {
    // A dependency of @xmpp/client (a devDependency here), not of xmpp-guard.
    const { Parser } = await import("@xmpp/xml");
    list.push({
      name: "@xmpp/xml",
      pass(chunks) {
        let stanzas = 0;
        const parser = new Parser();
        parser.on("element", () => {
          stanzas++;
        });
        parser.on("error", (err: Error) => {
          throw err;
        });
        const decoder = new StringDecoder("utf8");
        for (const c of chunks) parser.write(decoder.write(c));
        return stanzas;
      },
    });
  } catch (err) {
    skipped.push(`@xmpp/xml: skipped (${err instanceof Error ? err.message : String(err)})`);
  }
  return { list, skipped };
}

function chunked(stream: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += size) out.push(stream.subarray(i, Math.min(i + size, stream.length)));
  return out;
}

const gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc;

export async function runFramerSuite(opts: FramerOptions, progress: (line: string) => void = () => {}): Promise<{ figures: FramerFigure[]; skipped: string[] }> {
  const stream = clientStream(opts.stanzas);
  const { list, skipped } = await contenders(opts.guard);
  const inputs = opts.chunkSizes.map((size) => ({ size, chunks: chunked(stream, size) }));
  const runs = new Map<string, number[]>();
  const key = (c: Contender, size: number): string => `${c.name}\u0000${size}`;

  const timedPass = (c: Contender, chunks: Buffer[]): number => {
    gc?.();
    const t0 = performance.now();
    const seen = c.pass(chunks);
    const ms = performance.now() - t0;
    if (seen !== opts.stanzas) throw new Error(`${c.name}: saw ${seen} stanzas, expected ${opts.stanzas}`);
    return ms;
  };

  for (let w = 0; w < opts.warmup; w++) for (const c of list) for (const input of inputs) timedPass(c, input.chunks);
  for (let it = 0; it < opts.iterations; it++) {
    for (const c of list) {
      for (const input of inputs) {
        const ms = timedPass(c, input.chunks);
        const k = key(c, input.size);
        if (!runs.has(k)) runs.set(k, []);
        runs.get(k)!.push(ms);
      }
    }
    progress(`  framer iteration ${it + 1}/${opts.iterations}`);
  }

  const figures: FramerFigure[] = [];
  for (const input of inputs) {
    for (const c of list) {
      const ms = runs.get(key(c, input.size))!;
      const m = median(ms);
      figures.push({
        parser: c.name,
        chunk: input.size,
        mbPerSec: stream.length / 1e6 / (m / 1000),
        stanzasPerSec: opts.stanzas / (m / 1000),
        bestMbPerSec: stream.length / 1e6 / (Math.min(...ms) / 1000),
        medianMs: m,
        spread: spread(ms),
        runsMs: ms,
      });
    }
  }
  return { figures, skipped };
}

export function framerTable(figures: FramerFigure[], opts: FramerOptions, skipped: string[]): Table {
  const framerAt = (chunk: number): FramerFigure | undefined => figures.find((f) => f.parser === "framer" && f.chunk === chunk);
  return {
    title: "Framer: bytes → frames, single thread",
    headers: ["chunk", "parser", "MB/s", "stanzas/s", "framer speed-up", "best MB/s", "spread"],
    rows: figures.map((f) => [
      `${f.chunk / 1024} KiB`,
      f.parser,
      num(f.mbPerSec, 1),
      num(f.stanzasPerSec),
      f.parser === "framer" ? "–" : times(framerAt(f.chunk)!.mbPerSec / f.mbPerSec),
      num(f.bestMbPerSec, 1),
      `${(f.spread * 100).toFixed(0)} %`,
    ]),
    notes: [
      `Stream: c2s header + ${num(opts.stanzas)} message stanzas of ${STANZA_BYTES} B (${num((opts.stanzas * STANZA_BYTES) / 1e6, 1)} MB); ` +
        `median of ${opts.iterations} passes after ${opts.warmup} warm-up pass(es); xmpp-guard from ${guardLabel(opts.guard)}.`,
      "framer speed-up = framer MB/s ÷ parser MB/s at the same chunk size (medians); best = fastest single pass.",
      ...skipped,
    ],
  };
}

export const FRAMER_QUICK: Omit<FramerOptions, "guard"> = { stanzas: 100_000, chunkSizes: [16_384, 65_536], warmup: 2, iterations: 3 };
export const FRAMER_FULL: Omit<FramerOptions, "guard"> = { stanzas: 100_000, chunkSizes: [16_384, 65_536], warmup: 4, iterations: 9 };

// ---- entry points --------------------------------------------------------

const isMain = process.argv[1] !== undefined && pathToFileURL(resolve(process.argv[1])).href === import.meta.url;

if (isMain && process.send) {
  // Forked by run.ts: answer one request, then stay until told to go.
  exitWithParent();
  process.on("message", (m: Message) => {
    if (m.type !== "framer") return;
    runFramerSuite(m.options as FramerOptions, (line) => process.send?.({ type: "progress", id: m.id, line })).then(
      (result) => process.send?.({ type: "framer:done", id: m.id, ...result }),
      (err: unknown) => process.send?.({ type: "error", id: m.id, message: err instanceof Error ? err.stack ?? err.message : String(err) }),
    );
  });
  process.send({ type: "ready" });
} else if (isMain) {
  const quick = process.argv.includes("--quick");
  const wanted = process.argv.find((a) => a.startsWith("--guard="))?.slice("--guard=".length);
  const guard = chooseGuardSource(wanted === undefined || wanted === "auto" ? "auto" : guardSourceArg(wanted));
  const opts: FramerOptions = { ...(quick ? FRAMER_QUICK : FRAMER_FULL), guard: guard.source };
  console.log(`xmpp-guard from ${guardLabel(guard.source)}: ${guard.reason}`);
  const { figures, skipped } = await runFramerSuite(opts, (l) => console.log(l));
  console.log(renderTable(framerTable(figures, opts, skipped)));
}
