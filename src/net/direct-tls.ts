// Server-side TLS on an accepted TCP socket: the handshake itself (shared with
// STARTTLS after <proceed/>) and direct-TLS listeners (XEP-0368: TLS from the
// first byte, ALPN "xmpp-client" / "xmpp-server"). It wraps the socket the
// listener already owns instead of using tls.createServer, because a PROXY
// header from a front balancer arrives before the ClientHello and must be read
// in plaintext first. It never reads application data: after the handshake
// the TLS socket is handed over paused, with nothing consumed.

import type { Socket } from "node:net";
import { TLSSocket, type SecureContext } from "node:tls";
import { ERRORS, type ErrorCode, type StreamErrorCondition } from "../errors.js";
import { streamError, streamHeader } from "../xml/stream-error.js";
import type { CertificateStore } from "./certificates.js";

/** The TLS codes of the catalogue (errors.ts), for callers that only handle these. */
export const TLS_ERRORS = {
  XPX_ERR_TLS_REQUIRED: ERRORS.XPX_ERR_TLS_REQUIRED,
  XPX_ERR_TLS_HANDSHAKE: ERRORS.XPX_ERR_TLS_HANDSHAKE,
  XPX_ERR_TLS_HANDSHAKE_TIMEOUT: ERRORS.XPX_ERR_TLS_HANDSHAKE_TIMEOUT,
  XPX_ERR_STARTTLS_TIMEOUT: ERRORS.XPX_ERR_STARTTLS_TIMEOUT,
  XPX_ERR_STARTTLS_TWICE: ERRORS.XPX_ERR_STARTTLS_TWICE,
} as const;

export type TlsErrorCode = ErrorCode;

export function tlsErrorEntry(code: TlsErrorCode): { message: string; condition: StreamErrorCondition | null } {
  return ERRORS[code];
}

/** XEP-0368 §3 ALPN protocol ids. */
export const XMPP_ALPN = { "c2s-tls": "xmpp-client", "s2s-tls": "xmpp-server" } as const;
export type DirectTlsType = keyof typeof XMPP_ALPN;

/** How long a closing socket may take to flush and see the peer's FIN. */
const CLOSE_GRACE_MS = 2000;
const TLS_HANDSHAKE_RECORD = 0x16;
const LT = 0x3c;

function ignore(): void {}

/**
 * After the handshake, a TLS-level failure (the peer's fatal alert, a bad
 * record, Node's renegotiation-attack check) reaches a socket made with
 * `new TLSSocket` only as the internal '_tlsError' event: Node turns it into
 * 'error' only on sockets a tls.Server has released. Left alone, a session
 * would sit on a dead TLS layer until TCP closes; destroying the socket with
 * the error ends it at once, through the session's error handler. (A plain
 * socket error also comes through here, on a socket already destroyed: a
 * no-op.) One function for every socket: EventEmitter passes the socket as
 * `this`.
 */
function destroyOnTlsError(this: TLSSocket, err: Error): void {
  this.destroy(err);
}

export type HandshakeResult =
  | { kind: "tls"; socket: TLSSocket; servername: string | undefined; alpn: string | undefined }
  | { kind: "error"; code: "XPX_ERR_TLS_HANDSHAKE" | "XPX_ERR_TLS_HANDSHAKE_TIMEOUT"; condition: null; detail: string };

export interface HandshakeOptions {
  /** Used when the client sends no SNI (or an unknown name, if SNICallback says so). */
  secureContext: SecureContext;
  SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
  /** Offered ALPN ids. A client that offers none is accepted; one offering only others gets a fatal alert. */
  ALPNProtocols?: string[];
  /** Ask the peer for a certificate (s2s), without requiring or verifying it. */
  requestCert?: boolean;
  handshakeTimeoutMs: number;
}

/**
 * Run the server side of a TLS handshake on `socket`. Bytes already read from
 * it must have been unshifted (or still be unread): the TLS layer consumes
 * the socket's buffered data first. On failure both sockets are destroyed and
 * nothing is written (a TLS peer cannot read a stream error).
 */
export function serverHandshake(socket: Socket, options: HandshakeOptions): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    socket.pause();
    // The raw socket's events are moot once wrapped; never let one go unhandled.
    socket.on("error", ignore);
    const tlsSocket = new TLSSocket(socket, {
      isServer: true,
      secureContext: options.secureContext,
      SNICallback: options.SNICallback,
      ...(options.ALPNProtocols ? { ALPNProtocols: options.ALPNProtocols } : {}),
      requestCert: options.requestCert ?? false,
      rejectUnauthorized: false,
    });
    let done = false;
    const finish = (result: HandshakeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      tlsSocket.off("secure", onSecure);
      tlsSocket.off("error", onError);
      tlsSocket.off("close", onClose);
      tlsSocket.off("end", onClose);
      // Only ever destroy the TLS socket: it closes the TCP socket under it.
      // Destroying the wrapped net.Socket directly frees the handle TLSWrap
      // still reads from, and the next TLS record (an alert, close_notify)
      // crashes the process in OpenSSL (SIGSEGV in ssl3_send_alert, Node 20).
      if (result.kind === "error") tlsSocket.destroy();
      resolve(result);
    };
    const onSecure = (): void => {
      tlsSocket.on("_tlsError", destroyOnTlsError);
      const alpn = tlsSocket.alpnProtocol;
      finish({ kind: "tls", socket: tlsSocket, servername: tlsSocket.servername || undefined, alpn: alpn ? alpn : undefined });
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      finish({ kind: "error", code: "XPX_ERR_TLS_HANDSHAKE", condition: null, detail: err.code ? `${err.code}: ${firstLine(err.message)}` : firstLine(err.message) });
    };
    const onClose = (): void => {
      finish({ kind: "error", code: "XPX_ERR_TLS_HANDSHAKE", condition: null, detail: "connection closed during the TLS handshake" });
    };
    const timer = setTimeout(() => {
      finish({ kind: "error", code: "XPX_ERR_TLS_HANDSHAKE_TIMEOUT", condition: null, detail: `no TLS handshake within ${options.handshakeTimeoutMs} ms` });
    }, options.handshakeTimeoutMs);
    tlsSocket.once("secure", onSecure);
    tlsSocket.on("error", onError);
    tlsSocket.once("close", onClose);
    // Listeners are allowHalfOpen: a peer that leaves mid-handshake gives
    // 'end' but no 'close' until we end our side too.
    tlsSocket.once("end", onClose);
    // Keeps a late error after the hand-over from crashing the process; the
    // session adds its own listener.
    tlsSocket.on("error", ignore);
  });
}

