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
