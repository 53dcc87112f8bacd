// Bounded fuzzing of the framer (fast-check, fixed seeds, bounded runs and
// time): random bytes and mutated valid streams, in random chunks. The
// framer.test.ts properties cover valid streams; these cover garbage. For any
// input the framer never throws, holds no more than its limit, and either
// frames the whole input or stops with one typed ProxyError — and whatever it
// framed before stopping is exactly a prefix of the input.

import { makeFramer, test } from "../../test/helpers/both-framers.js";
import assert from "node:assert/strict";
import fc from "fast-check";
import { mutate, mutationArb } from "../../test/helpers/byte-mutations.js";
import { ERRORS, ProxyError } from "../errors.js";
import { FRAME_CLOSE, type FrameKind, type FramerLimits } from "./framer.js";


const LIMITS: FramerLimits = Object.freeze({ maxStanzaSize: 512, maxDepth: 8, maxAttributes: 8, maxHeaderSize: 300 });
const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
const PIECES = [
  "<message to='a@b' type='chat'><body>hi &amp; é \u{1F600}</body></message>", "<presence/>", " ", "\n",
  "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>", "<a><b><c/></b></a>", "<![CDATA[x]]>",
  "<x a='1' b=\"2\">&#65;&#x41;</x>", "</stream:stream>",
];

interface Outcome { frames: Array<{ kind: FrameKind; bytes: Buffer }>; error: ProxyError | null; offset: number; maxHeld: number }

function run(input: Buffer, cuts: number[]): Outcome {
  const out: Outcome = { frames: [], error: null, offset: -1, maxHeld: 0 };
  const framer = makeFramer({
    onFrame: (kind, data, start, end) => out.frames.push({ kind, bytes: Buffer.from(data.subarray(start, end)) }),
    onError: (error, offset) => {
      assert.equal(out.error, null, "onError is called at most once");
      out.error = error;
      out.offset = offset;
    },
  }, LIMITS);
  const offsets = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  let prev = 0;
  for (const o of [...offsets, input.length]) {
    framer.write(input.subarray(prev, o));
    prev = o;
    out.maxHeld = Math.max(out.maxHeld, framer.bufferedBytes);
  }
  const end = framer.finish();
  if (end !== null) {
    assert.equal(out.error, null, "finish() reports only when nothing failed before");
    out.error = end;
    out.offset = input.length;
  }
  return out;
}

function check(input: Buffer, cuts: number[]): void {
  let o: Outcome;
  assert.doesNotThrow(() => {
    o = run(input, cuts);
  });
  o = o!;
  const framed = Buffer.concat(o.frames.map((f) => f.bytes));
  assert.ok(input.subarray(0, framed.length).equals(framed), "frames concatenate to a prefix of the input");
  assert.ok(o.maxHeld <= Math.max(LIMITS.maxStanzaSize, LIMITS.maxHeaderSize), `held ${o.maxHeld} bytes`);
  if (o.error !== null) {
    assert.ok(o.error instanceof ProxyError, "typed error");
    assert.ok(o.error.code in ERRORS, o.error.code);
    assert.equal(o.error.condition, ERRORS[o.error.code].condition);
    assert.ok(o.offset >= framed.length && o.offset <= input.length, `error offset ${o.offset} within [${framed.length}, ${input.length}]`);
  } else if (!o.frames.some((f) => f.kind === FRAME_CLOSE)) {
    // No error and no stream close: everything was framed (or is whitespace before the header).
    const rest = input.subarray(framed.length);
    assert.ok(rest.every((b) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) || rest.toString("latin1").startsWith("<?xml"), `unframed rest without an error: ${rest.toString().slice(0, 80)}`);
  }
}

const cutsArb = fc.array(fc.nat(), { maxLength: 16 });

test("fuzz: random bytes in random chunks never throw; a framed prefix or a typed error", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), cutsArb, (bytes, cuts) => check(Buffer.from(bytes), cuts)),
    { numRuns: 1500, seed: 8061, interruptAfterTimeLimit: 15_000 });
});

test("fuzz: a valid header followed by random bytes", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), cutsArb, (bytes, cuts) => check(Buffer.concat([Buffer.from(HEADER), bytes]), cuts)),
    { numRuns: 1500, seed: 8062, interruptAfterTimeLimit: 15_000 });
});

test("fuzz: mutated valid streams (flipped, inserted, deleted, duplicated bytes) in random chunks", () => {
  const streamArb = fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 10 }).map((p) => Buffer.from(HEADER + p.join("")));
  fc.assert(fc.property(streamArb, fc.array(mutationArb, { minLength: 1, maxLength: 6 }), cutsArb, (valid, muts, cuts) => check(mutate(valid, muts), cuts)),
    { numRuns: 2000, seed: 8063, interruptAfterTimeLimit: 20_000 });
});

test("fuzz: the checks above do catch a framer that loses bytes", () => {
  // Guard against a vacuous property: a prefix check on a corrupted frame list fails.
  const input = Buffer.from(HEADER + "<presence/>");
  const o = run(input, []);
  const framed = Buffer.concat(o.frames.slice(1).map((f) => f.bytes));
  assert.ok(!input.subarray(0, framed.length).equals(framed));
});
