import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, FRAME_CLOSE, FRAME_HEADER, FRAME_STANZA, FRAME_WHITESPACE } from "../xml/framer.js";
import { viewStream } from "../../test/helpers/view-stream.js";
import {
  CLOSE_MESSAGE, InboundFraming, MSG_BAD, MSG_CLOSE, MSG_ELEMENT, MSG_EMPTY, MSG_OPEN, NS_FRAMING, OutboundFraming, outboundMessage,
  type MessageKind,
} from "./ws-framing.js";

const F = NS_FRAMING;
const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'";

function inbound(msg: string): { kind: MessageKind; out: string; code: string } {
  const framing = new InboundFraming(DEFAULT_LIMITS);
  const kind = framing.classify(Buffer.from(msg, "utf8"));
  return { kind, out: framing.bytes.toString("utf8", framing.start, framing.end), code: kind === MSG_BAD ? `${framing.code}: ${framing.detail}` : "" };
}

describe("InboundFraming: the peer's messages", () => {
  it("turns <open/> into a c2s stream header carrying to, from, version and xml:lang", () => {
    assert.deepEqual(inbound(`<open xmlns='${F}' to='example.org' version='1.0' xml:lang='de'/>`), {
      kind: MSG_OPEN, out: `${HEADER} to='example.org' version='1.0' xml:lang='de'>`, code: "",
    });
    // Any prefix, double quotes, an end tag instead of />, whitespace around it, an XML declaration first.
    for (const open of [
      `<f:open xmlns:f="${F}" to="example.org" version="1.0"/>`,
      `<open xmlns='${F}' to='example.org' version='1.0'></open>`,
      `\n  <open xmlns='${F}' to='example.org' version='1.0'/>\r\n`,
      `<?xml version='1.0'?>\n<open xmlns='${F}' to='example.org' version='1.0'/>`,
    ]) assert.deepEqual(inbound(open), { kind: MSG_OPEN, out: `${HEADER} to='example.org' version='1.0'>`, code: "" }, open);
  });

  it("builds the header from decoded values, escaped again, and nothing else of the open", () => {
    const r = inbound(`<open xmlns='${F}' xmlns:c='jabber:client' to='a&amp;b&#39;c' from='u@x' id='chosen' version='1.0' c:to='evil' foo='bar'/>`);
    // The prefix declared on <open/> does not carry over: each message is a document of its own.
    assert.deepEqual(r, { kind: MSG_OPEN, out: `${HEADER} to='a&amp;b&apos;c' from='u@x' version='1.0'>`, code: "" });
  });

  it("turns <close/> into the stream's end tag", () => {
    assert.deepEqual(inbound(`<close xmlns='${F}'/>`), { kind: MSG_CLOSE, out: "</stream:stream>", code: "" });
    assert.deepEqual(inbound(`<x:close xmlns:x='${F}'></x:close>`), { kind: MSG_CLOSE, out: "</stream:stream>", code: "" });
  });

  it("passes every other element through byte for byte (open and close in other namespaces too)", () => {
    for (const el of [
      "<message to='a@b'><body>open close</body></message>",
      `<message xmlns='jabber:client'><body xmlns='${F}'/></message>`,
      "<open xmlns='jabber:client'/>",
      "<open/>",
      "<c:close xmlns:c='jabber:client'/>",
      "<presence/>",
      "garbage, which the session's framer refuses as on TCP",
    ]) assert.deepEqual(inbound(el), { kind: MSG_ELEMENT, out: el, code: "" }, el);
    assert.deepEqual(inbound(" \t<presence/>\n"), { kind: MSG_ELEMENT, out: "<presence/>", code: "" });
  });

  it("ignores a message of nothing but whitespace", () => {
    assert.equal(inbound("").kind, MSG_EMPTY);
    assert.equal(inbound(" \r\n\t").kind, MSG_EMPTY);
  });

  it("refuses an open or close that is not one well-formed element alone", () => {
    const cases: Array<[string, RegExp]> = [
      [`<open xmlns='${F}' to='x'/><message/>`, /XPX_ERR_WS_FRAMING/],
      [`<open xmlns='${F}' to='x'><message/></open>`, /XPX_ERR_WS_FRAMING/],
      [`<open xmlns='${F}' to='x' to='y'/>`, /XPX_ERR_XML_DUPLICATE_ATTRIBUTE|XPX_ERR_XML/],
      [`<open xmlns='${F}' to='a<b'/>`, /XPX_ERR_XML_NOT_WELL_FORMED/],
      [`<open xmlns='${F}' to='&#99999999;'/>`, /XPX_ERR_XML/],
      [`<open xmlns='${F}' to='&nbsp;'/>`, /XPX_ERR_XML_RESTRICTED/],
      [`<x:open xmlns='${F}'/>`, /XPX_ERR_XML_NAMESPACE|XPX_ERR_XML/],
      [`<?xml version='1.0' encoding='latin1'?><open xmlns='${F}'/>`, /XPX_ERR_XML_RESTRICTED/],
      [`<?php echo 1 ?><open xmlns='${F}'/>`, /XPX_ERR_XML_RESTRICTED/],
      [`<?xml version='1.0'?>`, /XPX_ERR_WS_FRAMING/],
      [`<close xmlns='${F}'>bye</close>`, /XPX_ERR_WS_FRAMING/],
    ];
    for (const [msg, code] of cases) {
      const r = inbound(msg);
      assert.equal(r.kind, MSG_BAD, msg);
      assert.match(r.code, code, msg);
    }
  });

  it("what comes out reads, to the proxy, like the same stream written over TCP", () => {
    const messages = [
      `<open xmlns='${F}' to='example.org' version='1.0' xml:lang='fr'/>`,
      "<message xmlns='jabber:client' to='a@example.org' from='forged@example.org' type='chat'><body>1</body></message>",
      "<c:message xmlns:c='jabber:client' to='b@example.org'><c:body>2</c:body></c:message>",
      "<presence/>",
      `<close xmlns='${F}'/>`,
    ];
    const framing = new InboundFraming(DEFAULT_LIMITS);
    const bytes = messages.map((m) => {
      framing.classify(Buffer.from(m));
      return framing.bytes.subarray(framing.start, framing.end);
    });
    const tcp = [`${HEADER} to='example.org' version='1.0' xml:lang='fr'>`, ...messages.slice(1, -1), "</stream:stream>"].map((s) => Buffer.from(s));
    assert.deepEqual(Buffer.concat(bytes), Buffer.concat(tcp));
    const view = viewStream(Buffer.concat(bytes), "c2s");
    assert.equal(view.error, undefined);
    assert.deepEqual(view.stanzas.map((s) => [s.name, s.ns, s.to, s.lang]), [
      ["message", "jabber:client", "a@example.org", "fr"],
      ["message", "jabber:client", "b@example.org", "fr"],
      ["presence", "jabber:client", undefined, "fr"],
    ]);
  });
});

