// Tests for the Config schema (the validator itself: util/validate.test.ts): defaults, normalisation, issue
// collection, unknown-key suggestions, renamed options, cross-field checks, freezing.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CONFIG_SCHEMA, DEFAULTS, checkConfig } from "./schema.js";
import type { Config } from "./schema.js";
import { isLoopbackHost } from "../util/address.js";
import { formatPath, listOptions, type SchemaIssue } from "../util/validate.js";

const LISTENER = { name: "c2s", type: "c2s", listen: "0.0.0.0:5222", upstream: "127.0.0.1:15222" };

function ok(input: unknown): Config {
  const result = checkConfig(input);
  if (!result.ok) assert.fail(`unexpected issues: ${JSON.stringify(result.issues)}`);
  return result.config;
}

/** Issues as "path: message" (with the target when it is not the value). */
function problems(input: unknown): string[] {
  const result = checkConfig(input);
  assert.equal(result.ok, false, "expected issues");
  return (result.ok ? [] : result.issues).map(show);
}

function show(i: SchemaIssue): string {
  return `${formatPath(i.path)}: ${i.message}${i.target === "value" ? "" : ` [${i.target}]`}`;
}

describe("defaults", () => {
  it("fills every optional option from DEFAULTS", () => {
    const config = ok({ listeners: [LISTENER] });
    assert.deepEqual(JSON.parse(JSON.stringify(config)), {
      listeners: [
        {
          name: "c2s",
          type: "c2s",
          listen: { text: "0.0.0.0:5222", host: "0.0.0.0", port: 5222 },
          upstream: { text: "127.0.0.1:15222", host: "127.0.0.1", port: 15222 },
          proxy_protocol: "off",
          accept_proxy_from: [],
          domain: null,
          websocket: null,
        },
      ],
      tls: { certificates: [], starttls: "required", min_version: "TLSv1.2", ciphers: null, handshake_timeout: 10, upstream_tls: false },
      limits: {
        c2s: null,
        s2sin: null,
        unlimited_jids: [],
        pre_auth: { max_bytes: 65536, max_stanzas: 64 },
        max_connections_per_ip: 0,
        connection_rate_per_ip: null,
      },
      hosts: [],
      max_stanza_size: 262144,
      firewall: { scripts: [], watch: true, shadow: [] },
      knowledge: { rosters: true, sessions: true, lists: { timeout: 30, max_bytes: 16777216 } },
      muc_limits: null,
      registration: null,
      contact_info: null,
      component: null,
      state: { path: "data/xmpp-guard.sqlite", redis: null, prefix: "xg:" },
      workers: 1,
      xml: { max_depth: 64, max_attributes: 64, max_header_size: 8192 },
      timeouts: { connect: 10, stream_header: 30, pre_auth_idle: 60, pre_auth: 120, stanza: 60 },
      shutdown: { drain_seconds: 10 },
      admin: { listen: { text: "127.0.0.1:9470", host: "127.0.0.1", port: 9470 }, token: null, token_file: null },
      log: { level: "info", format: "json" },
    });
  });

  it("treats a null section (all children commented out) as all defaults", () => {
    const config = ok({ listeners: [LISTENER], xml: null, timeouts: null, log: null });
    assert.equal(config.xml.max_depth, DEFAULTS.xml.max_depth);
    assert.equal(config.timeouts.stream_header, DEFAULTS.timeouts.stream_header);
    assert.equal(config.log.level, "info");
  });

  it("keeps set values and defaults the rest of a section", () => {
    const config = ok({ listeners: [LISTENER], xml: { max_depth: 16 }, timeouts: { connect: 0.5 } });
    assert.deepEqual({ ...config.xml }, { max_depth: 16, max_attributes: 64, max_header_size: 8192 });
    assert.deepEqual({ ...config.timeouts }, { connect: 0.5, stream_header: 30, pre_auth_idle: 60, pre_auth: 120, stanza: 60 });
  });

  it("lists every option with its default (DEFAULTS is the only source)", () => {
    const options = listOptions(CONFIG_SCHEMA);
    const byPath = new Map(options.map((o) => [o.path, o]));
    assert.deepEqual(
      options.map((o) => o.path),
      [
        "listeners",
        "listeners[].name",
        "listeners[].type",
        "listeners[].listen",
        "listeners[].upstream",
        "listeners[].proxy_protocol",
        "listeners[].accept_proxy_from",
        "listeners[].domain",
        "listeners[].websocket",
        "listeners[].websocket.tls",
        "listeners[].websocket.path",
        "listeners[].websocket.allowed_origins",
        "listeners[].websocket.trusted_proxies",
        "listeners[].websocket.ping_interval",
        "hosts",
        "tls",
        "tls.certificates",
        "tls.certificates[].cert",
        "tls.certificates[].key",
        "tls.starttls",
        "tls.min_version",
        "tls.ciphers",
        "tls.handshake_timeout",
        "tls.upstream_tls",
        "limits",
        "limits.c2s",
        "limits.s2sin",
        "limits.unlimited_jids",
        "limits.pre_auth",
        "limits.pre_auth.max_bytes",
        "limits.pre_auth.max_stanzas",
        "limits.max_connections_per_ip",
        "limits.connection_rate_per_ip",
        "firewall",
        "firewall.scripts",
        "firewall.watch",
        "firewall.shadow",
        "knowledge",
        "knowledge.rosters",
        "knowledge.sessions",
        "knowledge.lists",
        "knowledge.lists.timeout",
        "knowledge.lists.max_bytes",
        "muc_limits",
        "registration",
        "contact_info",
        "component",
        "state",
        "workers",
        "max_stanza_size",
        "xml",
        "xml.max_depth",
        "xml.max_attributes",
        "xml.max_header_size",
        "timeouts",
        "timeouts.connect",
        "timeouts.stream_header", "timeouts.pre_auth_idle", "timeouts.pre_auth", "timeouts.stanza",
        "shutdown",
        "shutdown.drain_seconds",
        "admin",
        "admin.listen",
        "admin.token",
        "admin.token_file",
        "log",
        "log.level",
        "log.format",
      ],
    );
    assert.equal(byPath.get("listeners")?.required, true);
    assert.equal(byPath.get("listeners")?.section, true);
    assert.equal(byPath.get("listeners[].name")?.required, true);
    assert.equal(byPath.get("listeners[].proxy_protocol")?.default, "off");
    assert.deepEqual(byPath.get("listeners[].accept_proxy_from")?.default, []);
    assert.equal(byPath.get("listeners[].domain")?.default, null);
    assert.equal(byPath.get("max_stanza_size")?.default, 262144);
    assert.equal(byPath.get("admin.listen")?.default, "127.0.0.1:9470");
    assert.equal(byPath.get("xml")?.section, true);
    assert.equal(byPath.get("log.level")?.expected, "one of trace, debug, info, warn, error, fatal, silent");
  });
});

