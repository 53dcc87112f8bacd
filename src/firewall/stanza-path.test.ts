// Stanza paths (util.stanza find): parsing, first-match steps, namespaces
// compared as the server records them (a child in the stanza's own namespace
// has none, so it is never "in jabber:client"), text and attributes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { StanzaPath } from "./ast.js";
import { findPath, parseStanzaPath, prosodyForm } from "./stanza-path.js";
import { testStanza } from "../../test/helpers/test-stanza.js";
import { serializeHeld, type XmlNode } from "./xml.js";

function path(src: string): StanzaPath {
  return parseStanzaPath(src);
}

function find(xml: string, src: string, streamNs = "jabber:client"): string | undefined {
  const s = testStanza(xml, { streamNs });
  const r = findPath(s.tree() as XmlNode | null, s.xmlns, path(src));
  return r === undefined ? undefined : typeof r === "string" ? r : serializeHeld(prosodyForm(r, s.xmlns));
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

  it("reads every path as Prosody's find() does: what it cannot make sense of finds nothing", () => {
    for (const odd of ["{urn:a", "{}a", "@", "a{b}", " body#", "body/ x", "@a b", "@a/b"]) {
      const p = parseStanzaPath(odd);
      assert.equal(p.never, true, odd);
      assert.match(p.warning ?? "", /finds nothing/, odd);
    }
    // A '#' inside the path separates steps like '/'.
    const hash = parseStanzaPath("body#x");
    assert.deepEqual(hash.steps, [{ ns: undefined, name: "body" }, { ns: undefined, name: "x" }]);
    assert.deepEqual(hash.end, { kind: "element" });
    assert.match(hash.warning ?? "", /separates steps like '\/'/);
    assert.equal(parseStanzaPath("body#").warning, undefined);
    assert.equal(find("<message><a><b>t</b></a></message>", "a#b#"), "t");
    assert.equal(find("<message><a k='v'/></message>", " a@k"), undefined);
  });
});

describe("findPath", () => {
  it("walks first matches with namespace inheritance", () => {
    assert.equal(find(IQ, "{jabber:iq:register}query/username#"), "admin");
    assert.equal(find(IQ, "{jabber:iq:register}query/username"), "<username xmlns='jabber:iq:register'>admin</username>", "as the server holds it");
    assert.equal(find(IQ, "query/username#"), undefined, "query is not in the stanza's namespace");
    assert.equal(find(IQ, "{jabber:iq:register}query/{urn:x}y@a"), "1");
    assert.equal(find(IQ, "@type"), "set");
  });

  it("a child in the stanza's own namespace is found without a namespace, never under {jabber:client}", () => {
    const msg = "<message><body>hi</body><body xmlns='jabber:client'>second</body><thread>t</thread></message>";
    assert.equal(find(msg, "body#"), "hi");
    assert.equal(find(msg, "thread#"), "t");
    assert.equal(find(msg, "{jabber:client}body#"), undefined);
    assert.equal(find(msg, "{jabber:client}thread"), undefined);
    // A prefix bound to the stanza's namespace is the same child.
    assert.equal(find("<c:message xmlns:c='jabber:client'><c:body>p</c:body></c:message>", "body#"), "p");
    assert.equal(find("<c:message xmlns:c='jabber:client'><c:body>p</c:body></c:message>", "{jabber:client}body#"), undefined);
  });

  it("on s2s the same holds for jabber:server; a child that declares jabber:client there is recorded as such", () => {
    const msg = "<message><body>a</body><body xmlns='jabber:client'>b</body></message>";
    assert.equal(find(msg, "body#", "jabber:server"), "a");
    assert.equal(find(msg, "{jabber:server}body#", "jabber:server"), undefined);
    assert.equal(find(msg, "{jabber:client}body#", "jabber:server"), "b");
  });

  it("below a child in another namespace every element has its namespace recorded", () => {
    const msg = "<message><x xmlns='urn:a'><y>1</y><body xmlns='jabber:client'>2</body></x></message>";
    assert.equal(find(msg, "{urn:a}x/y#"), "1");
    assert.equal(find(msg, "{urn:a}x/{urn:a}y#"), "1");
    assert.equal(find(msg, "{urn:a}x/body#"), undefined, "body is in jabber:client, x in urn:a");
    assert.equal(find(msg, "{urn:a}x/{jabber:client}body#"), "2");
    // Serialised as the server writes it: xmlns where it differs from the parent's.
    assert.equal(find(msg, "{urn:a}x"), "<x xmlns='urn:a'><y>1</y><body xmlns='jabber:client'>2</body></x>");
    assert.equal(find(msg, "{urn:a}x/y"), "<y xmlns='urn:a'>1</y>", "an element on its own shows its recorded namespace");
  });

  it("a child in no namespace (xmlns='') is not in the stanza's namespace", () => {
    assert.equal(find("<message><x xmlns=''>n</x></message>", "x#"), undefined);
  });

  it("text of an element with children is undefined (get_text)", () => {
    assert.equal(find("<message><body>a<b/>c</body></message>", "body#"), undefined);
    assert.equal(find("<message><body/></message>", "body#"), "");
  });

  it("an empty name takes the first child of the namespace", () => {
    assert.equal(find("<message><a xmlns='urn:q'/><b xmlns='urn:z' k='v'/></message>", "{urn:z}@k"), "v");
  });
});

