// The framer in WebAssembly: the state machine of framer.ts compiled from
// asm/framer.ts, behind the same StreamFramer interface and with the same
// frames and errors (framer-wasm.test.ts feeds both the same streams in
// random chunkings). write() copies the chunk into the module's memory and
// makes one call, which validates the UTF-8 and records every frame boundary
// of the chunk; the frames are then passed to the sink as views of the
// caller's Buffer, exactly as the JS framer passes them.
//
// One module instance serves the whole process. A framer owns a small struct
// in its memory (the parser state, limits and open elements' names: a
// 208-byte block), freed by stop(), by an error or, for a framer dropped without
// either, when it is garbage-collected.
//
// createFramer() is how the proxy makes its framers: WebAssembly unless
// XMPP_GUARD_FRAMER=js (or WebAssembly with SIMD is unavailable).

import { Buffer } from "node:buffer"; // not the global accessor: docs/performance.md, "Globals that are accessors"
import { ProxyError, type ErrorCode } from "../errors.js";
import { FRAMER_WASM_BASE64 } from "./framer-wasm-module.js";
import { commonNameKeys, FRAME_HEAD, OFFERED_ATTR_WORDS, OFFERED_HEAD_WORDS } from "./head.js";
import { OFFERED_MEMORY, RECENT_LONGEST, RECENT_SLOTS } from "./values.js";
import { DEFAULT_LIMITS, FRAME_STANZA, Framer, type FrameKind, type FrameSink, type FramerLimits, type StreamFramer } from "./framer.js";

// The WebAssembly API, typed here: the project's TypeScript libs (ES2023, Node) do not declare it.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: WasmApi };

interface Exports {
  memory: { readonly buffer: ArrayBuffer };
  result(): number;
  alloc(size: number): number;
  release(ptr: number): void;
  newState(maxStanza: number, maxDepth: number, maxAttrs: number, maxHeader: number): number;
  setLimits(st: number, maxStanza: number, maxDepth: number, maxAttrs: number, maxHeader: number): void;
  freeState(st: number): void;
  resetState(st: number): void;
  stopState(st: number): void;
  carried(st: number): number;
  setNames(table: number, n: number, xmlns: number, xmlLang: number, positioned: number): void;
  write(st: number, buf: number, len: number, records: number, heads: number): number;
  scan(st: number, buf: number, from: number, len: number, records: number, heads: number): number;
}

// Indexes used by asm/framer.ts (E_* and D_*).
const CODES: ReadonlyArray<ErrorCode> = [
  "XPX_ERR_XML_NOT_WELL_FORMED", // 0: unused
  "XPX_ERR_XML_INVALID_UTF8",
  "XPX_ERR_XML_NOT_WELL_FORMED",
  "XPX_ERR_XML_TEXT_AT_STREAM_LEVEL",
  "XPX_ERR_XML_TOO_DEEP",
  "XPX_ERR_XML_RESTRICTED",
  "XPX_ERR_XML_NAME_TOO_LONG",
  "XPX_ERR_XML_TOO_MANY_ATTRIBUTES",
  "XPX_ERR_STREAM_HEADER_INVALID",
  "XPX_ERR_HEADER_TOO_LARGE",
  "XPX_ERR_STANZA_TOO_LARGE",
];
const DETAILS: ReadonlyArray<string | undefined> = [
  undefined,
  "control character",
  "expected a stream header",
  "end tag before the stream header",
  "comment or DOCTYPE outside a stanza",
  "processing instruction",
  "bad character after '<'",
  "bad character in element name",
  "bad character in start tag",
  "attribute name",
  "attribute without value",
  "unquoted attribute value",
  "'<' in attribute value",
  "expected '>' after '/'",
  "self-closed stream header",
  "end tag does not match start tag",
  "bad character in end tag",
  "comment",
  "DOCTYPE",
  "bad markup after '<!'",
  "undeclared entity reference",
  "bad character or entity reference",
  "bad entity reference",
];

// State struct fields read here (i32 indexes: byte offset / 4), and states.
const F_STATE = 0;
const F_PENDING = 3;
const S_PROLOG = 0, S_STREAM = 1, S_CLOSED = 17;

let wasm: Exports | null = null;
let wasmError: Error | null = null;
let heapI32 = new Int32Array(0);
let heapU8 = new Uint8Array(0);
let resultAt = 0; // i32 index of the results block
let recentTable = 0; // the table of recent values' bytes (values.ts OfferedMemory)

