// One proxied stream: a peer connection and its upstream connection, both
// directions framed. The session owns the XMPP stream state machine (header,
// SASL success and restarts, resource binding, XEP-0198 resumption, close),
// learns who the peer is for policy, runs the policy pipeline per stanza, and
// writes the original bytes of every forwarded frame. It never writes a
// partial frame, so anything the proxy injects (a bounce, a stream error)
// lands on a frame boundary.
//
// Backpressure: a reader is paused while the opposite writer is full, while
// the upstream is being dialed, and while shaping says so (pause reasons are
// a bit mask; the socket resumes only when every reason has cleared).

import type { Socket } from "node:net";
import { connect } from "node:net";
import type { Writable } from "node:stream";
import { ERRORS, type ErrorCode, type ProxyError } from "../errors.js";
import { SessionLog, type Logger } from "../log.js";
import { AUTH_FAILURE_REASONS, KIND_INDEX, type Metrics, type SessionState, type TrafficStats } from "../metrics/definitions.js";
import type { Pipeline, SessionInfo, Verdict } from "../policy/pipeline.js";
import { ruleOf, type AuditLimiter } from "../policy/audit.js";
import { FRAME_CLOSE, FRAME_HEADER, FRAME_STANZA, type FrameKind, type FramerLimits, type FrameSink, type StreamFramer } from "../xml/framer.js";
import { createFramer } from "../xml/framer-wasm.js";
import { kindOf, type Stanza } from "../xml/stanza.js";
import { NS_STREAMS, STREAM_CLOSE, streamErrorElement, streamHeader } from "../xml/stream-error.js";
import { NS_TLS, StreamTracker, type PeerEvent, type ServerEvent } from "../stream/tracker.js";
import type { LimitsConfig, ListenerConfig, SessionLimit, TimeoutsConfig } from "../config/schema.js";
import { realClock, realTimers } from "../shaping/clock.js";
import { ReadPacer, type PacerBuckets, type ThrottleReason } from "../shaping/pacer.js";
import { TokenBucket } from "../shaping/token-bucket.js";
import type { RatedStanzaKind } from "../shaping/units.js";
import { encodeProxyV1, encodeProxyV2, looksLikeProxyHeader, type TransportAddress } from "./proxy-protocol.js";
import type { ResumptionRegistry } from "./resumption.js";
import { SmCounts, type Fate } from "../stream/sm-counts.js";
import { NS_SM3 } from "../stream/tracker.js";
import { WriteBatch } from "./write-batch.js";
import { connect as tlsConnect } from "node:tls";
import { isIP } from "node:net";
import { offersSaslExternal, stripSaslExternal, type SessionTls } from "./tls-accept.js";

const RATED_KINDS: readonly RatedStanzaKind[] = ["message", "presence", "iq"];

// Session booleans, packed in one field (#flags) behind private accessors.
/** XEP-0198 resumption time when the server names none (Prosody's default, smacks_hibernation_time). */
const DEFAULT_RESUME_MS = 600_000;
/** A larger `max` is taken as a day. */
const MAX_RESUME_S = 86_400;

const F_UPSTREAM_CONNECTED = 1 << 0;
const F_CLOSING = 1 << 1;
const F_ENDED = 1 << 2;
const F_CLIENT_DONE = 1 << 3;
const F_UPSTREAM_DONE = 1 << 4;
const F_FIRST_CHUNK = 1 << 5;
const F_CLIENT_HEADER_SEEN = 1 << 6;
const F_SERVER_HEADER_SEEN = 1 << 7;
const F_CLIENT_STREAM_CLOSED = 1 << 8;
const F_SERVER_STREAM_CLOSED = 1 << 9;
const F_AUTHENTICATED = 1 << 10;
const F_STANZA_SHAPING = 1 << 11;
const F_HOLDING = 1 << 12;
const F_RESTART_PENDING = 1 << 13;
/** tls.starttls: optional, not negotiated yet: STARTTLS is offered in the server's features and answered here. */
const F_OFFER_TLS = 1 << 14;
/** The peer asked for STARTTLS on an offering session: the rest of its bytes are TLS, for the listener. */
const F_UPGRADING = 1 << 15;

/** A session's sockets carry their session under this key (see the shared event handlers). */
const SESSION = Symbol("session");
type TaggedSocket = Socket & { [SESSION]: Session };
type TaggedPeer = PeerConnection & { [SESSION]: Session };

/**
 * What the session uses of the peer's connection: a TCP or TLS socket, or a
 * peer that frames XMPP itself (WebSocket, ws-peer.ts). Either way it emits
 * 'data', 'end', 'error', 'close' and 'drain' like a socket.
 */
export interface PeerConnection {
  readonly writable: boolean;
  setNoDelay(noDelay?: boolean): unknown;
  pause(): unknown;
  resume(): unknown;
  end(): unknown;
  destroy(): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): unknown;
}

/** Where frames for the peer wait until the next flush. */
export interface PeerOutput {
  readonly empty: boolean;
  add(data: Buffer, start: number, end: number, kind: FrameKind): void;
  /** Hand everything to the connection; false when it is full (backpressure). */
  send(): boolean;
}

/**
 * A peer whose transport delimits elements itself (RFC 7395: one element per
 * WebSocket message). The session's byte-level pipeline stays the same; this
 * is where it learns the peer's message boundaries and sends it frames.
 */
export interface FramedPeer extends PeerConnection {
  readonly output: PeerOutput;
  /** The framer found a frame of `length` bytes: true if it was exactly the peer's next message. */
  inboundFrame(kind: FrameKind, length: number): boolean;
  /** The streams restart (SASL success): the peer opens a new stream next. */
  restart(): void;
}

/** The TCP peer's output: the frames' bytes, coalesced, written to the socket. */
class SocketOutput extends WriteBatch implements PeerOutput {
  readonly #out: Writable;
  constructor(out: Writable) {
    super();
    this.#out = out;
  }
  send(): boolean {
    return this.flush(this.#out);
  }
}

const STREAM_CLOSE_BYTES = Buffer.from(STREAM_CLOSE, "latin1");

/** The read buffer every plain TCP upstream connection of the process reads into (see #upstreamRead). */
const sharedReadBuffer = Buffer.allocUnsafeSlow(64 * 1024);

interface SessionBuckets {
  readonly bytes: TokenBucket | null;
  readonly stanzas: Partial<Record<RatedStanzaKind, TokenBucket>>;
}
/** Shared by every session without limits (the default), so none allocates its own. */
const NO_BUCKETS: SessionBuckets = Object.freeze({ bytes: null, stanzas: Object.freeze({}) });

/** How long a closing session waits for the peer to finish closing before destroying what is left. */
const CLOSE_GRACE_MS = 5000;
/**
 * The same for a connection refused by a per-IP cap. Its answer fits in one
 * segment and there is nothing to drain, and a flood of refused connections
 * must not hold a descriptor each for long, whether or not the peer reads.
 */
const REFUSED_CLOSE_MS = 1000;

// Reasons a reader is paused.
const PAUSE_DIAL = 1;
const PAUSE_BACKPRESSURE = 2;
export const PAUSE_SHAPING = 4;
export const PAUSE_POLICY = 8;

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

export class Session implements SessionInfo {
  readonly id: string;
  readonly listener: string;
  readonly type: "c2s" | "s2s";
  readonly ip: string;
  readonly port: number;
  readonly startedAt = Date.now();
  /** Where the peer connected to (socket, or the PROXY header's destination). */
  readonly localEndpoint: TransportAddress;

  readonly #ctx: ListenerContext;
  readonly #log: SessionLog;
  readonly #client: PeerConnection;
  /** The peer, when its transport frames elements (WebSocket); null on TCP. */
  readonly #framed: FramedPeer | null;
  #upstream: Socket | null = null;
  readonly #inFramer: StreamFramer; // peer → upstream
  readonly #outFramer: StreamFramer; // upstream → peer
  readonly #toUpstream = new WriteBatch();
  readonly #toClient: PeerOutput;
  /** What the server knows about this stream: contexts, identity, verified domains. */
  readonly #tracker: StreamTracker;
  /** XEP-0198 counts, once the client asks for stream management (stream/sm-counts.ts). */
  #sm: SmCounts | null = null;

