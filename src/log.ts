// The root pino logger and per-session children. One JSON line per event.
// Message bodies never appear at info and above: stanza dumps are trace-only
// and go through the redaction paths below.

import { pino, type Logger, type LevelWithSilent, type DestinationStream } from "pino";

export type { Logger };

export function createLogger(level: LevelWithSilent, destination?: DestinationStream): Logger {
  return pino(
    {
      name: "xmpp-guard",
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ["stanza.body", "password", "*.password"], censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

const ALPHABET = "abcdefghijkmnopqrstuvwxyz23456789";
let counter = Math.floor(Math.random() * 1e6);

/** Short, unique-enough session id for log correlation (not a secret). */
export function sessionId(): string {
  let n = (counter++ * 2654435761) >>> 0;
  let out = "";
  for (let i = 0; i < 7; i++) {
    out += ALPHABET[n % ALPHABET.length];
    n = Math.floor(n / ALPHABET.length);
  }
  return out;
}

type Level = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

/**
 * A session's logger: the same lines a pino child with bindings
 * `{sid, peer, listener[, domain][, jid]}` writes, without a child per
 * session. A pino child costs a few hundred bytes of heap (its own level
 * methods, formatters and a serialised bindings string) and the session
 * made up to three of them (opened, domain learned, JID learned); this
 * holds four pointers and builds the bindings only for a line that is
 * actually written. The bindings go first in the merge object, so the
 * output has the same keys in the same order as the child's.
 */
export class SessionLog {
  readonly #root: Logger;
  readonly #sid: string;
  readonly #peer: { readonly address: string; readonly port: number };
  readonly #listener: string;
  /** Set once learned; later lines carry them. */
  domain: string | undefined;
  jid: string | undefined;

  constructor(root: Logger, sid: string, peer: { readonly address: string; readonly port: number }, listener: string) {
    this.#root = root;
    this.#sid = sid;
    this.#peer = peer;
    this.#listener = listener;
  }

  trace(obj: object | string, msg?: string): void {
    this.#write("trace", obj, msg);
  }

  debug(obj: object | string, msg?: string): void {
    this.#write("debug", obj, msg);
  }

  info(obj: object | string, msg?: string): void {
    this.#write("info", obj, msg);
  }

  warn(obj: object | string, msg?: string): void {
    this.#write("warn", obj, msg);
  }

  error(obj: object | string, msg?: string): void {
    this.#write("error", obj, msg);
  }

  fatal(obj: object | string, msg?: string): void {
    this.#write("fatal", obj, msg);
  }

  #write(level: Level, obj: object | string, msg: string | undefined): void {
    const root = this.#root;
    if (!root.isLevelEnabled(level)) return;
    const line: Record<string, unknown> = { sid: this.#sid, peer: `${this.#peer.address}:${this.#peer.port}`, listener: this.#listener };
    if (this.domain !== undefined) line.domain = this.domain;
    if (this.jid !== undefined) line.jid = this.jid;
    if (typeof obj === "string") {
      root[level](line, obj);
      return;
    }
    for (const key of Object.keys(obj)) line[key] = (obj as Record<string, unknown>)[key];
    if (msg === undefined) root[level](line);
    else root[level](line, msg);
  }
}
