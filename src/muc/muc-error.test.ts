// mod_muc_limits' error replies byte for byte (docs/muc-limits.md, "The bounces,
// byte for byte"), and the Prosody-style serialization of a copied <x/>.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "ltx";
import { NsScope, scopeInside } from "../xml/namespaces.js";
import {
  MESSAGE_TOO_LONG_TEXT,
  NICK_TOO_LONG_TEXT,
  OVERACTIVE_TEXT,
  overactiveReply,
  serializeCopy,
  tooLongReply,
} from "./muc-error.js";

const ERR_NS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const JOIN = { name: "presence", to: "room@muc.example/nick", from: "u@example.org/pc", id: "j1", type: undefined };
const GROUPCHAT = { name: "message", to: "room@muc.example", from: "u@example.org/pc", id: "m1", type: "groupchat" };

describe("tooLongReply", () => {
  it("puts an empty muc <x/> after <error> (nick too long)", () => {
    assert.equal(
      tooLongReply(JOIN, NICK_TOO_LONG_TEXT),
      "<presence to='u@example.org/pc' from='room@muc.example/nick' id='j1' type='error'>" +
        `<error type='modify'><policy-violation xmlns='${ERR_NS}'/>` +
        `<text xmlns='${ERR_NS}'>Your nick name is too long, please use a shorter one</text></error>` +
        "<x xmlns='http://jabber.org/protocol/muc'/></presence>",
    );
  });

  it("does the same for a message that is too long", () => {
    assert.equal(
      tooLongReply(GROUPCHAT, MESSAGE_TOO_LONG_TEXT),
      "<message to='u@example.org/pc' from='room@muc.example' id='m1' type='error'>" +
        `<error type='modify'><policy-violation xmlns='${ERR_NS}'/>` +
        `<text xmlns='${ERR_NS}'>Your message is too long, please write a shorter one</text></error>` +
        "<x xmlns='http://jabber.org/protocol/muc'/></message>",
    );
  });
});

describe("overactiveReply", () => {
  const head = "<message to='u@example.org/pc' from='room@muc.example' id='m1' type='error'>";
  const error = `<error type='wait'><policy-violation xmlns='${ERR_NS}'/><text xmlns='${ERR_NS}'>${OVERACTIVE_TEXT}</text>`;

  it("copies the body after <error>, escaped like util.stanza", () => {
    assert.equal(
      overactiveReply(GROUPCHAT, `it's <b> & "q"\nline 2`, undefined),
      `${head}${error}</error><body>it&apos;s &lt;b&gt; &amp; &quot;q&quot;\nline 2</body></message>`,
    );
  });

  it("self-closes an empty body (text('') adds nothing)", () => {
    assert.equal(overactiveReply(GROUPCHAT, "", undefined), `${head}${error}</error><body/></message>`);
  });

  it("puts the muc <x> after the body when there is one", () => {
    const x = "<x xmlns='http://jabber.org/protocol/muc'/>";
    assert.equal(overactiveReply(GROUPCHAT, "hi", x), `${head}${error}</error><body>hi</body>${x}</message>`);
  });

  it("puts the muc <x> inside <error>, after <text>, when there is no body (a join)", () => {
    const x = "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>";
    assert.equal(
      overactiveReply(JOIN, undefined, x),
      "<presence to='u@example.org/pc' from='room@muc.example/nick' id='j1' type='error'>" +
        `<error type='wait'><policy-violation xmlns='${ERR_NS}'/><text xmlns='${ERR_NS}'>The room is currently overactive, please try again later</text>` +
        `${x}</error></presence>`,
    );
  });

  it("is plain st.error_reply without body or <x>", () => {
    assert.equal(overactiveReply(JOIN, undefined, undefined).endsWith("</text></error></presence>"), true);
  });
});

describe("serializeCopy", () => {
  function copy(stanza: string): string {
    const root = parse(stanza);
    root.attrs.xmlns ??= "jabber:client";
    const scope = scopeInside(NsScope.EMPTY, root.attrs);
    const x = root.getChildElements()[0]!;
    return serializeCopy(x, scope, undefined);
  }

  it("writes xmlns on the copy, not on children in the same namespace", () => {
    assert.equal(
      copy("<presence><x xmlns='http://jabber.org/protocol/muc'><password>p&amp;'w</password><history xmlns='http://jabber.org/protocol/muc' maxchars=\"0\"/></x></presence>"),
      "<x xmlns='http://jabber.org/protocol/muc'><password>p&amp;&apos;w</password><history maxchars='0'/></x>",
    );
  });

  it("keeps a child's different namespace, including jabber:client", () => {
    assert.equal(
      copy("<presence><x xmlns='http://jabber.org/protocol/muc'><a xmlns='urn:a'><b/></a><c xmlns='jabber:client'/></x></presence>"),
      "<x xmlns='http://jabber.org/protocol/muc'><a xmlns='urn:a'><b/></a><c xmlns='jabber:client'/></x>",
    );
  });

  it("resolves prefixes as Prosody's parser does, and keeps xml:lang", () => {
    assert.equal(
      copy("<presence xmlns:m='http://jabber.org/protocol/muc' xmlns:e='urn:e'><m:x xml:lang='en' e:flag='1'><m:password>p</m:password></m:x></presence>"),
      "<x xmlns='http://jabber.org/protocol/muc' xml:lang='en' xmlns:ns1='urn:e' ns1:flag='1'><password>p</password></x>",
    );
  });

  it("keeps whitespace text", () => {
    assert.equal(
      copy("<presence><x xmlns='http://jabber.org/protocol/muc'>\n  <history since='x'/>\n</x></presence>"),
      "<x xmlns='http://jabber.org/protocol/muc'>\n  <history since='x'/>\n</x>",
    );
  });
});
