// The WebAssembly framer offers each stanza's start tag as offsets (FRAME_HEAD
// in head.ts); a head read of that frame takes them instead of scanning the
// tag. The offer must never change what is read: every stanza here is read
// twice, once with the offer and once from a copy of its bytes (no offer),
// and the two heads must agree in every field, whatever the chunking. Reads
// that cannot use an offer (after the callback, after the module's memory
// grew, for a frame carried across chunks) must read the bytes instead.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { FRAME_STANZA, type FrameSink } from "./framer.js";
import { WasmFramer } from "./framer-wasm.js";
import { A_FROM, A_ID, A_TO, A_TYPE, A_XML_LANG, FRAME_HEAD, ParsedHead, readHead, type Head } from "./head.js";

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/** Everything a head says, as one comparable value. */
function describe(head: Head): unknown {
  return {
    name: head.name,
    names: [...head.attrNames],
    values: head.attrNames.map((_, k) => head.attrAt(k)),
    end: head.end,
    selfClosing: head.selfClosing,
    duplicate: head.duplicate,
    nsPlain: head.nsPlain,
  };
}

function copyRead(data: Buffer, start: number, end: number): unknown {
  const copy = Buffer.from(data.subarray(start, end));
  return describe(readHead(copy, 0, copy.length)!);
}

const NAMES = ["message", "presence", "iq", "x:message", "xml:lang", "body", "a", "verylongelementname", "message2", "iqq"];
const ATTRS = ["to", "from", "id", "type", "xml:lang", "xmlns", "xmlns:x", "x:to", "fron", "tx", "toolongattributename", "xml:space"];
const VALUES = ["a@b/c", "chat", "en", "", "&amp;x&lt;", "caf\u00e9", "l1\nl2\r\n\tl3", "\u{1F600}", "urn:x", "m1"];

const tagArb = fc.record({
  name: fc.constantFrom(...NAMES),
  attrs: fc.array(fc.record({ name: fc.constantFrom(...ATTRS), value: fc.constantFrom(...VALUES), quote: fc.constantFrom("'", '"'), eq: fc.constantFrom("=", " = ", "\n=\t") }), { maxLength: 6 }),
  space: fc.constantFrom(" ", "\n", "\t ", "  "),
  close: fc.constantFrom("/>", " />", ">x</NAME>", "><c a='1'/></NAME>", " >t</NAME >"),
});

function tagText(t: { name: string; attrs: Array<{ name: string; value: string; quote: string; eq: string }>; space: string; close: string }): string {
  // The framer refuses a repeated attribute only when the server would; the
  // head reader reports it (duplicate). Declarations keep the stanza well-formed
  // for the framer, which does not resolve prefixes.
  let s = `<${t.name}`;
  for (const a of t.attrs) s += `${t.space}${a.name}${a.eq}${a.quote}${a.value}${a.quote}`;
  return s + t.close.replace("NAME", t.name);
}

function feed(text: string, cuts: number[], onStanza: (data: Buffer, start: number, end: number) => void): void {
  const bytes = Buffer.from(HEADER + text);
  const sink: FrameSink = {
    onFrame(kind, data, start, end) {
      if (kind === FRAME_STANZA) onStanza(data, start, end);
    },
    onError(error) {
      throw error;
    },
  };
  const framer = new WasmFramer(sink);
  let at = 0;
  for (const cut of [...cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b), bytes.length]) {
    if (cut > at) framer.write(bytes.subarray(at, cut));
    at = Math.max(at, cut);
  }
  framer.stop();
}

