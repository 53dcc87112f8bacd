// One proxied stream: a peer connection and its upstream connection, both
// directions framed. This file is the data path, in the order a chunk from
// the peer travels:
//
//   the inbound gate (inbound-gate.ts: pre-auth bounds checked here first,
//   then bytes charged, held while shaping says so)
//   → the framer (xml/framer.ts: byte ranges of whole frames)
//   → the gate again (stanzas charged per kind, held in order)
//   → the tracker (stream/tracker.ts: the stream as the server sees it)
//   → policy (the pipeline's verdict, carried out by verdicts.ts)
//   → the upstream's write batch (write-batch.ts) → the upstream (upstream.ts).
//
// The server's bytes take the same path back without the gate. The session
// never writes a partial frame, so anything the proxy sends itself (a bounce,
// a stream error, a stage's stanza) lands on a frame boundary. Its parts,
// state and endings are in session-core.ts; its timers in session-timers.ts;
// the peer and its events in peer.ts; STARTTLS on offer in starttls.ts.
//
// Backpressure: a reader is paused while the opposite writer is full, while
// the upstream is being dialed, and while shaping says so (pause reasons are
// a bit mask; the reader resumes only when every reason has cleared).

import { Buffer } from "node:buffer"; // not the global accessor: docs/performance.md, "Globals that are accessors"
import type { Socket } from "node:net";
import { isIP } from "node:net";
import { ERRORS, type ErrorCode, type ProxyError } from "../errors.js";
import { authFailureLabel, kindIndex, streamErrorLabel } from "../metrics/definitions.js";
import type { Verdict } from "../policy/pipeline.js";
import type { LimitsConfig } from "../config/schema.js";
import { beginTurn, endTurn } from "../shaping/clock.js";
import type { ThrottleReason } from "../shaping/pacer.js";
import { FRAME_CLOSE, FRAME_HEADER, FRAME_STANZA, type FrameKind, type FrameSink } from "../xml/framer.js";
import { kindOf, type Stanza } from "../xml/stanza.js";
import { NS_STREAMS, STREAM_CLOSE } from "../xml/stream-error.js";
import { serverFeatures } from "../xml/stream-features.js";
import { mayMatterAfterBind, NS_SM3, type PeerEvent, type ServerEvent } from "../stream/tracker.js";
import { SmCounts } from "../stream/sm-counts.js";
import { InboundGate, PAUSE_BACKPRESSURE, PAUSE_DIAL } from "./inbound-gate.js";
import type { ListenerContext } from "./listener-context.js";
import { PeerEvents, type FramedPeer } from "./peer.js";
import { looksLikeProxyHeader, type TransportAddress } from "./proxy-protocol.js";
import {
  F_AUTHENTICATED, F_CLIENT_DONE, F_CLIENT_HEADER_SEEN, F_CLIENT_STREAM_CLOSED, F_CLOSING, F_FIRST_CHUNK, F_OFFER_TLS,
  F_SERVER_HEADER_SEEN, F_SERVER_STREAM_CLOSED, F_UPGRADING, SessionCore, STREAM_CLOSE_BYTES,
} from "./session-core.js";
import type { TimeoutKind } from "./session-timers.js";
import { frameUntilStartTls, STARTTLS_FAILURE } from "./starttls.js";
import type { SessionTls } from "./tls-accept.js";
import { proxyHeader, Upstream } from "./upstream.js";
import { carryOut } from "./verdicts.js";

const STARTTLS_FAILURE_BYTES = Buffer.from(STARTTLS_FAILURE, "latin1");

const TIMEOUT_CODES: Record<TimeoutKind, ErrorCode> = {
  stream_header: "XPX_ERR_STREAM_HEADER_TIMEOUT",
  pre_auth: "XPX_ERR_PRE_AUTH_TIMEOUT",
  pre_auth_idle: "XPX_ERR_PRE_AUTH_IDLE",
  stanza: "XPX_ERR_STANZA_TIMEOUT",
};

