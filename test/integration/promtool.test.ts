// promtool (Debian package `prometheus`, installed by .ci/run) lints a real
// /metrics scrape of a running proxy that has carried some traffic, and the
// alert rules in contrib/. Skipped, saying so, only where promtool is absent.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startFakeUpstream, type FakeUpstream } from "../helpers/fake-upstream.js";
import { CLIENT_HEADER, eventually, rawClient } from "../helpers/raw-client.js";

const PROMTOOL = spawnSync("promtool", ["--version"], { stdio: "ignore" }).status === 0 ? "promtool" : null;
const skip = PROMTOOL === null ? "promtool not found on PATH (Debian package `prometheus`; .ci/run installs it)" : false;
const ALERTS = fileURLToPath(new URL("../../contrib/prometheus/alerts.yml", import.meta.url));
const ALERT_TESTS = fileURLToPath(new URL("../../contrib/prometheus/alerts.test.yml", import.meta.url));

function promtool(args: string[], stdin?: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL!, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    child.stdin.end(stdin ?? "");
  });
}

let upstream: FakeUpstream;
let proxy: RunningProxy;

before(async () => {
  if (skip) return;
  upstream = await startFakeUpstream();
  proxy = await startProxy(configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstream.port}` }],
    admin: { listen: "127.0.0.1:0" },
    log: { level: "silent" },
  }), { logger: createLogger("silent") });
});

after(async () => {
  if (skip) return;
  await proxy.shutdown(0);
  await upstream.close();
});

test("promtool check metrics passes on a real scrape after traffic", { skip }, async () => {
  const port = proxy.listenerAddress("c2s")!.port;
  // A good session with a few stanzas both ways, and a bad one (restricted XML).
  const good = await rawClient(port);
  good.write(CLIENT_HEADER);
  const conn = await upstream.nextConn();
  await good.waitFor((t) => t.includes("</stream:features>"));
  good.write("<presence/><message to='a@localhost'><body>hi</body></message><iq type='get' id='1'/>");
  await eventually(() => conn.text().includes("<iq type='get' id='1'/>"), 5000, "stanzas upstream");
  conn.socket.write("<message from='a@localhost'><body>back</body></message>");
  await good.waitFor((t) => t.includes("back"));
  const bad = await rawClient(port);
  bad.write(CLIENT_HEADER + "<message><!-- x --></message>");
  await bad.waitFor((t) => t.includes("</stream:stream>"));

  const res = await fetch(`http://127.0.0.1:${proxy.adminAddress()!.port}/metrics`);
  assert.equal(res.status, 200);
  const body = await res.text();
  // The scrape really carries the traffic (so the lint ran on labelled series).
  assert.match(body, /^xmpp_guard_stanzas_total\{listener="c2s",direction="in",kind="message"\} 1$/m);
  assert.match(body, /^xmpp_guard_stream_errors_total\{listener="c2s",condition="restricted-xml",sender="proxy"\} 1$/m);
  // Node's own metrics under their standard names (GC samples appear only after a collection ran).
  assert.match(body, /^# TYPE nodejs_gc_duration_seconds histogram$/m);
  const lint = await promtool(["check", "metrics"], body);
  assert.equal(lint.code, 0, `promtool check metrics:\n${lint.out}`);
  assert.equal(lint.out.trim(), "", lint.out);
  good.destroy();
});

test("promtool check metrics does fail on a bad exposition (the check above can fail)", { skip }, async () => {
  const lint = await promtool(["check", "metrics"], "# HELP foo_total x\n# TYPE foo_total gauge\nfoo_total 1\n");
  assert.notEqual(lint.code, 0);
  assert.match(lint.out, /_total/);
});

test("promtool check rules passes on contrib/prometheus/alerts.yml", { skip }, async () => {
  const r = await promtool(["check", "rules", ALERTS]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS: \d+ rules found/);
});

test("promtool test rules: the alert unit tests pass (the first reload failure after a start fires)", { skip }, async () => {
  const r = await promtool(["test", "rules", ALERT_TESTS]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS/);
});
