// The HTTP side of a `websocket` listener: from an accepted connection (after
// any PROXY header) to a WebSocket peer for a session. TLS first when the
// listener serves wss:// (the certificate store, SNI), then HTTP/1.1:
//
// - an upgrade to the configured path, from an allowed origin, offering the
//   `xmpp` subprotocol, becomes a WebSocket (the `ws` library does the
//   handshake and the framing) and the listener starts a session on it;
// - anything else gets an HTTP answer and no WebSocket: 404 for another
//   path, 403 for an origin not allowed, 400 without the subprotocol or for a
//   broken handshake, and for a plain GET of the endpoint 426 with a short
//   text saying what the endpoint is.
//
// Behind a web server that terminates TLS, the client's address comes from
// X-Forwarded-For, believed only from `websocket.trusted_proxies`.
// While peers are connected, a sweep pings each every
// `websocket.ping_interval` seconds and drops one that did not answer the
// previous ping.

import { createServer, STATUS_CODES, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { WebSocketServer, type WebSocket } from "ws";
import { ERRORS, type ErrorCode } from "../errors.js";
import { sessionId, SessionLog, type Logger } from "../log.js";
import type { Metrics } from "../metrics/definitions.js";
import type { ListenerConfig, WebSocketOptions } from "../config/schema.js";
import { serverHandshake } from "./direct-tls.js";
import { unmapIPv4, type TransportAddress } from "./proxy-protocol.js";
import type { RuntimeSettings } from "./listener.js";
import type { SessionTls } from "./tls-accept.js";
import { WsPeer } from "./ws-peer.js";

/** The subprotocol RFC 7395 registers. */
export const XMPP_SUBPROTOCOL = "xmpp";

const CONN = Symbol("ws-conn");

/** What the listener learned about a connection before HTTP. */
interface ConnInfo {
  readonly peer: TransportAddress;
  readonly local: TransportAddress;
  readonly acceptedAt: number;
  readonly tls: SessionTls | null;
  /** Destroys a connection that has not upgraded within timeouts.stream_header (the TLS handshake has its own bound). */
  readonly timer: NodeJS.Timeout;
}

type Tagged = Duplex & { [CONN]?: ConnInfo };

const ENDPOINT_TEXT =
  "This is an XMPP over WebSocket endpoint (RFC 7395). Connect with a WebSocket client that offers the \"xmpp\" subprotocol.\n";

export interface WebSocketFrontDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  config(): ListenerConfig;
  settings(): RuntimeSettings;
  /** A WebSocket is up: the listener admits the client (per-IP caps) and starts the session. */
  startSession(peer: WsPeer, id: string, client: TransportAddress, local: TransportAddress, acceptedAt: number, tls: SessionTls | null): void;
}

export class WebSocketFront {
  readonly #deps: WebSocketFrontDeps;
  readonly #log: Logger;
  readonly #http: HttpServer;
  readonly #wss: WebSocketServer;
  /** Connected peers, for the ping sweep. */
  readonly #peers = new Set<WsPeer>();
  #pingTimer: NodeJS.Timeout | undefined;

