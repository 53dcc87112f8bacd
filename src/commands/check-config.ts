// `xmpp-guard check-config` / `run --check`: validate everything a start (or a
// reload) would load, together, like `haproxy -c`: the config file, the
// firewall rule files it names, and the TLS certificates when the config has a
// `tls` section. Each problem is one `file:line:col: message` line (files
// without positions, such as certificates, as `file: message`), then a verdict
// line. Exit code 0 when valid, 1 when anything is invalid. Prints nothing and
// never exits itself: cli.ts does. The checks are prepare()'s (prepare.ts),
// the same a start or a reload runs; this module only words the report.

import type { Config } from "../config/schema.js";
import { checkRules } from "../firewall/check.js";
import { knowledgeProviders } from "../knowledge/providers.js";
import { CertificateError, CertificateStore, type CertificateFiles, type TlsSettings } from "../net/certificates.js";
import { loadCertificates, prepare, type RuleCompiler } from "../prepare.js";

export interface CheckAllResult {
  readonly exitCode: 0 | 1;
  /** Diagnostics and summaries, in order (for stdout). */
  readonly lines: readonly string[];
  /** The loaded config, when it was valid. */
  readonly config?: Config;
}

/** Certificates expiring sooner than this get a warning (not an error). */
const EXPIRY_WARNING_DAYS = 14;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export async function checkAll(configPath: string, now: Date = new Date()): Promise<CheckAllResult> {
  // The rules are compiled as the proxy loads them, through prepare(); their
  // report (diagnostics, summaries) is kept for the output.
  const report = { firewall: [] as readonly string[], shadow: [] as readonly string[], errors: 0 };
  const compiler: RuleCompiler = {
    async loadRules(config) {
      if (config.firewall.scripts.length === 0) return { ruleset: undefined, errors: [] };
      const r = await checkRules(config.firewall.scripts, { localHosts: config.hosts, providers: knowledgeProviders(config) });
      report.firewall = r.lines;
      if (!r.ok) report.errors += Math.max(1, r.errors.length);
      return { ruleset: r.ruleset, errors: r.ok ? [] : r.errors.length > 0 ? r.errors.map((e) => e.format()) : r.lines };
    },
    async loadShadowRules(config) {
      if (config.firewall.shadow.length === 0) return { ruleset: undefined, errors: [] };
      const r = await checkRules(config.firewall.shadow, { providers: knowledgeProviders(config) });
      report.shadow = r.lines.map((l) => `firewall.shadow: ${l}`);
      if (!r.ok) report.errors += Math.max(1, r.errors.length);
      return { ruleset: r.ruleset, errors: r.ok ? [] : report.shadow };
    },
  };
  const ready = await prepare({ file: configPath }, compiler);
  const config = ready.ok ? ready.prepared.config : ready.config;
  if (config === undefined) {
    const problems = ready.ok ? [] : ready.problems;
    return {
      exitCode: 1,
      lines: [problems.map((p) => p.message).join("\n"), `FAILED: ${configPath}: ${plural(problems.length, "error")}; rules and certificates not checked`],
    };
  }
  const lines: string[] = [`${configPath}: OK (${plural(config.listeners.length, "listener")})`];
  let errors = report.errors;
  lines.push(...(config.firewall.scripts.length > 0 ? report.firewall : ["firewall: no rule files configured"]));
  lines.push(...report.shadow);

  // Certificates (tls.certificates), loaded and matched to their keys.
  if (config.tls.certificates.length === 0) {
    lines.push("tls: no certificates configured");
  } else if (ready.ok) {
    const certs = certificateReport(ready.prepared.certificates, now);
    lines.push(...certs.lines);
    errors += certs.errors;
  } else {
    const tls = ready.problems.filter((p) => p.part === "tls");
    for (const p of tls) lines.push(p.file !== undefined ? `${p.file}: error: ${p.detail ?? p.message}` : p.message);
    errors += tls.length;
    if (tls.length === 0) lines.push(...certificateReport(await loadCertificates(config), now).lines);
  }

  if (errors > 0) {
    lines.push(`FAILED: ${plural(errors, "error")}`);
    return { exitCode: 1, lines, config };
  }
  lines.push("Configuration is valid");
  return { exitCode: 0, lines, config };
}

/** Expired is an error, expiring soon a warning; one line per certificate. */
function certificateReport(store: CertificateStore | null, now: Date): { lines: string[]; errors: number } {
  const lines: string[] = [];
  let errors = 0;
  for (const info of store?.info() ?? []) {
    const days = Math.floor((info.notAfter.getTime() - now.getTime()) / 86_400_000);
    if (days < 0) {
      lines.push(`${info.file}: error: certificate expired on ${info.notAfter.toISOString()}`);
      errors++;
      continue;
    }
    if (days < EXPIRY_WARNING_DAYS) lines.push(`${info.file}: warning: certificate expires in ${plural(days, "day")} (${info.notAfter.toISOString()})`);
    lines.push(`${info.file}: OK (${info.names.join(", ")}; until ${info.notAfter.toISOString().slice(0, 10)})`);
  }
  return { lines, errors };
}

/** Load the certificates as the proxy would; expired is an error, expiring soon a warning. */
export async function checkCertificates(files: readonly CertificateFiles[], settings: TlsSettings = {}, now: Date = new Date()): Promise<{ lines: string[]; errors: number }> {
  try {
    return certificateReport(await CertificateStore.load(files, settings), now);
  } catch (err) {
    if (!(err instanceof CertificateError)) throw err;
    return { lines: err.problems.map((p) => `${p.file}: error: ${p.message}`), errors: err.problems.length };
  }
}
