// Reload under load with real parts: 50 @xmpp/client sessions logged in to a
// real Prosody through xmpp-guard (40 plaintext, 10 over direct TLS) keep
// exchanging messages while the config file, the firewall rules and the TLS
// certificate are rewritten and reloaded several times (one of the rewrites
// invalid, which must change nothing). After each reload a new TLS connection
// gets the new certificate. Counted at the end: 0
// sessions dropped, every message sent delivered once, each rule change in
// force right after its reload. Then a Prosody restart: sessions get the
// server's own stream error, new logins are refused while it is down and work
// again as soon as it is back on its port.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { connect as tlsConnect } from "node:tls";
import { writeSelfSigned } from "../../src/net/gen-cert.js";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { loadConfigFile } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { CLIENT_HEADER, eventually, rawClient } from "../helpers/raw-client.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";

const SESSIONS = 50;
const TLS_SESSIONS = 10; // the last ten, on the direct-TLS listener
const RELOADS = 6;

// The proxy's certificate is self-signed and replaced on every reload; what
// this test checks is which certificate is served, not the chain of trust.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";

/** SHA-256 fingerprint of the certificate a new direct-TLS connection is served. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once("error", reject);
  });
}

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return (m?.values ?? []).filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((n, x) => n + x.value, 0);
}

describe("reload under load (real Prosody, 50 sessions)", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let dir: string;
  let configPath: string;
  let rulesPath: string;
  let certDir: string;
  let certFingerprint = "";
  const clients: TestClient[] = [];

  const writeConfig = async (generation: number, upstreamPort: number, valid = true): Promise<void> => {
    await writeFile(rulesPath, `# generation ${generation}\nKIND: message\nINSPECT: body#=blocked-${generation}\nDROP.\n`);
    if (valid) {
      // A new key and certificate every generation, same file names.
      const { certFile } = await writeSelfSigned(certDir, ["localhost"], { days: 2 });
      certFingerprint = new X509Certificate(await readFile(certFile)).fingerprint256;
    }
    await writeFile(configPath, [
      "listeners:",
      "  - name: c2s",
      "    type: c2s",
      '    listen: "127.0.0.1:0"',
      `    upstream: "127.0.0.1:${upstreamPort}"`,
      "  - name: tls",
      "    type: c2s-tls",
      '    listen: "127.0.0.1:0"',
      `    upstream: "127.0.0.1:${upstreamPort}"`,
      "tls:",
      // off: the plaintext c2s listener stays plaintext.
      "  starttls: off",
      `  certificates: [{ cert: ${JSON.stringify(path.join(certDir, "localhost.crt"))}, key: ${JSON.stringify(path.join(certDir, "localhost.key"))} }]`,
      "firewall:",
      `  scripts: [${JSON.stringify(rulesPath)}]`,
      "  watch: false",
      "limits:",
      // Generous, but different every time, so buckets really are reconfigured.
      `  c2s: { rate: "${200 + generation * 10}kb/s", burst: "2s" }`,
      `max_stanza_size: ${valid ? 65536 + generation * 1024 : "lots"}`,
      "admin:",
      "  listen: null",
      "log:",
      "  level: silent",
      "",
    ].join("\n"));
  };

  before(async () => {
    prosody = await startProsody();
    for (let i = 0; i < SESSIONS; i++) await prosody.createUser(`u${i}`, `pw${i}`);
    dir = await mkdtemp(path.join(os.tmpdir(), "xmpp-guard-reload-"));
    configPath = path.join(dir, "guard.yaml");
    rulesPath = path.join(dir, "rules.pfw");
    certDir = path.join(dir, "certs");
    await writeConfig(0, prosody.port);
    proxy = await startProxy(await loadConfigFile(configPath), { configPath, logger: createLogger("silent") });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await proxy?.shutdown(0);
    await prosody?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("config, rules and certificate reloaded 7 times (one invalid) during traffic: 0 sessions dropped, 0 messages lost, new connections get the new certificate", { timeout: 100_000 }, async () => {
    const port = proxy.listenerAddress("c2s")!.port;
    const tlsPort = proxy.listenerAddress("tls")!.port;
    assert.equal(await servedFingerprint(tlsPort), certFingerprint, "generation 0's certificate");
    for (let i = 0; i < SESSIONS; i += 10) {
      const directTls = i >= SESSIONS - TLS_SESSIONS;
      const batch = await Promise.all(Array.from({ length: 10 }, (_, k) =>
        connectClient({ host: "127.0.0.1", port: directTls ? tlsPort : port, directTls, domain: prosody.domain, username: `u${i + k}`, password: `pw${i + k}`, mechanism: "PLAIN", presence: false, timeoutMs: 20_000 })));
      clients.push(...batch);
    }
    assert.equal(clients.filter((c) => c.xmpp.isSecure()).length, TLS_SESSIONS);
    assert.equal(proxy.sessionCount(), SESSIONS);
    const received = new Array<number>(SESSIONS).fill(0);
    const blockedSeen: string[] = [];
    clients.forEach((c, i) => c.xmpp.on("stanza", (el: XmlElement) => {
      if (!el.is("message")) return;
      const body = el.getChildText("body") ?? "";
      if (body.startsWith("t:")) received[i]! += 1;
      else if (body.startsWith("blocked-") || body.startsWith("probe-")) blockedSeen.push(body);
    }));
    const partner = (i: number): TestClient => clients[i ^ 1]!;

    let sent = 0;
    let running = true;
    const traffic = (async () => {
      for (let round = 0; running; round++) {
        await Promise.all(clients.map((c, i) => c.send(xml("message", { to: partner(i).jid, type: "chat" }, xml("body", {}, `t:${round}:${i}`)))));
        sent += SESSIONS;
        await new Promise((r) => setTimeout(r, 25));
      }
    })();

    const probes: string[] = [];
    let drops = 0;
    for (let g = 1; g <= RELOADS; g++) {
      await new Promise((r) => setTimeout(r, 300));
      if (g === 4) {
        // An invalid rewrite in the middle: refused, nothing changes.
        await writeConfig(g, prosody.port, false);
        const bad = await proxy.reload();
        assert.equal(bad.ok, false);
        assert.match(bad.errors.join("\n"), /guard\.yaml:18:\d+: max_stanza_size: /);
        // Still generation 3's rule: blocked-3 is dropped.
        await clients[0]!.send(xml("message", { to: partner(0).jid, type: "chat" }, xml("body", {}, "blocked-3")));
        drops += 1;
        await eventually(async () => (await metric(proxy, "xmpp_guard_policy_verdicts_total", { verdict: "drop" })) === drops, 10_000, "blocked-3 judged before the next reload");
      }
      const before = certFingerprint;
      await writeConfig(g, prosody.port);
      const r = await proxy.reload();
      assert.deepEqual(r, { ok: true, errors: [] }, `reload ${g}`);
      // New connections get the new certificate at once.
      assert.notEqual(certFingerprint, before);
      assert.equal(await servedFingerprint(tlsPort), certFingerprint, `generation ${g}'s certificate`);
      // The new rule is in force at once; the previous generation's is gone.
      await clients[2]!.send(xml("message", { to: partner(2).jid, type: "chat" }, xml("body", {}, `blocked-${g}`)));
      const probe = `blocked-${g - 1}`;
      probes.push(probe);
      await clients[4]!.send(xml("message", { to: partner(4).jid, type: "chat" }, xml("body", {}, probe)));
      // Judged before the next reload (a stanza still in flight would meet the next generation's rule).
      drops += 1;
      await eventually(async () => (await metric(proxy, "xmpp_guard_policy_verdicts_total", { verdict: "drop" })) === drops, 10_000, `blocked-${g} judged`);
    }
    running = false;
    await traffic;

    const total = (): number => received.reduce((a, b) => a + b, 0);
    await eventually(() => total() === sent, 30_000, `all ${sent} messages delivered (have ${total()})`);
    await eventually(() => blockedSeen.length >= probes.length, 10_000, "probes delivered");

    const dropped = clients.filter((c) => c.xmpp.status !== "online" || c.errors.length > 0).length;
    assert.equal(dropped, 0, `sessions dropped: ${dropped}`);
    assert.equal(proxy.sessionCount(), SESSIONS);
    assert.equal(total(), sent, "every message delivered exactly once");
    // Only the previous generation's words went through (blocked-0 … blocked-5), never the current one's.
    assert.deepEqual([...blockedSeen].sort(), [...probes].sort());
    assert.equal(await metric(proxy, "xmpp_guard_config_reloads_total", { result: "ok" }), RELOADS);
    assert.equal(await metric(proxy, "xmpp_guard_config_reloads_total", { result: "error" }), 1);
    // One drop per reload, plus blocked-3 during the invalid rewrite.
    assert.equal(await metric(proxy, "xmpp_guard_policy_verdicts_total", { verdict: "drop" }), RELOADS + 1);
    process.stdout.write(`# reload under load: ${SESSIONS} sessions (${TLS_SESSIONS} direct TLS), ${RELOADS + 1} reloads (1 refused, ${RELOADS} new certificates), ${sent} messages, 0 lost, ${dropped} sessions dropped\n`);
  });

  it("Prosody restart: sessions told, new logins refused while down, served again as soon as it is back on its port", { timeout: 60_000 }, async () => {
    const port = proxy.listenerAddress("c2s")!.port;
    const oldPort = prosody.port;
    const victim = clients[10]!;
    await prosody.stop();
    // Prosody closes its sessions itself on SIGTERM (system-shutdown), or the proxy reports the drop.
    await eventually(() => victim.xmpp.status === "offline" || victim.xmpp.status === "disconnect", 15_000, "session ended");
    await eventually(() => proxy.sessionCount() === 0, 15_000, "all proxied sessions released");

    const down = await rawClient(port);
    down.write(CLIENT_HEADER);
    assert.match(await down.waitFor((t) => t.includes("</stream:stream>"), 10_000), /<remote-connection-failed /);

    // Back where it was: the proxy needs nothing (no reload) to serve again.
    prosody = await startProsody({ port: oldPort });
    await prosody.createUser("u0", "pw0");
    await prosody.createUser("u1", "pw1");
    const a = await connectClient({ host: "127.0.0.1", port, domain: prosody.domain, username: "u0", password: "pw0", mechanism: "PLAIN" });
    const b = await connectClient({ host: "127.0.0.1", port, domain: prosody.domain, username: "u1", password: "pw1", mechanism: "PLAIN" });
    clients.push(a, b);
    await a.send(xml("message", { to: b.jid, type: "chat" }, xml("body", {}, "after restart")));
    await b.waitFor((el) => el.getChildText("body") === "after restart", 10_000);
    assert.ok(await metric(proxy, "xmpp_guard_upstream_failures_total", { reason: "refused" }) >= 1);
  });
});
