// The configuration schema: the typed Config, every default in one object, and a
// tiny declarative validator. Validation collects every issue (never first-fail),
// rejects unknown keys, and runs cross-field checks only once the shape is sound.
// This module knows nothing about YAML or files: issues carry a key path and
// load.ts turns it into file:line:col. Keys stay snake_case end to end, so the
// name in the YAML, the docs, the error messages and the code is the same.
import { availableParallelism } from "node:os";
import { parseHostPort } from "./address.js";
import { AddressError, CidrSet, canonicalIp, parseCidr } from "../util/ip.js";
import { parseMucLimits, type MucLimitsOptions } from "../muc/config.js";
import { parseContactInfo, type ContactInfo } from "../registration/contact-info.js";
import { parseRegistrationOptions, type RegistrationOptions } from "../registration/options.js";
import { parseStateOptions, type StateOptions } from "../state/state-options.js";
import { parseComponentOptions, type ComponentOptions } from "../registration/component.js";
import { PROSODY_BUILTIN_LIMITS, parseByteLimit, parseStanzaRate, parseStanzaRates, type BucketSpec, type ByteLimit, type ParseResult, type StanzaRates } from "../shaping/units.js";
import { prepJid } from "../xmpp/jid.js";

export const DEFAULT_CONFIG_PATH = "config/xmpp-guard.yaml";

// ---------------------------------------------------------------------------
// Typed config

export const LISTENER_TYPES = ["c2s", "c2s-tls", "s2s", "s2s-tls", "websocket"] as const;
export type ListenerType = (typeof LISTENER_TYPES)[number];

/** PROXY protocol header the proxy sends to the upstream on each new connection. */
export const PROXY_PROTOCOL_MODES = ["off", "v1", "v2"] as const;
export type ProxyProtocolMode = (typeof PROXY_PROTOCOL_MODES)[number];

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A parsed `host:port` option. `text` is the string as written (for logs and
 * messages); `host` is ready for `server.listen()` / `net.connect()`: brackets
 * removed from IPv6 literals, `*` turned into "0.0.0.0".
 */
export interface Endpoint {
  readonly text: string;
  readonly host: string;
  readonly port: number;
}

export interface ListenerConfig {
  /** Unique; used in logs and as a metric label. */
  readonly name: string;
  readonly type: ListenerType;
  /** Port 0 is allowed (tests). */
  readonly listen: Endpoint;
  readonly upstream: Endpoint;
  readonly proxy_protocol: ProxyProtocolMode;
  /** Peers allowed (and then required) to send us a PROXY header; `has(remoteAddress)`. */
  readonly accept_proxy_from: CidrSet;
  /** Domain for the proxy's own stream header when it answers first; null = echo the client's `to`. */
  readonly domain: string | null;
  /** The WebSocket endpoint's options: set (defaults filled in) on `websocket` listeners, null on the others. */
  readonly websocket: WebSocketOptions | null;
}

/** XMPP over WebSocket (RFC 7395) in front of the server's c2s port (docs/websocket.md). */
export interface WebSocketOptions {
  /** wss:// with tls.certificates (SNI); false: plain ws://, for use behind a web server that terminates TLS. */
  readonly tls: boolean;
  /** The HTTP path of the endpoint (the query string is ignored). */
  readonly path: string;
  /** Origins a browser may connect from, lower-cased; "*" allows any. A request without Origin is not a browser's and is allowed. */
  readonly allowed_origins: readonly string[];
  /** Web servers in front whose X-Forwarded-For names the client. */
  readonly trusted_proxies: CidrSet;
  /** Seconds between WebSocket pings; a peer that has not answered by the next one is disconnected. 0: no pings. */
  readonly ping_interval: number;
}

export interface XmlConfig {
  readonly max_depth: number;
  readonly max_attributes: number;
  readonly max_header_size: number;
}

export interface TimeoutsConfig {
  /** Seconds. */
  readonly connect: number;
  /** Seconds. */
  readonly stream_header: number;
  /** Seconds without a byte from a not-yet-authenticated peer. */
  readonly pre_auth_idle: number;
  /** Seconds from accept until the peer must be authenticated, whatever it sends. */
  readonly pre_auth: number;
  /** Seconds one stanza may take to arrive completely once it has started (slow drip). */
  readonly stanza: number;
}

export interface ShutdownConfig {
  readonly drain_seconds: number;
}

export interface AdminConfig {
  /** null disables the admin endpoint. */
  readonly listen: Endpoint | null;
  /** Bearer token required by the routes that change state or show sessions; null: none (loopback only). */
  readonly token: string | null;
  /** A file holding the token (first line), instead of `token`. */
  readonly token_file: string | null;
}

export const LOG_FORMATS = ["json", "pretty"] as const;

export interface LogConfig {
  readonly level: LogLevel;
  /** json: one pino JSON line per event; pretty: a short coloured line for a terminal. */
  readonly format: (typeof LOG_FORMATS)[number];
}

/** A validated, deep-frozen configuration. */
/** Shaping for one session type (mod_limits' `c2s` / `s2sin`), see docs/shaping.md. */
export interface SessionLimit {
  /** Byte bucket: rate (B/s) × burst (s) = capacity; null = no byte limit. */
  readonly bytes: ByteLimit | null;
  /** Per-kind stanza buckets (beyond mod_limits); empty = none. */
  readonly stanzas: StanzaRates;
}