export class Session extends SessionCore {
  /**
   * `refuse`: refuse the connection with this error as soon as it starts, never dialing (per-IP caps).
   * `tls`: `client` is a TLS socket the proxy already negotiated (tls-accept.ts),
   * or the TLS under a WebSocket.
   * `offerTls`: tls.starttls is optional: relay in plaintext, offer STARTTLS
   * in the server's features and answer it (ctx.startTls) if the peer asks.
   * `framed`: the client is a WebSocket peer (ws-peer.ts), not a socket.
   */
  constructor(ctx: ListenerContext, client: Socket | FramedPeer, id: string, peer: TransportAddress, local: TransportAddress, refuse?: ErrorCode, tls?: SessionTls | null, offerTls = false, framed = false) {
    super(ctx, client, id, peer, local, refuse, tls ?? null, offerTls, framed);
    if (!refuse) this.reconfigureLimits(ctx.limits());
  }

  // ---- lifecycle -----------------------------------------------------------

  /**
   * Start relaying. `initial` holds bytes already read (e.g. after a PROXY
   * header); `acceptedAt` is when the listener accepted the connection.
   */
  start(initial?: Buffer, acceptedAt = Date.now()): void {
    this.client.setNoDelay(true);
    Session.#peerEvents.attach(this.client, this, this.tls !== null);
    this.log.debug("session opened");
    if (this.refuse !== undefined) {
      // Say it now: waiting for a stream header the peer may never send held
      // each refused connection open for timeouts.stream_header, and enough of
      // them ran the process out of descriptors. Whatever the peer sends from
      // here on is read and dropped until the close.
      this.closeWithError(this.refuse);
      return;
    }
    const timeouts = this.ctx.timeouts();
    this.timers.startHeader(timeouts.stream_header * 1000, () => {
      if (!this.has(F_CLIENT_HEADER_SEEN)) this.#timedOut("stream_header");
    });
    this.timers.startPreAuth(acceptedAt, timeouts, () => this.#onPreAuthTimer());
    if (initial && initial.length > 0) this.#onClientData(initial);
  }

  /** Pause or resume reading from the peer for an external reason (shaping, async policy). */
  pauseClient(reason: number): void {
    this.gate.pause(reason);
  }

  resumeClient(reason: number): void {
    this.gate.resume(reason);
  }

  // ---- peer → upstream: gate, framer ---------------------------------------

  #onClientData(chunk: Buffer): void {
    if (this.closing) return;
    if (this.has(F_FIRST_CHUNK)) {
      this.flags &= ~F_FIRST_CHUNK;
      // A PROXY header from a source not in accept_proxy_from: refuse, say nothing.
      if (looksLikeProxyHeader(chunk)) {
        this.ctx.metrics.proxyHeaders.inc({ listener: this.listener, result: "untrusted" });
        this.ctx.metrics.connectionsRefused.inc({ listener: this.listener, reason: "proxy_header_untrusted" });
        this.log.warn({ code: "XPX_ERR_PROXY_HEADER_UNTRUSTED" }, ERRORS.XPX_ERR_PROXY_HEADER_UNTRUSTED.message);
        this.abort();
        return;
      }
    }
    const len = chunk.length;
    this.ctx.stats.bytesIn += len;
    if (!this.has(F_AUTHENTICATED)) {
      this.timers.activity();
      const max = this.ctx.limits().pre_auth.max_bytes;
      if (this.timers.overBytes(len, max)) {
        this.closeWithError("XPX_ERR_PRE_AUTH_LIMIT", `more than ${max} bytes`);
        return;
      }
    }
    if (this.gate.shaped) this.ctx.stats.bytesCharged += len;
    beginTurn();
    try {
      this.gate.write(chunk);
    } finally {
      endTurn();
    }
  }