describe("admin", () => {
  it("off loopback, the admin endpoint needs a token; token and token_file exclude each other", () => {
    const issues = (admin: Record<string, unknown>): string[] => {
      const r = checkConfig({ listeners: [LISTENER], admin });
      return r.ok ? [] : r.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    };
    assert.deepEqual(issues({ listen: "127.0.0.1:9470" }), []);
    assert.deepEqual(issues({ listen: "[::1]:9470" }), []);
    assert.deepEqual(issues({ listen: "localhost:9470" }), []);
    assert.match(issues({ listen: "0.0.0.0:9470" })[0]!, /^admin\.listen: "0\.0\.0\.0:9470" is not a loopback address: set admin\.token/);
    assert.deepEqual(issues({ listen: "0.0.0.0:9470", token: "0123456789abcdef" }), []);
    assert.deepEqual(issues({ listen: "0.0.0.0:9470", token_file: "/run/secrets/admin" }), []);
    assert.match(issues({ listen: "127.0.0.1:9470", token: "short" })[0]!, /^admin\.token: must be at least 16 printable/);
    assert.match(issues({ token: "0123456789abcdef", token_file: "x" })[0]!, /not both/);
    assert.ok(isLoopbackHost("127.1.2.3") && isLoopbackHost("::1") && !isLoopbackHost("10.0.0.1") && !isLoopbackHost("example.org"));
  });
});

