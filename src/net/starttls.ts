// STARTTLS answered by the proxy itself (RFC 6120 §5), on a plaintext socket
// and before any upstream connection exists: read the peer's stream header,
// answer with our own header and a features element that offers only
// STARTTLS, answer <starttls/> with <proceed/>, and run the TLS handshake on
// the same socket without losing a byte the peer sent after <starttls/>.
// The restarted stream (RFC 6120 §5.4.3.3) is the session's business: this
// module returns the TLS socket before reading anything from it.
//
// Because our features hold nothing but STARTTLS, TLS is mandatory-to-negotiate
// whatever the mode (RFC 6120 §5.3.1: "If the receiving entity advertises only
// the STARTTLS feature [...] the parties MUST consider TLS as
// mandatory-to-negotiate"). "optional" here therefore only omits <required/>
// and lets a pre-1.0 stream (no features, hence no STARTTLS) pass in
// plaintext. The listeners use this module for `tls.starttls: required`
// only: `optional` relays the server's own features with STARTTLS added, the
// session frames the peer's bytes with frameUntilStartTls() below while the
// offer stands, and hands a peer that takes it back for proceed().

import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { StreamErrorCondition } from "../errors.js";
import { FRAME_CLOSE, FRAME_HEADER, FRAME_STANZA, Framer, type FrameKind, type FramerLimits, type StreamFramer } from "../xml/framer.js";
import { readHead, type Head } from "../xml/head.js";
import { streamError, streamHeader } from "../xml/stream-error.js";
import type { CertificateStore } from "./certificates.js";
import { closeSocket, serverHandshake, tlsErrorEntry, type TlsErrorCode } from "./direct-tls.js";
import { checkStreamHeader, headerElementStart } from "../xml/stream-header.js";
import { NS_TLS, startTlsFeatures } from "../xml/stream-features.js";

/** RFC 6120 §5.4.2.3: the proceed case. */
export const STARTTLS_PROCEED = `<proceed xmlns='${NS_TLS}'/>`;
/** RFC 6120 §5.4.2.2: the failure case; the stream is closed right after it. */
export const STARTTLS_FAILURE = `<failure xmlns='${NS_TLS}'/>`;

/**
 * tls.starttls: optional, while STARTTLS is on offer: write `data` to the
 * peer's framer up to each '>' (a byte never inside a UTF-8 sequence), so
 * that <starttls/> is framed before the TLS bytes a peer may send right
 * behind it, which are not XML. `done()` is asked after each piece (the
 * peer took the offer, or the session closed); returns where the rest of
 * `data` begins when it said yes, else -1.
 */
export function frameUntilStartTls(framer: StreamFramer, data: Buffer, done: () => boolean): number {
  let from = 0;
  while (from < data.length) {
    const gt = data.indexOf(0x3e, from);
    const to = gt < 0 ? data.length : gt + 1;
    framer.write(data.subarray(from, to));
    from = to;
    if (done()) return from;
  }
  return -1;
}

export interface StartTlsOptions {
  contentNs: "jabber:client" | "jabber:server";
  mode: "required" | "optional";
  store: CertificateStore;
  limits: FramerLimits;
  /** Our `from` when the peer's header has no `to`; also picks the certificate then. */
  domain?: string;
  /** Bounds the TLS handshake, counted from <proceed/>. */
  handshakeTimeoutMs: number;
  /** Bounds the wait for the stream header, then again the wait for <starttls/>. */
  headerTimeoutMs: number;
  /** Bytes already read from the socket (e.g. after a PROXY header). */
  initial?: Buffer;
  /** s2s: ask the peer for its certificate (see docs/tls.md). */
  requestCert?: boolean;
}

export type StartTlsResult =
  /**
   * Handshake done. `socket` has not been read from: the peer's restarted
   * stream header is the first thing it will deliver. `streamTo`/`streamFrom`
   * come from the pre-TLS header and are hints only (RFC 6120 §5.4.3.3: the
   * parties discard what they learned before TLS).
   */
  | { kind: "tls"; socket: TLSSocket; servername: string | undefined; streamTo: string | undefined; streamFrom: string | undefined }
  /**
   * mode "optional" and a pre-1.0 stream header (no version attribute): we
   * wrote nothing. `initial` is every byte received, header included; relay
   * it as a plaintext session would. The socket is paused: resume() it once
   * your 'data' listener is attached.
   */
  | { kind: "plain"; initial: Buffer }
  /** Refused; the stream error (if `condition`) is written and the socket is closing. */
  | { kind: "error"; code: TlsErrorCode; condition: StreamErrorCondition | null; detail: string }
  /** The peer went away (or closed its stream) before TLS; nothing to report. */
  | { kind: "closed"; detail: string };

