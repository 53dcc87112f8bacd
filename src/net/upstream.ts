// The upstream dialler: a session's one connection to the XMPP server. It
// dials (plain TCP, or TLS with tls.upstream_tls), writes the outgoing PROXY
// header first when there is one, bounds the connect and the server's
// answering stream header with timeouts.connect, keeps why its reads are
// paused, and reports what happens through its hooks. It is also the write
// batch of the frames bound for the server (one object per session, not two),
// written out by send(). It knows nothing of streams or policy: the session
// subclasses it and supplies the hooks.

import { Buffer } from "node:buffer"; // not the global accessor: docs/performance.md, "Globals that are accessors"
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { ProxyProtocolMode } from "../config/schema.js";
import { listen, unlisten, type Listeners } from "../util/listeners.js";
import { encodeProxyV1, encodeProxyV2, type TransportAddress } from "./proxy-protocol.js";
import { WriteBatch } from "./write-batch.js";

export interface DialOptions {
  readonly host: string;
  readonly port: number;
  /** tls.upstream_tls: encrypts a hop the operator controls; it does not authenticate it (docs/tls.md). */
  readonly tls: boolean;
  /** SNI for the TLS dial (a domain, never an IP literal). */
  readonly servername?: string | undefined;
  /** timeouts.connect: the connect and the server's stream header, together. */
  readonly timeoutMs: number;
  /** Written before anything else (PROXY v1/v2), or null. */
  readonly proxyHeader: Buffer | null;
}

/** The PROXY header `mode` (proxy_protocol) sends first for a peer at `src` that connected to `dst`; null when off. */
export function proxyHeader(mode: ProxyProtocolMode, src: TransportAddress, dst: TransportAddress): Buffer | null {
  return mode === "off" ? null : mode === "v1" ? encodeProxyV1(src, dst) : encodeProxyV2(src, dst);
}

/** How long a detached connection may take to close before it is destroyed. */
const DETACH_GRACE_MS = 5000;

/** The read buffer every plain TCP upstream connection of the process reads into (see #read). */
const sharedReadBuffer = Buffer.allocUnsafeSlow(64 * 1024);

/** An upstream socket carries its Upstream under this key (see the shared event handlers). */
const UPSTREAM = Symbol("upstream");
type TaggedSocket = Socket & { [UPSTREAM]: Upstream };

// #bits
const CONNECTED = 1;
const DONE = 2;
const ANSWERED = 4;

export abstract class Upstream extends WriteBatch {
  #socket: Socket | null = null;
  #timer: NodeJS.Timeout | undefined;
  #pause = 0;
  #bits = 0;

  // ---- what the dialler reports ------------------------------------------------

  /** True once the session is closing: a late connect is dropped, reads are not resumed. */
  protected abstract isClosing(): boolean;
  /** Connected (the PROXY header, if any, is written) after `seconds`. */
  protected abstract opened(seconds: number): void;
  /** timeouts.connect passed: not connected, or connected and the server said nothing. */
  protected abstract timedOut(connected: boolean): void;
  protected abstract data(chunk: Buffer): void;
  protected abstract drained(): void;
  /** The server ended its side. */
  protected abstract ended(): void;
  /** A socket error; before the connect, the close that follows reports the failure. */
  protected abstract errored(err: Error): void;
  /** The connection is closed (done is true); `connected` false: the dial failed. */
  protected abstract closed(): void;

  // ---- state --------------------------------------------------------------------

  /** A dial was started. */
  get dialled(): boolean {
    return this.#socket !== null;
  }

