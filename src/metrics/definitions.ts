// Every Prometheus metric xmpp-guard exports, in one place, on a dedicated
// Registry (never prom-client's global one). Names start with xmpp_guard_;
// labels come only from bounded sets (listener names, directions, stanza
// kinds, error conditions, reasons) — never a JID or an IP.
//
// Per-stanza and per-byte counts are plain numbers in TrafficStats, bumped on
// the hot path without touching prom-client, and copied into the counters
// when /metrics is scraped.

import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { StanzaKind } from "../xml/stanza-view.js";

export const PREFIX = "xmpp_guard_";

/** client→server is "in", server→client is "out". */
export const DIRECTIONS = ["in", "out"] as const;
export type Direction = (typeof DIRECTIONS)[number];
export const KINDS = ["message", "presence", "iq", "other"] as const satisfies readonly StanzaKind[];
export const KIND_INDEX: Readonly<Record<StanzaKind, number>> = { message: 0, presence: 1, iq: 2, other: 3 };

export const SESSION_STATES = ["connecting", "open", "authenticated", "bound", "closing"] as const;
export type SessionState = (typeof SESSION_STATES)[number];

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
  readonly mucLimited: Counter<"reason" | "bucket">;
  readonly firewallHits: Counter<"rule" | "action">;
  readonly ruleReloads: Counter<"result">;
  /** TLS handshakes completed, by listener and protocol version. */
  readonly tlsHandshakes: Counter<"listener" | "version">;
  readonly tlsHandshakeFailures: Counter<"listener" | "reason">;
  /** Unix time (seconds) each configured certificate expires, by its first name. */
  readonly tlsCertificateExpiry: Gauge<"name">;
  /** Report MUC tracking sizes at scrape time. */
  trackMuc(stats: () => { rooms: number; occupants: number }): void;
  /** Register a listener's TrafficStats so scrapes include it. */
  trackTraffic(listener: string, stats: TrafficStats): void;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  const traffic = new Map<string, TrafficStats>();
  let mucStats: () => { rooms: number; occupants: number } = () => ({ rooms: 0, occupants: 0 });

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
      name: `${PREFIX}tls_certificate_expiry_seconds`, help: "Expiry (notAfter) of each configured certificate as a Unix time, by the certificate's first name.",
      labelNames: ["name"] as const, registers: [registry],
    }),
    trackMuc(stats) {
      mucStats = stats;
    },
    trackTraffic(listener, stats) {
      traffic.set(listener, stats);
    },
  };
  new Gauge({
    name: `${PREFIX}muc_tracked`, help: "MUC flood-limit entries held in memory, by kind (rooms, occupants).",
    labelNames: ["kind"] as const, registers: [registry],
    collect() {
      const s = mucStats();
      this.set({ kind: "rooms" }, s.rooms);
      this.set({ kind: "occupants" }, s.occupants);
    },
  });
  if (options.defaultMetrics !== false) {
    // Process metrics including nodejs_eventloop_lag_seconds, under our prefix.
    collectDefaultMetrics({ register: registry, prefix: PREFIX, eventLoopMonitoringPrecision: 20 });
    // prom-client names three gauges *_total, which `promtool check metrics`
    // rejects (only counters end in _total); sum() of the per-type gauges
    // (nodejs_active_handles etc.) gives the same numbers.
    for (const kind of ["handles", "requests", "resources"]) registry.removeSingleMetric(`${PREFIX}nodejs_active_${kind}_total`);
  }
  return metrics;
}
