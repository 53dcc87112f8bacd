// knowledge.sessions with real parts: a real Prosody behind the proxy, rule
// files that use TO FULL JID? and SENT DIRECTED PRESENCE TO SENDER? on
// ::deliver. A message to an online full JID passes, one to a made-up
// resource (which Prosody delivers to the bare JID's resources) is bounced;
// a stranger's reply passes only while the recipient's directed presence to
// it stands. Attacker twins: every XML form of the directed presence counts
// the same; a forged `from` on presence plants nothing; a client's own bind
// result or presence `from` never makes a JID online.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";
import { eventually } from "../helpers/raw-client.js";
import { openRawStream, rawLogin, type RawSession } from "../helpers/raw-session.js";
import { FORMS, writeAs, type Form } from "../helpers/stanza-forms.js";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

// Only messages whose body starts with "fj" or "dp" are judged, so the
// sessions' own traffic (roster, presence, pings, markers) is left alone.
const RULES = `
::preroute
KIND: message
INSPECT: body#~=^pr
TO FULL JID?
PASS.

KIND: message
INSPECT: body#~=^pr
BOUNCE=item-not-found (No such session)

::deliver
KIND: message
INSPECT: body#~=^fj
TO FULL JID?
PASS.

KIND: message
INSPECT: body#~=^fj
BOUNCE=item-not-found (No such session)

KIND: message
INSPECT: body#~=^dp
SENT DIRECTED PRESENCE TO SENDER?
PASS.

KIND: message
INSPECT: body#~=^dp
DROP.
`;

