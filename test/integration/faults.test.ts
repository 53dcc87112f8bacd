// Faults and timeouts over real loopback sockets with a scripted upstream:
// idle pre-auth peers, slow-drip stanzas, an upstream that hangs on connect or
// never answers, one that closes mid-stanza or sends garbage, and one that goes
// away and comes back. Each case checks the stream error the client gets, what
// reached the other side (never a partial frame) and the metric that counts it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect, createServer, type AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startFakeUpstream } from "../helpers/fake-upstream.js";
import { CLIENT_HEADER, eventually, rawClient, type RawClient } from "../helpers/raw-client.js";

const SASL_SUCCESS = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  // Every series exists from the start: add up all that match.
  return (m?.values ?? []).filter((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val)).reduce((n, x) => n + x.value, 0);
}

async function proxyTo(upstreamPort: number, timeouts: Record<string, number> = {}): Promise<{ proxy: RunningProxy; port: number }> {
  const proxy = await startProxy(configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstreamPort}` }],
    admin: { listen: null },
    log: { level: "silent" },
    timeouts,
  }), { logger: createLogger("silent") });
  return { proxy, port: proxy.listenerAddress("c2s")!.port };
}

function streamErrorRe(condition: string): RegExp {
  return new RegExp(`<stream:error><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`);
}

test("idle before authentication: connection-timeout, counted; an authenticated session may idle", async () => {
  const upstream = await startFakeUpstream();
  const { proxy, port } = await proxyTo(upstream.port, { pre_auth_idle: 0.3 });
  try {
    const idle = await rawClient(port);
    idle.write(CLIENT_HEADER);
    const conn = await upstream.nextConn();
    await idle.waitFor((t) => t.includes("</stream:features>"));
    const text = await idle.waitFor((t) => t.includes("</stream:stream>"));
    assert.match(text, streamErrorRe("connection-timeout"));
    await idle.closed();
    await eventually(() => conn.text().endsWith("</stream:stream>"), 5000, "upstream told the stream ended");
    assert.equal(await metric(proxy, "xmpp_guard_timeouts_total", { kind: "pre_auth_idle" }), 1);

    // Authenticated (the server said <success/>): idling is no longer our business.
    const authed = await rawClient(port);
    authed.write(CLIENT_HEADER);
    const aconn = await upstream.nextConn();
    await authed.waitFor((t) => t.includes("</stream:features>"));
    aconn.socket.write(SASL_SUCCESS);
    await authed.waitFor((t) => t.includes(SASL_SUCCESS));
    await new Promise((r) => setTimeout(r, 1200)); // four idle periods
    authed.write(CLIENT_HEADER + "<presence/>"); // stream restart after SASL
    await eventually(() => aconn.text().endsWith("<presence/>"), 5000, "presence upstream after the idle");
    assert.doesNotMatch(authed.text(), /stream:error/);
    assert.equal(await metric(proxy, "xmpp_guard_timeouts_total", { kind: "pre_auth_idle" }), 1);
    authed.destroy();
  } finally {
    await proxy.shutdown(0);
    await upstream.close();
  }
});

test("slow-drip stanza (one byte at a time): policy-violation, nothing partial upstream; a stanza split over reads still passes", async () => {
  const upstream = await startFakeUpstream();
  const { proxy, port } = await proxyTo(upstream.port, { stanza: 0.4 });
  try {
    // A stanza in a few quick pieces is fine.
    const ok = await rawClient(port);
    ok.write(CLIENT_HEADER);
    const okConn = await upstream.nextConn();
    await ok.waitFor((t) => t.includes("</stream:features>"));
    for (const part of ["<message><bo", "dy>hi</bo", "dy></message>"]) {
      ok.write(part);
      await new Promise((r) => setTimeout(r, 20));
    }
    await eventually(() => okConn.text().endsWith("<message><body>hi</body></message>"), 5000, "split stanza upstream");

    // The same stanza dripped one byte every 50 ms never completes in time.
    const drip = await rawClient(port);
    drip.write(CLIENT_HEADER);
    const conn = await upstream.nextConn();
    await drip.waitFor((t) => t.includes("</stream:features>"));
    const stanza = "<message to='a@localhost'><body>" + "z".repeat(200) + "</body></message>";
    let sent = 0;
    while (!drip.text().includes("</stream:stream>") && sent < stanza.length) {
      drip.write(stanza[sent++]!);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(sent < stanza.length, "the proxy gave up before the stanza was complete");
    const text = await drip.waitFor((t) => t.includes("</stream:stream>"));
    assert.match(text, streamErrorRe("policy-violation"));
    await eventually(() => conn.ended, 5000, "upstream closed");
    assert.equal(conn.text(), CLIENT_HEADER + "</stream:stream>", "no byte of the partial stanza went upstream");
    assert.equal(await metric(proxy, "xmpp_guard_timeouts_total", { kind: "stanza" }), 1);
    assert.doesNotMatch(ok.text(), /stream:error/, "the other session is untouched");
    ok.destroy();
  } finally {
    await proxy.shutdown(0);
    await upstream.close();
  }
});

/**
 * A listening socket whose accept queue is full, so a new SYN is dropped and
 * connect() hangs (Linux, tcp_abort_on_overflow=0). Node accepts on its own,
 * so the socket lives in a small Python child that never calls accept().
 */
async function blackHole(): Promise<{ port: number; close(): void }> {
  const code = [
    "import socket, sys, time",
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
    "port = s.getsockname()[1]",
    "fill = []",
    "for _ in range(4):",
    "    c = socket.socket(); c.setblocking(False)",
    "    try: c.connect(('127.0.0.1', port))",
    "    except BlockingIOError: pass",
    "    fill.append(c)",
    "time.sleep(0.2)",
    "print(port, flush=True)",
    "sys.stdin.read()",
  ].join("\n");
  const child = spawn("/usr/bin/python3", ["-c", code], { stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error("black hole did not start")), 10_000);
    rl.once("line", (l) => {
      clearTimeout(timer);
      resolve(l);
    });
  });
  return { port: Number(line), close: () => void child.kill("SIGKILL") };
}

test("upstream hangs on connect, or connects and never answers: remote-connection-failed within timeouts.connect, counted", async () => {
  const hole = await blackHole();
  const silent = await startFakeUpstream({ autoHeader: false });
  const a = await proxyTo(hole.port, { connect: 0.5 });
  const b = await proxyTo(silent.port, { connect: 0.5 });
  try {
    const c1 = await rawClient(a.port);
    c1.write(CLIENT_HEADER);
    const t1 = await c1.waitFor((t) => t.includes("</stream:stream>"));
    assert.match(t1, /^<\?xml version='1.0'\?><stream:stream /, "the proxy's own header, since the server never sent one");
    assert.match(t1, streamErrorRe("remote-connection-failed"));
    assert.equal(await metric(a.proxy, "xmpp_guard_upstream_failures_total", { reason: "timeout" }), 1);
    assert.equal(await metric(a.proxy, "xmpp_guard_timeouts_total", { kind: "upstream_connect" }), 1);

    const c2 = await rawClient(b.port);
    c2.write(CLIENT_HEADER);
    const conn = await silent.nextConn();
    const t2 = await c2.waitFor((t) => t.includes("</stream:stream>"));
    assert.match(t2, streamErrorRe("remote-connection-failed"));
    assert.ok(conn.text().startsWith(CLIENT_HEADER), "the header had been forwarded");
    assert.equal(await metric(b.proxy, "xmpp_guard_upstream_failures_total", { reason: "timeout" }), 1);
    await c1.closed();
    await c2.closed();
  } finally {
    await a.proxy.shutdown(0);
    await b.proxy.shutdown(0);
    await silent.close();
    hole.close();
  }
});

test("upstream closes (FIN) mid-stanza, or sends garbage: whole frames only, then remote-connection-failed / internal-server-error", async () => {
  const upstream = await startFakeUpstream();
  const { proxy, port } = await proxyTo(upstream.port);
  try {
    const client = await rawClient(port);
    client.write(CLIENT_HEADER);
    const conn = await upstream.nextConn();
    await client.waitFor((t) => t.includes("</stream:features>"));
    conn.socket.end("<message><body>whole</body></message><message><body>half of it");
    const text = await client.waitFor((t) => t.includes("</stream:stream>"));
    assert.ok(text.includes("<message><body>whole</body></message><stream:error><remote-connection-failed "), text);
    assert.doesNotMatch(text, /half of it/);
    assert.equal(await metric(proxy, "xmpp_guard_upstream_failures_total", { reason: "closed" }), 1);

    const c2 = await rawClient(port);
    c2.write(CLIENT_HEADER);
    const conn2 = await upstream.nextConn();
    await c2.waitFor((t) => t.includes("</stream:features>"));
    conn2.socket.write("<message><body>fine</body></message><message><body><!DOCTYPE x></body></message>");
    const t2 = await c2.waitFor((t) => t.includes("</stream:stream>"));
    assert.ok(t2.includes("<message><body>fine</body></message><stream:error><internal-server-error "), t2);
    assert.doesNotMatch(t2, /DOCTYPE/);
  } finally {
    await proxy.shutdown(0);
    await upstream.close();
  }
});

test("upstream goes away and comes back: refused while down, served again at once, other listeners unaffected", async () => {
  const first = await startFakeUpstream();
  const other = await startFakeUpstream();
  const upstreamPort = first.port;
  const proxy = await startProxy(configFromObject({
    listeners: [
      { name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstreamPort}` },
      { name: "other", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${other.port}` },
    ],
    admin: { listen: null },
    log: { level: "silent" },
  }), { logger: createLogger("silent") });
  const port = proxy.listenerAddress("c2s")!.port;
  let second: Awaited<ReturnType<typeof startFakeUpstream>> | undefined;
  try {
    // A session on the other listener lives through the whole outage.
    const bystander = await rawClient(proxy.listenerAddress("other")!.port);
    bystander.write(CLIENT_HEADER);
    const bconn = await other.nextConn();
    await bystander.waitFor((t) => t.includes("</stream:features>"));

    const before = await rawClient(port);
    before.write(CLIENT_HEADER);
    await first.nextConn();
    await before.waitFor((t) => t.includes("</stream:features>"));
    await first.close(); // the server goes away (its connections with it)
    assert.match(await before.waitFor((t) => t.includes("</stream:stream>")), streamErrorRe("remote-connection-failed"));

    for (let i = 0; i < 3; i++) {
      const down = await rawClient(port);
      down.write(CLIENT_HEADER);
      assert.match(await down.waitFor((t) => t.includes("</stream:stream>")), streamErrorRe("remote-connection-failed"));
      await down.closed();
    }
    assert.equal(await metric(proxy, "xmpp_guard_upstream_failures_total", { listener: "c2s", reason: "refused" }), 3);

    second = await startFakeUpstream({ port: upstreamPort }); // back, same address
    const after = await rawClient(port);
    after.write(CLIENT_HEADER);
    const conn = await second.nextConn();
    await after.waitFor((t) => t.includes("</stream:features>"));
    after.write("<presence/>");
    await eventually(() => conn.text().endsWith("<presence/>"), 5000, "traffic through the recovered upstream");

    bystander.write("<presence/>");
    await eventually(() => bconn.text().endsWith("<presence/>"), 5000, "bystander still relayed");
    assert.doesNotMatch(bystander.text(), /stream:error/);
    after.destroy();
    bystander.destroy();
  } finally {
    await proxy.shutdown(0);
    await other.close();
    await second?.close();
  }
});

test("a refusing upstream costs nothing lasting: sessions and timers are released", async () => {
  const dead = createServer();
  await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
  const deadPort = (dead.address() as AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const { proxy, port } = await proxyTo(deadPort);
  try {
    const clients = await Promise.all(Array.from({ length: 20 }, () => rawClient(port)));
    for (const c of clients) c.write(CLIENT_HEADER);
    for (const c of clients) assert.match(await c.waitFor((t) => t.includes("</stream:stream>")), streamErrorRe("remote-connection-failed"));
    await eventually(() => proxy.sessionCount() === 0, 5000, "all sessions released");
  } finally {
    await proxy.shutdown(0);
  }
});

test("over limits.max_connections_per_ip: refused at once without a byte from the client, closed within a second even if never read, upstream never dialed", { timeout: 20_000 }, async () => {
  const upstream = await startFakeUpstream();
  const logLines: Array<Record<string, unknown>> = [];
  const proxy = await startProxy(configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstream.port}` }],
    limits: { max_connections_per_ip: 2 },
    admin: { listen: null },
  }), { logger: createLogger("info", { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) }) });
  const port = proxy.listenerAddress("c2s")!.port;
  const open: Array<{ destroy(): void }> = [];
  const client = async (): Promise<RawClient> => {
    const c = await rawClient(port);
    open.push(c);
    return c;
  };
  try {
    const admitted = [await client(), await client()];
    for (const c of admitted) c.write(CLIENT_HEADER);
    for (const c of admitted) await c.waitFor((t) => t.includes("</stream:features>"));

    // Five more from the same address, which send nothing at all.
    const started = Date.now();
    const refused = await Promise.all(Array.from({ length: 5 }, () => client()));
    for (const c of refused) {
      const text = await c.waitFor((t) => t.includes("</stream:stream>"), 2000);
      assert.match(text, /^<\?xml version='1.0'\?><stream:stream [^>]*><stream:error><policy-violation [^>]*\/><text [^>]*>too many connections from this address<\/text><\/stream:error><\/stream:stream>$/);
      await c.closed(2000);
    }
    assert.ok(Date.now() - started < 2000, `refused and closed in ${Date.now() - started} ms`);
    assert.equal(upstream.conns.length, 2, "no upstream connection for a refused client");
    assert.equal(await metric(proxy, "xmpp_guard_connections_refused_total", { reason: "too_many_connections" }), 5);
    assert.equal(await metric(proxy, "xmpp_guard_stream_errors_total", { condition: "policy-violation", sender: "proxy" }), 5);
    assert.equal(logLines.filter((l) => l.code === "XPX_ERR_TOO_MANY_CONNECTIONS").length, 5);
    await eventually(() => proxy.sessionCount() === 2, 2000, "refused sessions released");

    // One that never reads (paused before it connects, so not even Node reads
    // its socket) and never closes: the proxy destroys it on its own.
    const deaf = connect({ host: "127.0.0.1", port });
    open.push(deaf);
    deaf.pause();
    deaf.on("error", () => {});
    await new Promise<void>((resolve) => deaf.once("connect", resolve));
    const deafAt = Date.now();
    await eventually(() => proxy.sessionCount() === 3, 1000, "the deaf connection has a session");
    await eventually(() => proxy.sessionCount() === 2, 2500, "the deaf connection's session destroyed");
    assert.ok(Date.now() - deafAt < 2500, `released after ${Date.now() - deafAt} ms`);
    // What it was told is waiting in its buffer, followed by the close.
    let told = "";
    deaf.on("data", (d: Buffer) => void (told += d.toString("utf8")));
    deaf.resume();
    await new Promise<void>((resolve) => deaf.once("close", () => resolve()));
    assert.match(told, /too many connections from this address<\/text><\/stream:error><\/stream:stream>$/);

    // The admitted sessions were never disturbed, and their slots free up as usual.
    admitted[0]!.write("<presence/>");
    await eventually(() => upstream.conns[0]!.text().endsWith("<presence/>"), 5000, "admitted session still relayed");
    for (const c of admitted) c.destroy();
    await eventually(() => proxy.sessionCount() === 0, 5000, "sessions closed");
    const next = await client();
    next.write(CLIENT_HEADER);
    await next.waitFor((t) => t.includes("</stream:features>"));
  } finally {
    for (const c of open) c.destroy();
    await proxy.shutdown(0);
    await upstream.close();
  }
});

