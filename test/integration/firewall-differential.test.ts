// Differential test of xmpp-guard's firewall against the real mod_firewall
// (Debian prosody-modules, the 2023 snapshot): every case in
// test/fixtures/firewall/differential/cases.json runs its rule files over its
// stanzas through `prosodyctl mod_firewall test` and through traceStanzas,
// chain deliver, and the two must agree stanza by stanza, except where
// ../deliberate-differences.json says we fix a Prosody bug; there they must
// disagree, so the list stays honest.
//
// What Prosody's tester is (read from mod_firewall/test.lib.lua, 2023): it
// loads the files as firewall_scripts, feeds stdin line by line into an XMPP
// parser inside a synthetic jabber:client stream, and fires the event
// `firewall/chains/deliver` for each stanza with a fake origin session (no
// type, no JID). A falsy return counts as passed and the stanza is printed on
// stdout (with the parser's xml:lang='en' added); anything the firewall sends
// to the origin (BOUNCE errors, REPLY) goes to stderr after "** Reply:". Logs,
// including compile errors, go to stdout. It can only run `deliver`.
//
// Tester artefacts the comparison accounts for (they are not Prosody bugs):
// - DEFAULT returns false, which the tester counts as passed. Prosody proper
//   then applies its default handling (service-unavailable), as we do.
// - Routed stanzas (REDIRECT, COPY, FORWARD) go to core_post_stanza, which
//   prints nothing; only the original's fate can be compared.
// - Prosody chdirs to its data_path, so relative %LIST paths resolve there;
//   we resolve them next to the rule file. The fixtures are copied to a temp
//   dir that is both, so both sides read the same list files.
// - JIDs are not prepped by the tester (the router does that before deliver),
//   so the fixtures use lower-case ASCII JIDs.
//
// A case may also name the stream its stanzas arrive on (`stream`: the
// listener's namespace, jabber:client or jabber:server, and the header's
// xml:lang) or another chain (`chain`). The tester fixes both (a
// jabber:client stream without xml:lang, chain deliver), so such a case runs
// through test/harness/plugins/mod_firewall_harness.lua instead: the same real
// mod_firewall, loaded as a module dependency, fed by the server's stream
// parser configured as that listener configures it, with the tester's output
// format. The origin session then has the listener's type (c2s or s2sin).
//
// The tester cannot run `preroute` on a bound client, so the second part drives a real Prosody
// with mod_firewall loaded: a bound client sends preroute.xml line by line,
// and what reaches the recipient and what comes back to the sender is
// compared with traceStanzas on the preroute chain, with the sender's bound
// JID as the c2s session.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse, type Element } from "ltx";
import { FakeClock } from "../helpers/fake-clock.js";
import { traceStanzas, type TracedStanza } from "../../src/firewall/trace.js";
import { startProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/firewall/differential/", import.meta.url));
const DIFFERENCES = fileURLToPath(new URL("../fixtures/firewall/deliberate-differences.json", import.meta.url));
const MOD_FIREWALL = "/usr/lib/prosody/modules/mod_firewall/mod_firewall.lua";
const HARNESS_PLUGINS = fileURLToPath(new URL("../harness/plugins/", import.meta.url));
const INSTALL_HINT =
  "The firewall differential test needs prosodyctl and mod_firewall. Install them (Debian/Ubuntu, as root): " +
  "apt-get install -y --no-install-recommends prosody prosody-modules (.ci/run does this), or run only the unit tests: npm run test:unit";

interface Case {
  readonly name: string;
  readonly rules: readonly string[];
  readonly input: string;
  /** The stream the stanzas arrive on (default: the tester's jabber:client stream, no xml:lang). */
  readonly stream?: { readonly ns?: string; readonly lang?: string };
  /** The chain fired (default deliver). */
  readonly chain?: "deliver" | "preroute" | "deliver_remote";
  readonly difference?: string;
  readonly load?: "ours-rejects" | "prosody-rejects" | "both-reject";
  readonly stanzas?: readonly string[];
  /** Text Prosody's run dies with; with load "ours-rejects", a rule it loads and then fails to run. */
  readonly prosodyFails?: string;
}

interface Manifest {
  readonly cases: readonly Case[];
  /** Deliberate differences Prosody's tester cannot show, with the reason. */
  readonly notCovered: Readonly<Record<string, string>>;
}

/** What happened to one stanza, as both sides can report it. */
interface Outcome {
  /** The stanza as it goes on (canonical XML), or null when it does not. */
  readonly passed: string | null;
  /** Error stanzas sent back to the origin (BOUNCE). */
  readonly errors: readonly string[];
  /** Other stanzas sent back to the origin (REPLY). */
  readonly replies: readonly string[];
  /** Stanzas handed to the router (REDIRECT, COPY, FORWARD); only the harness shows them. */
  readonly routed?: readonly string[];
}

interface ProsodyRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** mod_firewall's own log lines: compile errors, list warnings. */
  readonly logs: readonly { readonly level: string; readonly message: string }[];
  /** Lines logged by the rules (`mod_firewall::<chain>`): LOG actions. */
  readonly ruleLogs: readonly string[];
  readonly outcomes: ReadonlyMap<string, Outcome>;
  readonly processed: number | undefined;
}