const GT = 0x3e;
const STAGE_HEADER = 0;
const STAGE_COMMAND = 1;
const STAGE_DONE = 2;

/** Local name and namespace of a stanza's root element. */
function qualify(head: Head, defaultNs: string): { local: string; ns: string | undefined } {
  const colon = head.name.indexOf(":");
  if (colon < 0) return { local: head.name, ns: head.attrs.get("xmlns") ?? defaultNs };
  return { local: head.name.slice(colon + 1), ns: head.attrs.get(`xmlns:${head.name.slice(0, colon)}`) };
}

export function negotiateStartTls(socket: Socket, options: StartTlsOptions): Promise<StartTlsResult> {
  return new Promise((resolve) => {
    const { contentNs, store } = options;
    let stage = STAGE_HEADER;
    let headerSent = false;
    let streamTo: string | undefined;
    let streamFrom: string | undefined;
    // Kept until the header is handled, for the "plain" result.
    let received: Buffer[] = [];
    // Bytes fed to the framer and bytes it returned as frames; the difference
    // is what it holds. Frames concatenate to the input (framer.ts guarantee).
    let fed = 0;
    let framed = 0;
    let chunk: Buffer = Buffer.alloc(0);
    let sliceEnd = 0;
    let timer: NodeJS.Timeout | undefined;

    /** Stop listening; the socket is left paused for whoever takes it next. */
    const detach = (): boolean => {
      if (stage === STAGE_DONE) return false;
      stage = STAGE_DONE;
      framer.stop();
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onError);
      socket.off("close", onClose);
      socket.pause();
      received = [];
      return true;
    };
    const settle = (result: StartTlsResult): void => {
      if (detach()) resolve(result);
    };

    const fail = (code: TlsErrorCode, detail: string): void => {
      if (!detach()) return;
      const entry = tlsErrorEntry(code);
      resolve({ kind: "error", code, condition: entry.condition, detail });
      // RFC 6120 §4.9.1.2: even an error is preceded by our stream header.
      const head = headerSent ? "" : streamHeader(contentNs, streamTo ?? options.domain);
      closeSocket(socket, entry.condition === null ? undefined : head + streamError(entry.condition, entry.message));
    };

    const arm = (code: TlsErrorCode): void => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(code, `waited ${options.headerTimeoutMs} ms`), options.headerTimeoutMs);
    };

    const onHeader = (data: Buffer, start: number, end: number): void => {
      const head = readHead(data, headerElementStart(data, start, end), end);
      const problem = checkStreamHeader(head, contentNs);
      streamTo = head?.attrs.get("to");
      streamFrom = head?.attrs.get("from");
      if (problem !== null) {
        fail(problem.code, problem.detail);
        return;
      }
      if (head!.attrs.get("version") === undefined) {
        // RFC 6120 §4.7.5: no version means 0.9, which has no stream features,
        // so STARTTLS cannot be offered at all.
        if (options.mode === "optional") {
          const initial = Buffer.concat(received);
          settle({ kind: "plain", initial });
        } else {
          fail("XPX_ERR_STREAM_VERSION", "no version attribute: STARTTLS needs an XMPP 1.0 stream");
        }
        return;
      }
      received = [];
      stage = STAGE_COMMAND;
      headerSent = true;
      socket.write(streamHeader(contentNs, streamTo ?? options.domain) + startTlsFeatures(options.mode));
      arm("XPX_ERR_STARTTLS_TIMEOUT");
    };

    const onStanza = (data: Buffer, start: number, end: number): void => {
      const head = readHead(data, start, end);
      const name = head ? qualify(head, contentNs) : { local: "", ns: undefined };
      if (name.local === "starttls" && name.ns === NS_TLS) {
        // What the framer was not shown (the rest of this chunk) plus what it
        // holds: the peer's first TLS bytes, often in the same segment.
        const rest = chunk.subarray(sliceEnd - (fed - framed));
        upgrade(rest);
        return;
      }
      // RFC 6120 §5.3.1 makes TLS mandatory-to-negotiate here (see header).
      // ejabberd and MongooseIM answer this case with <policy-violation/>.
      fail("XPX_ERR_TLS_REQUIRED", `<${head?.name ?? "?"}> sent before STARTTLS`);
    };

    const framer = new Framer({
      onFrame(kind: FrameKind, data: Buffer, start: number, end: number): void {
        framed += end - start;
        if (stage === STAGE_DONE) return;
        if (kind === FRAME_HEADER) onHeader(data, start, end);
        else if (kind === FRAME_STANZA) onStanza(data, start, end);
        else if (kind === FRAME_CLOSE) {
          // The peer gave up (</stream:stream>): close ours too (RFC 6120 §4.4).
          settle({ kind: "closed", detail: "peer closed its stream before STARTTLS" });
          closeSocket(socket, headerSent ? "</stream:stream>" : undefined);
        }
        // FRAME_WHITESPACE: keepalives are fine.
      },
      onError(error): void {
        if (stage !== STAGE_DONE) fail(error.code, error.message);
      },
    }, options.limits);

    const onData = (data: Buffer): void => {
      if (stage === STAGE_HEADER) received.push(data);
      chunk = data;
      // The framer validates UTF-8 per write, and TLS bytes right after
      // <starttls/> are not UTF-8: feed it up to each '>' (a '>' never occurs
      // inside a multi-byte sequence) so it frames <starttls/> before it can
      // see them; settling stops the loop there.
      let from = 0;
      while (from < data.length && stage !== STAGE_DONE) {
        const gt = data.indexOf(GT, from);
        const to = gt < 0 ? data.length : gt + 1;
        fed += to - from;
        sliceEnd = to;
        framer.write(data.subarray(from, to));
        from = to;
      }
    };
    const onEnd = (): void => {
      settle({ kind: "closed", detail: "peer closed the connection before STARTTLS" });
      closeSocket(socket, headerSent ? "</stream:stream>" : undefined);
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      socket.destroy();
      settle({ kind: "closed", detail: `socket error before STARTTLS: ${err.code ?? err.message}` });
    };
    const onClose = (): void => {
      settle({ kind: "closed", detail: "connection closed before STARTTLS" });
    };

    const upgrade = (rest: Buffer): void => {
      const pre = { streamTo, streamFrom };
      if (!detach()) return;
      void proceed(socket, rest, options, pre).then(resolve);
    };

    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", onError);
    socket.once("close", onClose);
    arm("XPX_ERR_STREAM_HEADER_TIMEOUT");
    if (options.initial && options.initial.length > 0) onData(options.initial);
    if (stage !== STAGE_DONE) socket.resume();
  });
}

