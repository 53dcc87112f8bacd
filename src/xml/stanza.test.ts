import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "ltx";
import { readHead } from "./head.js";
import { NsScope } from "./namespaces.js";
import { kindOf, Stanza, StreamContext } from "./stanza.js";

const C2S = StreamContext.plain("jabber:client");

/** A tree as [name, attributes (sorted), children], to compare trees whatever the attribute order. */
function canon(el: Element | string): unknown {
  if (typeof el === "string") return el;
  const attrs = Object.fromEntries(Object.entries(el.attrs).sort(([a], [b]) => (a < b ? -1 : 1)));
  return [el.name, attrs, el.children.map((c) => canon(c as Element | string))];
}

/** The context a c2s stream header sets (its declarations, its language). */
function contextOf(header: string, stampsFrom = true): StreamContext {
  const head = readHead(Buffer.from(header), 0, header.length)!;
  return new StreamContext("jabber:client", NsScope.EMPTY.enter(head) as NsScope, head.attr("xml:lang") ?? "en", stampsFrom);
}

test("kindOf reads the kind from the name bytes, at any offset", () => {
  const cases: Array<[string, string]> = [
    ["<message/>", "message"], ["<message to='a'>", "message"], ["<message\n>", "message"],
    ["<presence/>", "presence"], ["<presence\ttype='x'/>", "presence"], ["<iq type='get'>", "iq"], ["<iq/>", "iq"],
    ["<messages/>", "other"], ["<messag/>", "other"], ["<presenc>", "other"], ["<iqq/>", "other"], ["<i/>", "other"],
    ["<stream:features>", "other"], ["<r xmlns='urn:xmpp:sm:3'/>", "other"], ["<mess", "other"],
  ];
  for (const [xml, kind] of cases) {
    assert.equal(kindOf(Buffer.from(xml), 0, xml.length, C2S), kind, xml);
    assert.equal(kindOf(Buffer.from("xx" + xml + "yy"), 2, xml.length + 2, C2S), kind, `offset 2: ${xml}`);
  }
});

test("kindOf resolves prefixed names: the server charges <c:message> like <message>", () => {
  const onHeader = contextOf("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:j='jabber:client'>");
  const cases: Array<[string, StreamContext, string]> = [
    ["<c:message xmlns:c='jabber:client' to='a@b'/>", C2S, "message"],
    ["<c:presence xmlns:c='jabber:client'/>", C2S, "presence"],
    ["<c:iq xmlns:c='jabber:client' type='get' id='1'/>", C2S, "iq"],
    ["<j:message to='a@b'/>", onHeader, "message"],
    ["<c:message xmlns:c='jabber:server'/>", C2S, "other"],
    ["<stream:message/>", C2S, "other"],
    ["<c:message/>", C2S, "other"], // unbound: the server refuses the stream
  ];
  for (const [xml, ctx, kind] of cases) assert.equal(kindOf(Buffer.from(xml), 0, xml.length, ctx), kind, xml);
});

test("names by namespace: prefixes, explicit defaults and header declarations give the same stanza", () => {
  const header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:j='jabber:client' xml:lang='de'>";
  const ctx = contextOf(header);
  const forms = [
    "<message to='a@b' type='chat'><body>hi</body></message>",
    "<message xmlns='jabber:client' to='a@b' type='chat'><body>hi</body></message>",
    "<c:message xmlns:c='jabber:client' to='a@b' type='chat'><c:body>hi</c:body></c:message>",
    "<j:message to='a@b' type='chat'><j:body>hi</j:body></j:message>",
    "<j:message to='a@b' type='chat'><body xmlns='jabber:client'>hi</body></j:message>",
  ];
  for (const xml of forms) {
    const v = new Stanza(Buffer.from(xml), ctx, "me@b/r");
    assert.equal(v.name, "message", xml);
    assert.equal(v.xmlns, "jabber:client", xml);
    assert.equal(v.kind, "message", xml);
    assert.equal(v.to, "a@b", xml);
    assert.equal(v.type, "chat", xml);
    assert.equal(v.from, "me@b/r", xml);
    assert.equal(v.lang, "de", `the stream's language: ${xml}`);
    assert.equal(v.attr("xmlns"), undefined, `the server holds no xmlns on a content stanza: ${xml}`);
    const tree = v.tree()!;
    assert.equal(tree.name, "message", xml);
    assert.equal(tree.getChildText("body", "jabber:client"), "hi", xml);
    assert.deepEqual(canon(tree), ["message", { to: "a@b", type: "chat", xmlns: "jabber:client" }, [["body", {}, ["hi"]]]], xml);
  }
});

