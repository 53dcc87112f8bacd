// Where the firewall stage and the shadow rules report (their hooks, as a
// running proxy sets them): rule hits as metrics, LOG actions as log lines
// at their level, rule-sent stanzas onto the session's stream, errors; and
// for the shadow rules, what they would have done as a rate-limited "policy
// action" line (policy/audit.ts), marked `shadow`.

import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/definitions.js";
import { ruleOf, type AuditLimiter } from "../policy/audit.js";
import type { SessionInfo } from "../policy/pipeline.js";
import type { RuleRef } from "./context.js";
import type { ShadowHooks } from "./shadow.js";
import type { FirewallHooks } from "./stage.js";

/** A LOG action's line, at its level (anything unknown logs at info). */
function logRule(logger: Logger, level: string, message: string, rule: RuleRef, session: SessionInfo, shadow: boolean): void {
  const method = level === "error" ? "error" : level === "warn" ? "warn" : level === "debug" ? "debug" : "info";
  logger[method]({ rule: rule.id, sid: session.id, jid: session.jid, ...(shadow ? { shadow } : {}) }, message);
}

export function firewallHooks(logger: Logger, metrics: Metrics): FirewallHooks {
  return {
    onHit: (rule, action) => metrics.firewallHits.inc({ rule: rule.id, action }),
    onLog: (level, message, rule, session) => logRule(logger, level, message, rule, session, false),
    onEmit: (emitted, target, session) => session.emit?.(target, Buffer.from(emitted.stanza, "utf8")),
    onError: (err, session) => logger.error({ sid: session.id, err: err instanceof Error ? err.message : String(err) }, "firewall error; stanza let through"),
  };
}

export function shadowHooks(logger: Logger, metrics: Metrics, audit: AuditLimiter): ShadowHooks {
  return {
    onWould: (verdict, reason, stanza, session, flow) => {
      metrics.shadowVerdicts.inc({ verdict });
      const suppressed = audit.admit(session);
      if (suppressed === null) {
        metrics.policyLogsSuppressed.inc();
        return;
      }
      logger.info({
        sid: session.id, listener: session.listener, ip: session.ip, jid: session.jid, domain: session.domain,
        stage: "firewall_shadow", shadow: true, rule: ruleOf(reason), action: `would ${verdict}`, reason,
        dir: flow === "inbound" ? "in" : "out",
        stanza: { name: stanza.name, type: stanza.type, id: stanza.id?.slice(0, 64), to: stanza.to?.slice(0, 256) },
        ...(suppressed > 0 ? { suppressed } : {}),
      }, "policy action");
    },
    onHit: (rule, action) => metrics.shadowHits.inc({ rule: rule.id, action }),
    onLog: (level, message, rule, session) => logRule(logger, level, message, rule, session, true),
    onError: (err, session) => logger.error({ sid: session.id, shadow: true, err: err instanceof Error ? err.message : String(err) }, "shadow firewall error"),
  };
}
