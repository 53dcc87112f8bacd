// The foundation's proof with real parts: a real Prosody (Debian package) in
// backend mode behind xmpp-guard on plain TCP, real clients in front
// (@xmpp/client and slixmpp). Everything works as without the proxy, the
// proxy counts what passed, and it learned each session's JID.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";

const SLIX_ECHO = fileURLToPath(new URL("../harness/slix_echo.py", import.meta.url));

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return (m?.values ?? []).filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((n, x) => n + x.value, 0);
}

describe("real Prosody behind xmpp-guard (plain TCP)", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let port: number;
  const logLines: Array<Record<string, unknown>> = [];
  const clients: TestClient[] = [];

  before(async () => {
    prosody = await startProsody();
    await prosody.createUser("alice", "alice-pw");
    await prosody.createUser("bob", "bob-pw");
    await prosody.createUser("slix1", "slix-pw1");
    await prosody.createUser("slix2", "slix-pw2");
    const logger = createLogger("info", { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      admin: { listen: null },
    }), { logger });
    port = proxy.listenerAddress("c2s")!.port;
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await proxy?.shutdown(0);
    await prosody?.stop();
  });

  const login = async (username: string, password: string, mechanism?: string): Promise<TestClient> => {
    const c = await connectClient({ host: "127.0.0.1", port, domain: prosody.domain, username, password, ...(mechanism ? { mechanism } : {}) });
    clients.push(c);
    return c;
  };

  it("@xmpp/client: two clients log in through the proxy, bind, and exchange 1,000 messages, all delivered in order", async () => {
    const before = await metric(proxy, "xmpp_guard_stanzas_total", { direction: "in", kind: "message" });
    const alice = await login("alice", "alice-pw"); // SCRAM-SHA-1
    const bob = await login("bob", "bob-pw", "PLAIN");
    assert.match(alice.jid, /^alice@localhost\/.+/);
    assert.match(bob.jid, /^bob@localhost\/.+/);

    const N = 1000;
    const tag = `p-${Date.now()}`;
    for (let i = 0; i < N; i++) {
      await alice.send(xml("message", { to: bob.jid, type: "chat", id: `m${i}` }, xml("body", {}, `${tag} ${i} é \u{1F600}`)));
    }
    const isMine = (el: XmlElement): boolean => el.is("message") && el.attrs.from === alice.jid && (el.getChildText("body") ?? "").startsWith(tag);
    const got = await bob.collect(isMine, N, 30_000);
    assert.deepEqual(got.map((m) => m.getChildText("body")), Array.from({ length: N }, (_, i) => `${tag} ${i} é \u{1F600}`));
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);

    // The proxy counted them both ways.
    assert.ok(await metric(proxy, "xmpp_guard_stanzas_total", { direction: "in", kind: "message" }) - before >= N);
    assert.ok(await metric(proxy, "xmpp_guard_stanzas_total", { direction: "out", kind: "message" }) >= N);
    assert.equal(await metric(proxy, "xmpp_guard_sessions", { state: "bound" }), 2);

    // And it learned exactly the JIDs the server bound.
    const bound = logLines.filter((l) => l.msg === "session bound").map((l) => l.jid);
    assert.ok(bound.includes(alice.jid), `bound JIDs ${JSON.stringify(bound)}`);
    assert.ok(bound.includes(bob.jid));
    // No message bodies in the logs at info.
    assert.ok(!JSON.stringify(logLines).includes(tag));
  });

  it("slixmpp logs in through the proxy with PLAIN and exchanges 200 messages", async () => {
    const res = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile("/usr/bin/python3", [SLIX_ECHO, "--host", "127.0.0.1", "--port", String(port), "--domain", prosody.domain,
        "--user1", "slix1", "--pass1", "slix-pw1", "--user2", "slix2", "--pass2", "slix-pw2", "-n", "200", "--mech", "PLAIN", "--timeout", "20"],
      { timeout: 40_000, killSignal: "SIGKILL" }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }));
    });
    const line = res.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    assert.ok(line, `no RESULT line (exit ${res.code})\n${res.stdout}\n${res.stderr}`);
    const result = JSON.parse(line.slice(7)) as { received: number; error?: string };
    assert.equal(result.error, undefined);
    assert.equal(result.received, 200);
    assert.equal(res.code, 0);
  });

  it("a wrong password is refused by the server, through the proxy, and the proxy logs no error", async () => {
    await assert.rejects(connectClient({ host: "127.0.0.1", port, domain: prosody.domain, username: "alice", password: "nope", timeoutMs: 5000 }), /not-authorized/);
    assert.deepEqual(logLines.filter((l) => l.level === "error"), []);
  });

  it("Prosody logged no errors or warnings", async () => {
    const bad = (await prosody.logText()).split("\n").filter((l) => /\t(error|warn)\t/.test(l));
    assert.deepEqual(bad, []);
  });
});
