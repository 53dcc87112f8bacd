// The peer side of a session whose client speaks XMPP over WebSocket (RFC
// 7395). To the session it is one more peer connection: it emits the peer's
// stream as bytes ('data', 'end', 'close', 'drain') and takes frames to send,
// so framing, stream tracking, shaping and policy run exactly as on TCP.
// Underneath, each WebSocket message is one element (ws-framing.ts):
//
// - in: each text message is checked and translated, and its byte length is
//   remembered; the session reports every frame its framer finds, and a frame
//   that is not exactly one message (two elements in one, an element split
//   over two) ends the stream with <not-well-formed/>;
// - out: each frame the session sends becomes one text message;
// - the WebSocket layer's own faults (binary or oversized messages, bad UTF-8,
//   broken frames, a peer that stops answering pings) close the WebSocket with
//   their RFC 6455 code; nothing of such a message reaches the session;
// - a WebSocket that goes away while the client's stream is open (no
//   <close/> came, and the session did not end it) is a broken connection,
//   not a clean end: the session drops the upstream connection without
//   closing the stream, as when a TCP connection breaks, so the server may
//   keep the session for XEP-0198 resumption (RFC 7395 asks for that).

import { EventEmitter } from "node:events";
import { WebSocket, type RawData } from "ws";
import { ERRORS, type ErrorCode } from "../errors.js";
import type { SessionLog } from "../log.js";
import type { Metrics } from "../metrics/definitions.js";
import type { FrameKind, FramerLimits } from "../xml/framer.js";
import { InboundFraming, MSG_BAD, MSG_CLOSE, MSG_EMPTY, MSG_OPEN, OutboundFraming, outboundMessage } from "./ws-framing.js";
import type { FramedPeer, PeerOutput } from "./peer.js";

/** RFC 6455 §7.4.1 close codes this side sends. */
export const WS_NORMAL = 1000;
export const WS_PROTOCOL_ERROR = 1002;
export const WS_UNSUPPORTED_DATA = 1003;
export const WS_INVALID_PAYLOAD = 1007;
export const WS_TOO_BIG = 1009;

/** Send buffer above which the session is told to stop (as a full socket would). */
const HIGH_WATER = 64 * 1024;

const TEXT = { binary: false } as const;

/** What a refused message becomes: the code for logs and metrics, and the close code. */
function wsFault(err: Error & { code?: string }): { code: ErrorCode; close: number } | null {
  switch (err.code) {
    case "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH":
      return { code: "XPX_ERR_WS_MESSAGE_TOO_BIG", close: WS_TOO_BIG };
    case "WS_ERR_INVALID_UTF8":
      return { code: "XPX_ERR_WS_INVALID_UTF8", close: WS_INVALID_PAYLOAD };
    case undefined:
      return null;
    default:
      return err.code.startsWith("WS_ERR_") ? { code: "XPX_ERR_WS_PROTOCOL", close: WS_PROTOCOL_ERROR } : null;
  }
}

export interface WsPeerContext {
  readonly listener: string;
  readonly metrics: Metrics;
  /** The session's log (same sid and peer). */
  readonly log: SessionLog;
  readonly limits: FramerLimits;
}

export class WsPeer extends EventEmitter implements FramedPeer {
  readonly output: MessageBatch;
  /** Set by the ping sweep, cleared by any sign of life (a pong, a message). */
  alive = true;
  /** How a framing refusal reaches the session (it ends the stream with the stream error). */
  onViolation: (code: ErrorCode, detail: string) => void = () => {};

  readonly #ws: WebSocket;
  readonly #ctx: WsPeerContext;
  readonly #in: InboundFraming;
  /** Byte lengths of the messages handed to the session and not yet framed, oldest first. */
  #lengths: number[] = [];
  #lengthsHead = 0;
  /** True until an <open/>, and again after a stream restart. */
  #expectOpen = true;
  #paused = false;
  /** Messages that arrived while paused (the library may emit a few after pause()). */
  #held: Buffer[] | null = null;
  #drainScheduled = false;
  /**
   * Messages translated in this turn, handed to the session together: one
   * read often carries many messages, and one chunk for them lets the session
   * write them upstream in one write, as it does for a TCP read.
   */
  #batch: Buffer[] = [];
  #batchScheduled = false;
  #failed = false;
  #ended = false;
  /** The client sent <close/>. */
  #closeReceived = false;
  /** The session ended the connection (end()). */
  #endCalled = false;
  /** The ping sweep gave up on the client. */
  #lost = false;
  #needDrain = false;

