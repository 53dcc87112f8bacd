// The `registration:` config section with Prosody's option names and defaults
// (docs/registration.md, "Options"): mod_register_limits, mod_block_registrations, mod_mimicking,
// mod_tombstones and mod_watchregistrations, and their spec (REGISTRATION_SPEC),
// which the config schema plugs in. Lua patterns are checked here by
// translating them.
import { AddressError, CidrSet, parseCidr } from "../util/ip.js";
import { compileLuaPattern, type LuaPatternMode } from "../firewall/lua-pattern.js";
import type { ParseResult } from "../shaping/units.js";
import { INVALID, firstIssue, issue, obj, optional, parsed, refine, suggestKey, transform, validate, type Spec } from "../util/validate.js";
import { nodeprep } from "../xmpp/stringprep.js";

export const NOTIFICATION_TYPES = ["chat", "normal", "headline", "groupchat"] as const;
export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

export interface RegistrationOptions {
  /** Shorthand for throttle max 1 per this many seconds (mod_register_limits); 0 = no throttle. */
  readonly min_seconds_between_registrations: number | null;
  /** Bucket capacity; defaults to 1 when min_seconds is set, else no throttle; 0 refuses every registration. */
  readonly registration_throttle_max: number | null;
  /** Seconds for a full refill; defaults to min_seconds; 0 = no throttle. */
  readonly registration_throttle_period: number | null;
  /** IPv6 clients share one bucket per prefix of this length (ours; 128 = Prosody's per-address). */
  readonly registration_throttle_ipv6_prefix: number;
  /** Skip the throttle. Empty by default, unlike Prosody (see docs/registration.md). */
  readonly registration_allowlist: CidrSet;
  /** Always refused, checked first. */
  readonly registration_blocklist: CidrSet;
  readonly allowlist_registration_only: boolean;
  /** Reserved names (nodeprepped on load). */
  readonly block_registrations_users: readonly string[];
  /** Lua pattern the name must match (unanchored, as `username:match(p)`). */
  readonly block_registrations_require: string | null;
  /** Lua patterns refused when found anywhere in the name. */
  readonly block_registrations_matching: readonly string[];
  /** Compare reserved names by skeleton too (`аdmin` is `admin`). */
  readonly block_registrations_confusable: boolean;
  /** Unicode characters. */
  readonly block_registrations_length_minimum: number;
  readonly block_registrations_length_maximum: number;
  /** Refuse a name whose skeleton equals a known account's (mod_mimicking). */
  readonly mimicking: boolean;
  /** Seconds a tombstone blocks its name; null = forever, 0 = it expires at once (mod_tombstones). */
  readonly user_tombstone_expiry: number | null;
  /** JIDs told about each new account (bare, or full to reach one session). */
  readonly registration_watchers: readonly string[];
  /** `$username`, `$host` and `$ip` are substituted; other `$words` stay literal. */
  readonly registration_notification: string;
  readonly registration_notification_type: NotificationType;
  /** Sender of the notification; null = the component JID. */
  readonly registration_from: string | null;
  /** Also POST each registration as JSON here (the app delivers it); null = off. */
  readonly registration_webhook: string | null;
}

/** mod_block_registrations' default reserved names (docs/registration.md, "Options"). */
export const PROSODY_RESERVED_USERS: readonly string[] = Object.freeze([
  "abuse", "admin", "administrator", "hostmaster", "info", "news", "noc", "operator", "owner", "postmaster",
  "register", "registration", "root", "security", "service", "signup", "support", "sysadmin", "sysop", "system",
  "test", "trouble", "webmaster", "www", "xmpp",
]);

export const DEFAULT_NOTIFICATION = "User $username just registered on $host from $ip";

export const REGISTRATION_DEFAULTS: RegistrationOptions = Object.freeze({
  min_seconds_between_registrations: null,
  registration_throttle_max: null,
  registration_throttle_period: null,
  registration_throttle_ipv6_prefix: 64,
  registration_allowlist: new CidrSet([]),
  registration_blocklist: new CidrSet([]),
  allowlist_registration_only: false,
  block_registrations_users: PROSODY_RESERVED_USERS,
  block_registrations_require: null,
  block_registrations_matching: Object.freeze([]) as readonly string[],
  block_registrations_confusable: true,
  block_registrations_length_minimum: 1,
  block_registrations_length_maximum: 255,
  mimicking: true,
  user_tombstone_expiry: null,
  registration_watchers: Object.freeze([]) as readonly string[],
  registration_notification: DEFAULT_NOTIFICATION,
  registration_notification_type: "chat",
  registration_from: null,
  registration_webhook: null,
});