// ---------------------------------------------------------------------------
// Canonical XML: every name expanded ({namespace}local, with namespaces
// resolved as a parser does, in the stream's namespace), declarations gone,
// attributes sorted. So Lua's attribute order does not matter, and neither
// does how a namespace is spelt: the server writes `<body/>` where the input
// said `<body xmlns='jabber:client'/>` or `<c:body/>`, and both are the same
// element.

function escapeText(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function escapeAttr(s: string): string {
  return escapeText(s).replace(/"/g, "&quot;");
}

function canonical(el: Element, scope: ReadonlyMap<string, string>): string {
  const inner = new Map(scope);
  for (const [k, v] of Object.entries(el.attrs)) {
    if (k === "xmlns") inner.set("", String(v));
    else if (k.startsWith("xmlns:")) inner.set(k.slice(6), String(v));
  }
  const expand = (qname: string, element: boolean): string => {
    const colon = qname.indexOf(":");
    if (colon < 0) return element ? `{${inner.get("") ?? ""}}${qname}` : qname;
    const prefix = qname.slice(0, colon);
    return prefix === "xml" ? qname : `{${inner.get(prefix) ?? `?${prefix}`}}${qname.slice(colon + 1)}`;
  };
  const attrs = Object.keys(el.attrs)
    .filter((k) => k !== "xmlns" && !k.startsWith("xmlns:"))
    .map((k) => [expand(k, false), String(el.attrs[k])] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => ` ${k}="${escapeAttr(v)}"`)
    .join("");
  const name = expand(el.name, true);
  const body = el.children.map((c) => (typeof c === "string" ? escapeText(c) : canonical(c as Element, inner))).join("");
  return `<${name}${attrs}>${body}</${name}>`;
}

/** `xml` read inside a stream whose content namespace is `ns`. */
function canonicalXml(xml: string, dropLang = false, ns = "jabber:client"): string {
  const el = parse(xml) as Element;
  if (dropLang) delete el.attrs["xml:lang"];
  return canonical(el, new Map([["", ns]]));
}

// ---------------------------------------------------------------------------
// Prosody's tester

function run(cmd: string, args: readonly string[], input: Buffer, cwd: string, timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr: signal ? `${stderr}\n(killed: ${signal})` : stderr });
    });
    child.stdin.on("error", () => {}); // a crashed tester may close stdin early
    child.stdin.end(input);
  });
}

const LOG_LINE = /^(mod_firewall\S*)\s+(debug|info|warn|error)\t(.*)$/;

