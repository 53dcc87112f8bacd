// Composition root: config → logger → metrics → policy → listeners → admin.
// Owns reload (validate everything first, then swap by reference; a failed
// reload changes nothing) and shutdown (stop accepting, drain, then tell the
// remaining peers <system-shutdown/>). No protocol logic lives here.

import type { AddressInfo } from "node:net";
import type { Config } from "./config/schema.js";
import { createLogger, type Logger } from "./log.js";
import { createMetrics, type Metrics } from "./metrics/definitions.js";
import { PolicyState } from "./wiring.js";
import { Listener, type RuntimeSettings } from "./net/listener.js";
import { ResumptionRegistry } from "./net/resumption.js";
import { startAdminServer, type AdminServer } from "./admin/server.js";
import type { FramerLimits } from "./xml/framer.js";
import { watchRuleFiles } from "./firewall/watch.js";
import type { CertificateStore } from "./net/certificates.js";
import { PrepareError, prepare, type Problem } from "./prepare.js";
import { AuditLimiter } from "./policy/audit.js";
import { matchSession, type SessionFilter, type SessionSummary } from "./admin/sessions.js";
import { UpstreamChecker, type UpstreamReport } from "./admin/upstream-check.js";
import { readAdminToken } from "./admin/client.js";
import type { Session } from "./net/session.js";
import { tuneV8 } from "./util/v8-tuning.js";

export interface StartOptions {
  /** Where reloads read the config from; without it, reload() needs a Config. */
  configPath?: string;
  logger?: Logger;
  metrics?: Metrics;
  /** False in a cluster worker: the primary serves the admin port. */
  admin?: boolean;
}

export interface ReloadResult {
  ok: boolean;
  errors: string[];
}

export interface RunningProxy {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Bound address of a listener by name (port 0 in config → the real port here). */
  listenerAddress(name: string): AddressInfo | null;
  adminAddress(): AddressInfo | null;
  /** Open sessions across all listeners. */
  sessionCount(): number;
  /** What works only in part right now (a lost state database), for /readyz; empty when nothing. */
  degraded(): string[];
  /** Live sessions matching `filter` (GET /sessions). */
  sessions(filter?: SessionFilter): SessionSummary[];
  /** Ends session `sid` with <policy-violation/> (XPX_ERR_ADMIN_CLOSE); its summary, or null when unknown. */
  closeSession(sid: string): SessionSummary | null;
  /** Whether each listener's upstream answers (for /readyz). */
  upstreams(): Promise<UpstreamReport[]>;
  /** What each listener's sessions last saw of their upstream: ok, and how long ago (ms). */
  upstreamStatus(): Record<string, { ok: boolean; ageMs: number }>;
  /** Rules and state in use (for `xmpp-guard about`). */
  about(): Record<string, unknown>;
  /** Re-read the config file (or apply `config`), validate, swap. Never throws. */
  reload(config?: Config): Promise<ReloadResult>;
  /** Stop accepting, wait up to drainSeconds for sessions to end, then close the rest with <system-shutdown/>. */
  shutdown(drainSeconds?: number): Promise<void>;
}

/** The expiry gauge shows exactly the certificates in use. */
function exportCertificates(metrics: Metrics, store: CertificateStore | null): void {
  metrics.tlsCertificateExpiry.reset();
  for (const info of store?.info() ?? []) {
    metrics.tlsCertificateExpiry.set({ name: info.names[0] ?? info.file }, Math.floor(info.notAfter.getTime() / 1000));
  }
}

function summarize(s: Session): SessionSummary {
  return {
    sid: s.id,
    listener: s.listener,
    type: s.type,
    ip: s.ip,
    port: s.port,
    jid: s.jid ?? null,
    domain: s.domain ?? null,
    state: s.state,
    authenticated: s.authenticated,
    tls: s.tls?.protocol ?? null,
    started: new Date(s.startedAt).toISOString(),
    seconds: Math.round((Date.now() - s.startedAt) / 100) / 10,
  };
}

