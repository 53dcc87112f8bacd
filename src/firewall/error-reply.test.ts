// buildErrorReply: the exact stanza Prosody's st.error_reply produces
// (docs/firewall.md, "Error replies"; checked on a live Prosody), with and without text, for each kind.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildErrorReply, errorReplyFor, mayAnswerWithError } from "./error-reply.js";
import { testStanza } from "../../test/helpers/test-stanza.js";

describe("buildErrorReply", () => {
  it("matches the verified BOUNCE stanza byte for byte", () => {
    const s = testStanza("<message from='a@example.com/r' to='b@example.net' id='3'><body>spam</body></message>");
    assert.equal(
      buildErrorReply(s, "policy-violation", "modify", "Sending too fast!"),
      "<message to='a@example.com/r' from='b@example.net' id='3' type='error'><error type='modify'>" +
        "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Sending too fast!</text></error></message>",
    );
  });

  it("has no <text> without text, and omits absent addresses", () => {
    const s = testStanza("<iq type='get' id='q1'><query xmlns='jabber:iq:version'/></iq>");
    assert.equal(
      buildErrorReply(s, "service-unavailable", "cancel"),
      "<iq id='q1' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    );
  });

  it("uses the bound JID as `from` for c2s stanzas without one", () => {
    const s = testStanza("<presence to='b@example.net' type='subscribe'/>", { sessionJid: "a@example.com/r" });
    assert.equal(
      buildErrorReply(s, "forbidden", "auth"),
      "<presence to='a@example.com/r' from='b@example.net' type='error'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>",
    );
  });

  it("escapes text and attributes like Prosody (all five characters)", () => {
    assert.equal(
      errorReplyFor({ name: "message", to: "x", from: "a'b", id: "<&>", type: undefined }, "bad-request", "modify", `"'<&>`),
      "<message to='a&apos;b' from='x' id='&lt;&amp;&gt;' type='error'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>&quot;&apos;&lt;&amp;&gt;</text></error></message>",
    );
  });
});

describe("mayAnswerWithError", () => {
  it("never answers errors or iq results", () => {
    assert.equal(mayAnswerWithError("message", "error"), false);
    assert.equal(mayAnswerWithError("iq", "result"), false);
    assert.equal(mayAnswerWithError("message", "result"), true);
    assert.equal(mayAnswerWithError("iq", "set"), true);
    assert.equal(mayAnswerWithError("presence", undefined), true);
  });
});
