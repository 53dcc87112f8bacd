// XEP-0157 injection: which results are rewritten, the form's exact bytes, and
// that every other byte of the server's stanza is kept as it was.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "ltx";
import type { SessionInfo } from "../policy/pipeline.js";
import { Stanza } from "../xml/stanza.js";
import { contactInfoForm, injectContactInfo, parseContactInfo, type ContactInfo } from "./contact-info.js";

const session: SessionInfo = {
  id: "s1",
  listener: "c2s",
  type: "c2s",
  ip: "192.0.2.1",
  port: 1,
  jid: "alice@example.org/phone",
  domain: "example.org",
  authenticated: true,
};

const INFO: ContactInfo = { abuse: ["mailto:abuse@example.org", "xmpp:abuse@example.org"], support: ["https://example.org/help?a=1&b=2"] };

const FORM =
  "<x xmlns='jabber:x:data' type='result'><field type='hidden' var='FORM_TYPE'><value>http://jabber.org/network/serverinfo</value></field>" +
  "<field type='list-multi' var='abuse-addresses'><value>mailto:abuse@example.org</value><value>xmpp:abuse@example.org</value></field>" +
  "<field type='list-multi' var='support-addresses'><value>https://example.org/help?a=1&amp;b=2</value></field></x>";

const HEAD =
  `<iq type="result" id='disco 1' from='example.org' to='alice@example.org/phone'>\n  <query xmlns='http://jabber.org/protocol/disco#info'>` +
  `<identity category='server' type='im' name='Prosody &amp; «Ünïcode»'/><feature var='urn:xmpp:ping'/>` +
  `<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field></x>`;
const TAIL = `</query>\n</iq>`;

function view(xml: string): Stanza {
  return new Stanza(Buffer.from(xml, "utf8"), "jabber:client");
}

test("the form: configured fields only, fixed order, escaped values", () => {
  assert.equal(contactInfoForm(INFO), FORM);
});

test("a result without the form gets it before </query>, every other byte kept", () => {
  const out = injectContactInfo(view(HEAD + TAIL), session, INFO);
  assert.ok(out !== null);
  assert.equal(out.toString("utf8"), HEAD + FORM + TAIL);
  assert.ok(out.subarray(0, Buffer.byteLength(HEAD)).equals(Buffer.from(HEAD)), "prefix byte-exact, including UTF-8 and entities");
  const el = parse(out.toString("utf8"));
  const forms = el.getChild("query")!.getChildren("x", "jabber:x:data");
  assert.equal(forms.length, 2);
});

test("Prosody 0.12's form with all seven fields: empty ones filled, present ones kept", () => {
  const server =
    "<x xmlns='jabber:x:data' type='result'><field type='hidden' var='FORM_TYPE'><value>http://jabber.org/network/serverinfo</value></field>" +
    "<field type='list-multi' var='abuse-addresses'><value>mailto:server@example.org</value></field>" +
    "<field type='list-multi' var='admin-addresses'/><field type='list-multi' var='feedback-addresses'/>" +
    "<field type='list-multi' var='sales-addresses'/><field type='list-multi' var='security-addresses'/>" +
    "<field type='list-multi' var='status-addresses'/><field type='list-multi' var='support-addresses' /></x>";
  const head = "<iq type='result' id='d' from='example.org'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='server' type='im'/>";
  const out = injectContactInfo(view(head + server + "</query></iq>"), session, INFO);
  assert.equal(
    out?.toString("utf8"),
    head +
      server.replace(
        "<field type='list-multi' var='support-addresses' />",
        "<field type='list-multi' var='support-addresses'><value>https://example.org/help?a=1&amp;b=2</value></field>",
      ) +
      "</query></iq>",
  );
});

