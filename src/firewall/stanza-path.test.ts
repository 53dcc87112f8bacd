// Stanza paths (util.stanza find): parsing, first-match steps, namespace
// inheritance with jabber:client as "no namespace", text and attributes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { StanzaPath } from "./ast.js";
import { findPath, parseStanzaPath } from "./stanza-path.js";
import { testStanza } from "./test-stanza.js";
import { serialize, type XmlNode } from "./xml.js";

function path(src: string): StanzaPath {
  const p = parseStanzaPath(src);
  if ("error" in p) throw new Error(p.error);
  return p;
}

function find(xml: string, src: string): string | undefined {
  const s = testStanza(xml);
  const r = findPath(s.tree() as XmlNode | null, s.xmlns, path(src));
  return r === undefined ? undefined : typeof r === "string" ? r : serialize(r);
}

const IQ = "<iq type='set' id='1'><query xmlns='jabber:iq:register'><username>admin</username><x:y xmlns:x='urn:x' a='1'/></query></iq>";

describe("parseStanzaPath", () => {
  it("parses steps, namespaces and endings", () => {
    assert.deepEqual(path("@from"), { source: "@from", steps: [], end: { kind: "attr", name: "from" } });
    assert.deepEqual(path("{urn:a}x/y#").steps, [
      { ns: "urn:a", name: "x" },
      { ns: undefined, name: "y" },
    ]);
    assert.deepEqual(path("query@type").end, { kind: "attr", name: "type" });
    assert.deepEqual(path("query/@type").end, { kind: "attr", name: "type" });
    assert.deepEqual(path("{urn:a}").steps, [{ ns: "urn:a", name: undefined }]);
  });

  it("reports malformed paths", () => {
    for (const bad of ["{urn:a", "body#x", "@", "a{b}"]) assert.ok("error" in parseStanzaPath(bad), bad);
  });
});

describe("findPath", () => {
  it("walks first matches with namespace inheritance", () => {
    assert.equal(find(IQ, "{jabber:iq:register}query/username#"), "admin");
    assert.equal(find(IQ, "{jabber:iq:register}query/username"), "<username>admin</username>");
    assert.equal(find(IQ, "query/username#"), undefined, "query is not in the stanza's namespace");
    assert.equal(find(IQ, "{jabber:iq:register}query/{urn:x}y@a"), "1");
    assert.equal(find(IQ, "@type"), "set");
  });

  it("jabber:client children count as no namespace", () => {
    const msg = "<message><body>hi</body><body xmlns='jabber:client'>second</body><thread>t</thread></message>";
    assert.equal(find(msg, "body#"), "hi");
    assert.equal(find(msg, "thread#"), "t");
  });

  it("text of an element with children is undefined (get_text)", () => {
    assert.equal(find("<message><body>a<b/>c</body></message>", "body#"), undefined);
    assert.equal(find("<message><body/></message>", "body#"), "");
  });

  it("an empty name takes the first child of the namespace", () => {
    assert.equal(find("<message><a xmlns='urn:q'/><b xmlns='urn:z' k='v'/></message>", "{urn:z}@k"), "v");
  });
});
