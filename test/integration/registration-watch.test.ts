// Registration hygiene end to end, real Prosody behind the proxy and real
// registration clients in front (slixmpp's xep_0077 and raw XML):
// - a logged-in watcher gets the notification, sent by the proxy as an XEP-0114
//   component through Prosody;
// - the same IP is throttled with Prosody's error, another IP (from a trusted
//   PROXY header) is not;
// - `admin`, `pаypal` (Cyrillic а) and a deleted account's name are refused;
// - `users import` (CLI) seeds a name so its look-alike is refused;
// - all of it survives a proxy restart, and backup → wipe → restore (CLI)
//   gives the same answers.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { encodeProxyV1 } from "../../src/net/proxy-protocol.js";
import { SqliteStore } from "../../src/state/sqlite-store.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { CLIENT_HEADER, eventually, rawClient } from "../helpers/raw-client.js";
import { connectClient, xml, type TestClient } from "../helpers/xmpp-client.js";

const CLI = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));
const SLIX = fileURLToPath(new URL("../helpers/slixmpp_register.py", import.meta.url));
const SECRET = "component-secret-for-tests";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const THROTTLED = `<error type='wait'><policy-violation xmlns='${STANZAS}'/><text xmlns='${STANZAS}'>Too many registrations from this IP address recently</text></error>`;
const NOT_ACCEPTABLE = `<error type='modify'><not-acceptable xmlns='${STANZAS}'/></error>`;

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 99, stdout, stderr });
    });
  });
}

const cli = (...args: string[]) => run(process.execPath, ["--import", "tsx", CLI, ...args]);