describe("normalisation", () => {
  it("pre-parses addresses and CIDR lists", () => {
    const config = ok({
      listeners: [
        {
          ...LISTENER,
          listen: "*:0",
          upstream: "[::1]:15222",
          accept_proxy_from: ["10.0.0.0/8", "2001:DB8::/32", "192.0.2.7"],
          domain: "example.org",
        },
      ],
      admin: { listen: null },
    });
    const l = config.listeners[0]!;
    assert.deepEqual(l.listen, { text: "*:0", host: "0.0.0.0", port: 0 });
    assert.deepEqual(l.upstream, { text: "[::1]:15222", host: "::1", port: 15222 });
    assert.deepEqual(l.accept_proxy_from.entries, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]);
    assert.equal(l.accept_proxy_from.has("::ffff:10.20.30.40"), true);
    assert.equal(l.accept_proxy_from.has("192.0.2.8"), false);
    assert.equal(l.domain, "example.org");
    assert.equal(config.admin.listen, null);
  });

  it("accepts proxy_protocol as YAML 1.1's false and normalises it to off", () => {
    assert.equal(ok({ listeners: [{ ...LISTENER, proxy_protocol: false }] }).listeners[0]!.proxy_protocol, "off");
    assert.equal(ok({ listeners: [{ ...LISTENER, proxy_protocol: "v2" }] }).listeners[0]!.proxy_protocol, "v2");
    assert.deepEqual(problems({ listeners: [{ ...LISTENER, proxy_protocol: true }] }), [
      "listeners[0].proxy_protocol: must be one of off, v1, v2",
    ]);
  });

  it("accepts boundary values", () => {
    const config = ok({
      listeners: [LISTENER],
      max_stanza_size: 1024,
      xml: { max_depth: 1024, max_attributes: 1, max_header_size: 1048576 },
      timeouts: { connect: 86400, stream_header: 0.001 },
      shutdown: { drain_seconds: 0 },
    });
    assert.equal(config.max_stanza_size, 1024);
    assert.equal(config.shutdown.drain_seconds, 0);
  });
});

describe("freezing", () => {
  it("deep-freezes the result, including endpoints and CIDR sets", () => {
    const config = ok({ listeners: [{ ...LISTENER, accept_proxy_from: ["10.0.0.0/8"] }] });
    const l = config.listeners[0]!;
    for (const v of [config, config.listeners, l, l.listen, l.upstream, l.accept_proxy_from, config.xml, config.admin]) {
      assert.equal(Object.isFrozen(v), true);
    }
    assert.throws(() => {
      (config as { max_stanza_size: number }).max_stanza_size = 1;
    }, TypeError);
    assert.throws(() => {
      (l.listen as { port: number }).port = 1;
    }, TypeError);
    assert.equal(l.accept_proxy_from.has("10.1.1.1"), true, "a frozen CidrSet still works");
  });

  it("freezes DEFAULTS", () => {
    assert.equal(Object.isFrozen(DEFAULTS.xml), true);
    assert.equal(Object.isFrozen(DEFAULTS.listener.accept_proxy_from), true);
  });
});

