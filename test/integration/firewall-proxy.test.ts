// Firewall rules at the edge with real parts: a real Prosody behind the
// proxy, @xmpp/client in front. DROP, BOUNCE (the exact error the client
// receives), LIMIT; then the rule file is edited on disk and the new
// behaviour applies within 1 s without dropping a session; then a broken edit
// keeps the previous rules and check-rules reports the line.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";
import { eventually } from "../helpers/raw-client.js";

const CLI = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

const RULES_V1 = `
%RATE burst3: 0.01 (burst 300)

::preroute
# Drop anything to the blackhole account.
TO: blackhole@localhost
DROP.

# Bounce messages containing the magic word.
KIND: message
INSPECT: body#~=FORBIDDEN
BOUNCE=policy-violation (No forbidden words)

# At most 3 messages to the limited account, then bounce.
KIND: message
TO: limited@localhost
LIMIT: burst3
BOUNCE=resource-constraint (Slow down)
`;

const RULES_V2 = RULES_V1.replace("INSPECT: body#~=FORBIDDEN", "INSPECT: body#~=VERBOTEN");

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

describe("firewall rules through the proxy, with a real Prosody", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let dir: string;
  let rules: string;
  let alice: TestClient;
  let bob: TestClient;
  const logs: Array<Record<string, unknown>> = [];

  before(async () => {
    prosody = await startProsody();
    for (const u of ["alice", "bob", "limited", "blackhole"]) await prosody.createUser(u, `${u}-pw`);
    dir = mkdtempSync(join(tmpdir(), "xg-fw-"));
    rules = join(dir, "edge.pfw");
    writeFileSync(rules, RULES_V1);
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      firewall: { scripts: [rules], watch: true },
      admin: { listen: null },
    }), { logger: createLogger("info", { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) }) });
    const port = proxy.listenerAddress("c2s")!.port;
    const login = (u: string): Promise<TestClient> => connectClient({ host: "127.0.0.1", port, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN" });
    alice = await login("alice");
    bob = await login("bob");
  });

  after(async () => {
    await Promise.all([alice?.stop(), bob?.stop()]);
    await proxy?.shutdown(0);
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const chat = (to: string, body: string, id: string) => xml("message", { to, type: "chat", id }, xml("body", {}, body));
  const fromAlice = (el: XmlElement): boolean => el.is("message") && el.attrs.from === alice.jid;

  it("DROP: a message to blackhole never reaches the server; others do", async () => {
    await alice.send(chat("blackhole@localhost", "into the void", "d1"));
    await alice.send(chat(bob.jid, "marker-1", "d2"));
    const got = await bob.waitFor((el) => fromAlice(el) && el.getChildText("body") === "marker-1");
    assert.ok(got);
    assert.ok(await metric(proxy, "xmpp_guard_firewall_rule_hits_total", { action: "DROP" }) >= 1);
  });

  it("BOUNCE: the client receives exactly the error Prosody's mod_firewall sends", async () => {
    await alice.send(chat(bob.jid, "this is FORBIDDEN", "b1"));
    const err = await alice.waitFor((el) => el.is("message") && el.attrs.id === "b1");
    assert.equal(err.attrs.type, "error");
    assert.equal(err.attrs.to, alice.jid);
    assert.equal(err.attrs.from, bob.jid);
    const e = err.getChild("error")!;
    assert.equal(e.attrs.type, "modify");
    assert.ok(e.getChild("policy-violation", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    assert.equal(e.getChildText("text", "urn:ietf:params:xml:ns:xmpp-stanzas"), "No forbidden words");
  });

  it("LIMIT: the fourth message to limited@ bounces with resource-constraint", async () => {
    for (let i = 1; i <= 4; i++) await alice.send(chat("limited@localhost", `n${i}`, `l${i}`));
    const err = await alice.waitFor((el) => el.is("message") && el.attrs.id === "l4" && el.attrs.type === "error");
    assert.ok(err.getChild("error")!.getChild("resource-constraint"));
    // The first three were not bounced by the rule (the server may still answer
    // service-unavailable: limited@ is offline and offline storage is off).
    await assert.rejects(alice.waitFor((el) => ["l1", "l2", "l3"].includes(String(el.attrs.id)) && el.getChild("error")?.getChild("resource-constraint") !== undefined, 300));
  });

  it("an edit on disk applies within 1 s, no session dropped; a broken edit keeps the old rules; check-rules reports the line", async () => {
    const t0 = Date.now();
    writeFileSync(`${rules}.tmp`, RULES_V2);
    renameSync(`${rules}.tmp`, rules); // how editors and config managers replace files
    await eventually(async () => (await metric(proxy, "xmpp_guard_firewall_reloads_total", { result: "ok" })) >= 1, 3000, "rules reloaded");
    assert.ok(Date.now() - t0 < 1000, `reloaded after ${Date.now() - t0} ms`);
    // New rule in force, old one gone, same sessions.
    await alice.send(chat(bob.jid, "VERBOTEN now", "v1"));
    const err = await alice.waitFor((el) => el.attrs.id === "v1");
    assert.equal(err.attrs.type, "error");
    await alice.send(chat(bob.jid, "FORBIDDEN is fine now", "v2"));
    await bob.waitFor((el) => fromAlice(el) && el.getChildText("body") === "FORBIDDEN is fine now");

    // A broken edit: the previous rules stay, the error names file:line:col.
    writeFileSync(rules, RULES_V2 + "\nKIND: message\nDROPP.\n");
    await eventually(async () => (await metric(proxy, "xmpp_guard_firewall_reloads_total", { result: "error" })) >= 1, 3000, "broken reload seen");
    assert.ok(logs.some((l) => typeof l.msg === "string" && /edge\.pfw:\d+:1: .*DROPP/.test(l.msg)), "log names file:line:col");
    await alice.send(chat(bob.jid, "VERBOTEN still", "v3"));
    assert.equal((await alice.waitFor((el) => el.attrs.id === "v3")).attrs.type, "error");
    const check = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, ["--import", "tsx", CLI, "check-rules", rules], { timeout: 20_000 }, (e, stdout) =>
        resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, out: stdout }));
    });
    assert.equal(check.code, 1);
    assert.match(check.out, new RegExp(`${rules.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:\\d+:1: error: Unknown action: DROPP`));
    // A line Prosody loads although it is not what it looks like: loaded, with
    // the warning in the log and from check-rules (exit 0), and in force.
    const reloads = await metric(proxy, "xmpp_guard_firewall_reloads_total", { result: "ok" });
    writeFileSync(rules, RULES_V2.replace("BOUNCE=policy-violation (No forbidden words)", "BOUNCE=policy-violation # no text here"));
    await eventually(async () => (await metric(proxy, "xmpp_guard_firewall_reloads_total", { result: "ok" })) > reloads, 3000, "tolerated reload seen");
    assert.ok(logs.some((l) => typeof l.msg === "string" && /^firewall rule warning: .*edge\.pfw:\d+:24: '# no text here' after the error condition is ignored/.test(l.msg)), "warning logged");
    await alice.send(chat(bob.jid, "VERBOTEN again", "v4"));
    const plain = await alice.waitFor((el) => el.attrs.id === "v4");
    assert.ok(plain.getChild("error")!.getChild("policy-violation", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    assert.equal(plain.getChild("error")!.getChild("text"), undefined);
    const tolerated = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, ["--import", "tsx", CLI, "check-rules", rules], { timeout: 20_000 }, (e, stdout) =>
        resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, out: stdout }));
    });
    assert.equal(tolerated.code, 0, tolerated.out);
    assert.match(tolerated.out, /:\d+:24: warning: '# no text here' after the error condition is ignored/);
    // Both sessions survived all of it.
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
    assert.equal(proxy.sessionCount(), 2);
  });
});
