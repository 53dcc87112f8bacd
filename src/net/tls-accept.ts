// The TLS phase of an accepted connection, between the listener (which owns
// admission) and the session (which owns the stream): STARTTLS answered by the
// proxy on c2s/s2s listeners, or a direct-TLS handshake on c2s-tls/s2s-tls.
// Failures are logged and counted here, once; the session only ever sees an
// established TLS socket (or, for `starttls: optional` and a pre-1.0 stream,
// the plaintext socket and the bytes read so far).

import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { ListenerType, TlsConfig } from "../config/schema.js";
import type { ErrorCode } from "../errors.js";
import { ERRORS } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/definitions.js";
import type { FramerLimits } from "../xml/framer.js";
import type { CertificateStore } from "./certificates.js";
import { acceptDirectTls } from "./direct-tls.js";
import { negotiateStartTls } from "./starttls.js";

/** What the session knows about the TLS layer under its stream. */
export interface SessionTls {
  /** SNI name the peer asked for, if any. */
  readonly servername: string | undefined;
  /** Negotiated ALPN id (direct TLS only). */
  readonly alpn: string | undefined;
  /** "TLSv1.3", "TLSv1.2". */
  readonly protocol: string | undefined;
  /** `from` / `to` of the pre-TLS stream header (STARTTLS only; hints, RFC 6120 §5.4.3.3). */
  readonly preTlsFrom: string | undefined;
  readonly preTlsTo: string | undefined;
}

export type TlsMode = "starttls" | "direct";

/** Which TLS phase (if any) a listener of this type runs, given the live settings. */
export function tlsModeFor(type: ListenerType, config: TlsConfig, store: CertificateStore | null): TlsMode | null {
  if (type === "c2s-tls" || type === "s2s-tls") return "direct";
  if (store === null || config.starttls === "off") return null;
  return "starttls";
}

export interface TlsAcceptOptions {
  readonly listener: string;
  readonly type: ListenerType;
  readonly mode: TlsMode;
  readonly config: TlsConfig;
  /** Required for both modes; a direct-TLS listener without one is a config error. */
  readonly store: CertificateStore;
  readonly limits: FramerLimits;
  readonly headerTimeoutMs: number;
  readonly domain: string | null;
  readonly initial: Buffer | undefined;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

export type TlsAcceptResult =
  | { kind: "session"; socket: Socket; tls: SessionTls | null; initial: Buffer | undefined }
  | { kind: "gone" };

/** Bounded metric label for a code that ended negotiation. */
export function failureReason(code: ErrorCode): string {
  switch (code) {
    case "XPX_ERR_TLS_HANDSHAKE": return "handshake";
    case "XPX_ERR_TLS_HANDSHAKE_TIMEOUT": return "timeout";
    case "XPX_ERR_STARTTLS_TIMEOUT": return "starttls_timeout";
    case "XPX_ERR_TLS_REQUIRED": return "tls_required";
    case "XPX_ERR_STARTTLS_TWICE": return "starttls_twice";
    default: return "stream_error";
  }
}

export async function acceptTls(socket: Socket, options: TlsAcceptOptions): Promise<TlsAcceptResult> {
  const { listener, metrics } = options;
  const handshakeTimeoutMs = options.config.handshake_timeout * 1000;
  const s2s = options.type.startsWith("s2s");
  const result = options.mode === "direct"
    ? await acceptDirectTls(socket, {
      type: s2s ? "s2s-tls" : "c2s-tls",
      store: options.store,
      handshakeTimeoutMs,
      ...(options.initial ? { initial: options.initial } : {}),
      ...(options.domain ? { domain: options.domain } : {}),
    })
    : await negotiateStartTls(socket, {
      contentNs: s2s ? "jabber:server" : "jabber:client",
      mode: options.config.starttls === "optional" ? "optional" : "required",
      store: options.store,
      limits: options.limits,
      handshakeTimeoutMs,
      headerTimeoutMs: options.headerTimeoutMs,
      ...(options.initial ? { initial: options.initial } : {}),
      ...(options.domain ? { domain: options.domain } : {}),
    });
  const log = options.logger;
  switch (result.kind) {
    case "tls": {
      const tlsSocket: TLSSocket = result.socket;
      const protocol = tlsSocket.getProtocol() ?? undefined;
      metrics.tlsHandshakes.inc({ listener, version: protocol ?? "unknown" });
      const tls: SessionTls = {
        servername: result.servername,
        alpn: "alpn" in result ? result.alpn : undefined,
        protocol,
        preTlsFrom: "streamFrom" in result ? result.streamFrom : undefined,
        preTlsTo: "streamTo" in result ? result.streamTo : undefined,
      };
      return { kind: "session", socket: tlsSocket, tls, initial: undefined };
    }
    case "plain":
      // starttls: optional and a pre-1.0 stream: relay in plaintext.
      log.info({ mode: options.mode }, "pre-1.0 stream without STARTTLS: relaying in plaintext (tls.starttls: optional)");
      return { kind: "session", socket, tls: null, initial: result.initial };
    case "error": {
      const reason = failureReason(result.code);
      metrics.tlsHandshakeFailures.inc({ listener, reason });
      if (result.condition !== null) metrics.streamErrors.inc({ listener, condition: result.condition, sender: "proxy" });
      log.info({ code: result.code, condition: result.condition, detail: result.detail, mode: options.mode }, ERRORS[result.code].message);
      return { kind: "gone" };
    }
    case "closed":
      metrics.tlsHandshakeFailures.inc({ listener, reason: "closed" });
      log.debug({ detail: result.detail, mode: options.mode }, "peer left before TLS was established");
      return { kind: "gone" };
  }
}