describe("issues", () => {
  it("collects every issue in one pass, not just the first", () => {
    assert.deepEqual(
      problems({
        listeners: [
          { name: "C2S", type: "c2x", listen: 5222, upstream: "127.0.0.1:0", proxy_protocol: "v3", accept_proxy_from: ["10.0.0.1/8", 7] },
          { name: "s2s", type: "s2s" },
        ],
        max_stanza_size: 100,
        xml: { max_depth: 1.5, max_attributes: "64", max_header_size: 255 },
        timeouts: { connect: 0, stream_header: -1 },
        shutdown: { drain_seconds: 86401 },
        admin: { listen: "localhost" },
        log: { level: "verbose" },
      }),
      [
        "listeners[0].name: must be lowercase letters, digits, _ or -, starting with a letter or digit",
        "listeners[0].type: must be one of c2s, c2s-tls, s2s, s2s-tls, websocket",
        'listeners[0].listen: must be a "host:port" string',
        "listeners[0].upstream: port 0 is out of range (1..65535)",
        "listeners[0].proxy_protocol: must be one of off, v1, v2",
        'listeners[0].accept_proxy_from[0]: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)',
        "listeners[0].accept_proxy_from[1]: must be a string",
        "listeners[1].listen: required option is missing [parent]",
        "listeners[1].upstream: required option is missing [parent]",
        "max_stanza_size: must be an integer between 1024 and 67108864",
        "xml.max_depth: must be an integer between 2 and 1024",
        "xml.max_attributes: must be an integer between 1 and 4096",
        "xml.max_header_size: must be an integer between 256 and 1048576",
        "timeouts.connect: must be a number greater than 0 and at most 86400",
        "timeouts.stream_header: must be a number greater than 0 and at most 86400",
        "shutdown.drain_seconds: must be a number >= 0 and at most 86400",
        'admin.listen: missing port (expected "host:port")',
        "log.level: must be one of trace, debug, info, warn, error, fatal, silent",
      ],
    );
  });

  it("reports structural problems", () => {
    assert.deepEqual(problems(null), ["<root>: must be a mapping"]);
    assert.deepEqual(problems([]), ["<root>: must be a mapping"]);
    assert.deepEqual(problems({}), ["listeners: required option is missing [parent]"]);
    assert.deepEqual(problems({ listeners: [] }), ["listeners: must have at least 1 entry"]);
    assert.deepEqual(problems({ listeners: LISTENER }), ["listeners: must be a list"]);
    assert.deepEqual(problems({ listeners: ["c2s"] }), ["listeners[0]: must be a mapping"]);
    assert.deepEqual(problems({ listeners: [LISTENER], xml: [] }), ["xml: must be a mapping"]);
    assert.deepEqual(problems({ listeners: [LISTENER], max_stanza_size: null }), [
      "max_stanza_size: must be an integer between 1024 and 67108864",
    ]);
    assert.deepEqual(problems({ listeners: [{ ...LISTENER, name: "" }] }), ["listeners[0].name: must not be empty"]);
    assert.deepEqual(problems({ listeners: [{ ...LISTENER, domain: "user@example.org" }] }), [
      "listeners[0].domain: must be a domain name (no whitespace, @ or /)",
    ]);
    assert.deepEqual(problems({ listeners: [LISTENER], max_stanza_size: Number.NaN }), [
      "max_stanza_size: must be an integer between 1024 and 67108864",
    ]);
    assert.deepEqual(problems({ listeners: [LISTENER], timeouts: { connect: Infinity } }), [
      "timeouts.connect: must be a number greater than 0 and at most 86400",
    ]);
  });

  it("does not treat non-plain objects as mappings", () => {
    assert.deepEqual(problems({ listeners: [LISTENER], xml: new Map() }), ["xml: must be a mapping"]);
    assert.deepEqual(problems({ listeners: [LISTENER], xml: new Date(0) }), ["xml: must be a mapping"]);
  });
});

describe("unknown keys", () => {
  it("rejects them at the key, with a suggestion when one is close", () => {
    assert.deepEqual(
      problems({
        listeners: [{ ...LISTENER, lisen: "x", "proxy-protocol": "v1", acceptProxyFrom: [] }],
        max_stanza_sise: 1,
        xml: { maxdepth: 3 },
        lgo: {},
        frobnicate: true,
      }),
      [
        // A mapping's own unknown keys come before its children's issues (load.ts sorts by position).
        "max_stanza_sise: unknown option; did you mean `max_stanza_size`? [key]",
        "lgo: unknown option; did you mean `log`? [key]",
        "frobnicate: unknown option [key]",
        "listeners[0].lisen: unknown option; did you mean `listen`? [key]",
        "listeners[0].proxy-protocol: unknown option; did you mean `proxy_protocol`? [key]",
        "listeners[0].acceptProxyFrom: unknown option; did you mean `accept_proxy_from`? [key]",
        "xml.maxdepth: unknown option; did you mean `max_depth`? [key]",
      ],
    );
  });

  it("does not mistake Object.prototype names for known keys", () => {
    const input = JSON.parse('{"listeners": [], "constructor": 1, "__proto__": {"x": 1}, "toString": 2}') as unknown;
    assert.deepEqual(problems(input), [
      "constructor: unknown option [key]",
      "__proto__: unknown option [key]",
      "toString: unknown option [key]",
      "listeners: must have at least 1 entry",
    ]);
  });

});