function instance(): Exports {
  if (wasm !== null) return wasm;
  const module = new wasmApi.Module(Buffer.from(FRAMER_WASM_BASE64, "base64"));
  wasm = new wasmApi.Instance(module, {}).exports as unknown as Exports;
  resultAt = wasm.result() >> 2;
  recentTable = wasm.alloc(RECENT_SLOTS * RECENT_LONGEST);
  // The common names, for the heads area's name indexes (head.ts).
  const { keys, xmlns, xmlLang, positioned } = commonNameKeys();
  const table = wasm.alloc(keys.byteLength);
  refresh();
  heapI32.set(keys, table >> 2);
  wasm.setNames(table, keys.length / 3, xmlns, xmlLang, positioned);
  return wasm;
}

/** Views of the module's memory, made again after it grew (growing detaches the old buffer). */
function refresh(): void {
  const buf = wasm!.memory.buffer;
  heapI32 = new Int32Array(buf);
  heapU8 = new Uint8Array(buf);
  OFFERED_MEMORY.attach(buf, recentTable);
}

/** Whether this runtime can run the WebAssembly framer (it needs SIMD). */
export function wasmFramerAvailable(): boolean {
  if (wasm !== null) return true;
  if (wasmError !== null) return false;
  try {
    instance();
    return true;
  } catch (e) {
    wasmError = e as Error;
    return false;
  }
}

// Scratch memory per nesting level of write() (a sink may write to another
// framer from its callback): the chunk's bytes, the frame records, then the
// stanza heads (asm/framer.ts describes both areas).
let level = 0;
const scratchAt: number[] = [];
const scratchCap: number[] = [];

function scratch(lv: number, len: number): number {
  const cap = scratchCap[lv] ?? 0;
  if (cap >= len) return scratchAt[lv]!;
  const w = instance();
  if (cap > 0) w.release(scratchAt[lv]!);
  const grown = Math.max(len, cap * 2, 4096);
  const at = w.alloc(scratchSize(grown));
  scratchAt[lv] = at;
  scratchCap[lv] = grown;
  refresh();
  return at;
}

/** Records: at most one per two bytes, plus the last frames. */
function recordsSize(len: number): number {
  return ((len >> 1) + 8) * 4;
}

// A chunk of `len` bytes at `at` in scratch memory, then its frame records,
// then its heads (asm/framer.ts: its scan reads past the chunk, into the records).

/** Bytes of scratch memory for a chunk of `len` bytes, its records and its heads. */
export function scratchSize(len: number): number {
  return ((len + 15) & ~15) + recordsSize(len) + (2 * len + 16) * 4;
}

/** Where the records of a chunk of `len` bytes at `at` begin. */
export function recordsAt(at: number, len: number): number {
  return at + ((len + 15) & ~15);
}

/** Where the heads of a chunk of `len` bytes begin, after its records. */
export function headsAt(records: number, len: number): number {
  return records + recordsSize(len);
}

let liveStates = 0;

/** How many WasmFramers hold a state block now (neither stopped nor failed): a leak shows here. */
export function liveWasmFramers(): number {
  return liveStates;
}

/**
 * A framer whose state lives in the module's memory. Its owner ends it with
 * stop() or finish() (an error ends it too): one dropped without either
 * keeps its state block there. No finalizer frees it behind the owner's
 * back, since a registration would cost every framer ~100 bytes of heap;
 * the session stops both of its framers when it ends, whichever way.
 */
export class WasmFramer implements StreamFramer {
  readonly #sink: FrameSink;
  #st: number; // state struct in the module's memory; 0 once stopped or failed
  #pending: Buffer[] | null = null; // incomplete frame carried across chunks (copies)
  #total = 0; // bytes consumed so far, for error offsets
  #epoch = 0; // bumped by reset()/stop() so delivery notices a change made from a callback

  constructor(sink: FrameSink, limits: FramerLimits = DEFAULT_LIMITS) {
    const w = instance();
    this.#sink = sink;
    this.#st = w.newState(limits.maxStanzaSize, limits.maxDepth, limits.maxAttributes, limits.maxHeaderSize);
    refresh();
    liveStates++;
  }