function parseProsody(result: { code: number; stdout: string; stderr: string }, ids: ReadonlyMap<string, boolean>, ns: string, harness: boolean): ProsodyRun {
  const logs: { level: string; message: string }[] = [];
  const ruleLogs: string[] = [];
  const passed = new Map<string, string>();
  const errors = new Map<string, string[]>();
  const replies = new Map<string, string[]>();
  const routed = new Map<string, string[]>();
  for (const line of result.stdout.split("\n")) {
    const log = LOG_LINE.exec(line);
    if (log && log[1] === "mod_firewall") logs.push({ level: log[2]!, message: log[3]! });
    else if (log) ruleLogs.push(`${log[2]} ${log[3]}`);
    else if (line.startsWith("<")) {
      const el = parse(line) as Element;
      const id = String(el.attrs.id);
      assert.ok(!passed.has(id), `Prosody printed stanza ${id} twice`);
      passed.set(id, canonicalXml(line, ids.get(id) === false, ns));
    }
  }
  const err = result.stderr.split("\n");
  let processed: number | undefined;
  for (let i = 0; i < err.length; i++) {
    const reply = err[i]!.startsWith("** Reply:");
    if (reply || err[i]!.startsWith("** Routed:")) {
      const xml = err[++i]!;
      const el = parse(xml) as Element;
      const id = String(el.attrs.id);
      const into = !reply ? routed : el.attrs.type === "error" ? errors : replies;
      into.set(id, [...(into.get(id) ?? []), canonicalXml(xml, false, ns)]);
    }
    const m = /^\*\* (\d+)\tprocessed$/.exec(err[i]!);
    if (m) processed = Number(m[1]);
  }
  const outcomes = new Map<string, Outcome>();
  for (const id of ids.keys()) {
    const base = { passed: passed.get(id) ?? null, errors: errors.get(id) ?? [], replies: replies.get(id) ?? [] };
    outcomes.set(id, harness ? { ...base, routed: routed.get(id) ?? [] } : base);
  }
  return { ...result, logs, ruleLogs, outcomes, processed };
}

// ---------------------------------------------------------------------------
// Ours

function ourOutcome(s: TracedStanza, original: string, ns = "jabber:client", routed = false): Outcome {
  const r = s.result;
  // The tester counts DEFAULT (false) as passed; see the header.
  const passes = r.verdict === "pass" || r.defaulted;
  const base = {
    passed: passes ? canonicalXml(r.rewrite ?? original, false, ns) : null,
    errors: r.bounce && !r.defaulted ? [canonicalXml(r.bounce.stanza, false, ns)] : [],
    replies: r.emitted.filter((e) => e.via === "origin").map((e) => canonicalXml(e.stanza, false, ns)),
  };
  return routed ? { ...base, routed: r.emitted.filter((e) => e.via === "route").map((e) => canonicalXml(e.stanza, false, ns)) } : base;
}

/** Stanzas of an input file: one per line, each with a unique id. id → whether it has xml:lang. */
function inputStanzas(text: string): { ids: Map<string, boolean>; lines: Map<string, string> } {
  const ids = new Map<string, boolean>();
  const lines = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const el = parse(line) as Element;
    const id = el.attrs.id;
    assert.ok(typeof id === "string" && id !== "", `every input stanza needs an id: ${line}`);
    assert.ok(!ids.has(id), `duplicate input id ${id}`);
    ids.set(id, el.attrs["xml:lang"] !== undefined);
    lines.set(id, line);
  }
  return { ids, lines };
}

// ---------------------------------------------------------------------------

/** cases.json, then every cases-*.json beside it (kept apart by topic so edits do not collide). */
async function loadManifest(): Promise<Manifest> {
  const names = ["cases.json", ...(await readdir(FIXTURES)).filter((f) => /^cases-.+\.json$/.test(f)).sort()];
  const parts = await Promise.all(names.map(async (n) => JSON.parse(await readFile(path.join(FIXTURES, n), "utf8")) as Manifest));
  return {
    cases: parts.flatMap((p) => p.cases),
    notCovered: Object.assign({}, ...parts.map((p) => p.notCovered ?? {})) as Record<string, string>,
  };
}

const manifest = await loadManifest();
const differences = JSON.parse(await readFile(DIFFERENCES, "utf8")) as { id: string; reason: string }[];

