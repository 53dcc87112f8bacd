// The peer side of a session, as the session sees it: a TCP or TLS socket,
// or a peer that frames XMPP itself (WebSocket, ws-peer.ts); where the
// frames for it wait until the next flush; and how its events reach the
// session (one set of listener functions shared by every session).

import type { Writable } from "node:stream";
import { listen, unlisten, type Listeners } from "../util/listeners.js";
import type { FrameKind } from "../xml/framer.js";
import { WriteBatch } from "./write-batch.js";

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
export class SocketOutput extends WriteBatch implements PeerOutput {
  readonly #out: Writable;
  constructor(out: Writable) {
    super();
    this.#out = out;
  }
  send(): boolean {
    return this.flush(this.#out);
  }
}

/** What the owner of a peer connection (a session) does with its events. */
export interface PeerHandlers<T> {
  data(owner: T, chunk: Buffer): void;
  end(owner: T): void;
  error(owner: T, err: Error): void;
  close(owner: T): void;
  drain(owner: T): void;
  /**
   * A TLS peer finished one more handshake: OpenSSL reports a refused
   * renegotiation that way (listened to only on TLS peers).
   */
  secure(owner: T): void;
}

/** A peer connection carries its owner under this key (see PeerEvents). */
const OWNER = Symbol("owner");
type Owned<T> = PeerConnection & { [OWNER]: T };

/**
 * The listener functions for every peer of one kind of owner: one function
 * per event, made once, instead of a closure per connection and event.
 * EventEmitter calls a listener with the connection as `this`, and OWNER
 * leads back to the owner.
 */
export class PeerEvents<T> {
  readonly #listeners: Listeners;
  readonly #secure: (this: Owned<T>) => void;

  constructor(h: PeerHandlers<T>) {
    this.#listeners = [
      ["data", function (this: Owned<T>, chunk: Buffer) { h.data(this[OWNER], chunk); }],
      ["end", function (this: Owned<T>) { h.end(this[OWNER]); }],
      ["error", function (this: Owned<T>, err: Error) { h.error(this[OWNER], err); }],
      ["close", function (this: Owned<T>) { h.close(this[OWNER]); }],
      ["drain", function (this: Owned<T>) { h.drain(this[OWNER]); }],
    ];
    this.#secure = function (this: Owned<T>) { h.secure(this[OWNER]); };
  }

  /** Route `peer`'s events to `owner` (and its renegotiations, when `tls`). */
  attach(peer: PeerConnection, owner: T, tls: boolean): void {
    (peer as Owned<T>)[OWNER] = owner;
    listen(peer, this.#listeners);
    if (tls) peer.on("secure", this.#secure);
  }

  /** Stop routing a plaintext peer's events (the connection goes on elsewhere). */
  detach(peer: PeerConnection & { off(event: string, listener: () => void): unknown }): void {
    unlisten(peer, this.#listeners);
  }
}
