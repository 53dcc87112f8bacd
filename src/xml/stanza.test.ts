import { test } from "node:test";
import assert from "node:assert/strict";
import { kindOf } from "./stanza.js";

test("kindOf reads the kind from the name bytes, at any offset", () => {
  const cases: Array<[string, string]> = [
    ["<message/>", "message"], ["<message to='a'>", "message"], ["<message\n>", "message"],
    ["<presence/>", "presence"], ["<presence\ttype='x'/>", "presence"], ["<iq type='get'>", "iq"], ["<iq/>", "iq"],
    ["<messages/>", "other"], ["<messag/>", "other"], ["<presenc>", "other"], ["<iqq/>", "other"], ["<i/>", "other"],
    ["<stream:features>", "other"], ["<r xmlns='urn:xmpp:sm:3'/>", "other"], ["<mess", "other"],
  ];
  for (const [xml, kind] of cases) {
    assert.equal(kindOf(Buffer.from(xml), 0), kind, xml);
    assert.equal(kindOf(Buffer.from("xx" + xml), 2), kind, `offset 2: ${xml}`);
  }
});
