// Every Prometheus metric xmpp-guard exports, in one place, on a dedicated
// Registry (never prom-client's global one). Names start with xmpp_guard_;
// labels come only from bounded sets (listener names, directions, stanza
// kinds, error conditions, reasons) — never a JID or an IP.
//
// Per-stanza and per-byte counts are plain numbers in TrafficStats, bumped on
// the hot path without touching prom-client, and copied into the counters
// when /metrics is scraped.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { ERRORS, STREAM_ERROR_CONDITIONS } from "../errors.js";
import type { StanzaKind } from "../xml/stanza-view.js";

export const PREFIX = "xmpp_guard_";

/** client→server is "in", server→client is "out". */
export const DIRECTIONS = ["in", "out"] as const;
export const KINDS = ["message", "presence", "iq", "other"] as const satisfies readonly StanzaKind[];
/**
 * A kind's index in KINDS. A function, not a table: a table read with four
 * different keys is a megamorphic keyed load, paid twice per stanza.
 */
export function kindIndex(k: StanzaKind): number {
  return k === "message" ? 0 : k === "presence" ? 1 : k === "iq" ? 2 : 3;
}

export const SESSION_STATES = ["connecting", "open", "authenticated", "bound", "closing"] as const;
export type SessionState = (typeof SESSION_STATES)[number];

// Every label value a counter can take, known up front: each series exists at
// 0 from the start, so the first event is an increase Prometheus can see (a
// series born at 1 has no earlier sample, and increase() over it is 0).
export const RELOAD_RESULTS = ["ok", "error"] as const;
/**
 * Outcomes of a remote list fetch: `ok` (new content), `not_modified` (304),
 * `http_error` (a 4xx/5xx or other unusable status), `network_error`, `timeout`,
 * `too_large` (over knowledge.lists.max_bytes), `pubsub_error` (an error answer
 * to the subscription or the items request).
 */
export const REMOTE_LIST_OUTCOMES = ["ok", "not_modified", "http_error", "network_error", "timeout", "too_large", "pubsub_error"] as const;
export type RemoteListOutcome = (typeof REMOTE_LIST_OUTCOMES)[number];
export const REFUSED_REASONS = ["too_many_connections", "connection_rate", "proxy_header_untrusted", "proxy_header_invalid", "proxy_header_timeout"] as const;
export const UPSTREAM_FAILURE_REASONS = ["refused", "timeout", "closed", "error"] as const;
export const TIMEOUT_KINDS = ["stream_header", "pre_auth_idle", "pre_auth", "stanza", "upstream_connect"] as const;
export const PROXY_HEADER_RESULTS = ["ok", "invalid", "untrusted", "timeout"] as const;
export const THROTTLE_REASONS = ["bytes", "message", "presence", "iq"] as const;
export const POLICY_STAGES = ["registration", "firewall", "muc_limits", "contact_info", "roster_knowledge"] as const;
export const POLICY_VERDICTS = ["drop", "bounce", "rewrite", "close"] as const;
export const TLS_VERSIONS = ["TLSv1.2", "TLSv1.3"] as const;
export const TLS_FAILURE_REASONS = ["handshake", "timeout", "starttls_timeout", "tls_required", "starttls_twice", "stream_error", "closed", "renegotiation"] as const;
/** Codes the framer reports (xml/framer.ts), the framing_errors_total label. */
export const FRAMING_CODES = [
  "XPX_ERR_XML_NOT_WELL_FORMED", "XPX_ERR_XML_INVALID_UTF8", "XPX_ERR_XML_TRUNCATED", "XPX_ERR_XML_RESTRICTED", "XPX_ERR_XML_TEXT_AT_STREAM_LEVEL",
  "XPX_ERR_STANZA_TOO_LARGE", "XPX_ERR_XML_TOO_DEEP", "XPX_ERR_XML_TOO_MANY_ATTRIBUTES", "XPX_ERR_XML_NAME_TOO_LONG", "XPX_ERR_HEADER_TOO_LARGE",
  "XPX_ERR_STREAM_HEADER_INVALID",
] as const;
/** RFC 6120 §6.5 SASL failure conditions, plus dialback's refusal; anything else is "other". */
export const AUTH_FAILURE_REASONS = [
  "aborted", "account-disabled", "credentials-expired", "encryption-required", "incorrect-encoding", "invalid-authzid",
  "invalid-mechanism", "malformed-request", "mechanism-too-weak", "not-authorized", "temporary-auth-failure", "dialback", "other",
] as const;
const AUTH_REASON_SET: ReadonlySet<string> = new Set(AUTH_FAILURE_REASONS);
const CONDITION_SET: ReadonlySet<string> = new Set(STREAM_ERROR_CONDITIONS);
/** Label values must come from a bounded set: an auth failure's reason as counted ("other" when unknown). */
export function authFailureLabel(reason: string): string {
  return AUTH_REASON_SET.has(reason) ? reason : "other";
}
/** The same for a stream error condition the server sent. */
export function streamErrorLabel(condition: string): string {
  return CONDITION_SET.has(condition) ? condition : "other";
}
export const REGISTRATION_REFUSAL_REASONS = [
  "invalid-username", "reserved", "length", "matching", "require", "blocklisted", "not-allowlisted", "throttled", "tombstoned", "look-alike", "store-error",
] as const;
export const NOTIFICATION_RESULTS = ["sent", "dropped", "no-component", "webhook-ok", "webhook-failed"] as const;
export const STATE_ERROR_OPS = ["judge", "reindex", "throttle", "lookup", "record", "tombstone", "bind", "check", "redis", "redis-event", "redis-subscribe", "roster", "roster-lookup", "knowledge", "knowledge-event"] as const;
export const MUC_LIMITED = [["rate", "room"], ["rate", "occupant"], ["nick", "none"], ["chars", "none"], ["lines", "none"]] as const;
export const SHADOW_VERDICTS = ["drop", "bounce", "disconnect", "rewrite", "emit"] as const;
/** Roster-looking stanzas the roster learner did not trust (knowledge/roster-learner.ts). */
export const ROSTER_IGNORED_REASONS = ["foreign-push", "foreign-result", "bad-push"] as const;