describe("cross-field checks", () => {
  const two = (a: object, b: object): unknown => ({ listeners: [{ ...LISTENER, ...a }, { ...LISTENER, name: "two", ...b }] });

  it("rejects duplicate listener names", () => {
    assert.deepEqual(problems(two({}, { name: "c2s", listen: "0.0.0.0:5223" })), [
      'listeners[1].name: duplicate listener name "c2s" (also listeners[0])',
    ]);
  });

  it("rejects colliding listen addresses", () => {
    assert.deepEqual(problems(two({}, { listen: "*:5222" })), [
      'listeners[1].listen: "*:5222" conflicts with listeners[0].listen "0.0.0.0:5222"',
    ]);
    assert.deepEqual(problems(two({}, { listen: "192.0.2.1:5222" })), [
      'listeners[1].listen: "192.0.2.1:5222" conflicts with listeners[0].listen "0.0.0.0:5222"',
    ]);
    assert.deepEqual(problems(two({ listen: "[::1]:5222" }, { listen: "[0:0:0:0:0:0:0:1]:5222" })), [
      'listeners[1].listen: "[0:0:0:0:0:0:0:1]:5222" conflicts with listeners[0].listen "[::1]:5222"',
    ]);
    assert.deepEqual(problems(two({ listen: "[::]:5222" }, { listen: "[2001:db8::1]:5222" })), [
      'listeners[1].listen: "[2001:db8::1]:5222" conflicts with listeners[0].listen "[::]:5222"',
    ]);
    assert.deepEqual(problems(two({ listen: "Host.Example:5222" }, { listen: "host.example.:5222" })), [
      'listeners[1].listen: "host.example.:5222" conflicts with listeners[0].listen "Host.Example:5222"',
    ]);
    assert.deepEqual(problems({ listeners: [{ ...LISTENER, listen: "127.0.0.1:9470" }] }), [
      'admin.listen: "127.0.0.1:9470" conflicts with listeners[0].listen "127.0.0.1:9470"',
    ]);
  });

  it("allows port 0 twice, different ports, and different hosts or families on one port", () => {
    ok(two({ listen: "127.0.0.1:0" }, { listen: "127.0.0.1:0" }));
    ok(two({}, { listen: "0.0.0.0:5223" }));
    ok(two({ listen: "127.0.0.1:5222" }, { listen: "192.0.2.1:5222" }));
    ok(two({ listen: "0.0.0.0:5222" }, { listen: "[::]:5222" }));
    ok(two({ listen: "0.0.0.0:5222" }, { listen: "[::1]:5222" }));
    ok({ listeners: [{ ...LISTENER, listen: "127.0.0.1:9470" }], admin: { listen: null } });
  });

  it("rejects an upstream that is the proxy's own listener", () => {
    assert.deepEqual(problems({ listeners: [{ ...LISTENER, upstream: "127.0.0.1:5222" }] }), [
      'listeners[0].upstream: "127.0.0.1:5222" reaches this proxy\'s own listeners[0].listen "0.0.0.0:5222" (it would connect to itself)',
    ]);
    assert.deepEqual(problems(two({ upstream: "localhost:5269" }, { listen: "0.0.0.0:5269", upstream: "10.0.0.2:5269" })), [
      'listeners[0].upstream: "localhost:5269" reaches this proxy\'s own listeners[1].listen "0.0.0.0:5269" (it would connect to itself)',
    ]);
    assert.deepEqual(problems({ listeners: [{ ...LISTENER, listen: "[::]:5222", upstream: "127.0.0.1:5222" }] }), [
      'listeners[0].upstream: "127.0.0.1:5222" reaches this proxy\'s own listeners[0].listen "[::]:5222" (it would connect to itself)',
    ]);
    // Another machine on the same port is fine, and so is an IPv6 loopback next to an IPv4-only listener.
    ok({ listeners: [{ ...LISTENER, upstream: "10.0.0.2:5222" }] });
    ok({ listeners: [{ ...LISTENER, upstream: "[::1]:5222" }] });
    assert.deepEqual(problems({ listeners: [{ ...LISTENER, listen: "127.0.0.1:5222", upstream: "localhost:5222" }] }), [
      'listeners[0].upstream: "localhost:5222" reaches this proxy\'s own listeners[0].listen "127.0.0.1:5222" (it would connect to itself)',
    ]);
  });

  it("websocket listeners: defaults filled in, options checked, and only on websocket listeners", () => {
    const web = { name: "web", type: "websocket", listen: "0.0.0.0:5281", upstream: "127.0.0.1:15222" };
    const config = ok({ listeners: [LISTENER, web] });
    assert.equal(config.listeners[0]!.websocket, null);
    const ws = config.listeners[1]!.websocket!;
    assert.deepEqual({ ...ws, trusted_proxies: ws.trusted_proxies.size }, {
      tls: false, path: "/xmpp-websocket", allowed_origins: ["*"], trusted_proxies: 0, ping_interval: 30,
    });
    const set = ok({ listeners: [{ ...web, websocket: { path: "/ws", allowed_origins: ["HTTPS://Chat.Example.org"], trusted_proxies: ["10.0.0.0/8"], ping_interval: 0 } }] });
    const opts = set.listeners[0]!.websocket!;
    assert.deepEqual([opts.path, opts.allowed_origins, opts.trusted_proxies.has("10.1.2.3"), opts.ping_interval, opts.tls], ["/ws", ["https://chat.example.org"], true, 0, false]);
    assert.deepEqual(problems({ listeners: [{ ...web, websocket: { path: "xmpp", allowed_origins: ["chat.example.org"], ping_interval: -1, tls: "yes", trusted_proxies: ["10.0.0.1/8"], pth: "/x" } }] }), [
      "listeners[0].websocket.pth: unknown option; did you mean `path`? [key]",
      "listeners[0].websocket.tls: must be true or false",
      'listeners[0].websocket.path: must be an absolute HTTP path such as "/xmpp-websocket"',
      'listeners[0].websocket.allowed_origins[0]: must be an origin such as "https://chat.example.org", or "*"',
      'listeners[0].websocket.trusted_proxies[0]: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)',
      "listeners[0].websocket.ping_interval: must be a number >= 0 and at most 3600",
    ]);
    assert.deepEqual(problems({ listeners: [{ ...LISTENER, websocket: { path: "/ws" } }] }), [
      "listeners[0].websocket: only a listener of type websocket takes websocket options (this one is c2s)",
    ]);
    assert.deepEqual(problems({ listeners: [{ ...web, websocket: { tls: true } }] }), [
      "listeners[0].websocket.tls: wss needs tls.certificates (or set it false behind a web server that terminates TLS)",
    ]);
    ok({ listeners: [{ ...web, websocket: { tls: true } }], tls: { certificates: [{ cert: "a.crt", key: "a.key" }] } });
  });

  it("runs only after the schema pass succeeds", () => {
    assert.deepEqual(problems(two({ type: "nope" }, { name: "c2s" })), ["listeners[0].type: must be one of c2s, c2s-tls, s2s, s2s-tls, websocket"]);
  });
});