/**
 * Send <proceed/> and run the handshake. RFC 6120 §5.4.2.3: TLS begins right
 * after the '>' of <proceed/>, so the peer's first TLS bytes may already be
 * in `rest`; they go back into the socket's read buffer, which the TLS layer
 * consumes before reading the network. We wrap only once <proceed/> has been
 * handed to the kernel: a write still queued in the stream would otherwise go
 * out after the TLS layer took over the connection.
 */
export function proceed(
  socket: Socket,
  rest: Buffer,
  options: StartTlsOptions,
  pre: { streamTo: string | undefined; streamFrom: string | undefined },
): Promise<StartTlsResult> {
  const { store } = options;
  const started = Date.now();
  if (rest.length > 0) socket.unshift(rest);
  return new Promise<Error | null>((resolve) => {
    const guard = setTimeout(() => resolve(new Error("<proceed/> not flushed")), options.handshakeTimeoutMs);
    socket.write(STARTTLS_PROCEED, (err) => {
      clearTimeout(guard);
      resolve(err ?? null);
    });
  }).then(async (writeError): Promise<StartTlsResult> => {
    if (writeError !== null) {
      socket.destroy();
      return { kind: "closed", detail: `could not send <proceed/>: ${writeError.message}` };
    }
    // No SNI: the pre-TLS stream `to` picks the certificate. An SNI name no
    // certificate covers gets that one too, rather than the first in the list.
    const fallback = store.contextFor(pre.streamTo ?? options.domain);
    const result = await serverHandshake(socket, {
      secureContext: fallback,
      SNICallback: (name, cb) => cb(null, store.match(name) ?? fallback),
      requestCert: options.requestCert ?? false,
      handshakeTimeoutMs: Math.max(1, options.handshakeTimeoutMs - (Date.now() - started)),
    });
    if (result.kind === "error") return result;
    return { kind: "tls", socket: result.socket, servername: result.servername, streamTo: pre.streamTo, streamFrom: pre.streamFrom };
  });
}
