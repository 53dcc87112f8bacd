// The state database broken under a running proxy (the real CLI process):
// with a real Prosody behind it, logged-in sessions keep exchanging messages
// while the state file is deleted; the proxy logs and counts the loss, shows
// it on /readyz and in xmpp_guard_state_faulted, refuses registration with
// wait/internal-server-error, stays alive, and a SIGHUP opens the file again.
// Then with workers: 2, a file an older version left in WAL mode is
// converted once by the primary, and a loss is seen by every worker.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { startFakeUpstream } from "../helpers/fake-upstream.js";
import { freePort, haveProsody, startProsody } from "../helpers/prosody.js";
import { httpRequest, metricSum, startProxyProcess, type ProxyProcess } from "../helpers/proxy-process.js";
import { until, CLIENT_HEADER, rawClient } from "../helpers/raw-client.js";
import { connectClient, xml, type TestClient } from "../helpers/xmpp-client.js";

const REPLY = /<iq [^>]*id=["']reg1["'][^>]*(\/>|>[\s\S]*?<\/iq>)/;
const STORE_ERROR = /<error type=["']wait["']><internal-server-error xmlns=["']urn:ietf:params:xml:ns:xmpp-stanzas["']\/><\/error>/;

/** One XEP-0077 registration attempt on a fresh pre-auth stream; the server's or the proxy's answer. */
async function register(port: number, username: string): Promise<string> {
  const c = await rawClient(port);
  try {
    c.write(CLIENT_HEADER);
    await c.waitFor((t) => t.includes("</stream:features>"));
    c.write(`<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>${username}</username><password>pw-${username}</password></query></iq>`);
    const text = await c.waitFor((t) => REPLY.test(t));
    return text.match(REPLY)![0];
  } finally {
    c.destroy();
  }
}

async function chat(from: TestClient, to: TestClient, body: string): Promise<void> {
  await from.send(xml("message", { to: to.jid, type: "chat" }, xml("body", {}, body)));
  await to.waitFor((el) => el.is("message") && el.getChildText("body") === body, 5000);
}

/** One c2s listener in front of `upstream`, registration on, state in `statePath`. */
function stateConfig(port: number, upstream: number, admin: number, statePath: string): string {
  return `listeners:
  - name: c2s
    type: c2s
    listen: "127.0.0.1:${port}"
    upstream: "127.0.0.1:${upstream}"
admin:
  listen: "127.0.0.1:${admin}"
registration: {}
state:
  path: "${statePath}"
shutdown:
  drain_seconds: 1
log:
  level: info
`;
}

async function metrics(admin: number): Promise<string> {
  return (await httpRequest(admin, "GET", "/metrics")).body;
}


function alive(proc: ProxyProcess): boolean {
  return proc.child.exitCode === null && proc.child.signalCode === null;
}

test("state file deleted under a running proxy: sessions go on, registration refused, logged, counted, still alive; SIGHUP reopens", { skip: !haveProsody() && "prosody not installed", timeout: 110_000 }, async () => {
  const prosody = await startProsody();
  const stateDir = mkdtempSync(join(tmpdir(), "xg-state-faults-"));
  const statePath = join(stateDir, "state.sqlite");
  const port = await freePort();
  const admin = await freePort();
  const proc = startProxyProcess(stateConfig(port, prosody.port, admin, statePath));
  const clients: TestClient[] = [];
  try {
    await proc.waitForLog((l) => l["msg"] === "admin endpoint listening", 60_000);
    await prosody.createUser("alice", "alice-pw");
    await prosody.createUser("bob", "bob-pw");
    const login = async (username: string): Promise<TestClient> => {
      const c = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username, password: `${username}-pw`, mechanism: "PLAIN" });
      clients.push(c);
      return c;
    };
    const alice = await login("alice");
    const bob = await login("bob");
    await chat(alice, bob, "before");
    assert.match(await register(port, "first"), /type=["']result["']/, "registration works while the file is there");

    // Break it: the file goes away under the open store.
    rmSync(statePath);
    const lost = await proc.waitForLog((l) => l["code"] === "XPX_ERR_STATE_FAULT" && l["msg"] === "state database lost; registration is refused until a reload or restart", 10_000);
    assert.equal(lost["level"], "error");
    assert.match(String(lost["err"]), /was deleted or moved away while open/);

    // The data path does not notice: both directions, on sessions that were open all along.
    await chat(alice, bob, "after");
    await chat(bob, alice, "and back");
    assert.deepEqual([...alice.errors, ...bob.errors], []);

    // What needs the state is refused with the stage's store error.
    const refused = await register(port, "second");
    assert.match(refused, /type=["']error["']/, refused);
    assert.match(refused, STORE_ERROR, refused);

    const body = await metrics(admin);
    assert.equal(metricSum(body, "xmpp_guard_state_faulted"), 1);
    assert.equal(metricSum(body, "xmpp_guard_state_errors_total", { op: "check" }), 1, "the periodic check found it once");
    assert.equal(metricSum(body, "xmpp_guard_state_errors_total", { op: "lookup" }), 1, "the refused registration's lookup");
    assert.equal(metricSum(body, "xmpp_guard_registration_refusals_total", { reason: "store-error" }), 1);
    const ready = await httpRequest(admin, "GET", "/readyz");
    assert.equal(ready.status, 200, "still ready: new sessions are served");
    const readyBody = JSON.parse(ready.body) as { status: string; degraded?: string[] };
    assert.equal(readyBody.status, "ready");
    assert.match(readyBody.degraded?.[0] ?? "", /^state: .*state\.sqlite: was deleted or moved away while open/);
    assert.equal((await httpRequest(admin, "GET", "/healthz")).status, 200);
    assert.ok(alive(proc), "the proxy process is alive");

    // A new session is served too.
    const late = await login("alice");
    await chat(late, bob, "from a new session");

    // A reload opens the file again (a new, empty one here); registration resumes.
    proc.kill("SIGHUP");
    await proc.waitForLog((l) => l["msg"] === "state database reopened; registration resumes", 10_000);
    assert.ok(existsSync(statePath));
    assert.match(await register(port, "third"), /type=["']result["']/);
    const after = await metrics(admin);
    assert.equal(metricSum(after, "xmpp_guard_state_faulted"), 0);
    assert.equal(JSON.parse((await httpRequest(admin, "GET", "/readyz")).body).degraded, undefined);
    await chat(alice, bob, "after the reload");
    assert.ok(alive(proc));
  } finally {
    for (const c of clients) await c.stop();
    if (alive(proc)) {
      proc.kill("SIGTERM");
      assert.equal(await proc.exited, 0);
    }
    proc.cleanup();
    await prosody.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("workers: 2 — the primary converts a WAL-mode file once; a lost file shows on /readyz for every worker", { timeout: 90_000 }, async () => {
  const upstream = await startFakeUpstream();
  const stateDir = mkdtempSync(join(tmpdir(), "xg-state-faults-"));
  const statePath = join(stateDir, "state.sqlite");
  // What an older xmpp-guard left: an xmpp-guard database in WAL mode.
  {
    const { SqliteStore } = await import("../../src/state/sqlite-store.js");
    SqliteStore.open(statePath).close();
    const raw = new Database(statePath);
    raw.pragma("journal_mode = WAL");
    raw.close();
    assert.deepEqual([...readFileSync(statePath).subarray(18, 20)], [2, 2]);
  }
  const port = await freePort();
  const admin = await freePort();
  const proc = startProxyProcess(`workers: 2\n${stateConfig(port, upstream.port, admin, statePath)}`);
  try {
    await proc.waitForLog((l) => l["msg"] === "workers running", 60_000);
    assert.deepEqual([...readFileSync(statePath).subarray(18, 20)], [1, 1], "converted to a rollback journal");
    assert.ok(!existsSync(`${statePath}-wal`) && !existsSync(`${statePath}-shm`));
    assert.equal(JSON.parse((await httpRequest(admin, "GET", "/readyz")).body).degraded, undefined);

    rmSync(statePath);
    const ready = await until("both workers report the loss", async () => {
      const r = await httpRequest(admin, "GET", "/readyz");
      const b = JSON.parse(r.body) as { degraded?: string[] };
      return (b.degraded?.length ?? 0) === 2 ? { status: r.status, degraded: b.degraded! } : undefined;
    });
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.degraded.map((d) => d.replace(/:.*/, "")).sort(), ["worker 1", "worker 2"]);
    assert.equal(metricSum(await metrics(admin), "xmpp_guard_state_faulted"), 2, "summed over the workers");
    assert.ok(alive(proc));
    proc.kill("SIGTERM");
    assert.equal(await proc.exited, 0);
  } finally {
    proc.cleanup();
    await upstream.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});