  // Fourteen booleans in one small integer (a field each cost 8 bytes per session).
  #flags = F_FIRST_CHUNK; // accessors below the constructor
  /** How long the server keeps this session for resumption after a lost connection (see resumeMs). */
  #resumeMs = 0;
  #state: SessionState = "connecting";
  #clientPause = 0;
  #upstreamPause = 0;


  // Shaping (null when this listener type has no limit). Bytes the pacer did
  // not cover wait in #pending; stanzas a stanza bucket refused (and every
  // frame after them) wait in #heldFrames, until the pacer resumes.
  #pacer: ReadPacer | null = null;
  #buckets: SessionBuckets = NO_BUCKETS;
  /** Bytes read but not yet framed; the first #pendingPaid of them are already charged. */
  #pending: Buffer | null = null;
  #pendingPaid = 0;
  #heldFrames: Array<{ kind: FrameKind; data: Buffer; start: number; end: number; charged: boolean }> | null = null; // allocated when first needed
  #throttleReason: ThrottleReason = "bytes";
  #preAuthBytes = 0;
  #preAuthStanzas = 0;
  readonly #refuse: ErrorCode | undefined;

  #headerTimer: NodeJS.Timeout | undefined;
  #dialTimer: NodeJS.Timeout | undefined;
  #closeTimer: NodeJS.Timeout | undefined;
  // timeouts.pre_auth_idle and timeouts.pre_auth share #idleTimer; timeouts.stanza (slow drip).
  #idleTimer: NodeJS.Timeout | undefined;
  #lastActivity = Date.now();
  /** When the connection was accepted (before any PROXY header or TLS): timeouts.pre_auth counts from here. */
  #acceptedAt = 0;
  #stanzaTimer: NodeJS.Timeout | undefined;
  #clientFrames = 0;
  #partialAt = -1;

  /** The TLS layer the proxy terminated under this stream; null for plaintext. */
  readonly tls: SessionTls | null;

