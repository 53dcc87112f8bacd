import { test } from "node:test";
import assert from "node:assert/strict";
import { ParsedHead, readHead } from "./head.js";
import { decodeValue, unescapeXml } from "./values.js";

/** What decodeValue must return: the value as a conforming parser reports it. */
function reference(raw: string): string {
  return unescapeXml(raw.replace(/\r\n|[\t\n\r]/g, " "));
}

function decoded(raw: string): string {
  const b = Buffer.from(`x${raw}y`);
  return decodeValue(b, 1, b.length - 1);
}

test("decodeValue: plain ASCII, non-ASCII, references and line breaks", () => {
  for (const raw of ["alice@example.org/phone", "chat", "en", "", "café", "ünïcödé@例え.jp", "a&amp;b", "&lt;x&gt;", "&#x41;&#66;", "a\tb", "a\r\nb", "a\nb\rc", "&#10;kept", "unknown &foo; stays"]) {
    assert.equal(decoded(raw), reference(raw), JSON.stringify(raw));
  }
});

test("decodeValue: a repeated address comes back as the same string, a different one never does", () => {
  const a = decoded("romeo@montague.lit/orchard");
  assert.equal(decoded("romeo@montague.lit/orchard"), a);
  assert.equal(decoded("romeo@montague.lit/orchare"), "romeo@montague.lit/orchare");
  assert.equal(decoded("romeo@montague.lit/orchard"), "romeo@montague.lit/orchard");
});

test("decodeValue: values that share a slot of the recent table still decode to themselves", () => {
  // Many short values land in every one of the 256 slots several times over;
  // reading them back in another order must give each its own text.
  const values = Array.from({ length: 2000 }, (_, i) => `u${i.toString(36)}@h${(i * 7919) % 97}.example`);
  for (const v of values) assert.equal(decoded(v), v);
  for (let i = values.length - 1; i >= 0; i -= 3) assert.equal(decoded(values[i]!), values[i]);
  // Same length as a common value and one byte off it: not taken for it.
  assert.equal(decoded("chbt"), "chbt");
  assert.equal(decoded("chat"), "chat");
});

test("decodeValue: random byte strings agree with the reference decoder", () => {
  let seed = 7;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const alphabet = ["a", "b", "@", "/", ".", "&amp;", "&#x263A;", "\t", "\n", "\r\n", "é", "€", "😀", "chat", "en"];
  for (let k = 0; k < 3000; k++) {
    let raw = "";
    for (let n = rnd(12); n > 0; n--) raw += alphabet[rnd(alphabet.length)];
    assert.equal(decoded(raw), reference(raw), JSON.stringify(raw));
  }
});

test("ParsedHead: common names come from the shared word table, others are read as written", () => {
  const b = Buffer.from(`<message to='a@b' from='c@d' id='1' type='chat' xml:lang='en' tx='x' fron='y' xmlns:q='urn:q'>`);
  const head = readHead(b, 0, b.length, 0, new ParsedHead())!;
  assert.equal(head.name, "message");
  assert.deepEqual(head.attrNames, ["to", "from", "id", "type", "xml:lang", "tx", "fron", "xmlns:q"]);
  assert.equal(head.attr("type"), "chat");
  assert.equal(head.attr("fron"), "y");
  assert.equal(head.nsPlain, false);
  const plain = Buffer.from(`<presence type='unavailable' xml:lang='en'/>`);
  const h2 = readHead(plain, 0, plain.length)!;
  assert.equal(h2.name, "presence");
  assert.equal(h2.nsPlain, true);
  assert.equal(h2.selfClosing, true);
});
