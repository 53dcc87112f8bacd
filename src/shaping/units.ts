// Parses limit values from config: Prosody mod_limits byte rates ("3kb/s") and
// bursts ("2s"), and xmpp-guard's per-kind stanza rates ({ rate: 10, burst: 20 }).
// Accepts every value Prosody 0.12/13 parses (and more), rejects garbage with a
// message for the config layer to prefix with its path. Never throws on input.
// Prosody's parser and its surprises: docs/shaping.md, "Where Prosody's parser is surprising, and what we do".
import type { StanzaKind } from "../xml/stanza-view.js";

/** A bucket's parameters: `rate` tokens per second, at most `capacity` tokens. */
export interface BucketSpec {
  readonly rate: number;
  readonly capacity: number;
}

/** A byte limit: `rate` bytes/s, `burst` seconds, capacity = rate × burst bytes. */
export interface ByteLimit extends BucketSpec {
  readonly burst: number;
}

/** Stanza kinds that can carry a rate; nonzas ("other", e.g. XEP-0198 acks) are never charged. */
export type RatedStanzaKind = Exclude<StanzaKind, "other">;
export type StanzaRates = Readonly<Partial<Record<RatedStanzaKind, BucketSpec>>>;

export interface ParseError {
  readonly ok: false;
  /** Human-readable, without the config path, e.g. `"fast" is not a rate: expected e.g. "3kb/s"`. */
  readonly message: string;
  /** Sub-path below the value that was passed in (e.g. "rate", "message.burst"), if any. */
  readonly at?: string;
}

export type ParseResult<T> =
  | {
      readonly ok: true;
      readonly value: T;
      /** Compatibility remarks worth logging, e.g. where Prosody reads the same text differently. */
      readonly notes: readonly string[];
    }
  | ParseError;

/** Prosody's burst default (seconds), used when `burst` is absent. */
export const DEFAULT_BURST_SECONDS = 2;

/** Prosody's built-in limits when `limits` does not mention the type (0.12 and 13). */
export const PROSODY_BUILTIN_LIMITS = {
  c2s: { rate: 10 * 1024, burst: 2 },
  s2sin: { rate: 30 * 1024, burst: 2 },
} as const;

/** What Prosody substitutes (with an error in its log) for a rate it cannot parse. */
const PROSODY_FALLBACK_RATE = 3000;

const RATE_EXAMPLE = `expected e.g. "3kb/s"`;
const BURST_EXAMPLE = `expected seconds, e.g. "2s", "0.5s" or 2`;
const NO_NOTES: readonly string[] = Object.freeze([]);

const DECIMAL = String.raw`(\d+(?:\.\d*)?|\.\d+)`;
const RATE_RE = new RegExp(String.raw`^${DECIMAL}\s*([^/]*?)\s*(?:/\s*([^/]*?)\s*)?$`);
const BURST_RE = new RegExp(String.raw`^${DECIMAL}\s*([a-z]*)$`, "i");
const COUNT_RE = new RegExp(String.raw`^${DECIMAL}\s*(?:/\s*(?:s|sec|second)\s*)?$`, "i");

/** Decimal exponents by the unit's first letter (ours: "b" is 10⁰). */
const UNIT_EXPONENTS: Readonly<Record<string, number>> = { b: 0, k: 3, m: 6, g: 9, t: 12 };
/** Unit spellings that mean what they say (decimal bytes): no note. */
const PLAIN_UNITS = new Set(["b", "byte", "bytes", "k", "kb", "m", "mb", "g", "gb", "t", "tb"]);
const PER_SECOND = new Set(["s", "sec", "second"]);
const SECOND_UNITS = new Set(["", "s", "sec", "secs", "second", "seconds"]);