describe("firewall differential: xmpp-guard trace vs prosodyctl mod_firewall test (deliver)", () => {
  let dir = "";
  let data = "";
  let config = "";

  before(async () => {
    if (!existsSync(MOD_FIREWALL)) throw new Error(`${MOD_FIREWALL} not found. ${INSTALL_HINT}`);
    dir = await mkdtemp(path.join(os.tmpdir(), "xmpp-guard-fwdiff-"));
    data = path.join(dir, "data");
    await cp(FIXTURES, data, { recursive: true });
    await mkdir(path.join(dir, "certs"));
    config = path.join(dir, "prosody.cfg.lua");
    const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
    await writeFile(
      config,
      [
        `run_as_root = ${isRoot}`,
        `pidfile = ${JSON.stringify(path.join(dir, "prosody.pid"))}`,
        // prosodyctl chdirs here: relative %LIST paths resolve against it.
        `data_path = ${JSON.stringify(data)}`,
        `certificates = ${JSON.stringify(path.join(dir, "certs"))}`,
        // mod_firewall_harness: streams other than the tester's (see the header).
        `plugin_paths = { ${JSON.stringify(HARNESS_PLUGINS)} }`,
        'log = { { levels = { min = "info" }, to = "console" } }',
        'VirtualHost "localhost"',
        "",
      ].join("\n"),
    );
  });

  after(async () => {
    if (dir !== "" && process.env.PROSODY_KEEP_DIR !== "1") await rm(dir, { recursive: true, force: true });
  });

  async function both(c: Case) {
    const inputText = await readFile(path.join(data, c.input), "utf8");
    const { ids, lines } = inputStanzas(inputText);
    const files = c.rules.map((r) => path.join(data, r));
    const chain = c.chain ?? "deliver";
    const ns = c.stream?.ns ?? "jabber:client";
    const harness = c.stream !== undefined || c.chain !== undefined;
    const args = harness
      ? ["--config", config, "mod_firewall_harness", chain, ns, c.stream?.lang ?? "-", ...files]
      : ["--config", config, "mod_firewall", "test", ...files];
    let raw: { code: number; stdout: string; stderr: string };
    try {
      raw = await run("prosodyctl", args, Buffer.from(inputText), data, 20_000);
    } catch (err) {
      throw new Error(`cannot run prosodyctl: ${(err as Error).message}. ${INSTALL_HINT}`);
    }
    const prosody = parseProsody(raw, ids, ns, harness);
    const ours = await traceStanzas(files, inputText, {
      chain,
      // The tester's origin has no type; the harness's has the listener's.
      session: { type: harness && ns === "jabber:client" ? "c2s" : "s2sin" },
      streamNs: ns,
      streamLang: c.stream?.lang,
      clock: new FakeClock(),
      // The config's one VirtualHost: Prosody's `$local` zone.
      localHosts: ["localhost"],
    });
    return { ids, lines, prosody, ours, ns, harness };
  }

  it("every deliberate difference is exercised here or says why the tester cannot show it", () => {
    const covered = new Set(manifest.cases.flatMap((c) => (c.difference ? [c.difference] : [])));
    for (const d of differences) {
      assert.ok(covered.has(d.id) || manifest.notCovered[d.id] !== undefined, `deliberate difference '${d.id}' has no differential case and no reason in cases.json notCovered`);
      assert.ok(!(covered.has(d.id) && manifest.notCovered[d.id] !== undefined), `'${d.id}' is both covered and not covered`);
    }
    for (const id of [...covered, ...Object.keys(manifest.notCovered)]) {
      assert.ok(differences.some((d) => d.id === id), `'${id}' is not in deliberate-differences.json`);
    }
  });

  for (const c of manifest.cases) {
    it(c.difference ? `${c.name} (deliberate: ${c.difference})` : c.name, async (t) => {
      const { ids, lines, prosody, ours, ns, harness } = await both(c);
      const prosodyErrors = prosody.logs.filter((l) => l.level === "error").map((l) => l.message);
      const context = `\n--- prosody stdout ---\n${prosody.stdout}\n--- prosody stderr ---\n${prosody.stderr}\n--- ours ---\n${[...ours.errors, ...ours.lines].join("\n")}`;

      if (c.prosodyFails !== undefined) {
        assert.match(prosody.stdout + prosody.stderr, new RegExp(`Failed to execute command: .*${c.prosodyFails}`), context);
        if (c.load === "ours-rejects") {
          // Prosody loads the rule and fails when it runs; we refuse it at load.
          assert.deepEqual(prosodyErrors, [], `Prosody should load this file${context}`);
          assert.notEqual(ours.errors.length, 0, `xmpp-guard should reject this file${context}`);
        } else {
          assert.equal(ours.exitCode, 0, context);
        }
        return;
      }
      if (c.load === "ours-rejects") {
        assert.deepEqual(prosodyErrors, [], `Prosody should load this file${context}`);
        assert.equal(prosody.processed, ids.size, context);
        assert.notEqual(ours.errors.length, 0, `xmpp-guard should reject this file${context}`);
        assert.equal(ours.stanzas.length, 0);
        return;
      }
      if (c.load === "both-reject") {
        assert.notEqual(prosodyErrors.length, 0, `Prosody should fail to compile this file${context}`);
        assert.notEqual(ours.errors.length, 0, `xmpp-guard should reject this file${context}`);
        return;
      }
      if (c.load === "prosody-rejects") {
        assert.notEqual(prosodyErrors.length, 0, `Prosody should fail to compile this file${context}`);
        // …and then lets everything through (its compile failure fails open).
        assert.ok([...prosody.outcomes.values()].every((o) => o.passed !== null), context);
        assert.deepEqual(ours.errors, [], context);
        return;
      }

      assert.deepEqual(prosodyErrors, [], `Prosody did not load the rules${context}`);
      assert.deepEqual(ours.errors, [], `xmpp-guard did not load the rules${context}`);
      assert.equal(prosody.processed, ids.size, context);
      assert.equal(ours.stanzas.length, ids.size, context);
      const mustDiffer = new Set(c.stanzas ?? []);
      const agreed: string[] = [];
      for (const s of ours.stanzas) {
        const id = s.id!;
        const mine = ourOutcome(s, lines.get(id)!, ns, harness);
        const theirs = prosody.outcomes.get(id)!;
        if (mustDiffer.has(id)) {
          assert.notDeepEqual(mine, theirs, `stanza ${id} is listed as a deliberate difference (${c.difference}) but both agree${context}`);
        } else {
          assert.deepEqual(mine, theirs, `stanza ${id}: xmpp-guard (actual) vs Prosody (expected)${context}`);
          agreed.push(id);
        }
      }
      assert.equal(agreed.length + mustDiffer.size, ids.size);
      if (mustDiffer.size === 0) {
        // Prosody's console log shows info and above; our core logs its own notes at debug.
        const ourLogs = ours.stanzas.flatMap((s) => s.result.logs.filter((l) => l.level !== "debug").map((l) => `${l.level} ${l.message}`));
        assert.deepEqual(ourLogs, prosody.ruleLogs, `LOG lines${context}`);
      }
      const mine = ours.stanzas.map((s) => ourOutcome(s, lines.get(s.id!)!, ns, harness));
      t.diagnostic(
        `${ids.size} stanzas, ${agreed.length} agree, ${mustDiffer.size} differ as listed: ` +
          `${mine.filter((o) => o.passed !== null).length} pass, ${mine.filter((o) => o.errors.length > 0).length} bounce, ` +
          `${mine.filter((o) => o.passed === null && o.errors.length === 0).length} dropped, ${mine.reduce((n, o) => n + o.replies.length, 0)} replies, ` +
          `${prosody.ruleLogs.length} log lines`,
      );
    });
  }
});