export interface LimitsConfig {
  readonly c2s: SessionLimit | null;
  readonly s2sin: SessionLimit | null;
  /** Bare JIDs (c2s) and domains (s2s) exempt once authenticated. */
  readonly unlimited_jids: readonly string[];
  /** Before authentication: most bytes / stanzas a peer may send (0 = no cap). */
  readonly pre_auth: { readonly max_bytes: number; readonly max_stanzas: number };
  /** Concurrent connections per real client IP, per listener (0 = no cap). */
  readonly max_connections_per_ip: number;
  /** New connections per IP: `rate` per second with a burst of `burst` (null = no cap). */
  readonly connection_rate_per_ip: BucketSpec | null;
}

export interface FirewallConfig {
  /** mod_firewall rule files, compiled together, all-or-nothing. */
  readonly scripts: readonly string[];
  /** Reload when a listed file changes on disk (debounced). */
  readonly watch: boolean;
  /** Rule files run in log-only mode: counted and logged, never applied. */
  readonly shadow: readonly string[];
}

/** Server knowledge the proxy learns from the streams it carries (docs/knowledge.md). */
export interface KnowledgeConfig {
  /** Learn rosters from c2s streams (the firewall's roster conditions). */
  readonly rosters: boolean;
  /** Track bound c2s sessions and their directed presence (TO FULL JID?, SENT DIRECTED PRESENCE TO SENDER?). */
  readonly sessions: boolean;
  /** Remote block lists: fetch limits. */
  readonly lists: KnowledgeListsConfig;
}

/** TLS termination (docs/tls.md). Off while `certificates` is empty. */
export interface TlsConfig {
  /** PEM files; `cert` may hold the chain (leaf first). */
  readonly certificates: readonly { readonly cert: string; readonly key: string }[];
  /** STARTTLS on c2s/s2s listeners: required, optional, or off (plaintext pass-through). */
  readonly starttls: "required" | "optional" | "off";
  readonly min_version: "TLSv1.2" | "TLSv1.3";
  /** OpenSSL cipher list; null = the built-in modern list. */
  readonly ciphers: string | null;
  /** Seconds from <proceed/> (or accept, for direct TLS) to a finished handshake. */
  readonly handshake_timeout: number;
  /** Dial the upstream over TLS (direct TLS, certificate not verified: loopback encryption only). */
  readonly upstream_tls: boolean;
}

/** Remote block lists (%LIST over http(s) or pubsubitemid): see docs/knowledge.md. */
export interface KnowledgeListsConfig {
  /** Seconds a whole HTTP fetch may take (connect, headers and body). */
  readonly timeout: number;
  /** Largest list body accepted, in bytes; a bigger one is a failed fetch. */
  readonly max_bytes: number;
}

export interface Config {
  readonly listeners: readonly ListenerConfig[];
  /**
   * The server's local domains: its virtual hosts and components, prepped
   * (lower case, no trailing dot). Empty: not known. The firewall's `$local`
   * zone, and which client stanzas leave for remote domains (deliver_remote).
   */
  readonly hosts: readonly string[];
  readonly tls: TlsConfig;
  readonly limits: LimitsConfig;
  readonly firewall: FirewallConfig;
  /** What the proxy learns of the server's state from the streams it carries, and the remote lists it fetches (docs/knowledge.md). */
  readonly knowledge: KnowledgeConfig;
  /** null: MUC flood limits off. */
  readonly muc_limits: MucLimitsOptions | null;
  /** null: registration hygiene off (XEP-0077 passes untouched). */
  readonly registration: RegistrationOptions | null;
  /** XEP-0157 addresses added to the server's disco#info; null: none. */
  readonly contact_info: ContactInfo | null;
  /** XEP-0114 component connection for registration notifications; null: none. */
  readonly component: ComponentOptions | null;
  readonly state: StateOptions;
  /** Worker processes sharing the listeners (node:cluster); 1 = a single process. "auto" is resolved to the CPU count. */
  readonly workers: number;
  /** Bytes. */
  readonly max_stanza_size: number;
  readonly xml: XmlConfig;
  readonly timeouts: TimeoutsConfig;
  readonly shutdown: ShutdownConfig;
  readonly admin: AdminConfig;
  readonly log: LogConfig;
}

/**
 * Every default, in the form one would write in the YAML file (it is validated
 * and normalised like user input). `listener` holds the per-listener defaults.
 */
