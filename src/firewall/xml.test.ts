// XML helpers: Prosody-style serialization and the INJECT snippet parser.
// Every stanza the firewall builds goes through serialize().
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseXmlSnippet, serialize, textOf } from "./xml.js";

describe("serialize", () => {
  it("single quotes, escaped five characters, self-closed empty elements", () => {
    assert.equal(serialize({ name: "a", attrs: { x: "it's", y: undefined }, children: [] }), "<a x='it&apos;s'/>");
    assert.equal(serialize({ name: "a", attrs: {}, children: ["1 < 2 & \"3\"", { name: "b", attrs: {}, children: [] }] }), "<a>1 &lt; 2 &amp; &quot;3&quot;<b/></a>");
  });

  it("textOf is undefined when there are child elements", () => {
    assert.equal(textOf({ name: "a", attrs: {}, children: ["x", "y"] }), "xy");
    assert.equal(textOf({ name: "a", attrs: {}, children: ["x", { name: "b", attrs: {}, children: [] }] }), undefined);
  });
});

describe("parseXmlSnippet", () => {
  it("parses nested elements, attributes, text and entities", () => {
    assert.deepEqual(parseXmlSnippet(" <a x=\"1\" y='&#65;'>t<b/>&lt;u&gt;</a> "), {
      node: { name: "a", attrs: { x: "1", y: "A" }, children: ["t", { name: "b", attrs: {}, children: [] }, "<u>"] },
    });
  });

  it("reports malformed snippets", () => {
    for (const bad of ["a", "<a>", "<a></b>", "<a x=1/>", "<a/><b/>", "<a>&bogus;</a>", "<a x='1' x='2'/>"]) {
      assert.ok("error" in parseXmlSnippet(bad), bad);
    }
  });
});
