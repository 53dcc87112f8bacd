// A session's parts and state, and how a session ends. Session (session.ts)
// extends this with the data path, so that file reads as the way a chunk
// travels; what every step shares lives here: the peer and its output, the
// upstream (its own write batch), both framers, the tracker, the timers, the
// state flags, the flushes, and the endings (a stream error, a graceful
// half-close of both sides, an abort, and the session's end once both
// connections are gone). No per-session object of its own: the fields are
// the session's. What few sessions have (terminated TLS, a WebSocket peer, a
// refusal, XEP-0198 counts) waits in one Extras object made when first set,
// and the log reads its bindings from these fields (a proxy holds thousands
// of idle sessions, and a field costs 8 bytes in each).

import type { Socket } from "node:net";
import { ERRORS, type ErrorCode, type ProxyError } from "../errors.js";
import { SessionLog, type LogBindings } from "../log.js";
import type { SessionState } from "../metrics/definitions.js";
import type { SessionInfo } from "../policy/pipeline.js";
import type { SmCounts } from "../stream/sm-counts.js";
import { StreamTracker } from "../stream/tracker.js";
import { FRAME_CLOSE, FRAME_HEADER, FRAME_STANZA, type FrameSink, type StreamFramer } from "../xml/framer.js";
import { createFramer } from "../xml/framer-wasm.js";
import { STREAM_CLOSE, streamErrorElement, streamHeader } from "../xml/stream-error.js";
import { PAUSE_BACKPRESSURE, type InboundGate } from "./inbound-gate.js";
import type { ListenerContext } from "./listener-context.js";
import { SocketOutput, type FramedPeer, type PeerConnection, type PeerOutput } from "./peer.js";
import type { TransportAddress } from "./proxy-protocol.js";
import { closeGraceMs, SessionTimers } from "./session-timers.js";
import type { Session } from "./session.js";
import type { SessionTls } from "./tls-accept.js";
import type { Upstream } from "./upstream.js";

// Session booleans, packed in one field (flags).
export const F_CLOSING = 1 << 0;
export const F_ENDED = 1 << 1;
export const F_CLIENT_DONE = 1 << 2;
export const F_FIRST_CHUNK = 1 << 3;
export const F_CLIENT_HEADER_SEEN = 1 << 4;
export const F_SERVER_HEADER_SEEN = 1 << 5;
export const F_CLIENT_STREAM_CLOSED = 1 << 6;
export const F_SERVER_STREAM_CLOSED = 1 << 7;
export const F_AUTHENTICATED = 1 << 8;
/** tls.starttls: optional, not negotiated yet: STARTTLS is offered in the server's features and answered here. */
export const F_OFFER_TLS = 1 << 9;
/** The peer asked for STARTTLS on an offering session: the rest of its bytes are TLS, for the listener. */
export const F_UPGRADING = 1 << 10;

export const STREAM_CLOSE_BYTES = Buffer.from(STREAM_CLOSE, "latin1");

/**
 * Sessions keep their start in tenths of a second since this: a small
 * integer, held in the field itself (a Smi, for 6.8 years of uptime), where
 * Date.now() is a double that V8 boxes (16 B per session).
 */
const EPOCH = Date.now();

/**
 * What few sessions have, in one object made with the first of it: an idle
 * plaintext session holds none (a field each on the session cost every
 * session 8 bytes).
 */
class Extras {
  tls: SessionTls | null = null;
  framed: FramedPeer | null = null;
  refuse: ErrorCode | undefined = undefined;
  sm: SmCounts | null = null;
  /** SASL2: the account the success named, when it named no full JID (the log's JID until bind). */
  account: string | undefined = undefined;
}

export abstract class SessionCore implements SessionInfo, LogBindings {
  readonly id: string;
  readonly ip: string;
  readonly port: number;
  readonly #started = Math.floor((Date.now() - EPOCH) / 100);
  /** Where the peer connected to (socket, or the PROXY header's destination). */
  readonly localEndpoint: TransportAddress;