/**
 * A byte rate in bytes per second. 0 means "no limit", as on Prosody's default
 * (epoll) backend, where setlimit(0) switches the limit off.
 *
 * Accepted: a number (bytes/s), or a string `<decimal> [unit] [/ s|sec|second]`
 * with any whitespace. The unit's first letter picks a decimal multiplier
 * (b 1, k 10³, m 10⁶, g 10⁹, t 10¹², any case), exactly like Prosody, so
 * "10KiB/s" is 10000 and "3kbit/s" is 3000 bytes/s; no unit means bytes.
 * Differences from Prosody (each reported as a note):
 * - "b" is 1 byte; Prosody's table maps it to 10¹, so "500b/s" is 5000 B/s there.
 * - Decimals, a missing unit, a missing "/s", "/sec" and extra spaces are read
 *   as written; Prosody logs an error and uses 3000 B/s for all of them.
 */
export function parseRate(input: unknown): ParseResult<number> {
  let value: number;
  const notes: string[] = [];
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) return fail(`${input} is not a rate: ${RATE_EXAMPLE} or a number of bytes per second >= 0`);
    value = input;
  } else if (typeof input === "string") {
    const text = input.trim();
    const m = RATE_RE.exec(text);
    if (m === null) return fail(`${quote(input)} is not a rate: ${RATE_EXAMPLE}`);
    const unit = m[2]!;
    const per = m[3];
    let exp = 0;
    if (unit !== "") {
      const e = UNIT_EXPONENTS[unit[0]!.toLowerCase()];
      if (e === undefined && per === undefined && SECOND_UNITS.has(unit.toLowerCase())) {
        return fail(`${quote(input)} is not a rate (it looks like a burst duration): ${RATE_EXAMPLE}`);
      }
      if (e === undefined) return fail(`${quote(input)} is not a rate: unknown unit ${quote(unit)}; ${RATE_EXAMPLE} (units b, kb, mb, gb, tb)`);
      exp = e;
      const mult = 10 ** e;
      const lower = unit.toLowerCase();
      if (/^[kmgt]i/.test(lower)) {
        notes.push(`${quote(input)}: unit ${quote(unit)} is read as decimal (×${mult}), as Prosody does, not ×${1024 ** ("kmgt".indexOf(lower[0]!) + 1)}`);
      } else if (lower.includes("bit") || lower.endsWith("bps")) {
        notes.push(`${quote(input)}: unit ${quote(unit)} is read as bytes, not bits, as Prosody does`);
      } else if (!PLAIN_UNITS.has(lower)) {
        notes.push(`${quote(input)}: only the first letter of unit ${quote(unit)} counts (×${mult}), as in Prosody`);
      }
    }
    if (per !== undefined && !PER_SECOND.has(per.toLowerCase())) {
      return fail(`${quote(input)} is not a rate: only per-second rates are supported; ${RATE_EXAMPLE}`);
    }
    value = Number(`${m[1]}e${exp}`); // exact decimal scaling: "1.1kb/s" is 1100, not 1100.0000000000002
    if (!Number.isFinite(value)) return fail(`${quote(input)} is not a rate: the number is too large`);
  } else {
    return fail(`${describe(input)} is not a rate: ${RATE_EXAMPLE}`);
  }
  if (typeof input === "string") {
    const prosody = prosodyRate(input);
    if (prosody === null) {
      notes.push(`Prosody cannot parse ${quote(input)} (it logs an error and uses ${PROSODY_FALLBACK_RATE} B/s); xmpp-guard reads ${value} B/s`);
    } else if (prosody !== value) {
      notes.push(`Prosody reads ${quote(input)} as ${prosody} B/s (its "b" unit is ×10); xmpp-guard uses ${value} B/s`);
    }
  }
  if (value === 0) notes.push(`${describe(input)}: a zero rate means no byte limit, as on Prosody's default backend`);
  return ok(value, notes);
}

/**
 * A burst in seconds (>= 0). Accepted: a number, or a string `<decimal> [unit]`
 * with unit s, sec(s), second(s), ms, or none (seconds). Prosody accepts only
 * a number or "<digits>s"/"<digits> s"; any other string (even "2" or "0.5s")
 * silently becomes 2 s there. We read it as written and add a note. Burst 0 is
 * pure pacing with no burst, which is what Prosody's epoll backend does anyway.
 */
