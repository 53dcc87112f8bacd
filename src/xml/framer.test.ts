import { makeFramer, test } from "../../test/helpers/both-framers.js";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parse as ltxParse } from "ltx";
import {
  DEFAULT_LIMITS, FRAME_CLOSE, FRAME_HEADER, FRAME_STANZA, FRAME_WHITESPACE,
  type FrameKind, type FramerLimits, type StreamFramer,
} from "./framer.js";
import type { ProxyError } from "../errors.js";


interface Collected {
  frames: Array<{ kind: FrameKind; bytes: Buffer }>;
  error: ProxyError | null;
  framer: StreamFramer;
  maxBuffered: number;
}

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

function frame(chunks: Array<Buffer | string>, limits: FramerLimits = DEFAULT_LIMITS, onFrame?: (f: StreamFramer, kind: FrameKind, bytes: Buffer) => void): Collected {
  const out: Collected = { frames: [], error: null, framer: undefined as unknown as StreamFramer, maxBuffered: 0 };
  const framer: StreamFramer = makeFramer({
    onFrame(kind, data, start, end) {
      const bytes = Buffer.from(data.subarray(start, end));
      out.frames.push({ kind, bytes });
      onFrame?.(framer, kind, bytes);
    },
    onError(error) {
      assert.equal(out.error, null, "onError is called at most once");
      out.error = error;
    },
  }, limits);
  out.framer = framer;
  for (const c of chunks) {
    framer.write(typeof c === "string" ? Buffer.from(c) : c);
    out.maxBuffered = Math.max(out.maxBuffered, framer.bufferedBytes);
  }
  return out;
}

/** Merge adjacent whitespace frames: their boundaries legitimately follow the chunking. */
function normalise(frames: Collected["frames"]): Array<[FrameKind, string]> {
  const out: Array<[FrameKind, string]> = [];
  for (const f of frames) {
    const last = out[out.length - 1];
    if (f.kind === FRAME_WHITESPACE && last && last[0] === FRAME_WHITESPACE) last[1] += f.bytes.toString("latin1");
    else out.push([f.kind, f.bytes.toString("latin1")]);
  }
  return out;
}

