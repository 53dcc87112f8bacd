// The form rewriter: exact output for typical stanzas, and for every form the
// same element once namespaces are resolved (what a server like Prosody
// sees). test/integration/stanza-forms.test.ts sends the forms through a real
// Prosody.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse, type Element } from "ltx";
import { FORMS, NS_CLIENT, NS_SERVER, PREFIX, prefixPayload, streamHeader, writeAs, type Form } from "./stanza-forms.js";

interface Resolved {
  ns: string | undefined;
  local: string;
  attrs: Record<string, string>;
  children: Array<Resolved | string>;
}

/** The element as a namespace-aware parser reports it: (namespace, local name), plain attributes, children. */
function resolve(el: Element, dflt: string | undefined, prefixes: ReadonlyMap<string, string>): Resolved {
  const scope = new Map(prefixes);
  let own = dflt;
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(el.attrs as Record<string, string>)) {
    if (k === "xmlns") own = v;
    else if (k.startsWith("xmlns:")) scope.set(k.slice(6), v);
    else attrs[k] = v;
  }
  const colon = el.name.indexOf(":");
  if (colon >= 0) assert.ok(scope.has(el.name.slice(0, colon)), `unbound prefix in <${el.name}>`);
  const ns = colon >= 0 ? scope.get(el.name.slice(0, colon)) : own;
  return {
    ns,
    local: colon >= 0 ? el.name.slice(colon + 1) : el.name,
    attrs,
    children: el.children.map((c) => (typeof c === "string" ? c : resolve(c, own, scope))),
  };
}

/** Resolve `xml` as a stanza on a stream whose header binds what `form` needs. */
function asServerSees(xml: string, form: Form, ns = NS_CLIENT): Resolved {
  const header = new Map<string, string>();
  if (form === "prefixed-on-header") header.set(PREFIX, ns);
  return resolve(parse(xml), ns, header);
}

const STANZAS = [
  "<message to='bob@localhost' type='chat' id='m1'><body>hi &amp; bye</body><thread>t1</thread></message>",
  "<message to='room@conference.localhost' type='groupchat' id='g1'><body>flood</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
  "<presence to='room@conference.localhost/nick'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
  "<presence/>",
  "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>admin</username><password>pw</password></query></iq>",
  "<iq type='get' to='localhost' id='d1'><query xmlns=\"http://jabber.org/protocol/disco#info\"/></iq>",
  // A jabber:client element nested inside another namespace (a forwarded copy).
  "<message to='a@localhost' id='f1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='x@y' to='z@y'><body>inner</body></message></forwarded></message>",
];

