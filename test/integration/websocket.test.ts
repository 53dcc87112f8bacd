// The websocket listener against a scripted upstream, byte for byte: what
// the server receives for each RFC 7395 message, what the client receives
// for each frame the server sends, and everything the endpoint refuses
// (framing mistakes, WebSocket faults, handshakes from the wrong origin or
// without the xmpp subprotocol) with what reaches the server then: nothing
// of the bad message, and for a refused handshake not even a connection.
// Also: plain HTTP answers, the client's address (X-Forwarded-For from a
// trusted proxy, a PROXY header before HTTP) in the PROXY header sent
// upstream, per-IP caps, pings, wss with SNI, shaping, backpressure, reload.
// The real-server proof (logins, firewall, MUC limits) is in
// websocket-prosody.test.ts.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocket } from "ws";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { generateSelfSigned } from "../../src/net/gen-cert.js";
import { encodeProxyV1 } from "../../src/net/proxy-protocol.js";
import { FEATURES, startFakeUpstream, type FakeUpstream, type UpstreamConn } from "../helpers/fake-upstream.js";
import { eventually } from "../helpers/raw-client.js";
import { connectStream, connectWs, NS_FRAMING, openMessage, wsStream, type WsStream } from "../helpers/ws-session.js";

const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
const OPEN = openMessage("localhost");
const CLOSE = `<close xmlns='${NS_FRAMING}'/>`;

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

let upstream: FakeUpstream;
const proxies: RunningProxy[] = [];
const streams: WsStream[] = [];

before(async () => {
  upstream = await startFakeUpstream();
});

after(async () => {
  for (const s of streams) s.stop();
  await Promise.all(proxies.map((p) => p.shutdown(0)));
  await upstream.close();
});