function firstLine(s: string): string {
  const nl = s.indexOf("\n");
  return nl < 0 ? s : s.slice(0, nl);
}

/** End a socket after writing `data`; destroy it if the peer does not finish closing. */
export function closeSocket(socket: Socket, data?: string): void {
  socket.on("error", ignore);
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
  if (socket.destroyed) return;
  if (data !== undefined && socket.writable) socket.end(data);
  else socket.end();
  // Read on so the peer's FIN arrives and the socket can close.
  socket.resume();
}

export type DirectTlsResult =
  | { kind: "tls"; socket: TLSSocket; servername: string | undefined; alpn: string | undefined }
  | { kind: "error"; code: TlsErrorCode; condition: StreamErrorCondition | null; detail: string }
  | { kind: "closed"; detail: string };

export interface DirectTlsOptions {
  type: DirectTlsType;
  store: CertificateStore;
  handshakeTimeoutMs: number;
  /** Bytes already read from the socket (after a PROXY header). */
  initial?: Buffer;
  /** s2s-tls: ask for the peer's certificate (see docs/tls.md). */
  requestCert?: boolean;
  /** Domain for the `from` of a plaintext refusal (see below). */
  domain?: string;
}

/** TLSSocket options for a direct-TLS listener: SNI via the store, XEP-0368 ALPN. */
export function directTlsOptions(store: CertificateStore, type: DirectTlsType): Pick<HandshakeOptions, "secureContext" | "SNICallback" | "ALPNProtocols"> {
  return { secureContext: store.contextFor(undefined), SNICallback: store.sniCallback, ALPNProtocols: [XMPP_ALPN[type]] };
}

/**
 * Accept a direct-TLS connection. The first byte decides: 0x16 (a TLS
 * handshake record) goes to the handshake; '<' is a plaintext XMPP client on
 * the wrong port and gets a readable stream error; anything else is closed.
 * The whole wait, first byte included, is bounded by handshakeTimeoutMs.
 */
export function acceptDirectTls(socket: Socket, options: DirectTlsOptions): Promise<DirectTlsResult> {
  const started = Date.now();
  return new Promise<Buffer | DirectTlsResult>((resolve) => {
    if (options.initial && options.initial.length > 0) {
      resolve(options.initial);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onError);
      socket.pause();
    };
    const onData = (chunk: Buffer): void => {
      cleanup();
      resolve(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      closeSocket(socket);
      resolve({ kind: "closed", detail: "peer closed before the TLS handshake" });
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      cleanup();
      socket.destroy();
      resolve({ kind: "closed", detail: `socket error before the TLS handshake: ${err.code ?? err.message}` });
    };
    timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      resolve({ kind: "error", code: "XPX_ERR_TLS_HANDSHAKE_TIMEOUT", condition: null, detail: "no ClientHello in time" });
    }, options.handshakeTimeoutMs);
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", onError);
    socket.resume();
  }).then((first): DirectTlsResult | Promise<DirectTlsResult> => {
    if (!Buffer.isBuffer(first)) return first;
    if (first[0] === TLS_HANDSHAKE_RECORD) {
      socket.unshift(first);
      const remaining = Math.max(1, options.handshakeTimeoutMs - (Date.now() - started));
      return serverHandshake(socket, {
        ...directTlsOptions(options.store, options.type),
        requestCert: options.requestCert ?? false,
        handshakeTimeoutMs: remaining,
      });
    }
    if (first[0] === LT) {
      // RFC 6120 §4.9.1.2: a stream error is preceded by our stream header.
      const entry = TLS_ERRORS.XPX_ERR_TLS_REQUIRED;
      const ns = options.type === "s2s-tls" ? "jabber:server" : "jabber:client";
      closeSocket(socket, streamHeader(ns, options.domain) + streamError(entry.condition, "this port expects TLS from the first byte (XEP-0368)"));
      return { kind: "error", code: "XPX_ERR_TLS_REQUIRED", condition: entry.condition, detail: "plaintext XMPP on a direct-TLS port" };
    }
    socket.destroy();
    return { kind: "error", code: "XPX_ERR_TLS_HANDSHAKE", condition: null, detail: `not a TLS ClientHello (first byte 0x${first[0]!.toString(16).padStart(2, "0")})` };
  });
}