describe("session directory and directed presence through the proxy, with a real Prosody", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let dir: string;
  let port: number;
  const direct = (u: string): Promise<TestClient> => connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN" });
  const viaProxy = (u: string, form: Form): Promise<RawSession> => rawLogin(port, { domain: "localhost", username: u, password: `${u}-pw`, resource: form, form });

  before(async () => {
    prosody = await startProsody({ extraModules: ["smacks"] });
    for (const u of ["alice", "bob", "dave", "mallory", "erin", ...FORMS.map((f) => `carol-${f}`)]) await prosody.createUser(u, `${u}-pw`);
    dir = mkdtempSync(join(tmpdir(), "xg-kn-"));
    const rules = join(dir, "knowledge.pfw");
    writeFileSync(rules, RULES);
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      firewall: { scripts: [rules], watch: false },
      admin: { listen: null },
    }), { logger: createLogger(process.env["KN_DEBUG"] ? "debug" : "warn") });
    port = proxy.listenerAddress("c2s")!.port;
  });

  after(async () => {
    await proxy?.shutdown(0);
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const chat = (to: string, body: string, id: string): XmlElement => xml("message", { to, type: "chat", id }, xml("body", {}, body));

  describe("TO FULL JID?", () => {
    let alice: TestClient;
    let bob: TestClient;
    before(async () => {
      alice = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: "alice", password: "alice-pw", mechanism: "PLAIN", resource: "phone" });
      bob = await direct("bob");
    });
    after(async () => {
      await Promise.all([alice?.stop(), bob?.stop()]);
    });

    /** Bob's message to `to` (delivered to Alice's session): "delivered" or the bounce's condition. */
    const outcome = async (to: string, id: string, receiver: TestClient = alice): Promise<string> => {
      await bob.send(chat(to, `fj ${id}`, id));
      const got = await Promise.race([
        receiver.waitFor((el) => el.is("message") && el.attrs.id === id, 5000).then(() => "delivered"),
        bob.waitFor((el) => el.is("message") && el.attrs.id === id && el.attrs.type === "error", 5000).then((el) => {
          const e = el.getChild("error")!;
          return `${e.attrs.type}/${e.children.map((c) => (typeof c === "string" ? "" : (c as XmlElement).name)).filter((n) => n !== "" && n !== "text").join(",")} ${e.getChildText("text", STANZAS)}`;
        }),
      ]);
      return got;
    };

    it("a message to the online full JID passes; to a made-up resource it is bounced", async () => {
      assert.equal(alice.jid, "alice@localhost/phone");
      assert.equal(await outcome(alice.jid, "fj-1"), "delivered");
      assert.equal(await outcome("alice@localhost/madeup", "fj-2"), "cancel/item-not-found No such session");
    });

    for (const form of FORMS) {
      it(`attacker, ${form}: a client's own bind result or presence from never makes a JID online`, async () => {
        const m = await viaProxy("mallory", form);
        try {
          m.send(writeAs(form, `<iq type='result' id='fake-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/ghost-${form}</jid></bind></iq>`));
          m.send(writeAs(form, `<presence/>`, { from: `alice@localhost/ghost-${form}` }));
          m.send(writeAs(form, `<presence to='alice@localhost'/>`, { from: `alice@localhost/ghost-${form}` }));
          await m.sync();
          assert.equal(await outcome(`alice@localhost/ghost-${form}`, `fj-ghost-${form}`), "cancel/item-not-found No such session");
          // Mallory's own bound JID is online, not the one it wrote.
          assert.equal(proxy.sessions({}).some((s) => s.jid === m.jid), true);
        } finally {
          m.stop();
        }
      });
    }

    it("after the session ends, its full JID is offline", async () => {
      const second = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: "alice", password: "alice-pw", mechanism: "PLAIN", resource: "tablet" });
      assert.equal(await outcome(second.jid, "fj-3", second), "delivered");
      await second.stop();
      await eventually(() => !proxy.sessions({}).some((s) => s.jid === "alice@localhost/tablet"), 5000, "tablet session gone");
      assert.equal(await outcome("alice@localhost/tablet", "fj-4"), "cancel/item-not-found No such session");
    });
  });

  describe("SENT DIRECTED PRESENCE TO SENDER?", () => {
    let dave: TestClient;
    before(async () => {
      dave = await direct("dave");
    });
    after(async () => {
      await dave?.stop();
    });

    /** Which of Dave's "dp" messages reached `carol`: sends them, then a marker that no rule judges. */
    const reached = async (carol: RawSession, ids: string[]): Promise<string[]> => {
      for (const id of ids) await dave.send(chat(carol.jid, `dp ${id}`, id));
      const marker = `marker-${Math.random().toString(36).slice(2)}`;
      await dave.send(chat(carol.jid, "marker", marker));
      await carol.waitFor((el) => el.name === "message" && el.attrs.id === marker, 5000);
      return carol.take((el) => el.name === "message" && ids.includes(String(el.attrs.id))).map((el) => String(el.attrs.id));
    };

    for (const form of FORMS) {
      it(`${form}: a stranger's reply passes while the directed presence stands; a forged from plants nothing`, async () => {
        const carol = await viaProxy(`carol-${form}`, form);
        const mallory = await viaProxy("mallory", form);
        try {
          assert.deepEqual(await reached(carol, [`dp-${form}-0`]), [], "no directed presence yet: dropped");

          carol.send(writeAs(form, `<presence to='${dave.jid}'><status>hello</status></presence>`));
          await dave.waitFor((el) => el.is("presence") && el.attrs.from === carol.jid && el.attrs.type === undefined);
          assert.deepEqual(await reached(carol, [`dp-${form}-1`]), [`dp-${form}-1`]);

          carol.send(writeAs(form, `<presence to='${dave.jid}' type='unavailable'/>`));
          await dave.waitFor((el) => el.is("presence") && el.attrs.from === carol.jid && el.attrs.type === "unavailable");
          assert.deepEqual(await reached(carol, [`dp-${form}-2`]), [], "after the directed unavailable: dropped");

          // Mallory writes Carol's JID in from: the server stamps Mallory's, and so does the directory.
          mallory.send(writeAs(form, `<presence to='${dave.jid}'/>`, { from: carol.jid }));
          await dave.waitFor((el) => el.is("presence") && el.attrs.from === mallory.jid);
          assert.deepEqual(await reached(carol, [`dp-${form}-3`]), [], "a forged from planted nothing for Carol");

          // Directed presence, then broadcast unavailable: every directed presence ends.
          carol.send(writeAs(form, `<presence to='${dave.jid}'/>`));
          await dave.waitFor((el) => el.is("presence") && el.attrs.from === carol.jid && el.attrs.type === undefined);
          assert.deepEqual(await reached(carol, [`dp-${form}-4`]), [`dp-${form}-4`]);
          carol.send(writeAs(form, `<presence type='unavailable'/>`));
          await dave.waitFor((el) => el.is("presence") && el.attrs.from === carol.jid && el.attrs.type === "unavailable");
          assert.deepEqual(await reached(carol, [`dp-${form}-5`]), []);
        } finally {
          carol.stop();
          mallory.stop();
        }
      });
    }
  });

  describe("XEP-0198: a session the server keeps for resumption", () => {
    const SM = "urn:xmpp:sm:3";
    const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
    // Bob without stream management: a bounce the proxy writes is a stanza
    // the server never sent, and a client that counts and acks it is told
    // off by the server ("acknowledged more stanzas than sent").
    let bob: RawSession;
    before(async () => {
      bob = await rawLogin(port, { domain: "localhost", username: "bob", password: "bob-pw", resource: "sm-sender" });
    });
    after(() => {
      bob?.stop();
    });

    /** Bob's "pr" message (judged in preroute on Bob's session): "passed" or the bounce text. */
    const judged = async (to: string, id: string): Promise<string> => {
      bob.send(`<message to='${to}' type='chat' id='${id}'><body>pr ${id}</body></message>`);
      // A ping after it: any bounce of the message is in Bob's inbox once the answer is.
      await bob.sync();
      const bounced = bob.take((el) => el.name === "message" && el.attrs.id === id && el.attrs.type === "error");
      return bounced.length === 0 ? "passed" : (bounced[0]!.getChild("error")?.getChildText("text", STANZAS) ?? "error");
    };

    it("online while hibernating after a lost connection, online again once resumed, offline after a clean close", async () => {
      const erin = await rawLogin(port, { domain: "localhost", username: "erin", password: "erin-pw", resource: "sm", presence: true });
      erin.send(`<enable xmlns='${SM}' resume='true'/>`);
      const enabled = await erin.waitFor((el) => el.name === "enabled" && el.attrs.xmlns === SM);
      const previd = String(enabled.attrs.id);
      assert.equal(await judged(erin.jid, "sm-1"), "passed");

      // The connection is lost (a reset): the server keeps the session, so it stays online.
      erin.raw.socket.resetAndDestroy();
      await eventually(() => !proxy.sessions({}).some((x) => x.jid === erin.jid), 5000, "erin's connection gone");
      assert.equal(await judged(erin.jid, "sm-2"), "passed", "hibernating: the server queues it");
      assert.equal(await judged("erin@localhost/other", "sm-x"), "No such session");

      // Resumed on a new connection: the queued message arrives there, and the JID is online.
      const again = await openRawStream(port, { domain: "localhost" });
      try {
        const isFeatures = (el: XmlElement | { name: string }): boolean => el.name === "stream:features";
        await again.waitFor(isFeatures);
        again.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${Buffer.from("\0erin\0erin-pw").toString("base64")}</auth>`);
        await again.waitFor((el) => el.name === "success");
        again.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
        await again.waitFor(isFeatures);
        again.send(`<resume xmlns='${SM}' previd='${previd}' h='0'/>`);
        await again.waitFor((el) => el.name === "resumed" && el.attrs.xmlns === SM);
        await again.waitFor((el) => el.name === "message" && el.attrs.id === "sm-2");
        await eventually(() => proxy.sessions({}).some((x) => x.jid === erin.jid), 5000, "the resumed session known by its JID");
        assert.equal(await judged(erin.jid, "sm-3"), "passed");
        await again.waitFor((el) => el.name === "message" && el.attrs.id === "sm-3");

        // A clean close ends the server's session: offline at once.
        again.send("</stream:stream>");
        await again.closed();
        await eventually(() => !proxy.sessions({}).some((x) => x.jid === erin.jid), 5000, "erin's second connection gone");
        assert.equal(await judged(erin.jid, "sm-4"), "No such session");
      } finally {
        again.stop();
      }
    });
  });
});
