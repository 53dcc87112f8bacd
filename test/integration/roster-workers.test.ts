// workers: 2 with learned rosters: every worker opens the same SQLite state
// file, so a roster learned by the worker that carried the roster get answers
// the firewall on the other worker too. Alice and Bob become contacts on
// Prosody directly; Alice then fetches her roster through the proxy (one
// worker learns it) and opens more sessions until one lands on the other
// worker (told apart by xmpp_guard_worker_sessions): Bob's headline to that
// session passes, a stranger's is bounced.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { freePort, haveProsody, startProsody } from "../helpers/prosody.js";
import { httpRequest, metricSum, startProxyProcess } from "../helpers/proxy-process.js";
import { connectClient, xml, type TestClient } from "../helpers/xmpp-client.js";

const NS_ROSTER = "jabber:iq:roster";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const skip = haveProsody() ? false : "prosody not installed";

test("workers share learned rosters through the state file", { skip, timeout: 110_000 }, async () => {
  const prosody = await startProsody();
  const dir = mkdtempSync(join(tmpdir(), "xg-roster-workers-"));
  const clients: TestClient[] = [];
  const rules = join(dir, "contacts.pfw");
  writeFileSync(rules, "::deliver\nSUBSCRIBED?\nPASS.\n\nTYPE: error\nPASS.\n\nKIND: message\nBOUNCE=policy-violation\n");
  const port = await freePort();
  const admin = await freePort();
  const proc = startProxyProcess(`workers: 2
listeners:
  - name: c2s
    type: c2s
    listen: "127.0.0.1:${port}"
    upstream: "127.0.0.1:${prosody.port}"
firewall:
  scripts: ["${rules}"]
  watch: false
state:
  path: "${join(dir, "state.sqlite")}"
admin:
  listen: "127.0.0.1:${admin}"
shutdown:
  drain_seconds: 0
`);
  const login = async (u: string, p: number, resource?: string): Promise<TestClient> => {
    const c = await connectClient({ host: "127.0.0.1", port: p, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN", ...(resource === undefined ? {} : { resource }) });
    clients.push(c);
    return c;
  };
  const perWorker = async (): Promise<[number, number]> => {
    const m = (await httpRequest(admin, "GET", "/metrics")).body;
    return [metricSum(m, "xmpp_guard_worker_sessions", { worker: "1" }), metricSum(m, "xmpp_guard_worker_sessions", { worker: "2" })];
  };
  /** Logs in through the proxy and tells which worker (0 or 1) took the session. */
  const loginCounted = async (u: string, resource: string): Promise<{ c: TestClient; worker: number }> => {
    const before = await perWorker();
    const c = await login(u, port, resource);
    for (let i = 0; i < 100; i++) {
      const after = await perWorker();
      if (after[0] !== before[0] || after[1] !== before[1]) return { c, worker: after[0] > before[0] ? 0 : 1 };
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("the session was not counted by any worker");
  };
  try {
    for (const u of ["alice", "bob", "eve"]) await prosody.createUser(u, `${u}-pw`);
    await proc.waitForLog((l) => l["msg"] === "workers running", 60_000);

    // Contacts, made on Prosody directly.
    const a0 = await login("alice", prosody.port, "direct");
    const bob = await login("bob", prosody.port, "direct");
    const eve = await login("eve", prosody.port, "direct");
    const get = async (c: TestClient, id: string) => {
      await c.send(xml("iq", { type: "get", id }, xml("query", { xmlns: NS_ROSTER })));
      return c.waitFor((el) => el.is("iq") && el.attrs.id === id);
    };
    await get(a0, "g0");
    await get(bob, "g1");
    const both = (c: TestClient, jid: string) => c.waitFor((el) => el.is("iq") && el.attrs.type === "set" && el.getChild("query", NS_ROSTER)?.getChild("item")?.attrs.jid === jid && el.getChild("query", NS_ROSTER)?.getChild("item")?.attrs.subscription === "both");
    await a0.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
    await bob.waitFor((el) => el.is("presence") && el.attrs.type === "subscribe");
    await bob.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    await bob.send(xml("presence", { to: "alice@localhost", type: "subscribe" }));
    await a0.waitFor((el) => el.is("presence") && el.attrs.type === "subscribe");
    await a0.send(xml("presence", { to: "bob@localhost", type: "subscribed" }));
    await both(a0, "bob@localhost");
    await both(bob, "alice@localhost");

    // Alice fetches her roster through the proxy: one worker learns it.
    const first = await loginCounted("alice", "w-first");
    const res = await get(first.c, "g2");
    assert.equal(res.getChild("query", NS_ROSTER)?.getChild("item")?.attrs.subscription, "both");
    // More sessions, no roster get, until one is on the other worker.
    let other: TestClient | undefined;
    for (let i = 0; i < 6 && other === undefined; i++) {
      const s = await loginCounted("alice", `w-${i}`);
      if (s.worker !== first.worker) other = s.c;
    }
    assert.ok(other, "a session landed on the other worker");

    await bob.send(xml("message", { to: other.jid, type: "headline", id: "hb" }, xml("body", {}, "from a contact")));
    assert.equal((await other.waitFor((el) => el.is("message") && el.attrs.id === "hb")).getChildText("body"), "from a contact");
    await eve.send(xml("message", { to: other.jid, type: "headline", id: "he" }, xml("body", {}, "buy now")));
    const bounced = await eve.waitFor((el) => el.attrs.id === "he");
    assert.ok(bounced.getChild("error")?.getChild("policy-violation", STANZAS));
  } catch (err) {
    process.stderr.write(`last proxy logs:\n${proc.logs.slice(-12).map((l) => JSON.stringify(l)).join("\n")}\n`);
    throw err;
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    proc.kill("SIGTERM");
    await proc.exited;
    proc.cleanup();
    await prosody.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
