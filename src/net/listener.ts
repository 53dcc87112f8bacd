// One listening socket. Accepts connections, reads a PROXY header first when
// the peer is a trusted front balancer (accept_proxy_from: then the header is
// required, as HAProxy's accept-proxy requires it), and hands the connection
// to a Session with the real client address. A `websocket` listener hands it
// to its HTTP side first (ws-front.ts), which starts the session once the
// WebSocket is up.

import { createServer, type Server, type Socket, type AddressInfo } from "node:net";
import { ERRORS } from "../errors.js";
import type { Logger } from "../log.js";
import { sessionId } from "../log.js";
import { TrafficStats, type Metrics } from "../metrics/definitions.js";
import type { Pipeline } from "../policy/pipeline.js";
import type { LimitsConfig, ListenerConfig, TimeoutsConfig, TlsConfig } from "../config/schema.js";
import type { ErrorCode } from "../errors.js";
import { realClock } from "../shaping/clock.js";
import { TokenBucket } from "../shaping/token-bucket.js";
import type { FramerLimits } from "../xml/framer.js";
import { parseProxyHeader, unmapIPv4, type TransportAddress } from "./proxy-protocol.js";
import type { ResumptionRegistry } from "./resumption.js";
import type { ListenerContext } from "./listener-context.js";
import { Session } from "./session.js";
import type { CertificateStore } from "./certificates.js";
import { acceptTls, failureReason, tlsModeFor, type SessionTls, type TlsMode } from "./tls-accept.js";
import { proceed } from "./starttls.js";
import type { AuditLimiter } from "../policy/audit.js";
import { WebSocketFront } from "./ws-front.js";
import type { WsPeer } from "./ws-peer.js";
import type { FleetBuckets } from "../state/fleet-buckets.js";

/** Live settings shared by every listener; replaced as a whole on reload. */
export interface RuntimeSettings {
  readonly framerLimits: FramerLimits;
  readonly pipeline: Pipeline;
  readonly timeouts: TimeoutsConfig;
  readonly limits: LimitsConfig;
  readonly unlimited: ReadonlySet<string>;
  readonly tls: TlsConfig;
  /** null while tls.certificates is empty (TLS off). */
  readonly certificates: CertificateStore | null;
}

export interface ListenerDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly resumption: ResumptionRegistry;
  readonly audit: AuditLimiter;
  settings(): RuntimeSettings;
  /** Fleet-wide per-IP caps and connection rates (state.redis); absent or null: this process's own. */
  fleet?(): FleetBuckets | null;
}

/** The last dial of this listener's upstream by a session (for /readyz). */
export interface UpstreamStatus {
  readonly ok: boolean;
  /** performance.now() of that dial's outcome. */
  readonly at: number;
  readonly detail: string | undefined;
}

/** One listener for every socket, not a closure each. */
const ignoreError = (): void => {};

/** How long a trusted balancer has to deliver its PROXY header. */
const PROXY_HEADER_TIMEOUT_MS = 5000;
const PROXY_HEADER_MAX = 536;

export class Listener {
  #config: ListenerConfig;
  readonly #deps: ListenerDeps;
  readonly #server: Server;
  readonly #log: Logger;
  readonly sessions = new Set<Session>();
  readonly stats = new TrafficStats();
  #ctx: ListenerContext;
  /** Open sessions per real client IP (for limits.max_connections_per_ip). */
  readonly #perIp = new Map<string, number>();
  /** Connections waiting for the fleet's admission, per real client IP. */
  readonly #admitting = new Map<string, number>();
  /** Connection-rate buckets per real client IP; idle (full) ones are swept. */
  readonly #rateBuckets = new Map<string, TokenBucket>();
  #sweep: NodeJS.Timeout | undefined;
  /** null until a session dialed the upstream. */
  upstreamStatus: UpstreamStatus | null = null;
  /** The HTTP and WebSocket side of a `websocket` listener; null for the others. */
  readonly #web: WebSocketFront | null;
  #lastLocal: TransportAddress | null = null;

