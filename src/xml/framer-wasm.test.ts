// The WebAssembly framer against the JS one: the same bytes in the same
// chunks must give the same frames (kind and bytes, whitespace boundaries
// included), the same error (code, text, offset), the same observable state
// after every write and the same finish(). Also: nested writes from a
// callback, many framers on the one module, and createFramer()'s choice. The
// committed module is checked against its source in framer-wasm-build.test.ts.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import fc from "fast-check";
import { mutate, mutationArb } from "../../test/helpers/byte-mutations.js";
import { FRAME_STANZA, Framer, type FrameSink, type FramerLimits, type StreamFramer, DEFAULT_LIMITS } from "./framer.js";
import { WasmFramer, createFramer, framerImplementation } from "./framer-wasm.js";

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
const SASL_SUCCESS = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
const PIECES = [
  "<message to='a@b' type='chat' id='m1'><body>hi &amp; é \u{1F600} &#x263A;&#9731;&quot;</body></message>",
  "<presence/>", " ", "\n", "\r\n\t", "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>",
  "<a><b><c/></b></a>", "<m><![CDATA[x <y> ]] ]]]></m>", "<x a='1' b=\"2\" c = 'v' >&#65;&#x41;&lt;&gt;&apos;</x >",
  "</stream:stream>", SASL_SUCCESS, HEADER, "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
  `<message><body>${"long text with é and \u4e2d, ".repeat(8)}</body></message>`,
  `<message to='${"x".repeat(70)}@example.org/${"r".repeat(30)}'/>`,
];
const LIMITS: FramerLimits[] = [
  DEFAULT_LIMITS,
  Object.freeze({ maxStanzaSize: 200, maxDepth: 3, maxAttributes: 2, maxHeaderSize: 180 }),
  Object.freeze({ maxStanzaSize: 100, maxDepth: 1, maxAttributes: 1, maxHeaderSize: 130 }),
];

interface Run {
  events: string[];
}

/** Everything observable of one framer fed `chunks`; `restartOn` resets from the callback (SASL success). */
function observe(make: (sink: FrameSink, limits: FramerLimits) => StreamFramer, chunks: Buffer[], limits: FramerLimits, restartOn: boolean): Run {
  const events: string[] = [];
  let framer: StreamFramer;
  const sink: FrameSink = {
    onFrame(kind, data, start, end) {
      const bytes = data.subarray(start, end);
      events.push(`frame ${kind} ${bytes.toString("hex")}`);
      if (restartOn && kind === FRAME_STANZA && bytes.toString("latin1") === SASL_SUCCESS) framer.reset();
    },
    onError(error, offset) {
      events.push(`error ${error.code} ${error.message} @${offset}`);
    },
  };
  framer = make(sink, limits);
  for (const c of chunks) {
    framer.write(c);
    events.push(`state ${framer.bufferedBytes} ${framer.atBoundary} ${framer.closed} ${framer.failed}`);
  }
  events.push(`finish ${framer.finish()?.code ?? "-"} ${framer.failed}`);
  return { events };
}

function split(input: Buffer, cuts: number[]): Buffer[] {
  const offsets = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const o of [...offsets, input.length]) {
    parts.push(input.subarray(prev, o));
    prev = o;
  }
  return parts;
}

function same(input: Buffer, cuts: number[], limits: FramerLimits, restart = true): void {
  const chunks = split(input, cuts);
  const js = observe((s, l) => new Framer(s, l), chunks, limits, restart);
  const wasm = observe((s, l) => new WasmFramer(s, l), chunks, limits, restart);
  assert.deepEqual(wasm.events, js.events, `input ${input.toString("latin1").slice(0, 120)} cuts ${cuts.join(",")}`);
}

const streamArb = fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 14 }).map((p) => Buffer.from(HEADER + p.join("")));
const cutsArb = fc.array(fc.nat(), { maxLength: 24 });
const limitsArb = fc.constantFrom(...LIMITS);

test("differential: valid streams in random chunks give identical frames, states and ends", () => {
  fc.assert(fc.property(streamArb, cutsArb, limitsArb, (input, cuts, limits) => same(input, cuts, limits)),
    { numRuns: 1500, seed: 4242, interruptAfterTimeLimit: 20_000 });
});