export function parseBurst(input: unknown): ParseResult<number> {
  let value: number;
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) return fail(`${input} is not a burst: ${BURST_EXAMPLE} (>= 0)`);
    return ok(input, NO_NOTES);
  }
  if (typeof input !== "string") return fail(`${describe(input)} is not a burst: ${BURST_EXAMPLE}`);
  const m = BURST_RE.exec(input.trim());
  if (m === null) return fail(`${quote(input)} is not a burst: ${BURST_EXAMPLE}`);
  const unit = m[2]!.toLowerCase();
  if (unit === "ms") value = Number(`${m[1]}e-3`);
  else if (SECOND_UNITS.has(unit)) value = Number(m[1]);
  else return fail(`${quote(input)} is not a burst: unknown unit ${quote(m[2]!)}; ${BURST_EXAMPLE}`);
  if (!Number.isFinite(value)) return fail(`${quote(input)} is not a burst: the number is too large`);
  const prosody = /^\d+ ?s$/.test(input) ? Number(input.replace(/ ?s$/, "")) : DEFAULT_BURST_SECONDS;
  const notes = prosody === value ? NO_NOTES : [`Prosody silently reads burst ${quote(input)} as ${DEFAULT_BURST_SECONDS} s; xmpp-guard uses ${value} s`];
  return ok(value, notes);
}

/**
 * A mod_limits entry `{ rate, burst? }`. `rate` is required (Prosody logs an
 * error and guesses 3000 B/s without it); `burst` defaults to 2 s. The value is
 * null when the rate is 0 (no limit). Unknown keys are rejected.
 */
export function parseByteLimit(input: unknown): ParseResult<ByteLimit | null> {
  if (!isRecord(input)) return fail(`${describe(input)} is not a limit: expected { rate: "3kb/s", burst: "2s" }`);
  const unknown = unknownKey(input, ["rate", "burst"]);
  if (unknown !== undefined) return fail(`unknown key (expected "rate" and "burst")`, unknown);
  if (input.rate === undefined) return fail(`missing: ${RATE_EXAMPLE}`, "rate");
  const rate = parseRate(input.rate);
  if (!rate.ok) return { ...rate, at: "rate" };
  const burst = input.burst === undefined ? ok(DEFAULT_BURST_SECONDS, NO_NOTES) : parseBurst(input.burst);
  if (!burst.ok) return { ...burst, at: "burst" };
  const notes = [...rate.notes, ...burst.notes];
  if (rate.value === 0) return ok(null, notes);
  return ok({ rate: rate.value, burst: burst.value, capacity: rate.value * burst.value }, notes);
}

/**
 * A stanza rate `{ rate, burst? }`: `rate` stanzas per second (> 0; a number,
 * "10" or "10/s"); `burst` is the bucket capacity in stanzas (a count >= 1),
 * or, written with a time unit ("2s"), that many seconds of `rate`. Note the
 * asymmetry with byte limits, whose bare-number burst is seconds. Default
 * burst: one second of rate, at least 1.
 */