describe("findPath: the spelling of namespaces does not matter", () => {
  const NS = ["jabber:client", "urn:a", "urn:b", "jabber:server"] as const;
  interface Node {
    readonly name: string;
    readonly ns: (typeof NS)[number];
    readonly children: readonly Node[];
  }
  const node: fc.Memo<Node> = fc.memo((d) =>
    fc.record({
      name: fc.constantFrom("a", "b", "body"),
      ns: fc.constantFrom(...NS),
      children: d > 1 ? fc.array(node(d - 1), { maxLength: 3 }) : fc.constant([]),
    }),
  );
  // Three spellings of one tree: xmlns only where it changes, xmlns on every
  // element, and a prefix per namespace declared on the stanza.
  const plain = (n: Node, parent: string): string =>
    `<${n.name}${n.ns === parent ? "" : ` xmlns='${n.ns}'`}>${n.children.map((c) => plain(c, n.ns)).join("")}</${n.name}>`;
  const explicit = (n: Node): string => `<${n.name} xmlns='${n.ns}'>${n.children.map(explicit).join("")}</${n.name}>`;
  const prefixed = (n: Node): string => {
    const p = `p${NS.indexOf(n.ns)}`;
    return `<${p}:${n.name}>${n.children.map(prefixed).join("")}</${p}:${n.name}>`;
  };
  const decls = NS.map((ns, i) => ` xmlns:p${i}='${ns}'`).join("");
  const steps = fc.array(fc.record({ ns: fc.option(fc.constantFrom(...NS), { nil: undefined }), name: fc.option(fc.constantFrom("a", "b", "body"), { nil: undefined }) }), { minLength: 1, maxLength: 3 });

  it("plain, explicit and prefixed forms give the same results", () => {
    fc.assert(
      fc.property(fc.array(node(3), { maxLength: 3 }), steps, fc.constantFrom("jabber:client", "jabber:server"), (children, st, streamNs) => {
        const src = st.map((s) => `${s.ns === undefined ? "" : `{${s.ns}}`}${s.name ?? ""}`).join("/");
        const p = parseStanzaPath(src);
        if ("error" in p) return;
        const forms = [
          `<message>${children.map((c) => plain(c, streamNs)).join("")}</message>`,
          `<message xmlns='${streamNs}'>${children.map(explicit).join("")}</message>`,
          `<c:message xmlns:c='${streamNs}'${decls}>${children.map(prefixed).join("")}</c:message>`,
        ];
        const results = forms.map((xml) => {
          const s = testStanza(xml, { streamNs });
          const r = findPath(s.tree() as XmlNode | null, s.xmlns, p);
          return r === undefined || typeof r === "string" ? r : serializeHeld(prosodyForm(r, s.xmlns));
        });
        assert.equal(results[1], results[0], forms[1]);
        assert.equal(results[2], results[0], forms[2]);
      }),
      { numRuns: 300 },
    );
  });
});
