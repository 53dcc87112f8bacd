#!/usr/bin/env node
// Run the Dockerfile's steps outside Docker (no engine here or in CI) and check
// the result works: every stage gets its own directory as its filesystem root
// in a temp dir; COPY copies from the build context (or another stage's root),
// RUN runs under /bin/sh in the stage's WORKDIR with the stage's ENV. Then the
// final stage's ENTRYPOINT + CMD is started, its HEALTHCHECK command must pass,
// its STOPSIGNAL must stop it with exit code 0, and its node_modules must hold
// no devDependency ("only production dependencies").
//
// What cannot be done outside a container is said, not faked silently:
//  - absolute paths inside RUN that start with a stage's WORKDIR are mapped
//    into that stage's root (e.g. /app/data → $ROOT/stage-1/app/data);
//  - useradd/groupadd/adduser/addgroup/chown are stubbed (logged): the host
//    must not get a new system user; USER is checked (not root) but the
//    process runs as the invoking user.
//
// Usage: node scripts/dockerfile-steps.mjs [--dockerfile Dockerfile] [--context .]
//          [--volume /app/config=DIR]... [--health-port N]
//          [--node-modules-from DIR] [--keep] [--timeout SECONDS]
//   --volume          copy DIR over that container path before starting (like -v)
//   --health-port     the admin port to use in the HEALTHCHECK command instead of
//                     the one written there (for a config given with --volume)
//   --node-modules-from  replace `npm ci` in RUN by a copy of this node_modules
//                     (test shortcut: the native build of better-sqlite3 takes
//                     minutes); `npm run build` and `npm prune` still run for real
// Exit 0 when every step ran and the result started, answered the health
// check and stopped cleanly; 1 otherwise.

import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const args = process.argv.slice(2);
const opt = { dockerfile: "Dockerfile", context: ".", volumes: [], healthPort: null, nodeModulesFrom: null, keep: false, timeout: 60 };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const next = () => {
    const v = args[++i];
    if (v === undefined) fail(`${a} needs a value`);
    return v;
  };
  if (a === "--dockerfile") opt.dockerfile = next();
  else if (a === "--context") opt.context = next();
  else if (a === "--volume") {
    const v = next();
    const eq = v.indexOf("=");
    if (eq <= 0) fail(`--volume wants CONTAINER_PATH=HOST_DIR, not ${v}`);
    opt.volumes.push({ to: v.slice(0, eq), from: path.resolve(v.slice(eq + 1)) });
  } else if (a === "--health-port") opt.healthPort = Number(next());
  else if (a === "--node-modules-from") opt.nodeModulesFrom = path.resolve(next());
  else if (a === "--keep") opt.keep = true;
  else if (a === "--timeout") opt.timeout = Number(next());
  else if (a === "-h" || a === "--help") {
    process.stdout.write(readFileSync(new URL(import.meta.url), "utf8").split("\n").filter((l) => l.startsWith("//")).map((l) => l.slice(3)).join("\n") + "\n");
    process.exit(0);
  } else fail(`unknown argument ${a}`);
}

function fail(message) {
  process.stderr.write(`dockerfile-steps: FAILED: ${message}\n`);
  process.exit(1);
}

function log(message) {
  process.stdout.write(`${message}\n`);
}

// ---- parse -------------------------------------------------------------------

