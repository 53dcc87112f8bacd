// `xmpp-guard trace --rules FILE… --chain deliver < stanzas.xml`: run each
// stanza of a jabber:client stream (or a bare sequence of stanzas) through one
// chain of a rule set and report, per stanza, the verdict, the rules that
// matched, the actions run and every stanza the firewall would send. It is the
// admin's debugger and the hook for the differential test against
// `prosodyctl mod_firewall test`. It frames input with the proxy's own framer,
// so what it accepts is what the proxy accepts. It prints nothing itself.
import { FRAME_HEADER, FRAME_STANZA, Framer, DEFAULT_LIMITS, type FramerLimits } from "../xml/framer.js";
import { readHead } from "../xml/head.js";
import { NamespaceProblem, NsScope } from "../xml/namespaces.js";
import { DEFAULT_LANG, NS_CLIENT, Stanza, StreamContext } from "../xml/stanza.js";
import { escapeXml } from "../xml/stream-error.js";
import type { CompiledRuleSet } from "./compile.js";
import type { FirewallResult, OriginSession, RunChain } from "./context.js";
import { loadRuleFiles, type LoadOptions, type ReadTextFile } from "./load.js";
import { formatDiagnostic } from "./check.js";

/** The session the traced stanzas come from (the origin, in Prosody's terms). */
export interface TraceSession {
  readonly type: "c2s" | "s2sin";
  /** Bound full JID (c2s). In preroute it is stamped as `from` on stanzas without one. */
  readonly jid?: string | undefined;
  /** Peer domain (s2sin). */
  readonly domain?: string | undefined;
  readonly ip?: string | undefined;
  /** Default true: chains only ever see authenticated sessions. */
  readonly authenticated?: boolean | undefined;
}

export interface TraceOptions extends LoadOptions {
  readonly chain: RunChain;
  /**
   * The origin session, kept for the whole input so marks set by one stanza
   * are seen by the next. Leave it out for `deliver` on a c2s link, where the
   * proxy does not see the sender's session (docs/firewall.md).
   */
  readonly session?: TraceSession | undefined;
  /** Stamped as `from` on stanzas that have none (default: session.jid in preroute and deliver_remote). */
  readonly from?: string | undefined;
  /** The local host handling the stanzas (see FirewallContext.host). */
  readonly host?: string | undefined;
  /** Output format of `lines`: human (default) or one JSON object per line. */
  readonly format?: "human" | "json" | undefined;
  /** Content namespace for bare stanzas (default jabber:client). A real stream header says its own. */
  readonly streamNs?: string | undefined;
  /**
   * xml:lang of the synthetic header around bare stanzas (default none, so
   * stanzas without one read as "en"). A real stream header says its own.
   */
  readonly streamLang?: string | undefined;
  readonly limits?: FramerLimits | undefined;
  readonly readFile?: ReadTextFile | undefined;
}

/**
 * What the proxy does with the stanza: the core's verdict, except that a drop
 * whose stanza was re-routed by REDIRECT is shown as "redirect".
 */
export type TraceVerdict = "pass" | "drop" | "bounce" | "redirect" | "disconnect";

export interface TracedStanza {
  /** 1-based position among the input's top-level elements. */
  readonly index: number;
  /** 1-based input line where the element starts. */
  readonly line: number;
  readonly name: string;
  readonly id: string | undefined;
  readonly type: string | undefined;
  readonly from: string | undefined;
  readonly to: string | undefined;
  /** False for nonzas, which never reach a chain. */
  readonly stanza: boolean;
  readonly verdict: TraceVerdict;
  /** The rule whose action decided a non-pass verdict (`file:line`). */
  readonly by: string | undefined;
  readonly result: FirewallResult;
}

/** Options of traceRuleSet: what to run, without what to load. */
export type TraceRunOptions = Omit<TraceOptions, keyof LoadOptions | "readFile">;

export interface TraceResult {
  readonly ok: boolean;
  /** 0 when the rules loaded and the whole input was read, else 1. */
  readonly exitCode: 0 | 1;
  /**
   * For stderr: rule errors (`file:line:col: error: …`, nothing is traced then)
   * and input errors (`<stdin>:line:col: …`, stanzas before it are traced).
   */
  readonly errors: readonly string[];
  /** For stderr: rule warnings (`file:line:col: warning: …`). */
  readonly warnings: readonly string[];
  readonly stanzas: readonly TracedStanza[];
  /** For stdout: one JSON record per stanza, or the human blocks and a summary line. */
  readonly lines: readonly string[];
}