function splitAt(buf: Buffer, offsets: number[]): Buffer[] {
  const cuts = [...new Set(offsets.map((o) => o % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    parts.push(buf.subarray(prev, c));
    prev = c;
  }
  parts.push(buf.subarray(prev));
  return parts;
}

const TRICKY = HEADER +
  "<message to='a@b' id='1' type='chat'><body>hi &amp; &lt;3 &#x263A; &#9731;</body></message>" +
  " \n\t " +
  "<iq type='get' id='2' data-x='/>' other=\"a>b\"><query xmlns='jabber:iq:roster'/></iq>" +
  "<message><body><![CDATA[</body></message> ]] ]> <x/>]]></body></message>" +
  "<presence/>" +
  "<message><body>caf\u00e9 \u{1F600} \u4e2d</body><x xmlns='urn:x'   a = 'b' ></x ></message>\n" +
  "</stream:stream>";

test("frames a tricky stream into exact byte ranges", () => {
  const r = frame([TRICKY]);
  assert.equal(r.error, null);
  const kinds = r.frames.map((f) => f.kind);
  assert.deepEqual(kinds, [FRAME_HEADER, FRAME_STANZA, FRAME_WHITESPACE, FRAME_STANZA, FRAME_STANZA, FRAME_STANZA, FRAME_STANZA, FRAME_WHITESPACE, FRAME_CLOSE]);
  assert.equal(r.frames[0]!.bytes.toString(), HEADER);
  assert.equal(r.frames[3]!.bytes.toString(), "<iq type='get' id='2' data-x='/>' other=\"a>b\"><query xmlns='jabber:iq:roster'/></iq>");
  assert.equal(r.frames[4]!.bytes.toString(), "<message><body><![CDATA[</body></message> ]] ]> <x/>]]></body></message>");
  assert.equal(r.frames[8]!.bytes.toString(), "</stream:stream>");
  assert.ok(r.framer.closed);
  assert.equal(Buffer.concat(r.frames.map((f) => f.bytes)).toString(), TRICKY);
});

test("the same frames whatever the split: every single offset and every pair of nearby offsets", () => {
  const input = Buffer.from(TRICKY);
  const expected = normalise(frame([input]).frames);
  for (let a = 0; a <= input.length; a++) {
    const r = frame(splitAt(input, [a]));
    assert.equal(r.error, null, `split at ${a}: ${r.error?.message}`);
    assert.deepEqual(normalise(r.frames), expected, `split at ${a}`);
  }
  for (let a = 0; a <= input.length; a += 7) {
    for (let b = a; b <= Math.min(input.length, a + 12); b++) {
      const r = frame(splitAt(input, [a, b]));
      assert.deepEqual(normalise(r.frames), expected, `split at ${a},${b}`);
    }
  }
});

test("one byte at a time yields the same frames", () => {
  const input = Buffer.from(TRICKY);
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i++) chunks.push(input.subarray(i, i + 1));
  assert.deepEqual(normalise(frame(chunks).frames), normalise(frame([input]).frames));
});

// ---- property tests over generated streams -------------------------------

const nameArb = fc.constantFrom("message", "presence", "iq", "body", "x", "stream:features", "a", "q:b", "thread", "r");
const textArb = fc.array(fc.constantFrom("a", "b", " ", "\n", "&amp;", "&lt;", "&gt;", "&quot;", "&#65;", "&#x1F600;", "é", "\u{1F600}", "中", ">", "]", "'", "\""), { maxLength: 12 }).map((a) => a.join(""));
const attrValArb = fc.array(fc.constantFrom("a", "/", ">", "/>", " ", "&amp;", "é", "x@y/z", "'"), { maxLength: 6 }).map((a) => a.join(""));

interface Node { name: string; attrs: Array<[string, string]>; children: Array<Node | string>; cdata: boolean }
const nodeArb: fc.Arbitrary<Node> = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.record({
    name: nameArb,
    attrs: fc.uniqueArray(fc.tuple(fc.constantFrom("to", "from", "id", "type", "xmlns", "xml:lang", "a-b"), attrValArb), { maxLength: 4, selector: (t) => t[0] }),
    children: fc.array(fc.oneof({ depthSize: "small", withCrossShrink: true }, textArb, tie("node")), { maxLength: 4 }),
    cdata: fc.boolean(),
  }),
})).node;

function render(n: Node): string {
  const attrs = n.attrs.map(([k, v]) => {
    const q = v.includes("'") ? '"' : "'";
    return ` ${k}=${q}${v}${q}`;
  }).join("");
  if (n.children.length === 0) return `<${n.name}${attrs}/>`;
  const inner = n.children.map((c) => typeof c === "string" ? (n.cdata ? `<![CDATA[${c.replace(/]]>/g, "")}]]>` : c) : render(c)).join("");
  return `<${n.name}${attrs}>${inner}</${n.name}>`;
}

const streamArb = fc.array(fc.tuple(nodeArb, fc.constantFrom("", " ", "\n", "  \r\n")), { minLength: 1, maxLength: 12 })
  .map((items) => ({ stanzas: items.map(([n]) => render(n)), text: HEADER + items.map(([n, ws]) => render(n) + ws).join("") + "</stream:stream>" }));

test("property: any stanza stream, any chunking → identical frames, byte-exact concatenation, each frame parses", () => {
  fc.assert(fc.property(streamArb, fc.array(fc.nat(), { maxLength: 20 }), ({ stanzas, text }, cuts) => {
    const input = Buffer.from(text);
    const whole = frame([input]);
    assert.equal(whole.error, null, whole.error?.message);
    const got = frame(splitAt(input, cuts));
    assert.equal(got.error, null);
    assert.deepEqual(normalise(got.frames), normalise(whole.frames));
    assert.ok(Buffer.concat(got.frames.map((f) => f.bytes)).equals(input), "concatenated frames equal the input");
    const stanzaFrames = got.frames.filter((f) => f.kind === FRAME_STANZA).map((f) => f.bytes.toString());
    assert.deepEqual(stanzaFrames, stanzas);
    for (const s of stanzaFrames) {
      // xmpp-proxy's fuzz property: every frame is one complete element for a real parser.
      const el = ltxParse(s);
      assert.ok(el);
    }
  }), { numRuns: 300, seed: 20261123 });
});