test("differential: mutated streams in random chunks give identical frames and errors", () => {
  fc.assert(fc.property(streamArb, fc.array(mutationArb, { minLength: 1, maxLength: 6 }), cutsArb, limitsArb, (valid, muts, cuts, limits) => same(mutate(valid, muts), cuts, limits)),
    { numRuns: 3000, seed: 4243, interruptAfterTimeLimit: 25_000 });
});

test("differential: random bytes, and a header followed by random bytes", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 500 }), fc.boolean(), cutsArb, limitsArb, (bytes, withHeader, cuts, limits) =>
    same(withHeader ? Buffer.concat([Buffer.from(HEADER), bytes]) : Buffer.from(bytes), cuts, limits)),
  { numRuns: 2000, seed: 4244, interruptAfterTimeLimit: 15_000 });
});

test("differential: every single split offset of a stream with a restart, long runs and multi-byte characters", () => {
  const input = Buffer.from(HEADER + PIECES.join("") + SASL_SUCCESS + HEADER + PIECES.slice(0, 9).join(""));
  for (let a = 0; a <= input.length; a++) same(input, [a], DEFAULT_LIMITS);
  for (let a = 0; a <= input.length; a += 5) same(input, [a, a + 1, a + 2, a + 17], LIMITS[1]!);
});

test("differential: references that are, or nearly are, the five predefined entities, in text and in values, at every split", () => {
  const refs = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&amq;", "&am;", "&ampx;", "&amp", "&lt", "&gt ;", "&qu;", "&quo;", "&quott;",
    "&apos", "&aposx;", "&Amp;", "&lt;&gt;&amp;", "&#65;", "&#0;", "&;", "&"];
  for (const ref of refs) {
    const pieces = [`<m>a${ref}b</m>`, `<m>${ref}</m>`, `<m v='${ref}' w=\"x${ref}y\"/>`, `<m a='1' v='x${ref}'>t</m>`];
    for (const piece of pieces) {
      const input = Buffer.from(HEADER + piece + "<p/>");
      same(input, [], DEFAULT_LIMITS);
      for (let a = HEADER.length; a <= input.length; a++) same(input, [a], DEFAULT_LIMITS);
    }
  }
});

test("differential: end tags that match their start tag or differ at one byte, names of 1 to 20 bytes, nested past the names' inline room, at every split", () => {
  // The WebAssembly scan copies and compares names eight bytes at a time.
  const letters = "abcdefghijklmnopqrstu";
  for (let n = 1; n <= 20; n++) {
    const name = letters.slice(0, n);
    const ends = [name, name + "x", name.slice(0, -1) || "q"];
    for (let k = 0; k < n; k++) ends.push(name.slice(0, k) + "Z" + name.slice(k + 1));
    for (const end of ends) {
      const input = Buffer.from(`${HEADER}<m><${name} a='1'>t</${end}></m><p/>`);
      for (let a = HEADER.length; a <= input.length; a += n > 8 ? 3 : 1) same(input, [a], DEFAULT_LIMITS);
    }
  }
  const deep = ["level0001", "level0002", "level0003", "level0004", "level0005", "level0006", "level0007"];
  const open = deep.map((d) => `<${d}>`).join("");
  for (const last of ["level0001", "level0000", "level000"]) {
    const close = [...deep.slice(1)].reverse().map((d) => `</${d}>`).join("") + `</${last}>`;
    const input = Buffer.from(`${HEADER}${open}x${close}<p/>${open}${[...deep].reverse().map((d) => `</${d}>`).join("")}`);
    for (let a = HEADER.length; a <= input.length; a++) same(input, [a], DEFAULT_LIMITS);
  }
});

test("differential: a bad or cut UTF-8 sequence at every offset of a long ASCII run, whole and split", () => {
  // The WebAssembly check passes over whole ASCII blocks of 64 bytes at once.
  const text = "abcdefghij".repeat(20);
  for (const bad of [[0xff], [0x80], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xc3, 0xa9]]) {
    for (let k = 0; k <= text.length; k += 1) {
      const body = Buffer.concat([Buffer.from(text.slice(0, k)), Buffer.from(bad), Buffer.from(text.slice(k))]);
      const input = Buffer.concat([Buffer.from(`${HEADER}<m>`), body, Buffer.from("</m><p/>")]);
      same(input, [], DEFAULT_LIMITS);
      same(input, [HEADER.length + 3 + k + 1], DEFAULT_LIMITS);
    }
  }
});