/** One JSON line per stanza; every key is always present, so lines diff well. */
export interface TraceRecord {
  readonly n: number;
  readonly line: number;
  readonly name: string;
  readonly id: string | null;
  readonly type: string | null;
  readonly from: string | null;
  readonly to: string | null;
  readonly chain: RunChain;
  readonly verdict: TraceVerdict;
  readonly defaulted: boolean;
  readonly by: string | null;
  /** Rules whose conditions matched, in evaluation order. */
  readonly rules: readonly string[];
  /** `file:line ACTION`, one per action run. */
  readonly actions: readonly string[];
  /** The bounce error stanza, verbatim. */
  readonly reply: string | null;
  readonly emitted: readonly { kind: string; via: string; to: string | null; rule: string; stanza: string }[];
  readonly rewrite: string | null;
  readonly disconnect: { condition: string; text: string | null } | null;
  readonly logs: readonly { level: string; rule: string; message: string }[];
  readonly marks: readonly { op: string; scope: string; name: string; rule: string }[];
  readonly tags: readonly string[];
}

const STREAM_HEADER = (ns: string, lang: string | undefined): string =>
  `<stream:stream xmlns='${ns}' xmlns:stream='http://etherx.jabber.org/streams'${lang === undefined ? "" : ` xml:lang='${escapeXml(lang)}'`}>`;
const INPUT_NAME = "<stdin>";

function isSpace(b: number | undefined): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/**
 * Where a synthetic stream header must go: after whitespace and an XML
 * declaration, unless the input opens a stream itself (`<stream:stream`, or
 * any element whose local name is `stream`).
 */
export function headerInsertPoint(input: Buffer): number | undefined {
  let i = 0;
  if (input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf) i = 3;
  while (isSpace(input[i])) i++;
  if (input[i] === 0x3c && input[i + 1] === 0x3f) {
    const end = input.indexOf("?>", i);
    if (end < 0) return undefined; // let the framer report the broken declaration
    i = end + 2;
    while (isSpace(input[i])) i++;
  }
  if (input[i] !== 0x3c) return i;
  let j = i + 1;
  while (j < input.length && !isSpace(input[j]) && input[j] !== 0x3e && input[j] !== 0x2f) j++;
  const name = input.toString("latin1", i + 1, j);
  return name === "stream" || name.endsWith(":stream") ? undefined : i;
}

/**
 * 1-based line and column of byte offsets (columns count bytes). Offsets are
 * asked for in increasing order, so each call scans only what is new.
 */
class Positions {
  readonly #data: Buffer;
  #offset = 0;
  #line = 1;
  #lineStart = 0;

  constructor(data: Buffer) {
    this.#data = data;
  }

