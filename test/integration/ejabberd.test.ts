// A second real backend: ejabberd 23.01 (Debian package) behind xmpp-guard
// with PROXY protocol v2. Clients register and log in through the proxy and
// exchange messages as they do with Prosody, and ejabberd's own view of each
// session (connected_users_info) shows the address the PROXY header carried:
// the client's own source port (not the proxy's), and for a session that came
// through a trusted balancer, the balancer's client address.

import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { encodeProxyV2 } from "../../src/net/proxy-protocol.js";
import { startEjabberd, type EjabberdInstance } from "../helpers/ejabberd.js";
import { CLIENT_HEADER, rawClient } from "../helpers/raw-client.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";

describe("real ejabberd behind xmpp-guard (PROXY v2)", () => {
  let ejabberd: EjabberdInstance;
  let proxy: RunningProxy;
  let port: number;
  let lbPort: number;
  const clients: TestClient[] = [];

  before(async () => {
    ejabberd = await startEjabberd();
    await ejabberd.register("alice", "alice-pw");
    proxy = await startProxy(configFromObject({
      listeners: [
        { name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${ejabberd.port}`, proxy_protocol: "v2" },
        // Behind a (simulated) L4 balancer that itself sends PROXY headers.
        { name: "lb", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${ejabberd.port}`, proxy_protocol: "v2", accept_proxy_from: ["127.0.0.0/8"] },
      ],
      admin: { listen: null },
      log: { level: "silent" },
    }), { logger: createLogger("silent") });
    port = proxy.listenerAddress("c2s")!.port;
    lbPort = proxy.listenerAddress("lb")!.port;
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await proxy?.shutdown(0);
    await ejabberd?.stop();
  });

  it("in-band registration (XEP-0077) through the proxy", async () => {
    const c = await rawClient(port);
    c.write(CLIENT_HEADER);
    await c.waitFor((t) => t.includes("</stream:features>"), 10_000);
    c.write("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>bob</username><password>bob-pw</password></query></iq>");
    const text = await c.waitFor((t) => /<iq [^>]*id=.reg1./.test(t), 10_000);
    assert.match(text, /<iq[^>]*type=.result.[^>]*id=.reg1.|<iq[^>]*id=.reg1.[^>]*type=.result./, text.slice(-400));
    c.destroy();
  });

  it("clients log in through the proxy (SCRAM and PLAIN) and exchange messages both ways", async () => {
    const alice = await connectClient({ host: "127.0.0.1", port, domain: ejabberd.domain, username: "alice", password: "alice-pw" });
    clients.push(alice);
    const bob = await connectClient({ host: "127.0.0.1", port, domain: ejabberd.domain, username: "bob", password: "bob-pw", mechanism: "PLAIN" });
    clients.push(bob);
    assert.match(alice.jid, /^alice@localhost\/.+/);
    const isBody = (text: string) => (el: XmlElement) => el.is("message") && el.getChildText("body") === text;
    for (let i = 0; i < 20; i++) {
      await alice.send(xml("message", { to: bob.jid, type: "chat" }, xml("body", {}, `a→b ${i}`)));
      await bob.send(xml("message", { to: alice.jid, type: "chat" }, xml("body", {}, `b→a ${i}`)));
    }
    for (let i = 0; i < 20; i++) {
      await bob.waitFor(isBody(`a→b ${i}`), 10_000);
      await alice.waitFor(isBody(`b→a ${i}`), 10_000);
    }
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });

  it("ejabberd sees the client's own address and port from the PROXY v2 header, not the proxy's", async () => {
    const carol = await connectClient({ host: "127.0.0.1", port, domain: ejabberd.domain, username: "alice", password: "alice-pw", resource: "proxy-check" });
    clients.push(carol);
    const sock = carol.xmpp.socket as unknown as Socket;
    const clientPort = sock.localPort;
    assert.ok(typeof clientPort === "number" && clientPort > 0);
    const users = await ejabberd.connectedUsersInfo();
    const me = users.find((u) => u.jid === carol.jid || u.resource === "proxy-check");
    assert.ok(me, `carol in connected_users_info: ${JSON.stringify(users)}`);
    assert.match(String(me.ip), /^(::ffff:)?127\.0\.0\.1$/);
    assert.equal(Number(me.port), clientPort, "ejabberd reports the client's source port, carried by the PROXY header");
  });

  it("through a trusted balancer: the balancer's client address reaches ejabberd's session view", async () => {
    const c = await rawClient(lbPort);
    c.write(Buffer.concat([encodeProxyV2({ address: "203.0.113.77", port: 40404 }, { address: "198.51.100.1", port: 5222 }), Buffer.from(CLIENT_HEADER)]));
    await c.waitFor((t) => t.includes("</stream:features>"), 10_000);
    c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0alice-pw").toString("base64")}</auth>`);
    await c.waitFor((t) => t.includes("<success"), 10_000);
    c.write(CLIENT_HEADER);
    await c.waitFor((t) => (t.match(/<\/stream:features>/g) ?? []).length >= 2, 10_000);
    c.write("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>via-lb</resource></bind></iq>");
    await c.waitFor((t) => /id=.bind1./.test(t) && t.includes("via-lb</jid>"), 10_000);
    const users = await ejabberd.connectedUsersInfo();
    const me = users.find((u) => u.resource === "via-lb");
    assert.ok(me, `via-lb in connected_users_info: ${JSON.stringify(users)}`);
    assert.match(String(me.ip), /^(::ffff:)?203\.0\.113\.77$/);
    assert.equal(Number(me.port), 40404);
    c.write("</stream:stream>");
    await c.closed(10_000);
  });
});
