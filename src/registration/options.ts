// The `registration:` config section with Prosody's option names and defaults
// (docs/registration.md, "Options"): mod_register_limits, mod_block_registrations, mod_mimicking,
// mod_tombstones and mod_watchregistrations. parseRegistrationOptions never
// throws; it returns the shaping units' ParseResult so the config schema can
// adapt it with `parsed()`. Lua patterns are checked here by translating them.
import { AddressError, CidrSet } from "../util/ip.js";
import { compileLuaPattern, type LuaPatternMode } from "../firewall/lua-pattern.js";
import type { ParseResult } from "../shaping/units.js";
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

/** A number >= 0 (0 means what it means to Prosody: see each option), or null. */
function nonNegativeOrNull(v: unknown, integer: boolean): Check<number | null> {
  if (v === null) return { ok: true, value: null };
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (integer && !Number.isInteger(v))) {
    return fail(integer ? "must be an integer >= 0 or null" : "must be a number of seconds >= 0 or null");
  }
  return { ok: true, value: v };
}

const DURATION_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800, y: 31_536_000 };

/** Seconds as a number (Prosody 0.12) or a period string such as "30d" (Prosody 13). */
function duration(v: unknown): Check<number | null> {
  if (typeof v === "string") {
    const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdwy]?)\s*$/.exec(v);
    if (m === null) return fail('must be seconds, a period such as "30d", or null');
    return { ok: true, value: Number(m[1]) * DURATION_UNITS[m[2] === "" ? "s" : m[2]!]! };
  }
  const r = nonNegativeOrNull(v, false);
  return r.ok ? r : fail('must be seconds, a period such as "30d", or null');
}

function stringList(v: unknown): Check<string[]> {
  if (!Array.isArray(v)) return fail("must be a list of strings");
  for (let i = 0; i < v.length; i++) {
    if (typeof v[i] !== "string") return fail("must be a string", String(i));
  }
  return { ok: true, value: v as string[] };
}

function cidrs(v: unknown): Check<CidrSet> {
  const list = stringList(v);
  if (!list.ok) return list;
  for (let i = 0; i < list.value.length; i++) {
    try {
      new CidrSet([list.value[i]!]);
    } catch (err) {
      if (err instanceof AddressError) return fail(err.message, String(i));
      throw err;
    }
  }
  return { ok: true, value: new CidrSet(list.value) };
}

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

function jid(v: unknown): Check<string> {
  if (typeof v !== "string" || !BARE_JID.test(v)) return fail('must be a bare JID such as "admin@example.org"');
  return { ok: true, value: v.toLowerCase() };
}

function integerIn(v: unknown, min: number, max: number): Check<number> {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) return fail(`must be an integer from ${min} to ${max}`);
  return { ok: true, value: v };
}

function bool(v: unknown): Check<boolean> {
  return typeof v === "boolean" ? { ok: true, value: v } : fail("must be true or false");
}

