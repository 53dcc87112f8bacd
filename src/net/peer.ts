// The peer side of a session, as the session sees it: a TCP or TLS socket,
// or a peer that frames XMPP itself (WebSocket, ws-peer.ts), and where the
// frames for it wait until the next flush.

import type { Writable } from "node:stream";
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
