// XEP-0114 external component connection, used to deliver registration
// watcher notifications (mod_watchregistrations; docs/registration.md, "Watcher notifications") as real XMPP
// messages through the server. A small, resilient client: connect to the
// server's component port, open a `jabber:component:accept` stream, answer
// with <handshake>SHA-1(stream id + secret)</handshake>, then send queued
// stanzas. On any failure it reconnects with capped exponential backoff; the
// queue of stanzas not yet written is bounded (the oldest are dropped and
// reported). Incoming stanzas are read with our own framer and handed to the
// watchers (the remote block lists read pubsub answers and events that way);
// stream errors end the connection and are logged.
import { connect, type Socket } from "node:net";
import { endpoint, type Endpoint } from "../util/address.js";
import { firstIssue, frozen, obj, required, str, transform, validate, type Spec } from "../util/validate.js";
import type { ParseResult } from "../shaping/units.js";
import { FRAME_CLOSE, FRAME_HEADER, FRAME_STANZA, Framer, type FrameKind } from "../xml/framer.js";
import { readHead } from "../xml/head.js";
import { escapeXml } from "../xml/stream-error.js";
import { componentHandshake } from "./watchers.js";

export interface ComponentOptions {
  /** The component's JID (a domain), e.g. guard.example.org. */
  readonly jid: string;
  readonly secret: string;
  /** The server's component port, `host:port`. */
  readonly upstream: Endpoint;
}