test("attributes as the server keys them: prefixed names are not plain attributes; xml:lang defaults", () => {
  const v = new Stanza(Buffer.from("<message xmlns:c='jabber:client' c:to='evil@x' c:type='groupchat' to='a@b'/>"), C2S);
  assert.equal(v.to, "a@b");
  assert.equal(v.type, undefined);
  assert.equal(v.attr("c:to"), undefined);
  assert.equal(v.lang, "en");
  assert.equal(v.attr("xml:lang"), "en");
  assert.equal(new Stanza(Buffer.from("<message xml:lang='fr'/>"), C2S).attr("xml:lang"), "fr");
  assert.deepEqual(v.attrs(), [["to", "a@b"]]);
  const foreign = new Stanza(Buffer.from("<message xmlns='urn:x' to='a@b'/>"), C2S);
  assert.equal(foreign.kind, "other");
  assert.deepEqual(foreign.attrs(), [["xmlns", "urn:x"], ["to", "a@b"]]);
});

test("the first child by namespace, whatever the prefix", () => {
  const forms = [
    "<iq type='set' id='1'><query xmlns='jabber:iq:register'><username>x</username></query></iq>",
    "<iq type='set' id='1'><r:query xmlns:r='jabber:iq:register'><r:username>x</r:username></r:query></iq>",
    "<c:iq xmlns:c='jabber:client' xmlns:r='jabber:iq:register' type='set' id='1'><r:query><r:username>x</r:username></r:query></c:iq>",
  ];
  for (const xml of forms) {
    const v = new Stanza(Buffer.from(xml), C2S);
    assert.equal(v.firstChildName, "query", xml);
    assert.equal(v.firstChildXmlns, "jabber:iq:register", xml);
    assert.equal(v.tree()!.getChild("query", "jabber:iq:register")?.getChildText("username", "jabber:iq:register"), "x", xml);
  }
});

test("namespace errors the server's parser refuses are reported, and such an element has no name", () => {
  const bad = [
    "<c:message to='a@b'/>",
    "<message c:to='a@b'/>",
    "<message xmlns:c=''/>",
    "<message xmlns:xml='urn:x'/>",
    "<message xmlns:x='http://www.w3.org/XML/1998/namespace'/>",
    "<message xmlns:xmlns='urn:x'/>",
    "<xmlns:message/>",
    "<message xmlns:a='urn:x' xmlns:b='urn:x' a:k='1' b:k='2'/>",
  ];
  for (const xml of bad) {
    const v = new Stanza(Buffer.from(xml), C2S, "me@b/r");
    assert.notEqual(v.namespaceProblem, null, xml);
    assert.equal(v.kind, "other", xml);
    assert.equal(v.name, "", xml);
  }
  assert.equal(new Stanza(Buffer.from("<message xmlns:xml='http://www.w3.org/XML/1998/namespace'/>"), C2S).namespaceProblem, null);
  // Deeper namespace errors leave the tree unbuilt (the server refuses the stanza too).
  assert.equal(new Stanza(Buffer.from("<message><x:body>hi</x:body></message>"), C2S).tree(), null);
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

test("from: before binding the router stamps nothing (a c2s stream with no bound JID)", () => {
  const ctx = contextOf("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
  assert.equal(new Stanza(Buffer.from("<iq from='victim@b/x' type='get' id='1'/>"), ctx, undefined).from, undefined);
  assert.equal(new Stanza(Buffer.from("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' from='x'/>"), ctx, undefined).from, "x");
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
