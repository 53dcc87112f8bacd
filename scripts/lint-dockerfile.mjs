#!/usr/bin/env node
// Lint the Dockerfile: the generic checks of npm `dockerfile-utils` (the
// linter behind the VS Code Docker language server: instruction syntax,
// arguments, duplicate HEALTHCHECK/CMD, bad EXPOSE ports, casing, …) plus
// this project's packaging rules (multi-stage, non-root USER, HEALTHCHECK on
// /healthz, STOPSIGNAL SIGTERM, config and rules as volumes, pinned base
// images, dev dependencies pruned). Prints `file:line:col: severity: message`
// and exits 0 clean, 1 on any error (warnings alone pass), 2 when the linter
// package is not installed.
//
// Usage: node scripts/lint-dockerfile.mjs [Dockerfile]

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

const file = process.argv[2] ?? "Dockerfile";
let utils;
try {
  utils = await import("dockerfile-utils");
} catch {
  process.stderr.write("lint-dockerfile: the devDependency dockerfile-utils is not installed; run `npm ci`\n");
  process.exit(2);
}
const text = readFileSync(file, "utf8");
const diagnostics = [];

for (const d of utils.validate(text)) {
  // LSP Diagnostic severities: 1 error, 2 warning.
  const severity = d.severity === 1 ? "error" : "warning";
  diagnostics.push({ line: d.range.start.line + 1, col: d.range.start.character + 1, severity, message: d.message });
}

// ---- project rules ---------------------------------------------------------------
// Logical instructions with their first line (continuations joined, comments dropped).
const instructions = [];
{
  let buf = "";
  let start = 0;
  text.split("\n").forEach((raw, i) => {
    if (buf === "" && /^\s*(#|$)/.test(raw)) return;
    if (buf === "") start = i + 1;
    if (/\\\s*$/.test(raw)) {
      buf += raw.replace(/\\\s*$/, " ");
      return;
    }
    buf += raw;
    const m = /^\s*(\w+)\s*(.*)$/.exec(buf);
    if (m) instructions.push({ op: m[1].toUpperCase(), arg: m[2].trim(), line: start });
    buf = "";
  });
}
const rule = (line, message, severity = "error") => diagnostics.push({ line, col: 1, severity, message: `${message} [xmpp-guard]` });
const froms = instructions.filter((i) => i.op === "FROM");
if (froms.length < 2) rule(froms[0]?.line ?? 1, "use a multi-stage build: build in one stage, ship dist/ and production node_modules in another");
for (const f of froms) {
  const image = f.arg.split(/\s+/)[0];
  if (!image.includes(":") && !image.includes("@")) rule(f.line, `base image ${image} has no tag: pin it (e.g. node:22-bookworm-slim)`);
  else if (image.endsWith(":latest")) rule(f.line, `base image ${image}: pin a version, not latest`);
  // Node release lines past their end of life get no security fixes.
  const major = /^node:(\d+)/.exec(image)?.[1];
  const eol = { 14: "2023-04-30", 16: "2023-09-11", 18: "2025-04-30", 20: "2026-04-30" }[major ?? ""];
  if (eol !== undefined && new Date() > new Date(eol)) rule(f.line, `base image ${image}: Node ${major} reached its end of life on ${eol}; use a maintained line (node:22, node:24)`);
}
const lastFrom = froms.at(-1)?.line ?? 0;
const finalStage = instructions.filter((i) => i.line >= lastFrom);
const user = finalStage.filter((i) => i.op === "USER").at(-1);
if (!user) rule(lastFrom, "the final stage has no USER: the proxy must not run as root");
else if (/^(root|0)(:|$)/.test(user.arg)) rule(user.line, "the final stage runs as root");
const health = finalStage.filter((i) => i.op === "HEALTHCHECK").at(-1);
if (!health) rule(lastFrom, "no HEALTHCHECK in the final stage");
else if (!health.arg.includes("/readyz")) rule(health.line, "HEALTHCHECK should probe the admin endpoint /readyz (ready: listeners bound, upstream reachable)");
const stop = instructions.filter((i) => i.op === "STOPSIGNAL").at(-1);
if (!stop) rule(lastFrom, "no STOPSIGNAL (the proxy drains on SIGTERM)");
else if (stop.arg !== "SIGTERM") rule(stop.line, `STOPSIGNAL ${stop.arg}: the proxy drains on SIGTERM`);
const volumes = finalStage.filter((i) => i.op === "VOLUME").map((i) => i.arg).join(" ");
for (const dir of ["config", "rules"]) {
  if (!new RegExp(`/${dir}\\b`).test(volumes)) rule(lastFrom, `the ${dir} directory should be a VOLUME`);
}
const runs = instructions.filter((i) => i.op === "RUN").map((i) => i.arg).join("\n");
// The dependency layer is cached only when it comes before the sources.
const npmCi = instructions.find((i) => i.op === "RUN" && /\bnpm ci\b/.test(i.arg));
const copySources = (i) => i.arg.split(/\s+/).filter((a) => !a.startsWith("--")).slice(0, -1);
const copySrc = instructions.find((i) => i.op === "COPY" && !i.arg.startsWith("--from") && copySources(i).some((a) => /^(\.\/?|\.?\/?src\/?)$/.test(a)));
if (npmCi && copySrc && copySrc.line < npmCi.line) rule(copySrc.line, "sources are copied before `npm ci`: every source change re-installs the dependencies (copy package.json and package-lock.json, run npm ci, then copy src)");
if (!existsSync(join(dirname(file), ".dockerignore"))) rule(1, "no .dockerignore beside the Dockerfile: node_modules, dist and .git would be sent as build context", "warning");
if (!/npm (prune --omit=dev|ci [^\n]*--omit=dev)/.test(runs)) rule(froms[0]?.line ?? 1, "dev dependencies are never pruned (npm prune --omit=dev)");
if (/apt-get install(?![^\n]*--no-install-recommends)/.test(runs)) rule(1, "apt-get install without --no-install-recommends", "warning");

diagnostics.sort((a, b) => a.line - b.line || a.col - b.col);
for (const d of diagnostics) process.stdout.write(`${file}:${d.line}:${d.col}: ${d.severity}: ${d.message}\n`);
const errors = diagnostics.filter((d) => d.severity === "error").length;
const warnings = diagnostics.length - errors;
process.stdout.write(`${file}: ${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}\n`);
process.exit(errors > 0 ? 1 : 0);