test("property: every split offset of a long random stream", () => {
  fc.assert(fc.property(streamArb, ({ text }) => {
    const input = Buffer.from(text);
    const expected = normalise(frame([input]).frames);
    for (let a = 1; a < input.length; a++) {
      const got = frame([input.subarray(0, a), input.subarray(a)]);
      assert.deepEqual(normalise(got.frames), expected);
    }
  }), { numRuns: 25, seed: 7 });
});

// ---- stream restarts -----------------------------------------------------

test("reset() from a callback restarts the stream mid-chunk (SASL success)", () => {
  const text = HEADER + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" + HEADER + "<iq id='b'/>";
  const r = frame([text], DEFAULT_LIMITS, (f, kind, bytes) => {
    if (kind === FRAME_STANZA && bytes.toString().startsWith("<success")) f.reset();
  });
  assert.equal(r.error, null);
  assert.deepEqual(r.frames.map((f) => f.kind), [FRAME_HEADER, FRAME_STANZA, FRAME_HEADER, FRAME_STANZA]);
  assert.equal(r.frames[3]!.bytes.toString(), "<iq id='b'/>");
});

test("reset() after a whitespace frame keeps the next '<'", () => {
  const text = HEADER + "<a/> " + HEADER + "<b/>";
  let n = 0;
  const r = frame([text], DEFAULT_LIMITS, (f, kind) => {
    if (kind === FRAME_WHITESPACE && n++ === 0) f.reset();
  });
  assert.equal(r.error, null);
  assert.deepEqual(r.frames.map((f) => f.bytes.toString()), [HEADER, "<a/>", " ", HEADER, "<b/>"]);
});

// ---- bad input -----------------------------------------------------------

function expectError(input: Array<Buffer | string>, code: string, condition: string, limits?: FramerLimits): Collected {
  const r = frame(input, limits);
  assert.ok(r.error, `expected ${code}`);
  assert.equal(r.error.code, code);
  assert.equal(r.error.condition, condition);
  assert.ok(r.framer.failed);
  return r;
}

test("restricted XML: comments, DOCTYPE, PIs, entity declarations, undeclared entities", () => {
  expectError([HEADER + "<message><!-- hi --></message>"], "XPX_ERR_XML_RESTRICTED", "restricted-xml");
  expectError([HEADER + "<!-- hi -->"], "XPX_ERR_XML_RESTRICTED", "restricted-xml");
  expectError(["<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]>" + HEADER.slice(21)], "XPX_ERR_XML_RESTRICTED", "restricted-xml");
  expectError([HEADER + "<message><!DOCTYPE x></message>"], "XPX_ERR_XML_RESTRICTED", "restricted-xml");
  expectError([HEADER + "<message><?php echo 1 ?></message>"], "XPX_ERR_XML_RESTRICTED", "restricted-xml");
  expectError([HEADER + "<?xml version='1.0'?>"], "XPX_ERR_XML_RESTRICTED", "restricted-xml");
  expectError(["<?xml-stylesheet href='x'?>" + HEADER], "XPX_ERR_XML_RESTRICTED", "restricted-xml");
  expectError([HEADER + "<message><body>&foo;</body></message>"], "XPX_ERR_XML_RESTRICTED", "restricted-xml");
  expectError([HEADER + "<message to='&ent;'/>"], "XPX_ERR_XML_RESTRICTED", "restricted-xml");
});