  /**
   * `refuse`: refuse the connection with this error as soon as it starts, never dialing (per-IP caps).
   * `tls`: `client` is a TLS socket the proxy already negotiated (tls-accept.ts),
   * or the TLS under a WebSocket.
   * `offerTls`: tls.starttls is optional: relay in plaintext, offer STARTTLS
   * in the server's features and answer it (ctx.startTls) if the peer asks.
   * `framed`: the client is a WebSocket peer (ws-peer.ts), not a socket.
   */
  constructor(ctx: ListenerContext, client: Socket | FramedPeer, id: string, peer: TransportAddress, local: TransportAddress, refuse?: ErrorCode, tls?: SessionTls | null, offerTls = false, framed = false) {
    this.#ctx = ctx;
    if (offerTls && (tls ?? null) === null && ctx.startTls !== undefined) this.#flags |= F_OFFER_TLS;
    this.tls = tls ?? null;
    this.#refuse = refuse;
    this.#client = client;
    this.#framed = framed ? (client as FramedPeer) : null;
    this.#toClient = framed ? (client as FramedPeer).output : new SocketOutput(client as Socket);
    this.id = id;
    this.listener = ctx.config.name;
    this.type = ctx.config.type.startsWith("s2s") ? "s2s" : "c2s";
    this.#tracker = new StreamTracker(this.type);
    this.ip = peer.address;
    this.port = peer.port;
    this.localEndpoint = local;
    this.#log = new SessionLog(ctx.logger, id, peer, ctx.config.name);
    const limits = ctx.framerLimits();
    this.#inFramer = createFramer(new Session.#InSink(this), limits);
    this.#outFramer = createFramer(new Session.#OutSink(this), limits);
    ctx.metrics.sessions.inc({ listener: this.listener, state: this.#state });
    // s2s: the pre-TLS header's `from` names the peer until the restarted header does.
    if (this.type === "s2s" && this.tls?.preTlsFrom) {
      this.#tracker.claimedDomain = this.tls.preTlsFrom;
      this.#log.domain = this.tls.preTlsFrom;
    }
    if (!refuse) this.reconfigureLimits(ctx.limits());
  }

  // ---- packed booleans (#flags) ------------------------------------------

  get #upstreamConnected(): boolean {
    return (this.#flags & F_UPSTREAM_CONNECTED) !== 0;
  }
  set #upstreamConnected(on: boolean) {
    this.#flags = on ? this.#flags | F_UPSTREAM_CONNECTED : this.#flags & ~F_UPSTREAM_CONNECTED;
  }
  get #closing(): boolean {
    return (this.#flags & F_CLOSING) !== 0;
  }
  set #closing(on: boolean) {
    this.#flags = on ? this.#flags | F_CLOSING : this.#flags & ~F_CLOSING;
  }
  get #ended(): boolean {
    return (this.#flags & F_ENDED) !== 0;
  }
  set #ended(on: boolean) {
    this.#flags = on ? this.#flags | F_ENDED : this.#flags & ~F_ENDED;
  }
  get #clientDone(): boolean {
    return (this.#flags & F_CLIENT_DONE) !== 0;
  }
  set #clientDone(on: boolean) {
    this.#flags = on ? this.#flags | F_CLIENT_DONE : this.#flags & ~F_CLIENT_DONE;
  }
  get #upstreamDone(): boolean {
    return (this.#flags & F_UPSTREAM_DONE) !== 0;
  }
  set #upstreamDone(on: boolean) {
    this.#flags = on ? this.#flags | F_UPSTREAM_DONE : this.#flags & ~F_UPSTREAM_DONE;
  }
  get #firstChunk(): boolean {
    return (this.#flags & F_FIRST_CHUNK) !== 0;
  }
  set #firstChunk(on: boolean) {
    this.#flags = on ? this.#flags | F_FIRST_CHUNK : this.#flags & ~F_FIRST_CHUNK;
  }
  get #clientHeaderSeen(): boolean {
    return (this.#flags & F_CLIENT_HEADER_SEEN) !== 0;
  }
  set #clientHeaderSeen(on: boolean) {
    this.#flags = on ? this.#flags | F_CLIENT_HEADER_SEEN : this.#flags & ~F_CLIENT_HEADER_SEEN;
  }
  get #serverHeaderSeen(): boolean {
    return (this.#flags & F_SERVER_HEADER_SEEN) !== 0;
  }
  set #serverHeaderSeen(on: boolean) {
    this.#flags = on ? this.#flags | F_SERVER_HEADER_SEEN : this.#flags & ~F_SERVER_HEADER_SEEN;
  }
  get #clientStreamClosed(): boolean {
    return (this.#flags & F_CLIENT_STREAM_CLOSED) !== 0;
  }
  set #clientStreamClosed(on: boolean) {
    this.#flags = on ? this.#flags | F_CLIENT_STREAM_CLOSED : this.#flags & ~F_CLIENT_STREAM_CLOSED;
  }
  get #serverStreamClosed(): boolean {
    return (this.#flags & F_SERVER_STREAM_CLOSED) !== 0;
  }
  set #serverStreamClosed(on: boolean) {
    this.#flags = on ? this.#flags | F_SERVER_STREAM_CLOSED : this.#flags & ~F_SERVER_STREAM_CLOSED;
  }
  get #authenticated(): boolean {
    return (this.#flags & F_AUTHENTICATED) !== 0;
  }
  set #authenticated(on: boolean) {
    this.#flags = on ? this.#flags | F_AUTHENTICATED : this.#flags & ~F_AUTHENTICATED;
  }
  get #stanzaShaping(): boolean {
    return (this.#flags & F_STANZA_SHAPING) !== 0;
  }
  set #stanzaShaping(on: boolean) {
    this.#flags = on ? this.#flags | F_STANZA_SHAPING : this.#flags & ~F_STANZA_SHAPING;
  }
  get #holding(): boolean {
    return (this.#flags & F_HOLDING) !== 0;
  }
  set #holding(on: boolean) {
    this.#flags = on ? this.#flags | F_HOLDING : this.#flags & ~F_HOLDING;
  }
  get #restartPending(): boolean {
    return (this.#flags & F_RESTART_PENDING) !== 0;
  }
  set #restartPending(on: boolean) {
    this.#flags = on ? this.#flags | F_RESTART_PENDING : this.#flags & ~F_RESTART_PENDING;
  }

  // ---- SessionInfo -------------------------------------------------------

  get jid(): string | undefined {
    return this.#tracker.jid;
  }

  /**
   * The server keeps a resumable session after its connection is lost, but
   * not after a stream close from either side (the proxy sends one upstream
   * when the client's connection ends in an orderly way, or it closes the
   * session itself); only an abrupt end (a reset, an abort) leaves the
   * session hibernating.
   */
  get resumeMs(): number {
    return this.#clientStreamClosed || this.#serverStreamClosed ? 0 : this.#resumeMs;
  }

  /**
   * c2s: the stream's `to`. s2s: the peer's domain once the server verified
   * it (the header's claim when that is verified, else the first verified).
   */
  get domain(): string | undefined {
    const t = this.#tracker;
    if (this.type === "c2s") return t.claimedDomain;
    const claimed = t.claimedDomain?.toLowerCase();
    if (claimed !== undefined && t.verified.has(claimed)) return claimed;
    for (const d of t.verified) return d;
    return undefined;
  }

  get authenticated(): boolean {
    return this.#authenticated;
  }

  get state(): SessionState {
    return this.#state;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /**
   * Write a complete stanza produced by policy (a firewall REPLY, COPY…) toward
   * the peer or the upstream, on a frame boundary like everything else.
   */
  inject(target: "peer" | "upstream", bytes: Buffer): void {
    if (this.#closing) return;
    if (target === "peer") this.#toClient.add(bytes, 0, bytes.length, FRAME_STANZA);
    else this.#toUpstream.add(bytes, 0, bytes.length);
    this.#sm?.injected(target);
    // Flushed by the data handler that is running (stages run inside one).
  }

  // ---- lifecycle -----------------------------------------------------------

  /**
   * Start relaying. `initial` holds bytes already read (e.g. after a PROXY
   * header); `acceptedAt` is when the listener accepted the connection.
   */
  start(initial?: Buffer, acceptedAt = Date.now()): void {
    const client = this.#client;
    client.setNoDelay(true);
    (client as TaggedPeer)[SESSION] = this;
    client.on("data", Session.#clientData);
    client.on("end", Session.#clientEnd);
    client.on("error", Session.#clientError);
    client.on("close", Session.#clientClose);
    client.on("drain", Session.#clientDrain);
    // OpenSSL reports a refused renegotiation as one more finished handshake.
    if (this.tls !== null) client.on("secure", Session.#clientRenegotiation);
    this.#log.debug("session opened");
    if (this.#refuse !== undefined) {
      // Say it now: waiting for a stream header the peer may never send held
      // each refused connection open for timeouts.stream_header, and enough of
      // them ran the process out of descriptors. Whatever the peer sends from
      // here on is read and dropped until the close.
      this.closeWithError(this.#refuse);
      return;
    }
    const timeouts = this.#ctx.timeouts();
    this.#headerTimer = setTimeout(() => {
      if (this.#clientHeaderSeen) return;
      this.#ctx.metrics.timeouts.inc({ listener: this.listener, kind: "stream_header" });
      this.closeWithError("XPX_ERR_STREAM_HEADER_TIMEOUT");
    }, timeouts.stream_header * 1000);
    this.#acceptedAt = acceptedAt;
    const lifetimeLeft = acceptedAt + timeouts.pre_auth * 1000 - Date.now();
    this.#idleTimer = setTimeout(() => this.#onIdleTimer(), Math.min(timeouts.pre_auth_idle * 1000, lifetimeLeft));
    if (initial && initial.length > 0) this.#onClientData(initial);
  }

  /** Pause or resume reading from the peer for an external reason (shaping, async policy). */
  pauseClient(reason: number): void {
    if (this.#clientPause === 0 && !this.#closing) this.#client.pause();
    this.#clientPause |= reason;
  }

  resumeClient(reason: number): void {
    this.#clientPause &= ~reason;
    if (this.#clientPause === 0 && !this.#closing) this.#client.resume();
  }

  #pauseUpstream(reason: number): void {
    if (this.#upstreamPause === 0) this.#upstream?.pause();
    this.#upstreamPause |= reason;
  }

  #resumeUpstream(reason: number): void {
    this.#upstreamPause &= ~reason;
    if (this.#upstreamPause === 0 && !this.#closing) this.#upstream?.resume();
  }

  #setState(next: SessionState): void {
    if (next === this.#state) return;
    const m = this.#ctx.metrics.sessions;
    m.dec({ listener: this.listener, state: this.#state });
    m.inc({ listener: this.listener, state: next });
    this.#state = next;
  }

  // ---- peer → upstream -----------------------------------------------------

  #onClientData(chunk: Buffer): void {
    if (this.#closing) return;
    if (this.#firstChunk) {
      this.#firstChunk = false;
      // A PROXY header from a source not in accept_proxy_from: refuse, say nothing.
      if (looksLikeProxyHeader(chunk)) {
        this.#ctx.metrics.proxyHeaders.inc({ listener: this.listener, result: "untrusted" });
        this.#ctx.metrics.connectionsRefused.inc({ listener: this.listener, reason: "proxy_header_untrusted" });
        this.#log.warn({ code: "XPX_ERR_PROXY_HEADER_UNTRUSTED" }, ERRORS.XPX_ERR_PROXY_HEADER_UNTRUSTED.message);
        this.#abort();
        return;
      }
    }
    const len = chunk.length;
    this.#ctx.stats.bytesIn += len;
    if (!this.#authenticated) {
      this.#lastActivity = Date.now();
      const max = this.#ctx.limits().pre_auth.max_bytes;
      if (max > 0 && (this.#preAuthBytes += len) > max) {
        this.closeWithError("XPX_ERR_PRE_AUTH_LIMIT", `more than ${max} bytes`);
        return;
      }
    }
    if (this.#pacer === null) {
      this.#feed(chunk);
      return;
    }
    this.#ctx.stats.bytesCharged += len;
    this.#pending = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    if (!this.#pacer.paused) this.#pump();
  }

  #feed(data: Buffer): void {
    if ((this.#flags & F_OFFER_TLS) !== 0 && !this.#authenticated) {
      this.#feedUntilTls(data);
      return;
    }
    this.#inFramer.write(data);
    if (this.#stanzaTimer !== undefined || !this.#inFramer.atBoundary) this.#watchPartial();
    this.#flushToUpstream();
    this.#flushToClient(); // bounces produced while judging
  }

  /**
   * While STARTTLS is on offer: feed up to each '>' (never inside a UTF-8
   * sequence), so that <starttls/> is framed before the TLS bytes a peer may
   * send right behind it, which are not XML. Those go to the listener.
   */
  #feedUntilTls(data: Buffer): void {
    let from = 0;
    while (from < data.length && !this.#closing) {
      const gt = data.indexOf(0x3e, from);
      const to = gt < 0 ? data.length : gt + 1;
      this.#inFramer.write(data.subarray(from, to));
      from = to;
      if ((this.#flags & F_UPGRADING) !== 0) {
        const rest = this.#pending === null ? data.subarray(from) : Buffer.concat([data.subarray(from), this.#pending]);
        this.#pending = null;
        this.#handOverToTls(rest);
        return;
      }
    }
    if (this.#stanzaTimer !== undefined || !this.#inFramer.atBoundary) this.#watchPartial();
    this.#flushToUpstream();
    this.#flushToClient();
  }

  /**
   * The peer asked for STARTTLS (tls.starttls: optional). This session ends
   * here without a word to the peer: its upstream connection, which saw only
   * the pre-TLS stream, is closed, and the listener answers <proceed/> and
   * starts a new session once TLS is up (the peer restarts its stream then).
   */
  #handOverToTls(rest: Buffer): void {
    // Only a TCP listener offers STARTTLS, so the peer is a socket here.
    const client = this.#client as Socket;
    this.#flushToClient();
    this.#closing = true;
    this.#inFramer.stop();
    this.#outFramer.stop();
    client.off("data", Session.#clientData);
    client.off("end", Session.#clientEnd);
    client.off("error", Session.#clientError);
    client.off("close", Session.#clientClose);
    client.off("drain", Session.#clientDrain);
    client.pause();
    const up = this.#upstream;
    if (up !== null) {
      up.off("data", Session.#upstreamData);
      up.off("drain", Session.#upstreamDrain);
      up.off("end", Session.#upstreamEnd);
      up.off("error", Session.#upstreamError);
      up.off("close", Session.#upstreamClose);
      up.on("error", () => {});
      if (this.#upstreamConnected) up.end("</stream:stream>");
      else up.destroy();
      setTimeout(() => up.destroy(), CLOSE_GRACE_MS).unref();
    }
    this.#log.info("STARTTLS: the peer takes the TLS offer; the stream restarts over TLS");
    const pre = { to: this.#tracker.claimedDomain, from: this.type === "s2s" ? this.#tracker.claimedDomain : undefined };
    this.#upstreamDone = true;
    this.#clientDone = true;
    this.#maybeEnd();
    this.#ctx.startTls!(this, client, rest, pre);
  }

  /**
   * Feed #pending to the framer as the byte bucket allows, in slices of at
   * most an eighth of the bucket: each slice is charged before it is read, so
   * the debt never exceeds one slice and the output is smooth at the
   * configured rate (no burst of a whole 64 KiB read after a long pause).
   */
  #pump(): void {
    const pacer = this.#pacer!;
    const bucket = this.#buckets.bytes;
    while (this.#pending !== null && !this.#closing) {
      let pending = this.#pending;
      if (bucket === null || pacer.unlimited) {
        this.#pending = null;
        this.#pendingPaid = 0;
        this.#feed(pending);
        return;
      }
      if (this.#pendingPaid === 0) {
        const n = Math.min(pending.length, Math.max(256, Math.floor(bucket.capacity / 8)));
        const covered = pacer.charge(n);
        this.#pendingPaid = n;
        if (covered < n) {
          // Forward what the bucket covered; the rest of this slice is paid and
          // waits for the pacer's resume (which calls #releaseHeld → #pump).
          if (covered > 0) {
            this.#feed(pending.subarray(0, covered));
            pending = pending.subarray(covered);
            this.#pending = pending;
            this.#pendingPaid = n - covered;
          }
          return;
        }
      }
      const paid = this.#pendingPaid;
      this.#pendingPaid = 0;
      this.#pending = paid < pending.length ? pending.subarray(paid) : null;
      this.#feed(paid < pending.length ? pending.subarray(0, paid) : pending);
    }
  }

  // ---- timeouts: pre-auth idle, slow-drip stanzas -------------------------

  /** After a feed: (re)arm timeouts.stanza when a new partial frame is held, disarm at a boundary. */
  #watchPartial(): void {
    if (this.#inFramer.atBoundary || this.#closing) {
      clearTimeout(this.#stanzaTimer);
      this.#stanzaTimer = undefined;
      return;
    }
    if (this.#stanzaTimer !== undefined && this.#partialAt === this.#clientFrames) return; // same frame, still dripping
    clearTimeout(this.#stanzaTimer);
    this.#partialAt = this.#clientFrames;
    this.#stanzaTimer = setTimeout(() => this.#onStanzaTimer(), this.#ctx.timeouts().stanza * 1000);
  }

  #onStanzaTimer(): void {
    this.#stanzaTimer = undefined;
    if (this.#closing || this.#inFramer.atBoundary || this.#partialAt !== this.#clientFrames) return;
    if (this.#clientPause !== 0 || this.#pending !== null || this.#holding) {
      // The proxy is holding the peer back (shaping, backpressure): not the peer's delay.
      this.#stanzaTimer = setTimeout(() => this.#onStanzaTimer(), this.#ctx.timeouts().stanza * 1000);
      return;
    }
    this.#ctx.metrics.timeouts.inc({ listener: this.listener, kind: "stanza" });
    this.closeWithError("XPX_ERR_STANZA_TIMEOUT", `${this.#inFramer.bufferedBytes} bytes held`);
  }

  /**
   * Both pre-authentication bounds on one timer: it fires at the nearer of
   * the idle deadline and the lifetime deadline and works out which passed,
   * so a byte from the peer only stores a time and never touches a timer.
   * The lifetime is a ceiling: time the proxy holds the peer back counts too.
   */
  #onIdleTimer(): void {
    this.#idleTimer = undefined;
    if (this.#closing || this.#authenticated) return;
    const timeouts = this.#ctx.timeouts();
    const now = Date.now();
    const lifetimeLeft = this.#acceptedAt + timeouts.pre_auth * 1000 - now;
    if (lifetimeLeft <= 0) {
      this.#ctx.metrics.timeouts.inc({ listener: this.listener, kind: "pre_auth" });
      this.closeWithError("XPX_ERR_PRE_AUTH_TIMEOUT", `${Math.round((now - this.#acceptedAt) / 1000)} s after accept`);
      return;
    }
    const left = this.#lastActivity + timeouts.pre_auth_idle * 1000 - now;
    if (left > 0 || this.#clientPause !== 0) {
      this.#idleTimer = setTimeout(() => this.#onIdleTimer(), Math.min(Math.max(left, 1000), lifetimeLeft));
      return;
    }
    this.#ctx.metrics.timeouts.inc({ listener: this.listener, kind: "pre_auth_idle" });
    this.closeWithError("XPX_ERR_PRE_AUTH_IDLE");
  }

  /** Gate in front of frame handling: holds frames while a stanza bucket is in debt. */
  #onClientFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
    this.#clientFrames++;
    if (this.#framed !== null && !this.#framed.inboundFrame(kind, end - start)) {
      this.#ctx.metrics.framingErrors.inc({ listener: this.listener, direction: "in", code: "XPX_ERR_WS_FRAMING" });
      this.closeWithError("XPX_ERR_WS_FRAMING", "a frame that is not exactly one message");
      return;
    }
    if (this.#holding) {
      (this.#heldFrames ??= []).push({ kind, data, start, end, charged: false });
      return;
    }
    if (kind === FRAME_STANZA && this.#stanzaShaping && !this.#pacer!.chargeStanza(kindOf(data, start, end, this.#tracker.inbound))) {
      (this.#heldFrames ??= []).push({ kind, data, start, end, charged: true });
      this.#holding = true;
      return;
    }
    this.#handleClientFrame(kind, data, start, end);
  }

  /** The pacer repaid its debt: replay held frames, then held bytes, then read again. */
  #releaseHeld(): void {
    if (this.#closing) return;
    const pacer = this.#pacer!;
    this.#holding = false;
    const held = this.#heldFrames;
    while (held !== null && held.length > 0) {
      const f = held[0]!;
      if (!f.charged && f.kind === FRAME_STANZA && this.#stanzaShaping && !pacer.chargeStanza(kindOf(f.data, f.start, f.end, this.#tracker.inbound))) {
        f.charged = true;
        this.#holding = true;
        break;
      }
      held.shift();
      this.#handleClientFrame(f.kind, f.data, f.start, f.end);
      if (this.#closing) return;
    }
    if (!this.#holding) this.#pump();
    this.#flushToUpstream();
    this.#flushToClient();
    if (!pacer.paused && !this.#holding && this.#pending === null) this.resumeClient(PAUSE_SHAPING);
  }

  /**
   * (Re)apply this listener type's limits. On reload, existing buckets keep
   * their tokens (capped at the new capacity) instead of starting over full.
   */
  reconfigureLimits(limits: LimitsConfig): void {
    const spec: SessionLimit | null = this.type === "s2s" ? limits.s2sin : limits.c2s;
    const now = realClock.now();
    const old = this.#buckets;
    const bytes = spec?.bytes ? (old.bytes ? (old.bytes.reconfigure(spec.bytes.rate, spec.bytes.capacity, now), old.bytes) : new TokenBucket(spec.bytes.rate, spec.bytes.capacity, now)) : null;
    const stanzas: Partial<Record<RatedStanzaKind, TokenBucket>> = {};
    for (const kind of RATED_KINDS) {
      const r = spec?.stanzas[kind];
      if (!r) continue;
      const b = old.stanzas[kind];
      if (b) b.reconfigure(r.rate, r.capacity, now);
      stanzas[kind] = b ?? new TokenBucket(r.rate, r.capacity, now);
    }
    this.#stanzaShaping = Object.keys(stanzas).length > 0;
    this.#buckets = bytes === null && !this.#stanzaShaping ? NO_BUCKETS : { bytes, stanzas };
    const buckets: PacerBuckets = { bytes, stanzas };
    if (this.#pacer) {
      this.#pacer.setBuckets(buckets);
    } else if (bytes !== null || this.#stanzaShaping) {
      this.#pacer = new ReadPacer({
        buckets,
        clock: realClock,
        timers: realTimers,
        hooks: {
          pause: () => this.pauseClient(PAUSE_SHAPING),
          resume: () => this.#releaseHeld(),
          onThrottleStart: (reason) => {
            this.#throttleReason = reason;
            this.#ctx.metrics.sessionsThrottled.inc({ listener: this.listener });
            this.#log.debug({ reason }, "throttled");
          },
          onThrottleEnd: (ms) => {
            this.#ctx.metrics.sessionsThrottled.dec({ listener: this.listener });
            this.#ctx.metrics.throttledSeconds.inc({ listener: this.listener, reason: this.#throttleReason }, ms / 1000);
            this.#log.debug({ reason: this.#throttleReason, ms: Math.round(ms) }, "throttle released");
          },
        },
      });
    }
    this.#checkUnlimited();
  }

  /**
   * unlimited_jids: the bound bare JID (c2s), or every domain the server
   * verified on this stream (s2s; the header's claim counts for nothing).
   */
  #checkUnlimited(): void {
    if (this.#pacer === null || !this.#authenticated) return;
    const keys = this.#tracker.exemptionKeys();
    const unlimited = this.#ctx.unlimited();
    const exempt = keys.length > 0 && keys.every((k) => unlimited.has(k));
    if (exempt !== this.#pacer.unlimited) {
      this.#pacer.setUnlimited(exempt);
      if (exempt) this.#log.info("exempt from shaping (unlimited_jids)");
    }
  }

  #handleClientFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
    if (kind === FRAME_STANZA) {
      if (!this.#authenticated) {
        const max = this.#ctx.limits().pre_auth.max_stanzas;
        if (max > 0 && ++this.#preAuthStanzas > max) {
          this.closeWithError("XPX_ERR_PRE_AUTH_LIMIT", `more than ${max} stanzas`);
          return;
        }
      }
      const k = kindOf(data, start, end, this.#tracker.inbound);
      this.#ctx.stats.stanzas[KIND_INDEX[k]]! += 1;
      const pipeline = this.#ctx.pipeline();
      const judged = pipeline.wants("inbound", k);
      // Nonzas are looked at for XEP-0198 (stream/sm-counts.ts).
      if (this.#state !== "bound" || judged || k === "other") {
        // A borrowed view (no allocation per stanza), given back before the next frame.
        const view = this.#tracker.peerView(data, start, end);
        try {
          if (view.head.duplicate !== null) {
            this.closeWithError("XPX_ERR_XML_DUPLICATE_ATTRIBUTE", view.head.duplicate);
            return;
          }
          const event = this.#tracker.peerStanza(view);
          if (event !== null && !this.#onPeerEvent(event)) return;
          if (k === "other" && view.xmlns === NS_SM3) {
            const instead = (this.#sm ??= new SmCounts()).clientNonza(view, () => data.toString("utf8", start, end), this.#ctx.resumption);
            if (instead !== null) {
              const bytes = Buffer.from(instead);
              this.#sendUpstream(bytes, 0, bytes.length);
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
      if (k !== "other") this.#sm?.fromClient("passed");
      this.#sendUpstream(data, start, end);
      return;
    }
    if (kind === FRAME_HEADER) {
      if (!this.#onClientHeader(data, start, end)) return;
    } else if (kind === FRAME_CLOSE) {
      this.#clientStreamClosed = true;
      this.#setState("closing");
    }
    this.#sendUpstream(data, start, end);
  }

  #sendUpstream(data: Buffer, start: number, end: number): void {
    this.#toUpstream.add(data, start, end);
  }

  #flushToUpstream(): void {
    if (!this.#upstreamConnected || this.#toUpstream.empty) return;
    if (!this.#toUpstream.flush(this.#upstream!)) this.pauseClient(PAUSE_BACKPRESSURE);
  }

  /** Validate the peer's stream header; dial the upstream on the first one. */
  #onClientHeader(data: Buffer, start: number, end: number): boolean {
    const problem = this.#tracker.peerHeader(data, start, end);
    if (problem !== null) {
      this.closeWithError(problem.code, problem.detail);
      return false;
    }
    const claimed = this.#tracker.claimedDomain;
    if (claimed !== undefined && this.#log.domain !== claimed) this.#log.domain = claimed;
    if (!this.#clientHeaderSeen) {
      this.#clientHeaderSeen = true;
      clearTimeout(this.#headerTimer);
      this.#headerTimer = undefined; // a cleared Timeout still holds its closure (and this session's graph)
      this.#setState("open");
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
    if ((this.#flags & F_OFFER_TLS) !== 0 && !this.#authenticated) {
      // tls.starttls: optional, and the peer takes the offer (#feedUntilTls hands over).
      this.#flags |= F_UPGRADING;
      return false;
    }
    if (this.tls !== null) {
      // RFC 6120 §5.4.2.2: a second STARTTLS fails and ends the stream.
      this.#log.info({ code: "XPX_ERR_STARTTLS_TWICE" }, ERRORS.XPX_ERR_STARTTLS_TWICE.message);
      this.#ctx.metrics.tlsHandshakeFailures.inc({ listener: this.listener, reason: "starttls_twice" });
    } else {
      // The upstream offered STARTTLS through a proxy that does not terminate TLS:
      // relaying it would blind the proxy. Refuse as RFC 6120 §5.4.2.2 allows.
      this.#log.error("client asked for STARTTLS on a plaintext listener: disable TLS on the upstream server (mod_tls) or enable TLS termination in xmpp-guard");
    }
    const failure = Buffer.from(`<failure xmlns='${NS_TLS}'/>`);
    this.#toClient.add(failure, 0, failure.length, FRAME_STANZA);
    this.#toClient.add(STREAM_CLOSE_BYTES, 0, STREAM_CLOSE_BYTES.length, FRAME_CLOSE);
    this.#flushToClient();
    this.#shutdownBoth();
    return false;
  }

  // ---- upstream → peer -----------------------------------------------------

  #onUpstreamData(chunk: Buffer): void {
    if (this.#closing) return;
    if (!this.#authenticated) this.#lastActivity = Date.now();
    this.#ctx.stats.bytesOut += chunk.length;
    this.#outFramer.write(chunk);
    this.#flushToClient();
    this.#flushToUpstream(); // bounces produced while judging
  }

  #onServerFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
    if (kind === FRAME_STANZA) {
      const k = kindOf(data, start, end, this.#tracker.outbound);
      this.#ctx.stats.stanzas[4 + KIND_INDEX[k]]! += 1;
      const pipeline = this.#ctx.pipeline();
      // After binding only a few nonzas matter (stream errors, SM enabled);
      // look at their first bytes before building a view.
      const interesting = this.#state !== "bound" || mayMatterAfterBind(data, start, end) || (k === "other" && this.#sm !== null);
      const judged = pipeline.wants("outbound", k);
      if (interesting || judged) {
        const view = this.#tracker.serverView(data, start, end);
        try {
          if (interesting) {
            const event = this.#tracker.serverStanza(view);
            if (event !== null) this.#onServerEvent(event);
          }
          if (k === "other" && this.#sm !== null && view.xmlns === NS_SM3) {
            const instead = this.#sm.serverNonza(view, () => data.toString("utf8", start, end));
            if (instead !== null) {
              const bytes = Buffer.from(instead);
              this.#toClient.add(bytes, 0, bytes.length, FRAME_STANZA);
              return;
            }
          }
          if (view.name === "features" && view.xmlns === NS_STREAMS) {
            let text: string | null = null;
            if (this.type === "s2s" && offersSaslExternal(view)) {
              // SASL EXTERNAL cannot work behind the proxy (docs/tls.md): peers use dialback.
              text = stripSaslExternal(data.toString("utf8", start, end));
            }
            if ((this.#flags & F_OFFER_TLS) !== 0 && !this.#authenticated && view.tree()?.getChild("starttls", NS_TLS) === undefined) {
              // tls.starttls: optional: the peer may take TLS from us, or go on in plaintext.
              text = withStartTls(text ?? data.toString("utf8", start, end));
            }
            if (text !== null) {
              const bytes = Buffer.from(text);
              this.#toClient.add(bytes, 0, bytes.length, FRAME_STANZA);
              return;
            }
          }
          if (judged) {
            const decided = pipeline.judge(view, this, "outbound");
            if (decided !== null && !this.#apply(decided.stage, decided.verdict, "out", view)) return;
          }
          if (k !== "other") this.#sm?.fromServer("passed");
          this.#toClient.add(data, start, end, FRAME_STANZA);
          // SASL success: both streams restart (RFC 6120 §6.4.6). The peer's next
          // bytes are a new header; so are the server's once it sees that header.
          if (this.#restartPending) {
            this.#restartPending = false;
            this.#inFramer.reset();
            this.#outFramer.reset();
            this.#framed?.restart();
          }
          return;
        } finally {
          view.release();
        }
      }
      if (k !== "other") this.#sm?.fromServer("passed");
      this.#toClient.add(data, start, end, FRAME_STANZA);
      return;
    }
    if (kind === FRAME_HEADER) {
      this.#serverHeaderSeen = true;
      clearTimeout(this.#dialTimer); // timeouts.connect covers connect + the server's answering header
      this.#dialTimer = undefined;
      this.#tracker.serverHeader(data, start, end);
    } else if (kind === FRAME_CLOSE) {
      this.#serverStreamClosed = true;
      this.#setState("closing");
    }
    this.#toClient.add(data, start, end, kind);
  }

  /** Carry out what the server just said about the session (the tracker has noted it). */
  #onServerEvent(event: ServerEvent): void {
    switch (event.kind) {
      case "sasl-success":
        this.#authenticatedNow();
        this.#setState("authenticated");
        this.#restartPending = true;
        if (this.type === "s2s") this.#checkUnlimited();
        return;
      case "verified":
        this.#authenticatedNow();
        this.#setState("authenticated");
        this.#log.info({ verified: event.domain }, "peer domain verified");
        this.#checkUnlimited();
        return;
      case "sasl2-success":
        // XEP-0388: no restart; the authorization identifier is the account (or a full JID with Bind 2).
        this.#authenticatedNow();
        if (event.jid?.includes("/")) this.#learnJid(event.jid);
        else {
          if (event.jid !== undefined) this.#log.jid = event.jid;
          if (this.#state !== "bound") this.#setState("authenticated");
        }
        return;
      case "bound":
        this.#learnJid(event.jid);
        return;
      case "resumed": {
        this.#authenticatedNow();
        const jid = this.#ctx.resumption.lookup(event.previd);
        this.#tracker.resume(jid);
        // A resumed session stays resumable; its original <enabled/> (and max) was on another connection.
        this.#resumeMs = DEFAULT_RESUME_MS;
        if (jid !== undefined) this.#learnJid(jid, true);
        else this.#setState("bound");
        return;
      }
      case "resumable": {
        if (this.#tracker.jid !== undefined) this.#ctx.resumption.remember(event.id, this.#tracker.jid, this.#sm?.ledger ?? undefined);
        const max = event.max === undefined ? NaN : Number(event.max);
        this.#resumeMs = Number.isFinite(max) && max > 0 ? Math.min(max, MAX_RESUME_S) * 1000 : DEFAULT_RESUME_MS;
        return;
      }
      case "auth-failure": {
        const reason = AUTH_REASONS.has(event.reason) ? event.reason : "other";
        this.#ctx.metrics.authFailures.inc({ listener: this.listener, reason });
        // One line per failure, never rate-limited: fail2ban counts them (docs/deploy.md).
        this.#log.warn({ code: "XPX_ERR_AUTH_FAILED", ip: this.ip, reason: event.reason, mechanism: event.mechanism, user: event.user }, ERRORS.XPX_ERR_AUTH_FAILED.message);
        return;
      }
      case "stream-error":
        this.#ctx.metrics.streamErrors.inc({ listener: this.listener, condition: boundedCondition(event.condition), sender: "upstream" });
        this.#log.info({ condition: event.condition }, "upstream sent a stream error");
        return;
    }
  }

  /** pre_auth_idle and pre_auth no longer apply: their timer would only return, so drop it now. */
  #authenticatedNow(): void {
    this.#authenticated = true;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #learnJid(learned: string, resumed = false): void {
    // The JID comes out of the parsed stanza's text, as a slice that would keep
    // that whole text alive for the session's life: keep an own copy.
    const jid = Buffer.from(learned, "utf8").toString("utf8");
    this.#tracker.jid = jid;
    this.#log.jid = jid;
    this.#setState("bound");
    this.#log.info("session bound");
    this.#checkUnlimited();
    this.#ctx.pipeline().sessionBound(this, resumed);
  }

  #flushToClient(): void {
    if (this.#toClient.empty || this.#clientDone) return;
    if (!this.#toClient.send()) this.#pauseUpstream(PAUSE_BACKPRESSURE);
  }

  // ---- verdicts ------------------------------------------------------------

  /** Carry out a non-forward verdict. Returns true only if the stanza should still be forwarded. */
  #apply(stage: string, verdict: Verdict, dir: "in" | "out", view: Stanza): boolean {
    this.#ctx.metrics.verdicts.inc({ listener: this.listener, stage, verdict: verdict.action });
    if (verdict.action === "drop" || verdict.action === "bounce" || verdict.action === "close") this.#audit(stage, verdict.action, verdict.reason, dir, view);
    if (verdict.action !== "forward" && verdict.action !== "close" && view.kind !== "other") {
      const fate: Fate = verdict.action === "rewrite" ? "passed" : verdict.action === "bounce" ? "bounced" : "dropped";
      if (dir === "in") this.#sm?.fromClient(fate);
      else this.#sm?.fromServer(fate);
    }
    switch (verdict.action) {
      case "forward":
        return true;
      case "drop":
        return false;
      case "bounce": {
        const reply = Buffer.from(verdict.reply);
        // The reply goes back to whoever sent the stanza.
        if (dir === "in") this.#toClient.add(reply, 0, reply.length, FRAME_STANZA);
        else this.#sendUpstream(reply, 0, reply.length);
        return false;
      }
      case "rewrite": {
        if (dir === "in") this.#toUpstream.add(verdict.bytes, 0, verdict.bytes.length);
        else this.#toClient.add(verdict.bytes, 0, verdict.bytes.length, FRAME_STANZA);
        return false;
      }
      case "close":
        this.closeWithError(verdict.code, verdict.reason);
        return false;
    }
  }

  /** The "policy action" line (rate-limited, see policy/audit.ts). */
  #audit(stage: string, action: string, reason: string, dir: "in" | "out", view: Stanza): void {
    const suppressed = this.#ctx.audit.admit(this);
    if (suppressed === null) {
      this.#ctx.metrics.policyLogsSuppressed.inc();
      return;
    }
    this.#log.info({
      ip: this.ip,
      stage,
      rule: ruleOf(reason),
      action,
      reason,
      dir,
      stanza: { name: view.name, type: view.type, id: view.id?.slice(0, 64), to: view.to?.slice(0, 256) },
      ...(suppressed > 0 ? { suppressed } : {}),
    }, "policy action");
  }

  // ---- upstream connection -------------------------------------------------

  #dial(): void {
    const cfg = this.#ctx.config;
    this.pauseClient(PAUSE_DIAL);
    const overTls = this.#ctx.upstreamTls();
    const domain = this.#tracker.claimedDomain;
    const servername = domain && isIP(domain) === 0 ? domain : undefined;
    // tls.upstream_tls encrypts a hop the operator controls; it does not authenticate it (docs/tls.md).
    // A plain TCP upstream reads into the process's one read buffer (no
    // allocation and no stream machinery per read; see #upstreamRead). TLS
    // sockets have no such option: they deliver 'data' events.
    const upstream: Socket = overTls
      ? tlsConnect({ host: cfg.upstream.host, port: cfg.upstream.port, ...(servername ? { servername } : {}), rejectUnauthorized: false })
      : connect({ host: cfg.upstream.host, port: cfg.upstream.port, onread: { buffer: sharedReadBuffer, callback: Session.#upstreamRead } });
    this.#upstream = upstream;
    upstream.setNoDelay(true);
    const dialStarted = performance.now();
    const timeout = this.#ctx.timeouts().connect * 1000;
    this.#dialTimer = setTimeout(() => {
      if (this.#serverHeaderSeen || this.#closing) return;
      this.#ctx.metrics.upstreamFailures.inc({ listener: this.listener, reason: "timeout" });
      this.#ctx.metrics.timeouts.inc({ listener: this.listener, kind: "upstream_connect" });
      if (!this.#upstreamConnected) this.#ctx.onUpstream(false, "timeout");
      this.closeWithError("XPX_ERR_UPSTREAM_TIMEOUT", this.#upstreamConnected ? `${cfg.upstream.text}: connected, no stream header` : cfg.upstream.text);
      upstream.destroy();
    }, timeout);
    upstream.once(overTls ? "secureConnect" : "connect", () => {
      if (this.#closing) {
        upstream.destroy();
        return;
      }
      this.#upstreamConnected = true;
      this.#ctx.metrics.upstreamConnect.observe({ listener: this.listener }, (performance.now() - dialStarted) / 1000);
      this.#ctx.onUpstream(true);
      const header = this.#proxyHeader();
      if (header) upstream.write(header);
      this.#flushToUpstream();
      this.resumeClient(PAUSE_DIAL);
      if (this.#upstreamPause !== 0) upstream.pause();
    });
    (upstream as TaggedSocket)[SESSION] = this;
    upstream.on("data", Session.#upstreamData);
    upstream.on("drain", Session.#upstreamDrain);
    upstream.on("end", Session.#upstreamEnd);
    upstream.on("error", Session.#upstreamError);
    upstream.on("close", Session.#upstreamClose);
  }

  #onUpstreamClose(): void {
    this.#upstreamDone = true;
    if (!this.#upstreamConnected && !this.#closing) {
      this.#ctx.metrics.upstreamFailures.inc({ listener: this.listener, reason: "refused" });
      this.#ctx.onUpstream(false, "refused");
      this.closeWithError("XPX_ERR_UPSTREAM_UNREACHABLE", this.#ctx.config.upstream.text);
    }
    this.#maybeEnd();
  }

  // ---- shared event handlers -------------------------------------------------
  // One function per event for every session instead of a closure per socket
  // and event (and one sink object per framer without closures): EventEmitter
  // calls a listener with the socket as `this`, and SESSION leads back.

  static #clientData(this: TaggedPeer, chunk: Buffer): void {
    this[SESSION].#onClientData(chunk);
  }

  static #clientEnd(this: TaggedPeer): void {
    this[SESSION].#onClientEnd();
  }

  static #clientError(this: TaggedPeer, err: Error): void {
    this[SESSION].#onSocketError("client", err);
  }

  static #clientClose(this: TaggedPeer): void {
    const s = this[SESSION];
    s.#clientDone = true;
    s.#maybeEnd();
  }

  static #clientDrain(this: TaggedPeer): void {
    this[SESSION].#resumeUpstream(PAUSE_BACKPRESSURE);
  }

  static #clientRenegotiation(this: TaggedPeer): void {
    this[SESSION].#onRenegotiation();
  }

  static #upstreamData(this: Socket, chunk: Buffer): void {
    (this as TaggedSocket)[SESSION].#onUpstreamData(chunk);
  }

  /**
   * A read into the shared buffer (net.Socket `onread`, called with the socket
   * as `this`). The buffer is reused by the next read of any socket, and the
   * session keeps what it forwards (queued writes, a partial frame), so the
   * bytes are copied out once, into a buffer of their own, before anything
   * looks at them: one copy per read instead of Node's allocation of a 64 KiB
   * buffer and a stream push per read. docs/performance.md.
   */
  static #upstreamRead(this: Socket, nread: number, buf: Uint8Array): boolean {
    const chunk = Buffer.allocUnsafe(nread);
    (buf as Buffer).copy(chunk, 0, 0, nread);
    (this as TaggedSocket)[SESSION].#onUpstreamData(chunk);
    return true; // pausing stays with pause()/resume(), as for 'data'
  }

  static #upstreamDrain(this: Socket): void {
    (this as TaggedSocket)[SESSION].resumeClient(PAUSE_BACKPRESSURE);
  }

  static #upstreamEnd(this: Socket): void {
    (this as TaggedSocket)[SESSION].#onUpstreamEnd();
  }

  static #upstreamError(this: Socket, err: Error): void {
    (this as TaggedSocket)[SESSION].#onSocketError("upstream", err);
  }

  static #upstreamClose(this: Socket): void {
    (this as TaggedSocket)[SESSION].#onUpstreamClose();
  }

  static readonly #InSink = class implements FrameSink {
    readonly #s: Session;
    constructor(s: Session) {
      this.#s = s;
    }
    onFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
      this.#s.#onClientFrame(kind, data, start, end);
    }
    onError(error: ProxyError): void {
      this.#s.#onFramingError(error, "in");
    }
  };

  static readonly #OutSink = class implements FrameSink {
    readonly #s: Session;
    constructor(s: Session) {
      this.#s = s;
    }
    onFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
      this.#s.#onServerFrame(kind, data, start, end);
    }
    onError(error: ProxyError): void {
      this.#s.#onFramingError(error, "out");
    }
  };

  #proxyHeader(): Buffer | null {
    const mode = this.#ctx.config.proxy_protocol;
    if (mode === "off") return null;
    const src = { address: this.ip, port: this.port };
    return mode === "v1" ? encodeProxyV1(src, this.localEndpoint) : encodeProxyV2(src, this.localEndpoint);
  }

  #onUpstreamEnd(): void {
    this.#flushToClient();
    if (this.#closing) return;
    if (!this.#serverStreamClosed && !this.#clientStreamClosed) {
      // The server dropped us without closing its stream.
      this.#ctx.metrics.upstreamFailures.inc({ listener: this.listener, reason: "closed" });
      this.closeWithError("XPX_ERR_UPSTREAM_CLOSED");
      return;
    }
    this.#shutdownBoth();
  }

  // ---- endings -------------------------------------------------------------

  #onClientEnd(): void {
    if (this.#closing) return;
    const truncated = this.#inFramer.finish();
    if (truncated) {
      this.#ctx.metrics.framingErrors.inc({ listener: this.listener, direction: "in", code: truncated.code });
      this.closeWithError(truncated.code);
      return;
    }
    this.#flushToUpstream();
    this.#shutdownBoth();
  }

  #onFramingError(error: ProxyError, direction: "in" | "out"): void {
    this.#ctx.metrics.framingErrors.inc({ listener: this.listener, direction, code: error.code });
    if (direction === "in") {
      this.closeWithError(error.code, error.message);
    } else {
      this.#log.error({ code: error.code, err: error.message }, "upstream server sent bad XML");
      this.closeWithError("XPX_ERR_UPSTREAM_PROTOCOL");
    }
  }

  #onSocketError(side: "client" | "upstream", err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (side === "upstream" && !this.#upstreamConnected) {
      // Dial failures are reported by the close handler; keep the reason.
      this.#log.warn({ err: err.message, code }, "upstream connect failed");
      return;
    }
    this.#log.debug({ err: err.message, code, side }, "socket error");
    if (side === "upstream" && !this.#closing) {
      this.#ctx.metrics.upstreamFailures.inc({ listener: this.listener, reason: "error" });
      this.closeWithError("XPX_ERR_UPSTREAM_CLOSED", code);
      return;
    }
    this.#abort();
  }

  /**
   * Close the session with the stream error that `code` maps to: the peer gets
   * (if needed) a stream header, the error and the stream close; the upstream
   * gets a clean stream close. Frames already judged are flushed first.
   */
  closeWithError(code: ErrorCode, detail?: string): void {
    if (this.#closing) return;
    const entry = ERRORS[code];
    const condition = entry.condition;
    const level = code === "XPX_ERR_SHUTDOWN" ? "info" : code.startsWith("XPX_ERR_UPSTREAM") ? "warn" : "info";
    this.#log[level]({ code, condition, detail }, entry.message);
    this.#flushToUpstream();
    this.#flushToClient();
    this.#closing = true;
    this.#inFramer.stop();
    this.#outFramer.stop();
    if (condition !== null && !this.#clientDone && this.#client.writable) {
      this.#ctx.metrics.streamErrors.inc({ listener: this.listener, condition, sender: "proxy" });
      // Header (unless the server's went out), error, end tag: three frames, one write.
      const out = this.#toClient;
      if (!this.#serverHeaderSeen) {
        const head = Buffer.from(streamHeader(this.#tracker.contentNs, this.#ctx.config.domain ?? this.#tracker.claimedDomain));
        out.add(head, 0, head.length, FRAME_HEADER);
      }
      const error = Buffer.from(streamErrorElement(condition, entry.message));
      out.add(error, 0, error.length, FRAME_STANZA);
      out.add(STREAM_CLOSE_BYTES, 0, STREAM_CLOSE_BYTES.length, FRAME_CLOSE);
      out.send();
    }
    this.#shutdownBoth();
  }

  /** Graceful end: half-close both sides, destroy whatever is left after a grace period. */
  #shutdownBoth(): void {
    this.#closing = true;
    this.#setState("closing");
    this.#inFramer.stop();
    this.#outFramer.stop();
    clearTimeout(this.#headerTimer);
    clearTimeout(this.#dialTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#stanzaTimer);
    if (!this.#clientDone) this.#client.end();
    const up = this.#upstream;
    if (up && !this.#upstreamDone) {
      if (this.#upstreamConnected) {
        if (this.#clientHeaderSeen && !this.#clientStreamClosed) {
          up.end("</stream:stream>");
          // The server ends a session whose stream is closed: no resumption (see resumeMs).
          this.#clientStreamClosed = true;
        }
        else up.end();
      } else up.destroy();
    }
    // Peers that never finish closing don't hold resources for long.
    this.#closeTimer ??= setTimeout(() => this.#abort(), this.#refuse === undefined ? CLOSE_GRACE_MS : REFUSED_CLOSE_MS);
    this.#closeTimer.unref();
    // Let a paused side drain its close.
    this.#client.resume();
    up?.resume();
  }

  /**
   * A TLS 1.2 peer asked to renegotiate and every server context refused
   * (certificates.ts). The session goes on if the peer does (RFC 5246 §7.2.2
   * lets it choose); OpenSSL peers end it with a fatal alert, which ends the
   * session at once (direct-tls.ts), as does Node's limit on repeated attempts.
   */
  #onRenegotiation(): void {
    this.#ctx.metrics.tlsHandshakeFailures.inc({ listener: this.listener, reason: "renegotiation" });
    this.#log.info({ code: "XPX_ERR_TLS_RENEGOTIATION" }, ERRORS.XPX_ERR_TLS_RENEGOTIATION.message);
  }

  /** Tear down immediately, without any goodbye. */
  #abort(): void {
    this.#closing = true;
    this.#inFramer.stop();
    this.#outFramer.stop();
    clearTimeout(this.#headerTimer);
    clearTimeout(this.#dialTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#stanzaTimer);
    this.#client.destroy();
    this.#upstream?.destroy();
    if (!this.#upstream) this.#upstreamDone = true;
    this.#maybeEnd();
  }

  #maybeEnd(): void {
    if (this.#ended) return;
    if (!this.#clientDone) return;
    if (this.#upstream && !this.#upstreamDone) {
      // Client gone: nothing left to relay to; finish the upstream side.
      if (!this.#closing) this.#shutdownBoth();
      return;
    }
    this.#ended = true;
    this.#pacer?.close();
    this.#ctx.pipeline().sessionEnded(this);
    this.#pending = null;
    this.#heldFrames = null;
    clearTimeout(this.#headerTimer);
    clearTimeout(this.#dialTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#stanzaTimer);
    clearTimeout(this.#closeTimer);
    this.#ctx.metrics.sessions.dec({ listener: this.listener, state: this.#state });
    const seconds = (Date.now() - this.startedAt) / 1000;
    if (this.#refuse === undefined) this.#ctx.metrics.sessionDuration.observe({ listener: this.listener }, seconds);
    this.#log.info({ seconds }, "session closed");
    this.#ctx.onEnd(this);
  }
}

/**
 * Stream features with an (optional) STARTTLS offer added as their first
 * child, whatever prefix the features element has and whether it is empty.
 */
export function withStartTls(features: string): string {
  const offer = `<starttls xmlns='${NS_TLS}'/>`;
  const open = /^<([^\s/>]+)([^>]*?)(\/?)>/.exec(features);
  if (open === null) return features;
  if (open[3] === "/") return `<${open[1]}${open[2]}>${offer}</${open[1]}>${features.slice(open[0].length)}`;
  return open[0] + offer + features.slice(open[0].length);
}

/**
 * After binding, only a server nonza starting with s(tream:error) or
 * e(nabled), or any prefixed name (a server may prefix them), needs a look.
 */
function mayMatterAfterBind(data: Buffer, start: number, end: number): boolean {
  const first = data[start + 1];
  if (first === 0x73 || first === 0x65) return true;
  for (let i = start + 1; i < end; i++) {
    const b = data[i];
    if (b === 0x3a) return true;
    if (b === 0x20 || b === 0x3e || b === 0x2f || b === 0x09 || b === 0x0a || b === 0x0d) return false;
  }
  return false;
}

const AUTH_REASONS: ReadonlySet<string> = new Set(AUTH_FAILURE_REASONS);

const KNOWN_CONDITIONS = new Set([
  "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone", "host-unknown",
  "improper-addressing", "internal-server-error", "invalid-from", "invalid-namespace", "invalid-xml",
  "not-authorized", "not-well-formed", "policy-violation", "remote-connection-failed", "reset",
  "resource-constraint", "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
  "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type", "unsupported-version",
]);

/** Metric label values must come from a bounded set. */
function boundedCondition(c: string): string {
  return KNOWN_CONDITIONS.has(c) ? c : "other";
}