  /** Bytes the gate let through: frame them (the frames come back through the gate to #onPeerFrame). */
  #feed(data: Buffer): void {
    if (this.has(F_OFFER_TLS) && !this.has(F_AUTHENTICATED)) {
      // STARTTLS on offer: the peer's bytes after <starttls/> are TLS, for the listener.
      const from = frameUntilStartTls(this.inFramer, data, () => this.has(F_CLOSING | F_UPGRADING));
      if (from >= 0 && this.has(F_UPGRADING)) {
        const pending = this.gate.takePending();
        this.#handOverToTls(pending === null ? data.subarray(from) : Buffer.concat([data.subarray(from), pending]));
        return;
      }
    } else this.inFramer.write(data);
    if (this.timers.stanzaArmed || !this.inFramer.atBoundary) this.#watchPartial();
    this.flush(); // bounces produced while judging
  }

  // ---- peer → upstream: tracker, policy, batch --------------------------------

  #onPeerFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
    if (kind === FRAME_STANZA) {
      if (!this.has(F_AUTHENTICATED)) {
        const max = this.ctx.limits().pre_auth.max_stanzas;
        if (this.timers.overStanzas(max)) {
          this.closeWithError("XPX_ERR_PRE_AUTH_LIMIT", `more than ${max} stanzas`);
          return;
        }
      }
      const k = kindOf(data, start, end, this.tracker.inbound);
      this.ctx.stats.stanzas[kindIndex(k)]! += 1;
      const pipeline = this.ctx.pipeline();
      const judged = pipeline.wants("inbound", k);
      // Nonzas are looked at for XEP-0198 (stream/sm-counts.ts).
      if (this.state !== "bound" || judged || k === "other") {
        // A borrowed view (no allocation per stanza), given back before the next frame.
        const view = this.tracker.peerView(data, start, end);
        try {
          if (view.head.duplicate !== null) {
            this.closeWithError("XPX_ERR_XML_DUPLICATE_ATTRIBUTE", view.head.duplicate);
            return;
          }
          const event = this.tracker.peerStanza(view);
          if (event !== null && !this.#onPeerEvent(event)) return;
          if (k === "other" && view.xmlns === NS_SM3) {
            const instead = (this.extras().sm ??= new SmCounts()).clientNonza(view, () => data.toString("utf8", start, end), this.ctx.resumption);
            if (instead !== null) {
              const bytes = Buffer.from(instead);
              this.upstream.add(bytes, 0, bytes.length);
              return;
            }
          }
          if (judged) {
            const decided = pipeline.judge(view, this, "inbound");
            if (decided !== null && !this.#apply(decided.stage, decided.verdict, "in", view)) return;
          }
        } finally {
          view.release();
        }
      }
      if (k !== "other") this.sm?.fromClient("passed");
      this.upstream.add(data, start, end);
      return;
    }
    if (kind === FRAME_HEADER) {
      if (!this.#onClientHeader(data, start, end)) return;
    } else if (kind === FRAME_CLOSE) {
      this.flags |= F_CLIENT_STREAM_CLOSED;
      this.setState("closing");
    }
    this.upstream.add(data, start, end);
  }

  /** Validate the peer's stream header; dial the upstream on the first one. */
  #onClientHeader(data: Buffer, start: number, end: number): boolean {
    const problem = this.tracker.peerHeader(data, start, end);
    if (problem !== null) {
      this.closeWithError(problem.code, problem.detail);
      return false;
    }
    if (!this.has(F_CLIENT_HEADER_SEEN)) {
      this.flags |= F_CLIENT_HEADER_SEEN;
      this.timers.headerSeen();
      this.setState("open");
      this.#dial();
    }
    // A restarted header (after SASL success) needs nothing: both framers were
    // reset when the success went by.
    return true;
  }

  /**
   * What a peer stanza asks of the session: STARTTLS (which a plaintext hop
   * cannot carry), or a refusal the server would make (the stream ends).
   * Returns false when the session was closed.
   */
  #onPeerEvent(event: PeerEvent): boolean {
    if (event.kind === "refuse") {
      this.closeWithError(event.code, event.detail);
      return false;
    }
    if (this.has(F_OFFER_TLS) && !this.has(F_AUTHENTICATED)) {
      // tls.starttls: optional, and the peer takes the offer (#feed hands over).
      this.flags |= F_UPGRADING;
      return false;
    }
    if (this.tls !== null) {
      // RFC 6120 §5.4.2.2: a second STARTTLS fails and ends the stream.
      this.log.info({ code: "XPX_ERR_STARTTLS_TWICE" }, ERRORS.XPX_ERR_STARTTLS_TWICE.message);
      this.ctx.metrics.tlsHandshakeFailures.inc({ listener: this.listener, reason: "starttls_twice" });
    } else {
      // The upstream offered STARTTLS through a proxy that does not terminate TLS:
      // relaying it would blind the proxy. Refuse as RFC 6120 §5.4.2.2 allows.
      this.log.error("client asked for STARTTLS on a plaintext listener: disable TLS on the upstream server (mod_tls) or enable TLS termination in xmpp-guard");
    }
    this.toClient.add(STARTTLS_FAILURE_BYTES, 0, STARTTLS_FAILURE_BYTES.length, FRAME_STANZA);
    this.toClient.add(STREAM_CLOSE_BYTES, 0, STREAM_CLOSE_BYTES.length, FRAME_CLOSE);
    this.flushToClient();
    this.shutdownBoth();
    return false;
  }

  // ---- STARTTLS on offer: the handover ------------------------------------

  /**
   * The peer asked for STARTTLS (tls.starttls: optional). This session ends
   * here without a word to the peer: its upstream connection, which saw only
   * the pre-TLS stream, is closed, and the listener answers <proceed/> and
   * starts a new session once TLS is up (the peer restarts its stream then).
   */
  #handOverToTls(rest: Buffer): void {
    // Only a TCP listener offers STARTTLS, so the peer is a socket here.
    const client = this.client as Socket;
    this.flushToClient();
    this.flags |= F_CLOSING;
    this.inFramer.stop();
    this.outFramer.stop();
    Session.#peerEvents.detach(client);
    client.pause();
    this.upstream.detach(STREAM_CLOSE);
    this.log.info("STARTTLS: the peer takes the TLS offer; the stream restarts over TLS");
    const pre = { to: this.tracker.claimedDomain, from: this.type === "s2s" ? this.tracker.claimedDomain : undefined };
    this.flags |= F_CLIENT_DONE;
    this.maybeEnd();
    this.ctx.startTls!(this, client, rest, pre);
  }

  // ---- verdicts ------------------------------------------------------------

  /** Carry out a verdict other than a plain forward. Returns true only if the stanza should still be forwarded. */
  #apply(stage: string, verdict: Verdict, dir: "in" | "out", view: Stanza): boolean {
    const { metrics, audit } = this.ctx;
    const forward = carryOut({ session: this, metrics, audit, log: this.log, sm: this.sm, toPeer: this.toClient, toUpstream: this.upstream }, stage, verdict, dir, view);
    if (verdict.action === "close") this.closeWithError(verdict.code, verdict.reason);
    return forward;
  }

  // ---- upstream → peer -----------------------------------------------------

  #onUpstreamData(chunk: Buffer): void {
    if (this.closing) return;
    if (!this.has(F_AUTHENTICATED)) this.timers.activity();
    this.ctx.stats.bytesOut += chunk.length;
    beginTurn();
    try {
      this.outFramer.write(chunk);
    } finally {
      endTurn();
    }
    this.flushToClient();
    this.flushToUpstream(); // bounces produced while judging
  }

  #onServerFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
    if (kind !== FRAME_STANZA) {
      if (kind === FRAME_HEADER) {
        this.flags |= F_SERVER_HEADER_SEEN;
        this.upstream.answered(); // timeouts.connect covers connect + the server's answering header
        this.tracker.serverHeader(data, start, end);
      } else if (kind === FRAME_CLOSE) {
        this.flags |= F_SERVER_STREAM_CLOSED;
        this.setState("closing");
      }
      this.toClient.add(data, start, end, kind);
      return;
    }
    const k = kindOf(data, start, end, this.tracker.outbound);
    this.ctx.stats.stanzas[4 + kindIndex(k)]! += 1;
    const pipeline = this.ctx.pipeline();
    // After binding only a few nonzas matter (stream errors, SM enabled);
    // look at their first bytes before building a view.
    const interesting = this.state !== "bound" || mayMatterAfterBind(data, start, end) || (k === "other" && this.sm !== null);
    const judged = pipeline.wants("outbound", k);
    if (interesting || judged) {
      const view = this.tracker.serverView(data, start, end);
      try {
        if (interesting) {
          const event = this.tracker.serverStanza(view);
          if (event !== null) this.#onServerEvent(event);
        }
        let instead: string | null = null;
        if (k === "other" && this.sm !== null && view.xmlns === NS_SM3) {
          instead = this.sm.serverNonza(view, () => data.toString("utf8", start, end));
        } else if (view.name === "features" && view.xmlns === NS_STREAMS) {
          const offerTls = this.has(F_OFFER_TLS) && !this.has(F_AUTHENTICATED);
          instead = serverFeatures(view, () => data.toString("utf8", start, end), this.type === "s2s", offerTls);
        }
        if (instead !== null) {
          const bytes = Buffer.from(instead);
          this.toClient.add(bytes, 0, bytes.length, FRAME_STANZA);
          return;
        }
        if (judged) {
          const decided = pipeline.judge(view, this, "outbound");
          if (decided !== null && !this.#apply(decided.stage, decided.verdict, "out", view)) return;
        }
      } finally {
        view.release();
      }
    }
    if (k !== "other") this.sm?.fromServer("passed");
    this.toClient.add(data, start, end, FRAME_STANZA);
    // SASL success: both streams restart (RFC 6120 §6.4.6) once it is on its way.
    if (this.tracker.takeRestart()) {
      this.inFramer.reset();
      this.outFramer.reset();
      this.framed?.restart();
    }
  }

  /** Carry out what the server just said about the session (the tracker has noted it). */
  #onServerEvent(event: ServerEvent): void {
    switch (event.kind) {
      case "sasl-success":
        this.#authenticatedNow();
        this.setState("authenticated");
        if (this.type === "s2s") this.#checkUnlimited();
        return;
      case "verified":
        this.#authenticatedNow();
        this.setState("authenticated");
        this.log.info({ verified: event.domain }, "peer domain verified");
        this.#checkUnlimited();
        return;
      case "sasl2-success":
        // XEP-0388: no restart; the authorization identifier is the account (or a full JID with Bind 2).
        this.#authenticatedNow();
        if (event.jid?.includes("/")) this.#learnJid();
        else {
          if (event.jid !== undefined) this.extras().account = event.jid;
          if (this.state !== "bound") this.setState("authenticated");
        }
        return;
      case "bound":
        this.#learnJid();
        return;
      case "resumed": {
        this.#authenticatedNow();
        const jid = this.ctx.resumption.lookup(event.previd);
        this.tracker.resume(jid);
        if (jid !== undefined) this.#learnJid(true);
        else this.setState("bound");
        return;
      }
      case "resumable":
        if (this.tracker.jid !== undefined) this.ctx.resumption.remember(event.id, this.tracker.jid, this.sm?.ledger ?? undefined);
        return;
      case "auth-failure": {
        this.ctx.metrics.authFailures.inc({ listener: this.listener, reason: authFailureLabel(event.reason) });
        // One line per failure, never rate-limited: fail2ban counts them (docs/deploy.md).
        this.log.warn({ code: "XPX_ERR_AUTH_FAILED", ip: this.ip, reason: event.reason, mechanism: event.mechanism, user: event.user }, ERRORS.XPX_ERR_AUTH_FAILED.message);
        return;
      }
      case "stream-error": {
        this.ctx.metrics.streamErrors.inc({ listener: this.listener, condition: streamErrorLabel(event.condition), sender: "upstream" });
        this.log.info({ condition: event.condition }, "upstream sent a stream error");
        return;
      }
    }
  }

  #authenticatedNow(): void {
    this.flags |= F_AUTHENTICATED;
    this.timers.authenticated();
  }

  /** The tracker learned the session's full JID (bind, SASL2 with Bind 2, resumption). */
  #learnJid(resumed = false): void {
    this.setState("bound");
    this.log.info("session bound");
    this.#checkUnlimited();
    this.ctx.pipeline().sessionBound(this, resumed);
  }

  // ---- upstream connection -------------------------------------------------

  #dial(): void {
    const cfg = this.ctx.config;
    this.gate.pause(PAUSE_DIAL);
    const domain = this.tracker.claimedDomain;
    this.upstream.dial({
      host: cfg.upstream.host,
      port: cfg.upstream.port,
      tls: this.ctx.upstreamTls(),
      servername: domain && isIP(domain) === 0 ? domain : undefined,
      timeoutMs: this.ctx.timeouts().connect * 1000,
      proxyHeader: proxyHeader(cfg.proxy_protocol, { address: this.ip, port: this.port }, this.localEndpoint),
    });
  }

  // ---- timeouts: stream header, pre-auth, slow-drip stanzas ----------------

  #timedOut(kind: TimeoutKind, detail?: string): void {
    this.ctx.metrics.timeouts.inc({ listener: this.listener, kind });
    this.closeWithError(TIMEOUT_CODES[kind], detail);
  }

  #onPreAuthTimer(): void {
    if (this.closing || this.has(F_AUTHENTICATED)) return;
    const expired = this.timers.preAuthFired(this.ctx.timeouts(), this.gate.paused, () => this.#onPreAuthTimer());
    if (expired !== null) this.#timedOut(expired.kind, expired.detail);
  }

  /** After a feed: (re)arm timeouts.stanza when a new partial frame is held, disarm at a boundary. */
  #watchPartial(): void {
    const timers = this.timers;
    if (this.inFramer.atBoundary || this.closing) {
      timers.disarmStanza();
      return;
    }
    if (timers.stanzaArmed && this.gate.samePartial) return; // same frame, still dripping
    this.gate.markPartial();
    timers.armStanza(this.ctx.timeouts().stanza * 1000, () => this.#onStanzaTimer());
  }

  #onStanzaTimer(): void {
    if (this.closing || this.inFramer.atBoundary || !this.gate.samePartial) return;
    if (this.gate.heldBack) {
      // The proxy is holding the peer back (shaping, backpressure): not the peer's delay.
      this.timers.armStanza(this.ctx.timeouts().stanza * 1000, () => this.#onStanzaTimer());
      return;
    }
    this.#timedOut("stanza", `${this.inFramer.bufferedBytes} bytes held`);
  }

  // ---- shaping ---------------------------------------------------------------

  /**
   * (Re)apply this listener type's limits. On reload, existing buckets keep
   * their tokens (capped at the new capacity) instead of starting over full.
   */
  reconfigureLimits(limits: LimitsConfig): void {
    this.gate.reconfigure(this.type === "s2s" ? limits.s2sin : limits.c2s);
    this.#checkUnlimited();
  }

  /**
   * unlimited_jids: the bound bare JID (c2s), or every domain the server
   * verified on this stream (s2s; the header's claim counts for nothing).
   */
  #checkUnlimited(): void {
    if (!this.gate.shaped || !this.has(F_AUTHENTICATED)) return;
    const keys = this.tracker.exemptionKeys();
    const unlimited = this.ctx.unlimited();
    const exempt = keys.length > 0 && keys.every((k) => unlimited.has(k));
    if (this.gate.setUnlimited(exempt) && exempt) this.log.info("exempt from shaping (unlimited_jids)");
  }

  // ---- the session's side of its parts ----------------------------------------
  // Subclasses that lead back to the session's private methods; the gate and
  // the upstream are also the framers' sinks (no sink object per framer).

  protected newGate(): InboundGate {
    return new Session.#Gate(this);
  }

  protected newUpstream(): Upstream & FrameSink {
    return new Session.#Up(this);
  }

  static readonly #Gate = class extends InboundGate {
    readonly #s: Session;
    constructor(s: Session) {
      super();
      this.#s = s;
    }
    override onFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
      const s = this.#s;
      if (s.framed !== null && !s.framed.inboundFrame(kind, end - start)) {
        s.ctx.metrics.framingErrors.inc({ listener: s.listener, direction: "in", code: "XPX_ERR_WS_FRAMING" });
        s.closeWithError("XPX_ERR_WS_FRAMING", "a frame that is not exactly one message");
        return;
      }
      super.onFrame(kind, data, start, end);
    }
    onError(error: ProxyError): void {
      this.#s.onFramingError(error, "in");
    }
    protected feed(data: Buffer): void {
      this.#s.#feed(data);
    }
    protected pass(kind: FrameKind, data: Buffer, start: number, end: number): void {
      this.#s.#onPeerFrame(kind, data, start, end);
    }
    protected stanzaKind(data: Buffer, start: number, end: number) {
      return kindOf(data, start, end, this.#s.tracker.inbound);
    }
    protected isClosing(): boolean {
      return this.#s.closing;
    }
    protected pausePeer(): void {
      this.#s.client.pause();
    }
    protected resumePeer(): void {
      this.#s.client.resume();
    }
    protected flush(): void {
      this.#s.flush();
    }
    protected throttled(reason: ThrottleReason, ms: number | null): void {
      const s = this.#s;
      const m = s.ctx.metrics;
      if (ms === null) {
        m.sessionsThrottled.inc({ listener: s.listener });
        s.log.debug({ reason }, "throttled");
        return;
      }
      m.sessionsThrottled.dec({ listener: s.listener });
      m.throttledSeconds.inc({ listener: s.listener, reason }, ms / 1000);
      s.log.debug({ reason, ms: Math.round(ms) }, "throttle released");
    }
  };

  static readonly #Up = class extends Upstream implements FrameSink {
    readonly #s: Session;
    constructor(s: Session) {
      super();
      this.#s = s;
    }
    onFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
      this.#s.#onServerFrame(kind, data, start, end);
    }
    onError(error: ProxyError): void {
      this.#s.onFramingError(error, "out");
    }
    protected isClosing(): boolean {
      return this.#s.closing;
    }
    protected opened(seconds: number): void {
      const s = this.#s;
      s.ctx.metrics.upstreamConnect.observe({ listener: s.listener }, seconds);
      s.ctx.onUpstream(true);
      s.flushToUpstream();
      s.gate.resume(PAUSE_DIAL);
    }
    protected timedOut(connected: boolean): void {
      const s = this.#s;
      const { metrics, config } = s.ctx;
      metrics.upstreamFailures.inc({ listener: s.listener, reason: "timeout" });
      metrics.timeouts.inc({ listener: s.listener, kind: "upstream_connect" });
      if (!connected) s.ctx.onUpstream(false, "timeout");
      s.closeWithError("XPX_ERR_UPSTREAM_TIMEOUT", connected ? `${config.upstream.text}: connected, no stream header` : config.upstream.text);
    }
    protected data(chunk: Buffer): void {
      this.#s.#onUpstreamData(chunk);
    }
    protected drained(): void {
      this.#s.gate.resume(PAUSE_BACKPRESSURE);
    }
    protected ended(): void {
      this.#s.onUpstreamEnd();
    }
    protected errored(err: Error): void {
      this.#s.onSocketError("upstream", err);
    }
    protected closed(): void {
      const s = this.#s;
      if (!this.connected && !s.closing) {
        s.ctx.metrics.upstreamFailures.inc({ listener: s.listener, reason: "refused" });
        s.ctx.onUpstream(false, "refused");
        s.closeWithError("XPX_ERR_UPSTREAM_UNREACHABLE", s.ctx.config.upstream.text);
      }
      s.maybeEnd();
    }
  };

  // ---- the peer's events -------------------------------------------------------

  static readonly #peerEvents = new PeerEvents<Session>({
    data: (s, chunk) => s.#onClientData(chunk),
    end: (s) => s.onClientEnd(),
    error: (s, err) => s.onSocketError("client", err),
    close: (s) => {
      s.flags |= F_CLIENT_DONE;
      s.maybeEnd();
    },
    drain: (s) => s.upstream.resume(PAUSE_BACKPRESSURE),
    /**
     * A TLS 1.2 peer asked to renegotiate and every server context refused
     * (certificates.ts). The session goes on if the peer does (RFC 5246 §7.2.2
     * lets it choose); OpenSSL peers end it with a fatal alert, which ends the
     * session at once (direct-tls.ts), as does Node's limit on repeated attempts.
     */
    secure: (s) => {
      s.ctx.metrics.tlsHandshakeFailures.inc({ listener: s.listener, reason: "renegotiation" });
      s.log.info({ code: "XPX_ERR_TLS_RENEGOTIATION" }, ERRORS.XPX_ERR_TLS_RENEGOTIATION.message);
    },
  });
}
