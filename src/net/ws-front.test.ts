import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { configFromObject } from "../config/load.js";
import { clientAddress, offersXmpp, originAllowed } from "./ws-front.js";

const options = configFromObject({
  listeners: [{ name: "web", type: "websocket", listen: "127.0.0.1:0", upstream: "127.0.0.1:15222", websocket: { trusted_proxies: ["10.0.0.0/8", "2001:db8::/32"] } }],
}).listeners[0]!.websocket!;

const req = (xff?: string | string[]): IncomingMessage => ({ headers: xff === undefined ? {} : { "x-forwarded-for": xff } }) as unknown as IncomingMessage;
const proxy = { address: "10.0.0.2", port: 40000 };

describe("websocket handshake helpers", () => {
  it("origins: exact, any case, or *", () => {
    assert.equal(originAllowed("https://Chat.Example.org", ["https://chat.example.org"]), true);
    assert.equal(originAllowed("https://chat.example.org:8443", ["https://chat.example.org"]), false);
    assert.equal(originAllowed("http://chat.example.org", ["https://chat.example.org"]), false);
    assert.equal(originAllowed("null", ["*"]), true);
  });

  it("the xmpp subprotocol among those offered", () => {
    assert.equal(offersXmpp("xmpp"), true);
    assert.equal(offersXmpp("mqtt, xmpp"), true);
    assert.equal(offersXmpp("mqtt,xmpp "), true);
    assert.equal(offersXmpp("XMPP"), false);
    assert.equal(offersXmpp("xmpp-ish"), false);
    assert.equal(offersXmpp(undefined), false);
  });

  it("X-Forwarded-For: believed from trusted proxies only, read from the right past other trusted proxies", () => {
    assert.deepEqual(clientAddress(req("203.0.113.7"), { address: "198.51.100.9", port: 1 }, options), { address: "198.51.100.9", port: 1 });
    assert.deepEqual(clientAddress(req(), proxy, options), proxy);
    assert.deepEqual(clientAddress(req("203.0.113.7"), proxy, options), { address: "203.0.113.7", port: 0 });
    assert.deepEqual(clientAddress(req("1.2.3.4, 203.0.113.7, 10.1.1.1"), proxy, options), { address: "203.0.113.7", port: 0 });
    assert.deepEqual(clientAddress(req(["1.2.3.4", "203.0.113.7"]), proxy, options), { address: "203.0.113.7", port: 0 });
    // Every hop trusted: the leftmost is the client.
    assert.deepEqual(clientAddress(req("10.9.9.9, 10.1.1.1"), proxy, options), { address: "10.9.9.9", port: 0 });
    assert.deepEqual(clientAddress(req("203.0.113.7:5555"), proxy, options), { address: "203.0.113.7", port: 0 });
    assert.deepEqual(clientAddress(req("[2001:db9::1]:5555"), proxy, options), { address: "2001:db9::1", port: 0 });
    assert.deepEqual(clientAddress(req("::ffff:203.0.113.7"), proxy, options), { address: "203.0.113.7", port: 0 });
    assert.equal(typeof clientAddress(req("unknown"), proxy, options), "string");
    assert.equal(typeof clientAddress(req("203.0.113.7, "), proxy, options), "string");
  });
});
