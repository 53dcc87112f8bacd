// prepare(candidate): everything that must hold before a config can run,
// checked together, without touching what is running. The config is read
// and validated (every problem, at file:line:col), then the TLS certificates
// are loaded, the firewall rules and shadow rules compiled, and the state the
// pipeline needs opened. The answer is either the prepared pieces, for the
// caller to swap in, or every problem found. Used by the start and the reload
// of a process (app.ts), the cluster primary's check before it fans a reload
// out (cluster.ts), and `check-config` (check.ts): one answer to "can this
// config run?" everywhere.
import { ConfigError, formatIssue, loadConfigFile, loadConfigText } from "./config/load.js";
import type { Config } from "./config/schema.js";
import { ERRORS, type ErrorCode } from "./errors.js";
import type { CompiledRuleSet } from "./firewall/compile.js";
import { loadRuleFiles } from "./firewall/load.js";
import { knowledgeProviders } from "./knowledge/providers.js";
import { CertificateError, CertificateStore } from "./net/certificates.js";

/** What to prepare: a config file to read, YAML text, or a Config validated already. */
export type Candidate =
  | { readonly file: string; readonly text?: string }
  | { readonly config: Config };

/** One problem that stops the candidate from running. */
export interface Problem {
  /** Which check found it (logs and check-config group by it). */
  readonly part: "config" | "tls" | "firewall" | "firewall.shadow" | "state";
  /** Error code for the log line. */
  readonly code: ErrorCode;
  /** One line, with where it is: `file:line:col: path: message`, `tls.certificates: file: message`, a rule file's diagnostic. */
  readonly message: string;
  /** The file a certificate problem is about, and the problem without it (check-config prints `file: error: detail`). */
  readonly file?: string;
  readonly detail?: string;
}

export interface Prepared {
  readonly config: Config;
  /** Compiled firewall.scripts; undefined when none are configured. */
  readonly rules: CompiledRuleSet | undefined;
  /** Compiled firewall.shadow; undefined when none are configured. */
  readonly shadow: CompiledRuleSet | undefined;
  /** Loaded tls.certificates; null when TLS is off. */
  readonly certificates: CertificateStore | null;
}

export type PrepareResult =
  | { readonly ok: true; readonly prepared: Prepared }
  | {
      readonly ok: false;
      readonly problems: readonly Problem[];
      /** The validated config, when only later checks failed. */
      readonly config?: Config;
    };

/** Compiles rules for a candidate and opens its state; nothing is swapped in. */
export interface RuleCompiler {
  loadRules(config: Config): Promise<{ ruleset: CompiledRuleSet | undefined; errors: readonly string[] }>;
  loadShadowRules(config: Config): Promise<{ ruleset: CompiledRuleSet | undefined; errors: readonly string[] }>;
  /** Opens (or creates) what the pipeline will need: state stores. Throws when it cannot. */
  openState?(config: Config): Promise<void>;
}

/**
 * Compiles rules against stand-in providers (lookups answer "unknown"): for a
 * process that checks a candidate but does not run its rules (the cluster
 * primary, check-config). `knowledge` is what the running process has on
 * (changing it takes a restart); the candidate's by default.
 */
export function checkOnlyRules(knowledge?: Config["knowledge"]): RuleCompiler {
  const providers = (config: Config) => knowledgeProviders({ knowledge: knowledge ?? config.knowledge, component: config.component });
  return {
    async loadRules(config) {
      if (config.firewall.scripts.length === 0) return { ruleset: undefined, errors: [] };
      const r = await loadRuleFiles(config.firewall.scripts, undefined, { localHosts: config.hosts, providers: providers(config) });
      return r.ruleset ? { ruleset: r.ruleset, errors: [] } : { ruleset: undefined, errors: r.errors.map((e) => e.format()) };
    },
    async loadShadowRules(config) {
      if (config.firewall.shadow.length === 0) return { ruleset: undefined, errors: [] };
      const r = await loadRuleFiles(config.firewall.shadow, undefined, { providers: providers(config) });
      return r.ruleset ? { ruleset: r.ruleset, errors: [] } : { ruleset: undefined, errors: r.errors.map((e) => `firewall.shadow: ${e.format()}`) };
    },
  };
}