/** Hot-path counters of one listener (plain numbers; see header comment). */
export class TrafficStats {
  bytesIn = 0;
  bytesOut = 0;
  /** Bytes read from sessions that have a byte or stanza limit (charged to a bucket). */
  bytesCharged = 0;
  /** [in: message, presence, iq, other, out: message, presence, iq, other] */
  readonly stanzas = new Float64Array(8);
}

export interface Metrics {
  readonly registry: Registry;
  readonly connections: Counter<"listener">;
  readonly connectionsRefused: Counter<"listener" | "reason">;
  readonly sessions: Gauge<"listener" | "state">;
  readonly streamErrors: Counter<"listener" | "condition" | "sender">;
  readonly upstreamFailures: Counter<"listener" | "reason">;
  /** Sessions closed by a timeout: stream_header, pre_auth_idle, pre_auth, stanza, upstream_connect. */
  readonly timeouts: Counter<"listener" | "kind">;
  readonly framingErrors: Counter<"listener" | "direction" | "code">;
  readonly verdicts: Counter<"listener" | "stage" | "verdict">;
  readonly reloads: Counter<"result">;
  readonly proxyHeaders: Counter<"listener" | "result">;
  readonly throttledSeconds: Counter<"listener" | "reason">;
  readonly sessionsThrottled: Gauge<"listener">;
  readonly registrationRefusals: Counter<"reason">;
  readonly registrations: Counter<string>;
  readonly registrationNotifications: Counter<"result">;
  readonly accountDeletions: Counter<string>;
  readonly stateErrors: Counter<"op">;
  /** 1 while the SQLite state file is lost under the open store (deleted, replaced, emptied, damaged) and registration is refused. */
  readonly stateFaulted: Gauge<string>;
  /** 1 while Redis does not answer and each instance applies its own limits (state.redis; docs/deploy.md), else 0. */
  readonly fleetRedisDown: Gauge<string>;
  /** Limit decisions made by this instance alone because Redis could not be asked, by kind (firewall, occupant, connection). */
  readonly fleetLocalDecisions: Counter<"kind">;
  readonly mucLimited: Counter<"reason" | "bucket">;
  readonly firewallHits: Counter<"rule" | "action">;
  readonly ruleReloads: Counter<"result">;
  /** TLS handshakes completed, by listener and protocol version. */
  readonly tlsHandshakes: Counter<"listener" | "version">;
  readonly tlsHandshakeFailures: Counter<"listener" | "reason">;
  /** Unix time (seconds) each configured certificate expires, by its first name. */
  readonly tlsCertificateExpiry: Gauge<"name">;
  /** Failed logins (SASL failure from the server, or a dialback key it refused), by listener and reason. */
  readonly authFailures: Counter<"listener" | "reason">;
  /** Policy actions the log-only (shadow) rules would have taken, by verdict. */
  readonly shadowVerdicts: Counter<"verdict">;
  /** Shadow rule actions run, by rule (file:line) and action. */
  readonly shadowHits: Counter<"rule" | "action">;
  readonly shadowReloads: Counter<"result">;
  /** Seconds from accept to the end of a session, by listener. */
  readonly sessionDuration: Histogram<"listener">;
  /** Seconds from dialing the upstream to its TCP (or TLS) connection, by listener. */
  readonly upstreamConnect: Histogram<"listener">;
  /** Policy action log lines left out by the rate limit (they were counted, not logged). */
  readonly policyLogsSuppressed: Counter<string>;
  /** Firewall roster lookups whose owner's roster the proxy never saw (answered as empty). */
  readonly rosterUnknownLookups: Counter<string>;
  /** Whole rosters learned from the server's roster results. */
  readonly rostersLearned: Counter<string>;
  /** Roster pushes or results the learner did not trust, by reason. */
  readonly rosterIgnored: Counter<"reason">;
  /** Report how many rosters are known at scrape time. */
  trackRosters(count: () => number): void;
  /** Remote block list fetches (HTTP polls, pubsub item fetches), by list name (from the rule files) and outcome. */
  readonly remoteListFetches: Counter<"list" | "outcome">;
  /** Unix time (seconds) of each remote list's last good fetch (200, 304, or pubsub items); 0 until one. */
  readonly remoteListLastSuccess: Gauge<"list">;
  /** Entries each remote list holds now. */
  readonly remoteListEntries: Gauge<"list">;
  /** Creates every series of a listener's counters at 0. */
  initListener(listener: string): void;
  /** Report xmpp_guard_upstream_up at scrape time from this check (the process that serves /readyz). */
  trackUpstreams(check: () => Promise<ReadonlyArray<{ listener: string; ok: boolean }>>): void;
  /** Report MUC tracking sizes at scrape time. */
  trackMuc(stats: () => { rooms: number; occupants: number }): void;
  /** Report the session directory's size at scrape time (knowledge.sessions). */
  trackKnowledge(stats: () => { sessions: number; directed: number }): void;
  /** Register a listener's TrafficStats so scrapes include it. */
  trackTraffic(listener: string, stats: TrafficStats): void;
}