export function parseStanzaRate(input: unknown): ParseResult<BucketSpec> {
  if (!isRecord(input)) return fail(`${describe(input)} is not a stanza rate: expected e.g. { rate: 10, burst: 20 }`);
  const unknown = unknownKey(input, ["rate", "burst"]);
  if (unknown !== undefined) return fail(`unknown key (expected "rate" and "burst")`, unknown);
  const rate = parseCount(input.rate, "a stanza rate", "stanzas per second, e.g. 10 or \"10/s\"");
  if (!rate.ok) return { ...rate, at: "rate" };
  if (rate.value === 0) return fail(`must be greater than 0 (leave the kind out to keep it unlimited)`, "rate");
  let capacity: number;
  if (input.burst === undefined) {
    capacity = Math.max(1, rate.value);
  } else if (typeof input.burst === "string" && /[a-z]\s*$/i.test(input.burst)) {
    const seconds = parseBurst(input.burst);
    if (!seconds.ok) return { ...seconds, at: "burst" };
    capacity = rate.value * seconds.value;
  } else {
    const count = parseCount(input.burst, "a stanza burst", "a number of stanzas, e.g. 20, or seconds, e.g. \"2s\"");
    if (!count.ok) return { ...count, at: "burst" };
    capacity = count.value;
  }
  if (capacity < 1) return fail(`${describe(input.burst)} allows less than one stanza: the burst must be at least 1`, "burst");
  return ok({ rate: rate.value, capacity }, NO_NOTES);
}

/** `{ message?, presence?, iq? }`, each a stanza rate. */
export function parseStanzaRates(input: unknown): ParseResult<StanzaRates> {
  if (!isRecord(input)) return fail(`${describe(input)} is not a map of stanza rates: expected e.g. { message: { rate: 10, burst: 20 } }`);
  const out: Partial<Record<RatedStanzaKind, BucketSpec>> = {};
  for (const key of Object.keys(input)) {
    if (key !== "message" && key !== "presence" && key !== "iq") {
      return fail(`unknown stanza kind (expected "message", "presence" or "iq")`, key);
    }
    const r = parseStanzaRate(input[key]);
    if (!r.ok) return { ...r, at: r.at === undefined ? key : `${key}.${r.at}` };
    out[key] = r.value;
  }
  return ok(out, NO_NOTES);
}

/**
 * What Prosody 0.12/13 mod_limits makes of a rate string, for the notes above:
 * `^(%d+) ?([^/]+)/s$`, first unit letter b/k/m/g/t → 10^(1,3,6,9,12), else
 * null (Prosody then logs an error and uses 3000 B/s).
 */
function prosodyRate(input: string): number | null {
  const m = /^(\d+) ?([^/]+)\/s$/.exec(input);
  const exp = m === null ? undefined : PROSODY_EXPONENTS[m[2]![0]!.toLowerCase()];
  return m === null || exp === undefined ? null : Number(m[1]) * 10 ** exp;
}

const PROSODY_EXPONENTS: Readonly<Record<string, number>> = { b: 1, k: 3, m: 6, g: 9, t: 12 };

function parseCount(input: unknown, what: string, expected: string): ParseResult<number> {
  if (input === undefined) return fail(`missing: expected ${expected}`);
  let value: number;
  if (typeof input === "number") {
    value = input;
  } else if (typeof input === "string") {
    const m = COUNT_RE.exec(input.trim());
    if (m === null) return fail(`${quote(input)} is not ${what}: expected ${expected}`);
    value = Number(m[1]);
  } else {
    return fail(`${describe(input)} is not ${what}: expected ${expected}`);
  }
  if (!Number.isFinite(value) || value < 0) return fail(`${describe(input)} is not ${what}: expected ${expected}`);
  return ok(value, NO_NOTES);
}

function ok<T>(value: T, notes: readonly string[]): ParseResult<T> {
  return { ok: true, value, notes: notes.length === 0 ? NO_NOTES : notes };
}

function fail(message: string, at?: string): ParseError {
  return at === undefined ? { ok: false, message } : { ok: false, message, at };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function unknownKey(obj: Record<string, unknown>, allowed: readonly string[]): string | undefined {
  return Object.keys(obj).find((k) => !allowed.includes(k));
}

function quote(s: string): string {
  return JSON.stringify(s);
}

function describe(x: unknown): string {
  if (typeof x === "string") return quote(x);
  if (typeof x === "number" || typeof x === "boolean" || typeof x === "bigint") return String(x);
  if (x === null) return "null";
  if (x === undefined) return "nothing";
  if (Array.isArray(x)) return "a list";
  return `a ${typeof x}`;
}