/** tls.certificates → a store (null: TLS off). Throws CertificateError listing every broken file. */
export async function loadCertificates(config: Config): Promise<CertificateStore | null> {
  const tls = config.tls;
  if (tls.certificates.length === 0) return null;
  return CertificateStore.load(tls.certificates, { min_version: tls.min_version, ...(tls.ciphers !== null ? { ciphers: tls.ciphers } : {}) });
}

async function readCandidate(candidate: Candidate): Promise<{ config: Config } | { problems: Problem[] }> {
  if ("config" in candidate) return { config: candidate.config };
  try {
    const config = candidate.text !== undefined ? loadConfigText(candidate.text, candidate.file) : await loadConfigFile(candidate.file);
    return { config };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { problems: err.issues.map((i) => ({ part: "config", code: "XPX_ERR_CONFIG_INVALID", message: formatIssue(i) })) };
  }
}

/**
 * Everything needed to know that `candidate` can run, or every problem. An
 * invalid config stops there (nothing else can be judged without it); past
 * that, certificates, rules, shadow rules and state are all checked, so one
 * answer lists every problem. Nothing running is changed: the caller swaps
 * the prepared pieces in, or keeps what it has. Never throws for a bad
 * candidate.
 */
export async function prepare(candidate: Candidate, compiler: RuleCompiler = checkOnlyRules()): Promise<PrepareResult> {
  const read = await readCandidate(candidate);
  if ("problems" in read) return { ok: false, problems: read.problems };
  const config = read.config;
  const problems: Problem[] = [];

  // Certificates are re-read every time (renewed files, same paths).
  let certificates: CertificateStore | null = null;
  try {
    certificates = await loadCertificates(config);
  } catch (err) {
    if (err instanceof CertificateError) {
      for (const p of err.problems) problems.push({ part: "tls", code: "XPX_ERR_TLS_CERTIFICATES", file: p.file, detail: p.message, message: `tls.certificates: ${p.file}: ${p.message}` });
    } else {
      problems.push({ part: "tls", code: "XPX_ERR_TLS_CERTIFICATES", message: `tls: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  // State first: the rules compile against what it opens (the session directory).
  if (compiler.openState) {
    try {
      await compiler.openState(config);
    } catch (err) {
      problems.push({ part: "state", code: "XPX_ERR_CONFIG_INVALID", message: err instanceof Error ? err.message : String(err) });
    }
  }
  const rules = await compiled(compiler.loadRules(config), "firewall", problems);
  const shadow = await compiled(compiler.loadShadowRules(config), "firewall.shadow", problems);
  if (problems.length > 0) return { ok: false, problems, config };
  return { ok: true, prepared: { config, rules, shadow, certificates } };
}

async function compiled(
  load: Promise<{ ruleset: CompiledRuleSet | undefined; errors: readonly string[] }>,
  part: "firewall" | "firewall.shadow",
  problems: Problem[],
): Promise<CompiledRuleSet | undefined> {
  const r = await load;
  for (const e of r.errors) for (const line of e.split("\n")) problems.push({ part, code: "XPX_ERR_RULES_INVALID", message: line });
  return r.ruleset;
}

/** The one-line-each form of a refused candidate's problems (reload answers, start failures). */
export function problemLines(problems: readonly Problem[]): string[] {
  return problems.map((p) => p.message);
}

/** A start that cannot go on: every problem, under the first one's headline. */
export class PrepareError extends Error {
  override name = "PrepareError";
  readonly problems: readonly Problem[];

  constructor(problems: readonly Problem[]) {
    const headline = ERRORS[problems[0]?.code ?? "XPX_ERR_CONFIG_INVALID"].message;
    super(`${headline}:\n${problemLines(problems).join("\n")}`);
    this.problems = problems;
  }
}