const KEYS = ["jid", "secret", "upstream"] as const;
const DOMAIN = /^[^\s@/"'<>&]+$/;

/** The `component:` section (null in the config: no component connection). Every problem is reported at its key. */
export const COMPONENT_SPEC: Spec<ComponentOptions> = frozen(
  obj(
    {
      jid: required(transform(str({ pattern: DOMAIN, hint: "a domain JID such as guard.example.org (no @, /, spaces or quotes)" }), (j) => j.toLowerCase())),
      secret: required(str({ hint: "a non-empty string (the server's component_secret)" })),
      upstream: required(endpoint()),
    },
    {
      unknown: (key) => `unknown option "${key}" (known: ${KEYS.join(", ")})`,
      notMapping: () => 'expected { jid: "guard.example.org", secret: "…", upstream: "127.0.0.1:5347" }',
    },
  ),
);

/** COMPONENT_SPEC's verdict as its first problem; absent or null means no component connection. */
export function parseComponentOptions(raw: unknown): ParseResult<ComponentOptions | null> {
  if (raw === undefined || raw === null) return { ok: true, value: null, notes: [] };
  return firstIssue(validate(COMPONENT_SPEC, raw));
}

export type ComponentState = "idle" | "connecting" | "handshaking" | "online" | "closed";

export interface ComponentEvents {
  /** The handshake succeeded. */
  onOnline?(): void;
  /** The connection failed or ended; `retryInMs` until the next attempt. */
  onOffline?(reason: string, retryInMs: number): void;
  /** A stanza was written to an authenticated stream. */
  onSent?(stanza: string): void;
  /** A queued stanza was dropped because the queue was full. */
  onDropped?(stanza: string): void;
}

/** A second party on the same connection (watch()): told when it comes online, and given every incoming stanza. */
export interface ComponentWatcher {
  onOnline?(): void;
  /** One incoming top-level stanza (data[start, end)), after the handshake. */
  onStanza?(data: Buffer, start: number, end: number): void;
}

export interface ComponentClientInit {
  readonly options: ComponentOptions;
  readonly events?: ComponentEvents;
  /** Most stanzas held while offline. Default 1000. */
  readonly maxQueue?: number;
  /** First retry delay; doubles up to maxBackoffMs. Defaults 250 ms / 30 s. */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Give up on an attempt (connect + handshake) after this long. Default 10 s. */
  readonly attemptTimeoutMs?: number;
}

/** The stream id from a stream header frame (`<?xml…?><stream:stream … id='…'>`). */
export function streamIdFromHeader(data: Buffer, start: number, end: number): string | null {
  let i = start;
  while (i < end) {
    const lt = data.indexOf(0x3c, i);
    if (lt < 0 || lt >= end) return null;
    const next = data[lt + 1];
    if (next !== 0x3f && next !== 0x21) {
      const head = readHead(data, lt, end);
      return head?.attrs.get("id") ?? null;
    }
    i = lt + 1;
  }
  return null;
}

export class ComponentClient {
  readonly #opts: ComponentOptions;
  readonly #events: ComponentEvents;
  readonly #maxQueue: number;
  readonly #minBackoff: number;
  readonly #maxBackoff: number;
  readonly #attemptTimeout: number;
  readonly #queue: string[] = [];
  #state: ComponentState = "idle";
  #socket: Socket | null = null;
  #backoff: number;
  #timer: NodeJS.Timeout | undefined;
  readonly #watchers = new Set<ComponentWatcher>();

  constructor(init: ComponentClientInit) {
    this.#opts = init.options;
    this.#events = init.events ?? {};
    this.#maxQueue = init.maxQueue ?? 1000;
    this.#minBackoff = init.minBackoffMs ?? 250;
    this.#maxBackoff = init.maxBackoffMs ?? 30_000;
    this.#attemptTimeout = init.attemptTimeoutMs ?? 10_000;
    this.#backoff = this.#minBackoff;
  }

  get state(): ComponentState {
    return this.#state;
  }

  get jid(): string {
    return this.#opts.jid;
  }

  /** Stanzas waiting for the connection. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Add a watcher; returns the function that removes it. */
  watch(watcher: ComponentWatcher): () => void {
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }

  start(): void {
    if (this.#state !== "idle") return;
    this.#connect();
  }

  /** Queue a stanza; written at once when online. Returns false when it displaced the oldest queued one. */
  send(stanza: string): boolean {
    if (this.#state === "closed") {
      this.#events.onDropped?.(stanza);
      return false;
    }
    let ok = true;
    if (this.#queue.length >= this.#maxQueue) {
      const dropped = this.#queue.shift()!;
      this.#events.onDropped?.(dropped);
      ok = false;
    }
    this.#queue.push(stanza);
    this.#flush();
    return ok;
  }

  /** Close the stream politely and stop reconnecting. Queued stanzas are dropped. */
  close(): Promise<void> {
    const wasOnline = this.#state === "online";
    this.#state = "closed";
    clearTimeout(this.#timer);
    const socket = this.#socket;
    this.#socket = null;
    for (const s of this.#queue.splice(0)) this.#events.onDropped?.(s);
    if (socket === null || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => socket.destroy(), 1000);
      socket.once("close", () => {
        clearTimeout(t);
        resolve();
      });
      if (wasOnline) socket.end("</stream:stream>");
      else socket.destroy();
    });
  }

  #connect(): void {
    if (this.#state === "closed") return;
    this.#state = "connecting";
    const { host, port } = this.#opts.upstream;
    const socket = connect({ host, port });
    this.#socket = socket;
    let failed = false;
    const fail = (reason: string): void => {
      if (failed || this.#socket !== socket) return;
      failed = true;
      clearTimeout(attemptTimer);
      socket.destroy();
      this.#socket = null;
      if (this.#state === "closed") return;
      const wasOnline = this.#state === "online";
      this.#state = "connecting";
      if (wasOnline) this.#backoff = this.#minBackoff;
      const delay = this.#backoff;
      this.#backoff = Math.min(this.#maxBackoff, this.#backoff * 2);
      this.#events.onOffline?.(reason, delay);
      this.#timer = setTimeout(() => this.#connect(), delay);
      this.#timer.unref();
    };
    const attemptTimer = setTimeout(() => fail("connect or handshake timed out"), this.#attemptTimeout);
    attemptTimer.unref();
    const framer = new Framer({
      onFrame: (kind: FrameKind, data: Buffer, start: number, end: number) => {
        if (kind === FRAME_HEADER) {
          const id = streamIdFromHeader(data, start, end);
          if (id === null) return fail("server stream header has no id");
          this.#state = "handshaking";
          socket.write(`<handshake>${componentHandshake(id, this.#opts.secret)}</handshake>`);
        } else if (kind === FRAME_STANZA) {
          const head = readHead(data, start, end);
          if (head === null) return;
          if (head.name === "handshake" && this.#state === "handshaking") {
            clearTimeout(attemptTimer);
            this.#state = "online";
            this.#backoff = this.#minBackoff;
            this.#events.onOnline?.();
            this.#flush();
            for (const w of [...this.#watchers]) w.onOnline?.();
          } else if (head.name === "stream:error") {
            fail(`stream error from server: ${data.toString("utf8", start, Math.min(end, start + 300))}`);
          }
          else if (this.#state === "online") {
            // Anything else (answers, pubsub events, errors bounced to our notifications) goes to the watchers.
            for (const w of [...this.#watchers]) w.onStanza?.(data, start, end);
          }
        } else if (kind === FRAME_CLOSE) {
          fail("server closed the stream");
        }
      },
      onError: (error) => fail(`unreadable stream from server: ${error.code}`),
    });
    socket.on("connect", () => {
      socket.write(
        `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${escapeXml(this.#opts.jid)}'>`,
      );
    });
    socket.on("data", (chunk: Buffer) => framer.write(chunk));
    socket.on("error", (err) => fail(err.message));
    socket.on("close", () => fail("connection closed"));
  }

  #flush(): void {
    const socket = this.#socket;
    if (this.#state !== "online" || socket === null) return;
    while (this.#queue.length > 0) {
      const s = this.#queue.shift()!;
      socket.write(s);
      this.#events.onSent?.(s);
    }
  }
}
