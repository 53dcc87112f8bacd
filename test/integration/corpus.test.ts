// Replays every case of the hostile-input corpus (test/corpus/cases.json)
// through a live proxy with a scripted upstream: the exact stream error (or
// byte-identical forwarding, or a silent close for PROXY-header failures),
// nothing of the offending input passed on, the metric moved by exactly the
// expected amount, and a good session opened before the corpus keeps working
// after every case. The real-Prosody replay is corpus-prosody.test.ts.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { ERRORS } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { writeSelfSigned } from "../../src/net/gen-cert.js";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FEATURES, SERVER_HEADER, startFakeUpstream, type FakeUpstream, type UpstreamConn } from "../helpers/fake-upstream.js";
import { CLIENT_HEADER, eventually, rawClient, type RawClient } from "../helpers/raw-client.js";
import { caseBytes, deliver, expectedStreamError, loadCorpus, metricSum, PROXY_HEADER_RE, type CorpusCase } from "../helpers/corpus.js";

const corpus = loadCorpus();
const LISTENER = { plain: "c2s", "trusted-proxy": "lb", "direct-tls": "tls" } as const;

let upstream: FakeUpstream;
let proxy: RunningProxy;
let bystander: RawClient;
let bystanderConn: UpstreamConn;
let round = 0;

