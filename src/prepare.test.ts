// prepare(): a good candidate gives its pieces; a bad one gives every problem
// (config with positions, certificates, rules, shadow rules) and changes
// nothing; a running proxy's reload of a bad candidate keeps the old config.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { configFromObject } from "./config/load.js";
import { startProxy } from "./app.js";
import { createLogger } from "./log.js";
import { createMetrics } from "./metrics/definitions.js";
import { PrepareError, prepare } from "./prepare.js";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "xg-prepare-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function yaml(rules: string[], extra: string[] = []): string {
  return [
    "listeners:",
    "  - name: c2s",
    "    type: c2s",
    '    listen: "127.0.0.1:0"',
    '    upstream: "127.0.0.1:15222"',
    "firewall:",
    `  scripts: [${rules.map((r) => JSON.stringify(r)).join(", ")}]`,
    "  watch: false",
    ...extra,
    "",
  ].join("\n");
}

test("a good candidate: the config, its compiled rules, no certificates", async () => {
  await withDir(async (dir) => {
    const rules = path.join(dir, "a.pfw");
    await writeFile(rules, "KIND: message\nTYPE: groupchat\nDROP.\n");
    const file = path.join(dir, "guard.yaml");
    await writeFile(file, yaml([rules]));
    const r = await prepare({ file });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    assert.equal(r.prepared.config.listeners[0]!.name, "c2s");
    assert.equal(r.prepared.rules?.ruleCount, 1);
    assert.equal(r.prepared.shadow, undefined);
    assert.equal(r.prepared.certificates, null);
  });
});

test("a bad config: every issue at once, at file:line:col, and nothing else is judged", async () => {
  const text = ["listeners:", "  - name: c2s", "    type: c3s", '    listen: "127.0.0.1:0"', "muc_limits:", "  event_rate: -1", "  burst_factor: 0", "registration:", "  mimiking: true", ""].join("\n");
  const r = await prepare({ file: "guard.yaml", text });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.config, undefined);
  assert.deepEqual(
    r.problems.map((p) => `${p.part} ${p.message}`),
    [
      "config guard.yaml:2:5: listeners[0].upstream: required option is missing",
      "config guard.yaml:3:11: listeners[0].type: must be one of c2s, c2s-tls, s2s, s2s-tls, websocket",
      "config guard.yaml:6:15: muc_limits.event_rate: -1 is below 0 (room events per second)",
      "config guard.yaml:7:17: muc_limits.burst_factor: 0 is below 1 (room capacity is event_rate × burst_factor)",
      'config guard.yaml:9:3: registration.mimiking: unknown option "mimiking" (did you mean "mimicking"?)',
    ],
  );
});

test("a valid config with bad rules, bad shadow rules and a missing certificate: all reported together", async () => {
  await withDir(async (dir) => {
    const rules = path.join(dir, "bad.pfw");
    await writeFile(rules, "KIND: message\nFROBNICATE.\n");
    const shadow = path.join(dir, "shadow.pfw");
    await writeFile(shadow, "KIND: message\nNOPE.\n");
    const cert = path.join(dir, "none.crt");
    const file = path.join(dir, "guard.yaml");
    await writeFile(file, yaml([rules], [`  shadow: [${JSON.stringify(shadow)}]`, "tls:", `  certificates: [{ cert: ${JSON.stringify(cert)}, key: ${JSON.stringify(cert)} }]`]));
    const r = await prepare({ file });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.ok(r.config, "the config itself was valid");
    const parts = new Set(r.problems.map((p) => p.part));
    assert.deepEqual([...parts].sort(), ["firewall", "firewall.shadow", "tls"]);
    assert.ok(r.problems.some((p) => p.part === "firewall" && p.message.startsWith(`${rules}:2:1:`)), JSON.stringify(r.problems));
    assert.ok(r.problems.some((p) => p.part === "tls" && p.code === "XPX_ERR_TLS_CERTIFICATES" && p.file === cert));
  });
});

test("state that cannot be opened is a problem, not a throw", async () => {
  const config = configFromObject({ listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: "127.0.0.1:1" }] });
  const r = await prepare({ config }, {
    loadRules: () => Promise.resolve({ ruleset: undefined, errors: [] }),
    loadShadowRules: () => Promise.resolve({ ruleset: undefined, errors: [] }),
    openState: () => Promise.reject(new Error("state.path: cannot open")),
  });
  assert.deepEqual(!r.ok && r.problems.map((p) => `${p.part}: ${p.message}`), ["state: state.path: cannot open"]);
});

test("reload: a bad candidate changes nothing, a good one is swapped in; a bad start throws every problem", async () => {
  await withDir(async (dir) => {
    const good = path.join(dir, "good.pfw");
    await writeFile(good, "KIND: message\nTYPE: groupchat\nDROP.\n");
    const bad = path.join(dir, "bad.pfw");
    await writeFile(bad, "KIND: message\nFROBNICATE.\n");
    const file = path.join(dir, "guard.yaml");
    await writeFile(file, yaml([good]));
    const initial = await prepare({ file });
    assert.ok(initial.ok);
    const proxy = await startProxy(initial.prepared.config, { configPath: file, logger: createLogger("silent"), metrics: createMetrics({ defaultMetrics: false }), admin: false });
    try {
      const before = proxy.about();
      await writeFile(file, yaml([bad], ["timeouts:", "  stanza: 0"]));
      const refused = await proxy.reload();
      assert.equal(refused.ok, false);
      assert.ok(refused.errors.some((e) => /timeouts\.stanza: must be a number greater than 0/.test(e)), refused.errors.join("\n"));
      assert.deepEqual(proxy.about().firewall, before.firewall, "the old rules stay");
      await writeFile(file, yaml([bad]));
      const rules = await proxy.reload();
      assert.equal(rules.ok, false);
      assert.ok(rules.errors.some((e) => e.startsWith(`${bad}:2:1:`)), rules.errors.join("\n"));
      assert.deepEqual(proxy.about().firewall, before.firewall, "the old rules stay");
      await writeFile(file, yaml([good, good]));
      assert.deepEqual(await proxy.reload(), { ok: true, errors: [] });
      assert.deepEqual((proxy.about().firewall as { scripts: string[] }).scripts, [good, good]);
    } finally {
      await proxy.shutdown(0);
    }
    const badConfig = configFromObject({ listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: "127.0.0.1:1" }], firewall: { scripts: [bad], watch: false } });
    await assert.rejects(startProxy(badConfig, { logger: createLogger("silent"), metrics: createMetrics({ defaultMetrics: false }), admin: false }), (err: unknown) => {
      assert.ok(err instanceof PrepareError);
      assert.match(err.message, /^firewall rules do not compile:\n/);
      return true;
    });
  });
});
