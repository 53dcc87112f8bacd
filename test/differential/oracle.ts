// The server side of the differential test: Prosody's own stream parser,
// driven by xmppstream.lua in one long-lived Lua process, and the rules that
// turn its callbacks into "what the server read" and compare that with the
// proxy's view (test/helpers/view-stream.ts).

import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { StreamView, ViewedStanza } from "../helpers/view-stream.js";

export type Kind = "c2s" | "s2s";

export const NS_STREAMS = "http://etherx.jabber.org/streams";
export const DEFAULT_NS: Record<Kind, string> = { c2s: "jabber:client", s2s: "jabber:server" };

const SCRIPT = fileURLToPath(new URL("./xmppstream.lua", import.meta.url));

// ---------------------------------------------------------------------------
// Finding Prosody's Lua

export interface ProsodyLua {
  /** The interpreter Prosody's launcher runs under (its #! line). */
  lua: string;
  /** Prosody's source tree (CFG_SOURCEDIR in the launcher), or "" when it relies on the default search path. */
  sourceDir: string;
  /** Where the answer came from, for messages. */
  via: string;
}

function findInPath(bin: string): string | null {
  if (bin.includes("/")) return existsSync(bin) ? bin : null;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const candidate = path.join(dir, bin);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * Locate the Lua interpreter and module tree Prosody itself uses, by reading
 * its launcher script: the #! line names the interpreter (directly or through
 * env), and the launcher sets its source directory before loading anything.
 * PROSODY_LUA and PROSODY_SOURCEDIR override either half.
 *
 * Returns a string explaining what is missing when Prosody is not installed.
 */