  protected readonly ctx: ListenerContext;
  protected readonly log: SessionLog;
  protected readonly client: PeerConnection;
  /** Shaping and pause reasons for the peer's reads; the inbound framer's sink. */
  protected readonly gate: InboundGate;
  /** The upstream connection and the write batch for it; the outbound framer's sink. */
  protected readonly upstream: Upstream & FrameSink;
  protected readonly inFramer: StreamFramer; // peer → upstream
  protected readonly outFramer: StreamFramer; // upstream → peer
  protected readonly toClient: PeerOutput;
  /** What the server knows about this stream: contexts, identity, verified domains. */
  protected readonly tracker: StreamTracker;
  /** What few sessions have (see Extras); null until the first of it. */
  #extras: Extras | null = null;
  protected readonly timers = new SessionTimers();
  // Eleven booleans in one small integer (a field each cost 8 bytes per session).
  protected flags = F_FIRST_CHUNK;
  #state: SessionState = "connecting";

  /** The session's side of its parts (session.ts): the gate and the upstream are also the framers' sinks. */
  protected abstract newGate(): InboundGate;
  protected abstract newUpstream(): Upstream & FrameSink;

  /** See Session's constructor. */
  constructor(ctx: ListenerContext, client: Socket | FramedPeer, id: string, peer: TransportAddress, local: TransportAddress, refuse: ErrorCode | undefined, tls: SessionTls | null, offerTls: boolean, framed: boolean) {
    this.ctx = ctx;
    if (offerTls && tls === null && ctx.startTls !== undefined) this.flags |= F_OFFER_TLS;
    if (tls !== null) this.extras().tls = tls;
    if (refuse !== undefined) this.extras().refuse = refuse;
    if (framed) this.extras().framed = client as FramedPeer;
    this.client = client;
    this.toClient = framed ? (client as FramedPeer).output : new SocketOutput(client as Socket);
    this.id = id;
    this.tracker = new StreamTracker(ctx.config.type.startsWith("s2s") ? "s2s" : "c2s");
    this.ip = peer.address;
    this.port = peer.port;
    this.localEndpoint = local;
    this.log = new SessionLog(ctx.logger, this);
    this.gate = this.newGate();
    this.upstream = this.newUpstream();
    const limits = ctx.framerLimits();
    this.inFramer = createFramer(this.gate, limits);
    this.outFramer = createFramer(this.upstream, limits);
    ctx.metrics.sessions.inc({ listener: this.listener, state: this.#state });
    // s2s: the pre-TLS header's `from` names the peer until the restarted header does.
    if (this.type === "s2s" && this.tls?.preTlsFrom) {
      this.tracker.claimedDomain = this.tls.preTlsFrom;
    }
  }

  protected has(flag: number): boolean {
    return (this.flags & flag) !== 0;
  }

  // ---- what few sessions have ---------------------------------------------------

  protected extras(): Extras {
    return (this.#extras ??= new Extras());
  }

  /** The TLS layer the proxy terminated under this stream; null for plaintext. */
  get tls(): SessionTls | null {
    return this.#extras?.tls ?? null;
  }

  /** The peer, when its transport frames elements (WebSocket); null on TCP. */
  protected get framed(): FramedPeer | null {
    return this.#extras?.framed ?? null;
  }

  /** The error the session refuses the connection with as soon as it starts (per-IP caps). */
  protected get refuse(): ErrorCode | undefined {
    return this.#extras?.refuse;
  }

  /** XEP-0198 counts, once the client asks for stream management (stream/sm-counts.ts). */
  protected get sm(): SmCounts | null {
    return this.#extras?.sm ?? null;
  }

  // ---- SessionInfo -------------------------------------------------------

  /** The listener's name (its config is the session's for life: a reload makes a new context). */
  get listener(): string {
    return this.ctx.config.name;
  }

  get type(): "c2s" | "s2s" {
    return this.tracker.type;
  }

  get jid(): string | undefined {
    return this.tracker.jid;
  }

  /** When the session started, in ms since 1970 (to a tenth of a second). */
  get startedAt(): number {
    return EPOCH + this.#started * 100;
  }

  /**
   * The server keeps a resumable session after its connection is lost, but
   * not after a stream close from either side (the proxy sends one upstream
   * when the client's connection ends in an orderly way, or it closes the
   * session itself); only an abrupt end (a reset, an abort) leaves the
   * session hibernating.
   */
  get resumeMs(): number {
    return this.has(F_CLIENT_STREAM_CLOSED | F_SERVER_STREAM_CLOSED) ? 0 : this.tracker.resumeMs;
  }

  get domain(): string | undefined {
    return this.tracker.peerDomain;
  }

  // ---- LogBindings: what the log's lines carry, once learned -------------------

  /** The domain the peer's stream header named (c2s `to`, s2s `from`). */
  get logDomain(): string | undefined {
    return this.tracker.claimedDomain;
  }

  /** The full JID once bound; before that, the account a SASL2 success named. */
  get logJid(): string | undefined {
    return this.tracker.jid ?? this.#extras?.account;
  }

  get authenticated(): boolean {
    return this.has(F_AUTHENTICATED);
  }

  get state(): SessionState {
    return this.#state;
  }

  get closing(): boolean {
    return (this.flags & F_CLOSING) !== 0;
  }

  emit(target: "peer" | "upstream", bytes: Buffer): void {
    if (this.closing) return;
    if (target === "peer") this.toClient.add(bytes, 0, bytes.length, FRAME_STANZA);
    else this.upstream.add(bytes, 0, bytes.length);
    this.sm?.injected(target);
    // Flushed by the data handler that is running (stages run inside one).
  }

  protected setState(next: SessionState): void {
    if (next === this.#state) return;
    const m = this.ctx.metrics.sessions;
    m.dec({ listener: this.listener, state: this.#state });
    m.inc({ listener: this.listener, state: next });
    this.#state = next;
  }

  // ---- flushes ---------------------------------------------------------------

  protected flush(): void {
    this.flushToUpstream();
    this.flushToClient();
  }

  protected flushToUpstream(): void {
    if (!this.upstream.send()) this.gate.pause(PAUSE_BACKPRESSURE);
  }

  protected flushToClient(): void {
    if (this.toClient.empty || this.has(F_CLIENT_DONE)) return;
    if (!this.toClient.send()) this.upstream.pause(PAUSE_BACKPRESSURE);
  }

  // ---- endings -------------------------------------------------------------

  /** The peer ended its side: a stanza cut short is an error; otherwise close both sides. */
  protected onClientEnd(): void {
    if (this.closing) return;
    const truncated = this.inFramer.finish();
    if (truncated) {
      this.ctx.metrics.framingErrors.inc({ listener: this.listener, direction: "in", code: truncated.code });
      this.closeWithError(truncated.code);
      return;
    }
    this.flushToUpstream();
    this.shutdownBoth();
  }

  /** The server ended its side: fine after a stream close from either side, else an error. */
  protected onUpstreamEnd(): void {
    this.flushToClient();
    if (this.closing) return;
    if (!this.has(F_SERVER_STREAM_CLOSED | F_CLIENT_STREAM_CLOSED)) {
      // The server dropped us without closing its stream.
      this.ctx.metrics.upstreamFailures.inc({ listener: this.listener, reason: "closed" });
      this.closeWithError("XPX_ERR_UPSTREAM_CLOSED");
      return;
    }
    this.shutdownBoth();
  }

  protected onFramingError(error: ProxyError, direction: "in" | "out"): void {
    this.ctx.metrics.framingErrors.inc({ listener: this.listener, direction, code: error.code });
    if (direction === "in") {
      this.closeWithError(error.code, error.message);
    } else {
      this.log.error({ code: error.code, err: error.message }, "upstream server sent bad XML");
      this.closeWithError("XPX_ERR_UPSTREAM_PROTOCOL");
    }
  }

  protected onSocketError(side: "client" | "upstream", err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (side === "upstream" && !this.upstream.connected) {
      // Dial failures are reported by the close handler; keep the reason.
      this.log.warn({ err: err.message, code }, "upstream connect failed");
      return;
    }
    this.log.debug({ err: err.message, code, side }, "socket error");
    if (side === "upstream" && !this.closing) {
      this.ctx.metrics.upstreamFailures.inc({ listener: this.listener, reason: "error" });
      this.closeWithError("XPX_ERR_UPSTREAM_CLOSED", code);
      return;
    }
    this.abort();
  }

  /**
   * Close the session with the stream error that `code` maps to: the peer gets
   * (if needed) a stream header, the error and the stream close; the upstream
   * gets a clean stream close. Frames already judged are flushed first.
   */
  closeWithError(code: ErrorCode, detail?: string): void {
    if (this.closing) return;
    const entry = ERRORS[code];
    const condition = entry.condition;
    const level = code === "XPX_ERR_SHUTDOWN" ? "info" : code.startsWith("XPX_ERR_UPSTREAM") ? "warn" : "info";
    this.log[level]({ code, condition, detail }, entry.message);
    this.flush();
    this.flags |= F_CLOSING;
    this.inFramer.stop();
    this.outFramer.stop();
    if (condition !== null && !this.has(F_CLIENT_DONE) && this.client.writable) {
      this.ctx.metrics.streamErrors.inc({ listener: this.listener, condition, sender: "proxy" });
      // Header (unless the server's went out), error, end tag: three frames, one write.
      const out = this.toClient;
      if (!this.has(F_SERVER_HEADER_SEEN)) {
        const head = Buffer.from(streamHeader(this.tracker.contentNs, this.ctx.config.domain ?? this.tracker.claimedDomain));
        out.add(head, 0, head.length, FRAME_HEADER);
      }
      const error = Buffer.from(streamErrorElement(condition, entry.message));
      out.add(error, 0, error.length, FRAME_STANZA);
      out.add(STREAM_CLOSE_BYTES, 0, STREAM_CLOSE_BYTES.length, FRAME_CLOSE);
      out.send();
    }
    this.shutdownBoth();
  }

  /** Graceful end: half-close both sides, destroy whatever is left after a grace period. */
  protected shutdownBoth(): void {
    this.flags |= F_CLOSING;
    this.setState("closing");
    this.inFramer.stop();
    this.outFramer.stop();
    this.timers.stop();
    const up = this.upstream;
    up.stop();
    if (!this.has(F_CLIENT_DONE)) this.client.end();
    if (up.dialled && !up.done) {
      if (up.connected && this.has(F_CLIENT_HEADER_SEEN) && !this.has(F_CLIENT_STREAM_CLOSED)) {
        up.end(STREAM_CLOSE);
        // The server ends a session whose stream is closed: no resumption (see resumeMs).
        this.flags |= F_CLIENT_STREAM_CLOSED;
      } else up.end();
    }
    // Peers that never finish closing don't hold resources for long.
    this.timers.closeAfter(closeGraceMs(this.refuse !== undefined), () => this.abort());
    // Let a paused side drain its close.
    this.client.resume();
    up.release();
  }

  /** Tear down immediately, without any goodbye. */
  protected abort(): void {
    this.flags |= F_CLOSING;
    this.inFramer.stop();
    this.outFramer.stop();
    this.timers.stop();
    this.client.destroy();
    this.upstream.destroy();
    this.maybeEnd();
  }

  protected maybeEnd(): void {
    if (this.has(F_ENDED) || !this.has(F_CLIENT_DONE)) return;
    const up = this.upstream;
    if (up.dialled && !up.done) {
      // Client gone: nothing left to relay to; finish the upstream side.
      if (!this.closing) this.shutdownBoth();
      return;
    }
    this.flags |= F_ENDED;
    // However the session ended, its framers' state goes back (WasmFramer has no finalizer).
    this.inFramer.stop();
    this.outFramer.stop();
    this.gate.close();
    this.ctx.pipeline().sessionEnded(this);
    this.timers.end();
    up.stop();
    this.ctx.metrics.sessions.dec({ listener: this.listener, state: this.state });
    const seconds = (Date.now() - this.startedAt) / 1000;
    if (this.refuse === undefined) this.ctx.metrics.sessionDuration.observe({ listener: this.listener }, seconds);
    this.log.info({ seconds }, "session closed");
    this.ctx.onEnd(this as unknown as Session); // Session is the one subclass
  }
}