/** Conditions the proxy itself sends (the catalogue's). */
const PROXY_CONDITIONS = [...new Set(Object.values(ERRORS).flatMap((e) => (e.condition === null ? [] : [e.condition as string])))];

function zero<L extends string>(counter: Counter<L>, labels: Partial<Record<L, string>>): void {
  counter.inc(labels, 0);
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  const traffic = new Map<string, TrafficStats>();
  let mucStats: () => { rooms: number; occupants: number } = () => ({ rooms: 0, occupants: 0 });
  let rosterCount: () => number = () => 0;
  let knowledgeStats: () => { sessions: number; directed: number } = () => ({ sessions: 0, directed: 0 });
  let upstreamCheck: (() => Promise<ReadonlyArray<{ listener: string; ok: boolean }>>) | null = null;

  const bytes = new Counter({
    name: `${PREFIX}bytes_total`,
    help: "Bytes relayed, by listener and direction (in = client to server, after TLS decryption).",
    labelNames: ["listener", "direction"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [listener, s] of traffic) {
        this.inc({ listener, direction: "in" }, s.bytesIn);
        this.inc({ listener, direction: "out" }, s.bytesOut);
      }
    },
  });
  void bytes;
  const stanzas = new Counter({
    name: `${PREFIX}stanzas_total`,
    help: "Top-level elements relayed, by listener, direction and kind (nonzas count as other).",
    labelNames: ["listener", "direction", "kind"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [listener, s] of traffic) {
        for (let d = 0; d < 2; d++) {
          for (let k = 0; k < 4; k++) this.inc({ listener, direction: DIRECTIONS[d]!, kind: KINDS[k]! }, s.stanzas[d * 4 + k]!);
        }
      }
    },
  });
  void stanzas;
  const charged = new Counter({
    name: `${PREFIX}bytes_charged_total`,
    help: "Bytes read from shaped sessions and charged to their token buckets, by listener.",
    labelNames: ["listener"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [listener, s] of traffic) this.inc({ listener }, s.bytesCharged);
    },
  });
  void charged;

  const metrics: Metrics = {
    registry,
    connections: new Counter({
      name: `${PREFIX}connections_total`, help: "Connections accepted, by listener.",
      labelNames: ["listener"] as const, registers: [registry],
    }),
    connectionsRefused: new Counter({
      name: `${PREFIX}connections_refused_total`, help: "Connections refused before a session started, by listener and reason.",
      labelNames: ["listener", "reason"] as const, registers: [registry],
    }),
    sessions: new Gauge({
      name: `${PREFIX}sessions`, help: "Sessions currently open, by listener and state.",
      labelNames: ["listener", "state"] as const, registers: [registry],
    }),
    streamErrors: new Counter({
      name: `${PREFIX}stream_errors_total`, help: "Stream errors, by listener, condition and who sent it (proxy or upstream).",
      labelNames: ["listener", "condition", "sender"] as const, registers: [registry],
    }),
    upstreamFailures: new Counter({
      name: `${PREFIX}upstream_failures_total`, help: "Upstream connection failures, by listener and reason (refused, timeout, closed, error).",
      labelNames: ["listener", "reason"] as const, registers: [registry],
    }),
    timeouts: new Counter({
      name: `${PREFIX}timeouts_total`, help: "Sessions closed by a timeout, by listener and kind (stream_header, pre_auth_idle, pre_auth, stanza, upstream_connect).",
      labelNames: ["listener", "kind"] as const, registers: [registry],
    }),
    framingErrors: new Counter({
      name: `${PREFIX}framing_errors_total`, help: "XML framing errors, by listener, direction and error code.",
      labelNames: ["listener", "direction", "code"] as const, registers: [registry],
    }),
    verdicts: new Counter({
      name: `${PREFIX}policy_verdicts_total`, help: "Non-forward policy verdicts, by listener, stage and verdict.",
      labelNames: ["listener", "stage", "verdict"] as const, registers: [registry],
    }),
    reloads: new Counter({
      name: `${PREFIX}config_reloads_total`, help: "Configuration reloads, by result (ok, error).",
      labelNames: ["result"] as const, registers: [registry],
    }),
    proxyHeaders: new Counter({
      name: `${PREFIX}proxy_headers_total`, help: "Inbound PROXY protocol headers, by listener and result (ok, invalid, untrusted, timeout).",
      labelNames: ["listener", "result"] as const, registers: [registry],
    }),
    throttledSeconds: new Counter({
      name: `${PREFIX}throttled_seconds_total`, help: "Seconds sessions spent with reading paused by shaping, by listener and the bucket that paused them (bytes, message, presence, iq).",
      labelNames: ["listener", "reason"] as const, registers: [registry],
    }),
    sessionsThrottled: new Gauge({
      name: `${PREFIX}sessions_throttled`, help: "Sessions whose reading is paused by shaping right now, by listener.",
      labelNames: ["listener"] as const, registers: [registry],
    }),
    registrationRefusals: new Counter({
      name: `${PREFIX}registration_refusals_total`, help: "In-band registrations refused, by reason.",
      labelNames: ["reason"] as const, registers: [registry],
    }),
    registrations: new Counter({
      name: `${PREFIX}registrations_total`, help: "In-band registrations the server accepted.", registers: [registry],
    }),
    registrationNotifications: new Counter({
      name: `${PREFIX}registration_notifications_total`,
      help: "Registration notifications, by result (sent, dropped, no-component, webhook-ok, webhook-failed).",
      labelNames: ["result"] as const, registers: [registry],
    }),
    accountDeletions: new Counter({
      name: `${PREFIX}account_deletions_total`, help: "Accounts deleted in band (tombstoned).", registers: [registry],
    }),
    stateErrors: new Counter({
      name: `${PREFIX}state_errors_total`, help: "Durable state store errors, by operation (check: the state file found lost by the periodic check).",
      labelNames: ["op"] as const, registers: [registry],
    }),
    stateFaulted: new Gauge({
      name: `${PREFIX}state_faulted`, help: "1 while the state database is lost under the proxy (deleted, replaced, emptied or damaged) and registration is refused, until a reload or restart reopens it.",
      registers: [registry],
    }),
    fleetRedisDown: new Gauge({
      name: `${PREFIX}fleet_redis_down`, help: "1 while Redis (state.redis) does not answer and this instance applies its own limits alone instead of the fleet-wide ones; 0 otherwise, and without state.redis.",
      aggregator: "max", registers: [registry],
    }),
    fleetLocalDecisions: new Counter({
      name: `${PREFIX}fleet_local_decisions_total`, help: "Limit decisions made by this instance alone because Redis could not be asked (fail open to per-instance limits), by kind.",
      labelNames: ["kind"] as const, registers: [registry],
    }),
    mucLimited: new Counter({
      name: `${PREFIX}muc_limited_total`, help: "MUC stanzas bounced by flood limits, by reason (rate, nick, chars, lines) and bucket (room, occupant, none).",
      labelNames: ["reason", "bucket"] as const, registers: [registry],
    }),
    firewallHits: new Counter({
      name: `${PREFIX}firewall_rule_hits_total`, help: "Firewall rule actions taken, by rule (file:line) and action.",
      labelNames: ["rule", "action"] as const, registers: [registry],
    }),
    ruleReloads: new Counter({
      name: `${PREFIX}firewall_reloads_total`, help: "Firewall rule reloads triggered by a file change, by result (ok, error).",
      labelNames: ["result"] as const, registers: [registry],
    }),
    tlsHandshakes: new Counter({
      name: `${PREFIX}tls_handshakes_total`, help: "TLS handshakes completed by the proxy (STARTTLS or direct TLS), by listener and protocol version.",
      labelNames: ["listener", "version"] as const, registers: [registry],
    }),
    tlsHandshakeFailures: new Counter({
      name: `${PREFIX}tls_handshake_failures_total`, help: "Connections that ended before or during TLS negotiation, and TLS negotiations refused on established sessions, by listener and reason (handshake, timeout, starttls_timeout, tls_required, starttls_twice, stream_error, closed, renegotiation).",
      labelNames: ["listener", "reason"] as const, registers: [registry],
    }),
    tlsCertificateExpiry: new Gauge({
      name: `${PREFIX}tls_certificate_expiry_timestamp_seconds`, help: "Expiry (notAfter) of each configured certificate as a Unix time, by the certificate's first name.",
      labelNames: ["name"] as const, registers: [registry],
    }),
    authFailures: new Counter({
      name: `${PREFIX}auth_failures_total`, help: "Failed logins seen on the stream (the server's SASL failure, or a dialback key it refused), by listener and reason.",
      labelNames: ["listener", "reason"] as const, registers: [registry],
    }),
    shadowVerdicts: new Counter({
      name: `${PREFIX}firewall_shadow_verdicts_total`, help: "What the log-only (shadow) firewall rules would have done, by verdict; nothing was done.",
      labelNames: ["verdict"] as const, registers: [registry],
    }),
    shadowHits: new Counter({
      name: `${PREFIX}firewall_shadow_rule_hits_total`, help: "Shadow (log-only) firewall rule actions that would have run, by rule (file:line) and action.",
      labelNames: ["rule", "action"] as const, registers: [registry],
    }),
    shadowReloads: new Counter({
      name: `${PREFIX}firewall_shadow_reloads_total`, help: "Shadow (log-only) rule reloads triggered by a file change, by result (ok, error).",
      labelNames: ["result"] as const, registers: [registry],
    }),
    sessionDuration: new Histogram({
      name: `${PREFIX}session_duration_seconds`, help: "How long sessions lasted, from accept to close, by listener.",
      labelNames: ["listener"] as const, registers: [registry],
      buckets: [1, 10, 60, 300, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 7 * 86400],
    }),
    upstreamConnect: new Histogram({
      name: `${PREFIX}upstream_connect_seconds`, help: "Time to connect to the upstream server (TCP, or TLS with tls.upstream_tls), by listener.",
      labelNames: ["listener"] as const, registers: [registry],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
    policyLogsSuppressed: new Counter({
      name: `${PREFIX}policy_action_logs_suppressed_total`, help: "\"policy action\" log lines left out by their rate limit (the actions were still counted).",
      registers: [registry],
    }),
    rosterUnknownLookups: new Counter({
      name: `${PREFIX}roster_unknown_lookups_total`, help: "Firewall roster lookups (IN ROSTER, SUBSCRIBED, …) for a user whose roster the proxy never saw; answered as an empty roster.",
      registers: [registry],
    }),
    rostersLearned: new Counter({
      name: `${PREFIX}rosters_learned_total`, help: "Whole rosters learned from the server's answers to roster requests.",
      registers: [registry],
    }),
    rosterIgnored: new Counter({
      name: `${PREFIX}roster_stanzas_ignored_total`, help: "Roster pushes and results not learned because they did not come from the user's server (foreign-push, foreign-result) or were malformed (bad-push).",
      labelNames: ["reason"] as const, registers: [registry],
    }),
    trackRosters(count) {
      rosterCount = count;
    },
    remoteListFetches: new Counter({
      name: `${PREFIX}remote_list_fetches_total`,
      help: `Remote block list fetches, by list (its %LIST name) and outcome (${REMOTE_LIST_OUTCOMES.join(", ")}).`,
      labelNames: ["list", "outcome"] as const, registers: [registry],
    }),
    remoteListLastSuccess: new Gauge({
      name: `${PREFIX}remote_list_last_success_timestamp_seconds`, help: "Unix time of each remote list's last good fetch (0: none yet).",
      labelNames: ["list"] as const, registers: [registry],
    }),
    remoteListEntries: new Gauge({
      name: `${PREFIX}remote_list_entries`, help: "Entries each remote block list holds.",
      labelNames: ["list"] as const, registers: [registry],
    }),
    initListener(listener) {
      zero(metrics.connections, { listener });
      for (const reason of REFUSED_REASONS) zero(metrics.connectionsRefused, { listener, reason });
      for (const reason of UPSTREAM_FAILURE_REASONS) zero(metrics.upstreamFailures, { listener, reason });
      for (const kind of TIMEOUT_KINDS) zero(metrics.timeouts, { listener, kind });
      for (const direction of DIRECTIONS) for (const code of FRAMING_CODES) zero(metrics.framingErrors, { listener, direction, code });
      for (const condition of PROXY_CONDITIONS) zero(metrics.streamErrors, { listener, condition, sender: "proxy" });
      for (const condition of [...STREAM_ERROR_CONDITIONS, "other"]) zero(metrics.streamErrors, { listener, condition, sender: "upstream" });
      for (const stage of POLICY_STAGES) for (const verdict of POLICY_VERDICTS) zero(metrics.verdicts, { listener, stage, verdict });
      for (const result of PROXY_HEADER_RESULTS) zero(metrics.proxyHeaders, { listener, result });
      for (const reason of THROTTLE_REASONS) zero(metrics.throttledSeconds, { listener, reason });
      for (const version of TLS_VERSIONS) zero(metrics.tlsHandshakes, { listener, version });
      for (const reason of TLS_FAILURE_REASONS) zero(metrics.tlsHandshakeFailures, { listener, reason });
      for (const reason of AUTH_FAILURE_REASONS) zero(metrics.authFailures, { listener, reason });
      metrics.sessionDuration.zero({ listener });
      metrics.upstreamConnect.zero({ listener });
    },
    trackMuc(stats) {
      mucStats = stats;
    },
    trackKnowledge(stats) {
      knowledgeStats = stats;
    },
    trackUpstreams(check) {
      upstreamCheck = check;
    },
    trackTraffic(listener, stats) {
      traffic.set(listener, stats);
    },
  };
  new Gauge({
    name: `${PREFIX}upstream_up`, help: "1 when the listener's upstream server accepts connections (what /readyz checks), else 0.",
    labelNames: ["listener"] as const, registers: [registry],
    async collect() {
      if (upstreamCheck === null) return;
      this.reset();
      for (const u of await upstreamCheck()) this.set({ listener: u.listener }, u.ok ? 1 : 0);
    },
  });
  // Every process holds the whole shared directory: workers report the same
  // numbers, so the primary takes the largest rather than the sum.
  new Gauge({
    name: `${PREFIX}knowledge_sessions`, help: "Online c2s full JIDs the session directory knows (knowledge.sessions), every worker's and, with state.redis, every instance's; hibernating ones included.",
    registers: [registry], aggregator: "max",
    collect() {
      this.set(knowledgeStats().sessions);
    },
  });
  new Gauge({
    name: `${PREFIX}knowledge_directed_presence`, help: "Directed-presence entries (session, target) the session directory holds (knowledge.sessions).",
    registers: [registry], aggregator: "max",
    collect() {
      this.set(knowledgeStats().directed);
    },
  });
  new Gauge({
    name: `${PREFIX}muc_tracked`, help: "MUC flood-limit entries held in memory, by kind (rooms, occupants).",
    labelNames: ["kind"] as const, registers: [registry],
    collect() {
      const s = mucStats();
      this.set({ kind: "rooms" }, s.rooms);
      this.set({ kind: "occupants" }, s.occupants);
    },
  });
  for (const result of RELOAD_RESULTS) {
    zero(metrics.reloads, { result });
    zero(metrics.ruleReloads, { result });
    zero(metrics.shadowReloads, { result });
  }
  for (const reason of REGISTRATION_REFUSAL_REASONS) zero(metrics.registrationRefusals, { reason });
  for (const result of NOTIFICATION_RESULTS) zero(metrics.registrationNotifications, { result });
  for (const op of STATE_ERROR_OPS) zero(metrics.stateErrors, { op });
  for (const [reason, bucket] of MUC_LIMITED) zero(metrics.mucLimited, { reason, bucket });
  for (const verdict of SHADOW_VERDICTS) zero(metrics.shadowVerdicts, { verdict });
  for (const reason of ROSTER_IGNORED_REASONS) zero(metrics.rosterIgnored, { reason });
  metrics.rosterUnknownLookups.inc(0);
  metrics.rostersLearned.inc(0);
  new Gauge({
    name: `${PREFIX}rosters_known`, help: "Rosters the proxy holds a whole copy of (learned, in its store).",
    // Workers share one store: each reports the same count.
    aggregator: "max",
    registers: [registry],
    collect() {
      try {
        this.set(rosterCount());
      } catch {
        // A faulted store: the last value stays; the fault is counted elsewhere.
      }
    },
  });
  metrics.stateFaulted.set(0);
  if (options.defaultMetrics !== false) {
    // Node's process metrics under their standard names (process_*, nodejs_*),
    // as stock Node.js dashboards and alerts expect them.
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
    // prom-client names three gauges *_total, which `promtool check metrics`
    // rejects (only counters end in _total); sum() of the per-type gauges
    // (nodejs_active_handles etc.) gives the same numbers.
    for (const kind of ["handles", "requests", "resources"]) registry.removeSingleMetric(`nodejs_active_${kind}_total`);
  }
  return metrics;
}

/** The cluster primary's own metrics (workers mode), beside the workers' summed ones. */
export interface PrimaryMetrics {
  readonly registry: Registry;
  readonly workers: Gauge<string>;
  readonly restarts: Counter<string>;
  readonly reloads: Counter<"result">;
  readonly workerSessions: Gauge<"worker">;
}

export function createPrimaryMetrics(): PrimaryMetrics {
  const registry = new Registry();
  const m: PrimaryMetrics = {
    registry,
    workers: new Gauge({ name: `${PREFIX}workers`, help: "Worker processes running.", registers: [registry] }),
    restarts: new Counter({ name: `${PREFIX}worker_restarts_total`, help: "Workers restarted after an unexpected exit.", registers: [registry] }),
    reloads: new Counter({ name: `${PREFIX}cluster_reloads_total`, help: "Reloads coordinated by the primary, by result.", labelNames: ["result"] as const, registers: [registry] }),
    workerSessions: new Gauge({
      name: `${PREFIX}worker_sessions`,
      help: "Open sessions per worker (worker = slot number, 1..workers).",
      labelNames: ["worker"] as const,
      registers: [registry],
    }),
  };
  for (const result of RELOAD_RESULTS) zero(m.reloads, { result });
  // The service's start: the primary's (the workers' own are left out of the sum).
  new Gauge({ name: "process_start_time_seconds", help: "Start time of the process since unix epoch in seconds.", registers: [registry] })
    .set(Math.round(Date.now() / 1000 - process.uptime()));
  return m;
}
