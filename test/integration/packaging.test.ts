// Packaging: the Dockerfile's steps run outside Docker and the result starts,
// answers its HEALTHCHECK and stops on its STOPSIGNAL with exit 0; the
// Dockerfile passes the linter (and the linter does catch a bad one); the
// systemd unit passes `systemd-analyze verify` with no warning and has the
// settings docs/deploy.md promises.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createServer, type AddressInfo } from "node:net";
import { freePort } from "../helpers/prosody.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const UNIT = path.join(REPO, "contrib/systemd/xmpp-guard.service");

function run(file: string, args: string[], timeoutMs: number, cwd = REPO): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
    });
  });
}

test("Dockerfile steps run outside Docker; the result passes its HEALTHCHECK and exits 0 on STOPSIGNAL", { timeout: 110_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "xmpp-guard-df-test-"));
  try {
    const admin = await freePort();
    // The HEALTHCHECK asks /readyz, which needs the XMPP server behind to accept connections.
    const server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const upstream = (server.address() as AddressInfo).port;
    await writeFile(path.join(dir, "xmpp-guard.yaml"), [
      "listeners:",
      "  - name: c2s",
      "    type: c2s",
      '    listen: "127.0.0.1:0"',
      `    upstream: "127.0.0.1:${upstream}"`,
      "admin:",
      `  listen: "127.0.0.1:${admin}"`,
      "log:",
      "  level: warn",
      "",
    ].join("\n"));
    const r = await run(process.execPath, [
      "scripts/dockerfile-steps.mjs",
      "--node-modules-from", path.join(REPO, "node_modules"),
      "--volume", `/app/config=${dir}`,
      "--health-port", String(admin),
      "--timeout", "30",
    ], 100_000);
    assert.equal(r.code, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
    assert.match(r.stdout, /\(stubbed outside a container: useradd /);
    assert.match(r.stdout, /healthy after /);
    assert.match(r.stdout, /stopped by SIGTERM: exit 0/);
    assert.match(r.stdout, /^OK: /m);
    assert.match(r.stdout, /\/readyz/);
    server.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("Dockerfile lint: the project's Dockerfile is clean, a bad one is caught with file:line:col", { timeout: 30_000 }, async (t) => {
  const good = await run(process.execPath, ["scripts/lint-dockerfile.mjs", "Dockerfile"], 20_000);
  if (good.code === 2 && process.env.CI !== "true") {
    t.skip(`linter not installed in this node_modules (${good.stderr.trim()}); CI installs it with npm ci`);
    return;
  }
  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /^Dockerfile: 0 errors/m);
  const dir = await mkdtemp(path.join(os.tmpdir(), "xmpp-guard-lint-"));
  try {
    const bad = path.join(dir, "Dockerfile");
    await writeFile(bad, "FROM node:latest\nWORKDIR /app\nCOPY . .\nRUN npm ci\nHEALTHCHECK CMD true\nHEALTHCHECK CMD curl -f http://127.0.0.1:9470/healthz\nCMD [\"node\", \"dist/cli.js\"]\n");
    const r = await run(process.execPath, [path.join(REPO, "scripts/lint-dockerfile.mjs"), bad], 20_000);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:1:1: error: base image node:latest: pin a version`));
    assert.match(r.stdout, /:1:1: error: the final stage has no USER/);
    assert.match(r.stdout, /:5:1: warning: There can only be one HEALTHCHECK/); // from dockerfile-utils itself
    assert.match(r.stdout, /error: dev dependencies are never pruned/);
    assert.match(r.stdout, /:6:1: error: HEALTHCHECK should probe the admin endpoint \/readyz/);
    assert.match(r.stdout, /:3:1: error: sources are copied before `npm ci`/);
    assert.match(r.stdout, /warning: no \.dockerignore/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("systemd unit: systemd-analyze verify passes without a warning; the promised settings are there", { timeout: 30_000 }, async (t) => {
  const text = await readFile(UNIT, "utf8");
  const settings = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (m) settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!]);
  }
  const one = (k: string): string | undefined => settings.get(k)?.at(-1);
  assert.equal(one("LimitNOFILE"), "1048576");
  assert.equal(one("Restart"), "on-failure");
  assert.match(one("ExecReload") ?? "", /^\/usr\/bin\/node \/opt\/xmpp-guard\/dist\/cli\.js reload -c \/etc\/xmpp-guard\/xmpp-guard\.yaml$/);
  assert.equal(one("KillSignal"), "SIGTERM");
  assert.equal(one("NoNewPrivileges"), "yes");
  assert.equal(one("ProtectSystem"), "strict");
  assert.equal(one("ReadWritePaths"), "/var/lib/xmpp-guard");
  assert.notEqual(one("User") ?? "root", "root");
  assert.notEqual(one("MemoryDenyWriteExecute"), "yes", "V8 needs W+X pages");
  assert.match(one("ExecStartPre") ?? "", / check-config /);

  if (!existsSync("/usr/bin/systemd-analyze")) {
    t.skip("systemd-analyze not installed (Debian: systemd)");
    return;
  }
  // verify also checks that ExecStart's binary exists: use this Node where /usr/bin/node is absent.
  const dir = await mkdtemp(path.join(os.tmpdir(), "xmpp-guard-unit-"));
  try {
    const copy = path.join(dir, "xmpp-guard.service");
    await writeFile(copy, existsSync("/usr/bin/node") ? text : text.replaceAll("/usr/bin/node", process.execPath));
    const r = await run("/usr/bin/systemd-analyze", ["verify", copy], 20_000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stderr.trim(), "", "no warnings (unknown keys, bad values)");
    // And it is a real check: a bad value is reported.
    await writeFile(copy, text.replace("Restart=on-failure", "Restart=sometimes"));
    const bad = await run("/usr/bin/systemd-analyze", ["verify", copy], 20_000);
    assert.match(bad.stderr, /restart specifier/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("npm package: contrib/ (unit, dashboard, alerts) ships; .dockerignore keeps node_modules, dist and .git out of the build context", { timeout: 60_000 }, async () => {
  const r = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], 50_000);
  assert.equal(r.code, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  for (const f of ["contrib/systemd/xmpp-guard.service", "contrib/grafana/xmpp-guard.json", "contrib/prometheus/alerts.yml", "contrib/prometheus/alerts.test.yml", "config/xmpp-guard.yaml", "rules/default.pfw"]) {
    assert.ok(files.includes(f), `${f} is in the package`);
  }
  const ignore = (await readFile(path.join(REPO, ".dockerignore"), "utf8")).split("\n").map((l) => l.trim());
  for (const p of ["node_modules", "dist", ".git", "data"]) assert.ok(ignore.includes(p), `.dockerignore lists ${p}`);
});
