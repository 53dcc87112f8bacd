// Every command README.md and docs/*.md show is run, so the docs cannot drift
// from the CLI: each ```sh block as a script, and each `$ ` line of any other
// fenced block. They run in a temp dir laid out like an installation (the
// shipped config with free ports, rules/, /etc/xmpp-guard mapped into the
// temp dir), with a proxy running from that config and a private Prosody
// whose host is example.org behind `prosodyctl`. `xmpp-guard` and
// `node dist/cli.js` are this checkout's CLI.
//
// A block that cannot run here says so just above it, in the Markdown:
//   <!-- docs-test: skip (why) -->   not run (docker, systemctl, apt, the suite itself)
//   <!-- docs-test: exit N -->        runs, and must exit N (an example of a refusal)
// Every other block must exit 0, and nothing may fail as a usage error.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { freePort, startProsody, type ProsodyInstance } from "../helpers/prosody.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(ROOT, "src/cli.ts");
/** tsx by its URL: the commands run in a temp dir, where `--import tsx` would not resolve. */
const TSX = import.meta.resolve("tsx");
const DOCS = ["README.md", ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];

export interface DocCommand {
  readonly where: string;
  readonly script: string;
  readonly skip: string | null;
  readonly exit: number;
}

/** `exit 1`, or one code per `$` line of the block: `exit 0 1`. */
function exitCodes(directive: string | null): number[] {
  return directive !== null && /^exit( \d+)+$/.test(directive) ? directive.slice(5).split(" ").map(Number) : [0];
}

/** The commands of one Markdown file, with their directives. */
export function docCommands(file: string, text: string): DocCommand[] {
  const out: DocCommand[] = [];
  const lines = text.split("\n");
  let directive: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const d = /^<!-- docs-test: (.*) -->$/.exec(line.trim());
    if (d) {
      directive = d[1]!;
      continue;
    }
    const fence = /^(\s*)```(\w*)\s*$/.exec(line);
    if (!fence) {
      if (line.trim() !== "") directive = null;
      continue;
    }
    const indent = fence[1]!.length;
    const lang = fence[2]!;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(indent));
    const skip = directive !== null && directive.startsWith("skip") ? directive.replace(/^skip\s*/, "") || "skipped" : null;
    const exits = exitCodes(directive);
    if (["sh", "bash", "shell"].includes(lang)) {
      out.push({ where: `${file}:${i + 1}`, script: body.join("\n"), skip, exit: exits[0]! });
    } else {
      let n = 0;
      body.forEach((b, k) => {
        if (b.startsWith("$ ")) out.push({ where: `${file}:${i + 2 + k}`, script: b.slice(2), skip, exit: exits[Math.min(n++, exits.length - 1)]! });
      });
    }
    directive = null;
    i = j;
  }
  return out;
}

describe("every command in README.md and docs/ runs", () => {
  let fixture: string;
  let prosody: ProsodyInstance;
  let upstream: Server;
  let proxy: ReturnType<typeof spawn>;
  let prelude: string;

  before(async () => {
    fixture = mkdtempSync(join(tmpdir(), "xg-docs-"));
    prosody = await startProsody({ hosts: ["example.org"] });
    await prosody.createUser("alice", "a-pw", "example.org");
    upstream = createServer((s) => s.destroy());
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const up = (upstream.address() as { port: number }).port;
    const [c2s, admin] = [await freePort(), await freePort()];
    const shipped = readFileSync(join(ROOT, "config/xmpp-guard.yaml"), "utf8")
      .replace('"0.0.0.0:5222"', `"127.0.0.1:${c2s}"`)
      .replace('"127.0.0.1:15222"', `"127.0.0.1:${up}"`)
      .replace('"127.0.0.1:9470"', `"127.0.0.1:${admin}"`);
    assert.ok(shipped.includes(`127.0.0.1:${admin}`) && shipped.includes(`127.0.0.1:${c2s}`), "the shipped config's addresses were replaced");
    for (const dir of ["config", "etc/xmpp-guard", "backup"]) mkdirSync(join(fixture, dir), { recursive: true });
    writeFileSync(join(fixture, "config/xmpp-guard.yaml"), shipped);
    cpSync(join(ROOT, "rules"), join(fixture, "rules"), { recursive: true });
    cpSync(join(ROOT, "rules"), join(fixture, "etc/xmpp-guard/rules"), { recursive: true });
    // As in deploy.md's check-config example: a local rule file with an unknown condition.
    writeFileSync(join(fixture, "etc/xmpp-guard/rules/local.pfw"), "::preroute\nNO SUCH CONDITION: x\nDROP.\n");
    writeFileSync(join(fixture, "etc/xmpp-guard/xmpp-guard.yaml"), shipped.replace("#firewall:", `firewall:\n  scripts: ["${fixture}/etc/xmpp-guard/rules/local.pfw"]\n#firewall:`));
    proxy = spawn(process.execPath, ["--import", TSX, CLI, "run", "-c", "config/xmpp-guard.yaml"], { cwd: fixture, stdio: "ignore" });
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`http://127.0.0.1:${admin}/healthz`).catch(() => null);
      if (r?.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    prelude = [
      "set -eo pipefail",
      `xmpp-guard() { "${process.execPath}" --import "${TSX}" "${CLI}" "$@"; }`,
      `prosodyctl() { command prosodyctl --config "${prosody.configPath}" "$@"; }`,
    ].join("\n");
  });

  after(async () => {
    proxy?.kill("SIGTERM");
    upstream?.close();
    await prosody?.stop();
    if (fixture) rmSync(fixture, { recursive: true, force: true });
  });

  it("every command either runs as shown or says why it cannot run here", () => {
    const all = DOCS.flatMap((f) => docCommands(f, readFileSync(join(ROOT, f), "utf8")));
    assert.ok(all.length >= 8, `found only ${all.length} commands`);
    const failures: string[] = [];
    let ran = 0;
    for (const c of all) {
      if (c.skip !== null) {
        assert.match(c.skip, /^\(.+\)$/, `${c.where}: a skip says why, in parentheses`);
        continue;
      }
      const script = c.script.replaceAll("node dist/cli.js", "xmpp-guard").replaceAll("/etc/xmpp-guard", `${fixture}/etc/xmpp-guard`).replaceAll("/backup/", `${fixture}/backup/`);
      const r = spawnSync("bash", ["-c", `${prelude}\n${script}`], { cwd: fixture, encoding: "utf8", timeout: 60_000 });
      ran++;
      const usage = /error: (unknown (option|command)|missing required argument|too many arguments)/.test(r.stderr);
      if (r.status !== c.exit || usage) failures.push(`${c.where}: exit ${r.status} (expected ${c.exit})\n  $ ${c.script}\n${(r.stdout + r.stderr).trim().slice(-800)}`);
    }
    assert.deepEqual(failures, [], failures.join("\n\n"));
    assert.ok(ran >= 6, `ran only ${ran}`);
  });

  it("docCommands reads sh blocks, $ lines and directives", () => {
    const md = "x\n<!-- docs-test: skip (needs docker) -->\n```sh\ndocker ps\n```\n```\n$ a b\nout\n```\n<!-- docs-test: exit 0 1 -->\n```\n$ c\n$ d\n```\n";
    assert.deepEqual(docCommands("f.md", md), [
      { where: "f.md:3", script: "docker ps", skip: "(needs docker)", exit: 0 },
      { where: "f.md:7", script: "a b", skip: null, exit: 0 },
      { where: "f.md:12", script: "c", skip: null, exit: 0 },
      { where: "f.md:13", script: "d", skip: null, exit: 1 },
    ]);
  });
});
