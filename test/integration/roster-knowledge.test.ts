// Learned rosters through a real Prosody (docs/knowledge.md). Alice and Bob
// log in through the proxy, fetch their rosters and become contacts
// (subscribe/subscribed both ways); a rule file passes stanzas from those the
// recipient is subscribed to and bounces every other message on ::deliver:
// Bob's headline reaches Alice, a stranger's is bounced with policy-violation.
// The proxy is then restarted on the same SQLite file: Alice, who logs in
// again and asks for her roster with the version she holds (so the server
// sends no roster at all), still gets Bob's messages and not the stranger's.
// Attacker twins: a stranger who sends Alice forged roster pushes (plain and
// prefixed) and subscription presence is still a stranger; a roster get with
// a version the proxy holds no copy of reaches the server without it.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { haveProsody, startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";

const NS_ROSTER = "jabber:iq:roster";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const skip = haveProsody() ? false : "prosody not installed";

const RULES = `
::deliver
# Stanzas from those the recipient is subscribed to pass.
SUBSCRIBED?
PASS.

# Errors pass: a bounce must reach whoever sent the message.
TYPE: error
PASS.

# Any other message is bounced.
KIND: message
BOUNCE=policy-violation (Only contacts may write here)
`;

async function metric(p: RunningProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

describe("learned rosters through the proxy, with a real Prosody", { skip }, () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy | undefined;
  let dir: string;
  let statePath: string;
  let rulesPath: string;
  const clients: TestClient[] = [];
  let port = 0;
  /** The last roster version each user saw, by username. */
  const lastVer = new Map<string, string>();

  const start = async (): Promise<void> => {
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      firewall: { scripts: [rulesPath], watch: false },
      state: { path: statePath },
      admin: { listen: null },
    }), { logger: createLogger("error") });
    port = proxy.listenerAddress("c2s")!.port;
  };
  const viaProxy = async (u: string): Promise<TestClient> => {
    const c = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN" });
    clients.push(c);
    return c;
  };
  const direct = async (u: string): Promise<TestClient> => {
    const c = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN" });
    clients.push(c);
    return c;
  };
  const rosterGet = async (c: TestClient, id: string, ver?: string): Promise<XmlElement> => {
    await c.send(xml("iq", { type: "get", id }, xml("query", { xmlns: NS_ROSTER, ...(ver === undefined ? {} : { ver }) })));
    return c.waitFor((el) => el.is("iq") && el.attrs.id === id && el.attrs.type !== "get");
  };
  /** Waits for the push that shows `contact` with `subscription` in `c`'s roster (and records its version). */
  const pushShows = async (c: TestClient, user: string, contact: string, subscription: string): Promise<void> => {
    const push = await c.waitFor((el) => {
      const item = el.is("iq") && el.attrs.type === "set" && el.attrs.from === undefined ? el.getChild("query", NS_ROSTER)?.getChild("item") : undefined;
      return item !== undefined && item.attrs.jid === contact && item.attrs.subscription === subscription && item.attrs.ask === undefined;
    });
    const ver = push.getChild("query", NS_ROSTER)?.attrs.ver;
    if (ver !== undefined) lastVer.set(user, ver);
  };
  const headline = (to: string, id: string, body: string) => xml("message", { to, type: "headline", id }, xml("body", {}, body));

  before(async () => {
    prosody = await startProsody();
    for (const u of ["alice", "bob", "eve", "mallory"]) await prosody.createUser(u, `${u}-pw`);
    dir = mkdtempSync(join(tmpdir(), "xg-roster-"));
    statePath = join(dir, "state.sqlite");
    rulesPath = join(dir, "contacts.pfw");
    writeFileSync(rulesPath, RULES);
    await start();
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await proxy?.shutdown(0);
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("contacts pass, a stranger's headline is bounced; forged pushes and presence make no contact", async () => {
    const alice = await viaProxy("alice");
    const bob = await viaProxy("bob");
    const eve = await direct("eve");
    const mallory = await direct("mallory");

    // A roster get with a version the proxy has no copy of reaches the server
    // without it: the server answers with the whole (empty) roster, where it
    // would otherwise answer "your version is current" with no payload.
    const first = await rosterGet(alice, "a-r1", "1");
    assert.equal(first.attrs.type, "result");
    const q = first.getChild("query", NS_ROSTER);
    assert.ok(q, "the whole roster came back: the ver was stripped");
    lastVer.set("alice", q.attrs.ver!);
    const bobs = await rosterGet(bob, "b-r1");
    lastVer.set("bob", bobs.getChild("query", NS_ROSTER)!.attrs.ver!);
    assert.ok(await metric(proxy!, "xmpp_guard_rosters_learned_total") >= 2);

    // Before they are contacts, Bob is a stranger too.
    await bob.send(headline(alice.jid, "pre", "not yet"));
    const pre = await bob.waitFor((el) => el.attrs.id === "pre" && el.attrs.type === "error");
    assert.ok(pre.getChild("error")?.getChild("policy-violation", STANZAS));

    // Attacker twins: forged pushes routed to Alice (plain, and with a prefix
    // the server serialises away), then subscription presence. (First: the
    // subscribe changes Alice's roster version without a push, and the
    // version she holds at the end must be the server's.)
    const ignoredBefore = await metric(proxy!, "xmpp_guard_roster_stanzas_ignored_total", { reason: "foreign-push" });
    const forged = (id: string) => xml("iq", { type: "set", id, to: alice.jid }, xml("query", { xmlns: NS_ROSTER }, xml("item", { jid: "mallory@localhost", subscription: "both" })));
    await mallory.send(forged("f1"));
    await mallory.send(xml("iq", { type: "set", id: "f2", to: alice.jid }, xml("r:query", { "xmlns:r": NS_ROSTER }, xml("r:item", { jid: "mallory@localhost", subscription: "both" }))));
    await alice.waitFor((el) => el.is("iq") && el.attrs.id === "f1");
    await alice.waitFor((el) => el.is("iq") && el.attrs.id === "f2");
    assert.equal(await metric(proxy!, "xmpp_guard_roster_stanzas_ignored_total", { reason: "foreign-push" }), ignoredBefore + 2);
    await mallory.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    await mallory.send(xml("presence", { to: "alice@localhost", type: "subscribe" }));
    await alice.waitFor((el) => el.is("presence") && el.attrs.type === "subscribe" && el.attrs.from?.startsWith("mallory@") === true);
    await mallory.send(headline(alice.jid, "h-mal", "trust me"));
    const refused = await mallory.waitFor((el) => el.attrs.id === "h-mal");
    assert.equal(refused.attrs.type, "error");
    assert.ok(refused.getChild("error")?.getChild("policy-violation", STANZAS));
    await assert.rejects(alice.waitFor((el) => el.is("message") && el.attrs.id === "h-mal", 300));

    // Subscribe both ways.
    await alice.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
    await bob.waitFor((el) => el.is("presence") && el.attrs.type === "subscribe" && el.attrs.from?.startsWith("alice@localhost") === true);
    await bob.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    await pushShows(alice, "alice", "bob@localhost", "to");
    await bob.send(xml("presence", { to: "alice@localhost", type: "subscribe" }));
    await alice.waitFor((el) => el.is("presence") && el.attrs.type === "subscribe" && el.attrs.from?.startsWith("bob@localhost") === true);
    await alice.send(xml("presence", { to: "bob@localhost", type: "subscribed" }));
    await pushShows(alice, "alice", "bob@localhost", "both");
    await pushShows(bob, "bob", "alice@localhost", "both");

    await bob.send(headline(alice.jid, "h-bob", "from a contact"));
    const got = await alice.waitFor((el) => el.is("message") && el.attrs.id === "h-bob");
    assert.equal(got.getChildText("body"), "from a contact");

    await eve.send(headline(alice.jid, "h-eve", "buy now"));
    const bounced = await eve.waitFor((el) => el.attrs.id === "h-eve");
    assert.equal(bounced.attrs.type, "error");
    assert.ok(bounced.getChild("error")?.getChild("policy-violation", STANZAS));
    assert.equal(bounced.getChild("error")?.getChildText("text", STANZAS), "Only contacts may write here");
  });

  it("after a restart on the same state file, a contact is still known without the roster being fetched again", async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await proxy!.shutdown(0);
    proxy = undefined;
    await start();
    const alice = await viaProxy("alice");
    const bob = await viaProxy("bob");
    const eve = await direct("eve");
    // No roster get yet: what the proxy knows comes from the state file.
    await bob.send(headline(alice.jid, "h-bob2", "still a contact"));
    assert.equal((await alice.waitFor((el) => el.is("message") && el.attrs.id === "h-bob2")).getChildText("body"), "still a contact");
    await eve.send(headline(alice.jid, "h-eve2", "buy now"));
    const bounced = await eve.waitFor((el) => el.attrs.id === "h-eve2");
    assert.ok(bounced.getChild("error")?.getChild("policy-violation", STANZAS));
    assert.ok(await metric(proxy!, "xmpp_guard_rosters_known") >= 2);

    // Alice holds the version the proxy learned last: the get keeps its ver,
    // and the server answers that it is current (no roster in the result).
    const again = await rosterGet(alice, "a-r2", lastVer.get("alice"));
    assert.equal(again.attrs.type, "result");
    assert.equal(again.getChild("query", NS_ROSTER), undefined, "the proxy kept the ver: no roster was sent");
    assert.equal(await metric(proxy!, "xmpp_guard_rosters_learned_total"), 0);
  });
});