describe("firewall differential: xmpp-guard trace vs a running Prosody with mod_firewall (preroute)", () => {
  let prosody: ProsodyInstance | undefined;
  const clients: TestClient[] = [];

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await prosody?.stop();
  });

  it("a bound client's stanzas: what passes, bounces and replies", { timeout: 60_000 }, async (t) => {
    const rules = path.join(FIXTURES, "preroute.pfw");
    const inputText = await readFile(path.join(FIXTURES, "preroute.xml"), "utf8");
    const { ids, lines } = inputStanzas(inputText);
    prosody = await startProsody({ extraModules: ["firewall"], extraConfig: `firewall_scripts = { ${JSON.stringify(rules)} }` });
    await prosody.createUser("alice", "alice-pw");
    await prosody.createUser("bob", "bob-pw");
    const login = (username: string, resource: string) =>
      connectClient({ host: prosody!.host, port: prosody!.port, domain: prosody!.domain, username, password: `${username}-pw`, resource });
    const bob = await login("bob", "desk");
    clients.push(bob);
    const alice = await login("alice", "phone");
    clients.push(alice);
    assert.equal(alice.jid, "alice@localhost/phone");

    // Send the exact bytes, then two markers: bob's stanzas and alice's replies
    // arrive in order, so once both markers are back nothing else is coming.
    const write = (alice.xmpp as unknown as { write(s: string): Promise<void> }).write.bind(alice.xmpp);
    for (const line of lines.values()) await write(line);
    await write("<message to='bob@localhost/desk' id='end-bob'><body>end</body></message>");
    await write("<iq to='localhost' type='get' id='end-alice'><ping xmlns='urn:xmpp:ping'/></iq>");
    const received: XmlElement[] = [];
    await bob.waitFor((el) => {
      if (el.attrs.id !== undefined && ids.has(el.attrs.id)) received.push(el);
      return el.attrs.id === "end-bob";
    }, 10_000);
    const back: XmlElement[] = [];
    await alice.waitFor((el) => {
      if (el.attrs.id !== undefined && ids.has(el.attrs.id)) back.push(el);
      return el.attrs.id === "end-alice";
    }, 10_000);

    const theirs = new Map<string, Outcome>();
    for (const id of ids.keys()) {
      const arrived = received.find((el) => el.attrs.id === id);
      const answers = back.filter((el) => el.attrs.id === id);
      theirs.set(id, {
        passed: arrived ? "delivered" : null,
        errors: answers.filter((el) => el.attrs.type === "error").map((el) => canonicalXml(el.toString(), true)),
        replies: answers.filter((el) => el.attrs.type !== "error").map((el) => canonicalXml(el.toString(), true)),
      });
    }

    const ours = await traceStanzas([rules], inputText, {
      chain: "preroute",
      session: { type: "c2s", jid: alice.jid, ip: "127.0.0.1" },
      clock: new FakeClock(),
    });
    assert.deepEqual(ours.errors, []);
    const context = `\n--- ours ---\n${ours.lines.join("\n")}\n--- bob received ---\n${received.map(String).join("\n")}\n--- alice got back ---\n${back.map(String).join("\n")}`;
    for (const s of ours.stanzas) {
      const mine = ourOutcome(s, lines.get(s.id!)!);
      assert.deepEqual({ ...mine, passed: mine.passed === null ? null : "delivered" }, theirs.get(s.id!), `stanza ${s.id}${context}`);
    }
    const mine = ours.stanzas.map((s) => s.verdict);
    t.diagnostic(`${ids.size} stanzas agree: ${mine.filter((v) => v === "pass").length} delivered, ${mine.filter((v) => v === "bounce").length} bounced, ${mine.filter((v) => v === "drop").length} dropped`);
  });
});