  constructor(deps: WebSocketFrontDeps) {
    this.#deps = deps;
    this.#log = deps.logger;
    this.#http = createServer({ maxHeaderSize: 16_384 });
    this.#http.on("request", (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res));
    this.#http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
    this.#http.on("clientError", (err: Error & { code?: string }, socket: Duplex) => {
      this.#log.debug({ err: err.message, code: err.code }, "bad HTTP request");
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
      socket.destroy();
    });
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      // Compression stays off: it would cost CPU per message, and a small
      // compressed message could inflate to far more than it was charged.
      perMessageDeflate: false,
      maxPayload: deps.settings().framerLimits.maxStanzaSize,
      handleProtocols: (protocols: Set<string>) => (protocols.has(XMPP_SUBPROTOCOL) ? XMPP_SUBPROTOCOL : false),
    });
    this.#wss.on("wsClientError", (err: Error, socket: Duplex, req: IncomingMessage) => {
      this.#refuse(socket, 400, "websocket_handshake", "XPX_ERR_WS_HANDSHAKE", `${err.message} (${req.url ?? "?"})`);
    });
  }

  get #options(): WebSocketOptions {
    return this.#deps.config().websocket!;
  }

  /** A connection the listener accepted (its PROXY header read, `initial` what followed it). */
  accept(socket: Socket, peer: TransportAddress, local: TransportAddress, acceptedAt: number, initial?: Buffer): void {
    const settings = this.#deps.settings();
    if (initial !== undefined && initial.length > 0) socket.unshift(initial);
    if (!this.#options.tls) {
      this.#serve(socket, { peer, local, acceptedAt, tls: null });
      return;
    }
    const store = settings.certificates;
    if (store === null) {
      // The config check requires certificates for wss; a reload cannot remove them either.
      socket.destroy();
      return;
    }
    const name = this.#deps.config().name;
    void serverHandshake(socket, {
      secureContext: store.contextFor(undefined),
      SNICallback: store.sniCallback,
      ALPNProtocols: ["http/1.1"],
      handshakeTimeoutMs: settings.tls.handshake_timeout * 1000,
    }).then((r) => {
      if (r.kind === "error") {
        this.#deps.metrics.tlsHandshakeFailures.inc({ listener: name, reason: r.code === "XPX_ERR_TLS_HANDSHAKE_TIMEOUT" ? "timeout" : "handshake" });
        this.#log.info({ code: r.code, detail: r.detail, peer: `${peer.address}:${peer.port}` }, ERRORS[r.code].message);
        return;
      }
      const tlsSocket: TLSSocket = r.socket;
      const protocol = tlsSocket.getProtocol() ?? undefined;
      this.#deps.metrics.tlsHandshakes.inc({ listener: name, version: protocol ?? "unknown" });
      const tls: SessionTls = { servername: r.servername, alpn: r.alpn, protocol, preTlsFrom: undefined, preTlsTo: undefined };
      this.#serve(tlsSocket, { peer, local, acceptedAt, tls });
      tlsSocket.resume();
    });
  }

  /**
   * HTTP on the connection (the TLS socket for wss://: only that one may be
   * destroyed once it wraps the TCP socket). Until the upgrade, one bound
   * covers the request and any keep-alive wait: timeouts.stream_header.
   */
  #serve(socket: Socket, info: Omit<ConnInfo, "timer">): void {
    const timer = setTimeout(() => socket.destroy(), this.#deps.settings().timeouts.stream_header * 1000);
    timer.unref();
    socket.once("close", () => clearTimeout(timer));
    (socket as Tagged)[CONN] = { ...info, timer };
    this.#http.emit("connection", socket);
  }

  /** Listener options changed (reload): the ping sweep follows the new interval. */
  reconfigure(): void {
    clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
    this.#armPing();
  }

  // ---- plain HTTP ------------------------------------------------------------

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = pathOf(req.url);
    if (path !== this.#options.path) {
      sendText(res, 404, "Not found\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendText(res, 405, "Only GET, with a WebSocket upgrade\n", { Allow: "GET" });
      return;
    }
    // RFC 9110 §15.5.22: 426 names the protocol to upgrade to.
    sendText(res, 426, ENDPOINT_TEXT, { Upgrade: "websocket", Connection: "Upgrade" }, req.method === "HEAD");
  }

  // ---- the upgrade -------------------------------------------------------------

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const info = (socket as Tagged)[CONN];
    if (info === undefined) {
      socket.destroy();
      return;
    }
    const options = this.#options;
    const path = pathOf(req.url);
    if (path !== options.path) {
      this.#refuse(socket, 404, "websocket_path", "XPX_ERR_WS_HANDSHAKE", `path ${path}`);
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !originAllowed(origin, options.allowed_origins)) {
      this.#refuse(socket, 403, "websocket_origin", "XPX_ERR_WS_ORIGIN", origin);
      return;
    }
    const protocols = req.headers["sec-websocket-protocol"];
    if (!offersXmpp(protocols)) {
      this.#refuse(socket, 400, "websocket_subprotocol", "XPX_ERR_WS_SUBPROTOCOL", protocols ?? "(none)");
      return;
    }
    const client = clientAddress(req, info.peer, options);
    if (typeof client === "string") {
      this.#refuse(socket, 400, "websocket_forwarded_for", "XPX_ERR_WS_FORWARDED_FOR", client);
      return;
    }
    // A client named by X-Forwarded-For may be of the other address family
    // than this connection: the PROXY header sent upstream needs one family,
    // and the client's address is what it is for, so the destination becomes
    // the unspecified address of the client's family (the port stays).
    const local = client === info.peer || isIP(client.address) === isIP(info.local.address)
      ? info.local
      : { address: isIP(client.address) === 6 ? "::" : "0.0.0.0", port: info.local.port };
    const settings = this.#deps.settings();
    this.#wss.options.maxPayload = settings.framerLimits.maxStanzaSize;
    this.#wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      clearTimeout(info.timer);
      const id = sessionId();
      const peer = new WsPeer(ws, {
        listener: this.#deps.config().name,
        metrics: this.#deps.metrics,
        log: SessionLog.fixed(this.#deps.logger, id, client, this.#deps.config().name),
        limits: settings.framerLimits,
      });
      this.#peers.add(peer);
      ws.once("close", () => this.#peers.delete(peer));
      this.#armPing();
      this.#deps.startSession(peer, id, client, local, info.acceptedAt, info.tls);
    });
  }

  /** Refuse the handshake with an HTTP status: there is no WebSocket to close yet. */
  #refuse(socket: Duplex, status: number, reason: string, code: ErrorCode, detail: string): void {
    const info = (socket as Tagged)[CONN];
    const name = this.#deps.config().name;
    this.#deps.metrics.connectionsRefused.inc({ listener: name, reason });
    this.#log.info({ code, detail, status, peer: info ? `${info.peer.address}:${info.peer.port}` : undefined }, ERRORS[code].message);
    const body = `${ERRORS[code].message}\n`;
    if (socket.writable) {
      socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
    // The answer is one segment; a client that does not read does not hold the descriptor.
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  // ---- keepalive -----------------------------------------------------------------

  #armPing(): void {
    if (this.#pingTimer !== undefined || this.#peers.size === 0) return;
    const seconds = this.#options.ping_interval;
    if (seconds <= 0) return;
    this.#pingTimer = setTimeout(() => this.#sweep(), seconds * 1000);
    this.#pingTimer.unref();
  }

  #sweep(): void {
    this.#pingTimer = undefined;
    for (const peer of this.#peers) {
      if (!peer.alive) {
        peer.pingTimedOut();
        continue;
      }
      peer.alive = false;
      peer.ping();
    }
    this.#armPing();
  }
}

