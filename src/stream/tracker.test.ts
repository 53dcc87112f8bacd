import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_RESUME_MS, mayMatterAfterBind, saslUser, StreamTracker } from "./tracker.js";

const STREAMS = "http://etherx.jabber.org/streams";
const C2S_HEADER = `<stream:stream xmlns='jabber:client' xmlns:stream='${STREAMS}' to='example.net' version='1.0'>`;
const S2S_HEADER = (from: string) => `<stream:stream xmlns='jabber:server' xmlns:stream='${STREAMS}' xmlns:db='jabber:server:dialback' from='${from}' to='example.net' version='1.0'>`;
const SERVER_S2S_HEADER = `<stream:stream xmlns='jabber:server' xmlns:stream='${STREAMS}' xmlns:db='jabber:server:dialback' from='example.net' id='s1' version='1.0'>`;

/** A header frame's arguments, for peerHeader/serverHeader. */
function head(xml: string): [Buffer, number, number] {
  return [Buffer.from(xml), 0, Buffer.byteLength(xml)];
}

function peer(t: StreamTracker, xml: string) {
  const b = Buffer.from(xml);
  const view = t.peerView(b, 0, b.length);
  return { view, event: t.peerStanza(view) };
}

function server(t: StreamTracker, xml: string) {
  const b = Buffer.from(xml);
  return t.serverStanza(t.serverView(b, 0, b.length));
}

