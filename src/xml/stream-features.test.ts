import { test } from "node:test";
import assert from "node:assert/strict";
import { Stanza, StreamContext } from "./stanza.js";
import { offersSaslExternal, serverFeatures, stripSaslExternal, withStartTls } from "./stream-features.js";

const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

test("stripSaslExternal removes EXTERNAL, and <mechanisms/> when nothing is left", () => {
  assert.equal(
    stripSaslExternal(`<stream:features><mechanisms xmlns='${SASL}'><mechanism>EXTERNAL</mechanism><mechanism>PLAIN</mechanism></mechanisms><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`),
    `<stream:features><mechanisms xmlns='${SASL}'><mechanism>PLAIN</mechanism></mechanisms><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`,
  );
  assert.equal(
    stripSaslExternal(`<stream:features><mechanisms xmlns='${SASL}'>\n <mechanism>EXTERNAL</mechanism>\n</mechanisms><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`),
    `<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`,
  );
  assert.equal(stripSaslExternal(`<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`), null);
  // The word elsewhere (say in a text) is not a mechanism.
  assert.equal(stripSaslExternal(`<stream:features><x>EXTERNAL</x></stream:features>`), null);
});

test("withStartTls: the offer is the first child, of an empty or prefixed features element too", () => {
  assert.equal(withStartTls("<stream:features><a/></stream:features>"), "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><a/></stream:features>");
  assert.equal(withStartTls("<s:features xmlns:s='http://etherx.jabber.org/streams'/>"), "<s:features xmlns:s='http://etherx.jabber.org/streams'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></s:features>");
});

function features(xml: string): { view: Stanza; text: () => string } {
  const b = Buffer.from(xml);
  return { view: Stanza.within(b, 0, b.length, StreamContext.plain("jabber:server")), text: () => xml };
}

test("serverFeatures: EXTERNAL out on s2s only, STARTTLS in when offered and absent, null when unchanged", () => {
  const ext = `<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='${SASL}'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>`;
  const f = features(ext);
  assert.equal(offersSaslExternal(f.view), true);
  assert.equal(serverFeatures(f.view, f.text, false, false), null);
  assert.equal(serverFeatures(f.view, f.text, true, false), "<stream:features xmlns:stream='http://etherx.jabber.org/streams'></stream:features>");
  assert.equal(serverFeatures(f.view, f.text, true, true), "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>");
  const tls = features("<stream:features xmlns:stream='http://etherx.jabber.org/streams'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>");
  assert.equal(serverFeatures(tls.view, tls.text, false, true), null);
});
