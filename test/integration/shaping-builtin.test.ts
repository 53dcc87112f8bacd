// mod_limits keeps its built-in limit for a session type the `limits` table
// does not name. Through a real Prosody (s2s with dialback against a scripted
// authority): with `limits` naming only c2s, an incoming s2s stream is shaped
// at Prosody's built-in s2sin limit (30 KiB/s, 2 s burst), so 100 KB sent at
// once pauses it; with `s2sin: null` written out it is not shaped at all.
// Counted through the proxy's throttle metric, never timed.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { metricSum } from "../helpers/corpus.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { s2sPeer, startDialbackAuthority, type DialbackAuthority, type S2sPeer } from "../helpers/s2s-peer.js";
import { connectClient, type TestClient } from "../helpers/xmpp-client.js";

const REMOTE = "remote.test";

describe("limits naming only c2s: s2sin keeps Prosody's built-in limit", { timeout: 60_000 }, () => {
  let authority: DialbackAuthority;
  let prosody: ProsodyInstance;
  let sink: TestClient;
  const proxies: RunningProxy[] = [];
  const peers: S2sPeer[] = [];

  before(async () => {
    authority = await startDialbackAuthority();
    prosody = await startProsody({
      s2s: true,
      extraModules: ["dialback", "s2s_test_routes"],
      extraConfig: `s2s_test_routes = { ["${REMOTE}"] = ${authority.port} }`,
    });
    await prosody.createUser("sink", "sink-pw");
    sink = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: "sink", password: "sink-pw", mechanism: "PLAIN" });
  });

  after(async () => {
    for (const p of peers) p.stop();
    await sink?.stop();
    for (const p of proxies) await p.shutdown(0);
    await prosody?.stop();
    await authority?.close();
  });

  /** 100 messages of about 1 KB written at once through a proxy with `limits`; returns the seconds it spent paused. */
  const send100k = async (limits: Record<string, unknown>, tag: string): Promise<number> => {
    const proxy = await startProxy(configFromObject({
      listeners: [{ name: "s2s", type: "s2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.s2sPort!}` }],
      limits,
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    proxies.push(proxy);
    const p = await s2sPeer(proxy.listenerAddress("s2s")!.port, { headerFrom: REMOTE, dialbackAs: REMOTE, authority });
    peers.push(p);
    const body = "x".repeat(1000);
    let out = "";
    for (let i = 0; i < 100; i++) out += `<message from='bulk@${REMOTE}/r' to='sink@localhost' type='chat' id='${tag}${i}'><body>${body}</body></message>`;
    p.send(out);
    await sink.collect((el) => el.is("message") && (el.attrs.id ?? "").startsWith(tag), 100, 30_000);
    return metricSum(proxy, "xmpp_guard_throttled_seconds_total", { listener: "s2s" });
  };

  it("only c2s named: 100 KB at once over s2s is paused (over the 60 KiB burst of 30 KiB/s)", async () => {
    assert.ok(await send100k({ c2s: { rate: "3kb/s" } }, "a") > 0);
  });

  it("s2sin: null written out: not shaped", async () => {
    assert.equal(await send100k({ c2s: { rate: "3kb/s" }, s2sin: null }, "b"), 0);
  });
});