/** Validate one option; `at` in the result is relative to the option. */
function checkOption(key: string, v: unknown): Check<unknown> {
  switch (key) {
    case "min_seconds_between_registrations":
    case "registration_throttle_period":
      return nonNegativeOrNull(v, false);
    case "registration_throttle_max":
      return nonNegativeOrNull(v, true);
    case "registration_throttle_ipv6_prefix":
      return integerIn(v, 1, 128);
    case "registration_allowlist":
    case "registration_blocklist":
      return cidrs(v);
    case "allowlist_registration_only":
    case "block_registrations_confusable":
    case "mimicking":
      return bool(v);
    case "block_registrations_users": {
      const list = stringList(v);
      if (!list.ok) return list;
      const out: string[] = [];
      for (let i = 0; i < list.value.length; i++) {
        const prepped = nodeprep(list.value[i]!);
        if (prepped === null) return fail(`"${list.value[i]}" is not a valid username (nodeprep fails)`, String(i));
        out.push(prepped);
      }
      return { ok: true, value: Object.freeze(out) };
    }
    case "block_registrations_require":
      return v === null ? { ok: true, value: null } : luaPattern(v, "match");
    case "block_registrations_matching": {
      const list = stringList(v);
      if (!list.ok) return list;
      for (let i = 0; i < list.value.length; i++) {
        const r = luaPattern(list.value[i], "find");
        if (!r.ok) return fail(r.message, String(i));
      }
      return { ok: true, value: Object.freeze([...list.value]) };
    }
    case "block_registrations_length_minimum":
    case "block_registrations_length_maximum":
      return integerIn(v, 1, 1023);
    case "user_tombstone_expiry":
      return duration(v);
    case "registration_watchers": {
      const list = stringList(v);
      if (!list.ok) return list;
      const out: string[] = [];
      for (let i = 0; i < list.value.length; i++) {
        const v = list.value[i]!;
        if (!WATCHER_JID.test(v)) return fail('must be a JID such as "admin@example.org" (or a full JID, "admin@example.org/desk")', String(i));
        const slash = v.indexOf("/");
        // The bare part is case-insensitive; a resource is kept as written.
        out.push(slash < 0 ? v.toLowerCase() : v.slice(0, slash).toLowerCase() + v.slice(slash));
      }
      return { ok: true, value: Object.freeze(out) };
    }
    case "registration_notification":
      return typeof v === "string" && v.length > 0 ? { ok: true, value: v } : fail("must be a non-empty string");
    case "registration_notification_type":
      return typeof v === "string" && (NOTIFICATION_TYPES as readonly string[]).includes(v)
        ? { ok: true, value: v }
        : fail(`must be one of ${NOTIFICATION_TYPES.join(", ")}`);
    case "registration_from":
      return v === null ? { ok: true, value: null } : jid(v);
    case "registration_webhook": {
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
    }
    default:
      return fail(`unknown option "${key}"`);
  }
}

/**
 * Validate the `registration:` section. Absent keys take Prosody's defaults
 * (except the allowlist, see docs/registration.md). Returns the first problem,
 * with `at` naming the option (and list index) it concerns.
 */
export function parseRegistrationOptions(raw: unknown): ParseResult<RegistrationOptions> {
  if (raw === undefined || raw === null) return { ok: true, value: REGISTRATION_DEFAULTS, notes: [] };
  if (typeof raw !== "object" || Array.isArray(raw)) {
    return fail("expected a mapping such as { min_seconds_between_registrations: 300, registration_watchers: [admin@example.org] }");
  }
  const input = raw as Record<string, unknown>;
  const out: Record<string, unknown> = { ...REGISTRATION_DEFAULTS };
  for (const [key, value] of Object.entries(input)) {
    const renamed = RENAMED[key];
    if (renamed !== undefined) return fail(`"${key}" was renamed to "${renamed}"`, key);
    const na = NOT_APPLICABLE[key];
    if (na !== undefined) return fail(`"${key}" is not supported by the proxy: ${na}`, key);
    if (!KNOWN_KEYS.includes(key)) {
      const near = KNOWN_KEYS.find((k) => k.replace(/_/g, "") === key.toLowerCase().replace(/[-_]/g, ""));
      return fail(`unknown option "${key}"${near === undefined ? "" : ` (did you mean "${near}"?)`}`, key);
    }
    const r = checkOption(key, value);
    if (!r.ok) return fail(r.message, r.at === undefined ? key : `${key}.${r.at}`);
    out[key] = r.value;
  }
  const o = out as unknown as RegistrationOptions;
  const notes: string[] = [];
  const max = o.registration_throttle_max;
  const period = o.registration_throttle_period;
  const min = o.min_seconds_between_registrations;
  // A bucket of 0 refuses everything whatever its period (Prosody would
  // divide by a missing period at the first attempt; here it just blocks).
  if (max !== null && max > 0 && period === null && min === null) {
    return fail("registration_throttle_max needs registration_throttle_period (or min_seconds_between_registrations)", "registration_throttle_max");
  }
  if (period !== null && max === null && min === null) {
    return fail("registration_throttle_period has no effect without registration_throttle_max (or min_seconds_between_registrations)", "registration_throttle_period");
  }
  if (min !== null && max !== null && period !== null) {
    notes.push(
      `min_seconds_between_registrations is ignored: registration_throttle_max (${max}) and registration_throttle_period (${period}) are both set, as in Prosody`,
    );
  }
  if (o.block_registrations_length_minimum > o.block_registrations_length_maximum) {
    return fail("block_registrations_length_minimum is above block_registrations_length_maximum", "block_registrations_length_minimum");
  }
  return { ok: true, value: Object.freeze(o), notes };
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