  constructor(config: ListenerConfig, deps: ListenerDeps) {
    this.#config = config;
    this.#deps = deps;
    this.#log = deps.logger.child({ listener: config.name });
    deps.metrics.trackTraffic(config.name, this.stats);
    deps.metrics.initListener(config.name);
    this.#ctx = this.#makeContext();
    this.#web = config.type !== "websocket" ? null : new WebSocketFront({
      logger: this.#log,
      metrics: deps.metrics,
      config: () => this.#config,
      settings: deps.settings,
      startSession: (peer, id, client, local, acceptedAt, tls) => this.#startWebSession(peer, id, client, local, acceptedAt, tls),
    });
    // allowHalfOpen: after a peer's FIN we may still owe it a stream error.
    this.#server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => this.#accept(socket));
    this.#server.on("error", (err) => this.#log.error({ err: err.message }, "listener error"));
  }

  get name(): string {
    return this.#config.name;
  }

  get config(): ListenerConfig {
    return this.#config;
  }

  /** New sessions use the new config; running sessions keep theirs. */
  updateConfig(config: ListenerConfig): void {
    this.#config = config;
    this.#ctx = this.#makeContext();
    this.#web?.reconfigure();
  }

  #makeContext(): ListenerContext {
    const deps = this.#deps;
    return {
      config: this.#config,
      logger: deps.logger,
      metrics: deps.metrics,
      stats: this.stats,
      resumption: deps.resumption,
      framerLimits: () => deps.settings().framerLimits,
      pipeline: () => deps.settings().pipeline,
      timeouts: () => deps.settings().timeouts,
      limits: () => deps.settings().limits,
      unlimited: () => deps.settings().unlimited,
      upstreamTls: () => deps.settings().tls.upstream_tls,
      onEnd: (s) => {
        if (!this.sessions.delete(s)) return;
        this.#releaseIp(s.ip);
      },
      audit: deps.audit,
      startTls: (old, socket, rest, pre) => this.#upgradeOffered(old, socket, rest, pre),
      onUpstream: (ok, detail) => {
        this.upstreamStatus = { ok, at: performance.now(), detail };
      },
    };
  }

  #releaseIp(ip: string): void {
    const n = (this.#perIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.#perIp.delete(ip);
    else this.#perIp.set(ip, n);
    this.#deps.fleet?.()?.setConnections(this.#fleetKey(ip), n > 0 ? n : 0);
  }

  #addIp(ip: string): void {
    const n = (this.#perIp.get(ip) ?? 0) + 1;
    this.#perIp.set(ip, n);
    this.#deps.fleet?.()?.setConnections(this.#fleetKey(ip), n);
  }

  /** The caps are per listener: so are the fleet's counts and rate buckets. */
  #fleetKey(ip: string): string {
    return `${this.#config.name}/${ip}`;
  }

  /**
   * The fleet's admission of a connection from `ip` (state.redis): null when
   * there is nothing to ask (no cap, no rate, no Redis), else resolves the
   * refusal or undefined; the local answer when Redis could not be asked.
   */
  #fleetAdmission(ip: string): Promise<ErrorCode | undefined> | null {
    const fleet = this.#deps.fleet?.() ?? null;
    const limits = this.#deps.settings().limits;
    if (fleet === null || (limits.max_connections_per_ip <= 0 && limits.connection_rate_per_ip === null)) return null;
    if (!fleet.up) {
      // Decided at once, by this instance alone (docs/deploy.md, "When Redis is slow or gone").
      fleet.noteLocal("connection");
      return null;
    }
    const waiting = (this.#admitting.get(ip) ?? 0) + 1;
    this.#admitting.set(ip, waiting);
    const mine = (this.#perIp.get(ip) ?? 0) + waiting;
    return fleet.admitConnection(this.#fleetKey(ip), mine, limits.max_connections_per_ip, limits.connection_rate_per_ip).then((r) => {
      const left = (this.#admitting.get(ip) ?? 1) - 1;
      if (left <= 0) this.#admitting.delete(ip);
      else this.#admitting.set(ip, left);
      return r === null ? this.#admission(ip) : r;
    });
  }

  /** Apply reloaded limits to running sessions (buckets keep their state). */
  applySettings(): void {
    const limits = this.#deps.settings().limits;
    for (const s of this.sessions) s.reconfigureLimits(limits);
  }

  /** Per-IP caps: which error (if any) a new connection from `ip` gets. */
  #admission(ip: string): ErrorCode | undefined {
    const limits = this.#deps.settings().limits;
    if (limits.max_connections_per_ip > 0 && (this.#perIp.get(ip) ?? 0) >= limits.max_connections_per_ip) {
      return "XPX_ERR_TOO_MANY_CONNECTIONS";
    }
    const rate = limits.connection_rate_per_ip;
    if (rate !== null) {
      const now = realClock.now();
      let bucket = this.#rateBuckets.get(ip);
      if (!bucket) {
        bucket = new TokenBucket(rate.rate, rate.capacity, now);
        this.#rateBuckets.set(ip, bucket);
        this.#sweep ??= setInterval(() => this.#sweepRateBuckets(), 60_000).unref();
      } else if (bucket.rate !== rate.rate || bucket.capacity !== rate.capacity) {
        bucket.reconfigure(rate.rate, rate.capacity, now);
      }
      // Only admitted connections spend a token: a refused flood cannot dig a debt.
      if (bucket.balance(now) < 1) return "XPX_ERR_CONNECTION_RATE";
      bucket.take(1, now);
    }
    return undefined;
  }

  #sweepRateBuckets(): void {
    const now = realClock.now();
    for (const [ip, b] of this.#rateBuckets) if (b.balance(now) >= b.capacity) this.#rateBuckets.delete(ip);
    if (this.#rateBuckets.size === 0 && this.#sweep) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  listen(): Promise<AddressInfo> {
    const { host, port } = this.#config.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new Error(`listener ${this.#config.name}: cannot listen on ${this.#config.listen.text}: ${err.message}`));
      this.#server.once("error", onError);
      this.#server.listen({ host, port, backlog: 1024 }, () => {
        this.#server.off("error", onError);
        const addr = this.#server.address() as AddressInfo;
        this.#log.info({ address: `${addr.address}:${addr.port}`, upstream: this.#config.upstream.text }, "listening");
        resolve(addr);
      });
    });
  }

  address(): AddressInfo | null {
    return this.#server.address() as AddressInfo | null;
  }

  get listening(): boolean {
    return this.#server.listening;
  }

  /**
   * Stop accepting; running sessions continue. (net.Server's close callback
   * waits for every connection to end, so it is not awaited here.)
   */
  stopAccepting(): Promise<void> {
    if (this.#server.listening) this.#server.close();
    clearInterval(this.#sweep);
    this.#sweep = undefined;
    return Promise.resolve();
  }

  #accept(socket: Socket): void {
    const acceptedAt = Date.now(); // timeouts.pre_auth counts from here, PROXY header and TLS included
    const metrics = this.#deps.metrics;
    metrics.connections.inc({ listener: this.#config.name });
    socket.on("error", ignoreError); // errors before a session exists: the close event cleans up
    const peer: TransportAddress = { address: unmapIPv4(socket.remoteAddress ?? ""), port: socket.remotePort ?? 0 };
    const local = this.#localAddress(unmapIPv4(socket.localAddress ?? ""), socket.localPort ?? 0);
    forgetAddresses(socket);
    if (!peer.address) {
      socket.destroy();
      return;
    }
    if (this.#config.accept_proxy_from.has(peer.address)) {
      this.#readProxyHeader(socket, peer, local, acceptedAt);
      return;
    }
    this.#startSession(socket, peer, local, acceptedAt);
  }

  /**
   * The address a connection came in on: nearly always the one the last
   * connection came in on, so the same object is handed on (a session holds
   * it for its life; nothing changes it).
   */
  #localAddress(address: string, port: number): TransportAddress {
    const last = this.#lastLocal;
    if (last !== null && last.address === address && last.port === port) return last;
    return (this.#lastLocal = { address, port });
  }

  /** `resume`: the socket was paused for the PROXY header and reads again once the session is there. */
  #startSession(socket: Socket, peer: TransportAddress, local: TransportAddress, acceptedAt: number, initial?: Buffer, resume = false): void {
    if (this.#web !== null) {
      // Admission waits for the upgrade: behind a web server, only the request names the client.
      this.#web.accept(socket, peer, local, acceptedAt, initial);
      if (resume) socket.resume();
      return;
    }
    const fleet = this.#fleetAdmission(peer.address);
    if (fleet !== null) {
      // Nothing is read until the fleet answered (within its timeout).
      socket.pause();
      void fleet.then((refuse) => {
        if (socket.destroyed) {
          // Gone while waiting: the fleet recorded it; put the count right.
          this.#deps.fleet?.()?.setConnections(this.#fleetKey(peer.address), this.#perIp.get(peer.address) ?? 0);
          return;
        }
        this.#admitted(socket, peer, local, acceptedAt, initial, refuse);
        socket.resume();
      });
      return;
    }
    this.#admitted(socket, peer, local, acceptedAt, initial, this.#admission(peer.address));
    if (resume) socket.resume();
  }

  #admitted(socket: Socket, peer: TransportAddress, local: TransportAddress, acceptedAt: number, initial: Buffer | undefined, refuse: ErrorCode | undefined): void {
    if (refuse) {
      this.#deps.metrics.connectionsRefused.inc({ listener: this.#config.name, reason: refuse === "XPX_ERR_TOO_MANY_CONNECTIONS" ? "too_many_connections" : "connection_rate" });
    }
    const settings = this.#deps.settings();
    const tlsMode = tlsModeFor(this.#config.type, settings.tls, settings.certificates);
    if (tlsMode === "direct" && refuse) {
      // Nothing readable can be said before TLS; closing is the refusal.
      socket.destroy();
      return;
    }
    // tls.starttls: optional: plaintext unless the peer takes the offer (Session, #upgradeOffered).
    const offer = tlsMode === "starttls" && settings.tls.starttls === "optional";
    if (tlsMode !== null && !refuse && settings.certificates !== null && !offer) {
      this.#startTls(socket, peer, local, tlsMode, settings.certificates, acceptedAt, initial);
      return;
    }
    const session = new Session(this.#ctx, socket, sessionId(), peer, local, refuse, null, offer && !refuse);
    this.sessions.add(session);
    this.#addIp(peer.address);
    session.start(initial, acceptedAt);
    socket.off("error", ignoreError); // the session's own listener took over (one listener, not an array of two)
  }

  /**
   * A WebSocket is up: admit its client like a TCP connection (a refused one
   * still gets its stream error, over the WebSocket) and start the session.
   */
  #startWebSession(peer: WsPeer, id: string, client: TransportAddress, local: TransportAddress, acceptedAt: number, tls: SessionTls | null): void {
    const refuse = this.#admission(client.address);
    if (refuse) {
      this.#deps.metrics.connectionsRefused.inc({ listener: this.#config.name, reason: refuse === "XPX_ERR_TOO_MANY_CONNECTIONS" ? "too_many_connections" : "connection_rate" });
    }
    const session = new Session(this.#ctx, peer, id, client, local, refuse, tls, false, true);
    peer.onViolation = (code, detail) => session.closeWithError(code, detail);
    this.sessions.add(session);
    this.#addIp(client.address);
    session.start(undefined, acceptedAt);
  }

  /** TLS first (STARTTLS answered here, or direct TLS), then the session. Pending handshakes count per IP. */
  #startTls(socket: Socket, peer: TransportAddress, local: TransportAddress, mode: TlsMode, store: CertificateStore, acceptedAt: number, initial?: Buffer): void {
    const settings = this.#deps.settings();
    const ctx = this.#ctx;
    const id = sessionId();
    this.#addIp(peer.address);
    void acceptTls(socket, {
      listener: this.#config.name,
      type: this.#config.type,
      mode,
      config: settings.tls,
      store,
      limits: settings.framerLimits,
      headerTimeoutMs: settings.timeouts.stream_header * 1000,
      domain: this.#config.domain,
      initial,
      logger: this.#log.child({ sid: id, peer: `${peer.address}:${peer.port}` }),
      metrics: this.#deps.metrics,
    }).then((r) => {
      if (r.kind === "gone") {
        this.#releaseIp(peer.address);
        return;
      }
      const session = new Session(ctx, r.socket, id, peer, local, undefined, r.tls);
      this.sessions.add(session);
      session.start(r.initial, acceptedAt);
      // The socket comes over paused; read unless the session itself paused it.
      session.resumeClient(0);
    });
  }

  /**
   * A plaintext session took the optional STARTTLS offer and has ended:
   * answer <proceed/>, run the handshake, and go on with a new session (same
   * id) on the TLS socket, where the peer restarts its stream.
   */
  #upgradeOffered(old: Session, socket: Socket, rest: Buffer, pre: { to: string | undefined; from: string | undefined }): void {
    const settings = this.#deps.settings();
    const store = settings.certificates;
    const name = this.#config.name;
    const metrics = this.#deps.metrics;
    if (store === null) {
      socket.destroy();
      return;
    }
    const peer = { address: old.ip, port: old.port };
    this.#addIp(peer.address);
    const s2s = this.#config.type.startsWith("s2s");
    void proceed(socket, rest, {
      contentNs: s2s ? "jabber:server" : "jabber:client",
      mode: "optional",
      store,
      limits: settings.framerLimits,
      handshakeTimeoutMs: settings.tls.handshake_timeout * 1000,
      headerTimeoutMs: settings.timeouts.stream_header * 1000,
      ...(this.#config.domain ? { domain: this.#config.domain } : {}),
    }, { streamTo: pre.to, streamFrom: pre.from }).then((r) => {
      if (r.kind !== "tls") {
        this.#releaseIp(peer.address);
        const reason = r.kind === "error" ? failureReason(r.code) : "closed";
        metrics.tlsHandshakeFailures.inc({ listener: name, reason });
        this.#log.info({ sid: old.id, reason, detail: "detail" in r ? r.detail : undefined }, "STARTTLS offered and taken, but TLS failed");
        return;
      }
      const protocol = r.socket.getProtocol() ?? undefined;
      metrics.tlsHandshakes.inc({ listener: name, version: protocol ?? "unknown" });
      const tls: SessionTls = { servername: r.servername, alpn: undefined, protocol, preTlsFrom: r.streamFrom, preTlsTo: r.streamTo };
      const session = new Session(this.#ctx, r.socket, old.id, peer, old.localEndpoint, undefined, tls);
      this.sessions.add(session);
      session.start(undefined, old.startedAt);
      session.resumeClient(0);
    });
  }

  #readProxyHeader(socket: Socket, peer: TransportAddress, local: TransportAddress, acceptedAt: number): void {
    const metrics = this.#deps.metrics;
    const name = this.#config.name;
    let buf: Buffer = Buffer.alloc(0);
    const fail = (result: "invalid" | "timeout", message: string): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      metrics.proxyHeaders.inc({ listener: name, result });
      metrics.connectionsRefused.inc({ listener: name, reason: `proxy_header_${result}` });
      const code = result === "timeout" ? "XPX_ERR_PROXY_HEADER_TIMEOUT" : "XPX_ERR_PROXY_HEADER_INVALID";
      this.#log.warn({ code, peer: `${peer.address}:${peer.port}`, detail: message }, ERRORS[code].message);
      socket.destroy();
    };
    const timer = setTimeout(() => fail("timeout", "no header"), PROXY_HEADER_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const parsed = parseProxyHeader(buf);
      if (parsed.status === "incomplete") {
        if (buf.length > PROXY_HEADER_MAX) fail("invalid", "header too long");
        return;
      }
      if (parsed.status === "error") {
        fail("invalid", parsed.message);
        return;
      }
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      metrics.proxyHeaders.inc({ listener: name, result: "ok" });
      const realPeer = parsed.source ? { address: unmapIPv4(parsed.source.address), port: parsed.source.port } : peer;
      const realLocal = parsed.destination ? { address: unmapIPv4(parsed.destination.address), port: parsed.destination.port } : local;
      this.#startSession(socket, realPeer, realLocal, acceptedAt, buf.subarray(parsed.length), true);
    };
    socket.on("data", onData);
    socket.once("close", () => clearTimeout(timer));
  }
}

/**
 * Node caches what remoteAddress and localAddress asked the kernel in two
 * objects on the socket (with their strings: ~0.2 KiB), kept for the
 * connection's life. The session keeps its own copies, read once at accept,
 * so the caches are let go (a later read asks the kernel again).
 */
function forgetAddresses(socket: Socket): void {
  const s = socket as Socket & { _peername?: unknown; _sockname?: unknown };
  if (s._peername !== undefined) s._peername = undefined;
  if (s._sockname !== undefined) s._sockname = undefined;
}
