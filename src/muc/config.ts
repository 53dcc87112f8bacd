// Options of the MUC flood limits (mod_muc_limits; docs/muc-limits.md, "Options")
// with Prosody's defaults, and their spec (MUC_LIMITS_SPEC), which the config
// schema plugs in. It reports every problem and never clamps: where Prosody silently clamps a bad
// value (math.max) we refuse it, naming the key. Names drop Prosody's `muc_`
// prefix: `event_rate` is `muc_event_rate`, `limit_base_cost` is
// `muc_limit_base_cost`, and so on. See docs/muc-limits.md.
import type { ParseResult } from "../shaping/units.js";
import { INVALID, deepFreeze, firstIssue, issue, nullable, obj, optional, refine, required, transform, validate, type Spec } from "../util/validate.js";
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

function describe(x: unknown): string {
  if (typeof x === "string") return JSON.stringify(x);
  if (typeof x === "number" || typeof x === "boolean") return String(x);
  if (x === null) return "null";
  if (Array.isArray(x)) return "a list";
  return `a ${typeof x}`;
}

/** A finite number >= min; `what` says what it counts. */
function number(min: number, what: string): Spec<number> {
  return {
    expected: `a number >= ${min} (${what})`,
    check(raw, path, issues) {
      if (typeof raw !== "number" || !Number.isFinite(raw)) return issue(issues, path, `${describe(raw)} is not a number (${what})`);
      if (raw < min) return issue(issues, path, `${raw} is below ${min} (${what})`);
      return raw;
    },
  };
}

/** A whole number >= min (0 unless given). */
function integer(what: string, min = 0): Spec<number> {
  return {
    expected: `a whole number >= ${min} (${what})`,
    check(raw, path, issues) {
      if (typeof raw !== "number" || !Number.isSafeInteger(raw) || raw < 0) return issue(issues, path, `${describe(raw)} is not a whole number >= 0 (${what})`);
      if (raw < min) return issue(issues, path, `${raw} is below ${min} (${what})`);
      return raw;
    },
  };
}

/** Each bad entry reported at its index (`entry` returns its value, or `{ error }`); duplicates (after normalising) dropped. */
function listOf<T>(what: string, entry: (x: unknown) => T | { readonly error: string }): Spec<readonly T[]> {
  return {
    expected: `a list of ${what}`,
    check(raw, path, issues) {
      if (!Array.isArray(raw)) return issue(issues, path, `${describe(raw)} is not a list of ${what}`);
      const out = new Set<T>();
      let ok = true;
      raw.forEach((x: unknown, i) => {
        const r = entry(x);
        if (typeof r === "object" && r !== null && "error" in r) {
          ok = false;
          issue(issues, [...path, i], r.error);
        } else {
          out.add(r);
        }
      });
      return ok ? [...out] : INVALID;
    },
  };
}

const HOSTS = listOf<string>("MUC service domains", (h) =>
  typeof h === "string" && h !== "" && !/[\s@/]/.test(h) ? normaliseDomain(h) : { error: `${describe(h)} is not a domain (no whitespace, @ or /), e.g. "conference.example.org"` },
);

const AFFILIATION_LIST = listOf<Affiliation>(`affiliations (${AFFILIATIONS.join(", ")})`, (a) => {
  if ((AFFILIATIONS as readonly unknown[]).includes(a)) return a as Affiliation;
  const hint = a === "none" ? ": unaffiliated senders are what the limits are for" : "";
  return { error: `${describe(a)} is not an affiliation (${AFFILIATIONS.join(", ")})${hint}` };
});

const PER_OCCUPANT_EXAMPLE = "expected { event_rate: 0.2, burst_factor: 5 } or null";

const PER_OCCUPANT = obj(
  {
    event_rate: required(number(0, "events per second")),
    burst_factor: required(number(1, "capacity is event_rate × burst_factor")),
  },
  { unknown: () => `unknown key (${PER_OCCUPANT_EXAMPLE})`, notMapping: (raw) => `${describe(raw)} is not a bucket: ${PER_OCCUPANT_EXAMPLE}` },
);

const D = MUC_LIMITS_DEFAULTS;

/**
 * The `muc_limits` section: an object whose absent keys take
 * MUC_LIMITS_DEFAULTS. Unknown keys are refused (Prosody's `muc_*` names with
 * a hint). Every problem is reported at its key, e.g. "event_rate",
 * "per_occupant.burst_factor" or "hosts.2". The value is deep-frozen.
 */
export const MUC_LIMITS_SPEC: Spec<MucLimitsOptions> = transform(
  refine(
    obj(
      {
        hosts: optional(HOSTS, D.hosts),
        event_rate: optional(number(0, "room events per second"), D.event_rate),
        burst_factor: optional(number(1, "room capacity is event_rate × burst_factor"), D.burst_factor),
        max_nick_length: optional(integer("bytes"), D.max_nick_length),
        max_char_count: optional(integer("bytes"), D.max_char_count),
        max_line_count: optional(integer("newlines"), D.max_line_count),
        limit_base_cost: optional(number(0, "tokens per event"), D.limit_base_cost),
        line_count_multiplier: optional(number(0, "tokens per newline"), D.line_count_multiplier),
        exempt_affiliations: optional(AFFILIATION_LIST, D.exempt_affiliations),
        active_seconds: optional(number(Number.MIN_VALUE, "seconds, > 0"), D.active_seconds),
        per_occupant: optional(nullable(PER_OCCUPANT), D.per_occupant),
        idle_seconds: optional(number(Number.MIN_VALUE, "seconds, > 0"), D.idle_seconds),
        max_tracked_rooms: optional(integer("rooms", 1), D.max_tracked_rooms),
        max_tracked_occupants: optional(integer("occupant entries", 1), D.max_tracked_occupants),
      },
      {
        unknown: (k) => {
          const renamed = PROSODY_NAMES[k];
          return renamed !== undefined ? `Prosody's ${k} is spelled "${renamed}" here` : `unknown key (expected one of: ${KEYS.join(", ")})`;
        },
        notMapping: (raw) => `${describe(raw)} is not a section: expected { hosts: ["conference.example.org"], event_rate: 0.5, ... }`,
      },
    ),
    (v, report) => {
      // An entry is forgotten only once its bucket must have refilled (capacity /
      // rate = burst_factor seconds), so forgetting never hands out a new burst.
      const slowest = Math.max(v.burst_factor, v.per_occupant?.burst_factor ?? 0);
      if (v.idle_seconds < slowest) {
        report(["idle_seconds"], `${v.idle_seconds} is below ${slowest}: an idle entry must have refilled (burst_factor seconds) before it is forgotten`);
      }
      if (v.active_seconds > v.idle_seconds) {
        report(["active_seconds"], `${v.active_seconds} is above idle_seconds (${v.idle_seconds}): a room must not be forgotten while its senders are active`);
      }
    },
  ),
  (v) => deepFreeze(v),
);

/** MUC_LIMITS_SPEC's verdict on `raw`, as its first problem (tests, benches). */
export function parseMucLimits(raw: unknown): ParseResult<MucLimitsOptions> {
  return firstIssue(validate(MUC_LIMITS_SPEC, raw));
}