test("differential: every test/corpus case, whole, byte by byte and in chunks of 7", () => {
  const dir = new URL("../../test/corpus/", import.meta.url);
  const files = readdirSync(dir).filter((f) => !f.endsWith(".json")).sort();
  assert.ok(files.length > 10, "corpus present");
  for (const f of files) {
    const bytes = readFileSync(new URL(f, dir));
    const all = Array.from({ length: bytes.length }, (_, i) => i);
    for (const cuts of [[], all.length <= 5000 ? all : all.filter((i) => i % 3 === 0), all.filter((i) => i % 7 === 0)]) {
      for (const limits of LIMITS.slice(0, 2)) same(bytes, cuts, limits);
    }
  }
});

test("the last SIMD block of a run reads past the chunk: bytes left there by an earlier, longer chunk never count", () => {
  // Each filler leaves the shared scratch area full of bytes that would stop
  // the scan (a quote, '<', '&', a control byte) or fail UTF-8 (a lead byte),
  // right after where the next, shorter chunk ends.
  const fillers = ["'".repeat(600), "<a/>".repeat(150), "&amp;".repeat(120), "\u00e9".repeat(300), "\u20ac".repeat(200)];
  const endings = ["<m a='xy", "<m a=\"xy", "<m>hello", "<m>caf\u00e9", "<m>tab\tcr\r"];
  for (const filler of fillers) {
    for (const ending of endings) {
      const chunks = [Buffer.from(HEADER + `<f>${filler}</f>`), Buffer.from(ending), Buffer.from(ending.includes("a=") ? "z'/>".replace("'", ending.includes("\"") ? '"' : "'") : " world</m>")];
      const js = observe((s, l) => new Framer(s, l), chunks, DEFAULT_LIMITS, false);
      const wasm = observe((s, l) => new WasmFramer(s, l), chunks, DEFAULT_LIMITS, false);
      assert.deepEqual(wasm.events, js.events, `${filler.slice(0, 8)}… then ${ending}`);
      assert.ok(!js.events.some((e) => e.startsWith("error")), js.events.join("\n"));
    }
  }
});

test("a sink that writes to another framer from its callback (nested writes share one module)", () => {
  const input = Buffer.from(HEADER + PIECES.join("") + "</stream:stream>");
  const make = (impl: "js" | "wasm"): string[] => {
    const seen: string[] = [];
    const mk = (sink: FrameSink): StreamFramer => impl === "js" ? new Framer(sink) : new WasmFramer(sink);
    const inner = mk({ onFrame: (k, d, s, e) => seen.push(`inner ${k} ${d.subarray(s, e).toString("latin1")}`), onError: (e) => seen.push(`inner error ${e.code}`) });
    inner.write(Buffer.from(HEADER));
    const outer = mk({
      onFrame(k, d, s, e) {
        seen.push(`outer ${k} ${d.subarray(s, e).toString("latin1")}`);
        if (k === FRAME_STANZA) inner.write(Buffer.from(d.subarray(s, e)));
      },
      onError: (e) => seen.push(`outer error ${e.code}`),
    });
    for (let i = 0; i < input.length; i += 333) outer.write(input.subarray(i, i + 333));
    return seen;
  };
  assert.deepEqual(make("wasm"), make("js"));
});

test("many framers share the module; stopped ones free their state", () => {
  const framers: WasmFramer[] = [];
  for (let i = 0; i < 2000; i++) framers.push(new WasmFramer({ onFrame() {}, onError() {} }));
  const chunk = Buffer.from(HEADER + "<a><b><c>" + "x".repeat(100));
  for (const f of framers) f.write(chunk);
  for (const f of framers) {
    assert.equal(f.bufferedBytes, chunk.length - HEADER.length);
    f.stop();
    assert.ok(f.failed);
  }
});

test("createFramer() is the WebAssembly framer unless XMPP_GUARD_FRAMER=js", () => {
  const expected = process.env["XMPP_GUARD_FRAMER"] === "js" ? "js" : "wasm";
  assert.equal(framerImplementation(), expected);
  const f = createFramer({ onFrame() {}, onError() {} });
  assert.ok(expected === "wasm" ? f instanceof WasmFramer : f instanceof Framer);
});