export const DEFAULTS = deepFreeze({
  listener: {
    proxy_protocol: "off",
    accept_proxy_from: [],
    domain: null,
    websocket: null,
  },
  /** What a `websocket` listener gets for every option it leaves out. */
  websocket: {
    tls: false,
    path: "/xmpp-websocket",
    allowed_origins: ["*"],
    trusted_proxies: [],
    ping_interval: 30,
  },
  hosts: [],
  max_stanza_size: 262_144,
  tls: {
    certificates: [],
    starttls: "required",
    min_version: "TLSv1.2",
    ciphers: null,
    handshake_timeout: 10,
    upstream_tls: false,
  },
  firewall: { scripts: [], watch: true, shadow: [] },
  knowledge: { rosters: true, sessions: true, lists: { timeout: 30, max_bytes: 16_777_216 } },
  muc_limits: null,
  registration: null,
  contact_info: null,
  component: null,
  state: { path: "data/xmpp-guard.sqlite", redis: null, prefix: "xg:" },
  workers: 1,
  limits: {
    c2s: null,
    s2sin: null,
    unlimited_jids: [],
    pre_auth: { max_bytes: 65_536, max_stanzas: 64 },
    max_connections_per_ip: 0,
    connection_rate_per_ip: null,
  },
  xml: {
    max_depth: 64,
    max_attributes: 64,
    max_header_size: 8192,
  },
  timeouts: {
    connect: 10,
    stream_header: 30,
    pre_auth_idle: 60,
    pre_auth: 120,
    stanza: 60,
  },
  shutdown: {
    drain_seconds: 10,
  },
  admin: {
    listen: "127.0.0.1:9470",
    token: null,
    token_file: null,
  },
  log: {
    level: "info",
    format: "json",
  },
});

// ---------------------------------------------------------------------------
// The schema DSL. A Spec checks one value and returns its normalised form, or
// INVALID after pushing issues. Objects are declared as maps of fields, each
// `required(spec)` or `optional(spec, default)`; `section(spec)` is an optional
// sub-object whose own fields carry the defaults.

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

/**
 * Where an issue points: the value at `path`, the key at `path` (unknown or
 * renamed keys), or the nearest existing ancestor (a missing required key).
 */
export type IssueTarget = "value" | "key" | "parent";

export interface SchemaIssue {
  readonly path: Path;
  readonly target: IssueTarget;
  readonly message: string;
}

export const INVALID: unique symbol = Symbol("invalid");
export type Invalid = typeof INVALID;

export interface Spec<T> {
  /** What is accepted, in words; used in messages and in listOptions(). */
  readonly expected: string;
  /** Sub-structure, for listOptions() (docs and docs tests). */
  readonly shape?: Shape;
  check(value: unknown, path: Path, issues: SchemaIssue[]): T | Invalid;
}

export type Shape =
  | { readonly kind: "object"; readonly fields: Readonly<Record<string, Field<unknown>>> }
  | { readonly kind: "list"; readonly item: Spec<unknown> };

export interface Field<T> {
  readonly spec: Spec<T>;
  readonly required: boolean;
  /** Raw (YAML-form) default, run through `spec` when the key is absent. */
  readonly fallback?: unknown;
}

export function required<T>(spec: Spec<T>): Field<T> {
  return { spec, required: true };
}

export function optional<T>(spec: Spec<T>, fallback: unknown): Field<T> {
  return { spec, required: false, fallback };
}

/**
 * An optional sub-object. Absent or null (a YAML key whose children are all
 * commented out) means "all defaults".
 */
export function section<T>(spec: Spec<T>): Field<T> {
  return optional(nullAsEmpty(spec), {});
}

function issue(issues: SchemaIssue[], path: Path, message: string, target: IssueTarget = "value"): Invalid {
  issues.push({ path, target, message });
  return INVALID;
}

