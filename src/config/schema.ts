// The configuration schema: the typed Config, every default in one object, and
// CONFIG_SCHEMA, which composes the sections. Each feature declares its own
// section's spec beside its code (MUC_LIMITS_SPEC in muc/, REGISTRATION_SPEC,
// CONTACT_INFO_SPEC and COMPONENT_SPEC in registration/, STATE_SPEC in state/,
// KNOWLEDGE_SPEC in knowledge/) with the validator of util/validate.ts; the
// checks across sections are config/cross-checks.ts. Validation collects every
// issue (never first-fail), rejects unknown keys, and runs cross-field checks
// only once the shape is sound. This module knows nothing about YAML or files:
// issues carry a key path and load.ts turns it into file:line:col. Keys stay
// snake_case end to end, so the name in the YAML, the docs, the error messages
// and the code is the same. See docs/configuration.md, "How the config is
// validated".
import { availableParallelism } from "node:os";
import { cidrSet, endpoint, type Endpoint } from "../util/address.js";
import type { CidrSet } from "../util/ip.js";
import {
  INVALID,
  bool,
  coerce,
  deepFreeze,
  int,
  list,
  nullAsEmpty,
  nullable,
  num,
  obj,
  oneOf,
  opaque,
  optional,
  parsed,
  required,
  section,
  str,
  transform,
  validate,
  type SchemaIssue,
  type Spec,
} from "../util/validate.js";
import { KNOWLEDGE_DEFAULTS, KNOWLEDGE_SPEC, type KnowledgeConfig } from "../knowledge/options.js";
import { MUC_LIMITS_SPEC, type MucLimitsOptions } from "../muc/config.js";
import { CONTACT_INFO_SPEC, type ContactInfo } from "../registration/contact-info.js";
import { REGISTRATION_SPEC, type RegistrationOptions } from "../registration/options.js";
import { STATE_SPEC, type StateOptions } from "../state/state-options.js";
import { COMPONENT_SPEC, type ComponentOptions } from "../registration/component.js";
import { PROSODY_BUILTIN_LIMITS, parseByteLimit, parseStanzaRate, parseStanzaRates, type BucketSpec, type ByteLimit, type ParseResult, type StanzaRates } from "../shaping/units.js";
import { prepJid } from "../xmpp/jid.js";
import { crossCheck } from "./cross-checks.js";

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

export type { Endpoint } from "../util/address.js";

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
  knowledge: KNOWLEDGE_DEFAULTS,
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


/** `workers: auto | N`: "auto" is one worker per available CPU. */
export function parseWorkers(input: unknown): ParseResult<number> {
  if (input === "auto") return { ok: true, value: Math.max(1, Math.min(256, availableParallelism())), notes: [] };
  if (typeof input === "number" && Number.isInteger(input) && input >= 1 && input <= 256) return { ok: true, value: input, notes: [] };
  return { ok: false, message: 'must be "auto" or an integer from 1 to 256' };
}

/** `{ rate?, burst?, stanza_rates? }`: mod_limits' entry plus our per-kind stanza buckets. */
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
  knowledge: section(KNOWLEDGE_SPEC),
  muc_limits: optional(nullable(opaque(MUC_LIMITS_SPEC, "MUC limits options (see docs/muc-limits.md)")), D.muc_limits),
  registration: optional(nullable(opaque(REGISTRATION_SPEC, "registration options (see docs/registration.md)")), D.registration),
  contact_info: optional(nullable(opaque(CONTACT_INFO_SPEC, "{ abuse: [\"mailto:…\"], … }")), D.contact_info),
  component: optional(nullable(opaque(COMPONENT_SPEC, '{ jid: "guard.example.org", secret: "…", upstream: "127.0.0.1:5347" }')), D.component),
  state: optional(nullAsEmpty(opaque(STATE_SPEC, '{ path: "data/xmpp-guard.sqlite" }')), D.state),
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

export type CheckResult = { readonly ok: true; readonly config: Config } | { readonly ok: false; readonly issues: readonly SchemaIssue[] };

/** Schema pass, then cross-field checks (config/cross-checks.ts), then deep-freeze. */
export function checkConfig(input: unknown): CheckResult {
  const result = validate(CONFIG_SCHEMA, input);
  if (!result.ok) return result;
  const issues = crossCheck(result.value);
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, config: deepFreeze(result.value) };
}
