// The offset-reporting tag scanner.
import { test } from "node:test";
import assert from "node:assert/strict";
import { childIndexes, closingIndex, decodeEntities, scanTags, textBetween } from "./xml-scan.js";

test("tags with byte offsets, depths and decoded attributes", () => {
  const xml = Buffer.from("<a x='1&amp;2' y=\"&#x263A;\"><b>é</b><c/><!-- <d> --><e><![CDATA[<f>]]></e></a>");
  const tags = scanTags(xml)!;
  assert.deepEqual(
    tags.map((t) => [t.kind, t.name, t.depth, xml.toString("utf8", t.start, t.end)]),
    [
      ["start", "a", 0, "<a x='1&amp;2' y=\"&#x263A;\">"],
      ["start", "b", 1, "<b>"],
      ["end", "b", 1, "</b>"],
      ["empty", "c", 1, "<c/>"],
      ["start", "e", 1, "<e>"],
      ["end", "e", 1, "</e>"],
      ["end", "a", 0, "</a>"],
    ],
  );
  assert.equal(tags[0]!.attrs.get("x"), "1&2");
  assert.equal(tags[0]!.attrs.get("y"), "☺");
  assert.deepEqual(childIndexes(tags, 0), [1, 3, 4]);
  assert.equal(closingIndex(tags, 0), 6);
  assert.equal(closingIndex(tags, 3), 3);
  assert.equal(textBetween(xml, tags[4]!.end, tags[5]!.start), "<f>");
  assert.equal(textBetween(xml, tags[1]!.end, tags[2]!.start), "é");
});

test("what does not scan is null", () => {
  for (const bad of ["<a", "<a x=1/>", "<a x='1/>", "<a></a></b>", "<a><b></a>x<", "<a/ >", "<!-- x", "<a><![CDATA[x</a>"]) {
    assert.equal(scanTags(Buffer.from(bad)), null, bad);
  }
});

test("entities", () => {
  assert.equal(decodeEntities("&lt;&gt;&amp;&apos;&quot;&#65;&#x42;&unknown;"), "<>&'\"AB&unknown;");
});