describe("stanza forms", () => {
  it("prefixed: the stanza and its content-namespace children get c:, declared on the stanza", () => {
    assert.equal(
      writeAs("prefixed", STANZAS[0]!),
      "<c:message to='bob@localhost' type='chat' id='m1' xmlns:c='jabber:client'><c:body>hi &amp; bye</c:body><c:thread>t1</c:thread></c:message>",
    );
    // Foreign namespaces are left alone, children included.
    assert.equal(
      writeAs("prefixed", STANZAS[4]!),
      "<c:iq type='set' id='reg1' xmlns:c='jabber:client'><query xmlns='jabber:iq:register'><username>admin</username><password>pw</password></query></c:iq>",
    );
    assert.equal(writeAs("prefixed", "<presence/>"), "<c:presence xmlns:c='jabber:client'/>");
  });

  it("prefixed-on-header: the same names, no declaration on the stanza; the header declares c", () => {
    assert.equal(writeAs("prefixed-on-header", STANZAS[0]!), "<c:message to='bob@localhost' type='chat' id='m1'><c:body>hi &amp; bye</c:body><c:thread>t1</c:thread></c:message>");
    assert.equal(
      streamHeader("prefixed-on-header", { to: "localhost" }),
      "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:c='jabber:client' to='localhost' version='1.0'>",
    );
    assert.equal(
      streamHeader("plain", { to: "localhost" }),
      "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    );
  });

  it("explicit-ns: xmlns on the stanza; `from` forges a sender in any form", () => {
    assert.equal(writeAs("explicit-ns", STANZAS[0]!), "<message to='bob@localhost' type='chat' id='m1' xmlns='jabber:client'><body>hi &amp; bye</body><thread>t1</thread></message>");
    assert.equal(
      writeAs("explicit-ns", "<message to='b@localhost' from='me@localhost'><body>x</body></message>", { from: "victim@localhost/r" }),
      "<message to='b@localhost' from='victim@localhost/r' xmlns='jabber:client'><body>x</body></message>",
    );
    assert.equal(writeAs("prefixed", "<message to='b@localhost'/>", { from: "o'brien@localhost" }), "<c:message to='b@localhost' from='o&apos;brien@localhost' xmlns:c='jabber:client'/>");
    assert.equal(writeAs("plain", "<message to='b@localhost'/>", { from: "v@localhost" }), "<message to='b@localhost' from='v@localhost'/>");
  });

  it("s2s: the content namespace is jabber:server", () => {
    const s = "<message from='a@other.test' to='b@localhost' id='s1'><body>x</body></message>";
    assert.equal(writeAs("prefixed", s, { ns: NS_SERVER }), "<c:message from='a@other.test' to='b@localhost' id='s1' xmlns:c='jabber:server'><c:body>x</c:body></c:message>");
    assert.equal(writeAs("explicit-ns", s, { ns: NS_SERVER }), "<message from='a@other.test' to='b@localhost' id='s1' xmlns='jabber:server'><body>x</body></message>");
    assert.match(streamHeader("prefixed-on-header", { ns: NS_SERVER, from: "other.test", to: "localhost", extra: "xmlns:db='jabber:server:dialback'" }), /xmlns:c='jabber:server' from='other\.test' to='localhost'/);
  });

  for (const form of FORMS) {
    it(`${form}: every test stanza is well-formed and resolves to the same element as written`, () => {
      for (const s of STANZAS) {
        const out = writeAs(form, s);
        assert.deepEqual(asServerSees(out, form), asServerSees(s, "plain"), out);
        // And a forged from changes exactly that one attribute.
        const forged = asServerSees(writeAs(form, s, { from: "victim@localhost/x" }), form);
        const plain = asServerSees(s, "plain");
        assert.deepEqual({ ...forged, attrs: { ...forged.attrs, from: undefined } }, { ...plain, attrs: { ...plain.attrs, from: undefined } });
        assert.equal(forged.attrs.from, "victim@localhost/x");
      }
    });
  }

  it("the prefixed forms really use the prefix (a raw-name reader sees another name)", () => {
    for (const form of ["prefixed", "prefixed-on-header"] as const) {
      for (const s of STANZAS) assert.match(writeAs(form, s), /^<c:(message|presence|iq)[ />]/);
    }
  });

  it("prefixPayload: a payload namespace written with a prefix is the same element", () => {
    const bind = "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>";
    const prefixedBind = prefixPayload(bind, "urn:ietf:params:xml:ns:xmpp-bind", "b");
    assert.equal(prefixedBind, "<iq type='set' id='b1'><b:bind xmlns:b='urn:ietf:params:xml:ns:xmpp-bind'><b:resource>r</b:resource></b:bind></iq>");
    assert.deepEqual(asServerSees(prefixedBind, "plain"), asServerSees(bind, "plain"));
    const reg = STANZAS[4]!;
    const prefixedReg = prefixPayload(reg, "jabber:iq:register", "r");
    assert.equal(prefixedReg, "<iq type='set' id='reg1'><r:query xmlns:r='jabber:iq:register'><r:username>admin</r:username><r:password>pw</r:password></r:query></iq>");
    assert.deepEqual(asServerSees(prefixedReg, "plain"), asServerSees(reg, "plain"));
    // Combined with a stanza form, and with foreign children left alone.
    for (const form of FORMS) {
      const both = writeAs(form, prefixedReg);
      assert.deepEqual(asServerSees(both, form), asServerSees(reg, "plain"), both);
    }
    const mixed = "<message><x xmlns='urn:a'><y/><z xmlns='urn:b'><w/></z></x></message>";
    assert.equal(prefixPayload(mixed, "urn:a", "a"), "<message><a:x xmlns:a='urn:a'><a:y/><z xmlns='urn:b'><w/></z></a:x></message>");
    assert.deepEqual(asServerSees(prefixPayload(mixed, "urn:a", "a"), "plain"), asServerSees(mixed, "plain"));
    assert.throws(() => prefixPayload("<message xmlns:a='urn:other'><x xmlns='urn:a'/></message>", "urn:a", "a"), /already binds/);
  });

  it("refuses input it cannot rewrite faithfully", () => {
    assert.throws(() => writeAs("prefixed", "<message><!-- x --></message>"), /comments/);
    assert.throws(() => writeAs("prefixed", "<message><body>x</message>"), /not closed|unexpected/);
    assert.throws(() => writeAs("prefixed", "<message xmlns:c='urn:other'/>"), /already binds/);
    assert.throws(() => writeAs("prefixed", "<x:message/>"), /unbound prefix/);
    assert.throws(() => writeAs("explicit-ns", "<message xmlns='urn:other'/>"), /not jabber:client/);
    assert.throws(() => writeAs("plain", "<a/><b/>"), /more than one/);
  });
});
