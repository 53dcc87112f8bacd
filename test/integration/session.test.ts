// Whole-session behaviour over real loopback sockets, with a scripted
// upstream: byte identity both ways, bad input → the right stream error while
// other sessions carry on, upstream faults, PROXY headers, backpressure.
// (The real-server proof is in prosody.test.ts.)

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo } from "node:net";
import fc from "fast-check";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { encodeProxyV1, encodeProxyV2, parseProxyHeader } from "../../src/net/proxy-protocol.js";
import { framerImplementation, liveWasmFramers } from "../../src/xml/framer-wasm.js";
import { FEATURES, SERVER_HEADER, startFakeUpstream, type FakeUpstream } from "../helpers/fake-upstream.js";
import { CLIENT_HEADER, eventually, rawClient } from "../helpers/raw-client.js";

let upstream: FakeUpstream;
let proxy: RunningProxy;
let port: number;

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  // Every series exists from the start: add up all that match.
  return (m?.values ?? []).filter((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val)).reduce((n, x) => n + x.value, 0);
}

function proxyConfig(upstreamPort: number, extra: Record<string, unknown> = {}, listener: Record<string, unknown> = {}) {
  return configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstreamPort}`, ...listener }],
    admin: { listen: null },
    log: { level: "silent" },
    ...extra,
  });
}

before(async () => {
  upstream = await startFakeUpstream();
  proxy = await startProxy(proxyConfig(upstream.port, { max_stanza_size: 16384, timeouts: { stream_header: 1 } }), { logger: createLogger("silent") });
  port = proxy.listenerAddress("c2s")!.port;
});

after(async () => {
  await proxy.shutdown(0);
  await upstream.close();
});

test("bytes in, same bytes out: a random stream in random chunks reaches the upstream unchanged, and back", async () => {
  const stanza = fc.oneof(
    fc.constantFrom("<presence/>", " ", "\n", "<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>"),
    fc.tuple(fc.string({ maxLength: 40 }), fc.constantFrom("chat", "normal")).map(([body, type]) =>
      `<message type='${type}' to='a@localhost'><body>${body.replace(/[&<>\u0000-\u001f\ud800-\udfff]/g, "x")} é \u{1F600}</body></message>`),
  );
  await fc.assert(fc.asyncProperty(fc.array(stanza, { minLength: 1, maxLength: 30 }), fc.array(fc.nat(), { maxLength: 12 }), async (stanzas, cuts) => {
    const input = Buffer.from(CLIENT_HEADER + stanzas.join(""));
    const client = await rawClient(port);
    const connected = upstream.nextConn(); // the proxy dials once the header is complete
    const offsets = [...new Set(cuts.map((c) => c % input.length))].sort((a, b) => a - b);
    let prev = 0;
    for (const o of [...offsets, input.length]) {
      client.write(input.subarray(prev, o));
      prev = o;
      await new Promise((r) => setImmediate(r));
    }
    const conn = await connected;
    await eventually(() => conn.bytes().length >= input.length, 5000, "all bytes upstream");
    assert.ok(conn.bytes().equals(input), "upstream received exactly the client's bytes");
    // And the other way: server bytes in chunks reach the client unchanged.
    const back = Buffer.from(stanzas.filter((s) => s.startsWith("<")).join(""));
    for (let i = 0; i < back.length; i += 17) conn.socket.write(back.subarray(i, i + 17));
    const expected = Buffer.concat([Buffer.from(SERVER_HEADER + FEATURES), back]);
    await eventually(() => client.bytes().length >= expected.length, 5000, "all bytes to client");
    assert.ok(client.bytes().equals(expected), "client received exactly the server's bytes");
    client.destroy();
  }), { numRuns: 15, seed: 42, endOnFailure: true });
});

async function expectStreamError(input: Array<string | Buffer>, condition: string): Promise<string> {
  const client = await rawClient(port);
  for (const part of input) client.write(part);
  const text = await client.waitFor((t) => t.includes("</stream:stream>"), 5000);
  assert.match(text, new RegExp(`<stream:error><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`), text);
  await client.closed();
  return text;
}

test("bad input gets its stream error, with a stream header when the server never sent one", async () => {
  // A bystander session, open through all of this, must be unaffected.
  const bystander = await rawClient(port);
  bystander.write(CLIENT_HEADER);
  const bconn = await upstream.nextConn();
  await bystander.waitFor((t) => t.includes("</stream:features>"));

  const cases: Array<[Array<string | Buffer>, string]> = [
    [["GET / HTTP/1.1\r\nHost: x\r\n\r\n"], "not-well-formed"],
    [[CLIENT_HEADER, "<message><!-- hidden --></message>"], "restricted-xml"],
    [["<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><lolz>&lol2;</lolz>"], "restricted-xml"],
    [[CLIENT_HEADER, "<message><body>&xxe;</body></message>"], "restricted-xml"],
    [[CLIENT_HEADER, "<message><body></message>"], "not-well-formed"],
    [[CLIENT_HEADER, Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x61, 0x3e])], "not-well-formed"],
    [[CLIENT_HEADER, "<message><body>" + "x".repeat(20000) + "</body></message>"], "policy-violation"],
    [[CLIENT_HEADER, "<a>".repeat(100)], "policy-violation"],
    [[CLIENT_HEADER, "<message to='a' to='b'/>"], "not-well-formed"],
    [["<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"], "invalid-namespace"],
    [["<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>"], "invalid-namespace"],
    [["<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='2.0'>"], "unsupported-version"],
  ];
  for (const [input, condition] of cases) {
    const text = await expectStreamError(input, condition);
    const sawServerHeader = text.includes("id='s1'");
    if (!sawServerHeader) assert.match(text, /^<\?xml version='1.0'\?><stream:stream xmlns='jabber:client'/, "proxy's own header first");
  }
  // The bystander still works end to end.
  bystander.write("<presence/>");
  await eventually(() => bconn.text().endsWith("<presence/>"), 5000, "bystander presence upstream");
  bconn.socket.write("<message><body>still here</body></message>");
  await bystander.waitFor((t) => t.includes("still here"));
  assert.ok(await metric(proxy, "xmpp_guard_stream_errors_total", { condition: "restricted-xml", sender: "proxy" }) >= 3);
  assert.ok(await metric(proxy, "xmpp_guard_framing_errors_total", { code: "XPX_ERR_STANZA_TOO_LARGE" }) >= 1);
  bystander.destroy();
});

test("EOF inside a stanza gets not-well-formed; nothing partial reaches the upstream", async () => {
  const client = await rawClient(port);
  client.write(CLIENT_HEADER + "<presence/><message><body>half");
  const conn = await upstream.nextConn();
  await eventually(() => conn.text().includes("<presence/>"));
  client.socket.end();
  const text = await client.waitFor((t) => t.includes("</stream:stream>"));
  assert.match(text, /<not-well-formed /);
  await eventually(() => conn.ended, 5000, "upstream closed");
  assert.equal(conn.text(), CLIENT_HEADER + "<presence/></stream:stream>");
});

test("slow-drip client that never finishes its header gets connection-timeout", async () => {
  const client = await rawClient(port);
  client.write("<?xml version='1.0'?><stream:str");
  const text = await client.waitFor((t) => t.includes("</stream:stream>"), 5000);
  assert.match(text, /<connection-timeout /);
});

test("upstream refusing connections: remote-connection-failed, counted", async () => {
  const dead = createServer();
  await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
  const deadPort = (dead.address() as AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const p = await startProxy(proxyConfig(deadPort), { logger: createLogger("silent") });
  try {
    const client = await rawClient(p.listenerAddress("c2s")!.port);
    client.write(CLIENT_HEADER);
    const text = await client.waitFor((t) => t.includes("</stream:stream>"));
    assert.match(text, /^<\?xml version='1.0'\?><stream:stream [^>]*from='localhost'/);
    assert.match(text, /<remote-connection-failed /);
    assert.equal(await metric(p, "xmpp_guard_upstream_failures_total", { reason: "refused" }), 1);
  } finally {
    await p.shutdown(0);
  }
});

test("upstream dropping mid-session: the client gets remote-connection-failed after the frames already sent", async () => {
  const client = await rawClient(port);
  client.write(CLIENT_HEADER);
  const conn = await upstream.nextConn();
  await client.waitFor((t) => t.includes("</stream:features>"));
  conn.socket.write("<message><body>one</body></message><message><body>tw");
  await client.waitFor((t) => t.includes("one</body></message>"));
  conn.socket.destroy();
  const text = await client.waitFor((t) => t.includes("</stream:stream>"));
  assert.ok(text.endsWith("<message><body>one</body></message><stream:error><remote-connection-failed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>upstream server closed the connection</text></stream:error></stream:stream>"), text);
});

/** A client whose stream is open through the proxy: header sent, the upstream dialled, features read. */
async function openStream() {
  const client = await rawClient(port);
  client.write(CLIENT_HEADER);
  const conn = await upstream.nextConn();
  await client.waitFor((t) => t.includes("</stream:features>"));
  return { client, conn };
}

/** Both sides close their streams, the client first. */
async function closeCleanly({ client, conn }: Awaited<ReturnType<typeof openStream>>): Promise<void> {
  client.write("</stream:stream>");
  await eventually(() => conn.text().endsWith("</stream:stream>"));
  conn.socket.end("</stream:stream>");
  await client.closed();
}

test("a clean close passes through both ways", async () => {
  const { client, conn } = await openStream();
  await closeCleanly({ client, conn });
  assert.ok(client.text().endsWith("</stream:stream>"));
  assert.doesNotMatch(client.text(), /stream:error/);
});

test("however a session ends, its framers give their state back (no finalizer does it for them)", { skip: framerImplementation() !== "wasm" }, async () => {
  await eventually(() => liveWasmFramers() === 0, 5000, "framers of earlier tests stopped");
  const ends: Array<() => Promise<void>> = [
    async () => closeCleanly(await openStream()),
    async () => { // the client vanishes mid-stanza
      const { client } = await openStream();
      client.write("<message><body>half");
      client.destroy();
    },
    async () => { // bad input: a stream error
      const client = await rawClient(port);
      client.write(CLIENT_HEADER + "<message><body>a</bod></message>");
      await client.waitFor((t) => t.includes("</stream:stream>"));
    },
    async () => { // the upstream drops
      const { client, conn } = await openStream();
      conn.socket.destroy();
      await client.waitFor((t) => t.includes("</stream:stream>"));
    },
    async () => { // the client closes before the upstream was ever dialled
      const client = await rawClient(port);
      client.write("<?xml version='1.0'?><stream:str");
      client.destroy();
    },
  ];
  for (const end of ends) await end();
  await eventually(() => liveWasmFramers() === 0, 5000, `framer states left: ${liveWasmFramers()}`);
});

test("PROXY headers: sent upstream (v1, v2) with the client's address; untrusted inbound ones refused; trusted ones honoured", async () => {
  for (const mode of ["v1", "v2"] as const) {
    const p = await startProxy(proxyConfig(upstream.port, {}, { proxy_protocol: mode }), { logger: createLogger("silent") });
    try {
      const client = await rawClient(p.listenerAddress("c2s")!.port);
      client.write(CLIENT_HEADER);
      const conn = await upstream.nextConn();
      await client.waitFor((t) => t.includes("</stream:features>"));
      const parsed = parseProxyHeader(conn.bytes());
      assert.equal(parsed.status, "ok");
      if (parsed.status !== "ok") return;
      assert.equal(parsed.version, mode === "v1" ? 1 : 2);
      assert.equal(parsed.source?.address, "127.0.0.1");
      assert.equal(parsed.source?.port, client.socket.localPort);
      assert.equal(parsed.destination?.port, p.listenerAddress("c2s")!.port);
      assert.equal(conn.bytes().subarray(parsed.length).toString(), CLIENT_HEADER);
      client.destroy();
    } finally {
      await p.shutdown(0);
    }
  }
  // Untrusted source sending a PROXY header: closed without a word, counted.
  const sneaky = await rawClient(port);
  sneaky.write(encodeProxyV1({ address: "6.6.6.6", port: 1 }, { address: "127.0.0.1", port }));
  await sneaky.closed();
  assert.equal(sneaky.text(), "");
  assert.equal(await metric(proxy, "xmpp_guard_proxy_headers_total", { result: "untrusted" }), 1);

  // Trusted balancer: its header is required and its source address is used.
  const p = await startProxy(proxyConfig(upstream.port, {}, { proxy_protocol: "v2", accept_proxy_from: ["127.0.0.0/8"] }), { logger: createLogger("silent") });
  try {
    const lbPort = p.listenerAddress("c2s")!.port;
    const viaLb = await rawClient(lbPort);
    viaLb.write(Buffer.concat([encodeProxyV2({ address: "203.0.113.9", port: 4242 }, { address: "198.51.100.1", port: 5222 }), Buffer.from(CLIENT_HEADER)]));
    const conn = await upstream.nextConn();
    await viaLb.waitFor((t) => t.includes("</stream:features>"));
    const parsed = parseProxyHeader(conn.bytes());
    assert.equal(parsed.status === "ok" && parsed.source?.address, "203.0.113.9");
    assert.equal(parsed.status === "ok" && parsed.destination?.port, 5222);
    // Garbage instead of a header from the trusted source: refused.
    const garbage = await rawClient(lbPort);
    garbage.write("PROXY TCP4 nonsense\r\n");
    await garbage.closed();
    const missing = await rawClient(lbPort);
    missing.write(CLIENT_HEADER);
    await missing.closed();
    assert.equal(await metric(p, "xmpp_guard_proxy_headers_total", { result: "invalid" }), 2);
    viaLb.destroy();
  } finally {
    await p.shutdown(0);
  }
});

test("backpressure: a client that stops reading makes the proxy stop reading the upstream", async () => {
  const client = await rawClient(port);
  client.write(CLIENT_HEADER);
  const conn = await upstream.nextConn();
  await client.waitFor((t) => t.includes("</stream:features>"));
  client.socket.pause();
  const stanza = Buffer.from(`<message><body>${"y".repeat(1000)}</body></message>`);
  const block = Buffer.concat(Array.from({ length: 64 }, () => stanza));
  let accepted = 0;
  // Write until the kernel + proxy stop taking data (bounded: 200 MB at most).
  for (let i = 0; i < 3200; i++) {
    if (!conn.socket.write(block)) {
      await Promise.race([new Promise((r) => conn.socket.once("drain", r)), new Promise((r) => setTimeout(r, 300))]);
      if (conn.socket.writableNeedDrain) break;
    }
    accepted += block.length;
  }
  assert.ok(conn.socket.writableNeedDrain, "the upstream's writes eventually block");
  // Kernel socket buffers on both hops plus one high-water mark in the proxy: a few MB, not 200.
  assert.ok(accepted < 32 * 1024 * 1024, `upstream pushed ${accepted} bytes into a stalled client`);
  client.socket.resume();
  const total = accepted + block.length; // what we wrote including the pending block
  await eventually(() => client.bytes().length >= SERVER_HEADER.length + FEATURES.length + total - block.length, 10000, "drained to client");
  client.destroy();
});

test("shutdown: stops accepting, sends system-shutdown to sessions still open after the drain", async () => {
  const p = await startProxy(proxyConfig(upstream.port), { logger: createLogger("silent") });
  const client = await rawClient(p.listenerAddress("c2s")!.port);
  client.write(CLIENT_HEADER);
  await upstream.nextConn();
  await client.waitFor((t) => t.includes("</stream:features>"));
  await p.shutdown(0.2);
  assert.match(client.text(), /<system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  assert.equal(p.listenerAddress("c2s"), null);
  await client.closed();
});
