// Who a server-to-server peer is, with a real Prosody doing dialback
// (XEP-0220). The peer is a raw originating server; Prosody checks its key
// with a scripted authoritative server on loopback (mod_s2s_test_routes
// points the made-up domains there). A stream is authenticated for the
// domains dialback proved, not for whatever the peer wrote in its stream
// header:
//
// - Prosody alone, then through the proxy: a stanza from a domain the stream
//   has not proved ends the stream with not-authorized, in every form.
// - s2sin stanza rates with limits.unlimited_jids: a peer that writes an
//   exempt domain in its header but proves another one is shaped; only a peer
//   that proved the exempt domain is not. Stanzas written prefixed, with the
//   prefix on the header, or with an explicit xmlns are shaped the same.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { metricSum } from "../helpers/corpus.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { s2sPeer, startDialbackAuthority, type DialbackAuthority, type S2sPeer } from "../helpers/s2s-peer.js";
import { FORMS, NS_SERVER, writeAs, type Form } from "../helpers/stanza-forms.js";
import { connectClient, xml, type TestClient } from "../helpers/xmpp-client.js";

const OTHER = "other.test";
const EXEMPT = "exempt.test";

describe("s2s identity: what dialback proved, not what the stream header says", () => {
  let authority: DialbackAuthority;
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let sink: TestClient;
  const peers: S2sPeer[] = [];

  before(async () => {
    authority = await startDialbackAuthority();
    prosody = await startProsody({
      s2s: true,
      extraModules: ["dialback", "s2s_test_routes"],
      extraConfig: `s2s_test_routes = { ["${OTHER}"] = ${authority.port}; ["${EXEMPT}"] = ${authority.port} }`,
    });
    await prosody.createUser("sink", "sink-pw");
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "s2s", type: "s2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.s2sPort!}` }],
      limits: { s2sin: { stanza_rates: { message: { rate: 0.1, burst: 3 } } }, unlimited_jids: [EXEMPT] },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    // The sink logs in to Prosody directly: it sees what the server delivered.
    sink = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: "sink", password: "sink-pw", mechanism: "PLAIN" });
  });

  after(async () => {
    for (const p of peers) p.stop();
    await sink?.stop();
    await proxy?.shutdown(0);
    await prosody?.stop();
    await authority?.close();
  });

  const peer = async (port: number, headerFrom: string, dialbackAs: string, form: Form = "plain"): Promise<S2sPeer> => {
    const p = await s2sPeer(port, { headerFrom, dialbackAs, authority, form });
    peers.push(p);
    return p;
  };

  /** A round trip between the sink and its server: anything Prosody delivered to the sink before it has arrived. */
  let pings = 0;
  const sinkSync = async (): Promise<void> => {
    const id = `sink-ping-${++pings}`;
    await sink.send(xml("iq", { type: "get", id, to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    await sink.waitFor((el) => el.is("iq") && el.attrs.id === id);
  };
  const drain = async (from: string): Promise<number> => {
    let n = 0;
    for (;;) {
      try {
        await sink.waitFor((el) => el.is("message") && el.attrs.from === from, 1);
        n++;
      } catch {
        return n;
      }
    }
  };

  /**
   * The stream error condition an unauthorised stream ends with (the proxy
   * adds its own <text/>, Prosody none), and whether the stanza reached the sink.
   */
  async function unverifiedFrom(port: number, form: Form): Promise<{ streamError: string | undefined; closed: boolean; delivered: number }> {
    const p = await peer(port, EXEMPT, OTHER, form);
    const from = `mallory-${form}@${EXEMPT}/r`;
    p.send(writeAs(form, `<message from='${from}' to='sink@localhost' type='chat' id='u-${form}'><body>not yours</body></message>`, { ns: NS_SERVER }));
    const text = await p.closed(5000).then((t) => t, () => undefined);
    await sinkSync();
    return {
      streamError: /<stream:error><([a-z-]+)/.exec(text ?? p.raw.text())?.[1],
      closed: text !== undefined,
      delivered: await drain(from),
    };
  }

  const NOT_AUTHORIZED = "not-authorized";

  for (const form of FORMS) {
    it(`Prosody alone, ${form}: a stanza from a domain the stream did not prove ends it with not-authorized`, async () => {
      assert.deepEqual(await unverifiedFrom(prosody.s2sPort!, form), { streamError: NOT_AUTHORIZED, closed: true, delivered: 0 });
      // The peer really was verified by dialback, as the other domain.
      assert.ok(authority.verified.some((v) => v.domain === OTHER && v.valid), JSON.stringify(authority.verified));
    });
  }

  for (const form of FORMS) {
    it(`through the proxy, ${form}: the same not-authorized, nothing delivered`, async () => {
      const labels = { condition: "not-authorized", sender: "proxy" };
      const before = await metricSum(proxy, "xmpp_guard_stream_errors_total", labels);
      assert.deepEqual(await unverifiedFrom(proxy.listenerAddress("s2s")!.port, form), { streamError: NOT_AUTHORIZED, closed: true, delivered: 0 });
      // The proxy ended the stream itself: no policy judged the stanza under the claimed domain.
      assert.equal(await metricSum(proxy, "xmpp_guard_stream_errors_total", labels) - before, 1);
    });
  }

  it("s2sin stanza rates (0.1/s, burst 3) with unlimited_jids: 3 of 10 messages in 1.5 s unless dialback proved the exempt domain", async (t) => {
    const port = proxy.listenerAddress("s2s")!.port;
    const cases: Array<{ name: string; header: string; proved: string; form: Form; expected: number }> = [
      ...FORMS.map((form) => ({ name: `header and dialback ${OTHER}, ${form}`, header: OTHER, proved: OTHER, form, expected: 3 })),
      { name: `header claims ${EXEMPT}, dialback proved ${OTHER}`, header: EXEMPT, proved: OTHER, form: "plain", expected: 3 },
      { name: `header and dialback ${EXEMPT} (really exempt)`, header: EXEMPT, proved: EXEMPT, form: "plain", expected: 10 },
    ];
    // One stream per case (each has its own buckets), all measured in the same window.
    const streams: S2sPeer[] = [];
    for (const c of cases) streams.push(await peer(port, c.header, c.proved, c.form));
    for (const [k, c] of cases.entries()) {
      let burst = "";
      for (let i = 0; i < 10; i++) burst += writeAs(c.form, `<message from='s${k}@${c.proved}/r' to='sink@localhost' type='chat' id='s${k}-${i}'><body>${i}</body></message>`, { ns: NS_SERVER });
      streams[k]!.send(burst);
    }
    // Each bucket starts with 3 tokens and gains the next one 10 s later.
    await new Promise((r) => setTimeout(r, 1500));
    await sinkSync();
    const counts: Record<string, number> = {};
    for (const [k, c] of cases.entries()) counts[c.name] = await drain(`s${k}@${c.proved}/r`);
    for (const c of cases) {
      await t.test(`${c.name}: ${c.expected} of 10 delivered`, () => {
        assert.equal(counts[c.name], c.expected, `all cases: ${JSON.stringify(counts)}`);
      });
    }
  });
});
