// The corpus cases marked `prosody: true`, replayed through xmpp-guard in
// front of a real Prosody: the proxy's own refusals look the same with a real
// server behind, valid split multi-byte input reaches Prosody and is parsed,
// and what the proxy deliberately leaves to the server (namespace prefixes,
// duplicate attributes on child elements) ends in the server's own
// <not-well-formed/>, relayed and counted with sender="upstream". A logged-in
// @xmpp/client session keeps working throughout.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient } from "../helpers/xmpp-client.js";
import { rawClient } from "../helpers/raw-client.js";
import { caseBytes, deliver, expectedStreamError, loadCorpus, metricSum } from "../helpers/corpus.js";

const corpus = loadCorpus();
const cases = corpus.cases.filter((c) => c.prosody && !c.pending);

let prosody: ProsodyInstance;
let proxy: RunningProxy;
let port: number;
let alice: TestClient;

before(async () => {
  prosody = await startProsody();
  await prosody.createUser("alice", "alice-pw");
  proxy = await startProxy(configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
    admin: { listen: null },
    log: { level: "silent" },
    ...corpus.config,
  }), { logger: createLogger("silent") });
  port = proxy.listenerAddress("c2s")!.port;
  alice = await connectClient({ host: "127.0.0.1", port, domain: prosody.domain, username: "alice", password: "alice-pw" });
});

after(async () => {
  await alice?.stop();
  await proxy?.shutdown(0);
  await prosody?.stop();
});

let pings = 0;
async function aliceWorks(): Promise<void> {
  const id = `ping-${++pings}`;
  await alice.send(xml("iq", { type: "get", to: prosody.domain, id }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  const reply = await alice.waitFor((el) => el.name === "iq" && el.attrs.id === id, 10_000);
  assert.equal(reply.attrs.type, "result");
}

test("there are Prosody cases of each kind", () => {
  const outcomes = new Set(cases.map((c) => c.expect.outcome === "forwarded-unchanged" && c.expect.withProsody ? "server-refuses" : c.expect.outcome));
  assert.deepEqual([...outcomes].sort(), ["forwarded-unchanged", "server-refuses", "stream-error"]);
});

for (const c of cases) {
  test(`${c.id} (real Prosody): ${c.why}`, async () => {
    const bytes = caseBytes(c);
    const labels = { listener: "c2s" };
    const e = c.expect;
    const client = await rawClient(port);
    if (e.outcome === "stream-error") {
      assert.ok(e.code !== null);
      const before = await metricSum(proxy, "xmpp_guard_stream_errors_total", { ...labels, condition: e.condition, sender: "proxy" });
      await deliver(c, bytes, client, proxy, "c2s");
      const text = await client.waitFor((t) => t.includes("</stream:stream>"), 10_000);
      assert.ok(text.endsWith(expectedStreamError(e.condition, e.code)), text.slice(-300));
      assert.equal(await metricSum(proxy, "xmpp_guard_stream_errors_total", { ...labels, condition: e.condition, sender: "proxy" }) - before, 1);
    } else if (e.outcome === "forwarded-unchanged" && e.withProsody) {
      const cond = e.withProsody.condition;
      const before = await metricSum(proxy, "xmpp_guard_stream_errors_total", { ...labels, condition: cond, sender: "upstream" });
      const proxyBefore = await metricSum(proxy, "xmpp_guard_stream_errors_total", { ...labels, sender: "proxy" });
      await deliver(c, bytes, client, proxy, "c2s");
      const text = await client.waitFor((t) => t.includes("</stream:stream>"), 10_000);
      // Prosody's header came first, so this error is the server's, relayed unchanged.
      assert.match(text, /^<\?xml version='1\.0'\?><stream:stream [^>]*from='localhost'/);
      assert.match(text, new RegExp(`<stream:error><${cond} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`), text.slice(-300));
      await client.closed();
      assert.equal(await metricSum(proxy, "xmpp_guard_stream_errors_total", { ...labels, condition: cond, sender: "upstream" }) - before, 1);
      assert.equal(await metricSum(proxy, "xmpp_guard_stream_errors_total", { ...labels, sender: "proxy" }) - proxyBefore, 0);
    } else if (e.outcome === "forwarded-unchanged") {
      // Valid input split inside every multi-byte character: Prosody parses it
      // and answers the next stanza; no stream error from anyone.
      const errorsBefore = await metricSum(proxy, "xmpp_guard_stream_errors_total", labels);
      await deliver(c, bytes, client, proxy, "c2s");
      client.write("<iq type='get' id='corpus-done' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
      const text = await client.waitFor((t) => /id=(['"])corpus-done\1/.test(t) || t.includes("</stream:stream>"), 10_000);
      assert.doesNotMatch(text, /stream:error/, text.slice(-300));
      assert.match(text, /<iq [^>]*id=(['"])corpus-done\1/);
      assert.equal(await metricSum(proxy, "xmpp_guard_stream_errors_total", labels) - errorsBefore, 0);
    } else {
      assert.fail(`${c.id}: outcome ${e.outcome} not replayed against Prosody`);
    }
    client.destroy();
    await aliceWorks();
  });
}
