// `xmpp-guard check-config` / `run --check`: validate everything a start (or a
// reload) would load, together, like `haproxy -c`: the config file, the
// firewall rule files it names, and the TLS certificates when the config has a
// `tls` section. Each problem is one `file:line:col: message` line (files
// without positions, such as certificates, as `file: message`), then a verdict
// line. Exit code 0 when valid, 1 when anything is invalid. Prints nothing and
// never exits itself: cli.ts does.

import { ConfigError, loadConfigFile } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { checkRules } from "../firewall/check.js";
import { knowledgeProviders } from "../knowledge/providers.js";
import { CertificateError, CertificateStore, type CertificateFiles, type TlsSettings } from "../net/certificates.js";

export interface CheckAllResult {
  readonly exitCode: 0 | 1;
  /** Diagnostics and summaries, in order (for stdout). */
  readonly lines: readonly string[];
  /** The loaded config, when it was valid. */
  readonly config?: Config;
}

/** Certificates expiring sooner than this get a warning (not an error). */
const EXPIRY_WARNING_DAYS = 14;

/** The `tls` section's certificates and settings, or null when TLS is off (no certificates). */
function tlsSection(config: Config): { certificates: readonly CertificateFiles[]; settings: TlsSettings } | null {
  const tls = config.tls;
  if (tls.certificates.length === 0) return null;
  const settings: TlsSettings = { min_version: tls.min_version };
  if (tls.ciphers !== null) settings.ciphers = tls.ciphers;
  return { certificates: tls.certificates, settings };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export async function checkAll(configPath: string, now: Date = new Date()): Promise<CheckAllResult> {
  const lines: string[] = [];
  let config: Config;
  try {
    config = await loadConfigFile(configPath);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    lines.push(err.format());
    lines.push(`FAILED: ${configPath}: ${plural(err.issues.length, "error")}; rules and certificates not checked`);
    return { exitCode: 1, lines };
  }
  let errors = 0;
  lines.push(`${configPath}: OK (${plural(config.listeners.length, "listener")})`);

  // Firewall rules, compiled together exactly as the proxy loads them.
  const scripts = config.firewall.scripts;
  if (scripts.length > 0) {
    const rules = await checkRules(scripts, { localHosts: config.hosts, providers: knowledgeProviders(config) });
    lines.push(...rules.lines);
    if (!rules.ok) errors += Math.max(1, rules.errors.length);
  } else {
    lines.push("firewall: no rule files configured");
  }
  // Shadow rules: compiled apart, as the proxy loads them (log-only).
  if (config.firewall.shadow.length > 0) {
    const rules = await checkRules(config.firewall.shadow, { providers: knowledgeProviders(config) });
    lines.push(...rules.lines.map((l) => `firewall.shadow: ${l}`));
    if (!rules.ok) errors += Math.max(1, rules.errors.length);
  }

  // Certificates (tls.certificates), loaded and matched to their keys.
  const tls = tlsSection(config);
  if (tls === null) {
    lines.push("tls: no certificates configured");
  } else {
    const certs = await checkCertificates(tls.certificates, tls.settings, now);
    lines.push(...certs.lines);
    errors += certs.errors;
  }

  if (errors > 0) {
    lines.push(`FAILED: ${plural(errors, "error")}`);
    return { exitCode: 1, lines, config };
  }
  lines.push("Configuration is valid");
  return { exitCode: 0, lines, config };
}

/** Load the certificates as the proxy would; expired is an error, expiring soon a warning. */
export async function checkCertificates(files: readonly CertificateFiles[], settings: TlsSettings = {}, now: Date = new Date()): Promise<{ lines: string[]; errors: number }> {
  const lines: string[] = [];
  let errors = 0;
  try {
    const store = await CertificateStore.load(files, settings);
    for (const info of store.info()) {
      const days = Math.floor((info.notAfter.getTime() - now.getTime()) / 86_400_000);
      if (days < 0) {
        lines.push(`${info.file}: error: certificate expired on ${info.notAfter.toISOString()}`);
        errors++;
        continue;
      }
      if (days < EXPIRY_WARNING_DAYS) lines.push(`${info.file}: warning: certificate expires in ${plural(days, "day")} (${info.notAfter.toISOString()})`);
      lines.push(`${info.file}: OK (${info.names.join(", ")}; until ${info.notAfter.toISOString().slice(0, 10)})`);
    }
  } catch (err) {
    if (!(err instanceof CertificateError)) throw err;
    for (const p of err.problems) lines.push(`${p.file}: error: ${p.message}`);
    errors += err.problems.length;
  }
  return { lines, errors };
}
