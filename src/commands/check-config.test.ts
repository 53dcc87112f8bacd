// check-config / run --check: config, rules and certificates validated
// together, haproxy -c style lines and exit codes; once through the real CLI.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { checkAll, checkCertificates } from "./check-config.js";
import { generateSelfSigned } from "../net/gen-cert.js";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), "xmpp-guard-check-"));
}

function configText(rules: string[]): string {
  return [
    "listeners:",
    "  - name: c2s",
    "    type: c2s",
    '    listen: "127.0.0.1:5222"',
    '    upstream: "127.0.0.1:15222"',
    "firewall:",
    `  scripts: [${rules.map((r) => JSON.stringify(r)).join(", ")}]`,
    "  watch: false",
    "",
  ].join("\n");
}

test("valid config and rules: every file summarised, 'Configuration is valid', exit 0", async () => {
  const dir = await tempDir();
  try {
    const rules = path.join(dir, "a.pfw");
    await writeFile(rules, "KIND: message\nTYPE: groupchat\nDROP.\n");
    const cfg = path.join(dir, "guard.yaml");
    await writeFile(cfg, configText([rules]));
    const r = await checkAll(cfg);
    assert.equal(r.exitCode, 0, r.lines.join("\n"));
    assert.equal(r.lines[0], `${cfg}: OK (1 listener)`);
    assert.ok(r.lines.some((l) => l.startsWith(`${rules}: 1 rule`)), r.lines.join("\n"));
    assert.ok(r.lines.includes("tls: no certificates configured"));
    assert.equal(r.lines.at(-1), "Configuration is valid");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the config's hosts are the rules' $local; without them $local is refused, naming the option", async () => {
  const dir = await tempDir();
  try {
    const rules = path.join(dir, "local.pfw");
    await writeFile(rules, "LEAVING: $local\nBOUNCE=not-allowed\n");
    const cfg = path.join(dir, "guard.yaml");
    await writeFile(cfg, configText([rules]));
    const without = await checkAll(cfg);
    assert.equal(without.exitCode, 1);
    assert.ok(without.lines.some((l) => l.startsWith(`${rules}:1:1: error: LEAVING refused`) && l.includes("`hosts:`")), without.lines.join("\n"));
    await writeFile(cfg, `${configText([rules])}hosts: [example.org, conference.example.org]\n`);
    const withHosts = await checkAll(cfg);
    assert.equal(withHosts.exitCode, 0, withHosts.lines.join("\n"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("remote lists are checked without fetching: http(s) lists pass; a pubsubitemid list needs `component:`, and the error names it", async () => {
  const dir = await tempDir();
  try {
    const rules = path.join(dir, "lists.pfw");
    // Port 1 on loopback: nothing listens, and nothing may be fetched anyway.
    await writeFile(rules, "%LIST bl: http://127.0.0.1:1/list.txt\n%LIST rtbl: pubsubitemid:pubsub.example.org/bans (hash: sha256)\n::deliver\nCHECK LIST: bl contains $<@from|host>\nDROP.\n\nCHECK LIST: rtbl contains $<@from|bare>\nDROP.\n");
    const cfg = path.join(dir, "guard.yaml");
    await writeFile(cfg, configText([rules]));
    const without = await checkAll(cfg);
    assert.equal(without.exitCode, 1);
    assert.ok(without.lines.some((l) => l.startsWith(`${rules}:2:1: error: %LIST rtbl: pubsubitemid lists are read over the XEP-0114 component connection: set \`component:\``)), without.lines.join("\n"));
    await writeFile(cfg, `${configText([rules])}component: { jid: guard.example.org, secret: s, upstream: "127.0.0.1:5347" }\n`);
    const withComponent = await checkAll(cfg);
    assert.equal(withComponent.exitCode, 0, withComponent.lines.join("\n"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a valid config naming a broken rule file fails as a whole, with the rule's file:line:col", async () => {
  const dir = await tempDir();
  try {
    const rules = path.join(dir, "bad.pfw");
    await writeFile(rules, "KIND: message\nNO_SUCH_CONDITION: x\nDROP.\n");
    const missing = path.join(dir, "missing.pfw");
    const cfg = path.join(dir, "guard.yaml");
    await writeFile(cfg, configText([rules, missing]));
    const r = await checkAll(cfg);
    assert.equal(r.exitCode, 1);
    assert.ok(r.lines.some((l) => l.startsWith(`${rules}:2:1: error:`)), r.lines.join("\n"));
    assert.ok(r.lines.some((l) => l.startsWith(`${missing}:`)), r.lines.join("\n"));
    assert.match(r.lines.at(-1)!, /^FAILED: \d+ errors?$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("an invalid config is reported file:line:col and the rest is not checked", async () => {
  const dir = await tempDir();
  try {
    const cfg = path.join(dir, "guard.yaml");
    await writeFile(cfg, configText([]).replace("watch: false", "watch: false\ntimeouts:\n  stanza: -1\n  connnect: 3"));
    const r = await checkAll(cfg);
    assert.equal(r.exitCode, 1);
    const text = r.lines.join("\n");
    assert.match(text, new RegExp(`${cfg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:10:11: timeouts\\.stanza: must be a number greater than 0`));
    assert.match(text, /:11:3: timeouts\.connnect: unknown option; did you mean `connect`\?/);
    assert.match(r.lines.at(-1)!, /^FAILED: .*2 errors; rules and certificates not checked$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("certificates: valid ones summarised, expired ones and mismatched keys are errors, expiring soon a warning", async () => {
  const dir = await tempDir();
  try {
    const a = generateSelfSigned({ domains: ["a.example"], days: 30, keyBits: 2048 });
    const b = generateSelfSigned({ domains: ["b.example"], days: 30, keyBits: 2048 });
    await writeFile(path.join(dir, "a.crt"), a.certPem);
    await writeFile(path.join(dir, "a.key"), a.keyPem);
    await writeFile(path.join(dir, "b.key"), b.keyPem);
    const ok = await checkCertificates([{ cert: path.join(dir, "a.crt"), key: path.join(dir, "a.key") }]);
    assert.equal(ok.errors, 0, ok.lines.join("\n"));
    assert.match(ok.lines[0]!, /a\.crt: OK \(a\.example; until \d{4}-\d\d-\d\d\)$/);

    const in20Days = new Date(Date.now() + 20 * 86_400_000);
    const soon = await checkCertificates([{ cert: path.join(dir, "a.crt"), key: path.join(dir, "a.key") }], {}, in20Days);
    assert.equal(soon.errors, 0);
    assert.match(soon.lines[0]!, /a\.crt: warning: certificate expires in \d+ days/);
    const later = await checkCertificates([{ cert: path.join(dir, "a.crt"), key: path.join(dir, "a.key") }], {}, new Date(Date.now() + 40 * 86_400_000));
    assert.equal(later.errors, 1);
    assert.match(later.lines[0]!, /a\.crt: error: certificate expired on /);

    const wrongKey = await checkCertificates([{ cert: path.join(dir, "a.crt"), key: path.join(dir, "b.key") }]);
    assert.ok(wrongKey.errors >= 1);
    assert.ok(wrongKey.lines.every((l) => / error: /.test(l)), wrongKey.lines.join("\n"));
    const missing = await checkCertificates([{ cert: path.join(dir, "none.crt"), key: path.join(dir, "a.key") }]);
    assert.deepEqual(missing.lines, [`${path.join(dir, "none.crt")}: error: no such file`]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
    });
  });
}

test("CLI: `check-config` and `run --check` print the same report and exit 0 / 1", async () => {
  const dir = await tempDir();
  try {
    const rules = path.join(dir, "a.pfw");
    await writeFile(rules, "KIND: message\nDROP.\n");
    const cfg = path.join(dir, "guard.yaml");
    await writeFile(cfg, configText([rules]));
    const good = await runCli(["check-config", cfg]);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /Configuration is valid\n$/);
    await writeFile(rules, "KIND: message\nBOGUS.\n");
    const bad = await runCli(["run", "-c", cfg, "--check"]);
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.match(bad.stdout, new RegExp(`a\\.pfw:2:1: error: .*\\n[^]*FAILED: 1 error\\n$`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