  get connected(): boolean {
    return (this.#bits & CONNECTED) !== 0;
  }

  /** The connection is gone (closed, never dialled and torn down, or detached). */
  get done(): boolean {
    return (this.#bits & DONE) !== 0;
  }

  // ---- dialling -----------------------------------------------------------------

  dial(options: DialOptions): void {
    const { host, port, servername } = options;
    // A plain TCP upstream reads into the process's one read buffer (no
    // allocation and no stream machinery per read; see #read). TLS sockets
    // have no such option: they deliver 'data' events.
    const socket: Socket = options.tls
      ? tlsConnect({ host, port, ...(servername ? { servername } : {}), rejectUnauthorized: false })
      : connect({ host, port, onread: { buffer: sharedReadBuffer, callback: Upstream.#read } });
    this.#socket = socket;
    socket.setNoDelay(true);
    const started = performance.now();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if ((this.#bits & ANSWERED) !== 0 || this.isClosing()) return;
      this.timedOut(this.connected);
      socket.destroy();
    }, options.timeoutMs);
    socket.once(options.tls ? "secureConnect" : "connect", () => {
      if (this.isClosing()) {
        socket.destroy();
        return;
      }
      this.#bits |= CONNECTED;
      if (options.proxyHeader !== null) socket.write(options.proxyHeader);
      this.opened((performance.now() - started) / 1000);
      if (this.#pause !== 0) socket.pause();
    });
    (socket as TaggedSocket)[UPSTREAM] = this;
    listen(socket, Upstream.#listeners);
  }

  /** The server's stream header arrived: timeouts.connect is over. */
  answered(): void {
    this.#bits |= ANSWERED;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  // ---- traffic --------------------------------------------------------------------

  /** Write what the batch holds; false when the socket is full. Nothing before the connect. */
  send(): boolean {
    if (!this.connected || this.empty) return true;
    return this.flush(this.#socket!);
  }

  pause(reason: number): void {
    if (this.#pause === 0) this.#socket?.pause();
    this.#pause |= reason;
  }

  resume(reason: number): void {
    this.#pause &= ~reason;
    if (this.#pause === 0 && !this.isClosing()) this.#socket?.resume();
  }

  // ---- endings ----------------------------------------------------------------------

  /** Half-close: `last` (the stream close) goes out first if given; a dial still under way is dropped. */
  end(last?: string): void {
    const socket = this.#socket;
    if (socket === null || this.done) return;
    if (!this.connected) socket.destroy();
    else if (last !== undefined) socket.end(last);
    else socket.end();
  }

  /** Closing: the connect timeout no longer applies, and a paused socket may read its close. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Let a paused socket drain its close. */
  release(): void {
    this.#socket?.resume();
  }

  destroy(): void {
    this.stop();
    if (this.#socket !== null) this.#socket.destroy();
    else this.#bits |= DONE;
  }

  /**
   * Stop reporting and let the connection go: closed with `last` when
   * connected, destroyed after a grace period either way.
   */
  detach(last: string): void {
    this.stop();
    this.#bits |= DONE;
    const socket = this.#socket;
    if (socket === null) return;
    unlisten(socket, Upstream.#listeners);
    socket.on("error", () => {});
    if (this.connected) socket.end(last);
    else socket.destroy();
    setTimeout(() => socket.destroy(), DETACH_GRACE_MS).unref();
  }

  // ---- shared event handlers ------------------------------------------------------
  // One function per event for every connection instead of a closure per
  // socket and event: EventEmitter calls a listener with the socket as
  // `this`, and UPSTREAM leads back.

  static readonly #listeners: Listeners = [
    ["data", Upstream.#data],
    ["drain", Upstream.#drain],
    ["end", Upstream.#end],
    ["error", Upstream.#error],
    ["close", Upstream.#close],
  ];

  static #data(this: Socket, chunk: Buffer): void {
    (this as TaggedSocket)[UPSTREAM].data(chunk);
  }

  /**
   * A read into the shared buffer (net.Socket `onread`, called with the socket
   * as `this`). The buffer is reused by the next read of any socket, and the
   * session keeps what it forwards (queued writes, a partial frame), so the
   * bytes are copied out once, into a buffer of their own, before anything
   * looks at them: one copy per read instead of Node's allocation of a 64 KiB
   * buffer and a stream push per read. docs/performance.md.
   */
  static #read(this: Socket, nread: number, buf: Uint8Array): boolean {
    const chunk = Buffer.allocUnsafe(nread);
    (buf as Buffer).copy(chunk, 0, 0, nread);
    (this as TaggedSocket)[UPSTREAM].data(chunk);
    return true; // pausing stays with pause()/resume(), as for 'data'
  }

  static #drain(this: Socket): void {
    (this as TaggedSocket)[UPSTREAM].drained();
  }

  static #end(this: Socket): void {
    (this as TaggedSocket)[UPSTREAM].ended();
  }

  static #error(this: Socket, err: Error): void {
    (this as TaggedSocket)[UPSTREAM].errored(err);
  }

  static #close(this: Socket): void {
    const up = (this as TaggedSocket)[UPSTREAM];
    up.#bits |= DONE;
    up.closed();
  }
}