before(async () => {
  upstream = await startFakeUpstream();
  // The direct-TLS cases need a c2s-tls listener with a certificate.
  const certDir = mkdtempSync(join(tmpdir(), "xg-corpus-tls-"));
  const { certFile, keyFile } = await writeSelfSigned(certDir, ["localhost"], { days: 2 });
  proxy = await startProxy(configFromObject({
    listeners: [
      { name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstream.port}` },
      { name: "lb", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstream.port}`, accept_proxy_from: ["127.0.0.0/8"] },
      { name: "tls", type: "c2s-tls", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstream.port}` },
    ],
    admin: { listen: null },
    log: { level: "silent" },
    ...corpus.config,
    // starttls off: the plaintext listeners stay plaintext; only "tls" speaks TLS.
    tls: { ...(corpus.config.tls as object), starttls: "off", certificates: [{ cert: certFile, key: keyFile }] },
  }), { logger: createLogger("silent") });
  bystander = await rawClient(proxy.listenerAddress("c2s")!.port);
  bystander.write(CLIENT_HEADER);
  bystanderConn = await upstream.nextConn();
  await bystander.waitFor((t) => t.includes("</stream:features>"));
  // Authenticate it (SASL success, stream restart), so pre-auth limits do not apply to it.
  const auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGJ5AHB3</auth>";
  bystander.write(auth);
  await eventually(() => bystanderConn.text().endsWith(auth), 5000, "auth upstream");
  bystanderConn.socket.write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  await bystander.waitFor((t) => t.endsWith("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"));
  bystander.write(CLIENT_HEADER);
  await eventually(() => bystanderConn.text().endsWith(CLIENT_HEADER), 5000, "restarted header upstream");
  bystanderConn.socket.write(SERVER_HEADER + "<stream:features/>");
  await bystander.waitFor((t) => t.endsWith("<stream:features/>"));
});

after(async () => {
  bystander?.destroy();
  await proxy?.shutdown(0);
  await upstream?.close();
});

/** The good session still relays both ways. */
async function bystanderWorks(): Promise<void> {
  const n = ++round;
  bystander.write(`<presence id='by-${n}'/>`);
  await eventually(() => bystanderConn.text().endsWith(`<presence id='by-${n}'/>`), 5000, "bystander stanza upstream");
  bystanderConn.socket.write(`<message id='back-${n}'><body>ok</body></message>`);
  await bystander.waitFor((t) => t.endsWith(`<message id='back-${n}'><body>ok</body></message>`));
}

test("the corpus manifest is complete and consistent", () => {
  const ids = corpus.cases.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length, "unique ids");
  for (const c of corpus.cases) {
    assert.ok(caseBytes(c).length > 0, `${c.id}: file ${c.file}`);
    if (c.expect.outcome === "stream-error" && c.expect.code !== null) {
      assert.equal(ERRORS[c.expect.code].condition, c.expect.condition, `${c.id}: the catalogue maps ${c.expect.code} to ${c.expect.condition}`);
    }
    if (!c.pending) assert.ok(c.metrics.length > 0, `${c.id}: names a metric`);
  }
  // Every hostile input the issues name has at least one live case.
  const live = corpus.cases.filter((c) => !c.pending).map((c) => c.id).join(" ");
  for (const kind of ["dtd", "entity-internal", "entity-external", "billion-laughs", "comment", "pi-", "oversize", "deep-nesting",
    "attribute-flood", "duplicate-attribute", "invalid-utf8", "split-multibyte", "proxy-", "tls-", "pre-auth", "unbound-prefix", "nul-", "slow-drip"]) {
    assert.ok(live.includes(kind), `no live case for ${kind}`);
  }
});

for (const c of corpus.cases) {
  test(`${c.id}: ${c.why}`, { skip: c.pending ?? false }, async () => {
    const listener = LISTENER[c.listener];
    const bytes = caseBytes(c);
    const labelled = c.metrics.map((m) => ({ ...m, labels: { listener, ...m.labels } }));
    // Proxy-header results are counted before a session exists; their labels include the listener too.
    const before = await Promise.all(labelled.map((m) => metricSum(proxy, m.name, m.labels)));
    const conns = upstream.conns.length;

    const client = await rawClient(proxy.listenerAddress(listener)!.port);
    await deliver(c, bytes, client, proxy, listener);

    const e = c.expect;
    if (e.outcome === "stream-error") {
      assert.ok(e.code !== null);
      const tail = expectedStreamError(e.condition, e.code, e.text);
      const text = await client.waitFor((t) => t.includes("</stream:stream>"), 10_000);
      assert.ok(text.endsWith(tail), `${c.id}: expected …${tail}\ngot: ${text.slice(-300)}`);
      const head = text.slice(0, text.length - tail.length);
      assert.ok(head === SERVER_HEADER + FEATURES || (PROXY_HEADER_RE.test(head) && PROXY_HEADER_RE.exec(head)![0] === head),
        `${c.id}: before the error only a stream header (the server's, or the proxy's own): ${head.slice(0, 300)}`);
      await client.closed();
      // Nothing of the offending input reached the server: what it got is a
      // prefix of the input (whole frames), plus the proxy's clean stream close.
      for (const conn of upstream.conns.slice(conns)) {
        await eventually(() => conn.ended || conn.socket.destroyed, 5000, "upstream side closed");
        let got = conn.bytes();
        const close = Buffer.from("</stream:stream>");
        if (got.subarray(got.length - close.length).equals(close) && !bytes.subarray(0, got.length).equals(got)) got = got.subarray(0, got.length - close.length);
        assert.ok(bytes.subarray(0, got.length).equals(got), `${c.id}: upstream got bytes that are not a prefix of the input: ${got.toString().slice(-200)}`);
        assert.ok(got.length < bytes.length, `${c.id}: the whole input reached the upstream`);
      }
    } else if (e.outcome === "forwarded-unchanged") {
      await eventually(() => upstream.conns.length > conns, 5000, "upstream dialed");
      assert.equal(upstream.conns.length, conns + 1);
      const conn = upstream.conns[conns]!;
      await eventually(() => conn.bytes().length >= bytes.length, 5000, "all bytes upstream");
      assert.ok(conn.bytes().equals(bytes), `${c.id}: upstream received exactly the input`);
      await client.waitFor((t) => t.includes("</stream:features>"));
      assert.equal(client.text(), SERVER_HEADER + FEATURES, "no stream error");
      assert.ok(!client.socket.destroyed, "still open");
      client.write("</stream:stream>");
      await eventually(() => conn.text().endsWith("</stream:stream>"), 5000, "close upstream");
      conn.socket.end("</stream:stream>");
      await client.closed();
    } else {
      await client.closed(10_000);
      const back = client.text();
      // RFC 8446 §6: a TLS alert record (content type 21) is all a TLS port may answer with.
      if (e.tlsAlert === true && back.length > 0) assert.equal(back.charCodeAt(0), 0x15, `${c.id}: only a TLS alert back: ${JSON.stringify(back)}`);
      else assert.equal(back, "", `${c.id}: not a byte back`);
      assert.equal(upstream.conns.length, conns, `${c.id}: no upstream connection`);
    }

    for (const [i, m] of labelled.entries()) {
      await eventually(async () => (await metricSum(proxy, m.name, m.labels)) - before[i]! === m.delta, 2000, `${m.name}`).catch(() => {});
      assert.equal((await metricSum(proxy, m.name, m.labels)) - before[i]!, m.delta, `${c.id}: ${m.name}${JSON.stringify(m.labels)} moved by ${m.delta}`);
    }
    client.destroy();
    await bystanderWorks();
  });
}

test("after the whole corpus: the bystander session is still the same one, and no session leaked", async () => {
  await bystanderWorks();
  assert.equal(upstream.conns.indexOf(bystanderConn), 0);
  await eventually(() => proxy.sessionCount() === 1, 10_000, "only the bystander left");
});
