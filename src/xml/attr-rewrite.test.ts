import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { replaceAttribute } from "./attr-rewrite.js";

describe("replaceAttribute", () => {
  it("changes only the value, keeping quotes, spacing and the rest", () => {
    assert.equal(replaceAttribute("<a xmlns='urn:xmpp:sm:3' h='7'/>", "h", "5"), "<a xmlns='urn:xmpp:sm:3' h='5'/>");
    assert.equal(replaceAttribute('<sm:a xmlns:sm="urn:xmpp:sm:3"\n  h = "12" />', "h", "9"), '<sm:a xmlns:sm="urn:xmpp:sm:3"\n  h = "9" />');
    assert.equal(
      replaceAttribute("<failed xmlns='urn:xmpp:sm:3' h='3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>", "h", "2"),
      "<failed xmlns='urn:xmpp:sm:3' h='2'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
    );
  });

  it("attacker: an h inside another attribute's value, or a prefixed h, is not the attribute", () => {
    assert.equal(replaceAttribute("<resume previd=\" h='1'\" xmlns='urn:xmpp:sm:3' h='4'/>", "h", "3"), "<resume previd=\" h='1'\" xmlns='urn:xmpp:sm:3' h='3'/>");
    assert.equal(replaceAttribute("<a xmlns='urn:xmpp:sm:3' x:h='1' xmlns:x='y'/>", "h", "3"), null);
    assert.equal(replaceAttribute("<a xmlns='urn:xmpp:sm:3'>h='1'</a>", "h", "3"), null);
  });
});
