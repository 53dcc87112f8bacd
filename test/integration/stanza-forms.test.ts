// The premise of the attacker-form twins, checked against a real Prosody with
// no proxy in between: a message, a directed presence and an iq written in
// each form of test/helpers/stanza-forms.ts are the same stanza to the
// server. Each form's sender also writes a forged `from`, which Prosody
// replaces with the sender's bound JID in every form, the explicit-namespace
// one included. A bind request whose <bind/> is written with a prefix binds
// a resource like any other.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { rawLogin, type RawSession } from "../helpers/raw-session.js";
import { FORMS, writeAs } from "../helpers/stanza-forms.js";
import { connectClient, type TestClient } from "../helpers/xmpp-client.js";

const CHATSTATES = "http://jabber.org/protocol/chatstates";

describe("stanza forms through a real Prosody (no proxy)", () => {
  let prosody: ProsodyInstance;
  let receiver: TestClient;
  const senders: RawSession[] = [];

  before(async () => {
    prosody = await startProsody();
    await prosody.createUser("sender", "sender-pw");
    await prosody.createUser("receiver", "receiver-pw");
    await prosody.createUser("victim", "victim-pw");
    receiver = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: "receiver", password: "receiver-pw", mechanism: "PLAIN" });
  });

  after(async () => {
    for (const s of senders) s.stop();
    await receiver?.stop();
    await prosody?.stop();
  });

  for (const form of FORMS) {
    it(`${form}: message, directed presence and iq arrive as the same stanzas, from the bound JID whatever 'from' says`, async () => {
      const s = await rawLogin(prosody.port, { domain: "localhost", username: "sender", password: "sender-pw", resource: form, form });
      senders.push(s);
      const forged = { from: "victim@localhost/elsewhere" };
      s.send(writeAs(form, `<message to='${receiver.jid}' type='chat' id='m-${form}'><body>hello &amp; welcome</body><thread>t-${form}</thread><active xmlns='${CHATSTATES}'/></message>`, forged));
      const msg = await receiver.waitFor((el) => el.is("message") && el.attrs.id === `m-${form}`);
      assert.equal(msg.attrs.from, s.jid);
      assert.equal(msg.attrs.type, "chat");
      assert.equal(msg.getChildText("body"), "hello & welcome");
      assert.equal(msg.getChildText("thread"), `t-${form}`);
      assert.ok(msg.getChild("active", CHATSTATES));

      s.send(writeAs(form, `<presence to='${receiver.jid}' id='p-${form}'><status>here</status></presence>`, forged));
      const pres = await receiver.waitFor((el) => el.is("presence") && el.attrs.id === `p-${form}`);
      assert.equal(pres.attrs.from, s.jid);
      assert.equal(pres.getChildText("status"), "here");

      s.send(writeAs(form, `<iq type='get' to='localhost' id='i-${form}'><ping xmlns='urn:xmpp:ping'/></iq>`, forged));
      const pong = await s.waitFor((el) => el.name === "iq" && el.attrs.id === `i-${form}`);
      assert.equal(pong.attrs.type, "result");
      // The reply goes to the real sender, not to the forged one.
      assert.equal(pong.attrs.to, s.jid);
      assert.deepEqual(receiver.errors, []);
    });
  }

  it("a bind request with a prefixed <b:bind/> binds the resource as usual", async () => {
    const s = await rawLogin(prosody.port, { domain: "localhost", username: "sender", password: "sender-pw", resource: "b-prefix", prefixedBind: true });
    senders.push(s);
    assert.equal(s.jid, "sender@localhost/b-prefix");
    s.send(`<message to='${receiver.jid}' type='chat' id='after-bind'><body>bound</body></message>`);
    assert.equal((await receiver.waitFor((el) => el.is("message") && el.attrs.id === "after-bind")).attrs.from, s.jid);
  });
});