const KNOWN_KEYS = Object.keys(REGISTRATION_DEFAULTS);

/** Prosody's older option names (mod_register_limits renamed them in 0.12). */
const RENAMED: Readonly<Record<string, string>> = {
  registration_blacklist: "registration_blocklist",
  registration_whitelist: "registration_allowlist",
  whitelist_registration_only: "allowlist_registration_only",
};

/** Prosody options that do not apply to the proxy, with the reason. */
const NOT_APPLICABLE: Readonly<Record<string, string>> = {
  registration_throttle_cache_size: "buckets are stored in the state database, not an LRU cache; there is nothing to size",
  blocklist_on_registration_throttle_overload: "it depends on LRU eviction, which the durable throttle does not have; use registration_blocklist",
  blacklist_on_registration_throttle_overload: "it depends on LRU eviction, which the durable throttle does not have; use registration_blocklist",
  tombstone_cache_size: "tombstones are read through from the state database, with no cache (which is what fixes Prosody's stale-cache bug)",
  allow_registration: "it is the server's option; the proxy only filters what the server would accept",
};

type Check<T> = { ok: true; value: T } | { ok: false; message: string; at?: string };

function fail(message: string, at?: string): { ok: false; message: string; at?: string } {
  return at === undefined ? { ok: false, message } : { ok: false, message, at };
}

/** One option checked by a function (its `at`, if any, is below the option). */
function check<T>(expected: string, fn: (v: unknown) => Check<T>): Spec<T> {
  return parsed(expected, fn);
}

/** A list whose every bad entry is reported at its index. */
function listOf<T>(expected: string, entry: (v: string) => Check<T>): Spec<readonly T[]> {
  return {
    expected: `a list of ${expected}`,
    check(v, path, issues) {
      if (!Array.isArray(v)) return issue(issues, path, "must be a list of strings");
      const out: T[] = [];
      let ok = true;
      v.forEach((x: unknown, i) => {
        const r = typeof x === "string" ? entry(x) : fail("must be a string");
        if (r.ok) out.push(r.value);
        else {
          ok = false;
          issue(issues, [...path, i], r.message);
        }
      });
      return ok ? Object.freeze(out) : INVALID;
    },
  };
}

/** A number >= 0 (0 means what it means to Prosody: see each option), or null. */
function nonNegativeOrNull(integer: boolean): Spec<number | null> {
  return check(integer ? "an integer >= 0, or null" : "seconds >= 0, or null", (v) => {
    if (v === null) return { ok: true, value: null };
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (integer && !Number.isInteger(v))) {
      return fail(integer ? "must be an integer >= 0 or null" : "must be a number of seconds >= 0 or null");
    }
    return { ok: true, value: v };
  });
}

const DURATION_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800, y: 31_536_000 };

/** Seconds as a number (Prosody 0.12) or a period string such as "30d" (Prosody 13). */
const DURATION = check<number | null>('seconds, a period such as "30d", or null', (v) => {
  if (typeof v === "string") {
    const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdwy]?)\s*$/.exec(v);
    if (m === null) return fail('must be seconds, a period such as "30d", or null');
    return { ok: true, value: Number(m[1]) * DURATION_UNITS[m[2] === "" ? "s" : m[2]!]! };
  }
  if (v === null) return { ok: true, value: null };
  if (typeof v === "number" && Number.isFinite(v) && v >= 0) return { ok: true, value: v };
  return fail('must be seconds, a period such as "30d", or null');
});

const CIDRS = transform(
  listOf("CIDRs", (s): Check<string> => {
    try {
      return { ok: true, value: parseCidr(s).text };
    } catch (err) {
      if (err instanceof AddressError) return fail(err.message);
      throw err;
    }
  }),
  (texts) => new CidrSet(texts),
);

