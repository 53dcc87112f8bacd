// Shaping through the real proxy: mod_limits-style rate and burst measured at
// the upstream, independence of sessions, exemption, pre-auth and per-IP
// caps, reload, and (with a real Prosody) no byte lost or reordered. The
// stanza rate also holds for messages written another way (prefixed, prefix
// on the stream header, explicit xmlns), which the server accepts as the same.

import { test } from "node:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { ConfigError } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startFakeUpstream, type UpstreamConn } from "../helpers/fake-upstream.js";
import { CLIENT_HEADER, eventually, rawClient, type RawClient } from "../helpers/raw-client.js";
import { startProsody } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";
import { rawLogin, type RawSession } from "../helpers/raw-session.js";
import { FORMS, writeAs } from "../helpers/stanza-forms.js";

function config(upstreamPort: number, limits: Record<string, unknown>) {
  return configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstreamPort}` }],
    limits,
    admin: { listen: null },
  });
}

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return (m?.values ?? []).filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((n, x) => n + x.value, 0);
}

/** Write stanzas as fast as TCP accepts them until `stop()`; returns everything written. */
function flood(client: RawClient): { stop(): void; sent(): Buffer } {
  const parts: Buffer[] = [Buffer.from(CLIENT_HEADER)];
  client.write(parts[0]!);
  let n = 0;
  let stopped = false;
  const pump = (): void => {
    while (!stopped) {
      const b = Buffer.from(`<message to='x@localhost' id='${n++}'><body>${"z".repeat(180)}</body></message>`);
      parts.push(b);
      if (!client.socket.write(b)) {
        client.socket.once("drain", pump);
        return;
      }
    }
  };
  pump();
  return { stop: () => void (stopped = true), sent: () => Buffer.concat(parts) };
}

/** Bytes the upstream has received at each sample, from when the first byte arrived. */
function sampler(conn: UpstreamConn): { at(ms: number): Promise<number> } {
  const t0 = performance.now();
  return {
    async at(ms) {
      const wait = t0 + ms - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      return conn.bytes().length;
    },
  };
}

test("rate 3kb/s, burst 2s: 6 kB at once, then 3,000 B/s ± 5 % over 10 s, two sessions independently, nothing lost or reordered", { timeout: 30_000 }, async () => {
  const upstream = await startFakeUpstream();
  const proxy = await startProxy(config(upstream.port, { c2s: { rate: "3kb/s", burst: "2s" }, pre_auth: { max_bytes: 0, max_stanzas: 0 } }), { logger: createLogger("silent") });
  try {
    const port = proxy.listenerAddress("c2s")!.port;
    const a = await rawClient(port);
    const b = await rawClient(port);
    const fa = flood(a);
    const fb = flood(b);
    const [ca, cb] = [await upstream.nextConn(), await upstream.nextConn()];
    const [sa, sb] = [sampler(ca), sampler(cb)];
    // The bucket starts full: 6,000 bytes pass at once. The upstream sees whole
    // stanzas only, so up to one stanza (~230 B) of that may still be in the proxy.
    const early = [await sa.at(300), await sb.at(300)];
    for (const e of early) assert.ok(e >= 6000 - 250 && e <= 6000 + 0.3 * 3000, `after 300 ms: ${e} bytes`);
    const atOne = [await sa.at(1000), await sb.at(1000)];
    const atEleven = [await sa.at(11_000), await sb.at(11_000)];
    fa.stop();
    fb.stop();
    for (let i = 0; i < 2; i++) {
      const rate = (atEleven[i]! - atOne[i]!) / 10;
      assert.ok(Math.abs(rate - 3000) <= 150, `session ${i}: ${rate.toFixed(0)} B/s over 10 s`);
      // Overall: never more than capacity + rate × t.
      assert.ok(atEleven[i]! <= 6000 + 3000 * 11.1, `session ${i}: ${atEleven[i]} bytes in 11 s`);
    }
    // What arrived is exactly a prefix of what was sent: nothing lost, nothing reordered.
    for (const [conn, f] of [[ca, fa], [cb, fb]] as const) assert.ok(f.sent().subarray(0, conn.bytes().length).equals(conn.bytes()));
    assert.ok(await metric(proxy, "xmpp_guard_throttled_seconds_total", { reason: "bytes" }) > 5);
    assert.equal(await metric(proxy, "xmpp_guard_sessions_throttled", { listener: "c2s" }), 2);
    a.destroy();
    b.destroy();
  } finally {
    await proxy.shutdown(0);
    await upstream.close();
  }
});

test("stanza rates: 5 messages/s with a burst of 10; nonzas (SM acks) are never charged", { timeout: 20_000 }, async () => {
  const upstream = await startFakeUpstream();
  const proxy = await startProxy(config(upstream.port, { c2s: { stanza_rates: { message: { rate: 5, burst: 10 } } }, pre_auth: { max_bytes: 0, max_stanzas: 0 } }), { logger: createLogger("silent") });
  try {
    const client = await rawClient(proxy.listenerAddress("c2s")!.port);
    const msgs = Array.from({ length: 30 }, (_, i) => `<message id='m${i}'/>`).join("");
    const acks = "<r xmlns='urn:xmpp:sm:3'/>".repeat(20);
    client.write(CLIENT_HEADER + acks + msgs);
    const conn = await upstream.nextConn();
    const count = (): number => (conn.text().match(/<message /g) ?? []).length;
    await eventually(() => count() >= 10, 2000, "burst of 10");
    assert.equal((conn.text().match(/<r xmlns/g) ?? []).length, 20, "acks pass uncharged");
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(count() <= 12, `after 0.3 s: ${count()} messages`);
    const t0 = performance.now();
    await eventually(() => count() === 30, 8000, "all 30 messages");
    const seconds = (performance.now() - t0) / 1000 + 0.3;
    assert.ok(seconds > 3.2 && seconds < 4.8, `20 messages over the burst took ${seconds.toFixed(2)} s (expected ≈4 s)`);
    assert.equal(conn.text(), CLIENT_HEADER + acks + msgs, "order kept, nothing lost");
    client.destroy();
  } finally {
    await proxy.shutdown(0);
    await upstream.close();
  }
});

test("pre-auth caps and per-IP caps end the stream with policy-violation before the upstream is dialed", { timeout: 20_000 }, async () => {
  const upstream = await startFakeUpstream();
  const proxy = await startProxy(config(upstream.port, {
    pre_auth: { max_bytes: 4096, max_stanzas: 5 },
    max_connections_per_ip: 2,
    connection_rate_per_ip: { rate: 0.5, burst: 4 },
  }), { logger: createLogger("silent") });
  try {
    const port = proxy.listenerAddress("c2s")!.port;
    const chatty = await rawClient(port);
    chatty.write(CLIENT_HEADER + "<presence/>".repeat(6));
    assert.match(await chatty.waitFor((t) => t.includes("</stream:stream>")), /<policy-violation /);
    const big = await rawClient(port);
    big.write(CLIENT_HEADER + `<message><body>${"q".repeat(5000)}</body></message>`);
    assert.match(await big.waitFor((t) => t.includes("</stream:stream>")), /<policy-violation /);
    await eventually(() => proxy.sessionCount() === 0, 5000, "refused sessions closed");
    // Two connections allowed at once; the third is refused without dialing upstream.
    const one = await rawClient(port);
    const two = await rawClient(port);
    one.write(CLIENT_HEADER);
    two.write(CLIENT_HEADER);
    await one.waitFor((t) => t.includes("</stream:features>"));
    await two.waitFor((t) => t.includes("</stream:features>"));
    const dialed = upstream.conns.length;
    const three = await rawClient(port);
    three.write(CLIENT_HEADER);
    const text = await three.waitFor((t) => t.includes("</stream:stream>"));
    assert.match(text, /^<\?xml version='1.0'\?><stream:stream [^>]*><stream:error><policy-violation [^>]*\/><text [^>]*>too many connections from this address</);
    assert.equal(upstream.conns.length, dialed, "refused before dialing");
    one.destroy();
    two.destroy();
    await eventually(() => proxy.sessionCount() === 0, 5000, "sessions closed");
    // Rate: 4 connections were admitted so far (burst 4); the next is refused.
    const five = await rawClient(port);
    five.write(CLIENT_HEADER);
    assert.match(await five.waitFor((t) => t.includes("</stream:stream>")), /connecting too often/);
    assert.equal(await metric(proxy, "xmpp_guard_connections_refused_total", { reason: "too_many_connections" }), 1);
    assert.equal(await metric(proxy, "xmpp_guard_connections_refused_total", { reason: "connection_rate" }), 1);
  } finally {
    await proxy.shutdown(0);
    await upstream.close();
  }
});

test("bad rate values are refused with their path, at start and on reload (the old limits stay)", { timeout: 20_000 }, async () => {
  assert.throws(() => config(1, { c2s: { rate: "fast" } }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.format(), /limits\.c2s\.rate: "fast" is not a rate: expected e\.g\. "3kb\/s"/);
    return true;
  });
  const upstream = await startFakeUpstream();
  const dir = mkdtempSync(join(tmpdir(), "xg-shaping-"));
  const file = join(dir, "bad.yaml");
  writeFileSync(file, `listeners:\n  - name: c2s\n    type: c2s\n    listen: "127.0.0.1:0"\n    upstream: "127.0.0.1:${upstream.port}"\nlimits:\n  c2s: { rate: "fast" }\n`);
  const good = config(upstream.port, { c2s: { rate: "2kb/s", burst: "1s" }, pre_auth: { max_bytes: 0, max_stanzas: 0 } });
  const proxy = await startProxy(good, { logger: createLogger("silent"), configPath: file });
  try {
    const r = await proxy.reload();
    assert.equal(r.ok, false);
    assert.match(r.errors.join("\n"), /bad\.yaml:7:\d+: limits\.c2s\.rate: "fast" is not a rate/);
    assert.equal(await metric(proxy, "xmpp_guard_config_reloads_total", { result: "error" }), 1);
    // The old 2kb/s limit is still in force.
    const c = await rawClient(proxy.listenerAddress("c2s")!.port);
    const f = flood(c);
    const conn = await upstream.nextConn();
    await new Promise((r2) => setTimeout(r2, 1000));
    f.stop();
    assert.ok(conn.bytes().length <= 2000 + 2000 * 1.1 + 300, `${conn.bytes().length} bytes in 1 s under the old limit`);
    c.destroy();
  } finally {
    await proxy.shutdown(0);
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("real Prosody: a limited and an unlimited JID; every message arrives in order; the limit holds only the limited one", { timeout: 60_000 }, async () => {
  const prosody = await startProsody();
  await prosody.createUser("fast", "fast-pw");
  await prosody.createUser("slow", "slow-pw");
  await prosody.createUser("sink", "sink-pw");
  const proxy = await startProxy(configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
    limits: { c2s: { rate: "10kb/s", burst: "1s" }, unlimited_jids: ["fast@localhost"] },
    admin: { listen: null },
  }), { logger: createLogger("silent") });
  const port = proxy.listenerAddress("c2s")!.port;
  const opts = { host: "127.0.0.1", port, domain: prosody.domain, mechanism: "PLAIN" };
  const fast = await connectClient({ ...opts, username: "fast", password: "fast-pw" });
  const slow = await connectClient({ ...opts, username: "slow", password: "slow-pw" });
  const sink = await connectClient({ ...opts, username: "sink", password: "sink-pw" });
  try {
    const N = 150;
    const body = "b".repeat(300); // ≥ 350 bytes per stanza: ≥ 52 kB, ≥ 4.2 s at 10 kB/s after a 10 kB burst
    const send = async (c: typeof fast, tag: string): Promise<number> => {
      const t0 = performance.now();
      for (let i = 0; i < N; i++) await c.send(xml("message", { to: sink.jid, type: "chat" }, xml("body", {}, `${tag} ${i} ${body}`)));
      const from = c.jid;
      await sink.collect((el: XmlElement) => el.attrs.from === from, N, 30_000).then((got) => {
        assert.deepEqual(got.map((m) => m.getChildText("body")), Array.from({ length: N }, (_, i) => `${tag} ${i} ${body}`));
      });
      return (performance.now() - t0) / 1000;
    };
    const [fastSeconds, slowSeconds] = await Promise.all([send(fast, "fast"), send(slow, "slow")]);
    assert.ok(fastSeconds < 2, `unlimited JID took ${fastSeconds.toFixed(2)} s`);
    assert.ok(slowSeconds > 3.5, `limited JID took only ${slowSeconds.toFixed(2)} s`);
  } finally {
    await Promise.all([fast.stop(), slow.stop(), sink.stop()]);
    await proxy.shutdown(0);
    await prosody.stop();
  }
});

test("real Prosody, attacker twins: 0.1 stanzas/s with a burst of 3 holds messages and iqs in every form (counted over 1.5 s)", { timeout: 30_000 }, async (t) => {
  const prosody = await startProsody();
  await prosody.createUser("twin", "twin-pw");
  await prosody.createUser("sink", "sink-pw");
  const proxy = await startProxy(configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
    limits: { c2s: { stanza_rates: { message: { rate: 0.1, burst: 3 }, iq: { rate: 0.1, burst: 3 } } } },
    admin: { listen: null },
  }), { logger: createLogger("silent") });
  const senders: RawSession[] = [];
  let sink: TestClient | undefined;
  try {
    // The sink logs in to Prosody directly: it counts what the server delivered.
    sink = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: prosody.domain, username: "sink", password: "sink-pw", mechanism: "PLAIN" });
    const port = proxy.listenerAddress("c2s")!.port;
    // Two sessions per form, one sending messages and one sending pings: a
    // held stanza holds everything behind it, so each kind needs its own
    // stream. All are measured in the same window; each has its own buckets.
    const login = (resource: string, form: (typeof FORMS)[number]): Promise<RawSession> =>
      rawLogin(port, { domain: "localhost", username: "twin", password: "twin-pw", resource, form });
    const messagers = new Map<string, RawSession>();
    const pingers = new Map<string, RawSession>();
    for (const form of FORMS) {
      messagers.set(form, await login(`m-${form}`, form));
      pingers.set(form, await login(`i-${form}`, form));
    }
    senders.push(...messagers.values(), ...pingers.values());
    for (const form of FORMS) {
      let messages = "";
      let pings = "";
      for (let i = 0; i < 10; i++) {
        messages += writeAs(form, `<message to='sink@localhost' type='chat' id='${form}-${i}'><body>${form} ${i}</body></message>`);
        pings += writeAs(form, `<iq type='get' to='localhost' id='ping-${form}-${i}'><ping xmlns='urn:xmpp:ping'/></iq>`);
      }
      messagers.get(form)!.send(messages);
      pingers.get(form)!.send(pings);
    }
    // Each bucket starts with 3 tokens and gains the next one 10 s later; the
    // pingers' bind request took one of their iq tokens.
    await new Promise((r) => setTimeout(r, 1500));
    const counts: Record<string, { messages: number; pongs: number }> = {};
    for (const form of FORMS) {
      let messages = 0;
      const from = messagers.get(form)!.jid;
      for (;;) {
        try {
          await sink.waitFor((el) => el.is("message") && el.attrs.from === from, 1);
          messages++;
        } catch {
          break;
        }
      }
      const pongs = pingers.get(form)!.take((el) => el.name === "iq" && el.attrs.type === "result" && /^ping-/.test(el.attrs.id ?? "")).length;
      counts[form] = { messages, pongs };
    }
    for (const form of FORMS) {
      await t.test(`${form}: 3 of 10 messages delivered and 2 of 10 pings answered in the first 1.5 s`, () => {
        assert.deepEqual(counts[form], { messages: 3, pongs: 2 }, `all forms: ${JSON.stringify(counts)}`);
      });
    }
  } finally {
    for (const s of senders) s.stop();
    await sink?.stop();
    await proxy.shutdown(0);
    await prosody.stop();
  }
});
