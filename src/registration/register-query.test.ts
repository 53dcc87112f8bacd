// Reading jabber:iq:register payloads: forms, legacy fields, duplicates, remove.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Stanza } from "../xml/stanza.js";
import { isRegisterSet, readRegisterQuery } from "./register-query.js";

const iq = (inner: string, type = "set"): Stanza =>
  new Stanza(Buffer.from(`<iq type='${type}' id='r'><query xmlns='jabber:iq:register'>${inner}</query></iq>`), "jabber:client");

test("legacy fields", () => {
  assert.deepEqual(readRegisterQuery(iq("<username>Bob</username><password>pw</password>")), {
    kind: "fields",
    username: "Bob",
    usernames: ["Bob"],
    hasPassword: true,
  });
  assert.deepEqual(readRegisterQuery(iq("<username>bob</username><password/>")), { kind: "fields", username: "bob", usernames: ["bob"], hasPassword: false });
  assert.deepEqual(readRegisterQuery(iq("<password>pw</password>")), { kind: "fields", username: null, usernames: [], hasPassword: true });
});

test("a data form wins over legacy fields; every name is listed", () => {
  const form =
    "<username>legacy</username><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field>" +
    "<field var='username'><value>first</value></field><field var='username'><value>second</value></field>" +
    "<field var='password'><value>pw</value></field></x>";
  assert.deepEqual(readRegisterQuery(iq(form)), { kind: "fields", username: "first", usernames: ["first", "second", "legacy"], hasPassword: true });
});

test("remove, and what is not a register set", () => {
  assert.deepEqual(readRegisterQuery(iq("<remove/>")), { kind: "remove" });
  assert.equal(isRegisterSet(iq("<remove/>")), true);
  assert.equal(isRegisterSet(iq("", "get")), false);
  assert.equal(isRegisterSet(new Stanza(Buffer.from("<iq type='set' id='r'><query xmlns='jabber:iq:roster'/></iq>"), "jabber:client")), false);
  assert.equal(isRegisterSet(new Stanza(Buffer.from("<message type='set'><query xmlns='jabber:iq:register'/></message>"), "jabber:client")), false);
  assert.equal(readRegisterQuery(new Stanza(Buffer.from("<iq type='set' id='r'><other xmlns='jabber:iq:register'/></iq>"), "jabber:client")), null);
});
