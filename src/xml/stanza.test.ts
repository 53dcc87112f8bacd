import { test } from "node:test";
import assert from "node:assert/strict";
import { kindOf, Stanza } from "./stanza.js";

test("kindOf reads the kind from the name bytes, at any offset", () => {
  const cases: Array<[string, string]> = [
    ["<message/>", "message"], ["<message to='a'>", "message"], ["<message\n>", "message"],
    ["<presence/>", "presence"], ["<presence\ttype='x'/>", "presence"], ["<iq type='get'>", "iq"], ["<iq/>", "iq"],
    ["<messages/>", "other"], ["<messag/>", "other"], ["<presenc>", "other"], ["<iqq/>", "other"], ["<i/>", "other"],
    ["<stream:features>", "other"], ["<r xmlns='urn:xmpp:sm:3'/>", "other"], ["<mess", "other"],
  ];
  for (const [xml, kind] of cases) {
    assert.equal(kindOf(Buffer.from(xml), 0), kind, xml);
    assert.equal(kindOf(Buffer.from("xx" + xml), 2), kind, `offset 2: ${xml}`);
  }
});

test("Stanza.within reads an element inside a larger chunk exactly as a stanza over its own bytes", () => {
  const elements = [
    `<message to='juliet@example.com/balcony' type='chat' id='a&amp;1' xml:lang='en'><body>hi</body></message>`,
    `<iq type="get" id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
    `<presence from='romeo@example.net'/>`,
    `<message xmlns='jabber:server' type='groupchat'><![CDATA[<x/>]]><x xmlns='urn:x'/></message>`,
  ];
  const chunk = Buffer.from(`<stream:stream>${elements.join("  ")}trailing`);
  let at = chunk.indexOf("<", 1);
  for (const el of elements) {
    const end = at + Buffer.byteLength(el);
    const inChunk = Stanza.within(chunk, at, end, "jabber:client", "romeo@example.net/orchard");
    const alone = new Stanza(Buffer.from(el), "jabber:client", "romeo@example.net/orchard");
    assert.equal(inChunk.bytes.toString(), el);
    assert.equal(inChunk.bytes.buffer, chunk.buffer, "bytes is a view of the chunk, not a copy");
    for (const read of ["name", "kind", "xmlns", "to", "from", "type", "id", "firstChildName", "firstChildXmlns"] as const) {
      assert.equal(inChunk[read], alone[read], `${read} of ${el}`);
    }
    assert.equal(inChunk.head.end, alone.head.end, `head.end counts from the element: ${el}`);
    assert.equal(inChunk.head.selfClosing, alone.head.selfClosing);
    assert.deepEqual([...inChunk.head.attrs], [...alone.head.attrs]);
    assert.deepEqual(inChunk.tree()?.toString(), alone.tree()?.toString());
    at = chunk.indexOf("<", end);
  }
});

test("from: a bound c2s client's JID replaces what it wrote; trace's default only fills a gap", () => {
  const jid = "romeo@example.net/orchard";
  const client = (xml: string) => new Stanza(Buffer.from(xml), "jabber:client", jid);
  assert.equal(client("<message from='juliet@example.com/balcony'/>").from, jid);
  assert.equal(client("<message/>").from, jid);
  // An explicit xmlns equal to the stream's namespace, or a prefix bound to it, is the same stanza.
  assert.equal(client("<message xmlns='jabber:client' from='other@example.com'/>").from, jid);
  assert.equal(client("<c:message xmlns:c='jabber:client' from='other@example.com'/>").from, jid);
  // Another namespace is not a stanza the router stamps.
  assert.equal(client("<message xmlns='jabber:server' from='other@example.com'/>").from, "other@example.com");
  assert.equal(new Stanza(Buffer.from("<message from='a@b'/>"), "jabber:server").from, "a@b");
  assert.equal(Stanza.withDefaultFrom(Buffer.from("<message from='a@b'/>"), "jabber:client", jid).from, "a@b");
  assert.equal(Stanza.withDefaultFrom(Buffer.from("<message/>"), "jabber:client", jid).from, jid);
});