describe("OutboundFraming: frames for the peer", () => {
  const server = Buffer.from("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xml:lang='en' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.org' version='1.0'>");

  it("turns the server's stream header into <open/> and its end tag into <close/>; drops whitespace", () => {
    const out = new OutboundFraming();
    assert.equal(outboundMessage(out, FRAME_HEADER, server, 0, server.length), `<open xmlns='${F}' from='example.org' id='s1' version='1.0' xml:lang='en'/>`);
    const close = Buffer.from("</stream:stream>");
    assert.equal(outboundMessage(out, FRAME_CLOSE, close, 0, close.length), CLOSE_MESSAGE);
    const ws = Buffer.from(" \n");
    assert.equal(outboundMessage(out, FRAME_WHITESPACE, ws, 0, ws.length), null);
  });

  it("gives each element the declarations it inherited from the header, and only those it lacks", () => {
    const out = new OutboundFraming();
    out.open(server, 0, server.length);
    const el = (s: string): string => {
      const b = Buffer.from(`xx${s}yy`); // within a larger read
      return out.element(b, 2, 2 + Buffer.byteLength(s)).toString();
    };
    assert.equal(el("<message to='a@b'><body>hi</body></message>"), "<message xmlns='jabber:client' to='a@b'><body>hi</body></message>");
    assert.equal(el("<presence/>"), "<presence xmlns='jabber:client'/>");
    assert.equal(el("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"),
      "<stream:features xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>");
    assert.equal(el("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"), "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert.equal(el("<stream:error xmlns:stream='http://etherx.jabber.org/streams'><x xmlns='y'/></stream:error>"),
      "<stream:error xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><x xmlns='y'/></stream:error>");
    assert.equal(el("<message\tto=\"a@b\" xmlns = 'jabber:client'/>"), "<message\tto=\"a@b\" xmlns = 'jabber:client'/>");
  });

  it("finds a prefix in any element of a read, with one search per read", () => {
    const out = new OutboundFraming();
    out.open(server, 0, server.length);
    const parts = ["<message><body>a</body></message>", "<presence/>", "<message><stream:x/></message>", "<iq/>"];
    const read = Buffer.from(parts.join(""));
    let at = 0;
    const got = parts.map((p) => {
      const r = out.element(read, at, at + p.length).toString();
      at += p.length;
      return r.includes("xmlns:stream=") ? "stream" : "-";
    });
    assert.deepEqual(got, ["-", "-", "stream", "-"]);
    // Asked about elements out of order (a new read), it searches again.
    assert.ok(out.element(read, 0, parts[0]!.length).toString().startsWith("<message xmlns='jabber:client'>"));
  });

  it("adds nothing before any header, and each element's bytes are the frame's bytes", () => {
    const out = new OutboundFraming();
    const b = Buffer.from("<message/>");
    assert.equal(out.element(b, 0, b.length).buffer, b.buffer);
    assert.equal(outboundMessage(out, FRAME_STANZA, b, 0, b.length)!.toString(), "<message/>");
  });
});
