// mod_watchregistrations text and stanzas, and the XEP-0114 handshake digest.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRegistrationOptions, type RegistrationOptions } from "./options.js";
import { componentHandshake, formatNotification, notificationText, watcherMessages } from "./watchers.js";

function options(raw: Record<string, unknown>): RegistrationOptions {
  const r = parseRegistrationOptions(raw);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

const account = { username: "alice", host: "example.org", ip: "198.51.100.23" };

test("the default notification text", () => {
  assert.equal(notificationText(options({}), account), "User alice just registered on example.org from 198.51.100.23");
});

test("$words: known ones replaced, unknown ones kept, %w+ boundaries", () => {
  const vars = { username: "bob", host: "h", ip: "1.2.3.4" };
  assert.equal(formatNotification("$username/$host/$ip", vars), "bob/h/1.2.3.4");
  assert.equal(formatNotification("$unknown and $ $source", vars), "$unknown and $ $source");
  assert.equal(formatNotification("$username_x $usernamex", vars), "bob_x $usernamex");
  assert.equal(formatNotification("$$username", vars), "$bob");
  assert.equal(formatNotification("$ip", { ip: "$host" }), "$host", "values are not re-scanned");
});

test("one message per watcher, escaped, from the component by default", () => {
  const o = options({ registration_watchers: ["admin@example.org", "ops@example.org"], registration_notification: "<$username> & co" });
  assert.deepEqual(watcherMessages(o, account, "guard.example.org"), [
    "<message type='chat' from='guard.example.org' to='admin@example.org'><body>&lt;alice&gt; &amp; co</body></message>",
    "<message type='chat' from='guard.example.org' to='ops@example.org'><body>&lt;alice&gt; &amp; co</body></message>",
  ]);
  const o2 = options({ registration_watchers: ["admin@example.org"], registration_from: "example.org", registration_notification_type: "headline" });
  assert.match(watcherMessages(o2, account, "guard.example.org")[0]!, /^<message type='headline' from='example.org' to='admin@example.org'>/);
  assert.deepEqual(watcherMessages(options({}), account, "guard.example.org"), []);
});

test("XEP-0114 handshake: lower-case hex SHA-1 of stream id + secret", () => {
  // FIPS 180 test vector: SHA-1("abc").
  assert.equal(componentHandshake("a", "bc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert.match(componentHandshake("3BF96D32", "sesame"), /^[0-9a-f]{40}$/);
});