function describeRange(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return ` between ${min} and ${max}`;
  if (min !== undefined) return ` >= ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return "";
}

export function str(options: { pattern?: RegExp; hint?: string } = {}): Spec<string> {
  const expected = options.hint ?? "a string";
  return {
    expected,
    check(value, path, issues) {
      if (typeof value !== "string") return issue(issues, path, "must be a string");
      if (value.length === 0) return issue(issues, path, "must not be empty");
      if (options.pattern && !options.pattern.test(value)) return issue(issues, path, `must be ${expected}`);
      return value;
    },
  };
}

export function int(options: { min?: number; max?: number } = {}): Spec<number> {
  const expected = `an integer${describeRange(options.min, options.max)}`;
  return {
    expected,
    check(value, path, issues) {
      const ok =
        typeof value === "number" &&
        Number.isSafeInteger(value) &&
        (options.min === undefined || value >= options.min) &&
        (options.max === undefined || value <= options.max);
      return ok ? value : issue(issues, path, `must be ${expected}`);
    },
  };
}

/** A finite number; `above` is an exclusive lower bound, `min`/`max` inclusive. */
export function num(options: { above?: number; min?: number; max?: number } = {}): Spec<number> {
  const parts: string[] = [];
  if (options.above !== undefined) parts.push(`greater than ${options.above}`);
  if (options.min !== undefined) parts.push(`>= ${options.min}`);
  if (options.max !== undefined) parts.push(`at most ${options.max}`);
  const expected = parts.length > 0 ? `a number ${parts.join(" and ")}` : "a number";
  return {
    expected,
    check(value, path, issues) {
      const ok =
        typeof value === "number" &&
        Number.isFinite(value) &&
        (options.above === undefined || value > options.above) &&
        (options.min === undefined || value >= options.min) &&
        (options.max === undefined || value <= options.max);
      return ok ? value : issue(issues, path, `must be ${expected}`);
    },
  };
}

export function oneOf<const V extends readonly string[]>(values: V): Spec<V[number]> {
  const expected = `one of ${values.join(", ")}`;
  return {
    expected,
    check(value, path, issues) {
      return typeof value === "string" && values.includes(value) ? value : issue(issues, path, `must be ${expected}`);
    },
  };
}

export function nullable<T>(spec: Spec<T>): Spec<T | null> {
  return {
    expected: `${spec.expected}, or null`,
    ...(spec.shape ? { shape: spec.shape } : {}),
    check: (value, path, issues) => (value === null ? null : spec.check(value, path, issues)),
  };
}

function nullAsEmpty<T>(spec: Spec<T>): Spec<T> {
  return { ...spec, check: (value, path, issues) => spec.check(value ?? {}, path, issues) };
}

/** Rewrites the raw value before checking, e.g. to accept a legacy spelling. */
export function coerce<T>(fn: (value: unknown) => unknown, spec: Spec<T>): Spec<T> {
  return { ...spec, check: (value, path, issues) => spec.check(fn(value), path, issues) };
}

/**
 * Maps a checked value to its typed form. `fn` may throw; the error's message
 * becomes the issue (so parsers like parseHostPort plug in directly).
 */
export function transform<A, B>(spec: Spec<A>, fn: (value: A) => B, expected = spec.expected): Spec<B> {
  return {
    expected,
    ...(spec.shape ? { shape: spec.shape } : {}),
    check(value, path, issues) {
      const checked = spec.check(value, path, issues);
      if (checked === INVALID) return INVALID;
      try {
        return fn(checked);
      } catch (err) {
        return issue(issues, path, err instanceof Error ? err.message : String(err));
      }
    },
  };
}

export function list<T>(item: Spec<T>, options: { minItems?: number } = {}): Spec<readonly T[]> {
  const min = options.minItems ?? 0;
  return {
    expected: `a list of ${item.expected}`,
    shape: { kind: "list", item },
    check(value, path, issues) {
      if (!Array.isArray(value)) return issue(issues, path, "must be a list");
      if (value.length < min) return issue(issues, path, `must have at least ${min} ${min === 1 ? "entry" : "entries"}`);
      const out: T[] = [];
      let ok = true;
      value.forEach((v: unknown, i) => {
        const checked = item.check(v, [...path, i], issues);
        if (checked === INVALID) ok = false;
        else out.push(checked);
      });
      return ok ? out : INVALID;
    },
  };
}

export interface ObjOptions {
  /** Old key → new name (a sibling key or a full dotted path), reported as "`old` was renamed to `new`". */
  readonly renamed?: Readonly<Record<string, string>>;
}

type FieldsOutput<F> = { readonly [K in keyof F]: F[K] extends Field<infer T> ? T : never };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export function obj<F extends Record<string, Field<unknown>>>(
  fields: F,
  options: ObjOptions = {},
): Spec<FieldsOutput<F>> {
  const known = Object.keys(fields);
  const renamed = options.renamed ?? {};
  return {
    expected: "a mapping",
    shape: { kind: "object", fields },
    check(value, path, issues) {
      if (!isPlainObject(value)) return issue(issues, path, "must be a mapping");
      const out: Record<string, unknown> = {};
      let ok = true;
      const present = new Set<string>();
      for (const key of Object.keys(value)) {
        // hasOwn, not `in`: "constructor" or "__proto__" must not look like known keys.
        if (Object.hasOwn(fields, key)) {
          present.add(key);
          continue;
        }
        ok = false;
        if (Object.hasOwn(renamed, key)) {
          const to = renamed[key]!;
          present.add(to); // do not also report the new key as missing
          issue(issues, [...path, key], `\`${key}\` was renamed to \`${to}\``, "key");
        } else {
          const hint = suggestKey(key, known);
          issue(issues, [...path, key], hint ? `unknown option; did you mean \`${hint}\`?` : "unknown option", "key");
        }
      }
      for (const key of known) {
        const field = fields[key]!;
        const fieldPath = [...path, key];
        let checked: unknown;
        if (Object.hasOwn(value, key)) {
          checked = field.spec.check(value[key], fieldPath, issues);
        } else if (field.required) {
          if (!present.has(key)) issue(issues, fieldPath, "required option is missing", "parent");
          checked = INVALID;
        } else {
          checked = field.spec.check(field.fallback, fieldPath, issues);
        }
        if (checked === INVALID) ok = false;
        else out[key] = checked;
      }
      return ok ? (out as FieldsOutput<F>) : INVALID;
    },
  };
}

export type ValidateResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly issues: readonly SchemaIssue[] };

/** Runs a spec over a whole value, collecting every issue. */
export function validate<T>(spec: Spec<T>, value: unknown): ValidateResult<T> {
  const issues: SchemaIssue[] = [];
  const checked = spec.check(value, [], issues);
  if (checked === INVALID || issues.length > 0) return { ok: false, issues };
  return { ok: true, value: checked };
}

/** "listeners[0].type"; the empty path is "<root>". */
export function formatPath(path: Path): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? seg : `.${seg}`;
  }
  return out === "" ? "<root>" : out;
}

export interface OptionInfo {
  /** "xml.max_depth", "listeners[].name". */
  readonly path: string;
  readonly required: boolean;
  /** Raw default, or undefined for required options and sections. */
  readonly default: unknown;
  readonly expected: string;
  readonly section: boolean;
}