/** Raw XML registration; `via` sends a PROXY v1 header with that source first (the trusted "lb" listener). */
async function register(port: number, username: string, password: string, via?: string): Promise<string> {
  const c = await rawClient(port);
  try {
    if (via !== undefined) c.write(encodeProxyV1({ address: via, port: 40000 }, { address: "127.0.0.1", port }));
    c.write(CLIENT_HEADER);
    await c.waitFor((t) => t.includes("</stream:features>"));
    c.write(`<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>${username}</username><password>${password}</password></query></iq>`);
    const re = /<iq [^>]*id=["']reg1["'][^>]*(\/>|>[\s\S]*?<\/iq>)/;
    const text = await c.waitFor((t) => re.test(t));
    return text.match(re)![0];
  } finally {
    c.destroy();
  }
}

async function slixRegister(port: number, username: string, password: string): Promise<Record<string, string>> {
  const r = await run("/usr/bin/python3", [SLIX, "127.0.0.1", String(port), "localhost", username, password]);
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  assert.ok(last.startsWith("{"), `slixmpp printed no result (exit ${r.code}): ${r.stdout} ${r.stderr.slice(-800)}`);
  return JSON.parse(last) as Record<string, string>;
}

async function metric(p: RunningProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

describe("registration watch, throttle, names, tombstones, restart, backup/restore, import", { timeout: 110_000 }, () => {
  let prosody: ProsodyInstance;
  let dir: string;
  let configPath: string;
  let configObject: Record<string, unknown>;
  let proxy: RunningProxy | null = null;
  let watcher: TestClient | null = null;
  let c2s = 0;
  let lb = 0;

  const startGuard = async (): Promise<void> => {
    proxy = await startProxy(configFromObject(configObject), { logger: createLogger("silent") });
    c2s = proxy.listenerAddress("c2s")!.port;
    lb = proxy.listenerAddress("lb")!.port;
  };
  const stopGuard = async (): Promise<void> => {
    await watcher?.stop();
    watcher = null;
    await proxy?.shutdown(0);
    proxy = null;
  };
  const loginWatcher = async (): Promise<TestClient> => {
    watcher = await connectClient({ host: "127.0.0.1", port: c2s, domain: "localhost", username: "watcher", password: "watcher-pw", mechanism: "PLAIN" });
    return watcher;
  };
  const notification = (c: TestClient, username: string) =>
    c.waitFor((el) => el.is("message") && el.attrs.from === "guard.localhost" && (el.getChildText("body") ?? "").includes(`User ${username} just`), 10_000);

  /**
   * The answers that must survive a restart and a restore. Fresh IPs for the
   * name checks: a look-alike refusal costs a token (as in Prosody).
   */
  const sameAnswers = async (tag: string, net: number): Promise<void> => {
    assert.match(await register(c2s, "admin", "pw"), new RegExp(`type='error'>${NOT_ACCEPTABLE}`), `${tag}: admin`);
    assert.match(await register(lb, "p\u0430ypal", "pw", `198.51.100.${net}`), new RegExp(`type='error'>${NOT_ACCEPTABLE}`), `${tag}: pаypal`);
    assert.match(await register(lb, "leaver", "pw", `198.51.100.${net + 1}`), new RegExp(`type='error'>${NOT_ACCEPTABLE}`), `${tag}: leaver`);
    assert.match(await register(c2s, "fromloopback", "pw"), new RegExp(`type='error'>${THROTTLED.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`), `${tag}: throttle`);
    const p = proxy!;
    assert.equal(await metric(p, "xmpp_guard_registration_refusals_total", { reason: "reserved" }), 1, tag);
    assert.equal(await metric(p, "xmpp_guard_registration_refusals_total", { reason: "look-alike" }), 1, tag);
    assert.equal(await metric(p, "xmpp_guard_registration_refusals_total", { reason: "tombstoned" }), 1, tag);
    assert.equal(await metric(p, "xmpp_guard_registration_refusals_total", { reason: "throttled" }), 1, tag);
  };

  before(async () => {
    prosody = await startProsody({ components: [{ jid: "guard.localhost", secret: SECRET }] });
    await prosody.createUser("watcher", "watcher-pw");
    dir = mkdtempSync(join(tmpdir(), "xg-regwatch-"));
    configObject = {
      listeners: [
        { name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` },
        { name: "lb", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}`, accept_proxy_from: ["127.0.0.0/8"] },
      ],
      registration: { min_seconds_between_registrations: 300, registration_watchers: ["watcher@localhost"] },
      component: { jid: "guard.localhost", secret: SECRET, upstream: `127.0.0.1:${prosody.componentPort}` },
      state: { path: join(dir, "state.sqlite") },
      admin: { listen: null },
    };
    configPath = join(dir, "xmpp-guard.yaml");
    writeFileSync(configPath, JSON.stringify(configObject)); // JSON is YAML
    await startGuard();
  });

  after(async () => {
    await stopGuard();
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("slixmpp registers; the watcher is told through the component; the same IP is then throttled, another IP is not", async () => {
    const w = await loginWatcher();
    const ok = await slixRegister(c2s, "paypal", "pw-paypal");
    assert.deepEqual(ok, { result: "ok" });
    const msg = await notification(w, "paypal");
    assert.equal(msg.attrs.type, "chat");
    assert.equal(msg.getChildText("body"), "User paypal just registered on localhost from 127.0.0.1");
    // Same IP inside the window: Prosody's exact error, and the server never saw it.
    const again = await register(c2s, "second", "pw");
    assert.equal(again, `<iq id='reg1' type='error'>${THROTTLED}</iq>`);
    // Another IP through the trusted balancer's PROXY header: passes, and $ip is the real one.
    assert.match(await register(lb, "carol", "pw-carol", "203.0.113.9"), /type=["']result["']/);
    const msg2 = await notification(w, "carol");
    assert.equal(msg2.getChildText("body"), "User carol just registered on localhost from 203.0.113.9");
    assert.equal(await metric(proxy!, "xmpp_guard_registration_notifications_total", { result: "sent" }), 2);
    assert.equal(await metric(proxy!, "xmpp_guard_registrations_total"), 2);
    // Prosody really created the accounts: paypal can log in.
    const paypal = await connectClient({ host: "127.0.0.1", port: c2s, domain: "localhost", username: "paypal", password: "pw-paypal", mechanism: "PLAIN" });
    await paypal.stop();
  });

  it("admin and pаypal are refused; a deleted account's name is refused after deletion", async () => {
    assert.equal(await register(lb, "admin", "pw", "203.0.113.30"), `<iq id='reg1' type='error'>${NOT_ACCEPTABLE}</iq>`);
    assert.equal(await register(lb, "p\u0430ypal", "pw", "203.0.113.31"), `<iq id='reg1' type='error'>${NOT_ACCEPTABLE}</iq>`);
    // A client registers, logs in, deletes its account; the server confirms.
    assert.match(await register(lb, "leaver", "pw-leaver", "203.0.113.32"), /type=["']result["']/);
    const leaver = await connectClient({ host: "127.0.0.1", port: c2s, domain: "localhost", username: "leaver", password: "pw-leaver", mechanism: "PLAIN" });
    try {
      await leaver.send(xml("iq", { type: "set", id: "del1" }, xml("query", { xmlns: "jabber:iq:register" }, xml("remove"))));
      const res = await leaver.waitFor((el) => el.is("iq") && el.attrs.id === "del1");
      assert.equal(res.attrs.type, "result");
    } finally {
      await leaver.stop();
    }
    await eventually(async () => (await metric(proxy!, "xmpp_guard_account_deletions_total")) === 1, 5000, "deletion recorded");
    assert.equal(await register(lb, "leaver", "pw", "203.0.113.33"), `<iq id='reg1' type='error'>${NOT_ACCEPTABLE}</iq>`);
    const p = proxy!;
    assert.equal(await metric(p, "xmpp_guard_registration_refusals_total", { reason: "reserved" }), 1);
    assert.equal(await metric(p, "xmpp_guard_registration_refusals_total", { reason: "look-alike" }), 1);
    assert.equal(await metric(p, "xmpp_guard_registration_refusals_total", { reason: "tombstoned" }), 1);
  });

  it("users import (CLI, while running) seeds a name so its look-alike is refused", async () => {
    const list = join(dir, "users.txt");
    writeFileSync(list, "| bigbank@localhost\n| paypal@localhost\nOK: Showing all 2 users\n");
    const r = await cli("users", "import", list, "--config", configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /: 1 imported, 1 already known, 0 refused$/m);
    assert.equal(await register(lb, "bigb\u0430nk", "pw", "203.0.113.40"), `<iq id='reg1' type='error'>${NOT_ACCEPTABLE}</iq>`);
    const bad = join(dir, "bad.txt");
    writeFileSync(bad, "ok@localhost\nno host here\n");
    const r2 = await cli("users", "import", bad, "--config", configPath);
    assert.equal(r2.code, 1);
    assert.equal(r2.stderr.split("\n").filter((l) => l.startsWith(bad))[0], `${bad}:2: expected one account per line: "no host here"`);
  });

  it("survives a proxy restart; the component reconnects and notifies again", async () => {
    await stopGuard();
    await startGuard();
    await sameAnswers("after restart", 10);
    const w = await loginWatcher();
    assert.match(await register(lb, "dave", "pw", "203.0.113.50"), /type=["']result["']/);
    assert.equal((await notification(w, "dave")).getChildText("body"), "User dave just registered on localhost from 203.0.113.50");
  });

  it("backup (online) → wipe → restore (CLI) gives the same answers", async () => {
    const backupFile = join(dir, "backup.sqlite");
    const b = await cli("backup", backupFile, "--config", configPath);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /accounts, 1 tombstones, \d+ throttles/);
    await stopGuard();
    const statePath = join(dir, "state.sqlite");
    for (const f of [statePath, `${statePath}-wal`, `${statePath}-shm`]) rmSync(f, { force: true });
    assert.equal(existsSync(statePath), false);
    // The wipe is real: an empty store knows nothing.
    const empty = SqliteStore.open(statePath);
    assert.equal(empty.countAccounts(), 0);
    assert.equal(empty.getTombstone("localhost", "leaver"), undefined);
    empty.close();
    const r = await cli("restore", backupFile, "--config", configPath);
    assert.equal(r.code, 0, r.stderr);
    await startGuard();
    await sameAnswers("after restore", 20);
  });
});