  constructor(ws: WebSocket, ctx: WsPeerContext) {
    super();
    this.#ws = ws;
    this.#ctx = ctx;
    this.#in = new InboundFraming(ctx.limits);
    this.output = new MessageBatch(this);
    ws.on("message", (data: RawData, isBinary: boolean) => this.#onMessage(data as Buffer, isBinary));
    ws.on("pong", () => {
      this.alive = true;
    });
    ws.on("ping", () => {
      this.alive = true;
    });
    ws.on("error", (err: Error) => this.#onError(err));
    ws.on("close", () => this.#onClose());
  }

  // ---- what the session uses of a connection ----------------------------------

  get writable(): boolean {
    return !this.#failed && this.#ws.readyState === WebSocket.OPEN;
  }

  setNoDelay(): this {
    return this; // the library sets it on its socket
  }

  pause(): this {
    if (this.#paused) return this;
    this.#paused = true;
    this.#ws.pause();
    return this;
  }

  resume(): this {
    if (!this.#paused) return this;
    this.#paused = false;
    if (this.#held !== null && this.#held.length > 0) this.#scheduleDrain();
    else this.#ws.resume();
    return this;
  }

  /** Graceful close, after what was sent: a normal close (the XMPP stream said why, if anything). */
  end(): this {
    this.#endCalled = true;
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(WS_NORMAL);
    return this;
  }

  destroy(): this {
    this.#ws.terminate();
    return this;
  }

  // ---- FramedPeer --------------------------------------------------------------

  inboundFrame(_kind: FrameKind, length: number): boolean {
    const lengths = this.#lengths;
    if (this.#lengthsHead >= lengths.length) return false;
    const expected = lengths[this.#lengthsHead++]!;
    if (this.#lengthsHead === lengths.length) {
      lengths.length = 0;
      this.#lengthsHead = 0;
    }
    return expected === length;
  }

  restart(): void {
    this.#expectOpen = true;
  }

  /** Queue messages for the peer; false when the send buffer is full (the session pauses its upstream). */
  sendMessages(messages: ReadonlyArray<Buffer | string>): boolean {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN) return true;
    const last = messages.length - 1;
    for (let k = 0; k < last; k++) ws.send(messages[k]!, TEXT);
    ws.send(messages[last]!, TEXT, this.#sent);
    if (ws.bufferedAmount < HIGH_WATER) return true;
    this.#needDrain = true;
    return false;
  }

  /** The ping sweep found no sign of life since the last ping. */
  pingTimedOut(): void {
    if (this.#failed || this.#lost) return;
    this.#lost = true;
    this.#ctx.metrics.timeouts.inc({ listener: this.#ctx.listener, kind: "websocket_ping" });
    this.#ctx.log.info({ code: "XPX_ERR_WS_PING_TIMEOUT" }, ERRORS.XPX_ERR_WS_PING_TIMEOUT.message);
    this.#ws.terminate();
  }

  ping(): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.ping();
  }

  // ---- the WebSocket's events --------------------------------------------------

  readonly #sent = (): void => {
    if (this.#needDrain && this.#ws.bufferedAmount < HIGH_WATER) {
      this.#needDrain = false;
      this.emit("drain");
    }
  };

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#failed || this.#ended) return;
    this.alive = true;
    if (isBinary) {
      this.#fail("XPX_ERR_WS_BINARY", WS_UNSUPPORTED_DATA, `${data.length} bytes`);
      return;
    }
    if (this.#paused || (this.#held !== null && this.#held.length > 0)) {
      (this.#held ??= []).push(data);
      return;
    }
    this.#deliver(data);
  }

  #deliver(data: Buffer): void {
    const framing = this.#in;
    switch (framing.classify(data)) {
      case MSG_EMPTY:
        return;
      case MSG_BAD:
        this.#violation(framing.code, framing.detail);
        return;
      case MSG_OPEN:
        if (!this.#expectOpen) {
          this.#violation("XPX_ERR_WS_FRAMING", "<open/> inside an open stream");
          return;
        }
        this.#expectOpen = false;
        break;
      case MSG_CLOSE:
        this.#closeReceived = true;
        break;
    }
    const chunk = framing.start === 0 && framing.end === framing.bytes.length ? framing.bytes : framing.bytes.subarray(framing.start, framing.end);
    this.#lengths.push(chunk.length);
    this.#batch.push(chunk);
    if (!this.#batchScheduled) {
      this.#batchScheduled = true;
      queueMicrotask(this.#emitBatch);
    }
  }

  /** Hand the session what this turn translated (also at once, before anything that ends the stream). */
  readonly #emitBatch = (): void => {
    this.#batchScheduled = false;
    const batch = this.#batch;
    if (batch.length === 0 || this.#ended) return;
    const chunk = batch.length === 1 ? batch[0]! : Buffer.concat(batch);
    batch.length = 0;
    this.emit("data", chunk);
  };

  #scheduleDrain(): void {
    if (this.#drainScheduled) return;
    this.#drainScheduled = true;
    // Not from inside resume(): the session resumes from its own handlers.
    process.nextTick(() => {
      this.#drainScheduled = false;
      const held = this.#held;
      while (held !== null && held.length > 0 && !this.#paused && !this.#failed && !this.#ended) this.#deliver(held.shift()!);
      if (!this.#paused && !this.#failed) this.#ws.resume();
    });
  }

  /** A framing mistake at the XMPP level: the session ends the stream with the stream error. */
  #violation(code: ErrorCode, detail: string): void {
    this.#emitBatch(); // the messages before it were fine: the server gets them first
    this.#ctx.metrics.framingErrors.inc({ listener: this.#ctx.listener, direction: "in", code });
    this.onViolation(code, detail);
  }

  /** A fault of the WebSocket layer: close with its code; the session sees the peer go. */
  #fail(code: ErrorCode, close: number, detail: string): void {
    if (this.#failed) return;
    this.#emitBatch(); // what came before the fault was fine
    this.#failed = true;
    this.#held = null;
    this.#ctx.metrics.framingErrors.inc({ listener: this.#ctx.listener, direction: "in", code });
    this.#ctx.log.info({ code, detail, close }, ERRORS[code].message);
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(close, ERRORS[code].message.slice(0, 120));
    this.#end();
  }

  #onError(err: Error & { code?: string }): void {
    const fault = wsFault(err);
    if (fault === null) {
      this.#ctx.log.debug({ err: err.message, code: err.code }, "websocket error");
      return;
    }
    // The library has already sent its close frame (with the same code).
    if (this.#failed) return;
    this.#emitBatch();
    this.#failed = true;
    this.#held = null;
    this.#ctx.metrics.framingErrors.inc({ listener: this.#ctx.listener, direction: "in", code: fault.code });
    this.#ctx.log.info({ code: fault.code, detail: err.message, close: fault.close }, ERRORS[fault.code].message);
    this.#end();
  }

  #onClose(): void {
    if (!this.#ended && (this.#lost || (!this.#closeReceived && !this.#endCalled && !this.#failed))) {
      // Gone with the stream open: a broken connection (the session aborts), not an end.
      this.#emitBatch();
      this.#ended = true;
      this.emit("error", new Error(this.#lost ? "no pong" : "WebSocket closed with the stream open"));
    } else {
      this.#end();
    }
    this.emit("close");
  }

  #end(): void {
    if (this.#ended) return;
    this.#emitBatch();
    this.#ended = true;
    this.#batch.length = 0;
    this.emit("end");
  }
}

/**
 * Frames on their way to the peer, one message each, sent at the session's
 * next flush (the TCP side's WriteBatch, for a peer that frames).
 */
export class MessageBatch implements PeerOutput {
  readonly #peer: WsPeer;
  readonly #framing = new OutboundFraming();
  readonly #messages: Array<Buffer | string> = [];

  constructor(peer: WsPeer) {
    this.#peer = peer;
  }

  get empty(): boolean {
    return this.#messages.length === 0;
  }

  add(data: Buffer, start: number, end: number, kind: FrameKind): void {
    const message = outboundMessage(this.#framing, kind, data, start, end);
    if (message !== null) this.#messages.push(message);
  }

  send(): boolean {
    const messages = this.#messages;
    if (messages.length === 0) return true;
    // The library hands each message to the socket before send() returns.
    const ok = this.#peer.sendMessages(messages);
    messages.length = 0;
    return ok;
  }
}