/** Flattens a schema into its options, in declaration order (for docs and their tests). */
export function listOptions(spec: Spec<unknown>, prefix = ""): OptionInfo[] {
  const out: OptionInfo[] = [];
  const shape = spec.shape;
  if (shape?.kind === "list") return listOptions(shape.item, `${prefix}[]`);
  if (shape?.kind !== "object") return out;
  for (const [key, field] of Object.entries(shape.fields)) {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    const inner = field.spec.shape;
    const isSection = inner?.kind === "object" || (inner?.kind === "list" && inner.item.shape?.kind === "object");
    out.push({
      path,
      required: field.required,
      default: field.required || isSection ? undefined : field.fallback,
      expected: field.spec.expected,
      section: isSection,
    });
    out.push(...listOptions(field.spec, path));
  }
  return out;
}

// ---------------------------------------------------------------------------
// "Did you mean": optimal string alignment distance (Levenshtein plus adjacent
// transpositions, so "lsiten" is one edit from "listen").

export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, d[(i - 2) * cols + j - 2]! + 1);
      }
      d[i * cols + j] = v;
    }
  }
  return d[rows * cols - 1]!;
}

/**
 * The closest known key within edit distance 2 (1 for keys of four characters or
 * fewer, where 2 edits match nearly anything), ignoring case and `-`/`_`/camelCase
 * differences. Ties go to the earlier-declared key.
 */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const squash = (s: string): string => s.toLowerCase().replace(/[-_]/g, "");
  const limit = key.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = squash(key) === squash(candidate) ? 0 : editDistance(key, candidate);
    if (d <= limit && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------
// Option types used by the config

/** `host:port` → Endpoint. */
export function endpoint(options: { allowPortZero?: boolean } = {}): Spec<Endpoint> {
  const expected = 'a "host:port" string';
  return {
    expected,
    check(value, path, issues) {
      if (typeof value !== "string") return issue(issues, path, `must be ${expected}`);
      try {
        return { text: value, ...parseHostPort(value, options) };
      } catch (err) {
        if (err instanceof AddressError) return issue(issues, path, err.message);
        throw err;
      }
    },
  };
}

/** A list of CIDRs (bare addresses allowed) → CidrSet; each bad entry reported at its index. */
export function cidrSet(): Spec<CidrSet> {
  const entry = transform(str(), (s) => parseCidr(s).text, "a CIDR such as 10.0.0.0/8 or 2001:db8::/32");
  return transform(list(entry), (texts) => new CidrSet(texts), `a list of ${entry.expected}`);
}

// ---------------------------------------------------------------------------
// The schema. New sections are one `section(obj({...}))` line here, a type in
// Config, and their defaults in DEFAULTS.

const D = DEFAULTS;

/** Generous caps that keep every duration below setTimeout's 2^31 ms ceiling. */
const MAX_SECONDS = 86_400;

/** `scheme://host[:port]` as a browser sends it in Origin, or "*". */
const ORIGIN = transform(
  str({ pattern: /^(\*|[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/\s?#]+)$/, hint: 'an origin such as "https://chat.example.org", or "*"' }),
  (s) => s.toLowerCase(),
);

const WEBSOCKET_SCHEMA = obj({
  tls: optional(bool(), D.websocket.tls),
  path: optional(str({ pattern: /^\/[^\s?#]*$/, hint: 'an absolute HTTP path such as "/xmpp-websocket"' }), D.websocket.path),
  allowed_origins: optional(list(ORIGIN, { minItems: 1 }), D.websocket.allowed_origins),
  trusted_proxies: optional(cidrSet(), D.websocket.trusted_proxies),
  ping_interval: optional(num({ min: 0, max: 3600 }), D.websocket.ping_interval),
});

/** A `websocket` listener without a `websocket:` section gets the defaults. */
const WEBSOCKET_DEFAULTS = (() => {
  const issues: SchemaIssue[] = [];
  const value = WEBSOCKET_SCHEMA.check({}, [], issues);
  if (value === INVALID) throw new Error(`websocket defaults do not validate: ${JSON.stringify(issues)}`);
  return value;
})();

const LISTENER_FIELDS = obj({
  name: required(str({ pattern: /^[a-z0-9][a-z0-9_-]*$/, hint: "lowercase letters, digits, _ or -, starting with a letter or digit" })),
  type: required(oneOf(LISTENER_TYPES)),
  listen: required(endpoint({ allowPortZero: true })),
  upstream: required(endpoint()),
  // YAML 1.1 reads a bare `off` as false; accept it so either YAML flavour works.
  proxy_protocol: optional(
    coerce((v) => (v === false ? "off" : v), oneOf(PROXY_PROTOCOL_MODES)),
    D.listener.proxy_protocol,
  ),
  accept_proxy_from: optional(cidrSet(), D.listener.accept_proxy_from),
  domain: optional(
    nullable(str({ pattern: /^[^\s@/]+$/, hint: "a domain name (no whitespace, @ or /)" })),
    D.listener.domain,
  ),
  websocket: optional(nullable(WEBSOCKET_SCHEMA), D.listener.websocket),
});

const LISTENER_SCHEMA: Spec<ListenerConfig> = transform(LISTENER_FIELDS, (l) =>
  l.type === "websocket" && l.websocket === null ? { ...l, websocket: WEBSOCKET_DEFAULTS } : l,
);

/** Adapts a shaping parser (which never throws) to a Spec, keeping its sub-path. */
function parsed<T>(expected: string, parse: (value: unknown) => ParseResult<T>): Spec<T> {
  return {
    expected,
    check(value, path, issues) {
      const r = parse(value);
      if (r.ok) return r.value;
      return issue(issues, r.at === undefined ? path : [...path, ...r.at.split(".")], r.message);
    },
  };
}

/** `{ rate?, burst?, stanza_rates? }`: mod_limits' entry plus our per-kind stanza buckets. */
/** `workers: auto | N`: "auto" is one worker per available CPU. */
export function parseWorkers(input: unknown): ParseResult<number> {
  if (input === "auto") return { ok: true, value: Math.max(1, Math.min(256, availableParallelism())), notes: [] };
  if (typeof input === "number" && Number.isInteger(input) && input >= 1 && input <= 256) return { ok: true, value: input, notes: [] };
  return { ok: false, message: 'must be "auto" or an integer from 1 to 256' };
}

function parseSessionLimit(input: unknown): ParseResult<SessionLimit> {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { ok: false, message: `expected { rate: "3kb/s", burst: "2s", stanza_rates: { message: { rate: 10, burst: 20 } } }` };
  }
  const { stanza_rates: rates, ...rest } = input as Record<string, unknown>;
  let stanzas: StanzaRates = {};
  if (rates !== undefined && rates !== null) {
    const r = parseStanzaRates(rates);
    if (!r.ok) return { ...r, at: r.at === undefined ? "stanza_rates" : `stanza_rates.${r.at}` };
    stanzas = r.value;
  }
  if (rest.rate === undefined && rest.burst === undefined && Object.keys(rest).length === 0) {
    return { ok: true, value: { bytes: null, stanzas }, notes: [] };
  }
  const bytes = parseByteLimit(rest);
  if (!bytes.ok) return bytes;
  return { ok: true, value: { bytes: bytes.value, stanzas }, notes: bytes.notes };
}

export function bool(): Spec<boolean> {
  return {
    expected: "true or false",
    check(value, path, issues) {
      return typeof value === "boolean" ? value : issue(issues, path, "must be true or false");
    },
  };
}

const SESSION_LIMIT = nullable(parsed<SessionLimit>(`{ rate: "3kb/s", burst: "2s" }`, parseSessionLimit));

/** A local domain of the server, prepped as JIDs are (`Example.ORG.` → `example.org`). */
const LOCAL_HOST = transform(
  str({ pattern: /^[^\s@/]+$/, hint: 'a domain, e.g. "example.org" or "conference.example.org" (no whitespace, @ or /)' }),
  (h) => prepJid(h) ?? h,
);

/**
 * mod_limits keeps its built-in limit for a session type the `limits` table
 * does not name. So once `limits` names c2s or s2sin (mod_limits is in use),
 * the other one, when absent, gets Prosody's built-in value (c2s 10 KiB/s,
 * s2sin 30 KiB/s, 2 s burst). Written `null` it stays unlimited.
 */
function withBuiltinLimits(raw: unknown): unknown {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return raw;
  const r = raw as Record<string, unknown>;
  const hasC2s = Object.hasOwn(r, "c2s");
  const hasS2s = Object.hasOwn(r, "s2sin");
  if (hasC2s === hasS2s) return raw;
  const [missing, builtin] = hasC2s ? (["s2sin", PROSODY_BUILTIN_LIMITS.s2sin] as const) : (["c2s", PROSODY_BUILTIN_LIMITS.c2s] as const);
  return { ...r, [missing]: { rate: builtin.rate, burst: builtin.burst } };
}

export const CONFIG_SCHEMA: Spec<Config> = obj({
  listeners: required(list(LISTENER_SCHEMA, { minItems: 1 })),
  hosts: optional(list(LOCAL_HOST), D.hosts),
  tls: section(
    obj({
      certificates: optional(
        list(obj({ cert: required(str({ hint: "a PEM certificate file (chain allowed, leaf first)" })), key: required(str({ hint: "a PEM private key file" })) })),
        D.tls.certificates,
      ),
      starttls: optional(oneOf(["required", "optional", "off"] as const), D.tls.starttls),
      min_version: optional(oneOf(["TLSv1.2", "TLSv1.3"] as const), D.tls.min_version),
      ciphers: optional(nullable(str({ hint: "an OpenSSL cipher list" })), D.tls.ciphers),
      handshake_timeout: optional(num({ above: 0, max: MAX_SECONDS }), D.tls.handshake_timeout),
      upstream_tls: optional(bool(), D.tls.upstream_tls),
    }),
  ),
  limits: section(
    coerce(withBuiltinLimits, obj({
      c2s: optional(SESSION_LIMIT, D.limits.c2s),
      s2sin: optional(SESSION_LIMIT, D.limits.s2sin),
      unlimited_jids: optional(list(str({ pattern: /^[^\s/]+$/, hint: "a bare JID or a domain" })), D.limits.unlimited_jids),
      pre_auth: section(
        obj({
          max_bytes: optional(int({ min: 0, max: 67_108_864 }), D.limits.pre_auth.max_bytes),
          max_stanzas: optional(int({ min: 0, max: 1_000_000 }), D.limits.pre_auth.max_stanzas),
        }),
      ),
      max_connections_per_ip: optional(int({ min: 0, max: 1_000_000 }), D.limits.max_connections_per_ip),
      connection_rate_per_ip: optional(nullable(parsed("{ rate: 1, burst: 10 } (connections per second)", parseStanzaRate)), D.limits.connection_rate_per_ip),
    })),
  ),
  firewall: section(
    obj({
      scripts: optional(list(str({ hint: "a rule file path" })), D.firewall.scripts),
      watch: optional(bool(), D.firewall.watch),
      shadow: optional(list(str({ hint: "a rule file path" })), D.firewall.shadow),
    }),
  ),
  knowledge: section(
    obj({
      rosters: optional(bool(), D.knowledge.rosters),
      sessions: optional(bool(), D.knowledge.sessions),
      lists: section(
        obj({
          timeout: optional(num({ above: 0, max: 600 }), D.knowledge.lists.timeout),
          max_bytes: optional(int({ min: 1024, max: 1_073_741_824 }), D.knowledge.lists.max_bytes),
        }),
      ),
    }),
  ),
  muc_limits: optional(nullable(parsed("MUC limits options (see docs/muc-limits.md)", parseMucLimits)), D.muc_limits),
  registration: optional(nullable(parsed("registration options (see docs/registration.md)", parseRegistrationOptions)), D.registration),
  contact_info: optional(nullable(parsed("{ abuse: [\"mailto:…\"], … }", parseContactInfo)), D.contact_info),
  component: optional(parsed('{ jid: "guard.example.org", secret: "…", upstream: "127.0.0.1:5347" }', parseComponentOptions), D.component),
  state: optional(parsed('{ path: "data/xmpp-guard.sqlite" }', parseStateOptions), D.state),
  workers: optional(parsed('"auto" or a number of worker processes (1-256)', parseWorkers), D.workers),
  max_stanza_size: optional(int({ min: 1024, max: 67_108_864 }), D.max_stanza_size),
  xml: section(
    obj({
      max_depth: optional(int({ min: 2, max: 1024 }), D.xml.max_depth),
      max_attributes: optional(int({ min: 1, max: 4096 }), D.xml.max_attributes),
      max_header_size: optional(int({ min: 256, max: 1_048_576 }), D.xml.max_header_size),
    }),
  ),
  timeouts: section(
    obj({
      connect: optional(num({ above: 0, max: MAX_SECONDS }), D.timeouts.connect),
      stream_header: optional(num({ above: 0, max: MAX_SECONDS }), D.timeouts.stream_header),
      pre_auth_idle: optional(num({ above: 0, max: MAX_SECONDS }), D.timeouts.pre_auth_idle),
      pre_auth: optional(num({ above: 0, max: MAX_SECONDS }), D.timeouts.pre_auth),
      stanza: optional(num({ above: 0, max: MAX_SECONDS }), D.timeouts.stanza),
    }),
  ),
  shutdown: section(
    obj({
      drain_seconds: optional(num({ min: 0, max: MAX_SECONDS }), D.shutdown.drain_seconds),
    }),
  ),
  admin: section(
    obj({
      listen: optional(nullable(endpoint({ allowPortZero: true })), D.admin.listen),
      token: optional(nullable(str({ pattern: /^[\x21-\x7e]{16,}$/, hint: "at least 16 printable characters without spaces" })), D.admin.token),
      token_file: optional(nullable(str({ hint: "a file holding the admin token" })), D.admin.token_file),
    }),
  ),
  log: section(
    obj({
      level: optional(oneOf(LOG_LEVELS), D.log.level),
      format: optional(oneOf(LOG_FORMATS), D.log.format),
    }),
  ),
});

// ---------------------------------------------------------------------------
// Cross-field checks: run on a shape-valid Config, report with the same paths.

export type Report = (path: Path, message: string) => void;
export type CrossCheck = (config: Config, report: Report) => void;

interface BindKey {
  readonly host: string; // canonical IP or lowercased hostname
  readonly family: 0 | 4 | 6; // 0: hostname
  readonly port: number;
}

function bindKey(e: Endpoint): BindKey {
  const ip = canonicalIp(e.host);
  if (ip === null) return { host: e.host.toLowerCase().replace(/\.$/, ""), family: 0, port: e.port };
  return { host: ip, family: ip.includes(":") ? 6 : 4, port: e.port };
}

/**
 * Two listen addresses collide when binding both would fail: same port (not 0)
 * and the same host, or a family's wildcard next to an address of that family.
 * Cross-family overlap ("::" and "0.0.0.0") depends on IPV6_V6ONLY, so it is not
 * flagged here.
 */
function bindsCollide(a: BindKey, b: BindKey): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  if (a.host === b.host) return true;
  const wildcard = (k: BindKey, other: BindKey): boolean =>
    (k.host === "0.0.0.0" && other.family === 4) || (k.host === "::" && other.family === 6);
  return wildcard(a, b) || wildcard(b, a);
}

/** Would dialing `up` reach a socket listening on `listen`? (Same address, or loopback/any into a wildcard.) */
function reachesListener(up: BindKey, listen: BindKey): boolean {
  if (up.port !== listen.port || listen.port === 0) return false;
  if (up.host === listen.host) return true;
  const v4Local = up.host === "0.0.0.0" || /^127\./.test(up.host);
  const v6Local = up.host === "::" || up.host === "::1";
  const localhost = up.host === "localhost";
  if (localhost && (listen.host === "::1" || /^127\./.test(listen.host))) return true;
  // A "::" listener is dual-stack by default, so IPv4 loopback reaches it too.
  if (listen.host === "::") return localhost || v4Local || v6Local;
  return listen.host === "0.0.0.0" && (localhost || v4Local);
}

/** 127.0.0.0/8, ::1 (also as a mapped address) and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const ip = canonicalIp(h);
  if (ip === null) return false;
  return /^127\./.test(ip) || ip === "::1" || /^::ffff:127\./.test(ip);
}

export const CROSS_CHECKS: readonly CrossCheck[] = [
  function distinctHosts(config, report) {
    const seen = new Map<string, number>();
    config.hosts.forEach((h, i) => {
      const first = seen.get(h);
      if (first === undefined) seen.set(h, i);
      else report(["hosts", i], `"${h}" is listed twice (also hosts[${first}])`);
    });
  },
  function mucHostsAreLocal(config, report) {
    // A MUC service is one of the server's components: with the local
    // domains given, one missing from them is a typo, or traffic to the
    // rooms would count as leaving for a remote domain.
    if (config.hosts.length === 0 || config.muc_limits === null) return;
    const local = new Set(config.hosts);
    config.muc_limits.hosts.forEach((h, i) => {
      if (!local.has(h)) report(["muc_limits", "hosts", i], `"${h}" is not in hosts (the server's local domains); add it there too`);
    });
  },
  function uniqueListenerNames(config, report) {
    const seen = new Map<string, number>();
    config.listeners.forEach((l, i) => {
      const first = seen.get(l.name);
      if (first === undefined) seen.set(l.name, i);
      else report(["listeners", i, "name"], `duplicate listener name "${l.name}" (also listeners[${first}])`);
    });
  },
  function distinctListenAddresses(config, report) {
    const binds: { key: BindKey; path: Path; text: string }[] = [];
    config.listeners.forEach((l, i) => binds.push({ key: bindKey(l.listen), path: ["listeners", i, "listen"], text: l.listen.text }));
    if (config.admin.listen) binds.push({ key: bindKey(config.admin.listen), path: ["admin", "listen"], text: config.admin.listen.text });
    binds.forEach((b, i) => {
      const clash = binds.slice(0, i).find((earlier) => bindsCollide(earlier.key, b.key));
      if (clash) report(b.path, `"${b.text}" conflicts with ${formatPath(clash.path)} "${clash.text}"`);
    });
  },
  function directTlsNeedsCertificates(config, report) {
    if (config.tls.certificates.length > 0) return;
    config.listeners.forEach((l, i) => {
      if (l.type.endsWith("-tls")) report(["listeners", i, "type"], `${l.type} needs tls.certificates (generate a development pair with: xmpp-guard gen-cert --domain DOMAIN --out certs)`);
      if (l.websocket?.tls === true) report(["listeners", i, "websocket", "tls"], "wss needs tls.certificates (or set it false behind a web server that terminates TLS)");
    });
  },
  function websocketOptionsOnlyOnWebsocket(config, report) {
    config.listeners.forEach((l, i) => {
      if (l.type !== "websocket" && l.websocket !== null) report(["listeners", i, "websocket"], `only a listener of type websocket takes websocket options (this one is ${l.type})`);
    });
  },
  function upstreamTlsWithoutProxyHeader(config, report) {
    if (!config.tls.upstream_tls) return;
    config.listeners.forEach((l, i) => {
      if (l.proxy_protocol !== "off") report(["listeners", i, "proxy_protocol"], "cannot be combined with tls.upstream_tls (the PROXY header would have to precede the TLS handshake)");
    });
  },
  function adminTokenOffLoopback(config, report) {
    const a = config.admin;
    if (a.token !== null && a.token_file !== null) report(["admin", "token_file"], "give admin.token or admin.token_file, not both");
    if (a.listen === null || isLoopbackHost(a.listen.host) || a.token !== null || a.token_file !== null) return;
    report(["admin", "listen"], `"${a.listen.text}" is not a loopback address: set admin.token (or admin.token_file) too, so that only holders of the token can reload, list or close sessions`);
  },
  function upstreamIsNotSelf(config, report) {
    config.listeners.forEach((l, i) => {
      const up = bindKey(l.upstream);
      const j = config.listeners.findIndex((other) => reachesListener(up, bindKey(other.listen)));
      if (j < 0) return;
      report(
        ["listeners", i, "upstream"],
        `"${l.upstream.text}" reaches this proxy's own listeners[${j}].listen "${config.listeners[j]!.listen.text}" (it would connect to itself)`,
      );
    });
  },
];

export type CheckResult = { readonly ok: true; readonly config: Config } | { readonly ok: false; readonly issues: readonly SchemaIssue[] };

/** Schema pass, then cross-field checks, then deep-freeze. */
export function checkConfig(input: unknown): CheckResult {
  const result = validate(CONFIG_SCHEMA, input);
  if (!result.ok) return result;
  const issues: SchemaIssue[] = [];
  for (const check of CROSS_CHECKS) check(result.value, (path, message) => issues.push({ path, target: "value", message }));
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, config: deepFreeze(result.value) };
}

/** Freezes a value and everything reachable through its own enumerable properties. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