test("pre-authentication lifetime: a client sending a space every 200 ms is closed with connection-timeout after timeouts.pre_auth; an authenticated one is not", { timeout: 20_000 }, async () => {
  const upstream = await startFakeUpstream();
  const started = await proxyTo(upstream.port, { pre_auth: 1, pre_auth_idle: 0.5 }).catch(async (err: unknown) => {
    await upstream.close();
    throw err;
  });
  const { proxy, port } = started;
  const open: RawClient[] = [];
  const timers: NodeJS.Timeout[] = [];
  const client = async (): Promise<RawClient> => {
    const c = await rawClient(port);
    open.push(c);
    return c;
  };
  const keepalive = (c: RawClient): NodeJS.Timeout => {
    const t = setInterval(() => c.write(" "), 200);
    timers.push(t);
    return t;
  };
  try {
    const chatty = await client();
    const connectedAt = Date.now();
    chatty.write(CLIENT_HEADER);
    const conn = await upstream.nextConn();
    const timer = keepalive(chatty);
    const text = await chatty.waitFor((t) => t.includes("</stream:stream>"), 4000);
    clearInterval(timer);
    const elapsed = Date.now() - connectedAt;
    assert.ok(elapsed >= 950 && elapsed < 2500, `closed after ${elapsed} ms`);
    assert.match(text, /<stream:error><connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/><text [^>]*>not authenticated within timeouts\.pre_auth<\/text><\/stream:error><\/stream:stream>$/);
    await chatty.closed();
    await eventually(() => conn.text().endsWith("</stream:stream>"), 5000, "upstream told the stream ended");
    assert.equal(await metric(proxy, "xmpp_guard_timeouts_total", { kind: "pre_auth" }), 1);
    assert.equal(await metric(proxy, "xmpp_guard_timeouts_total", { kind: "pre_auth_idle" }), 0);

    // Authenticated (the server said <success/>): the lifetime no longer applies,
    // to a chatty session or to a silent one.
    const authed = await client();
    const quiet = await client();
    authed.write(CLIENT_HEADER);
    const aconn = await upstream.nextConn();
    quiet.write(CLIENT_HEADER);
    const qconn = await upstream.nextConn();
    await authed.waitFor((t) => t.includes("</stream:features>"));
    await quiet.waitFor((t) => t.includes("</stream:features>"));
    aconn.socket.write(SASL_SUCCESS);
    qconn.socket.write(SASL_SUCCESS);
    await authed.waitFor((t) => t.includes(SASL_SUCCESS));
    await quiet.waitFor((t) => t.includes(SASL_SUCCESS));
    authed.write(CLIENT_HEADER); // stream restart after SASL
    const atimer = keepalive(authed);
    await new Promise((r) => setTimeout(r, 2500)); // two and a half lifetimes
    clearInterval(atimer);
    authed.write("<presence/>");
    quiet.write(CLIENT_HEADER + "<presence/>");
    await eventually(() => aconn.text().endsWith("<presence/>"), 5000, "presence upstream (chatty)");
    await eventually(() => qconn.text().endsWith("<presence/>"), 5000, "presence upstream (quiet)");
    assert.doesNotMatch(authed.text() + quiet.text(), /stream:error/);
    assert.equal(await metric(proxy, "xmpp_guard_timeouts_total", { kind: "pre_auth" }), 1);
  } finally {
    for (const t of timers) clearInterval(t);
    for (const c of open) c.destroy();
    await proxy.shutdown(0);
    await upstream.close();
  }
});
