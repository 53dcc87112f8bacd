// What an operator runs, against the real CLI in front of a real Prosody:
// restore refused while the proxy holds the state database; a failed login
// logged and counted (and the fail2ban filter of docs/deploy.md matching the
// real log line with fail2ban-regex); "policy action" lines for a bounce;
// shadow rules that log and change nothing, hot-reloaded; sessions listed and
// kicked through the CLI; the admin endpoint's token and browser checks;
// `reload` printing a refused reload's errors; metrics that exist at 0 from
// the start under their standard names; `about`; /readyz following the
// upstream. Then the same sessions, kick, restore and metrics in workers mode.
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { freePort, startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { metricSum, runCli, startProxyProcess, type ProxyProcess } from "../helpers/proxy-process.js";
import { connectClient, xml, type TestClient } from "../helpers/xmpp-client.js";
import { until } from "../helpers/raw-client.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TOKEN = "test-admin-token-0123456789";
const HAVE_F2B = spawnSync("fail2ban-regex", ["--version"], { stdio: "ignore" }).status === 0;


/** An admin request as a browser or a script would make it: any headers, any host. */
function http(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers, timeout: 20_000 }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const bearer = { authorization: `Bearer ${TOKEN}` };


/** The fail2ban filter docs/deploy.md tells operators to install, verbatim. */
function fail2banFilterFromDocs(): string {
  const doc = readFileSync(join(ROOT, "docs/deploy.md"), "utf8");
  const m = /```ini\n(# \/etc\/fail2ban\/filter\.d\/xmpp-guard\.conf\n[\s\S]*?)```/.exec(doc);
  assert.ok(m, "docs/deploy.md has the fail2ban filter block");
  return m[1]!;
}

const REAL_RULES = `::preroute
# Nobody writes to the sink.
KIND: message
TO: sink@localhost
BOUNCE=policy-violation (no writing to the sink)

# Marks set by the shadow rules must not reach this rule.
ORIGIN MARKED: shadowed
DROP.
`;

const SHADOW_V1 = `::preroute
# Candidate: drop spam.
KIND: message
INSPECT: body#=spam
MARK ORIGIN=shadowed
DROP.
`;

const SHADOW_V2 = `::preroute
# Candidate 2: bounce anything with eggs.
KIND: message
INSPECT: body#=eggs
BOUNCE=not-acceptable
`;

describe("operators: one proxy in front of a real Prosody, driven by the CLI", () => {
  let prosody: ProsodyInstance;
  let proc: ProxyProcess;
  let dir: string;
  let admin: number;
  let port: number;
  let yaml: (extra?: string) => string;
  const clients: TestClient[] = [];
  const cfg = (): string[] => ["-c", proc.configPath];

  before(async () => {
    prosody = await startProsody();
    await prosody.createUser("alice", "alice-pw");
    await prosody.createUser("bob", "bob-pw");
    dir = mkdtempSync(join(tmpdir(), "xg-ops-"));
    writeFileSync(join(dir, "real.pfw"), REAL_RULES);
    writeFileSync(join(dir, "shadow.pfw"), SHADOW_V1);
    admin = await freePort();
    port = await freePort();
    yaml = (extra = "") => `listeners:
  - name: c2s
    type: c2s
    listen: "127.0.0.1:${port}"
    upstream: "127.0.0.1:${prosody.port}"
registration: {}
state:
  path: "${join(dir, "state.sqlite")}"
firewall:
  scripts: ["${join(dir, "real.pfw")}"]
  shadow: ["${join(dir, "shadow.pfw")}"]
admin:
  listen: "127.0.0.1:${admin}"
  token: "${TOKEN}"
shutdown:
  drain_seconds: 0
log:
  level: info
${extra}`;
    proc = startProxyProcess(yaml());
    await proc.waitForLog((l) => l["msg"] === "admin endpoint listening");
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    proc?.kill("SIGTERM");
    await proc?.exited;
    proc?.cleanup();
    await prosody?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const login = async (username: string, password: string, resource?: string): Promise<TestClient> => {
    const c = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username, password, mechanism: "PLAIN", ...(resource ? { resource } : {}) });
    clients.push(c);
    return c;
  };

  const scrape = async (): Promise<string> => (await http(admin, "GET", "/metrics")).body;

  it("metrics: every known series exists at 0 from the start, process metrics under their standard names", async () => {
    const m = await scrape();
    assert.match(m, /^xmpp_guard_config_reloads_total\{result="error"\} 0$/m);
    assert.match(m, /^xmpp_guard_firewall_reloads_total\{result="error"\} 0$/m);
    assert.match(m, /^xmpp_guard_auth_failures_total\{listener="c2s",reason="not-authorized"\} 0$/m);
    assert.match(m, /^xmpp_guard_upstream_failures_total\{listener="c2s",reason="refused"\} 0$/m);
    assert.match(m, /^xmpp_guard_firewall_shadow_verdicts_total\{verdict="drop"\} 0$/m);
    assert.match(m, /^xmpp_guard_registration_refusals_total\{reason="throttled"\} 0$/m);
    assert.match(m, /^xmpp_guard_session_duration_seconds_count\{listener="c2s"\} 0$/m);
    assert.match(m, /^process_start_time_seconds \d+$/m);
    assert.match(m, /^nodejs_eventloop_lag_p99_seconds /m);
    assert.match(m, /^process_open_fds \d+$/m);
    assert.doesNotMatch(m, /^xmpp_guard_process_|^xmpp_guard_nodejs_/m);
  });

  it("restore: refused while the proxy holds the state database, with what to do instead; backup works online", async () => {
    const state = join(dir, "state.sqlite");
    const copy = join(dir, "backup.sqlite");
    const b = await runCli(["backup", copy, ...cfg()]);
    assert.equal(b.code, 0, b.stderr);
    const before = statSync(state).mtimeMs;
    const r = await runCli(["restore", copy, ...cfg()]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`a running xmpp-guard has this state database open \\(pid ${proc.child.pid}\\)`));
    assert.match(r.stderr, /Nothing was changed\. To restore:\n {2}1\. stop the proxy/);
    assert.equal(statSync(state).mtimeMs, before, "the live file was not touched");
  });

  it("a failed login: one warn line with the address, counted; the docs' fail2ban filter matches it (fail2ban-regex)", async (t) => {
    await assert.rejects(connectClient({ host: "127.0.0.1", port, domain: "localhost", username: "alice", password: "wrong", mechanism: "PLAIN" }), /not-authorized/);
    const line = await proc.waitForLog((l) => l["code"] === "XPX_ERR_AUTH_FAILED");
    assert.equal(line["level"], "warn");
    assert.equal(line["msg"], "authentication failed");
    assert.equal(line["ip"], "127.0.0.1");
    assert.equal(line["user"], "alice");
    assert.equal(line["mechanism"], "PLAIN");
    assert.equal(line["reason"], "not-authorized");
    assert.ok(!JSON.stringify(proc.logs).includes("wrong"), "the password is never logged");
    assert.equal(metricSum(await scrape(), "xmpp_guard_auth_failures_total", { reason: "not-authorized" }), 1);
    if (!HAVE_F2B) {
      t.skip("fail2ban-regex not installed (Debian package fail2ban; .ci/run installs it)");
      return;
    }
    const logFile = join(dir, "proxy.log");
    writeFileSync(logFile, proc.logs.map((l) => JSON.stringify(l)).join("\n") + "\n");
    const filter = join(dir, "xmpp-guard.conf");
    writeFileSync(filter, fail2banFilterFromDocs());
    const r = spawnSync("fail2ban-regex", ["-v", logFile, filter], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`Lines: ${proc.logs.length} lines, 0 ignored, 1 matched`));
    assert.match(r.stdout, /127\.0\.0\.1/);
  });

  it("a bounce by a rule writes a 'policy action' line: sid, jid, ip, listener, rule file:line, action, reason", async () => {
    const alice = await login("alice", "alice-pw", "desk");
    await alice.send(xml("message", { to: "sink@localhost", id: "s1", type: "chat" }, xml("body", {}, "hello")));
    const err = await alice.waitFor((el) => el.attrs.id === "s1" && el.attrs.type === "error");
    assert.ok(err.getChild("error")?.getChild("policy-violation"));
    const line = await proc.waitForLog((l) => l["msg"] === "policy action" && l["stage"] === "firewall");
    assert.equal(line["level"], "info");
    assert.equal(line["jid"], alice.jid);
    assert.equal(line["ip"], "127.0.0.1");
    assert.equal(line["listener"], "c2s");
    assert.match(String(line["sid"]), /^[a-z2-9]{7}$/);
    assert.equal(line["rule"], `${join(dir, "real.pfw")}:3`);
    assert.equal(line["action"], "bounce");
    assert.match(String(line["reason"]), /real\.pfw:3 BOUNCE/);
    assert.deepEqual(line["stanza"], { name: "message", type: "chat", id: "s1", to: "sink@localhost" });
  });

  it("shadow rules count and log what they would do and change nothing; their marks stay theirs; an edit is picked up", async () => {
    const alice = await login("alice", "alice-pw", "shadow");
    const bob = await login("bob", "bob-pw", "shadow");
    for (let i = 0; i < 2; i++) await alice.send(xml("message", { to: bob.jid, id: `spam${i}`, type: "chat" }, xml("body", {}, "spam")));
    // Both arrive: the shadow DROP did nothing, and its MARK ORIGIN did not trigger the real rule.
    await bob.collect((el) => el.is("message") && String(el.attrs.id).startsWith("spam"), 2);
    const line = await proc.waitForLog((l) => l["msg"] === "policy action" && l["shadow"] === true);
    assert.equal(line["action"], "would drop");
    assert.equal(line["rule"], `${join(dir, "shadow.pfw")}:3`);
    assert.equal(line["jid"], alice.jid);
    const m = await scrape();
    assert.equal(metricSum(m, "xmpp_guard_firewall_shadow_verdicts_total", { verdict: "drop" }), 2);
    assert.equal(metricSum(m, "xmpp_guard_policy_verdicts_total", { stage: "firewall" }), 1, "only the sink bounce of the test before");
    // Hot reload, like the real rules: write a new file over the old one.
    writeFileSync(join(dir, "shadow.pfw.new"), SHADOW_V2);
    renameSync(join(dir, "shadow.pfw.new"), join(dir, "shadow.pfw"));
    await proc.waitForLog((l) => l["msg"] === "shadow rules reloaded");
    await alice.send(xml("message", { to: bob.jid, id: "eggs1", type: "chat" }, xml("body", {}, "eggs")));
    await bob.waitFor((el) => el.attrs.id === "eggs1");
    await until("a would-bounce", () => proc.logs.find((l) => l["action"] === "would bounce"));
    assert.equal(metricSum(await scrape(), "xmpp_guard_firewall_shadow_verdicts_total", { verdict: "bounce" }), 1);
  });

  it("sessions and kick: list by JID (table and JSON), close one with <policy-violation/>", async () => {
    const victim = await login("bob", "bob-pw", "kickme");
    const table = await runCli(["sessions", "--jid", "bob@localhost", ...cfg()]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^SID +LISTENER +IP +JID\/DOMAIN +STATE +TLS +AGE$/m);
    assert.match(table.stdout, new RegExp(`bob@localhost/kickme +bound`));
    const json = await runCli(["sessions", "--json", "--jid", victim.jid, ...cfg()]);
    const list = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(list.length, 1);
    assert.equal(list[0]!["jid"], victim.jid);
    assert.equal(list[0]!["ip"], "127.0.0.1");
    const sid = String(list[0]!["sid"]);
    const kicked = await runCli(["kick", sid, ...cfg()]);
    assert.equal(kicked.code, 0, kicked.stderr);
    assert.match(kicked.stdout, new RegExp(`^closed ${sid} ${victim.jid.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} 127\\.0\\.0\\.1 \\(c2s\\)$`, "m"));
    await until("the client to see the stream error", () => victim.errors.find((e) => /policy-violation/.test(String((e as { condition?: string }).condition ?? e.message))));
    await until("the session gone", async () => {
      const r = await http(admin, "GET", `/sessions?jid=${encodeURIComponent(victim.jid)}`, bearer);
      return (JSON.parse(r.body) as { sessions: unknown[] }).sessions.length === 0 ? true : undefined;
    });
    const again = await runCli(["kick", sid, ...cfg()]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`no session ${sid}`));
    assert.ok(proc.logs.some((l) => l["msg"] === "policy action" && l["stage"] === "admin" && l["sid"] === sid));
  });

  it("admin: the token, the Host and browser checks on what changes state or shows sessions", async () => {
    assert.equal((await http(admin, "POST", "/reload")).status, 401, "no token");
    assert.equal((await http(admin, "GET", "/sessions", { authorization: "Bearer wrong-token-0123456789" })).status, 401);
    assert.equal((await http(admin, "GET", "/sessions", bearer)).status, 200);
    // A page on another site, even holding the token somehow.
    assert.equal((await http(admin, "POST", "/reload", { ...bearer, origin: "http://evil.example" })).status, 403);
    assert.equal((await http(admin, "POST", "/reload", { ...bearer, "sec-fetch-site": "cross-site" })).status, 403);
    // A form post: the content types a form can send.
    for (const type of ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"]) {
      assert.equal((await http(admin, "POST", "/reload", { ...bearer, "content-type": type }, "a=b")).status, 415, type);
    }
    // A rebound name: Host must be loopback.
    assert.equal((await http(admin, "GET", "/metrics", { host: "evil.example:9470" })).status, 403);
    // Scrapers and health checks need nothing.
    assert.equal((await http(admin, "GET", "/metrics")).status, 200);
    assert.equal((await http(admin, "GET", "/readyz")).status, 200);
  });

  it("reload: a refused reload prints its errors and exits 1; a good one exits 0; the alert's series moved from 0", async () => {
    const good = readFileSync(proc.configPath, "utf8");
    writeFileSync(proc.configPath, good.replace("  level: info", "  level: loud"));
    const bad = await runCli(["reload", ...cfg()]);
    writeFileSync(proc.configPath, good);
    assert.equal(bad.code, 1, bad.stdout);
    assert.match(bad.stderr, /xmpp-guard\.yaml:\d+:\d+: log\.level: must be one of/);
    assert.match(bad.stderr, /reload refused \(1 error\): the previous configuration stays in force/);
    assert.equal(metricSum(await scrape(), "xmpp_guard_config_reloads_total", { result: "error" }), 1);
    const ok = await runCli(["reload", ...cfg()]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^reloaded/);
  });

  it("about: versions, the config, rules with their counts, the state backend, and the running process", async () => {
    const r = await runCli(["about", ...cfg()]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^xmpp-guard \d+\.\d+\.\d+$/m);
    assert.match(r.stdout, /^ {2}node {10}v\d+/m);
    assert.match(r.stdout, /^ {2}sqlite {8}3\.\d+/m);
    assert.match(r.stdout, /real\.pfw: 2 rules$/m);
    assert.match(r.stdout, /shadow\.pfw: 1 rules$/m);
    assert.match(r.stdout, /^ {2}state {9}sqlite .*state\.sqlite$/m);
    assert.match(r.stdout, new RegExp(`^ {2}running {7}pid ${proc.child.pid}, up \\d+ s, \\d+ sessions?$`, "m"));
  });

  it("users import takes the real `prosodyctl shell user list HOST` output as it is (its banner on stdout included)", async () => {
    const listed = await prosody.prosodyctl(["shell", "user", "list", "localhost"]);
    assert.equal(listed.code, 0, listed.stderr);
    const file = join(dir, "users.txt");
    writeFileSync(file, listed.stdout);
    const r = await runCli(["users", "import", file, ...cfg()]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /2 imported|0 imported, 2 already known|1 imported, 1 already known/);
    assert.match(r.stdout, /0 refused/);
  });

  it("histograms: session duration and upstream connect time were observed", async () => {
    const m = await scrape();
    assert.ok(metricSum(m, "xmpp_guard_session_duration_seconds_count") >= 1);
    assert.ok(metricSum(m, "xmpp_guard_upstream_connect_seconds_count") >= 3);
    assert.match(m, /^xmpp_guard_upstream_connect_seconds_bucket\{le="0\.01",listener="c2s"\} \d+$/m);
  });

  it("/readyz says 503 with the reason once the upstream is gone", async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await prosody.stop();
    const r = await until("readyz 503", async () => {
      const x = await http(admin, "GET", "/readyz");
      return x.status === 503 ? x : undefined;
    });
    const body = JSON.parse(r.body) as { status: string; reasons: string[] };
    assert.equal(body.status, "not ready");
    assert.match(body.reasons[0]!, /^upstream of c2s \(127\.0\.0\.1:\d+\): ECONNREFUSED$/);
  });
});
