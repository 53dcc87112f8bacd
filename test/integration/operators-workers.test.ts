// The operator's commands in workers mode (the primary asks the workers for
// sessions, kicks and metrics; restore sees every worker holding the state)
// and `run --pretty`; the single-process half is operators.test.ts.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { freePort, startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { metricSum, runCli, startProxyProcess, type ProxyProcess } from "../helpers/proxy-process.js";
import { connectClient, type TestClient } from "../helpers/xmpp-client.js";
import { until } from "../helpers/raw-client.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

function http(port: number, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, timeout: 20_000 }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end();
  });
}


describe("operators: restore and backup with the state in Redis", () => {
  it("say there is nothing to restore or back up here, and change nothing", { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "xg-redis-restore-"));
    try {
      const cfg = join(dir, "c.yaml");
      writeFileSync(cfg, `listeners:\n  - { name: c2s, type: c2s, listen: "127.0.0.1:0", upstream: "127.0.0.1:1" }\nstate: { redis: "redis://127.0.0.1:1/0" }\n`);
      const r = await runCli(["restore", join(dir, "backup.sqlite"), "-c", cfg]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /the state lives in Redis \(state\.redis\), not in a file: there is nothing to restore here/);
      assert.ok(!existsSync(join(dir, "data")));
      // backup likewise: the unused SQLite path is not what to keep.
      const b = await runCli(["backup", join(dir, "backup.sqlite"), "-c", cfg]);
      assert.equal(b.code, 1);
      assert.match(b.stderr, /the state lives in Redis \(state\.redis\), not in a file: back up Redis itself \(redis-cli --rdb FILE\)/);
      assert.ok(!existsSync(join(dir, "backup.sqlite")));
      assert.ok(!existsSync(join(dir, "data")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("operators: logs for people", () => {
  it("run --pretty writes short lines a person reads, not JSON", { timeout: 30_000 }, async () => {
    const [port, admin] = [await freePort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), "xg-pretty-"));
    const cfg = join(dir, "c.yaml");
    writeFileSync(cfg, `listeners:\n  - { name: c2s, type: c2s, listen: "127.0.0.1:${port}", upstream: "127.0.0.1:1" }\nadmin: { listen: "127.0.0.1:${admin}" }\n`);
    const child = spawn(process.execPath, ["--import", "tsx", CLI, "run", "-c", cfg, "--pretty"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await until("the admin line", () => (/admin endpoint listening/.test(out) ? true : undefined), 20_000);
      assert.match(out, /^\d\d:\d\d:\d\d\.\d{3} INFO  listening listener=c2s address=127\.0\.0\.1:\d+ upstream=127\.0\.0\.1:1$/m);
      assert.doesNotMatch(out, /^\{/m);
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("operators: workers mode", () => {
  let prosody: ProsodyInstance;
  let proc: ProxyProcess;
  let dir: string;
  let admin: number;
  let port: number;
  const clients: TestClient[] = [];

  before(async () => {
    prosody = await startProsody();
    await prosody.createUser("alice", "alice-pw");
    await prosody.createUser("bob", "bob-pw");
    dir = mkdtempSync(join(tmpdir(), "xg-ops-w-"));
    admin = await freePort();
    port = await freePort();
    proc = startProxyProcess(`workers: 2
listeners:
  - name: c2s
    type: c2s
    listen: "127.0.0.1:${port}"
    upstream: "127.0.0.1:${prosody.port}"
registration: {}
state:
  path: "${join(dir, "state.sqlite")}"
admin:
  listen: "127.0.0.1:${admin}"
shutdown:
  drain_seconds: 0
log:
  level: info
`);
    await proc.waitForLog((l) => l["msg"] === "workers running", 60_000);
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    proc?.kill("SIGTERM");
    await proc?.exited;
    proc?.cleanup();
    await prosody?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the primary asks the workers: sessions from both, kick by JID, restore refused, counters never go back after a worker dies", { timeout: 90_000 }, async () => {
    for (let i = 0; i < 6; i++) {
      clients.push(await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: i % 2 === 0 ? "alice" : "bob", password: i % 2 === 0 ? "alice-pw" : "bob-pw", resource: `r${i}` }));
    }
    const cfg = ["-c", proc.configPath];
    const listed = await runCli(["sessions", "--json", ...cfg]);
    const all = listed.stdout.trim().split("\n").map((l) => JSON.parse(l) as { sid: string; jid: string; worker: number });
    assert.equal(all.length, 6);
    assert.deepEqual([...new Set(all.map((s) => s.worker))].sort(), [1, 2], "sessions come from both workers");

    const kicked = await runCli(["kick", "--jid", "alice@localhost", ...cfg]);
    assert.equal(kicked.code, 0, kicked.stderr);
    assert.equal(kicked.stdout.trim().split("\n").length, 3);
    await until("alice's sessions gone", async () => {
      const r = await http(admin, "GET", "/sessions?jid=alice@localhost");
      return (JSON.parse(r.body) as { sessions: unknown[] }).sessions.length === 0 ? true : undefined;
    });

    // Every worker holds the state database: restore names both.
    const copy = join(dir, "copy.sqlite");
    assert.equal((await runCli(["backup", copy, ...cfg])).code, 0);
    const restore = await runCli(["restore", copy, ...cfg]);
    assert.equal(restore.code, 1);
    const pids = (proc.logs.find((l) => l["msg"] === "workers running")!["pids"] as number[]).sort((a, b) => a - b);
    assert.match(restore.stderr, new RegExp(`\\(pid ${pids.join(", ")}\\)`));

    const before = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    const connections = metricSum(before, "xmpp_guard_connections_total");
    const durations = metricSum(before, "xmpp_guard_session_duration_seconds_count");
    assert.ok(connections >= 6 && durations >= 3, `${connections} connections, ${durations} durations`);
    assert.equal(before.match(/^process_start_time_seconds /gm)?.length, 1, "one start time: the primary's");
    process.kill(pids[0]!, "SIGKILL");
    await proc.waitForLog((l) => l["code"] === "XPX_ERR_WORKER_EXIT");
    await until("the worker restarted", async () => {
      const m = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      return metricSum(m, "xmpp_guard_workers") === 2 ? true : undefined;
    }, 20_000);
    const after = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    assert.ok(metricSum(after, "xmpp_guard_connections_total") >= connections, "connections_total did not go back");
    assert.ok(metricSum(after, "xmpp_guard_session_duration_seconds_count") >= durations, "the histogram did not go back");
    assert.equal(metricSum(after, "xmpp_guard_worker_restarts_total"), 1);
    assert.ok(existsSync(join(dir, "state.sqlite.lock")));
  });
});
