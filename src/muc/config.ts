// Options of the MUC flood limits (mod_muc_limits; docs/muc-limits.md, "Options")
// with Prosody's defaults, and a pure validator the config schema plugs in. The
// validator never throws and never clamps: where Prosody silently clamps a bad
// value (math.max) we refuse it, naming the key. Names drop Prosody's `muc_`
// prefix: `event_rate` is `muc_event_rate`, `limit_base_cost` is
// `muc_limit_base_cost`, and so on. See docs/muc-limits.md.
import type { ParseError, ParseResult } from "../shaping/units.js";
import { nameprep } from "../xmpp/stringprep.js";

/** Affiliations a room can give a bare JID (XEP-0045 §5.2); "none" is the absence of one. */
export const AFFILIATIONS = ["owner", "admin", "member", "outcast"] as const;
export type Affiliation = (typeof AFFILIATIONS)[number];

/** A second bucket per occupant (room + sender bare JID); beyond mod_muc_limits. */
export interface PerOccupantOptions {
  /** Refill in events per second (>= 0). */
  readonly event_rate: number;
  /** Capacity = event_rate × burst_factor (>= 1). */
  readonly burst_factor: number;
}

export interface MucLimitsOptions {
  /** MUC service domains the limits apply to, normalised (NFKC, lower case, no trailing dot). */
  readonly hosts: readonly string[];
  /** muc_event_rate: room bucket refill in events per second (>= 0). */
  readonly event_rate: number;
  /** muc_burst_factor: room bucket capacity = event_rate × burst_factor (>= 1). */
  readonly burst_factor: number;
  /** muc_max_nick_length: most bytes in the nick of a join or nick change. */
  readonly max_nick_length: number;
  /** muc_max_char_count: most bytes in a `<body>`. */
  readonly max_char_count: number;
  /** muc_max_line_count: most newline characters in a `<body>`. */
  readonly max_line_count: number;
  /** muc_limit_base_cost: tokens every charged stanza costs (>= 0). */
  readonly limit_base_cost: number;
  /** muc_line_count_multiplier: extra tokens per newline in the body (>= 0). */
  readonly line_count_multiplier: number;
  /**
   * Senders whose affiliation in the room is listed skip every check. Prosody
   * has no option: any affiliation exempts, which is the default here.
   */
  readonly exempt_affiliations: readonly Affiliation[];
  /**
   * Seconds after its last charged stanza in a room that a sender still
   * counts as active there, holding a share of the room's rate and burst
   * (the fair room limiter, docs/muc-limits.md). At most idle_seconds.
   */
  readonly active_seconds: number;
  /** Optional per-occupant bucket, charged before the room's; null = none. */
  readonly per_occupant: PerOccupantOptions | null;
  /**
   * Seconds after which an untouched room or occupant entry is forgotten. At
   * least every burst_factor, so a forgotten bucket has always refilled (a new
   * one starts full: forgetting it changes nothing).
   */
  readonly idle_seconds: number;
  /** Most rooms tracked at once; past it the least recently used is forgotten. */
  readonly max_tracked_rooms: number;
  /** Most occupant entries (buckets, learned affiliations) tracked at once, over all rooms. */
  readonly max_tracked_occupants: number;
}

/** Prosody's defaults (docs/muc-limits.md, "Options"), plus ours for the options it does not have. */
export const MUC_LIMITS_DEFAULTS: MucLimitsOptions = Object.freeze({
  hosts: Object.freeze([]) as readonly string[],
  event_rate: 0.5,
  burst_factor: 6,
  max_nick_length: 23,
  max_char_count: 5664,
  max_line_count: 23,
  limit_base_cost: 1,
  line_count_multiplier: 0.1,
  exempt_affiliations: Object.freeze([...AFFILIATIONS]),
  active_seconds: 60,
  per_occupant: null,
  idle_seconds: 3600,
  max_tracked_rooms: 10_000,
  max_tracked_occupants: 100_000,
});

const KEYS = Object.keys(MUC_LIMITS_DEFAULTS) as readonly (keyof MucLimitsOptions)[];
const PER_OCCUPANT_KEYS = ["event_rate", "burst_factor"] as const;
const NO_NOTES: readonly string[] = Object.freeze([]);

