// knowledge.sessions in workers mode without Redis: the real CLI with
// workers: 2 in front of a real Prosody. A session bound on one worker is
// online for a rule judged on the other (::preroute TO FULL JID? on the
// sender's session); its end reaches the other worker; and when the worker
// holding a session is killed, the primary drops that worker's sessions for
// everyone.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startProsody, freePort, type ProsodyInstance } from "../helpers/prosody.js";
import { httpRequest, startProxyProcess, type ProxyProcess } from "../helpers/proxy-process.js";
import { connectClient, xml, type TestClient } from "../helpers/xmpp-client.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "../helpers/raw-client.js";

const RULES = `
::preroute
KIND: message
INSPECT: body#~=^fj
TO FULL JID?
PASS.

KIND: message
INSPECT: body#~=^fj
BOUNCE=item-not-found (No such session)
`;

let prosody: ProsodyInstance | undefined;
before(async () => {
  prosody = await startProsody();
  for (const u of ["alice", "bob"]) await prosody.createUser(u, `${u}-pw`);
});
after(async () => {
  await prosody?.stop();
});


test("workers: 2 — sessions bound on one worker are known to the other, until they end or their worker dies", { timeout: 120_000 }, async () => {
  const port = await freePort();
  const admin = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "xg-knw-"));
  const rules = join(dir, "rules.pfw");
  writeFileSync(rules, RULES);
  const proc: ProxyProcess = startProxyProcess(`workers: 2
listeners:
  - name: c2s
    type: c2s
    listen: "127.0.0.1:${port}"
    upstream: "127.0.0.1:${prosody!.port}"
firewall:
  scripts: ["${rules}"]
  watch: false
admin:
  listen: "127.0.0.1:${admin}"
shutdown:
  drain_seconds: 1
log:
  level: info
`);
  const clients: TestClient[] = [];
  try {
    await proc.waitForLog((l) => l["msg"] === "workers running", 60_000);
    const workerOf = async (jid: string): Promise<number | undefined> => {
      const r = await httpRequest(admin, "GET", `/sessions?jid=${encodeURIComponent(jid)}`);
      const list = (JSON.parse(r.body) as { sessions: Array<{ jid: string | null; worker?: number }> }).sessions;
      return list.find((s) => s.jid === jid)?.worker;
    };
    const login = (u: string, resource: string): Promise<TestClient> =>
      connectClient({ host: "127.0.0.1", port, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN", resource });
    const bob = await login("bob", "desk");
    clients.push(bob);
    const bobWorker = await until("bob's worker", () => workerOf(bob.jid));
    // Alice's resources until one lands on the other worker (the primary hands out connections in turn).
    let seq = 0;
    const onOtherWorker = async (): Promise<{ client: TestClient; worker: number }> => {
      for (let i = 0; i < 8; i++) {
        const c = await login("alice", `r${seq++}`);
        clients.push(c);
        const w = await until("alice's worker", () => workerOf(c.jid));
        if (w !== bobWorker) return { client: c, worker: w };
      }
      throw new Error("no session landed on the other worker");
    };
    const { client: alice, worker: aliceWorker } = await onOtherWorker();

    const outcome = async (to: string, id: string, receiver: TestClient): Promise<string> => {
      await bob.send(xml("message", { to, type: "chat", id }, xml("body", {}, `fj ${id}`)));
      return Promise.race([
        receiver.waitFor((el) => el.is("message") && el.attrs.id === id && el.attrs.type !== "error", 10_000).then(() => "delivered"),
        bob.waitFor((el) => el.is("message") && el.attrs.id === id && el.attrs.type === "error", 10_000).then((el) => el.getChild("error")?.getChildText("text", "urn:ietf:params:xml:ns:xmpp-stanzas") ?? "error"),
      ]);
    };
    assert.equal(await outcome(alice.jid, "w-1", alice), "delivered", `bound on worker ${aliceWorker}, judged on worker ${bobWorker}`);
    assert.equal(await outcome("alice@localhost/madeup", "w-2", alice), "No such session");

    // A session that ends: the other worker hears of it from the primary.
    const { client: gone } = await onOtherWorker();
    assert.equal(await outcome(gone.jid, "w-3", gone), "delivered");
    await gone.stop();
    await until("session closed", async () => ((await workerOf(gone.jid)) === undefined ? true : undefined));
    let n = 0;
    await until("offline on bob's worker too", async () => ((await outcome(gone.jid, `w-3-${++n}`, alice)) === "No such session" ? true : undefined));

    // The worker holding Alice dies: the primary drops its sessions on every other worker.
    const pid = proc.logs.find((l) => l["worker"] === aliceWorker && typeof l["pid"] === "number")?.["pid"] as number | undefined;
    assert.ok(pid !== undefined, "the pid of alice's worker");
    process.kill(pid, "SIGKILL");
    await proc.waitForLog((l) => l["code"] === "XPX_ERR_WORKER_EXIT", 20_000);
    await until("the dead worker's sessions dropped on bob's worker", async () => ((await outcome(alice.jid, `w-4-${++n}`, bob)) === "No such session" ? true : undefined));
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    proc.kill("SIGTERM");
    await proc.exited;
    proc.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