test("the billion laughs document is refused at its DOCTYPE, before any expansion", () => {
  const laughs = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>" +
    Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} '${`&lol${i || ""};`.repeat(10)}'>`).join("") +
    "]><lolz>&lol9;</lolz>";
  const r = expectError([laughs], "XPX_ERR_XML_RESTRICTED", "restricted-xml");
  assert.equal(r.frames.length, 0);
  assert.ok(r.maxBuffered < 200);
});

test("not well-formed: mismatched tags, bad names, bad attributes, bad references", () => {
  const cases = [
    "<message><body></message></body>",
    "<message></mess>",
    "<message></messagex>",
    "<a x></a>",
    "<a x=y/>",
    "<a x='1'y='2'/>",
    "<a x='<'/>",
    "<a><b>&#0;</b></a>",
    "<a>&#xD800;</a>",
    "<a>& b</a>",
    "<a>&#xZZ;</a>",
    "<1a/>",
    "<a/ >",
    "<a>\u0001</a>",
    "<a><![CDAT[x]]></a>",
  ];
  for (const c of cases) {
    const r = frame([HEADER + c]);
    assert.ok(r.error, `expected an error for ${c}`);
    assert.equal(r.error.condition, "not-well-formed", c);
  }
});

test("text and garbage at stream level", () => {
  expectError([HEADER + "hello"], "XPX_ERR_XML_TEXT_AT_STREAM_LEVEL", "bad-format");
  expectError(["GET / HTTP/1.1\r\n\r\n"], "XPX_ERR_XML_NOT_WELL_FORMED", "not-well-formed");
  expectError([HEADER + "</stream:streamx>"], "XPX_ERR_XML_NOT_WELL_FORMED", "not-well-formed");
  // A NUL (or other C0 control) is not an XML character anywhere: not-well-formed, not bad-format.
  expectError([HEADER + "<presence/>\u0000"], "XPX_ERR_XML_NOT_WELL_FORMED", "not-well-formed");
  expectError([HEADER + " \u0001"], "XPX_ERR_XML_NOT_WELL_FORMED", "not-well-formed");
});

test("invalid UTF-8 is refused, including sequences split across chunks", () => {
  const bad = [
    Buffer.from([0xc3, 0x28]), // bad continuation
    Buffer.from([0xc0, 0xaf]), // overlong
    Buffer.from([0xed, 0xa0, 0x80]), // surrogate
    Buffer.from([0xf5, 0x80, 0x80, 0x80]), // beyond U+10FFFF
    Buffer.from([0xff]),
  ];
  for (const b of bad) {
    const body = Buffer.concat([Buffer.from(HEADER + "<message><body>"), b, Buffer.from("</body></message>")]);
    for (let cut = HEADER.length + 15; cut <= HEADER.length + 15 + b.length; cut++) {
      const r = frame([body.subarray(0, cut), body.subarray(cut)]);
      assert.equal(r.error?.code, "XPX_ERR_XML_INVALID_UTF8", `${b.toString("hex")} cut at ${cut}`);
    }
  }
  // A valid 4-byte character split at each position is fine.
  const ok = Buffer.from(HEADER + "<m>\u{1F600}</m>");
  for (let cut = 0; cut <= ok.length; cut++) assert.equal(frame([ok.subarray(0, cut), ok.subarray(cut)]).error, null);
});

test("oversize stanza: refused with policy-violation, memory held never exceeds the limit", () => {
  const limits = { ...DEFAULT_LIMITS, maxStanzaSize: 4096 };
  const chunks: Buffer[] = [Buffer.from(HEADER + "<message><body>")];
  for (let i = 0; i < 100; i++) chunks.push(Buffer.alloc(1000, 0x61));
  const r = expectError(chunks, "XPX_ERR_STANZA_TOO_LARGE", "policy-violation", limits);
  assert.ok(r.maxBuffered <= 4096, `held ${r.maxBuffered}`);
  // Exactly at the limit is fine; one byte over is not.
  const stanza = "<message><body>" + "x".repeat(4096 - 32) + "</body></message>";
  assert.equal(Buffer.byteLength(stanza), 4096 - 32 + 32);
  assert.equal(frame([HEADER + stanza], limits).error, null);
  expectError([HEADER + stanza.replace("<body>", "<body>y")], "XPX_ERR_STANZA_TOO_LARGE", "policy-violation", limits);
});

test("oversize header and slow-drip header are bounded", () => {
  const limits = { ...DEFAULT_LIMITS, maxHeaderSize: 512 };
  expectError(["<stream:stream xmlns='jabber:client' x='" + "a".repeat(600) + "'>"], "XPX_ERR_HEADER_TOO_LARGE", "policy-violation", limits);
  const drip: string[] = ["<stream:stream a='"];
  for (let i = 0; i < 1000; i++) drip.push("a");
  const r = expectError(drip, "XPX_ERR_HEADER_TOO_LARGE", "policy-violation", limits);
  assert.ok(r.maxBuffered <= 512);
});

test("deep nesting: a 1 GB stream of <a><a><a>... is refused after max_depth levels", () => {
  const limits = { ...DEFAULT_LIMITS, maxDepth: 64 };
  const r = frame([HEADER], limits);
  const chunk = Buffer.from("<a>".repeat(65536 / 3));
  let written = 0;
  while (!r.framer.failed && written < 1 << 30) {
    r.framer.write(chunk);
    written += chunk.length;
  }
  assert.ok(r.error);
  assert.equal(r.error.code, "XPX_ERR_XML_TOO_DEEP");
  assert.equal(r.error.condition, "policy-violation");
  assert.equal(written, chunk.length, "refused within the first chunk");
  assert.ok(r.framer.bufferedBytes === 0);
});

test("a 1 GB stream of one endless attribute value is bounded by max_stanza_size", () => {
  const r = frame([HEADER + "<message to='"]);
  const chunk = Buffer.alloc(65536, 0x61);
  let written = 0;
  let peak = 0;
  while (!r.framer.failed && written < 1 << 30) {
    r.framer.write(chunk);
    written += chunk.length;
    peak = Math.max(peak, r.framer.bufferedBytes);
  }
  assert.equal(r.error?.code, "XPX_ERR_STANZA_TOO_LARGE");
  assert.ok(peak <= DEFAULT_LIMITS.maxStanzaSize);
  assert.ok(written <= DEFAULT_LIMITS.maxStanzaSize + chunk.length);
});

test("too many attributes and too-long names", () => {
  const limits = { ...DEFAULT_LIMITS, maxAttributes: 4 };
  expectError([HEADER + "<a a='1' b='2' c='3' d='4' e='5'/>"], "XPX_ERR_XML_TOO_MANY_ATTRIBUTES", "policy-violation", limits);
  assert.equal(frame([HEADER + "<a a='1' b='2' c='3' d='4'/>"], limits).error, null);
  expectError([HEADER + "<" + "n".repeat(2000) + "/>"], "XPX_ERR_XML_NAME_TOO_LONG", "policy-violation");
});

test("attribute names longer than 1024 bytes are refused, on the stream header and on every element, at every split", () => {
  const name = (n: number): string => "a".repeat(n - 1) + "z";
  const cases = (n: number): string[] => [
    `${HEADER}<message ${name(n)}='1'/>`,
    `${HEADER}<message to='x@y'><body xml:lang='en' ${name(n)}="v">hi</body></message>`,
    `${HEADER}<iq type='get' id='1'><query xmlns='jabber:iq:roster'><item ${name(n)} = 'v'/></query></iq>`,
    `<?xml version='1.0'?><stream:stream xmlns='jabber:client' ${name(n)}='x' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`,
  ];
  for (const input of cases(1024)) {
    const whole = frame([input]);
    assert.equal(whole.error, null, input.slice(0, 80));
    const expected = normalise(whole.frames);
    const bytes = Buffer.from(input);
    for (let a = 0; a <= bytes.length; a++) {
      const r = frame(splitAt(bytes, [a]));
      assert.equal(r.error, null, `1024 bytes, split at ${a}: ${r.error?.message}`);
      assert.deepEqual(normalise(r.frames), expected, `1024 bytes, split at ${a}`);
    }
  }
  for (const input of cases(1025)) {
    const whole = expectError([input], "XPX_ERR_XML_NAME_TOO_LONG", "policy-violation");
    assert.equal(whole.frames.filter((f) => f.kind === FRAME_STANZA).length, 0);
    const bytes = Buffer.from(input);
    for (let a = 0; a <= bytes.length; a++) {
      const r = frame(splitAt(bytes, [a]));
      assert.equal(r.error?.code, "XPX_ERR_XML_NAME_TOO_LONG", `1025 bytes, split at ${a}`);
      assert.equal(r.frames.filter((f) => f.kind === FRAME_STANZA).length, 0, `split at ${a}`);
    }
    for (let a = 0; a <= bytes.length; a += 97) {
      for (let b = a; b <= Math.min(bytes.length, a + 12); b++) {
        assert.equal(frame(splitAt(bytes, [a, b])).error?.code, "XPX_ERR_XML_NAME_TOO_LONG", `1025 bytes, split at ${a},${b}`);
      }
    }
  }
  // A name of multi-byte characters counts bytes, as element names do.
  assert.equal(frame([`${HEADER}<m ${"\u00e9".repeat(512)}='1'/>`]).error, null);
  expectError([`${HEADER}<m ${"\u00e9".repeat(512)}z='1'/>`], "XPX_ERR_XML_NAME_TOO_LONG", "policy-violation");
});

test("an attribute name dripped one byte at a time, or endless, is refused as soon as it passes 1024 bytes", () => {
  const drip: string[] = [HEADER + "<message "];
  for (let i = 0; i < 2000; i++) drip.push("n");
  const r = expectError(drip, "XPX_ERR_XML_NAME_TOO_LONG", "policy-violation");
  assert.ok(r.maxBuffered < 1024 + 16, `held ${r.maxBuffered}`);

  const endless = frame([HEADER + "<message to='a@b' "]);
  const chunk = Buffer.alloc(65536, 0x61);
  let written = 0;
  while (!endless.framer.failed && written < 1 << 30) {
    endless.framer.write(chunk);
    written += chunk.length;
  }
  assert.equal(endless.error?.code, "XPX_ERR_XML_NAME_TOO_LONG");
  assert.equal(written, chunk.length, "refused within the first chunk");
  assert.equal(endless.framer.bufferedBytes, 0);
});

test("finish(): EOF inside an element is reported, a clean end is not", () => {
  const mid = frame([HEADER + "<message><body>hi"]);
  assert.equal(mid.framer.finish()?.code, "XPX_ERR_XML_TRUNCATED");
  const clean = frame([HEADER + "<message/> "]);
  assert.equal(clean.framer.finish(), null);
  const none = frame([]);
  assert.equal(none.framer.finish(), null);
  const splitChar = frame([Buffer.concat([Buffer.from(HEADER + "<m>"), Buffer.from([0xe4, 0xb8])])]);
  assert.equal(splitChar.framer.finish()?.code, "XPX_ERR_XML_TRUNCATED");
});

test("after the stream close, further bytes are ignored", () => {
  const r = frame([HEADER + "</stream:stream><message/>garbage"]);
  assert.equal(r.error, null);
  assert.deepEqual(r.frames.map((f) => f.kind), [FRAME_HEADER, FRAME_CLOSE]);
});

test("control bytes in long text and attribute values are found at every position, alignment and split", () => {
  // Runs longer than the byte-by-byte probe go through the native search and
  // the 4-bytes-at-a-time control check: every offset, several alignments.
  const filler = "abcdefghij\t\r\ncaf\u00e9 klmnopqrstuvwxyz0123456789-".repeat(3);
  for (const make of [
    (t: string) => `<message><body>${t}</body></message>`,
    (t: string) => `<message to='${t}'/>`,
    (t: string) => `<message to="${t}"/>`,
  ]) {
    assert.equal(frame([HEADER + make(filler)]).error, null);
    const text = Buffer.from(filler);
    for (let p = 0; p < text.length; p++) {
      if ((text[p]! & 0xc0) === 0x80) continue; // inside the multi-byte character
      const bad = Buffer.concat([text.subarray(0, p), Buffer.from([0x01]), text.subarray(p)]).toString("latin1");
      for (const pad of [0, 1, 2, 3]) {
        const whole = Buffer.concat([Buffer.alloc(pad, 0x20), Buffer.from(HEADER), Buffer.from(make(bad), "latin1")]);
        const r = frame([whole]);
        assert.equal(r.error?.code, "XPX_ERR_XML_NOT_WELL_FORMED", `control at ${p}, pad ${pad}`);
        assert.equal(r.frames.filter((f) => f.kind === FRAME_STANZA).length, 0);
      }
      const whole = Buffer.from(HEADER + make(bad), "latin1");
      const cut = HEADER.length + 20 + (p % 40);
      assert.equal(frame([whole.subarray(0, cut), whole.subarray(cut)]).error?.code, "XPX_ERR_XML_NOT_WELL_FORMED", `split, control at ${p}`);
    }
  }
});