function settingsFrom(config: Config, policy: PolicyState, firewallOn: boolean, certificates: CertificateStore | null = null, shadowOn = false): RuntimeSettings {
  const framerLimits: FramerLimits = Object.freeze({
    maxStanzaSize: config.max_stanza_size,
    maxDepth: config.xml.max_depth,
    maxAttributes: config.xml.max_attributes,
    maxHeaderSize: config.xml.max_header_size,
  });
  // Later stages (shaping, registration, firewall, MUC limits) are built here from config.
  return Object.freeze({
    framerLimits,
    pipeline: policy.build(config, firewallOn, shadowOn),
    timeouts: config.timeouts,
    limits: config.limits,
    unlimited: new Set(config.limits.unlimited_jids),
    tls: config.tls,
    certificates,
  });
}

export async function startProxy(initial: Config, options: StartOptions = {}): Promise<RunningProxy> {
  // Before any traffic: V8's inlining budget for the data path (util/v8-tuning.ts).
  tuneV8();
  const logger = options.logger ?? createLogger(initial.log.level);
  const metrics = options.metrics ?? createMetrics();
  const resumption = new ResumptionRegistry();
  let config = initial;
  const audit = new AuditLimiter();
  const policy = new PolicyState(logger, metrics, audit);
  // State, rules and certificates, all checked before anything starts (prepare.ts).
  const ready = await prepare({ config }, policy);
  if (!ready.ok) {
    policy.close();
    throw new PrepareError(ready.problems);
  }
  const { rules, shadow } = ready.prepared;
  policy.firewall.swap(rules);
  policy.shadow.swap(shadow);
  policy.retainLists();
  if (shadow) logger.info({ shadow: config.firewall.shadow, rules: shadow.ruleCount }, "shadow rules loaded: they log what they would do, and do nothing");
  let certificates: CertificateStore | null = ready.prepared.certificates;
  exportCertificates(metrics, certificates);
  if (certificates) logger.info({ certificates: certificates.info().map((i) => ({ names: i.names, notAfter: i.notAfter.toISOString() })) }, "TLS certificates loaded");
  let settings = settingsFrom(config, policy, rules !== undefined, certificates, shadow !== undefined);
  let watcher: { close(): void } | null = null;
  let shadowWatcher: { close(): void } | null = null;
  const reloadRules = async (): Promise<void> => {
    const r = await policy.loadRules(config);
    if (r.errors.length > 0) {
      metrics.ruleReloads.inc({ result: "error" });
      for (const e of r.errors) logger.error({ code: "XPX_ERR_RULES_INVALID" }, `rule reload refused, previous rules stay: ${e}`);
      policy.retainLists();
      return;
    }
    policy.firewall.swap(r.ruleset);
    policy.retainLists();
    metrics.ruleReloads.inc({ result: "ok" });
    logger.info({ scripts: config.firewall.scripts, rules: r.ruleset?.ruleCount }, "firewall rules reloaded");
  };
  const reloadShadow = async (): Promise<void> => {
    const r = await policy.loadShadowRules(config);
    if (r.errors.length > 0) {
      metrics.shadowReloads.inc({ result: "error" });
      for (const e of r.errors) logger.error({ code: "XPX_ERR_RULES_INVALID", shadow: true }, `shadow rule reload refused, previous shadow rules stay: ${e}`);
      policy.retainLists();
      return;
    }
    policy.shadow.swap(r.ruleset);
    policy.retainLists();
    metrics.shadowReloads.inc({ result: "ok" });
    logger.info({ shadow: config.firewall.shadow, rules: r.ruleset?.ruleCount }, "shadow rules reloaded");
  };
  const rewatch = (): void => {
    watcher?.close();
    watcher = null;
    shadowWatcher?.close();
    shadowWatcher = null;
    const onError = (err: unknown): void => logger.warn({ err: err instanceof Error ? err.message : String(err) }, "cannot watch rule files");
    if (config.firewall.watch && config.firewall.scripts.length > 0) {
      watcher = watchRuleFiles(config.firewall.scripts, () => void reloadRules(), { onError });
    }
    if (config.firewall.watch && config.firewall.shadow.length > 0) {
      shadowWatcher = watchRuleFiles(config.firewall.shadow, () => void reloadShadow(), { onError });
    }
  };
  rewatch();
  let draining = false;
  const listeners = new Map<string, Listener>();
  const deps = { logger, metrics, resumption, audit, settings: () => settings, fleet: () => policy.fleet };
  const checker = new UpstreamChecker();

  const startListener = async (lc: Config["listeners"][number]): Promise<void> => {
    const l = new Listener(lc, deps);
    await l.listen();
    listeners.set(lc.name, l);
  };

  try {
    for (const lc of config.listeners) await startListener(lc);
  } catch (err) {
    await Promise.all([...listeners.values()].map((l) => l.stopAccepting()));
    throw err;
  }

  const refuse = (problems: readonly Problem[]): ReloadResult => {
    metrics.reloads.inc({ result: "error" });
    for (const p of problems) logger.error({ code: p.code }, `reload refused, previous config stays: ${p.message}`);
    policy.retainLists();
    return { ok: false, errors: problems.map((p) => p.message) };
  };

  const reload = async (next?: Config): Promise<ReloadResult> => {
    if (!next && !options.configPath) return { ok: false, errors: ["no config file to reload from"] };
    // Everything that can fail is built first (prepare.ts); only then is anything changed.
    const ready = await prepare(next ? { config: next } : { file: options.configPath! }, policy);
    if (!ready.ok) return refuse(ready.problems);
    const candidate = ready.prepared.config;
    const candidateRules = ready.prepared.rules;
    const candidateShadow = ready.prepared.shadow;
    const nextCertificates = ready.prepared.certificates;
    let nextSettings: RuntimeSettings;
    try {
      nextSettings = settingsFrom(candidate, policy, candidateRules !== undefined, nextCertificates, candidateShadow !== undefined);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return refuse(message.split("\n").map((line) => ({ part: "state", code: "XPX_ERR_CONFIG_INVALID", message: line })));
    }
    // Listeners: update in place, start new ones, stop removed ones. A changed
    // listen address means a new socket; sessions on the old one carry on.
    const errors: string[] = [];
    const wanted = new Map(candidate.listeners.map((l) => [l.name, l]));
    for (const [name, l] of listeners) {
      const lc = wanted.get(name);
      if (!lc || lc.listen.text !== l.config.listen.text || lc.type !== l.config.type) {
        await l.stopAccepting();
        listeners.delete(name);
        logger.info({ listener: name }, "listener stopped by reload");
      } else {
        l.updateConfig(lc);
      }
    }
    for (const lc of candidate.listeners) {
      if (listeners.has(lc.name)) continue;
      try {
        await startListener(lc);
      } catch (err) {
        errors.push(err instanceof Error ? err.message : String(err));
      }
    }
    config = candidate;
    policy.firewall.swap(candidateRules);
    policy.shadow.swap(candidateShadow);
    policy.retainLists();
    settings = nextSettings;
    certificates = nextCertificates;
    exportCertificates(metrics, certificates);
    if (certificates) logger.info({ certificates: certificates.info().map((i) => ({ names: i.names, notAfter: i.notAfter.toISOString() })) }, "TLS certificates loaded");
    rewatch();
    for (const l of listeners.values()) l.applySettings();
    logger.level = candidate.log.level;
    metrics.reloads.inc({ result: errors.length === 0 ? "ok" : "error" });
    logger.info({ listeners: [...listeners.keys()], errors }, "configuration reloaded");
    return { ok: errors.length === 0, errors };
  };

  let admin: AdminServer | null = null;
  const running: RunningProxy = {
    metrics,
    logger,
    listenerAddress: (name) => listeners.get(name)?.address() ?? null,
    adminAddress: () => admin?.address() ?? null,
    sessionCount: () => {
      let n = 0;
      for (const l of listeners.values()) n += l.sessions.size;
      return n;
    },
    degraded: () => {
      const fault = policy.stateFault();
      const fleet = policy.fleet;
      return [
        ...(fault === null ? [] : [`state: ${fault}`]),
        // Sessions go on (fail open to this instance's own limits): listed, not unready.
        ...(fleet !== null && !fleet.up ? [`state.redis: unreachable, limits are per instance until it answers (${fleet.why})`] : []),
      ];
    },
    sessions: (filter = {}) => {
      const out: SessionSummary[] = [];
      for (const l of listeners.values()) {
        for (const s of l.sessions) {
          const summary = summarize(s);
          if (matchSession(filter, summary)) out.push(summary);
        }
      }
      return out.sort((a, b) => a.started.localeCompare(b.started));
    },
    closeSession: (sid) => {
      for (const l of listeners.values()) {
        for (const s of l.sessions) {
          if (s.id !== sid) continue;
          const summary = summarize(s);
          s.closeWithError("XPX_ERR_ADMIN_CLOSE");
          return summary;
        }
      }
      return null;
    },
    upstreamStatus: () => {
      const out: Record<string, { ok: boolean; ageMs: number }> = {};
      const now = performance.now();
      for (const l of listeners.values()) if (l.upstreamStatus !== null) out[l.name] = { ok: l.upstreamStatus.ok, ageMs: now - l.upstreamStatus.at };
      return out;
    },
    upstreams: () => checker.check([...listeners.values()].map((l) => ({ name: l.name, upstream: l.config.upstream, passive: l.upstreamStatus }))),
    about: () => ({
      pid: process.pid,
      uptime_seconds: Math.round(process.uptime()),
      sessions: running.sessionCount(),
      listeners: [...listeners.values()].map((l) => ({ name: l.name, type: l.config.type, listen: l.config.listen.text, upstream: l.config.upstream.text, sessions: l.sessions.size })),
      firewall: { scripts: config.firewall.scripts, rules: policy.firewall.ruleset?.ruleCount ?? 0, shadow: config.firewall.shadow, shadow_rules: policy.shadow.ruleset?.ruleCount ?? 0 },
      state: config.registration === null && config.muc_limits === null ? "unused" : config.state.redis !== null ? "redis" : config.registration === null ? "unused" : "sqlite",
      degraded: running.degraded(),
    }),
    reload,
    async shutdown(drainSeconds = config.shutdown.drain_seconds) {
      if (draining) return;
      draining = true;
      const all = [...listeners.values()];
      await Promise.all(all.map((l) => l.stopAccepting()));
      logger.info({ sessions: running.sessionCount(), drainSeconds }, "shutting down: draining sessions");
      const deadline = Date.now() + drainSeconds * 1000;
      while (running.sessionCount() > 0 && Date.now() < deadline) await sleep(50);
      for (const l of all) for (const s of l.sessions) s.closeWithError("XPX_ERR_SHUTDOWN");
      const hard = Date.now() + 3000;
      while (running.sessionCount() > 0 && Date.now() < hard) await sleep(20);
      await admin?.close();
      watcher?.close();
      shadowWatcher?.close();
      policy.close();
      logger.info("shutdown complete");
      logger.flush();
    },
  };

  // The process that serves /readyz reports the same check as a gauge.
  if (options.admin !== false) metrics.trackUpstreams(() => running.upstreams());
  // Read once at start; admin.* changes take effect at restart.
  const adminToken = options.admin !== false ? readAdminToken(config.admin) : null;
  if (config.admin.listen && options.admin !== false) {
    admin = await startAdminServer(config.admin.listen, {
      metrics,
      logger,
      ready: () => !draining && [...listeners.values()].every((l) => l.listening),
      degraded: () => running.degraded(),
      upstreams: () => running.upstreams(),
      reload: () => reload(),
      sessions: (filter) => Promise.resolve(running.sessions(filter)),
      closeSession: (sid) => Promise.resolve(running.closeSession(sid)),
      about: () => Promise.resolve(running.about()),
      token: () => adminToken,
    });
  }
  return running;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