function pathOf(url: string | undefined): string {
  const u = url ?? "/";
  const q = u.indexOf("?");
  return q < 0 ? u : u.slice(0, q);
}

function sendText(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}, headOnly = false): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(body), ...headers });
  res.end(headOnly ? undefined : body);
}

/** Whether the Origin a browser sent is allowed (origins compare case-insensitively; "*" allows any). */
export function originAllowed(origin: string, allowed: readonly string[]): boolean {
  if (allowed.includes("*")) return true;
  return allowed.includes(origin.toLowerCase());
}

/** Whether Sec-WebSocket-Protocol offers the xmpp subprotocol. */
export function offersXmpp(header: string | undefined): boolean {
  if (header === undefined) return false;
  for (const p of header.split(",")) if (p.trim() === XMPP_SUBPROTOCOL) return true;
  return false;
}

/**
 * The client's address: the connection's peer, unless that peer is a
 * trusted proxy that sent X-Forwarded-For; then the nearest address in it
 * that is not itself a trusted proxy (read from the right, as each proxy
 * appends the address it saw). The port is unknown then (0). Returns a
 * description of the problem when the header holds something that is not
 * an address.
 */
export function clientAddress(req: IncomingMessage, peer: TransportAddress, options: WebSocketOptions): TransportAddress | string {
  if (!options.trusted_proxies.has(peer.address)) return peer;
  const raw = req.headers["x-forwarded-for"];
  if (raw === undefined) return peer;
  // Repeated header lines are one list, in order.
  const header = Array.isArray(raw) ? raw.join(",") : raw;
  const hops = header.split(",");
  for (let k = hops.length - 1; k >= 0; k--) {
    const address = forwardedAddress(hops[k]!.trim());
    if (address === null) return `X-Forwarded-For: ${header.slice(0, 200)}`;
    if (k > 0 && options.trusted_proxies.has(address)) continue;
    return { address, port: 0 };
  }
  return peer;
}

/** One X-Forwarded-For entry: an IP address, IPv6 possibly in brackets, either possibly with a port. */
function forwardedAddress(entry: string): string | null {
  let a = entry;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (bracketed !== null) a = bracketed[1]!;
  else if (/^[0-9.]+:\d+$/.test(a)) a = a.slice(0, a.indexOf(":"));
  return isIP(a) === 0 ? null : unmapIPv4(a);
}