/** A Lua pattern as mod_block_registrations runs it: `find` for _matching, `match` for _require. */
function luaPattern(v: unknown, mode: LuaPatternMode): Check<string> {
  if (typeof v !== "string") return fail("must be a Lua pattern string");
  try {
    compileLuaPattern(v, { mode });
  } catch (err) {
    return fail(`invalid Lua pattern: ${err instanceof Error ? err.message : String(err)}`);
  }
  return { ok: true, value: v };
}

const BARE_JID = /^(?:[^\s"&'/:<>@]+@)?[^\s@/]+$/;
/** A watcher may also be a full JID (Prosody preps each as a JID): one session, e.g. for groupchat notifications. */
const WATCHER_JID = /^(?:[^\s"&'/:<>@]+@)?[^\s@/]+(?:\/[^\s]+)?$/;

function integerIn(min: number, max: number): Spec<number> {
  return check(`an integer from ${min} to ${max}`, (v) =>
    typeof v !== "number" || !Number.isInteger(v) || v < min || v > max ? fail(`must be an integer from ${min} to ${max}`) : { ok: true, value: v },
  );
}

const FLAG = check<boolean>("true or false", (v) => (typeof v === "boolean" ? { ok: true, value: v } : fail("must be true or false")));

const RESERVED_USERS = listOf("usernames", (name): Check<string> => {
  const prepped = nodeprep(name);
  return prepped === null ? fail(`"${name}" is not a valid username (nodeprep fails)`) : { ok: true, value: prepped };
});

const WATCHERS = listOf("JIDs", (v): Check<string> => {
  if (!WATCHER_JID.test(v)) return fail('must be a JID such as "admin@example.org" (or a full JID, "admin@example.org/desk")');
  const slash = v.indexOf("/");
  // The bare part is case-insensitive; a resource is kept as written.
  return { ok: true, value: slash < 0 ? v.toLowerCase() : v.slice(0, slash).toLowerCase() + v.slice(slash) };
});

const D = REGISTRATION_DEFAULTS;

function unknownOption(key: string): string {
  const renamed = RENAMED[key];
  if (renamed !== undefined) return `"${key}" was renamed to "${renamed}"`;
  const na = NOT_APPLICABLE[key];
  if (na !== undefined) return `"${key}" is not supported by the proxy: ${na}`;
  const near = suggestKey(key, KNOWN_KEYS);
  return `unknown option "${key}"${near === undefined ? "" : ` (did you mean "${near}"?)`}`;
}

/**
 * The `registration:` section (an object; null in the config turns
 * registration off). Absent keys take Prosody's defaults (except the
 * allowlist, see docs/registration.md). Every problem is reported at the
 * option (and list index) it concerns.
 */
export const REGISTRATION_SPEC: Spec<RegistrationOptions> = transform(
  refine(
    obj(
      {
        min_seconds_between_registrations: optional(nonNegativeOrNull(false), D.min_seconds_between_registrations),
        registration_throttle_max: optional(nonNegativeOrNull(true), D.registration_throttle_max),
        registration_throttle_period: optional(nonNegativeOrNull(false), D.registration_throttle_period),
        registration_throttle_ipv6_prefix: optional(integerIn(1, 128), D.registration_throttle_ipv6_prefix),
        registration_allowlist: optional(CIDRS, []),
        registration_blocklist: optional(CIDRS, []),
        allowlist_registration_only: optional(FLAG, D.allowlist_registration_only),
        block_registrations_users: optional(RESERVED_USERS, D.block_registrations_users),
        block_registrations_require: optional(
          check<string | null>("a Lua pattern, or null", (v) => (v === null ? { ok: true, value: null } : luaPattern(v, "match"))),
          D.block_registrations_require,
        ),
        block_registrations_matching: optional(listOf("Lua patterns", (v) => luaPattern(v, "find")), D.block_registrations_matching),
        block_registrations_confusable: optional(FLAG, D.block_registrations_confusable),
        block_registrations_length_minimum: optional(integerIn(1, 1023), D.block_registrations_length_minimum),
        block_registrations_length_maximum: optional(integerIn(1, 1023), D.block_registrations_length_maximum),
        mimicking: optional(FLAG, D.mimicking),
        user_tombstone_expiry: optional(DURATION, D.user_tombstone_expiry),
        registration_watchers: optional(WATCHERS, D.registration_watchers),
        registration_notification: optional(
          check<string>("a non-empty string", (v) => (typeof v === "string" && v.length > 0 ? { ok: true, value: v } : fail("must be a non-empty string"))),
          D.registration_notification,
        ),
        registration_notification_type: optional(
          check<NotificationType>(`one of ${NOTIFICATION_TYPES.join(", ")}`, (v) =>
            typeof v === "string" && (NOTIFICATION_TYPES as readonly string[]).includes(v)
              ? { ok: true, value: v as NotificationType }
              : fail(`must be one of ${NOTIFICATION_TYPES.join(", ")}`),
          ),
          D.registration_notification_type,
        ),
        registration_from: optional(
          check<string | null>('a bare JID such as "admin@example.org", or null', (v) => {
            if (v === null) return { ok: true, value: null };
            if (typeof v !== "string" || !BARE_JID.test(v)) return fail('must be a bare JID such as "admin@example.org"');
            return { ok: true, value: v.toLowerCase() };
          }),
          D.registration_from,
        ),
        registration_webhook: optional(
          check<string | null>("an http(s) URL, or null", (v) => {
            if (v === null) return { ok: true, value: null };
            if (typeof v === "string") {
              try {
                const url = new URL(v);
                if (url.protocol === "http:" || url.protocol === "https:") return { ok: true, value: v };
              } catch {
                // fall through to the message below
              }
            }
            return fail("must be an http(s) URL or null");
          }),
          D.registration_webhook,
        ),
      },
      {
        unknown: unknownOption,
        notMapping: () => "expected a mapping such as { min_seconds_between_registrations: 300, registration_watchers: [admin@example.org] }",
      },
    ),
    (o, report) => {
      const max = o.registration_throttle_max;
      const period = o.registration_throttle_period;
      const min = o.min_seconds_between_registrations;
      // A bucket of 0 refuses everything whatever its period (Prosody would
      // divide by a missing period at the first attempt; here it just blocks).
      if (max !== null && max > 0 && period === null && min === null) {
        report(["registration_throttle_max"], "registration_throttle_max needs registration_throttle_period (or min_seconds_between_registrations)");
      }
      if (period !== null && max === null && min === null) {
        report(["registration_throttle_period"], "registration_throttle_period has no effect without registration_throttle_max (or min_seconds_between_registrations)");
      }
      if (o.block_registrations_length_minimum > o.block_registrations_length_maximum) {
        report(["block_registrations_length_minimum"], "block_registrations_length_minimum is above block_registrations_length_maximum");
      }
    },
  ),
  (o) => Object.freeze(o),
);

/** Remarks worth logging about valid options (where Prosody reads them in a way that may surprise). */
export function registrationNotes(o: RegistrationOptions): string[] {
  const max = o.registration_throttle_max;
  const period = o.registration_throttle_period;
  const min = o.min_seconds_between_registrations;
  if (min !== null && max !== null && period !== null) {
    return [`min_seconds_between_registrations is ignored: registration_throttle_max (${max}) and registration_throttle_period (${period}) are both set, as in Prosody`];
  }
  return [];
}

/**
 * REGISTRATION_SPEC's verdict on `raw` as its first problem, with the notes;
 * absent or null is the defaults (tests and tools).
 */
export function parseRegistrationOptions(raw: unknown): ParseResult<RegistrationOptions> {
  if (raw === undefined || raw === null) return { ok: true, value: REGISTRATION_DEFAULTS, notes: [] };
  const r = firstIssue(validate(REGISTRATION_SPEC, raw));
  return r.ok ? { ...r, notes: registrationNotes(r.value) } : r;
}

/**
 * The throttle Prosody would build from these options: capacity and tokens
 * per millisecond, or null for none. A capacity of 0 is a bucket that never
 * holds a token (every registration refused, as util.throttle with max 0); a
 * period of 0 refills at once, which is no throttle at all (so
 * `min_seconds_between_registrations: 0` turns it off, as in Prosody).
 */
export function throttleSpec(o: RegistrationOptions): { readonly capacity: number; readonly perMs: number } | null {
  const capacity = o.registration_throttle_max ?? (o.min_seconds_between_registrations !== null ? 1 : null);
  const period = o.registration_throttle_period ?? o.min_seconds_between_registrations;
  if (capacity === 0) return { capacity: 0, perMs: 0 };
  if (capacity === null || period === null || period === 0) return null;
  return { capacity, perMs: capacity / (period * 1000) };
}