  // Private helpers are static, the instance passed in: a private instance method
  // would give every instance one more slot (8 bytes per object).
  static #field(self: WasmFramer, f: number): number {
    if (heapI32.length === 0) refresh();
    return heapI32[(self.#st >> 2) + f]!;
  }

  get bufferedBytes(): number {
    return this.#st === 0 ? 0 : WasmFramer.#field(this, F_PENDING);
  }

  get atBoundary(): boolean {
    if (this.#st === 0 || WasmFramer.#field(this, F_PENDING) !== 0) return false;
    const s = WasmFramer.#field(this, F_STATE);
    return s === S_STREAM || s === S_PROLOG || s === S_CLOSED;
  }

  get closed(): boolean {
    return this.#st !== 0 && WasmFramer.#field(this, F_STATE) === S_CLOSED;
  }

  get failed(): boolean {
    return this.#st === 0;
  }

  setLimits(limits: FramerLimits): void {
    if (this.#st !== 0) wasm!.setLimits(this.#st, limits.maxStanzaSize, limits.maxDepth, limits.maxAttributes, limits.maxHeaderSize);
  }

  reset(): void {
    if (this.#st === 0) return;
    wasm!.resetState(this.#st);
    this.#pending = null;
    this.#epoch++;
  }

  stop(): void {
    WasmFramer.#free(this);
    this.#epoch++;
  }

  finish(): ProxyError | null {
    if (this.#st === 0) return null;
    const s = WasmFramer.#field(this, F_STATE);
    const mid = wasm!.carried(this.#st) > 0 || !(s === S_STREAM || s === S_PROLOG || s === S_CLOSED);
    this.stop();
    return mid ? new ProxyError("XPX_ERR_XML_TRUNCATED") : null;
  }

  static #free(self: WasmFramer): void {
    if (self.#st === 0) return;
    wasm!.freeState(self.#st);
    liveStates--;
    self.#st = 0;
    self.#pending = null;
  }

  write(chunk: Buffer): void {
    const len = chunk.length;
    if (this.#st === 0 || len === 0) return;
    const lv = level++;
    try {
      const at = scratch(lv, len);
      if (heapU8.length === 0) refresh();
      heapU8.set(chunk, at);
      const records = recordsAt(at, len);
      const heads = headsAt(records, len);
      const n = wasm!.write(this.#st, at, len, records, heads);
      WasmFramer.#deliver(this, chunk, 0, n, at, records, heads);
    } finally {
      level--;
    }
    this.#total += len;
  }

  /** Pass the n frames recorded for chunk[from, len) to the sink, then the error or the held tail. */
  static #deliver(self: WasmFramer, chunk: Buffer, from: number, n: number, at: number, records: number, heads: number): void {
    if (heapI32.length === 0) refresh();
    const r = resultAt;
    const code = heapI32[r]!;
    const detail = heapI32[r + 1]!;
    const pos = heapI32[r + 2]!;
    const hold = heapI32[r + 3]!;
    // The heads area's entries, one per stanza whose start tag is in this chunk, in frame order.
    let head = heads >> 2;
    const headsEnd = head + heapI32[r + 4]!;
    const epoch = self.#epoch;
    const sink = self.#sink;
    let start = from;
    for (let k = 0; k < n; k++) {
      if (heapI32.length === 0) refresh(); // a callback's write() may have grown the memory
      const rec = heapI32[(records >> 2) + k]!;
      const kind = (rec & 7) as FrameKind;
      const end = rec >>> 3;
      const pending = self.#pending;
      if (pending === null) {
        if (kind === FRAME_STANZA && head < headsEnd && heapI32[head] === start) {
          FRAME_HEAD.offer(chunk, start, heapI32, head, at);
          head += OFFERED_HEAD_WORDS + OFFERED_ATTR_WORDS * heapI32[head + 3]!;
          try {
            sink.onFrame(kind, chunk, start, end);
          } finally {
            FRAME_HEAD.withdraw();
          }
        } else sink.onFrame(kind, chunk, start, end);
      } else {
        self.#pending = null;
        pending.push(chunk.subarray(0, end));
        const data = Buffer.concat(pending);
        sink.onFrame(kind, data, 0, data.length);
      }
      start = end;
      if (self.#epoch !== epoch) {
        // reset() or stop() from the callback: the rest of the chunk is a new stream.
        if (self.#st === 0 || end >= chunk.length) return;
        const m = wasm!.scan(self.#st, at, end, chunk.length, records, heads);
        WasmFramer.#deliver(self, chunk, end, m, at, records, heads);
        return;
      }
    }
    if (code !== 0) {
      WasmFramer.#free(self);
      self.#epoch++;
      // Offsets count from where this scan began, as the JS framer's do.
      sink.onError(new ProxyError(CODES[code]!, DETAILS[detail]), self.#total + pos - from);
      return;
    }
    if (hold >= 0) (self.#pending ??= []).push(Buffer.from(chunk.subarray(hold)));
  }
}

export type FramerImplementation = "wasm" | "js";

let chosen: FramerImplementation | null = null;

/** The implementation createFramer() uses: XMPP_GUARD_FRAMER=js|wasm, else WebAssembly where it runs. */
export function framerImplementation(): FramerImplementation {
  if (chosen === null) {
    const env = process.env["XMPP_GUARD_FRAMER"];
    chosen = env === "js" ? "js" : wasmFramerAvailable() ? "wasm" : "js";
  }
  return chosen;
}

export function createFramer(sink: FrameSink, limits: FramerLimits = DEFAULT_LIMITS): StreamFramer {
  return framerImplementation() === "wasm" ? new WasmFramer(sink, limits) : new Framer(sink, limits);
}