/** Prosody's option names, for "did you mean" messages on copied configs. */
const PROSODY_NAMES: Readonly<Record<string, string>> = {
  muc_event_rate: "event_rate",
  muc_burst_factor: "burst_factor",
  muc_max_nick_length: "max_nick_length",
  muc_max_char_count: "max_char_count",
  muc_max_line_count: "max_line_count",
  muc_limit_base_cost: "limit_base_cost",
  muc_line_count_multiplier: "line_count_multiplier",
};

/** A domain as Prosody's jid.prep leaves it: the trailing dot dropped, then nameprep (xmpp/stringprep.ts); as it is when nameprep fails. */
export function normaliseDomain(domain: string): string {
  const d = domain.length > 1 && domain.endsWith(".") ? domain.slice(0, -1) : domain;
  return nameprep(d) ?? d;
}

type Fail = ParseError;

function fail(message: string, at: string): Fail {
  return { ok: false, message, at };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function describe(x: unknown): string {
  if (typeof x === "string") return JSON.stringify(x);
  if (typeof x === "number" || typeof x === "boolean") return String(x);
  if (x === null) return "null";
  if (Array.isArray(x)) return "a list";
  return `a ${typeof x}`;
}

function number(raw: unknown, at: string, min: number, what: string): number | Fail {
  if (typeof raw !== "number" || !Number.isFinite(raw)) return fail(`${describe(raw)} is not a number (${what})`, at);
  if (raw < min) return fail(`${raw} is below ${min} (${what})`, at);
  return raw;
}

function integer(raw: unknown, at: string, what: string): number | Fail {
  if (typeof raw !== "number" || !Number.isSafeInteger(raw) || raw < 0) {
    return fail(`${describe(raw)} is not a whole number >= 0 (${what})`, at);
  }
  return raw;
}

function isFail(x: unknown): x is Fail {
  return isRecord(x) && x.ok === false;
}

function parseHosts(raw: unknown): readonly string[] | Fail {
  if (!Array.isArray(raw)) return fail(`${describe(raw)} is not a list of MUC service domains`, "hosts");
  const out = new Set<string>();
  for (let i = 0; i < raw.length; i++) {
    const h: unknown = raw[i];
    if (typeof h !== "string" || h === "" || /[\s@/]/.test(h)) {
      return fail(`${describe(h)} is not a domain (no whitespace, @ or /), e.g. "conference.example.org"`, `hosts.${i}`);
    }
    out.add(normaliseDomain(h));
  }
  return Object.freeze([...out]);
}

function parseAffiliations(raw: unknown): readonly Affiliation[] | Fail {
  if (!Array.isArray(raw)) return fail(`${describe(raw)} is not a list of affiliations (${AFFILIATIONS.join(", ")})`, "exempt_affiliations");
  const out = new Set<Affiliation>();
  for (let i = 0; i < raw.length; i++) {
    const a: unknown = raw[i];
    if (!(AFFILIATIONS as readonly unknown[]).includes(a)) {
      const hint = a === "none" ? ": unaffiliated senders are what the limits are for" : "";
      return fail(`${describe(a)} is not an affiliation (${AFFILIATIONS.join(", ")})${hint}`, `exempt_affiliations.${i}`);
    }
    out.add(a as Affiliation);
  }
  return Object.freeze([...out]);
}

function parsePerOccupant(raw: unknown): PerOccupantOptions | null | Fail {
  if (raw === null) return null;
  const example = "expected { event_rate: 0.2, burst_factor: 5 } or null";
  if (!isRecord(raw)) return fail(`${describe(raw)} is not a bucket: ${example}`, "per_occupant");
  for (const k of Object.keys(raw)) {
    if (!(PER_OCCUPANT_KEYS as readonly string[]).includes(k)) return fail(`unknown key (${example})`, `per_occupant.${k}`);
  }
  if (raw.event_rate === undefined) return fail(`missing: ${example}`, "per_occupant.event_rate");
  if (raw.burst_factor === undefined) return fail(`missing: ${example}`, "per_occupant.burst_factor");
  const rate = number(raw.event_rate, "per_occupant.event_rate", 0, "events per second");
  if (isFail(rate)) return rate;
  const burst = number(raw.burst_factor, "per_occupant.burst_factor", 1, "capacity is event_rate × burst_factor");
  if (isFail(burst)) return burst;
  return Object.freeze({ event_rate: rate, burst_factor: burst });
}

/**
 * Validate the `muc_limits` section: an object whose absent keys take
 * MUC_LIMITS_DEFAULTS. Unknown keys are refused (Prosody's `muc_*` names with
 * a hint). On failure `at` is the path below the section, e.g. "event_rate",
 * "per_occupant.burst_factor" or "hosts.2". The value is deep-frozen.
 */
export function parseMucLimits(raw: unknown): ParseResult<MucLimitsOptions> {
  if (!isRecord(raw)) {
    return { ok: false, message: `${describe(raw)} is not a section: expected { hosts: ["conference.example.org"], event_rate: 0.5, ... }` };
  }
  for (const k of Object.keys(raw)) {
    if ((KEYS as readonly string[]).includes(k)) continue;
    const renamed = PROSODY_NAMES[k];
    return fail(renamed !== undefined ? `Prosody's ${k} is spelled "${renamed}" here` : `unknown key (expected one of: ${KEYS.join(", ")})`, k);
  }
  const D = MUC_LIMITS_DEFAULTS;
  const pick = (k: keyof MucLimitsOptions): unknown => (raw[k] === undefined ? D[k] : raw[k]);

  const hosts = parseHosts(pick("hosts"));
  if (isFail(hosts)) return hosts;
  const eventRate = number(pick("event_rate"), "event_rate", 0, "room events per second");
  if (isFail(eventRate)) return eventRate;
  const burstFactor = number(pick("burst_factor"), "burst_factor", 1, "room capacity is event_rate × burst_factor");
  if (isFail(burstFactor)) return burstFactor;
  const maxNick = integer(pick("max_nick_length"), "max_nick_length", "bytes");
  if (isFail(maxNick)) return maxNick;
  const maxChars = integer(pick("max_char_count"), "max_char_count", "bytes");
  if (isFail(maxChars)) return maxChars;
  const maxLines = integer(pick("max_line_count"), "max_line_count", "newlines");
  if (isFail(maxLines)) return maxLines;
  const baseCost = number(pick("limit_base_cost"), "limit_base_cost", 0, "tokens per event");
  if (isFail(baseCost)) return baseCost;
  const lineMult = number(pick("line_count_multiplier"), "line_count_multiplier", 0, "tokens per newline");
  if (isFail(lineMult)) return lineMult;
  const exempt = parseAffiliations(pick("exempt_affiliations"));
  if (isFail(exempt)) return exempt;
  const active = number(pick("active_seconds"), "active_seconds", Number.MIN_VALUE, "seconds, > 0");
  if (isFail(active)) return active;
  const perOccupant = parsePerOccupant(pick("per_occupant"));
  if (isFail(perOccupant)) return perOccupant;
  const idle = number(pick("idle_seconds"), "idle_seconds", Number.MIN_VALUE, "seconds, > 0");
  if (isFail(idle)) return idle;
  // An entry is forgotten only once its bucket must have refilled (capacity /
  // rate = burst_factor seconds), so forgetting never hands out a new burst.
  const slowest = Math.max(burstFactor, perOccupant?.burst_factor ?? 0);
  if (idle < slowest) {
    return fail(`${idle} is below ${slowest}: an idle entry must have refilled (burst_factor seconds) before it is forgotten`, "idle_seconds");
  }
  if (active > idle) {
    return fail(`${active} is above idle_seconds (${idle}): a room must not be forgotten while its senders are active`, "active_seconds");
  }
  const maxRooms = integer(pick("max_tracked_rooms"), "max_tracked_rooms", "rooms");
  if (isFail(maxRooms)) return maxRooms;
  if (maxRooms < 1) return fail("0 is below 1 (rooms)", "max_tracked_rooms");
  const maxOccupants = integer(pick("max_tracked_occupants"), "max_tracked_occupants", "occupant entries");
  if (isFail(maxOccupants)) return maxOccupants;
  if (maxOccupants < 1) return fail("0 is below 1 (occupant entries)", "max_tracked_occupants");

  const value: MucLimitsOptions = Object.freeze({
    hosts,
    event_rate: eventRate,
    burst_factor: burstFactor,
    max_nick_length: maxNick,
    max_char_count: maxChars,
    max_line_count: maxLines,
    limit_base_cost: baseCost,
    line_count_multiplier: lineMult,
    exempt_affiliations: exempt,
    active_seconds: active,
    per_occupant: perOccupant,
    idle_seconds: idle,
    max_tracked_rooms: maxRooms,
    max_tracked_occupants: maxOccupants,
  });
  return { ok: true, value, notes: NO_NOTES };
}