test("offered heads: the same head as reading the bytes, for any start tag and any chunking", () => {
  let offered = 0;
  let frames = 0;
  fc.assert(
    fc.property(fc.array(tagArb, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (tags, cuts) => {
      const head = new ParsedHead();
      feed(tags.map(tagText).join(""), cuts, (data, start, end) => {
        frames++;
        if (FRAME_HEAD.data === data && FRAME_HEAD.start === start) offered++;
        assert.deepEqual(describe(readHead(data, start, end, start, head)!), copyRead(data, start, end));
      });
    }),
    { numRuns: 600, seed: 22 },
  );
  // Most frames lie inside one chunk: nearly all were offered.
  assert.ok(offered > frames / 2, `${offered} of ${frames} frames offered`);
});

test("offered heads: a frame inside one chunk is offered; one carried across chunks is read from its bytes", () => {
  const seen: Array<{ offered: boolean; head: unknown; copy: unknown }> = [];
  const tag = "<message to='a@b' type='chat'><body>x</body></message>";
  const text = tag + tag;
  feed(text, [HEADER.length + tag.length + 5], (data, start, end) => {
    seen.push({ offered: FRAME_HEAD.data === data && FRAME_HEAD.start === start, head: describe(readHead(data, start, end, start)!), copy: copyRead(data, start, end) });
  });
  assert.deepEqual(seen.map((s) => s.offered), [true, false]);
  for (const s of seen) assert.deepEqual(s.head, s.copy);
});

test("offered heads: withdrawn after the callback, so a later read of the same bytes scans them", () => {
  const kept: Array<{ data: Buffer; start: number; end: number }> = [];
  feed("<iq type='get' id='1'/><message to='x@y' id='2'/>", [], (data, start, end) => {
    kept.push({ data, start, end });
  });
  assert.equal(FRAME_HEAD.data, null);
  for (const k of kept) assert.deepEqual(describe(readHead(k.data, k.start, k.end, k.start)!), copyRead(k.data, k.start, k.end));
});

test("offered heads: the module's memory growing inside a callback voids the offer", () => {
  let checked = 0;
  const inner = new WasmFramer({ onFrame() {}, onError() {} });
  inner.write(Buffer.from(HEADER));
  feed("<message to='a@b' id='1' type='chat'/>", [], (data, start, end) => {
    // A big write to another framer grows the shared memory: the offered words are detached.
    inner.write(Buffer.from(`<message><body>${"y".repeat(4 << 20)}</body></message>`));
    assert.deepEqual(describe(readHead(data, start, end, start)!), copyRead(data, start, end));
    checked++;
  });
  inner.stop();
  assert.equal(checked, 1);
});

test("offered heads: values that share the framer's hash (same length, same first and last eight bytes) still read as themselves", () => {
  const middles = ["A", "B", "C", "A", "C", "B", "B", "A"];
  const text = middles.map((m, i) => `<message to='user0000@${m}.example/phone123' id='x${i}' type='chat'/>`).join("");
  const seen: string[] = [];
  for (let round = 0; round < 3; round++) {
    feed(text, [], (data, start, end) => {
      assert.equal(FRAME_HEAD.data, data);
      seen.push(readHead(data, start, end, start)!.attr("to")!);
    });
  }
  assert.deepEqual(seen, [...middles, ...middles, ...middles].map((m) => `user0000@${m}.example/phone123`));
});

test("offered heads: values decoded after their offer is gone (callback returned, memory grown) are read from the bytes", () => {
  const text = "<message to='alice@example.org/phone' from='bob@example.org/desk' type='chat' id='a1'/>";
  // Twice, so the second time the first pass's values are the recent ones.
  for (let round = 0; round < 2; round++) {
    const kept: ParsedHead[] = [];
    feed(text + text, [], (data, start, end) => {
      const head = new ParsedHead();
      assert.ok(head.read(data, start, end, start));
      if (kept.length === 1) {
        // The module's memory grows under the second head before any value is read.
        const inner = new WasmFramer({ onFrame() {}, onError() {} });
        inner.write(Buffer.from(HEADER));
        inner.write(Buffer.from(`<message><body>${"y".repeat(4 << 20)}</body></message>`));
        inner.stop();
        assert.equal(head.attr("from"), "bob@example.org/desk");
      }
      kept.push(head);
    });
    // The first head's values are read after its callback returned.
    assert.deepEqual([kept[0]!.attr("to"), kept[0]!.attr("from"), kept[0]!.attr("type"), kept[0]!.attr("id")], ["alice@example.org/phone", "bob@example.org/desk", "chat", "a1"]);
    assert.equal(kept[1]!.attr("to"), "alice@example.org/phone");
  }
});

test("offered heads: a value kept among the recent ones is its text; one with references or line breaks never is", () => {
  const values = ["a&amp;b@example.org", "a&amp;b@example.org", "l1\tl2", "l1\tl2", "caf\u00e9@example.org", "caf\u00e9@example.org", "a&b@example.org".replace("&", "&#38;")];
  const text = values.map((v, i) => `<message to='${v}' id='v${i}'/>`).join("");
  const seen: string[] = [];
  for (let round = 0; round < 2; round++) {
    feed(text, [], (data, start, end) => {
      seen.push(readHead(data, start, end, start)!.attr("to")!);
    });
  }
  const expected = ["a&b@example.org", "a&b@example.org", "l1 l2", "l1 l2", "caf\u00e9@example.org", "caf\u00e9@example.org", "a&b@example.org"];
  assert.deepEqual(seen, [...expected, ...expected]);
});

// An offered head is read lazily: its attributes stay in the offer, a name
// the view asks for by number (attrOf: to, from, type, id, xml:lang) is
// found by the position the framer recorded, any other by the offer's name
// indexes, and the names are copied out only when asked for. Every answer
// must be what the bytes say, in the callback and after it.

const POSITIONED = [A_TO, A_FROM, A_TYPE, A_ID, A_XML_LANG];

/** What a head answers when asked by name and by number (asked before anything copies the names out). */
function asks(head: ParsedHead): unknown {
  return { of: POSITIONED.map((w) => head.attrOf(w)), by: [...ATTRS, "nope", "x:to"].map((n) => head.attr(n)) };
}

function copyAsks(data: Buffer, start: number, end: number): unknown {
  const copy = Buffer.from(data.subarray(start, end));
  const head = new ParsedHead();
  assert.ok(head.read(copy, 0, copy.length, 0));
  return asks(head);
}

test("lazy offered heads: attrOf and attr answer as the bytes do, in the callback and after it, in any chunking", () => {
  let lazy = 0;
  fc.assert(
    fc.property(fc.array(tagArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), (tags, cuts, numberFirst) => {
      const later: Array<{ head: ParsedHead; expect: unknown; names: unknown }> = [];
      feed(tags.map(tagText).join(""), cuts, (data, start, end) => {
        const expect = copyAsks(data, start, end);
        if (FRAME_HEAD.data === data && FRAME_HEAD.start === start) lazy++;
        const head = new ParsedHead();
        assert.ok(head.read(data, start, end, start));
        // Asked by number first, or by name first: each may be the one that decodes a value.
        if (numberFirst) for (const w of POSITIONED) head.attrOf(w);
        assert.deepEqual(asks(head), expect);
        assert.deepEqual(describe(head), copyRead(data, start, end));
        // A second head of the same frame, left unasked until its callback has returned.
        const kept = new ParsedHead();
        assert.ok(kept.read(data, start, end, start));
        later.push({ head: kept, expect, names: copyRead(data, start, end) });
      });
      for (const k of later) {
        assert.deepEqual(asks(k.head), k.expect);
        assert.deepEqual(describe(k.head), k.names);
      }
    }),
    { numRuns: 400, seed: 23 },
  );
  assert.ok(lazy > 100, `${lazy} heads read lazily`);
});

test("lazy offered heads: a name at the fifteenth place or later is still found, by name and by number", () => {
  const fillers = Array.from({ length: 16 }, (_, i) => ` a${i}='${i}'`).join("");
  const text = `<message${fillers} type='chat' to='a@b/c'/><message id='x'${fillers} xml:lang='de' from='f@g'/>`;
  const seen: unknown[] = [];
  feed(text, [], (data, start, end) => {
    assert.equal(FRAME_HEAD.data, data);
    const head = new ParsedHead();
    assert.ok(head.read(data, start, end, start));
    seen.push(POSITIONED.map((w) => head.attrOf(w)));
    assert.deepEqual(asks(head), copyAsks(data, start, end));
  });
  assert.deepEqual(seen, [
    ["a@b/c", undefined, "chat", undefined, undefined],
    [undefined, "f@g", undefined, "x", "de"],
  ]);
});

test("lazy offered heads: a repeated name is read from the bytes, first value kept, the repeat reported", () => {
  feed("<message to='a@b' type='chat' to='c@d'/><message type='chat' from='x@y' type='error'/>", [], (data, start, end) => {
    const head = new ParsedHead();
    assert.ok(head.read(data, start, end, start));
    assert.deepEqual(asks(head), copyAsks(data, start, end));
    assert.notEqual(head.duplicate, null);
  });
});

test("lazy offered heads: attrOf after the module's memory grew reads the bytes", () => {
  const text = "<message to='alice@example.org/phone' from='bob@example.org/desk' type='chat' id='a1' xml:lang='en'/>";
  for (let round = 0; round < 2; round++) {
    feed(text, [], (data, start, end) => {
      const head = new ParsedHead();
      assert.ok(head.read(data, start, end, start));
      assert.equal(head.attrOf(A_TYPE), "chat");
      const inner = new WasmFramer({ onFrame() {}, onError() {} });
      inner.write(Buffer.from(HEADER));
      inner.write(Buffer.from(`<message><body>${"y".repeat(4 << 20)}</body></message>`));
      inner.stop();
      assert.deepEqual(POSITIONED.map((w) => head.attrOf(w)), ["alice@example.org/phone", "bob@example.org/desk", "chat", "a1", "en"]);
      assert.deepEqual(head.attrNames, ["to", "from", "type", "id", "xml:lang"]);
    });
  }
});

test("lazy offered heads: values one byte apart, or sharing the framer's hash, read as themselves by number", () => {
  // Same length; the last byte differs (another hash, maybe the same slot), or only a middle byte (the same hash).
  const tos = ["user0000@A.example/phone123", "user0000@A.example/phone124", "user0000@B.example/phone123", "user0000@A.example/phone123", "user0000@B.example/phone123", "user0000@A.example/phone124"];
  const text = tos.map((to, i) => `<message to='${to}' from='${to}' id='x${i}' type='chat'/>`).join("");
  const seen: string[] = [];
  for (let round = 0; round < 3; round++) {
    feed(text, [], (data, start, end) => {
      assert.equal(FRAME_HEAD.data, data);
      const head = new ParsedHead();
      assert.ok(head.read(data, start, end, start));
      const to = head.attrOf(A_TO)!;
      assert.equal(head.attrOf(A_FROM), to);
      assert.equal(head.attr("to"), to);
      seen.push(to);
    });
  }
  assert.deepEqual(seen, [...tos, ...tos, ...tos]);
});

test("lazy offered heads: an uncommon name asked of a lazy head is found among the tag's own", () => {
  feed("<message to='a@b' fron='y' tx='z' type='chat'/>", [], (data, start, end) => {
    const head = new ParsedHead();
    assert.ok(head.read(data, start, end, start));
    assert.equal(head.attr("from"), undefined);
    assert.equal(head.attr("fron"), "y");
    assert.equal(head.attrOf(A_TYPE), "chat");
    assert.equal(head.attrOf(A_FROM), undefined);
    assert.deepEqual(head.attrNames, ["to", "fron", "tx", "type"]);
  });
});
