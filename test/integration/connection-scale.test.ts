// Connection scale (docs/deploy.md, "Many connections: file descriptors"): XG_SESSIONS (default 10,000) concurrent
// plaintext c2s sessions through the real CLI to a minimal upstream, every
// process under a raised `ulimit -n`. None may fail, /metrics must count them
// all, and closing them must bring the count back to 0.
//
// The proxy holds two descriptors per session (peer + upstream). Where the
// hard limit cannot be raised far enough (a container: this machine's is
// 20,000) the proxy runs `workers: 2`, so each worker holds half.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { freePort } from "../helpers/prosody.js";
import { httpRequest, maxNofile, metricSum, startProxyProcess } from "../helpers/proxy-process.js";

const SESSIONS = Number(process.env["XG_SESSIONS"] ?? 10_000);
const LOAD = fileURLToPath(new URL("../helpers/session-load.ts", import.meta.url));

interface LoadChild {
  child: ChildProcess;
  next(): Promise<Record<string, unknown>>;
  send(line: string): void;
}

function load(nofile: number, args: string[]): LoadChild {
  const cmd = [process.execPath, "--import", "tsx", LOAD, ...args].map((a) => `'${a}'`).join(" ");
  const child = spawn("sh", ["-c", `ulimit -n ${nofile}; exec ${cmd}`], { stdio: ["pipe", "pipe", "inherit"] });
  const lines: Record<string, unknown>[] = [];
  const waiting: ((l: Record<string, unknown>) => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const l = JSON.parse(line) as Record<string, unknown>;
    const w = waiting.shift();
    if (w) w(l);
    else lines.push(l);
  });
  return {
    child,
    next: () =>
      new Promise((resolve, reject) => {
        const l = lines.shift();
        if (l) return resolve(l);
        waiting.push(resolve);
        child.once("exit", (c) => reject(new Error(`load child exited (${c})`)));
      }),
    send: (line) => child.stdin!.write(line + "\n"),
  };
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test(`${SESSIONS} concurrent plaintext sessions through the proxy`, { timeout: 115_000 }, async (t) => {
  const needPerProcess = SESSIONS + 1024;
  const nofile = maxNofile(2 * SESSIONS + 2048);
  if (nofile < needPerProcess) {
    t.skip(`ulimit -n can only reach ${nofile}; ${SESSIONS} sessions need ${needPerProcess} per process`);
    return;
  }
  const workers = nofile >= 2 * SESSIONS + 1024 ? 1 : 2;
  const upstream = load(nofile, ["upstream"]);
  let clients: LoadChild | undefined;
  const port = await freePort();
  const admin = await freePort();
  const { port: upstreamPort } = (await upstream.next()) as { port: number };
  const proc = startProxyProcess(
    `workers: ${workers}
listeners:
  - name: c2s
    type: c2s
    listen: "127.0.0.1:${port}"
    upstream: "127.0.0.1:${upstreamPort}"
admin:
  listen: "127.0.0.1:${admin}"
shutdown:
  drain_seconds: 1
log:
  level: warn
`,
    { nofile },
  );
  try {
    await until("the admin port", () => httpRequest(admin, "GET", "/readyz").then((r) => r.status === 200, () => false));
    const t0 = Date.now();
    clients = load(nofile, ["clients", String(port), String(SESSIONS)]);
    const opened = (await clients.next()) as { open: number; errors: number; firstError: string };
    assert.equal(opened.errors, 0, `first error: ${opened.firstError}`);
    assert.equal(opened.open, SESSIONS);
    let body = "";
    await until("every session in /metrics", async () => {
      body = (await httpRequest(admin, "GET", "/metrics")).body;
      return metricSum(body, "xmpp_guard_sessions", { state: "open" }) === SESSIONS;
    });
    assert.equal(metricSum(body, "xmpp_guard_connections_total"), SESSIONS);
    assert.equal(metricSum(body, "xmpp_guard_connections_refused_total"), 0);
    assert.equal(metricSum(body, "xmpp_guard_upstream_failures_total"), 0);
    upstream.send("count");
    assert.deepEqual(await upstream.next(), { upstream: SESSIONS });
    process.stderr.write(
      `connection-scale: ${SESSIONS} sessions, workers ${workers}, nofile ${nofile}, ${Date.now() - t0} ms to open\n`,
    );

    clients.send("close");
    assert.deepEqual(await clients.next(), { lateErrors: 0 }, "no session was closed by the proxy while open");
    await clients.next();
    await until("sessions back to 0", async () => {
      body = (await httpRequest(admin, "GET", "/metrics")).body;
      return metricSum(body, "xmpp_guard_sessions") === 0;
    });
    proc.kill("SIGTERM");
    assert.equal(await proc.exited, 0);
  } finally {
    clients?.child.kill("SIGKILL");
    upstream.child.kill("SIGKILL");
    proc.cleanup();
  }
});