/** Logical instructions: comments dropped, `\` continuations joined. */
function parseDockerfile(text, file) {
  const out = [];
  let buf = "";
  let startLine = 0;
  text.split("\n").forEach((raw, idx) => {
    const line = raw.replace(/\r$/, "");
    if (buf === "" && /^\s*(#|$)/.test(line)) return;
    if (buf === "") startLine = idx + 1;
    if (/\\\s*$/.test(line)) {
      buf += line.replace(/\\\s*$/, " ");
      return;
    }
    buf += line;
    const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(buf);
    if (!m) fail(`${file}:${startLine}: cannot parse: ${buf}`);
    out.push({ op: m[1].toUpperCase(), arg: m[2].trim(), line: startLine });
    buf = "";
  });
  return out;
}

function jsonOrShell(arg) {
  if (arg.startsWith("[")) {
    try {
      return JSON.parse(arg);
    } catch {
      /* fall through: shell form */
    }
  }
  return ["/bin/sh", "-c", arg];
}

// ---- run -----------------------------------------------------------------------

const dockerfile = path.resolve(opt.dockerfile);
const context = path.resolve(opt.context);
const steps = parseDockerfile(readFileSync(dockerfile, "utf8"), opt.dockerfile);
const root = mkdtempSync(path.join(os.tmpdir(), "xmpp-guard-dockerfile-"));
const stages = [];
let stage = null;
const STUBS = [
  // Shell functions shadowing commands that would change the host system.
  ...["useradd", "groupadd", "adduser", "addgroup", "chown"].map((c) => `${c}() { echo "  (stubbed outside a container: ${c} $*)"; }`),
].join("\n");

function inStage(s, p) {
  return path.join(s.root, path.posix.resolve(s.workdir, p));
}

function mapPaths(s, command) {
  // Absolute paths under any WORKDIR this stage used → into the stage's root.
  let out = command;
  for (const dir of [...s.workdirs].sort((a, b) => b.length - a.length)) {
    if (dir === "/") continue;
    const re = new RegExp(`(^|[\\s=:'"])${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?=/|\\s|$|['"])`, "g");
    out = out.replace(re, (_m, pre) => `${pre}${s.root}${dir}`);
  }
  return out;
}

let n = 0;
const total = steps.length;
for (const step of steps) {
  n++;
  log(`Step ${n}/${total} : ${step.op} ${step.arg}`);
  switch (step.op) {
    case "FROM": {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(step.arg);
      if (!m) fail(`line ${step.line}: FROM ${step.arg}`);
      stage = { name: m[2] ?? String(stages.length), image: m[1], root: path.join(root, `stage-${stages.length}`), workdir: "/", workdirs: new Set(["/"]), env: {}, user: "root" };
      mkdirSync(stage.root, { recursive: true });
      stages.push(stage);
      log(`  base image ${m[1]}: this host's node ${process.version} stands in for it`);
      break;
    }
    case "WORKDIR":
      stage.workdir = path.posix.resolve(stage.workdir, step.arg);
      stage.workdirs.add(stage.workdir);
      mkdirSync(inStage(stage, "."), { recursive: true });
      break;
    case "ENV": {
      for (const m of step.arg.matchAll(/(\w+)=("[^"]*"|\S+)/g)) stage.env[m[1]] = m[2].replace(/^"|"$/g, "");
      break;
    }
    case "ARG":
      break;
    case "COPY": {
      const parts = step.arg.split(/\s+/);
      let from = null;
      while (parts[0]?.startsWith("--")) {
        const flag = parts.shift();
        const m = /^--from=(.+)$/.exec(flag);
        if (m) from = m[1];
        else if (!/^--(chown|chmod|link)=?/.test(flag)) fail(`line ${step.line}: unsupported COPY flag ${flag}`);
      }
      const dest = parts.pop();
      const src = from === null ? null : stages.find((s) => s.name === from);
      if (from !== null && !src) fail(`line ${step.line}: COPY --from=${from}: no such stage`);
      for (const p of parts) {
        const source = src ? path.join(src.root, p.startsWith("/") ? p : path.posix.join(src.workdir, p)) : path.join(context, p);
        if (!existsSync(source)) fail(`line ${step.line}: COPY source ${p} does not exist (${source})`);
        const into = dest.endsWith("/") || parts.length > 1 ? path.join(inStage(stage, dest), path.basename(p)) : inStage(stage, dest);
        const target = statSync(source).isDirectory() ? inStage(stage, dest) : into;
        mkdirSync(path.dirname(target), { recursive: true });
        cpSync(source, target, { recursive: true, dereference: true });
      }
      break;
    }
    case "RUN": {
      let command = mapPaths(stage, step.arg);
      if (opt.nodeModulesFrom !== null) {
        command = command.replace(/\bnpm ci\b(\s+--[\w-]+)*/g, `cp -a "${opt.nodeModulesFrom}/." node_modules/`);
        // The copied native modules are built already.
        command = command.replace(/\bnpm rebuild\b[\w@. -]*/g, "true");
        if (command.includes("node_modules/")) mkdirSync(inStage(stage, "node_modules"), { recursive: true });
      }
      const r = spawnSync("/bin/sh", ["-ec", `${STUBS}\n${command}`], {
        cwd: inStage(stage, "."),
        env: { ...process.env, ...stage.env },
        stdio: ["ignore", "inherit", "inherit"],
        timeout: 15 * 60_000,
      });
      if (r.status !== 0) fail(`line ${step.line}: RUN exited with ${r.status ?? r.signal}: ${step.arg}`);
      break;
    }
    case "USER":
      stage.user = step.arg;
      break;
    case "EXPOSE":
    case "VOLUME":
    case "LABEL":
      break;
    case "STOPSIGNAL":
      stage.stopSignal = step.arg;
      break;
    case "HEALTHCHECK": {
      const m = /^((?:--\S+\s+)*)CMD\s+(.+)$/.exec(step.arg);
      if (!m) fail(`line ${step.line}: HEALTHCHECK without CMD`);
      stage.health = m[2];
      break;
    }
    case "ENTRYPOINT":
      stage.entrypoint = jsonOrShell(step.arg);
      break;
    case "CMD":
      stage.cmd = jsonOrShell(step.arg);
      break;
    default:
      fail(`line ${step.line}: instruction ${step.op} is not supported by this script; teach it`);
  }
}

const final = stages.at(-1);
if (!final) fail("no FROM");
const problems = [];
if (final.user === "root" || final.user === "0") problems.push("the final stage runs as root (no USER)");
if (!final.health) problems.push("the final stage has no HEALTHCHECK");
if (!final.stopSignal) problems.push("no STOPSIGNAL");

// Only production dependencies in the final image.
const pkg = JSON.parse(readFileSync(path.join(context, "package.json"), "utf8"));
const finalModules = inStage(final, "node_modules");
for (const dev of Object.keys(pkg.devDependencies ?? {})) {
  if (existsSync(path.join(finalModules, dev))) problems.push(`devDependency ${dev} is in the final image's node_modules`);
}
for (const dep of Object.keys(pkg.dependencies ?? {})) {
  if (!existsSync(path.join(finalModules, dep))) problems.push(`dependency ${dep} is missing from the final image's node_modules`);
}
if (problems.length > 0) fail(problems.join("; "));

for (const v of opt.volumes) {
  const target = inStage(final, v.to);
  rmSync(target, { recursive: true, force: true });
  cpSync(v.from, target, { recursive: true });
  log(`volume ${v.to} ← ${v.from}`);
}

// ---- start, health check, stop ---------------------------------------------------

const argv = [...(final.entrypoint ?? []), ...(final.cmd ?? [])];
if (argv.length === 0) fail("no ENTRYPOINT/CMD");
log(`start: ${argv.join(" ")} (in ${final.workdir}; USER ${final.user} → running as ${os.userInfo().username})`);
const child = spawn(argv[0], argv.slice(1), { cwd: inStage(final, "."), env: { ...process.env, ...final.env }, stdio: ["ignore", "pipe", "pipe"] });
let output = "";
child.stdout.on("data", (d) => (output += d));
child.stderr.on("data", (d) => (output += d));
const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
const deadline = Date.now() + opt.timeout * 1000;
let healthy = false;
const health = opt.healthPort ? final.health.replace(/127\.0\.0\.1:\d+/g, `127.0.0.1:${opt.healthPort}`) : final.health;
const started = Date.now();
while (Date.now() < deadline && child.exitCode === null) {
  const r = spawnSync("/bin/sh", ["-c", health], { cwd: inStage(final, "."), timeout: 5000, stdio: "ignore" });
  if (r.status === 0) {
    healthy = true;
    break;
  }
  await new Promise((r2) => setTimeout(r2, 250));
}
const cleanup = () => {
  if (!opt.keep) rmSync(root, { recursive: true, force: true });
  else log(`kept ${root}`);
};
if (!healthy) {
  child.kill("SIGKILL");
  await exited;
  cleanup();
  fail(`HEALTHCHECK never passed within ${opt.timeout} s; output:\n${output.slice(-3000)}`);
}
log(`healthy after ${((Date.now() - started) / 1000).toFixed(1)} s (HEALTHCHECK: ${health})`);
child.kill(final.stopSignal);
const stopTimer = setTimeout(() => child.kill("SIGKILL"), 30_000);
const { code, signal } = await exited;
clearTimeout(stopTimer);
cleanup();
if (code !== 0) fail(`${final.stopSignal} ended it with ${code ?? signal}, not 0; output:\n${output.slice(-3000)}`);
log(`stopped by ${final.stopSignal}: exit 0`);
log("OK: every Dockerfile step ran; the result started, passed its HEALTHCHECK and stopped cleanly");