  at(offset: number): { line: number; column: number } {
    if (offset < this.#offset) {
      this.#offset = 0;
      this.#line = 1;
      this.#lineStart = 0;
    }
    for (let i = this.#data.indexOf(0x0a, this.#offset); i >= 0 && i < offset; i = this.#data.indexOf(0x0a, i + 1)) {
      this.#line++;
      this.#lineStart = i + 1;
    }
    this.#offset = offset;
    return { line: this.#line, column: offset - this.#lineStart + 1 };
  }
}

function displayVerdict(r: FirewallResult): TraceVerdict {
  if (r.verdict === "drop" && r.emitted.some((e) => e.kind === "redirect")) return "redirect";
  return r.verdict;
}

/** Offset of the stream element's `<` inside a header frame (after any XML declaration). */
function streamTagStart(buf: Buffer, start: number, end: number): number {
  for (let i = buf.indexOf(0x3c, start); i >= 0 && i < end; i = buf.indexOf(0x3c, i + 1)) {
    if (buf[i + 1] !== 0x3f) return i;
  }
  return start;
}

/** Run every stanza of `input` through `chain` of an already loaded rule set. */
export function traceRuleSet(ruleset: CompiledRuleSet, input: Buffer | string, options: TraceRunOptions): TraceResult {
  const data = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  const insertAt = headerInsertPoint(data);
  let contentNs = options.streamNs ?? NS_CLIENT;
  let prefixLen = 0;
  let framed = data;
  if (insertAt !== undefined) {
    const header = Buffer.from(STREAM_HEADER(contentNs, options.streamLang), "utf8");
    prefixLen = header.length;
    framed = Buffer.concat([data.subarray(0, insertAt), header, data.subarray(insertAt)]);
  }
  // Offsets in `framed` → offsets in the caller's input.
  const inputOffset = (o: number): number => (insertAt === undefined || o < insertAt ? o : Math.max(insertAt, o - prefixLen));

  const session = options.session;
  const origin: OriginSession | undefined = session && {
    type: session.type,
    jid: session.jid,
    domain: session.domain,
    ip: session.ip,
    authenticated: session.authenticated ?? true,
    marks: new Map(),
  };
  // A c2s origin's JID replaces `from` as Prosody's router does; --from only fills a missing one.
  const originJid = options.chain !== "deliver" && session?.type === "c2s" ? session.jid : undefined;
  const stanzas: TracedStanza[] = [];
  const errors: string[] = [];
  const positions = new Positions(data);
  // What the last header set: the stanzas' namespace, scope and language
  // (kept over a restart whose header names none, as the server does).
  let lang = DEFAULT_LANG;
  let stamped = StreamContext.plain(contentNs, true);
  let unstamped = StreamContext.plain(contentNs, false);

  // The whole input goes in with one write(), so every frame is a zero-copy
  // range of `framed` and `start` is its offset.
  const framer = new Framer(
    {
      onFrame(kind, buf, start, end) {
        if (kind === FRAME_HEADER) {
          const head = readHead(buf, streamTagStart(buf, start, end), end);
          if (head === null) return;
          contentNs = head.attrs.get("xmlns") ?? contentNs;
          lang = head.attr("xml:lang") ?? lang;
          const scope = NsScope.EMPTY.enter(head);
          const inScope = scope instanceof NamespaceProblem ? StreamContext.plain(contentNs).scope : scope;
          stamped = new StreamContext(contentNs, inScope, lang, true);
          unstamped = new StreamContext(contentNs, inScope, lang, false);
          return;
        }
        if (kind !== FRAME_STANZA) return;
        const bytes = Buffer.from(buf.subarray(start, end));
        const view = originJid !== undefined ? new Stanza(bytes, stamped, originJid) : new Stanza(bytes, unstamped, options.from, 0, bytes.length, true);
        // Without a session, `deliver` is the server's side of a c2s link: the
        // stanzas are the server's own, read as written.
        const fromServer = options.chain === "deliver" && session === undefined;
        const result = ruleset.run(options.chain, { stanza: view, origin, host: options.host, fromServer });
        stanzas.push({
          index: stanzas.length + 1,
          line: positions.at(inputOffset(start)).line,
          name: view.name,
          id: view.id,
          type: view.type,
          from: view.from,
          to: view.to,
          stanza: view.kind !== "other",
          verdict: displayVerdict(result),
          by: result.verdict === "pass" ? undefined : result.hits.at(-1)?.rule.id,
          result,
        });
      },
      onError(error, offset) {
        const at = positions.at(inputOffset(offset));
        errors.push(`${INPUT_NAME}:${at.line}:${at.column}: ${error.message}`);
      },
    },
    options.limits ?? DEFAULT_LIMITS,
  );
  framer.write(framed);
  const truncated = framer.finish();
  if (truncated) {
    const at = positions.at(data.length);
    errors.push(`${INPUT_NAME}:${at.line}:${at.column}: ${truncated.message}`);
  }
  const lines = options.format === "json" ? stanzas.map((s) => JSON.stringify(toRecord(s, options.chain))) : humanLines(stanzas);
  const ok = errors.length === 0;
  return { ok, exitCode: ok ? 0 : 1, errors, warnings: [], stanzas, lines };
}

/** Load `paths` (all-or-nothing, as the proxy does), then trace `input` through `options.chain`. */
export async function traceStanzas(paths: readonly string[], input: Buffer | string, options: TraceOptions): Promise<TraceResult> {
  const { readFile, chain, session, from, host, format, streamNs, streamLang, limits, ...loadOptions } = options;
  const loaded = await loadRuleFiles(paths, readFile, loadOptions);
  const errors = loaded.errors.map((e) => formatDiagnostic("error", e));
  const warnings = loaded.warnings.map((w) => formatDiagnostic("warning", w));
  if (!loaded.ruleset) {
    return { ok: false, exitCode: 1, errors, warnings, stanzas: [], lines: [] };
  }
  const traced = traceRuleSet(loaded.ruleset, input, { chain, session, from, host, format, streamNs, streamLang, limits });
  return { ...traced, errors: [...errors, ...traced.errors], warnings };
}

// ---------------------------------------------------------------------------
// Output

export function toRecord(s: TracedStanza, chain: RunChain): TraceRecord {
  const r = s.result;
  return {
    n: s.index,
    line: s.line,
    name: s.name,
    id: s.id ?? null,
    type: s.type ?? null,
    from: s.from ?? null,
    to: s.to ?? null,
    chain,
    verdict: s.verdict,
    defaulted: r.defaulted,
    by: s.by ?? null,
    rules: r.matched.map((m) => m.id),
    actions: r.hits.map((h) => `${h.rule.id} ${actionLabel(h.action)}`),
    reply: r.bounce?.stanza ?? null,
    emitted: r.emitted.map((e) => ({ kind: e.kind, via: e.via, to: e.to ?? null, rule: e.rule.id, stanza: e.stanza })),
    rewrite: r.rewrite ?? null,
    disconnect: r.disconnect ? { condition: r.disconnect.condition, text: r.disconnect.text ?? null } : null,
    logs: r.logs.map((l) => ({ level: l.level, rule: l.rule.id, message: l.message })),
    marks: r.marks.map((m) => ({ op: m.op, scope: m.scope, name: m.name, rule: m.rule.id })),
    tags: [...r.tags],
  };
}

/** `JUMP_CHAIN` → `JUMP CHAIN`, as written in rule files. */
function actionLabel(name: string): string {
  return name.replace(/_/g, " ");
}

function head(s: TracedStanza): string {
  const attrs = [["id", s.id], ["type", s.type], ["from", s.from], ["to", s.to]]
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  return [`#${s.index}`, `line ${s.line}`, s.name, ...attrs].join(" ");
}

/**
 * Human form, one block per stanza:
 *
 *     #1 line 1 message id=m1 type=chat from=b@example.com to=a@localhost
 *        rule     rules/a.pfw:4 LOG, BOUNCE
 *        log      info rules/a.pfw:4: …
 *        verdict  bounce (rules/a.pfw:4)
 *        bounce   <message type='error' …>…</message>
 */
export function humanLines(stanzas: readonly TracedStanza[]): string[] {
  const out: string[] = [];
  const counts = new Map<TraceVerdict, number>();
  for (const s of stanzas) {
    const r = s.result;
    out.push(head(s));
    if (!s.stanza) out.push("   (not a stanza: never reaches a chain)");
    const perRule = new Map<string, string[]>();
    for (const h of r.hits) {
      const list = perRule.get(h.rule.id);
      if (list) list.push(actionLabel(h.action));
      else perRule.set(h.rule.id, [actionLabel(h.action)]);
    }
    for (const [rule, actions] of perRule) out.push(`   rule     ${rule} ${actions.join(", ")}`);
    for (const l of r.logs) out.push(`   log      ${l.level} ${l.rule.id}: ${l.message}`);
    for (const m of r.marks) out.push(`   ${m.op.padEnd(8)} ${m.scope} ${m.name} (${m.rule.id})`);
    for (const t of r.tags) out.push(`   tag      ${t}`);
    for (const e of r.emitted) out.push(`   ${e.kind.padEnd(8)} via ${e.via} to ${e.to ?? "-"} (${e.rule.id}): ${e.stanza}`);
    if (r.rewrite !== undefined) out.push(`   rewrite  ${r.rewrite}`);
    const why = [s.by, r.defaulted ? "DEFAULT" : undefined].filter((x) => x !== undefined).join(", ");
    out.push(`   verdict  ${s.verdict}${why === "" ? "" : ` (${why})`}`);
    if (r.bounce) out.push(`   bounce   ${r.bounce.stanza}`);
    if (r.disconnect) out.push(`   stream   ${r.disconnect.condition}${r.disconnect.text === undefined ? "" : ` (${r.disconnect.text})`}`);
    counts.set(s.verdict, (counts.get(s.verdict) ?? 0) + 1);
  }
  const parts = (["pass", "drop", "bounce", "redirect", "disconnect"] as const)
    .filter((v) => counts.has(v))
    .map((v) => `${counts.get(v)} ${v}`);
  out.push(`${stanzas.length} processed${parts.length > 0 ? `: ${parts.join(", ")}` : ""}`);
  return out;
}
