// What a session needs from the listener that accepted its peer: the
// listener's config, the process's logger, metrics, counters and
// resumption registry, the live settings (read through getters, so a reload
// reaches running sessions), and where the session reports its end, its
// upstream dials and a peer that takes the STARTTLS offer.

import type { Socket } from "node:net";
import type { LimitsConfig, ListenerConfig, TimeoutsConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Metrics, TrafficStats } from "../metrics/definitions.js";
import type { AuditLimiter } from "../policy/audit.js";
import type { Pipeline } from "../policy/pipeline.js";
import type { FramerLimits } from "../xml/framer.js";
import type { ResumptionRegistry } from "./resumption.js";
import type { Session } from "./session.js";

/** Everything a session needs from its listener; getters read the live config. */
export interface ListenerContext {
  readonly config: ListenerConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly stats: TrafficStats;
  readonly resumption: ResumptionRegistry;
  framerLimits(): FramerLimits;
  pipeline(): Pipeline;
  timeouts(): TimeoutsConfig;
  limits(): LimitsConfig;
  /** limits.unlimited_jids as a set (bare JIDs and domains). */
  unlimited(): ReadonlySet<string>;
  /** tls.upstream_tls: dial the upstream over TLS. */
  upstreamTls(): boolean;
  /** Called once when the session has fully ended. */
  onEnd(session: Session): void;
  /** The rate limit of "policy action" log lines (one per process). */
  readonly audit: AuditLimiter;
  /** What became of a dial of the upstream (for /readyz). */
  onUpstream(ok: boolean, detail?: string): void;
  /**
   * tls.starttls: optional. The peer asked for STARTTLS on a plaintext
   * session: this session has ended (its upstream is dropped); the listener
   * answers <proceed/>, runs the handshake on `socket` (`rest`: bytes the
   * peer sent after <starttls/>) and starts a new session on the TLS socket.
   */
  startTls?(session: Session, socket: Socket, rest: Buffer, pre: { to: string | undefined; from: string | undefined }): void;
}