test("c2s: SASL success, restart, bind: the bound JID is stamped as from on every content stanza", () => {
  const t = new StreamTracker("c2s");
  assert.equal(t.peerHeader(...head(C2S_HEADER)), null);
  assert.equal(t.claimedDomain, "example.net");
  // Before binding the router stamps nothing.
  assert.equal(peer(t, "<message from='victim@example.net/x' to='a@b'/>").view.from, undefined);
  assert.deepEqual(server(t, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"), { kind: "sasl-success" });
  assert.equal(t.phase, "authenticated");
  assert.equal(t.peerHeader(...head(C2S_HEADER)), null);
  assert.equal(peer(t, "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>").event, null);
  const bound = server(t, "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>romeo@example.net/r</jid></bind></iq>");
  assert.deepEqual(bound, { kind: "bound", jid: "romeo@example.net/r" });
  assert.equal(t.phase, "bound");
  for (const xml of [
    "<message from='victim@example.net/x' to='a@b'/>",
    "<message xmlns='jabber:client' from='victim@example.net/x' to='a@b'/>",
    "<c:message xmlns:c='jabber:client' from='victim@example.net/x' to='a@b'/>",
  ]) {
    assert.equal(peer(t, xml).view.from, "romeo@example.net/r", xml);
  }
  assert.deepEqual(t.exemptionKeys(), ["romeo@example.net"]);
});

test("c2s: a bind answered with a prefixed result, and a prefixed bind request, are both followed", () => {
  const t = new StreamTracker("c2s");
  t.peerHeader(...head(C2S_HEADER));
  server(t, "<s:success xmlns:s='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  assert.equal(t.phase, "authenticated");
  peer(t, "<c:iq xmlns:c='jabber:client' type='set' id='b2'><b:bind xmlns:b='urn:ietf:params:xml:ns:xmpp-bind'/></c:iq>");
  const ev = server(t, "<iq type='result' id='b2'><b:bind xmlns:b='urn:ietf:params:xml:ns:xmpp-bind'><b:jid>juliet@example.net/p</b:jid></b:bind></iq>");
  assert.deepEqual(ev, { kind: "bound", jid: "juliet@example.net/p" });
});

test("the stream header's language applies to stanzas without one, and carries across a restart that names none", () => {
  const t = new StreamTracker("c2s");
  t.peerHeader(...head(C2S_HEADER.replace("version", "xml:lang='de' version")));
  assert.equal(peer(t, "<message/>").view.lang, "de");
  assert.equal(peer(t, "<message xml:lang='fr'/>").view.lang, "fr");
  t.peerHeader(...head(C2S_HEADER));
  assert.equal(peer(t, "<message/>").view.lang, "de");
  assert.equal(new StreamTracker("c2s").inbound.lang, "en");
});

test("prefixes declared on the peer's header are in scope for its stanzas", () => {
  const t = new StreamTracker("c2s");
  t.peerHeader(...head(C2S_HEADER.replace("version", "xmlns:j='jabber:client' version")));
  const { view } = peer(t, "<j:message to='a@b'><j:body>x</j:body></j:message>");
  assert.equal(view.kind, "message");
  assert.equal(view.tree()?.getChildText("body", "jabber:client"), "x");
});

test("a header that is not namespace-well-formed is refused; a stanza with an unbound prefix ends the stream", () => {
  const t = new StreamTracker("c2s");
  assert.equal(t.peerHeader(...head(C2S_HEADER.replace("version", "a:b='1' version")))?.code, "XPX_ERR_XML_NAMESPACE");
  assert.equal(t.peerHeader(...head(C2S_HEADER)), null);
  assert.deepEqual(peer(t, "<c:message to='a@b'/>").event, { kind: "refuse", code: "XPX_ERR_XML_NAMESPACE", detail: "unbound prefix c on element c:message" });
});

test("STARTTLS is recognised by namespace", () => {
  const t = new StreamTracker("c2s");
  t.peerHeader(...head(C2S_HEADER));
  assert.deepEqual(peer(t, "<t:starttls xmlns:t='urn:ietf:params:xml:ns:xmpp-tls'/>").event, { kind: "starttls" });
  assert.equal(peer(t, "<starttls xmlns='urn:other'/>").event, null);
});

test("SASL2 success: a full JID binds, a bare one only authenticates", () => {
  const t = new StreamTracker("c2s");
  t.peerHeader(...head(C2S_HEADER));
  const ev = server(t, "<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>romeo@example.net</authorization-identifier></success>");
  assert.deepEqual(ev, { kind: "sasl2-success", jid: "romeo@example.net" });
  assert.equal(t.phase, "authenticated");
  assert.equal(t.jid, undefined);
  const t2 = new StreamTracker("c2s");
  t2.peerHeader(...head(C2S_HEADER));
  server(t2, "<s:success xmlns:s='urn:xmpp:sasl:2'><s:authorization-identifier>romeo@example.net/b2</s:authorization-identifier></s:success>");
  assert.equal(t2.phase, "bound");
  assert.equal(t2.jid, "romeo@example.net/b2");
});

test("XEP-0198: enabled with resume is remembered; resumed restores the session", () => {
  const t = new StreamTracker("c2s");
  t.peerHeader(...head(C2S_HEADER));
  t.jid = "romeo@example.net/r";
  assert.deepEqual(server(t, "<enabled xmlns='urn:xmpp:sm:3' id='sm1' resume='true'/>"), { kind: "resumable", id: "sm1" });
  // The server's resumption time, when it says (how long a lost session stays online: docs/knowledge.md).
  assert.deepEqual(server(t, "<e:enabled xmlns:e='urn:xmpp:sm:3' id='sm2' resume='1' max='300'/>"), { kind: "resumable", id: "sm2", max: "300" });
  const t2 = new StreamTracker("c2s");
  t2.peerHeader(...head(C2S_HEADER));
  peer(t2, "<resume xmlns='urn:xmpp:sm:3' previd='sm1' h='0'/>");
  assert.deepEqual(server(t2, "<resumed xmlns='urn:xmpp:sm:3' previd='sm1' h='0'/>"), { kind: "resumed", previd: "sm1" });
  t2.resume("romeo@example.net/r");
  assert.equal(t2.phase, "bound");
  assert.equal(peer(t2, "<message from='x@y'/>").view.from, "romeo@example.net/r");
});

test("a stream error is recognised by namespace, whatever its prefix", () => {
  const t = new StreamTracker("c2s");
  t.serverHeader(...head(`<s:stream xmlns='jabber:client' xmlns:s='${STREAMS}' id='1' version='1.0'>`));
  assert.deepEqual(server(t, "<s:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></s:error>"), { kind: "stream-error", condition: "conflict" });
  assert.equal(server(t, "<stream:error/>"), null, "stream: is not bound on this server's header");
});

test("s2s: only domains the server verified by dialback count; the header's claim counts for nothing", () => {
  const t = new StreamTracker("s2s");
  assert.equal(t.peerHeader(...head(S2S_HEADER("exempt.example"))), null);
  t.serverHeader(...head(SERVER_S2S_HEADER));
  assert.equal(t.claimedDomain, "exempt.example");
  assert.deepEqual(t.exemptionKeys(), []);
  // Before any verification a stanza is refused as the server refuses it.
  assert.equal(peer(t, "<message from='a@exempt.example' to='b@example.net'/>").event?.kind, "refuse");
  // The server verifies evil.example (its dialback result, prefix from the server's header).
  assert.deepEqual(server(t, "<db:result from='example.net' to='evil.example' type='valid'/>"), { kind: "verified", domain: "evil.example" });
  assert.equal(t.phase, "authenticated");
  assert.deepEqual(t.exemptionKeys(), ["evil.example"]);
  assert.equal(peer(t, "<message from='a@evil.example' to='b@example.net'/>").event, null);
  assert.equal(peer(t, "<message from='a@EVIL.example/r' to='b@example.net'/>").event, null, "domains compare prepped");
  const refused = peer(t, "<message from='a@exempt.example' to='b@example.net'/>").event;
  assert.deepEqual(refused, { kind: "refuse", code: "XPX_ERR_S2S_UNVERIFIED_FROM", detail: "from a@exempt.example" });
  assert.equal(peer(t, "<s:message xmlns:s='jabber:server' from='a@exempt.example'/>").event?.kind, "refuse", "prefixed too");
  assert.equal(peer(t, "<message to='b@example.net'/>").event?.kind, "refuse", "no from at all");
  // An invalid result verifies nothing (it is a failed login); nonzas are not stanzas.
  assert.deepEqual(server(t, "<db:result from='example.net' to='exempt.example' type='invalid'/>"), { kind: "auth-failure", reason: "dialback", mechanism: "dialback", user: "exempt.example" });
  assert.deepEqual(t.exemptionKeys(), ["evil.example"]);
  assert.equal(peer(t, "<db:result from='exempt.example' to='example.net'>key</db:result>").event, null);
});

test("s2s: a verify on a dialback stream (db:verify valid) proves nothing on it", () => {
  const t = new StreamTracker("s2s");
  t.peerHeader(...head(S2S_HEADER("a.example")));
  t.serverHeader(...head(SERVER_S2S_HEADER));
  assert.equal(server(t, "<db:verify from='example.net' to='a.example' id='1' type='valid'/>"), null);
  assert.deepEqual(t.exemptionKeys(), []);
});

test("a SASL failure is a failed login with the mechanism and user of the attempt, never the password", () => {
  const t = new StreamTracker("c2s");
  const plain = Buffer.from("\0mallory\0hunter2").toString("base64");
  assert.equal(peer(t, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`).event, null);
  const failed = server(t, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
  assert.deepEqual(failed, { kind: "auth-failure", reason: "not-authorized", mechanism: "PLAIN", user: "mallory" });
  assert.ok(!JSON.stringify(failed).includes("hunter2"));
  assert.equal(t.phase, "open");
  const scram = Buffer.from("n,,n=al=2Cice,r=abcdef").toString("base64");
  peer(t, `<sasl:auth xmlns:sasl='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>${scram}</sasl:auth>`);
  assert.deepEqual(server(t, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>"), { kind: "auth-failure", reason: "aborted", mechanism: "SCRAM-SHA-1", user: "al,ice" });
  assert.deepEqual(server(t, "<failure xmlns='urn:xmpp:sasl:2'><not-authorized/></failure>"), { kind: "auth-failure", reason: "not-authorized", mechanism: undefined, user: undefined });
  assert.equal(saslUser("DIGEST-MD5", plain), undefined);
  assert.equal(saslUser("PLAIN", "="), undefined);
});

test("SASL success asks for one stream restart, taken once", () => {
  const t = new StreamTracker("c2s");
  t.peerHeader(...head(C2S_HEADER));
  assert.equal(t.takeRestart(), false);
  server(t, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  assert.equal(t.takeRestart(), true);
  assert.equal(t.takeRestart(), false);
  // SASL2 authenticates without a restart.
  const t2 = new StreamTracker("c2s");
  server(t2, "<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>romeo@example.net</authorization-identifier></success>");
  assert.equal(t2.takeRestart(), false);
});

test("XEP-0198 resumption time: the server's max (capped at a day), else the default; a resumed session keeps the default", () => {
  const t = new StreamTracker("c2s");
  t.jid = "romeo@example.net/r";
  assert.equal(t.resumeMs, 0);
  server(t, "<enabled xmlns='urn:xmpp:sm:3' id='a' resume='true' max='300'/>");
  assert.equal(t.resumeMs, 300_000);
  server(t, "<enabled xmlns='urn:xmpp:sm:3' id='b' resume='true' max='999999'/>");
  assert.equal(t.resumeMs, 86_400_000);
  server(t, "<enabled xmlns='urn:xmpp:sm:3' id='c' resume='true' max='soon'/>");
  assert.equal(t.resumeMs, DEFAULT_RESUME_MS);
  const plain = new StreamTracker("c2s");
  plain.jid = "romeo@example.net/r";
  server(plain, "<enabled xmlns='urn:xmpp:sm:3'/>");
  assert.equal(plain.resumeMs, 0, "not resumable");
  const resumed = new StreamTracker("c2s");
  resumed.resume(undefined);
  assert.equal(resumed.resumeMs, DEFAULT_RESUME_MS);
  assert.equal(resumed.phase, "bound");
});

test("peerDomain: c2s the stream's to; s2s only a verified domain, the claim first when verified", () => {
  const c = new StreamTracker("c2s");
  c.peerHeader(...head(C2S_HEADER));
  assert.equal(c.peerDomain, "example.net");
  const s = new StreamTracker("s2s");
  s.peerHeader(...head(S2S_HEADER("remote.example")));
  assert.equal(s.peerDomain, undefined, "a claim alone names nothing");
  server(s, "<db:result xmlns:db='jabber:server:dialback' type='valid' to='other.example' from='example.net'/>");
  assert.equal(s.peerDomain, "other.example");
  server(s, "<db:result xmlns:db='jabber:server:dialback' type='valid' to='remote.example' from='example.net'/>");
  assert.equal(s.peerDomain, "remote.example");
});

test("the bound JID is an own copy of the bind result's text", () => {
  const t = new StreamTracker("c2s");
  t.peerHeader(...head(C2S_HEADER));
  peer(t, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
  const ev = server(t, "<iq type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>juliet@example.net/p</jid></bind></iq>");
  assert.deepEqual(ev, { kind: "bound", jid: "juliet@example.net/p" });
  assert.equal(t.jid, "juliet@example.net/p");
});

test("mayMatterAfterBind: stream errors, enabled and prefixed names only", () => {
  const m = (xml: string) => mayMatterAfterBind(Buffer.from(xml), 0, xml.length);
  assert.equal(m("<stream:error/>"), true);
  assert.equal(m("<enabled xmlns='urn:xmpp:sm:3'/>"), true);
  assert.equal(m("<sm:r xmlns:sm='urn:xmpp:sm:3'/>"), true);
  assert.equal(m("<r xmlns='urn:xmpp:sm:3'/>"), false);
  assert.equal(m("<a h='1'/>"), false);
});

test("sessions share the context of an equal stream header; a different declaration, language or side gets its own", () => {
  const a = new StreamTracker("c2s");
  const b = new StreamTracker("c2s");
  a.peerHeader(...head(C2S_HEADER));
  // The same declarations in another order, another `to`: the same context.
  b.peerHeader(...head(`<stream:stream xmlns:stream='${STREAMS}' to='example.org' xmlns='jabber:client' version='1.0'>`));
  assert.equal(a.inbound, b.inbound);
  a.serverHeader(...head(`<stream:stream xmlns='jabber:client' xmlns:stream='${STREAMS}' from='example.net' id='1' xml:lang='en'>`));
  b.serverHeader(...head(`<stream:stream xmlns='jabber:client' xmlns:stream='${STREAMS}' from='example.net' id='2' xml:lang='en'>`));
  assert.equal(a.outbound, b.outbound);
  assert.notEqual(a.inbound, a.outbound); // the peer's stamps `from`, the server's does not
  const c = new StreamTracker("c2s");
  c.peerHeader(...head(`<stream:stream xmlns='jabber:client' xmlns:stream='${STREAMS}' xml:lang='de' to='example.net'>`));
  assert.notEqual(c.inbound, a.inbound);
  assert.equal(c.inbound.lang, "de");
  const d = new StreamTracker("c2s");
  d.peerHeader(...head(`<stream:stream xmlns='jabber:client' xmlns:stream='${STREAMS}' xmlns:x='urn:x' to='example.net'>`));
  assert.notEqual(d.inbound, a.inbound);
  assert.equal(d.inbound.scope.resolve("x"), "urn:x");
  assert.equal(a.inbound.scope.resolve("x"), undefined);
});

test("a SASL attempt is forgotten once the server accepts it", () => {
  const t = new StreamTracker("c2s");
  t.peerHeader(...head(C2S_HEADER));
  peer(t, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABzZWNyZXQ=</auth>");
  server(t, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  // A later failure (a broken server) names no attempt.
  assert.deepEqual(server(t, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"), { kind: "auth-failure", reason: "not-authorized", mechanism: undefined, user: undefined });
});