/** A proxy with one websocket listener ("web") in front of the fake upstream. */
async function webProxy(extra: Record<string, unknown> = {}, listener: Record<string, unknown> = {}): Promise<{ proxy: RunningProxy; url: string; port: number }> {
  const proxy = await startProxy(configFromObject({
    listeners: [{ name: "web", type: "websocket", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstream.port}`, ...listener }],
    admin: { listen: null },
    log: { level: "silent" },
    ...extra,
  }), { logger: createLogger("silent") });
  proxies.push(proxy);
  const port = proxy.listenerAddress("web")!.port;
  return { proxy, url: `ws://127.0.0.1:${port}/xmpp-websocket`, port };
}

/** Open a stream: <open/> sent, the upstream connection and the client's <open/> and features received. */
async function opened(url: string, options = {}): Promise<{ s: WsStream; conn: UpstreamConn }> {
  const s = await connectStream(url, ["xmpp"], options);
  streams.push(s);
  s.send(OPEN);
  const conn = await upstream.nextConn();
  await s.waitFor((el) => el.name === "stream:features");
  return { s, conn };
}

let web: { proxy: RunningProxy; url: string; port: number };

describe("websocket listener, scripted upstream", () => {
  before(async () => {
    web = await webProxy({ max_stanza_size: 4096 });
  });

  it("the server receives a c2s stream: a header for <open/>, each message's bytes as sent, the end tag for <close/>", async () => {
    const { s, conn } = await opened(web.url);
    const stanzas = [
      "<message xmlns='jabber:client' to='a@localhost' type='chat'><body>é &amp; \u{1F600}</body></message>",
      "<c:presence xmlns:c='jabber:client'><c:show>away</c:show></c:presence>",
      "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
    ];
    for (const m of stanzas) s.send(m);
    s.send(` ${CLOSE}\n`);
    await eventually(() => conn.text().endsWith("</stream:stream>"), 5000, "the end tag upstream");
    assert.equal(conn.text(), HEADER + stanzas.join("") + "</stream:stream>");
    // The client: the header as <open/>, features that stand alone, then the close.
    conn.socket.end(" \n<message from='b@localhost'><body>x</body></message></stream:stream>");
    const closed = await s.closed();
    assert.deepEqual(s.messages, [
      `<open xmlns='${NS_FRAMING}' from='localhost' id='s1' version='1.0'/>`,
      FEATURES.replace("<stream:features>", "<stream:features xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"),
      "<message xmlns='jabber:client' from='b@localhost'><body>x</body></message>",
      CLOSE,
    ]);
    assert.equal(closed.code, 1000);
  });

  it("a WebSocket gone with the stream open is a broken connection: the upstream is dropped without an end tag (the server may keep the session to resume)", async () => {
    for (const leave of [(s: WsStream) => s.ws.close(1001), (s: WsStream) => s.ws.terminate()]) {
      const { s, conn } = await opened(web.url);
      s.send("<presence xmlns='jabber:client'/>");
      await eventually(() => conn.text().endsWith("<presence xmlns='jabber:client'/>"), 5000, "presence upstream");
      leave(s);
      await eventually(() => conn.ended || conn.socket.destroyed, 5000, "upstream dropped");
      assert.equal(conn.text(), `${HEADER}<presence xmlns='jabber:client'/>`);
    }
  });

  it("a message that is not exactly one element ends the stream with not-well-formed; nothing of it reaches the server", async () => {
    const bad = [
      "<message xmlns='jabber:client' to='a@localhost'/><message xmlns='jabber:client' to='b@localhost'/>",
      "<message xmlns='jabber:client' to='a@localhost'><body>split",
      OPEN,
      `<open xmlns='${NS_FRAMING}' to='localhost'/><presence/>`,
    ];
    for (const m of bad) {
      const { s, conn } = await opened(web.url);
      s.send("<presence xmlns='jabber:client'/>");
      s.send(m);
      if (m.endsWith("split")) s.send("</body></message>");
      const closed = await s.closed();
      assert.equal(closed.code, 1000, m);
      const error = s.messages.find((x) => x.startsWith("<stream:error"));
      assert.match(error ?? "", /<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/, m);
      assert.equal(s.messages.at(-1), CLOSE, m);
      await eventually(() => conn.ended, 5000, "upstream closed");
      assert.equal(conn.text(), `${HEADER}<presence xmlns='jabber:client'/></stream:stream>`, m);
    }
    assert.ok(await metric(web.proxy, "xmpp_guard_framing_errors_total", { listener: "web", code: "XPX_ERR_WS_FRAMING" }) >= 3);
  });

  it("WebSocket faults close with their RFC 6455 code: binary 1003, oversized 1009, bad UTF-8 1007; nothing of them reaches the server", async () => {
    const cases: Array<[string, (s: WsStream) => void, number, string]> = [
      ["binary", (s) => s.sendBinary(Buffer.from("<message xmlns='jabber:client' to='a@localhost'/>")), 1003, "XPX_ERR_WS_BINARY"],
      ["oversized", (s) => s.send(`<message xmlns='jabber:client' to='a@localhost'><body>${"x".repeat(5000)}</body></message>`), 1009, "XPX_ERR_WS_MESSAGE_TOO_BIG"],
      ["bad UTF-8", (s) => s.ws.send(Buffer.from([0x3c, 0x61, 0xff, 0xfe, 0x2f, 0x3e]), { binary: false }), 1007, "XPX_ERR_WS_INVALID_UTF8"],
    ];
    for (const [what, send, code, errorCode] of cases) {
      const before = await metric(web.proxy, "xmpp_guard_framing_errors_total", { listener: "web", code: errorCode });
      const { s, conn } = await opened(web.url);
      send(s);
      assert.equal((await s.closed()).code, code, what);
      await eventually(() => conn.ended, 5000, `${what}: upstream closed`);
      assert.equal(conn.text(), `${HEADER}</stream:stream>`, what);
      assert.equal(await metric(web.proxy, "xmpp_guard_framing_errors_total", { listener: "web", code: errorCode }) - before, 1, what);
    }
    // An exact max_stanza_size message still passes.
    const { s, conn } = await opened(web.url);
    const head = "<message xmlns='jabber:client' to='a@localhost'><body>";
    const tail = "</body></message>";
    const exact = head + "y".repeat(4096 - head.length - tail.length) + tail;
    s.send(exact);
    await eventually(() => conn.text().endsWith(tail), 5000, "the largest message upstream");
    assert.equal(conn.text(), HEADER + exact);
  });

  it("handshakes refused with an HTTP status, the upstream never dialed: wrong origin 403, no xmpp subprotocol 400, another path 404", async () => {
    const p = await webProxy({}, { websocket: { allowed_origins: ["https://chat.example.org"] } });
    const dialed = upstream.conns.length;
    const refusals: Array<[string, Promise<WebSocket>, number, string]> = [
      ["origin", connectWs(p.url, ["xmpp"], { origin: "https://evil.example" }), 403, "websocket_origin"],
      ["no subprotocol", connectWs(p.url, []), 400, "websocket_subprotocol"],
      ["another subprotocol", connectWs(p.url, ["mqtt"]), 400, "websocket_subprotocol"],
      ["path", connectWs(p.url.replace("/xmpp-websocket", "/ws"), ["xmpp"]), 404, "websocket_path"],
    ];
    for (const [what, attempt, status, reason] of refusals) {
      await assert.rejects(attempt, (err: Error & { status?: number }) => err.status === status, what);
      assert.ok(await metric(p.proxy, "xmpp_guard_connections_refused_total", { listener: "web", reason }) >= 1, what);
    }
    assert.equal(upstream.conns.length, dialed, "no refused handshake reached the server");
    // The allowed origin (any case), and no Origin at all (not a browser), are let in.
    for (const origin of ["https://chat.example.org", "HTTPS://Chat.Example.ORG", undefined]) {
      const { s } = await opened(p.url, origin === undefined ? {} : { origin });
      assert.equal(s.ws.protocol, "xmpp");
      s.stop();
    }
  });

  it("plain HTTP: GET of the endpoint is 426 with a line of text, HEAD the same without it, POST 405, another path 404", async () => {
    const base = web.url.replace("ws:", "http:");
    const get = await fetch(base);
    assert.equal(get.status, 426);
    assert.equal(get.headers.get("upgrade"), "websocket");
    assert.match(await get.text(), /XMPP over WebSocket endpoint \(RFC 7395\)/);
    const head = await fetch(`${base}?x=1`, { method: "HEAD" });
    assert.equal(head.status, 426);
    assert.equal(await head.text(), "");
    assert.equal((await fetch(base, { method: "POST", body: "x" })).status, 405);
    assert.equal((await fetch(base.replace("/xmpp-websocket", "/"))).status, 404);
  });

  it("the client's address: from X-Forwarded-For of a trusted proxy, else the connection's; in the PROXY header upstream", async () => {
    const p = await webProxy({}, { proxy_protocol: "v1", websocket: { trusted_proxies: ["127.0.0.0/8"] } });
    const header = async (headers: Record<string, string>): Promise<string> => {
      const { conn } = await opened(p.url, { headers });
      const text = conn.text();
      return text.slice(0, text.indexOf("\r\n"));
    };
    const port = p.port;
    // Each proxy appends what it saw: the rightmost address that is not a trusted proxy is the client.
    assert.equal(await header({ "X-Forwarded-For": "198.51.100.1, 203.0.113.7" }), `PROXY TCP4 203.0.113.7 127.0.0.1 0 ${port}`);
    assert.equal(await header({ "X-Forwarded-For": "203.0.113.7, 127.0.0.5" }), `PROXY TCP4 203.0.113.7 127.0.0.1 0 ${port}`);
    // A client of the other family than the connection's: the destination is the unspecified address of the client's.
    assert.equal(await header({ "X-Forwarded-For": "[2001:db8::7]:4711" }), `PROXY TCP6 2001:db8::7 :: 0 ${port}`);
    assert.match(await header({}), new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 \\d+ ${port}$`));
    await assert.rejects(connectWs(p.url, ["xmpp"], { headers: { "X-Forwarded-For": "not-an-address" } }), (e: Error & { status?: number }) => e.status === 400);
    // From a peer that is not trusted, the header is ignored.
    const q = await webProxy({}, { proxy_protocol: "v1" });
    const { conn } = await opened(q.url, { headers: { "X-Forwarded-For": "203.0.113.7" } });
    assert.match(conn.text(), /^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ /);
  });

  it("a PROXY header before the HTTP request, from accept_proxy_from, names the client", async () => {
    const p = await webProxy({}, { proxy_protocol: "v1", accept_proxy_from: ["127.0.0.0/8"] });
    const ws = new WebSocket(p.url, ["xmpp"], {
      createConnection: () => {
        const sock = connect({ host: "127.0.0.1", port: p.port });
        sock.write(encodeProxyV1({ address: "192.0.2.44", port: 5555 }, { address: "192.0.2.1", port: 443 }));
        return sock;
      },
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    const s = wsStream(ws);
    streams.push(s);
    s.send(OPEN);
    const conn = await upstream.nextConn();
    await s.waitFor((el) => el.name === "stream:features");
    assert.ok(conn.text().startsWith("PROXY TCP4 192.0.2.44 192.0.2.1 5555 443\r\n"), conn.text());
  });

  it("per-IP caps: a second WebSocket from the same client gets <open/>, policy-violation and <close/>, never reaching the server", async () => {
    const p = await webProxy({ limits: { max_connections_per_ip: 1 } }, { websocket: { trusted_proxies: ["127.0.0.1"] } });
    const first = await opened(p.url, { headers: { "X-Forwarded-For": "203.0.113.9" } });
    const dialed = upstream.conns.length;
    const second = await connectStream(p.url, ["xmpp"], { headers: { "X-Forwarded-For": "203.0.113.9" } });
    streams.push(second);
    assert.equal((await second.closed()).code, 1000);
    assert.equal(second.messages.length, 3);
    assert.match(second.messages[0]!, /^<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='[0-9a-f]+' version='1.0'\/>$/);
    assert.match(second.messages[1]!, /^<stream:error xmlns='jabber:client' xmlns:stream='http:\/\/etherx\.jabber\.org\/streams'><policy-violation /);
    assert.equal(second.messages[2], CLOSE);
    // Another client address behind the same web server is not affected.
    await opened(p.url, { headers: { "X-Forwarded-For": "203.0.113.10" } });
    assert.equal(upstream.conns.length, dialed + 1);
    assert.equal(await metric(p.proxy, "xmpp_guard_connections_refused_total", { listener: "web", reason: "too_many_connections" }), 1);
    first.s.stop();
  });

  it("pings: a peer that does not answer is dropped after two intervals; one that answers stays", async () => {
    const p = await webProxy({}, { websocket: { ping_interval: 0.2 } });
    const deaf = await opened(p.url, { autoPong: false });
    const alive = await opened(p.url);
    const closed = await deaf.s.closed(3000);
    assert.equal(closed.code, 1006, "dropped without a close frame");
    await eventually(() => deaf.conn.ended, 5000, "the deaf peer's upstream closed");
    assert.equal(alive.s.ws.readyState, WebSocket.OPEN);
    assert.equal(await metric(p.proxy, "xmpp_guard_timeouts_total", { listener: "web", kind: "websocket_ping" }), 1);
  });

  it("wss: TLS from the certificate store, the certificate chosen by SNI", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xg-wss-"));
    try {
      const certs = ["a.example", "b.example"].map((d) => {
        const pair = generateSelfSigned({ domains: [d], keyBits: 2048 });
        writeFileSync(join(dir, `${d}.crt`), pair.certPem);
        writeFileSync(join(dir, `${d}.key`), pair.keyPem);
        return { cert: join(dir, `${d}.crt`), key: join(dir, `${d}.key`), pem: pair.certPem };
      });
      const p = await webProxy({ tls: { certificates: certs.map(({ cert, key }) => ({ cert, key })) } }, { websocket: { tls: true } });
      for (const [k, name] of ["a.example", "b.example"].entries()) {
        const { s, conn } = await opened(`wss://127.0.0.1:${p.port}/xmpp-websocket`, { servername: name, ca: certs[k]!.pem, checkServerIdentity: () => undefined });
        assert.ok(conn.text().startsWith(HEADER), "plaintext upstream");
        assert.equal(s.ws.protocol, "xmpp");
      }
      assert.equal(await metric(p.proxy, "xmpp_guard_tls_handshakes_total", { listener: "web" }), 2);
      // The wrong CA fails the handshake: the certificate served for b.example is b's.
      await assert.rejects(connectWs(`wss://127.0.0.1:${p.port}/xmpp-websocket`, ["xmpp"], { servername: "b.example", ca: certs[0]!.pem }));
      // Plain HTTP on the wss port: no TLS, closed and counted, nothing dialed.
      const dialed = upstream.conns.length;
      const sock = connect({ host: "127.0.0.1", port: p.port });
      sock.on("error", () => {});
      sock.write("GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\n\r\n");
      await new Promise((r) => sock.once("close", r));
      await eventually(async () => (await metric(p.proxy, "xmpp_guard_tls_handshake_failures_total", { listener: "web", reason: "handshake" })) >= 1, 5000, "handshake failure counted");
      assert.equal(upstream.conns.length, dialed);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("shaping applies as on c2s: stanza rates pace what reaches the server", async () => {
    const p = await webProxy({ limits: { c2s: { stanza_rates: { message: { rate: 4, burst: 2 } } } } });
    const { s, conn } = await opened(p.url);
    const t0 = Date.now();
    for (let i = 0; i < 6; i++) s.send(`<message xmlns='jabber:client' to='a@localhost' id='m${i}'/>`);
    await eventually(() => conn.text().includes("id='m5'"), 5000, "all six messages upstream");
    // Two at once, then four at 4/s: about a second.
    assert.ok(Date.now() - t0 >= 800, `six messages passed in ${Date.now() - t0} ms`);
  });

  it("backpressure: a client that stops reading makes the proxy stop reading the upstream", async () => {
    const { s, conn } = await opened(web.url);
    s.ws.pause();
    const stanza = `<message from='b@localhost'><body>${"y".repeat(1000)}</body></message>`;
    const block = Buffer.from(stanza.repeat(64));
    let accepted = 0;
    for (let i = 0; i < 3200; i++) {
      if (!conn.socket.write(block)) {
        await Promise.race([new Promise((r) => conn.socket.once("drain", r)), new Promise((r) => setTimeout(r, 300))]);
        if (conn.socket.writableNeedDrain) break;
      }
      accepted += block.length;
    }
    assert.ok(conn.socket.writableNeedDrain, "the upstream's writes eventually block");
    assert.ok(accepted < 32 * 1024 * 1024, `upstream pushed ${accepted} bytes into a stalled client`);
    s.ws.resume();
    const wanted = accepted / stanza.length;
    await eventually(() => s.messages.filter((m) => m.startsWith("<message")).length >= wanted, 15_000, "drained to the client");
  });

  it("reload: new origins apply to the next handshake; a running session carries on", async () => {
    const p = await webProxy();
    const { s, conn } = await opened(p.url, { origin: "https://old.example" });
    const config = configFromObject({
      listeners: [{ name: "web", type: "websocket", listen: `127.0.0.1:${p.port}`, upstream: `127.0.0.1:${upstream.port}`, websocket: { allowed_origins: ["https://new.example"] } }],
      admin: { listen: null },
      log: { level: "silent" },
    });
    assert.deepEqual(await p.proxy.reload(config), { ok: true, errors: [] });
    await assert.rejects(connectWs(p.url, ["xmpp"], { origin: "https://old.example" }), (e: Error & { status?: number }) => e.status === 403);
    (await opened(p.url, { origin: "https://new.example" })).s.stop();
    s.send("<presence xmlns='jabber:client'/>");
    await eventually(() => conn.text().endsWith("<presence xmlns='jabber:client'/>"), 5000, "the old session still relays");
  });

  it("shutdown: sessions still open get system-shutdown and <close/>", async () => {
    const p = await webProxy();
    const { s } = await opened(p.url);
    await p.proxy.shutdown(0.1);
    assert.equal((await s.closed()).code, 1000);
    assert.match(s.messages.at(-2) ?? "", /<system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
    assert.equal(s.messages.at(-1), CLOSE);
  });
});