// deliver_remote cannot run in the tester (nothing routes there), and the
// proxy's version of it is not a traced chain but a decision of the session:
// a bound client's stanza that preroute let through, addressed to a domain
// the config's `hosts` does not list, leaves for a remote server. So this
// part runs the same client stanzas twice, live: against a Prosody with s2s
// and mod_firewall running remote.pfw, and through the proxy, running
// remote.pfw with hosts = its upstream's domains, in front of a Prosody with
// s2s and no firewall. What comes back to the sender and what reaches the
// local recipient must agree. Stanzas the rules let through try a real s2s
// connection to a .invalid domain, which fails; that error is the server's
// own and counted apart (`s2s`), as is its timing.
describe("firewall differential: deliver_remote through the proxy vs a running Prosody with mod_firewall and s2s", () => {
  const stops: (() => Promise<unknown>)[] = [];

  after(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  });

  /** s2s gave up on a remote domain: not the firewall's doing. */
  const s2sFailure = (el: XmlElement): boolean =>
    el.attrs.type === "error" && ["remote-server-not-found", "remote-server-timeout"].some((c) => el.getChild("error")?.getChild(c) !== undefined);

  it("a bound client's stanzas to remote and local domains: which rule fires", { timeout: 90_000 }, async (t) => {
    const rules = path.join(FIXTURES, "remote.pfw");
    const inputText = await readFile(path.join(FIXTURES, "remote.xml"), "utf8");
    const { ids, lines } = inputStanzas(inputText);

    const direct = await startProsody({ s2s: true, extraModules: ["firewall"], extraConfig: `firewall_scripts = { ${JSON.stringify(rules)} }` });
    stops.push(() => direct.stop());
    const behind = await startProsody({ s2s: true });
    stops.push(() => behind.stop());
    const proxy = await startProxy(
      configFromObject({
        listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${behind.port}` }],
        hosts: [...behind.hosts, ...behind.hosts.map((h) => `conference.${h}`)],
        firewall: { scripts: [rules], watch: false },
        admin: { listen: null },
      }),
      { logger: createLogger("warn", { write: () => {} }) },
    );
    stops.push(() => proxy.shutdown(0));

    type Seen = Map<string, { back: string[]; s2s: number; delivered: boolean }>;
    const session = async (server: ProsodyInstance, port: number): Promise<Seen> => {
      for (const u of ["alice", "bob"]) await server.createUser(u, `${u}-pw`);
      const login = (username: string, resource: string) =>
        connectClient({ host: "127.0.0.1", port, domain: server.domain, username, password: `${username}-pw`, resource, mechanism: "PLAIN" });
      const bob = await login("bob", "desk");
      const alice = await login("alice", "phone");
      stops.push(() => bob.stop(), () => alice.stop());
      const write = (alice.xmpp as unknown as { write(s: string): Promise<void> }).write.bind(alice.xmpp);
      for (const line of lines.values()) await write(line);
      await write("<message to='bob@localhost/desk' id='end-bob'><body>end</body></message>");
      await write("<iq to='localhost' type='get' id='end-alice'><ping xmlns='urn:xmpp:ping'/></iq>");
      const delivered = new Set<string>();
      await bob.waitFor((el) => {
        if (el.attrs.id !== undefined && ids.has(el.attrs.id)) delivered.add(el.attrs.id);
        return el.attrs.id === "end-bob";
      }, 10_000);
      const seen: Seen = new Map([...ids.keys()].map((id) => [id, { back: [], s2s: 0, delivered: delivered.has(id) }]));
      // waitFor() shows unclaimed stanzas again to the next predicate: count each once.
      const counted = new WeakSet<XmlElement>();
      const take = (el: XmlElement): void => {
        if (counted.has(el)) return;
        counted.add(el);
        const entry = el.attrs.id === undefined ? undefined : seen.get(el.attrs.id);
        if (entry === undefined) return;
        if (s2sFailure(el)) entry.s2s++;
        else entry.back.push(canonicalXml(el.toString(), true));
      };
      await alice.waitFor((el) => {
        take(el);
        return el.attrs.id === "end-alice";
      }, 10_000);
      // Failed s2s attempts may come later: wait for them a little.
      await alice.waitFor((el) => (take(el), false), 3_000).catch(() => {});
      return seen;
    };

    const theirs = await session(direct, direct.port);
    const ours = await session(behind, proxy.listenerAddress("c2s")!.port);
    const describeSeen = (s: Seen) => [...s].map(([id, o]) => `${id}: ${JSON.stringify(o)}`).join("\n");
    const context = `\n--- Prosody with mod_firewall ---\n${describeSeen(theirs)}\n--- through the proxy ---\n${describeSeen(ours)}`;
    for (const id of ids.keys()) {
      const a = ours.get(id)!;
      const b = theirs.get(id)!;
      assert.deepEqual({ back: a.back, delivered: a.delivered }, { back: b.back, delivered: b.delivered }, `stanza ${id}${context}`);
      assert.equal(a.s2s > 0, b.s2s > 0, `stanza ${id}: went to s2s on one side only${context}`);
    }
    const outcomes = [...ours.values()];
    t.diagnostic(
      `${ids.size} stanzas agree: ${outcomes.filter((o) => o.back.length > 0).length} answered by rules or the server, ` +
        `${outcomes.filter((o) => o.s2s > 0).length} tried s2s, ${outcomes.filter((o) => o.delivered).length} delivered locally`,
    );
  });
});