describe("limits: Prosody's built-in limit for the session type not named", () => {
  const base = { listeners: [{ name: "c", type: "c2s", listen: "127.0.0.1:5222", upstream: "127.0.0.1:15222" }] };
  it("naming only c2s gives s2sin 30 KiB/s with a 2 s burst, as mod_limits does", () => {
    const c = ok({ ...base, limits: { c2s: { rate: "3kb/s" } } });
    assert.deepEqual(c.limits.s2sin, { bytes: { rate: 30_720, burst: 2, capacity: 61_440 }, stanzas: {} });
    assert.equal(c.limits.c2s?.bytes?.rate, 3000);
  });
  it("naming only s2sin gives c2s 10 KiB/s", () => {
    const c = ok({ ...base, limits: { s2sin: { rate: "50kb/s" } } });
    assert.deepEqual(c.limits.c2s, { bytes: { rate: 10_240, burst: 2, capacity: 20_480 }, stanzas: {} });
  });
  it("null keeps a type unlimited; naming neither (no mod_limits) keeps both unlimited", () => {
    assert.equal(ok({ ...base, limits: { c2s: { rate: "3kb/s" }, s2sin: null } }).limits.s2sin, null);
    const none = ok({ ...base, limits: { unlimited_jids: ["a@example.org"] } });
    assert.equal(none.limits.c2s, null);
    assert.equal(none.limits.s2sin, null);
  });
});
