// Tests for loading: exact file:line:col diagnostics, YAML syntax errors, the
// ConfigError shape, the shipped config file, and docs coverage of every option.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, configFromObject, formatIssue, loadConfigFile, loadConfigText, loadYamlWithSpec } from "./load.js";
import { CONFIG_SCHEMA, DEFAULT_CONFIG_PATH } from "./schema.js";
import { int, listOptions, obj, required, section } from "../util/validate.js";
import type { Config } from "./schema.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SHIPPED = join(ROOT, DEFAULT_CONFIG_PATH);

/** The formatted issues of loading `text`, one string per line. */
function diagnostics(text: string, fileName = "xmpp-guard.yaml"): string[] {
  try {
    loadConfigText(text, fileName);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.format().split("\n");
  }
  return assert.fail("expected a ConfigError");
}

const lines = (...l: string[]): string => `${l.join("\n")}\n`;

const GOOD = lines(
  "listeners:",
  "  - name: c2s",
  "    type: c2s",
  '    listen: "0.0.0.0:5222"',
  '    upstream: "127.0.0.1:15222"',
);

describe("loadConfigText", () => {
  it("loads a minimal file with defaults applied", () => {
    const config = loadConfigText(GOOD, "min.yaml");
    assert.equal(config.listeners[0]!.listen.port, 5222);
    assert.equal(config.max_stanza_size, 262144);
    assert.equal(config.admin.listen?.port, 9470);
    assert.equal(Object.isFrozen(config.listeners[0]), true);
  });

  it("points a bad value at the value", () => {
    const text = lines(
      "# xmpp-guard",
      "",
      "listeners:",
      "  - name: c2s",
      '    listen: "0.0.0.0:5222"',
      '    upstream: "127.0.0.1:15222"',
      "    type: c2x",
    );
    assert.deepEqual(diagnostics(text), ["xmpp-guard.yaml:7:11: listeners[0].type: must be one of c2s, c2s-tls, s2s, s2s-tls, websocket"]);
  });

  it("points an unknown key at the key, with a suggestion", () => {
    const text = lines(GOOD.trimEnd(), "    acept_proxy_from: []", "xml:", "  max_dept: 3", "lgo:", "  level: info");
    assert.deepEqual(diagnostics(text), [
      "xmpp-guard.yaml:6:5: listeners[0].acept_proxy_from: unknown option; did you mean `accept_proxy_from`?",
      "xmpp-guard.yaml:8:3: xml.max_dept: unknown option; did you mean `max_depth`?",
      "xmpp-guard.yaml:9:1: lgo: unknown option; did you mean `log`?",
    ]);
  });

  it("points a missing required key at the mapping that should contain it", () => {
    const text = lines(GOOD.trimEnd(), "  - name: s2s", "    type: s2s", '    listen: "[::]:5269"');
    assert.deepEqual(diagnostics(text), ["xmpp-guard.yaml:6:5: listeners[1].upstream: required option is missing"]);
    const flow = lines("listeners: [{name: a, type: c2s, listen: '*:0'}]");
    assert.deepEqual(diagnostics(flow), ["xmpp-guard.yaml:1:13: listeners[0].upstream: required option is missing"]);
  });

  it("reports an empty file as missing listeners at 1:1", () => {
    assert.deepEqual(diagnostics(""), ["xmpp-guard.yaml:1:1: listeners: required option is missing"]);
    assert.deepEqual(diagnostics("# only a comment\n"), ["xmpp-guard.yaml:1:1: listeners: required option is missing"]);
  });

  it("reports a non-mapping document at its start", () => {
    assert.deepEqual(diagnostics("\n- a\n- b\n"), ["xmpp-guard.yaml:2:1: <root>: must be a mapping"]);
    assert.deepEqual(diagnostics("listeners: c2s\n"), ["xmpp-guard.yaml:1:12: listeners: must be a list"]);
  });

  it("points into flow sequences and nested sections", () => {
    const text = lines(
      GOOD.trimEnd(),
      '    accept_proxy_from: ["10.0.0.0/8", 10.0.0.1/8, "::1/200"]',
      "    proxy_protocol: v3",
      "max_stanza_size: 1k",
      "timeouts:",
      "  connect: 0",
      "admin:",
      "  listen: 127.0.0.1",
    );
    assert.deepEqual(diagnostics(text), [
      'xmpp-guard.yaml:6:39: listeners[0].accept_proxy_from[1]: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)',
      'xmpp-guard.yaml:6:51: listeners[0].accept_proxy_from[2]: invalid prefix length "/200" (expected 0..128)',
      "xmpp-guard.yaml:7:21: listeners[0].proxy_protocol: must be one of off, v1, v2",
      "xmpp-guard.yaml:8:18: max_stanza_size: must be an integer between 1024 and 67108864",
      "xmpp-guard.yaml:10:12: timeouts.connect: must be a number greater than 0 and at most 86400",
      'xmpp-guard.yaml:12:11: admin.listen: missing port (expected "host:port")',
    ]);
  });

  it("points an empty value at its key", () => {
    assert.deepEqual(diagnostics(lines(GOOD.trimEnd(), "max_stanza_size:")), [
      "xmpp-guard.yaml:6:1: max_stanza_size: must be an integer between 1024 and 67108864",
    ]);
  });

  it("reports cross-field issues at the later occurrence", () => {
    const text = lines(
      GOOD.trimEnd(),
      "  - name: c2s",
      "    type: s2s",
      '    listen: "*:5222"',
      '    upstream: "127.0.0.1:15223"',
    );
    assert.deepEqual(diagnostics(text), [
      'xmpp-guard.yaml:6:11: listeners[1].name: duplicate listener name "c2s" (also listeners[0])',
      'xmpp-guard.yaml:8:13: listeners[1].listen: "*:5222" conflicts with listeners[0].listen "0.0.0.0:5222"',
    ]);
  });

  it("hosts: prepped domains; bad entries, duplicates and MUC services missing from it at their position", () => {
    const config = loadConfigText(lines(GOOD.trimEnd(), "hosts: [Example.ORG., conference.example.org]"), "h.yaml");
    assert.deepEqual(config.hosts, ["example.org", "conference.example.org"]);
    assert.deepEqual(loadConfigText(GOOD, "h.yaml").hosts, [], "default: not known");
    assert.deepEqual(diagnostics(lines(GOOD.trimEnd(), "hosts:", "  - example.org", "  - user@example.org", "  - EXAMPLE.org")), [
      'xmpp-guard.yaml:8:5: hosts[1]: must be a domain, e.g. "example.org" or "conference.example.org" (no whitespace, @ or /)',
    ]);
    assert.deepEqual(diagnostics(lines(GOOD.trimEnd(), "hosts:", "  - example.org", "  - EXAMPLE.org")), [
      'xmpp-guard.yaml:8:5: hosts[1]: "example.org" is listed twice (also hosts[0])',
    ]);
    assert.deepEqual(diagnostics(lines(GOOD.trimEnd(), "hosts: [example.org]", "muc_limits:", "  hosts: [conference.example.org]")), [
      'xmpp-guard.yaml:8:11: muc_limits.hosts[0]: "conference.example.org" is not in hosts (the server\'s local domains); add it there too',
    ]);
    // Without hosts, MUC services are not checked against them.
    assert.equal(loadConfigText(lines(GOOD.trimEnd(), "muc_limits:", "  hosts: [conference.example.org]"), "m.yaml").muc_limits?.hosts.length, 1);
  });

  it("points websocket option errors at the option, like the rest", () => {
    const text = lines(
      GOOD.trimEnd(),
      "    websocket: { path: /ws }",
      "  - name: web",
      "    type: websocket",
      '    listen: "*:5281"',
      '    upstream: "127.0.0.1:15222"',
      "    websocket:",
      "      path: ws",
      '      allowed_origins: ["https://ok.example", "nope"]',
    );
    assert.deepEqual(diagnostics(text), [
      "xmpp-guard.yaml:12:13: listeners[1].websocket.path: must be an absolute HTTP path such as \"/xmpp-websocket\"",
      "xmpp-guard.yaml:13:47: listeners[1].websocket.allowed_origins[1]: must be an origin such as \"https://chat.example.org\", or \"*\"",
    ]);
    // The cross-field check, once the values are sound (the c2s listener's websocket: above).
    assert.deepEqual(diagnostics(lines(GOOD.trimEnd(), "    websocket: { path: /ws }")), [
      "xmpp-guard.yaml:6:16: listeners[0].websocket: only a listener of type websocket takes websocket options (this one is c2s)",
    ]);
  });

  it("reports YAML syntax errors as file:line:col", () => {
    assert.deepEqual(diagnostics(lines("listeners:", "  - name: [c2s", "log: {}"), "bad.yaml"), [
      "bad.yaml:3:1: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ]);
    assert.deepEqual(diagnostics(lines(GOOD.trimEnd(), "log: {}", "log: {}")), [
      "xmpp-guard.yaml:7:1: YAML: Map keys must be unique",
    ]);
    assert.deepEqual(diagnostics(lines(GOOD.trimEnd(), "max_stanza_size: !bytes 1k")), [
      "xmpp-guard.yaml:6:18: YAML: Unresolved tag: !bytes",
    ]);
  });

  it("reads YAML 1.2 by default, and YAML 1.1 when the file asks for it", () => {
    const body = lines(GOOD.trimEnd(), "    proxy_protocol: off");
    assert.equal(loadConfigText(body, "a.yaml").listeners[0]!.proxy_protocol, "off");
    assert.equal(loadConfigText(`%YAML 1.1\n---\n${body}`, "b.yaml").listeners[0]!.proxy_protocol, "off");
  });

  it("resolves anchors and aliases", () => {
    const text = lines(
      "listeners:",
      "  - &base",
      "    name: one",
      "    type: c2s",
      '    listen: "*:5222"',
      '    upstream: "10.0.0.2:5222"',
      "  - *base",
    );
    assert.deepEqual(diagnostics(text), [
      // Issues inside an alias point at the alias: that is where listeners[1] is written.
      'xmpp-guard.yaml:7:5: listeners[1].name: duplicate listener name "one" (also listeners[0])',
      'xmpp-guard.yaml:7:5: listeners[1].listen: "*:5222" conflicts with listeners[0].listen "*:5222"',
    ]);
  });

  it("rejects alias bombs instead of expanding them", () => {
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 0; i < 8; i++) bomb.push(`${"bcdefghi"[i]}: &${"bcdefghi"[i]} [${Array(10).fill(`*${i === 0 ? "a" : "bcdefghi"[i - 1]}`).join(", ")}]`);
    const out = diagnostics(lines(...bomb));
    assert.equal(out.length, 1);
    assert.match(out[0]!, /^xmpp-guard\.yaml:1:1: YAML: Excessive alias count/);
  });
});

describe("ConfigError", () => {
  it("carries every issue, a code, and a one-line-per-issue format()", () => {
    let caught: unknown;
    try {
      loadConfigText(lines("listeners: []", "log: {level: loud}"), "x.yaml");
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof ConfigError);
    assert.ok(caught instanceof Error);
    assert.equal(caught.name, "ConfigError");
    assert.equal(caught.code, "XPX_ERR_CONFIG_INVALID");
    assert.deepEqual(caught.issues, [
      { file: "x.yaml", line: 1, column: 12, path: "listeners", message: "must have at least 1 entry" },
      {
        file: "x.yaml",
        line: 2,
        column: 14,
        path: "log.level",
        message: "must be one of trace, debug, info, warn, error, fatal, silent",
      },
    ]);
    assert.equal(
      caught.format(),
      "x.yaml:1:12: listeners: must have at least 1 entry\nx.yaml:2:14: log.level: must be one of trace, debug, info, warn, error, fatal, silent",
    );
    assert.equal(caught.message, `invalid configuration (2 issues):\n${caught.format()}`);
  });

  it("formatIssue without a position or a path", () => {
    assert.equal(formatIssue({ file: "<object>", line: null, column: null, path: "xml", message: "m" }), "<object>: xml: m");
    assert.equal(formatIssue({ file: "f.yaml", line: 3, column: 4, path: "", message: "m" }), "f.yaml:3:4: m");
  });
});

describe("configFromObject", () => {
  it("validates plain objects and prints issues without positions", () => {
    const config = configFromObject({ listeners: [{ name: "t", type: "s2s", listen: "127.0.0.1:0", upstream: "127.0.0.1:5269" }] });
    assert.equal(config.listeners[0]!.type, "s2s");
    assert.throws(
      () => configFromObject({ listeners: [{ name: "t", type: "x", listen: "127.0.0.1:0", upstream: "127.0.0.1:5269" }], lgo: 1 }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(
          err.format(),
          "<object>: lgo: unknown option; did you mean `log`?\n<object>: listeners[0].type: must be one of c2s, c2s-tls, s2s, s2s-tls, websocket",
        );
        return true;
      },
    );
  });
});

describe("renamed options in files", () => {
  it("points at the old key", () => {
    const spec = obj({ port: required(int()), tuning: section(obj({ depth: required(int()) })) }, { renamed: { listen_port: "port" } });
    assert.throws(
      () => loadYamlWithSpec(lines("tuning: {depth: 1}", "listen_port: 5222"), "r.yaml", spec),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.format(), "r.yaml:2:1: listen_port: `listen_port` was renamed to `port`");
        return true;
      },
    );
    assert.deepEqual(loadYamlWithSpec("port: 1\ntuning: {depth: 2}\n", "r.yaml", spec), { port: 1, tuning: { depth: 2 } });
  });
});

