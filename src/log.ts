// The root pino logger and per-session children. One JSON line per event.
// Message bodies never appear at info and above: stanza dumps are trace-only
// and go through the redaction paths below.

import { writeSync } from "node:fs";
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from "pino";

export type { Logger };

/**
 * `format: "pretty"` turns each line into prettyLine()'s form on stdout
 * (log.format, `run --pretty`); a given destination gets JSON either way.
 */
export function createLogger(level: LevelWithSilent, destination?: DestinationStream, format: "json" | "pretty" = "json"): Logger {
  if (destination === undefined && format === "pretty") destination = prettyDestination(1, process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined);
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

// ---------------------------------------------------------------------------
// log.format: pretty. One line per event for a person at a terminal:
//   12:00:01.234 INFO  session bound sid=ab3kx7p listener=c2s jid=alice@example.org/phone
// The time is local, the level padded (and coloured on a terminal), then the
// message, then every other field as key=value (JSON where it needs quoting).
// pid and name are left out: one process writes the terminal.

const LEVEL_COLOURS: Readonly<Record<string, string>> = { trace: "90", debug: "36", info: "32", warn: "33", error: "31", fatal: "35" };
const QUIET_KEYS = new Set(["level", "time", "pid", "name", "msg", "hostname"]);

function pad2(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

function fieldValue(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/** One pino JSON line in the pretty form (a line that is not JSON comes back as it is). */
export function prettyLine(json: string, colour = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.replace(/\n$/, "");
  }
  const t = typeof o["time"] === "string" || typeof o["time"] === "number" ? new Date(o["time"] as string) : new Date();
  const time = `${pad2(t.getHours())}:${pad2(t.getMinutes())}:${pad2(t.getSeconds())}.${pad2(t.getMilliseconds(), 3)}`;
  const level = String(o["level"] ?? "info");
  const label = level.toUpperCase().padEnd(5);
  const fields = Object.keys(o).filter((k) => !QUIET_KEYS.has(k) && o[k] !== undefined).map((k) => `${k}=${fieldValue(o[k])}`);
  const msg = typeof o["msg"] === "string" ? o["msg"] : "";
  const head = colour ? `\x1b[2m${time}\x1b[0m \x1b[${LEVEL_COLOURS[level] ?? "0"}m${label}\x1b[0m` : `${time} ${label}`;
  return [head, msg, ...fields].filter((p) => p !== "").join(" ");
}

/** A pino destination writing pretty lines to `fd`, synchronously (a terminal: volume is small). */
export function prettyDestination(fd: number, colour: boolean): DestinationStream {
  return {
    write(line: string): void {
      try {
        writeSync(fd, prettyLine(line, colour) + "\n");
      } catch {
        // stdout gone (a closed pipe): nothing to do
      }
    },
  };
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

/** What a session's lines are bound to: read from the session, which holds them anyway. */
export interface LogBindings {
  readonly id: string;
  readonly ip: string;
  readonly port: number;
  readonly listener: string;
  /** Set once learned; later lines carry them. */
  readonly logDomain: string | undefined;
  readonly logJid: string | undefined;
}

/**
 * A session's logger: the same lines a pino child with bindings
 * `{sid, peer, listener[, domain][, jid]}` writes, without a child per
 * session. A pino child costs a few hundred bytes of heap (its own level
 * methods, formatters and a serialised bindings string) and the session
 * made up to three of them (opened, domain learned, JID learned); this
 * holds two fields and builds the bindings only for a line that is
 * actually written, from the session's own fields (LogBindings), so it
 * holds no copy of them. The bindings go first in the merge object, so the
 * output has the same keys in the same order as the child's.
 */
export class SessionLog {
  readonly #root: Logger;
  readonly #of: LogBindings;

  constructor(root: Logger, of: LogBindings) {
    this.#root = root;
    this.#of = of;
  }

  /** A log whose bindings never change (no domain or JID): a connection before its session. */
  static fixed(root: Logger, id: string, peer: { readonly address: string; readonly port: number }, listener: string): SessionLog {
    return new SessionLog(root, { id, ip: peer.address, port: peer.port, listener, logDomain: undefined, logJid: undefined });
  }

  trace(obj: object | string, msg?: string): void {
    SessionLog.#write(this, "trace", obj, msg);
  }

  debug(obj: object | string, msg?: string): void {
    SessionLog.#write(this, "debug", obj, msg);
  }

  info(obj: object | string, msg?: string): void {
    SessionLog.#write(this, "info", obj, msg);
  }

  warn(obj: object | string, msg?: string): void {
    SessionLog.#write(this, "warn", obj, msg);
  }

  error(obj: object | string, msg?: string): void {
    SessionLog.#write(this, "error", obj, msg);
  }

  fatal(obj: object | string, msg?: string): void {
    SessionLog.#write(this, "fatal", obj, msg);
  }

  // Private helpers are static, the instance passed in: a private instance method
  // would give every instance one more slot (8 bytes per object).
  static #write(self: SessionLog, level: Level, obj: object | string, msg: string | undefined): void {
    const root = self.#root;
    if (!root.isLevelEnabled(level)) return;
    const of = self.#of;
    const line: Record<string, unknown> = { sid: of.id, peer: `${of.ip}:${of.port}`, listener: of.listener };
    const domain = of.logDomain;
    if (domain !== undefined) line.domain = domain;
    const jid = of.logJid;
    if (jid !== undefined) line.jid = jid;
    if (typeof obj === "string") {
      root[level](line, obj);
      return;
    }
    for (const key of Object.keys(obj)) line[key] = (obj as Record<string, unknown>)[key];
    if (msg === undefined) root[level](line);
    else root[level](line, msg);
  }
}
