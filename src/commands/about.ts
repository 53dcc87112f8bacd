// `xmpp-guard about`: versions, the config file and what it sets up, and
// what the running proxy says about itself when its admin endpoint answers
// (works with the proxy stopped, like `prosodyctl about`). Exit 1 when the
// config is invalid.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
import { adminRequest, AdminUnreachable } from "../admin/client.js";
import { ConfigError, loadConfigFile } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { loadRuleFiles } from "../firewall/load.js";
import { knowledgeProviders } from "../knowledge/providers.js";
import { redactUrl } from "../state/redis-connect.js";
import type { CommandOutput } from "./output.js";

const DEPENDENCIES = ["better-sqlite3", "commander", "ioredis", "ltx", "node-forge", "pino", "prom-client", "yaml"];

function dependencyVersion(name: string): string {
  const req = createRequire(import.meta.url);
  try {
    return (JSON.parse(readFileSync(req.resolve(`${name}/package.json`), "utf8")) as { version: string }).version;
  } catch {
    // A package whose "exports" hide package.json: walk up from its entry point.
    try {
      let dir = dirname(req.resolve(name));
      for (let i = 0; i < 5; i++, dir = dirname(dir)) {
        const p = join(dir, "package.json");
        if (!existsSync(p)) continue;
        const pkg = JSON.parse(readFileSync(p, "utf8")) as { name?: string; version?: string };
        if (pkg.name === name) return pkg.version ?? "?";
      }
    } catch {
      // not installed
    }
    return "not installed";
  }
}

function sqliteVersion(): string {
  const db = new Database(":memory:");
  try {
    return String(db.prepare("SELECT sqlite_version()").pluck().get());
  } finally {
    db.close();
  }
}

function age(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}

/**
 * `xmpp-guard about`: versions, the config and what it sets up (listeners,
 * rules with their counts, TLS, state backend, workers, admin), then what the
 * running proxy says about itself when its admin endpoint answers.
 */
export async function aboutCommand(configPath: string, version: string, json: boolean): Promise<CommandOutput> {
  const data: Record<string, unknown> = {
    version,
    node: `${process.version} (${process.platform} ${process.arch})`,
    sqlite: sqliteVersion(),
    dependencies: Object.fromEntries(DEPENDENCIES.map((d) => [d, dependencyVersion(d)])),
    config: resolve(configPath),
  };
  const out: string[] = [
    `xmpp-guard ${version}`,
    "",
    "Runtime",
    `  node          ${data["node"]}`,
    `  sqlite        ${data["sqlite"]} (better-sqlite3 ${dependencyVersion("better-sqlite3")})`,
    `  libraries     ${DEPENDENCIES.filter((d) => d !== "better-sqlite3").map((d) => `${d} ${dependencyVersion(d)}`).join(", ")}`,
    "",
    "Configuration",
  ];
  let config: Config;
  try {
    config = await loadConfigFile(configPath);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    out.push(`  file          ${resolve(configPath)}: INVALID`, ...err.format().split("\n").map((l) => `    ${l}`));
    data["config_valid"] = false;
    return json ? { stdout: [JSON.stringify(data)], stderr: [], exitCode: 1 } : { stdout: out, stderr: [], exitCode: 1 };
  }
  data["config_valid"] = true;
  out.push(`  file          ${resolve(configPath)} (valid)`);
  out.push("", "Listeners");
  for (const l of config.listeners) {
    out.push(`  ${l.name.padEnd(12)}  ${l.type.padEnd(7)}  ${l.listen.text} → ${l.upstream.text}${l.proxy_protocol !== "off" ? `  PROXY ${l.proxy_protocol} upstream` : ""}${l.accept_proxy_from.size > 0 ? `  PROXY from ${l.accept_proxy_from.entries.join(" ")}` : ""}`);
  }
  data["listeners"] = config.listeners.map((l) => ({ name: l.name, type: l.type, listen: l.listen.text, upstream: l.upstream.text, proxy_protocol: l.proxy_protocol }));
  out.push("", "Policy");
  const tls = config.tls.certificates.length === 0 ? "off (no certificates)" : `${config.tls.certificates.length} certificate file pair(s), starttls ${config.tls.starttls}, from ${config.tls.min_version}`;
  out.push(`  tls           ${tls}`);
  const rules = async (files: readonly string[]): Promise<string> => {
    if (files.length === 0) return "none";
    const r = await loadRuleFiles(files, undefined, { providers: knowledgeProviders(config) });
    return r.ruleset ? `${files.join(", ")}: ${r.ruleset.ruleCount} rules` : `${files.join(", ")}: DO NOT COMPILE (${r.errors.length} errors; run check-config)`;
  };
  const firewall = await rules(config.firewall.scripts);
  const shadow = await rules(config.firewall.shadow);
  out.push(`  firewall      ${firewall}`, `  shadow rules  ${shadow}`);
  out.push(`  registration  ${config.registration === null ? "off" : "on"}`, `  muc limits    ${config.muc_limits === null ? "off" : "on"}`);
  out.push(`  shaping       c2s ${config.limits.c2s === null ? "off" : "on"}, s2s ${config.limits.s2sin === null ? "off" : "on"}`);
  const stateUsed = config.registration !== null || (config.muc_limits !== null && config.state.redis !== null);
  const state = config.state.redis !== null
    ? `redis ${redactUrl(config.state.redis)} (prefix ${config.state.prefix})`
    : `sqlite ${resolve(config.state.path)}${existsSync(config.state.path) ? "" : " (not created yet)"}`;
  out.push(`  state         ${state}${stateUsed ? "" : " (unused: registration is off)"}`);
  data["firewall"] = { scripts: config.firewall.scripts, shadow: config.firewall.shadow, summary: firewall, shadow_summary: shadow };
  data["state"] = { backend: config.state.redis !== null ? "redis" : "sqlite", used: stateUsed };
  out.push("", "Process");
  out.push(`  workers       ${config.workers === 1 ? "1 (a single process)" : `${config.workers} worker processes and a primary`}`);
  out.push(`  admin         ${config.admin.listen === null ? "off" : `${config.admin.listen.text}${config.admin.token !== null || config.admin.token_file !== null ? " (token required)" : ""}`}`);
  out.push(`  log           ${config.log.level}, ${config.log.format}`);
  data["workers"] = config.workers;
  if (config.admin.listen !== null) {
    try {
      const answer = await adminRequest(config.admin, "GET", "/about", 5000);
      if (answer.status === 200) {
        const a = answer.body;
        data["running"] = a;
        const workers = Array.isArray(a["workers"]) ? (a["workers"] as Array<Record<string, unknown>>) : null;
        const sessions = workers === null ? Number(a["sessions"] ?? 0) : workers.reduce((n, w) => n + Number(w["sessions"] ?? 0), 0);
        out.push(`  running       pid ${String(a["pid"])}, up ${age(Number(a["uptime_seconds"] ?? 0))}, ${sessions} session${sessions === 1 ? "" : "s"}${workers === null ? "" : `, ${workers.filter((w) => w["running"] === true).length}/${workers.length} workers`}`);
      } else {
        out.push(`  running       the admin endpoint answered ${answer.status}`);
      }
    } catch (err) {
      if (!(err instanceof AdminUnreachable)) throw err;
      out.push("  running       no (the admin endpoint does not answer)");
      data["running"] = null;
    }
  }
  return json ? { stdout: [JSON.stringify(data)], stderr: [], exitCode: 0 } : { stdout: out, stderr: [], exitCode: 0 };
}