describe("loadConfigFile", () => {
  it("loads the shipped config cleanly", async () => {
    const config: Config = await loadConfigFile(SHIPPED);
    assert.equal(config.listeners.length, 1);
    const l = config.listeners[0]!;
    assert.equal(l.name, "c2s");
    assert.equal(l.type, "c2s");
    assert.deepEqual(l.listen, { text: "0.0.0.0:5222", host: "0.0.0.0", port: 5222 });
    assert.deepEqual(l.upstream, { text: "127.0.0.1:15222", host: "127.0.0.1", port: 15222 });
    assert.equal(l.proxy_protocol, "off");
    assert.equal(l.accept_proxy_from.size, 0);
    assert.equal(l.domain, null);
    assert.equal(l.websocket, null);
    assert.deepEqual(config.admin.listen, { text: "127.0.0.1:9470", host: "127.0.0.1", port: 9470 });
  });

  it("the shipped config's commented settings are valid and are the defaults", async () => {
    const text = await readFile(SHIPPED, "utf8");
    // "#option: value" lines (no space after '#') are settings; "# ..." lines are prose.
    const uncommented = text.replace(/^(\s*)#( *[a-z0-9_]+:(?: .*)?)$/gm, "$1$2");
    assert.notEqual(uncommented, text);
    const both = [loadConfigText(text, "shipped"), loadConfigText(uncommented, "uncommented")];
    assert.deepEqual(JSON.parse(JSON.stringify(both[1])), JSON.parse(JSON.stringify(both[0])));
    // Every leaf option appears in the shipped file.
    for (const o of listOptions(CONFIG_SCHEMA)) {
      const key = o.path.split(".").pop()!.replace("[]", "");
      // Fields of list entries whose default is an empty list (tls.certificates[].cert)
      // can only be shown in an example comment.
      // So can the options of a listener type the shipped listener is not (listeners[].websocket.*).
      const exampleOnly = (o.path.includes("[].") && !o.path.startsWith("listeners")) || o.path.startsWith("listeners[].websocket.");
      const where = exampleOnly ? `^\\s*#.*[{ ]${key}:` : `^\\s*(- )?${key}:`;
      assert.match(uncommented, new RegExp(where, "m"), `${o.path} is missing from ${DEFAULT_CONFIG_PATH}`);
    }
  });

  it("reports an unreadable file without a position", async () => {
    const dir = await mkdtemp(join(tmpdir(), "xmpp-guard-config-"));
    try {
      const missing = join(dir, "nope.yaml");
      await assert.rejects(loadConfigFile(missing), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.issues.length, 1);
        assert.equal(err.issues[0]!.line, null);
        assert.match(err.format(), new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: cannot read config file: ENOENT`));
        return true;
      });
      const bad = join(dir, "bad.yaml");
      await writeFile(bad, lines(GOOD.trimEnd(), "    type: c2s"));
      await assert.rejects(loadConfigFile(bad), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.format(), `${bad}:6:5: YAML: Map keys must be unique`);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("docs/configuration.md", () => {
  it("has a section for every option and none for options that do not exist", async () => {
    const doc = await readFile(join(ROOT, "docs/configuration.md"), "utf8");
    const documented = [...doc.matchAll(/^### `([^`]+)`$/gm)].map((m) => m[1]);
    assert.deepEqual(
      documented,
      listOptions(CONFIG_SCHEMA).map((o) => o.path),
    );
  });
});
