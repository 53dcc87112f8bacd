// MUC flood limits at the edge with a real Prosody MUC behind the proxy:
// a flooder is bounced with mod_muc_limits' error while another occupant
// keeps talking (per-occupant bucket first), exempt affiliations learned from
// the server's presence pass, over-long nicks and bodies bounce, and the
// proxy's metrics say why.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";

const MUC = "http://jabber.org/protocol/muc";
const ROOM = "lobby@conference.localhost";

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

describe("MUC flood limits through the proxy, real Prosody MUC", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  const clients: Record<string, TestClient> = {};

  const join = async (who: string, nick: string): Promise<void> => {
    const c = clients[who]!;
    await c.send(xml("presence", { to: `${ROOM}/${nick}` }, xml("x", { xmlns: MUC })));
    await c.waitFor((el) => el.is("presence") && el.attrs.from === `${ROOM}/${nick}` && el.getChild("x", `${MUC}#user`)?.getChildren("status").some((s) => s.attrs.code === "110") === true, 5000);
  };
  const say = (who: string, body: string, id: string) =>
    clients[who]!.send(xml("message", { to: ROOM, type: "groupchat", id }, xml("body", {}, body)));
  const bounced = (id: string) => (el: XmlElement): boolean => el.is("message") && el.attrs.id === id && el.attrs.type === "error";

  before(async () => {
    prosody = await startProsody();
    for (const u of ["owner", "flooder", "calm"]) await prosody.createUser(u, `${u}-pw`);
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      muc_limits: {
        hosts: ["conference.localhost"],
        event_rate: 2, burst_factor: 5, // room: 10 at once, then 2/s
        per_occupant: { event_rate: 0.5, burst_factor: 4 }, // each occupant: 2 at once, then 1 per 2 s
        exempt_affiliations: ["owner", "admin"],
        max_nick_length: 10,
      },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    const port = proxy.listenerAddress("c2s")!.port;
    for (const u of ["owner", "flooder", "calm"]) {
      clients[u] = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN" });
    }
    await join("owner", "boss"); // creates the room: owner affiliation, learned from the server's presence
    await join("flooder", "flood");
    await join("calm", "calm");
  });

  after(async () => {
    await Promise.all(Object.values(clients).map((c) => c.stop()));
    await proxy?.shutdown(0);
    await prosody?.stop();
  });

  it("a flooder is bounced with mod_muc_limits' error; a calm occupant is not", async () => {
    for (let i = 0; i < 6; i++) await say("flooder", `flood ${i}`, `f${i}`);
    const err = await clients.flooder!.waitFor(bounced("f5"));
    const e = err.getChild("error")!;
    assert.equal(e.attrs.type, "wait");
    assert.ok(e.getChild("policy-violation", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    assert.match(e.getChildText("text", "urn:ietf:params:xml:ns:xmpp-stanzas") ?? "", /overactive/);
    assert.equal(err.attrs.from, ROOM);
    // The room's bucket was not drained by the flooder: the calm occupant still gets through.
    await say("calm", "hello everyone", "c1");
    await clients.owner!.waitFor((el) => el.is("message") && el.attrs.from === `${ROOM}/calm` && el.getChildText("body") === "hello everyone");
    assert.ok(await metric(proxy, "xmpp_guard_muc_limited_total", { reason: "rate", bucket: "occupant" }) >= 1);
  });

  it("the owner (exempt, learned from the server) is never limited", async () => {
    for (let i = 0; i < 15; i++) await say("owner", `announcement ${i}`, `o${i}`);
    const seen = await clients.calm!.collect((el) => el.is("message") && el.attrs.from === `${ROOM}/boss` && (el.getChildText("body") ?? "").startsWith("announcement"), 15, 10_000);
    assert.equal(seen.length, 15);
  });

  it("an over-long nick and an over-long body are bounced before the server sees them", async () => {
    const c = clients.calm!;
    await c.send(xml("presence", { to: `${ROOM}/${"n".repeat(20)}`, id: "nick1" }));
    const nickErr = await c.waitFor((el) => el.is("presence") && el.attrs.id === "nick1" && el.attrs.type === "error");
    assert.ok(nickErr.getChild("error")!.getChild("policy-violation"));
    assert.ok(await metric(proxy, "xmpp_guard_muc_limited_total", { reason: "nick" }) >= 1);
    await say("calm", "x".repeat(6000), "long1");
    const bodyErr = await c.waitFor(bounced("long1"));
    assert.ok(bodyErr.getChild("error")!.getChild("policy-violation"));
    assert.ok(await metric(proxy, "xmpp_guard_muc_limited_total", { reason: "chars" }) >= 1);
    assert.ok(await metric(proxy, "xmpp_guard_muc_tracked", { kind: "rooms" }) >= 1);
  });
});