export function findProsodyLua(): ProsodyLua | string {
  const envLua = process.env.PROSODY_LUA;
  const envSrc = process.env.PROSODY_SOURCEDIR;
  let lua: string | null = envLua ? findInPath(envLua) : null;
  let sourceDir = envSrc ?? "";
  let via = envLua ? "PROSODY_LUA" : "";
  if (envLua && lua === null) return `PROSODY_LUA=${envLua} is not an executable`;

  if (lua === null || envSrc === undefined) {
    const launcher = findInPath("prosody") ?? ["/usr/bin/prosody", "/usr/local/bin/prosody"].find((p) => existsSync(p)) ?? null;
    if (launcher === null) {
      if (lua !== null) return { lua, sourceDir, via };
      return "Prosody is not installed (no `prosody` launcher in PATH, /usr/bin or /usr/local/bin)";
    }
    const text = readFileSync(launcher, "latin1");
    if (lua === null) {
      const shebang = /^#!\s*(\S+)(?:[ \t]+(\S+))?/.exec(text);
      if (shebang === null) return `${launcher} has no #! line naming its Lua interpreter`;
      const interp = path.basename(shebang[1]!) === "env" && shebang[2] !== undefined ? shebang[2] : shebang[1]!;
      lua = findInPath(interp);
      if (lua === null) return `${launcher} runs under ${interp}, which is not installed`;
      via = launcher;
    }
    if (envSrc === undefined) {
      const src = /^\s*CFG_SOURCEDIR\s*=\s*(['"])(.*?)\1/m.exec(text);
      sourceDir = src ? src[2]! : "";
    }
  }
  return { lua, sourceDir, via };
}

// ---------------------------------------------------------------------------
// Talking to the Lua process

/** One stream for the oracle: bytes, optionally with stream restarts between segments. */
export interface OracleCase {
  kind: Kind;
  /** Segments fed in order; between two segments the stream restarts. */
  segments: Buffer[];
  /** Feed each segment in pieces of this many bytes (default: one feed() per segment). */
  chunk?: number;
}

/** A top-level element as the server's parser handed it over. */
export interface OracleElement {
  name: string;
  ns: string;
  type?: string;
  from?: string;
  to?: string;
  lang?: string;
  attrs: Record<string, string>;
  xml: string;
}

export type OracleEvent =
  | { ev: "open"; attrs: Record<string, string> }
  | ({ ev: "stanza" } & OracleElement)
  | ({ ev: "error"; kind: "stream-error" } & OracleElement)
  | { ev: "error"; kind: string; detail?: string; text?: string }
  | { ev: "close" }
  | { ev: "restart" }
  | { ev: "feed-fail"; err: string }
  | { ev: "lua-error"; err: string };

export class Oracle {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #waiting: Array<{ id: string; resolve: (e: OracleEvent[]) => void; reject: (e: Error) => void }> = [];
  #out = "";
  #err = "";
  #next = 0;
  #dead: Error | null = null;

  private constructor(p: ProsodyLua) {
    const args = [SCRIPT, ...(p.sourceDir ? [p.sourceDir] : [])];
    this.#child = spawn(p.lua, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.#child.stdout.setEncoding("utf8");
    this.#child.stderr.setEncoding("utf8");
    this.#child.stdout.on("data", (s: string) => this.#onData(s));
    this.#child.stderr.on("data", (s: string) => {
      this.#err += s;
    });
    this.#child.stdin.on("error", () => {
      // EPIPE when the process died: reported through "exit".
    });
    this.#child.on("error", (e) => this.#fail(e));
    this.#child.on("exit", (code, signal) => {
      this.#fail(new Error(`the oracle (${p.lua} ${args.join(" ")}) exited (${code ?? signal}): ${this.#err.trim() || "no stderr"}`));
    });
  }

  /**
   * Start the oracle and check it answers (a trivial stream round trip), so a
   * broken installation fails here with Lua's own message.
   */
  static async start(p: ProsodyLua): Promise<Oracle> {
    const probe = spawnSync(p.lua, [SCRIPT, ...(p.sourceDir ? [p.sourceDir] : [])], {
      input: "probe c2s 0\n",
      encoding: "utf8",
      timeout: 10_000,
    });
    if (probe.status !== 0 || !probe.stdout.startsWith('{"id":"probe"')) {
      throw new Error(`the oracle does not run under ${p.lua} (found via ${p.via || "PROSODY_LUA"}): ` +
        `status ${probe.status ?? probe.signal ?? probe.error?.message}, stderr: ${probe.stderr?.trim() || "none"}`);
    }
    return new Oracle(p);
  }

  #onData(s: string): void {
    this.#out += s;
    let nl: number;
    while ((nl = this.#out.indexOf("\n")) >= 0) {
      const line = this.#out.slice(0, nl);
      this.#out = this.#out.slice(nl + 1);
      const w = this.#waiting.shift();
      if (w === undefined) {
        this.#fail(new Error(`unexpected oracle output: ${line.slice(0, 200)}`));
        return;
      }
      let parsed: { id: string; events: OracleEvent[] | Record<string, never> };
      try {
        parsed = JSON.parse(line) as typeof parsed;
      } catch (e) {
        w.reject(new Error(`unreadable oracle line (${(e as Error).message}): ${line.slice(0, 200)}`));
        continue;
      }
      if (parsed.id !== w.id) {
        w.reject(new Error(`oracle answered ${parsed.id}, expected ${w.id}`));
        continue;
      }
      // An empty Lua table has no array/object distinction: {} is "no events".
      w.resolve(Array.isArray(parsed.events) ? parsed.events : []);
    }
  }

  #fail(e: Error): void {
    this.#dead ??= e;
    for (const w of this.#waiting.splice(0)) w.reject(this.#dead);
  }

  /** Parse one stream; many calls may be in flight (they are answered in order). */
  run(c: OracleCase): Promise<OracleEvent[]> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = `c${this.#next++}`;
    const ops: string[] = [];
    c.segments.forEach((seg, k) => {
      if (k > 0) ops.push("R");
      const step = c.chunk ?? Math.max(seg.length, 1);
      for (let at = 0; at < seg.length; at += step) ops.push(String(Math.min(step, seg.length - at)));
    });
    return new Promise((resolve, reject) => {
      this.#waiting.push({ id, resolve, reject });
      this.#child.stdin.write(Buffer.concat([Buffer.from(`${id} ${c.kind} ${ops.join(" ")}\n`, "latin1"), ...c.segments]));
    });
  }

  runAll(cases: OracleCase[]): Promise<OracleEvent[][]> {
    return Promise.all(cases.map((c) => this.run(c)));
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.#child.once("exit", () => resolve()));
    this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------
// What the server read

/**
 * How the server's reading of the stream ended:
 * - "eof": the input ran out with the stream still open (nothing wrong);
 * - "close": the peer closed the stream (</stream:stream>);
 * - "stream-error": the peer sent a stream error element (the last stanza
 *   listed; the server closes the session after it);
 * - "error: …": the server refused the stream (not well-formed, restricted
 *   XML, or not a stream header) and closes it.
 */
export type ServerEnd = "eof" | "close" | "stream-error" | `error: ${string}`;

export interface ServerView {
  stanzas: ViewedStanza[];
  /** Raw attribute tables, parallel to `stanzas`, for diagnostics. */
  attrs: Array<Record<string, string>>;
  /** The server's serialization of each stanza, parallel to `stanzas`. */
  xml: string[];
  end: ServerEnd;
  /** The stream's language as the parser tracks it: the header's xml:lang, "en" without one, kept across restarts. */
  streamLang: string;
  /** Error callbacks neither listener acts on (the stanza is still processed). */
  ignoredErrors: string[];
}

/** The fields the proxy compares. */
function viewed(e: OracleElement): ViewedStanza {
  return { name: e.name, ns: e.ns, type: e.type, from: e.from, to: e.to, lang: e.lang ?? "" };
}

/**
 * The server's reading of a stream, from the oracle's events. The parser keeps
 * calling back after an error it reports, but the c2s and s2s listeners close
 * the session on no-stream, parse-error and stream-error (and on a failed
 * feed), so nothing after the first of those is ever processed: the view ends
 * there. invalid-top-level-element (an unknown element in jabber:client) is
 * reported by the parser but ignored by both listeners, and the element is
 * handed over as a stanza all the same.
 */
export function serverView(events: OracleEvent[]): ServerView {
  const v: ServerView = { stanzas: [], attrs: [], xml: [], end: "eof", streamLang: "en", ignoredErrors: [] };
  for (const e of events) {
    switch (e.ev) {
      case "open":
        v.streamLang = e.attrs["xml:lang"] ?? v.streamLang;
        break;
      case "restart":
        break;
      case "stanza":
        v.stanzas.push(viewed(e));
        v.attrs.push(e.attrs);
        v.xml.push(e.xml);
        break;
      case "error":
        if ("xml" in e) {
          v.stanzas.push(viewed(e));
          v.attrs.push(e.attrs);
          v.xml.push(e.xml);
          v.end = "stream-error";
          return v;
        }
        if (e.kind === "invalid-top-level-element") {
          v.ignoredErrors.push(e.kind);
          break;
        }
        v.end = `error: ${e.kind}${e.detail !== undefined ? ` (${e.detail.replace(/\u0001/g, " ")})` : ""}`;
        return v;
      case "close":
        v.end = "close";
        return v;
      case "feed-fail":
        v.end = `error: not well-formed (${e.err})`;
        return v;
      case "lua-error":
        throw new Error(`the oracle script failed: ${e.err}`);
    }
  }
  return v;
}

// ---------------------------------------------------------------------------
// Agreement

export const FIELDS = ["name", "ns", "type", "from", "to", "lang"] as const;
export type Field = (typeof FIELDS)[number];

export interface Mismatch {
  /** A short, stable label for grouping (see classify()). */
  category: string;
  /** What went wrong, for people. */
  message: string;
  /** The stanza (0-based, in stream order) where the views first differ, when they differ on a stanza. */
  index?: number;
}

export interface AgreeOptions {
  /**
   * The proxy may refuse this stream although the server accepts it (input
   * the proxy deliberately treats more strictly). Without it, a refusal of a
   * stream the server reads without error is a mismatch.
   */
  proxyMayRefuse?: boolean;
}

function show(s: ViewedStanza | undefined): string {
  if (s === undefined) return "(none)";
  return JSON.stringify(s);
}

function differing(a: ViewedStanza, b: ViewedStanza): Field[] {
  return FIELDS.filter((f) => a[f] !== b[f]);
}

/**
 * True when `server` is `proxy` with each literal tab, newline and CR (a CR LF
 * pair counting once) read as a space: the proxy skipped the attribute-value
 * normalization every XML parser applies. (A heuristic: after decoding, a
 * literal CR and a &#13; look the same.)
 */
function onlyNormalized(server: string, proxy: string): boolean {
  const sameBut = (p: string): boolean => {
    if (p.length !== server.length || p === server) return false;
    for (let i = 0; i < p.length; i++) {
      if (p[i] !== server[i] && !(server[i] === " " && (p[i] === "\t" || p[i] === "\n" || p[i] === "\r"))) return false;
    }
    return true;
  };
  return sameBut(proxy) || sameBut(proxy.replace(/\r\n/g, "\n"));
}

/** A label for a stanza-level difference that names its likely cause. */
function stanzaCategory(field: Field, server: ViewedStanza, proxy: ViewedStanza, attrs: Record<string, string>, streamLang: string): string {
  const s = server[field];
  const p = proxy[field];
  if (field === "name" || field === "ns") return `element ${field}`;
  if (s !== undefined && p !== undefined && onlyNormalized(s, p)) return "attribute-value whitespace normalization";
  if (field === "lang") {
    // (Heuristic: the stamped value hides whether the stanza wrote it.)
    if (s === streamLang && streamLang !== "en") return "lang: a stanza without xml:lang takes the stream header's";
    return "lang";
  }
  if (s === undefined && p !== undefined && Object.keys(attrs).some((k) => k.endsWith(`\u0001${field}`))) {
    return `${field}: a namespaced attribute is not '${field}'`;
  }
  if (s !== undefined && p === undefined) return `${field}: proxy misses the attribute`;
  return field;
}

/**
 * Whether the proxy's view of a stream agrees with the server's. Precisely:
 *
 * 1. Every stanza both report, up to the point where the server stops
 *    reading, has the same name, namespace, type, from, to and xml:lang.
 * 2. When the server refused the stream (end "error: …"), the proxy must
 *    have refused it too, and must not have reported a stanza beyond those
 *    the server read: it may refuse at the same stanza or earlier.
 * 3. When the server read the whole input without refusing it ("eof"), the
 *    proxy must report exactly the same stanzas and no error (unless the
 *    case allows a stricter proxy, in which case a refusal with a matching
 *    prefix of stanzas is fine).
 * 4. After the peer's stream error or stream close the server reads nothing
 *    more: the proxy must agree up to there and may do anything after it.
 */
/**
 * The one stricter refusal the proxy makes on purpose, on every stream: a
 * header whose default namespace is not the listener's content namespace
 * (RFC 6120 requires that declaration). The server reads such a stream; the
 * proxy refuses it before dialling, so the server sees nothing of it.
 */
export function strictHeaderRefusal(proxy: StreamView): boolean {
  return proxy.error === "XPX_ERR_STREAM_HEADER_INVALID" && proxy.stanzas.length === 0;
}

export function agree(server: ServerView, proxy: StreamView, opts: AgreeOptions = {}): Mismatch | null {
  const mayRefuse = opts.proxyMayRefuse === true || strictHeaderRefusal(proxy);
  const O = server.stanzas;
  const P = proxy.stanzas;
  const n = Math.min(O.length, P.length);
  for (let i = 0; i < n; i++) {
    const fields = differing(O[i]!, P[i]!);
    if (fields.length > 0) {
      // Grouped by the first field that differs (name, ns, type, from, to, lang).
      return {
        category: stanzaCategory(fields[0]!, O[i]!, P[i]!, server.attrs[i]!, server.streamLang),
        index: i,
        message: `stanza ${i + 1} differs in ${fields.join(", ")}:\n  server: ${show(O[i])}\n  proxy:  ${show(P[i])}\n  server read it as: ${server.xml[i]}`,
      };
    }
  }
  const serverRefused = server.end.startsWith("error");
  if (serverRefused) {
    if (P.length > O.length) {
      return {
        category: `server refuses, proxy reads on: ${errorClass(server.end)}`,
        message: `the server stops (${server.end}) after ${O.length} stanza(s); the proxy read stanza ${O.length + 1}: ${show(P[O.length])}` +
          (proxy.error ? ` (and refused later: ${proxy.error})` : ""),
      };
    }
    if (proxy.error === undefined) {
      return {
        category: `server refuses, proxy accepts: ${errorClass(server.end)}`,
        message: `the server refuses the stream (${server.end}) after ${O.length} stanza(s); the proxy accepts it`,
      };
    }
    return null;
  }
  if (P.length < O.length) {
    if (proxy.error === undefined) {
      return {
        category: "proxy misses stanzas",
        message: `the server read ${O.length} stanza(s), the proxy ${P.length} and no error; next server stanza: ${show(O[P.length])}`,
      };
    }
    if (!mayRefuse) {
      return {
        category: `proxy refuses, server accepts: ${proxy.error}`,
        message: `the proxy refused (${proxy.error}) after ${P.length} stanza(s); the server reads on: ${show(O[P.length])}`,
      };
    }
    return null;
  }
  if (server.end === "eof") {
    if (P.length > O.length) {
      return {
        category: "proxy reads stanzas the server does not",
        message: `the server read ${O.length} stanza(s), the proxy ${P.length}; extra: ${show(P[O.length])}`,
      };
    }
    if (proxy.error !== undefined && !mayRefuse) {
      return {
        category: `proxy refuses, server accepts: ${proxy.error}`,
        message: `the proxy refused (${proxy.error}) after all ${P.length} stanza(s); the server reads the stream without error`,
      };
    }
  }
  return null;
}

/** The server's refusal without its variable details: a grouping label. */
function errorClass(end: ServerEnd): string {
  const m = /^error: not well-formed \((.*)\)$/.exec(end);
  if (m) return m[1]!;
  // no-stream's detail is the element's name, which varies; parse-error's is the reason, which does not.
  return end.startsWith("error: parse-error") ? end.slice("error: ".length) : end.replace(/^error: /, "").replace(/ \(.*\)$/, "");
}
