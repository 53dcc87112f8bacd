// workers: 2 (docs/deploy.md, "All cores: `workers`"): the real CLI as a cluster primary with two workers in
// front of a scripted upstream. Connections spread over both workers, the
// admin port aggregates their metrics, a reload reaches both (and a bad one
// reaches neither), a killed worker is restarted, SIGTERM drains and exits 0.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { writeFileSync } from "node:fs";
import { startFakeUpstream } from "../helpers/fake-upstream.js";
import { freePort } from "../helpers/prosody.js";
import { httpRequest, metricSum, startProxyProcess } from "../helpers/proxy-process.js";
import { until } from "../helpers/raw-client.js";

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
const CONNECTIONS = 60;

function openSession(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port });
    let got = "";
    const timer = setTimeout(() => reject(new Error("no stream features within 20 s")), 20_000);
    s.on("error", reject);
    s.on("connect", () => s.write(HEADER));
    s.on("data", (d: Buffer) => {
      got += d.toString();
      if (got.includes("</stream:features>")) {
        clearTimeout(timer);
        s.removeAllListeners("data");
        resolve(s);
      }
    });
  });
}


test("workers: 2 — spread, aggregated metrics, coordinated reload, restart, drain", { timeout: 110_000 }, async () => {
  const upstream = await startFakeUpstream();
  const port = await freePort();
  const admin = await freePort();
  const yaml = (level: string): string => `workers: 2
listeners:
  - name: c2s
    type: c2s
    listen: "127.0.0.1:${port}"
    upstream: "127.0.0.1:${upstream.port}"
admin:
  listen: "127.0.0.1:${admin}"
shutdown:
  drain_seconds: 1
log:
  level: ${level}
`;
  const proc = startProxyProcess(yaml("info"));
  const sockets: Socket[] = [];
  try {
    const running = await proc.waitForLog((l) => l["msg"] === "workers running", 60_000);
    const pids = running["pids"] as number[];
    assert.equal(pids.length, 2);
    assert.notEqual(pids[0], pids[1]);
    assert.ok(!pids.includes(proc.child.pid!), "workers are separate processes from the primary");
    // Each worker logs its own listener; both share the one port.
    await until("both workers listening", async () =>
      proc.logs.filter((l) => l["msg"] === "listening" && l["address"] === `127.0.0.1:${port}`).length >= 2 ? true : undefined);

    for (let i = 0; i < CONNECTIONS; i++) sockets.push(await openSession(port));
    const scraped = await until("every session counted", async () => {
      const m = await httpRequest(admin, "GET", "/metrics");
      return metricSum(m.body, "xmpp_guard_sessions") === CONNECTIONS ? m.body : undefined;
    });
    const w1 = metricSum(scraped, "xmpp_guard_worker_sessions", { worker: "1" });
    const w2 = metricSum(scraped, "xmpp_guard_worker_sessions", { worker: "2" });
    assert.ok(w1 > 0 && w2 > 0, `both workers hold sessions (${w1} + ${w2})`);
    assert.equal(w1 + w2, CONNECTIONS, "per-worker sessions add up to the aggregated gauge");
    assert.equal(metricSum(scraped, "xmpp_guard_connections_total", { listener: "c2s" }), CONNECTIONS, "counters are summed across workers");
    assert.equal(metricSum(scraped, "xmpp_guard_workers"), 2);
    assert.equal(upstream.conns.length, CONNECTIONS);

    // A bad reload is refused once, by the primary; no worker reloads.
    writeFileSync(proc.configPath, yaml("loud"));
    const bad = await httpRequest(admin, "POST", "/reload");
    assert.equal(bad.status, 422, bad.body);
    assert.match(bad.body, /log\.level/);
    let m = (await httpRequest(admin, "GET", "/metrics")).body;
    assert.equal(metricSum(m, "xmpp_guard_config_reloads_total"), 0, "no worker saw the bad config");
    assert.equal(metricSum(m, "xmpp_guard_cluster_reloads_total", { result: "error" }), 1);

    // A good reload (SIGHUP to the primary) reaches both workers.
    writeFileSync(proc.configPath, yaml("debug"));
    proc.kill("SIGHUP");
    // The primary counts the cluster reload once every worker has answered, a
    // few ticks after the workers count theirs: a scrape in between may see
    // the one without the other, so wait for both.
    m = await until("both workers reloaded", async () => {
      const body = (await httpRequest(admin, "GET", "/metrics")).body;
      const workers = metricSum(body, "xmpp_guard_config_reloads_total", { result: "ok" });
      const cluster = metricSum(body, "xmpp_guard_cluster_reloads_total", { result: "ok" });
      assert.ok(workers <= 2 && cluster <= 1, `never more than one reload per worker (${workers}, cluster ${cluster})`);
      return workers === 2 && cluster === 1 ? body : undefined;
    });
    assert.equal(metricSum(m, "xmpp_guard_cluster_reloads_total", { result: "error" }), 1, "the refused reload is still the only error");
    assert.equal(metricSum(m, "xmpp_guard_sessions"), CONNECTIONS, "sessions survive the reload");

    // A crashed worker is restarted (and logged); its sessions are gone, the others stay.
    process.kill(pids[0]!, "SIGKILL");
    const restart = await proc.waitForLog((l) => l["msg"] === "worker exited unexpectedly; restarting");
    assert.equal(restart["pid"], pids[0]);
    m = await until("a replacement worker", async () => {
      const body = (await httpRequest(admin, "GET", "/metrics")).body;
      return metricSum(body, "xmpp_guard_workers") === 2 && metricSum(body, "xmpp_guard_worker_restarts_total") === 1 ? body : undefined;
    });
    const ready = await httpRequest(admin, "GET", "/readyz");
    assert.equal(ready.status, 200);

    // SIGTERM: every worker drains, the primary exits 0.
    proc.kill("SIGTERM");
    assert.equal(await proc.exited, 0);
    assert.ok(proc.logs.some((l) => l["msg"] === "shutdown complete" && l["worker"] === undefined), "the primary finished its shutdown");
    assert.ok(proc.logs.filter((l) => l["msg"] === "shutdown complete" && l["worker"] !== undefined).length >= 2, "each worker drained");
  } catch (err) {
    const body = await httpRequest(admin, "GET", "/metrics").then((r) => `${r.status} ${r.body}`, (e: unknown) => String(e));
    process.stderr.write(`metrics: ${body.split("\n").filter((l) => /reload|sessions|worker/.test(l)).join("\n")}\n`);
    process.stderr.write(`last proxy logs:\n${proc.logs.slice(-12).map((l) => JSON.stringify(l)).join("\n")}\n`);
    throw err;
  } finally {
    for (const s of sockets) s.destroy();
    proc.cleanup();
    await upstream.close();
  }
});