test("a serverinfo form missing fields gets them appended; a complete one is left alone", () => {
  const head = "<iq type='result' id='d' from='Example.org'><query xmlns='http://jabber.org/protocol/disco#info'>";
  const form = (inner: string): string =>
    `<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>http://jabber.org/network/serverinfo</value></field>${inner}</x>`;
  const out = injectContactInfo(view(head + form("<field var='support-addresses'></field>") + "</query></iq>"), session, INFO);
  assert.equal(
    out?.toString("utf8"),
    head +
      form(
        "<field var='support-addresses'><value>https://example.org/help?a=1&amp;b=2</value></field>" +
          "<field type='list-multi' var='abuse-addresses'><value>mailto:abuse@example.org</value><value>xmpp:abuse@example.org</value></field>",
      ) +
      "</query></iq>",
  );
  const complete = form("<field var='abuse-addresses'><value>mailto:a@b</value></field><field var='support-addresses'><value>x:y</value></field>");
  assert.equal(injectContactInfo(view(head + complete + "</query></iq>"), session, INFO), null);
});

test("the caps node is the host too; other nodes, JIDs and kinds are not rewritten", () => {
  const result = (attrs: string, node = ""): string =>
    `<iq type='result' id='d' ${attrs}><query xmlns='http://jabber.org/protocol/disco#info'${node}><identity category='server' type='im'/></query></iq>`;
  assert.notEqual(injectContactInfo(view(result("from='example.org'", " node='http://prosody.im#Xv0='")), session, INFO), null);
  assert.equal(injectContactInfo(view(result("from='example.org'", " node='http://jabber.org/protocol/commands'")), session, INFO), null);
  assert.equal(injectContactInfo(view(result("from='bob@example.org'")), session, INFO), null);
  assert.equal(injectContactInfo(view(result("from='conference.example.org'")), session, INFO), null);
  assert.equal(injectContactInfo(view(result("")), session, INFO), null, "no from: not provably about the domain");
  assert.equal(injectContactInfo(view(result("from='example.org'")), { ...session, type: "s2s" }, INFO), null);
  assert.equal(injectContactInfo(view(result("from='example.org'")), session, {}), null);
  assert.equal(injectContactInfo(view(result("from='example.org'").replace("type='result'", "type='get'")), session, INFO), null);
  const items = "<iq type='result' id='d' from='example.org'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>";
  assert.equal(injectContactInfo(view(items), session, INFO), null);
});

test("an empty <query/> result is opened up", () => {
  const xml = "<iq type='result' id='d' from='example.org'><query xmlns='http://jabber.org/protocol/disco#info' /></iq>";
  assert.equal(
    injectContactInfo(view(xml), session, INFO)?.toString("utf8"),
    `<iq type='result' id='d' from='example.org'><query xmlns='http://jabber.org/protocol/disco#info'>${FORM}</query></iq>`,
  );
});

test("CDATA and comments inside the result do not confuse the scanner", () => {
  const xml =
    "<iq type='result' id='d' from='example.org'><query xmlns='http://jabber.org/protocol/disco#info'><identity name='a&gt;b' category='server' type='im'/>" +
    "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value><![CDATA[http://jabber.org/network/serverinfo]]></value></field>" +
    "<field var='abuse-addresses'><value>mailto:x@y</value></field><field var='support-addresses'><value>a:b</value></field></x></query></iq>";
  assert.equal(injectContactInfo(view(xml), session, INFO), null, "the CDATA FORM_TYPE is recognised, and both fields have values");
});

test("parseContactInfo", () => {
  assert.deepEqual(parseContactInfo(undefined), { ok: true, value: {}, notes: [] });
  assert.deepEqual(parseContactInfo({ abuse: ["mailto:abuse@example.org"], admin: "xmpp:admin@example.org" }), {
    ok: true,
    value: { abuse: ["mailto:abuse@example.org"], admin: ["xmpp:admin@example.org"] },
    notes: [],
  });
  assert.deepEqual(parseContactInfo({ abuse: ["abuse@example.org"] }).ok, false);
  const r = parseContactInfo({ abuse: ["mailto:a@b", "not a uri"] });
  assert.equal(!r.ok && r.at, "abuse.1");
  const u = parseContactInfo({ complaints: [] });
  assert.equal(!u.ok && u.at, "complaints");
  assert.equal(parseContactInfo([]).ok, false);
});
