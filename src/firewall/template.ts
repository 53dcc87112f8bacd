// Parameter expressions (docs/firewall.md, "Expressions"): `$<path|func||"default">`
// reads the stanza, `$(…)` evaluates code. We never run Lua: `$(…)` accepts a
// fixed safe subset and anything else is a load-time error. Unlike Prosody
// v2023 (docs/firewall.md, "Prosody bugs we fix", 5), the `||"default"` override works inside parameters.
import { JID_FUNCS, type CodeExpr, type JidFunc, type Template, type TemplatePart } from "./ast.js";
import { READS_ANYTHING, READS_FROM, READS_NOTHING, READS_TO, READS_TYPE } from "./memo.js";
import { parseStanzaPath } from "./stanza-path.js";

export const UNDEFINED_TEXT = "<undefined>";

const SUPPORTED_CODE =
  "session.ip, session.type, session.host, session.username, session.full_jid, " +
  "stanza, stanza:top_tag(), stanza.name, stanza.attr.NAME";

/** Index just past the bracket that balances the one at `start` (Lua %b), or -1. */
function balanced(s: string, start: number, open: string, close: string): number {
  let depth = 0;
  for (let i = start; i < s.length; i++) {
    const c = s[i];
    if (c === open) depth++;
    else if (c === close && --depth === 0) return i + 1;
  }
  return -1;
}

const ESCAPES: Record<string, string> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\", '"': '"', "'": "'" };

/** Prosody's stripslashes: decode `\n`, `\t`, `\\`, quotes…; unknown escapes stay as written. */
export function stripSlashes(s: string): string {
  return s.replace(/\\(.)/g, (m, c: string) => ESCAPES[c] ?? m);
}

function parseCode(code: string): CodeExpr | undefined {
  const c = code.trim();
  let m = /^session\.(ip|type|host|username|full_jid)$/.exec(c);
  if (m) return { kind: "session", field: m[1] as "ip" | "type" | "host" | "username" | "full_jid" };
  if (c === "stanza") return { kind: "stanza" };
  if (/^stanza:top_tag\(\s*\)$/.test(c)) return { kind: "top_tag" };
  if (c === "stanza.name") return { kind: "stanza_name" };
  m = /^stanza\.attr(?:\.([A-Za-z_][\w]*)|\[\s*(?:"([^"]*)"|'([^']*)')\s*\])$/.exec(c);
  if (m) return { kind: "stanza_attr", name: m[1] ?? m[2] ?? m[3]! };
  return undefined;
}

export type TemplateResult = Template | { readonly error: string; readonly offset: number };

/** Parse a parameter that may contain expressions. */
export function parseTemplate(source: string): TemplateResult {
  const parts: TemplatePart[] = [];
  let text = "";
  let i = 0;
  while (i < source.length) {
    const dollar = source.indexOf("$", i);
    if (dollar < 0) break;
    const next = source[dollar + 1];
    if (next !== "(" && next !== "<") {
      text += source.slice(i, dollar + 1);
      i = dollar + 1;
      continue;
    }
    const end = balanced(source, dollar + 1, next, next === "(" ? ")" : ">");
    if (end < 0) return { error: `unterminated expression '${source.slice(dollar)}'`, offset: dollar };
    text += source.slice(i, dollar);
    if (text) parts.push({ kind: "text", value: text });
    text = "";
    const inner = source.slice(dollar + 2, end - 1);
    if (next === "(") {
      const code = parseCode(inner.replace(/\\(.)/g, "$1"));
      if (!code) {
        return {
          error: `unsupported expression '$(${inner})': xmpp-guard runs no Lua; supported forms are ${SUPPORTED_CODE}`,
          offset: dollar,
        };
      }
      parts.push({ kind: "code", code, source: source.slice(dollar, end) });
    } else {
      const part = parsePathExpr(inner);
      if ("error" in part) return { error: part.error, offset: dollar };
      parts.push(part);
    }
    i = end;
  }
  text += source.slice(i);
  if (text || parts.length === 0) parts.push({ kind: "text", value: text });
  return { source, parts };
}

function parsePathExpr(expr: string): TemplatePart | { error: string } {
  let fallback = UNDEFINED_TEXT;
  const def = /\|\|"((?:[^"\\]|\\.)*)"$/.exec(expr);
  if (def) {
    fallback = stripSlashes(def[1]!);
    expr = expr.slice(0, def.index);
  }
  const funcs: JidFunc[] = [];
  const chain = /(?:\|[A-Za-z0-9_]+)+$/.exec(expr);
  if (chain) {
    for (const f of chain[0].slice(1).split("|")) {
      if (!(JID_FUNCS as readonly string[]).includes(f)) {
        return { error: `unknown function '|${f}' in '$<${expr}>' (known: ${JID_FUNCS.join(", ")})` };
      }
      funcs.push(f as JidFunc);
    }
    expr = expr.slice(0, chain.index);
  }
  const path = parseStanzaPath(expr);
  const end = path.end;
  const address = path.steps.length === 0 && end.kind === "attr" && path.never !== true && (end.name === "to" || end.name === "from") ? end.name : undefined;
  return { kind: "path", path, funcs, fallback, address };
}

/** True when the template is plain text (no expressions). */
export function isConstant(t: Template): boolean {
  return t.parts.every((p) => p.kind === "text");
}

/** True when evaluating the template may need the stanza's payload (tree()). */
export function needsPayload(t: Template): boolean {
  return t.parts.some(
    (p) =>
      (p.kind === "path" && p.path.steps.length > 0) ||
      (p.kind === "code" && p.code.kind === "stanza"),
  );
}

/**
 * What evaluating the template reads (memo.ts READS_*): `to` and `from`
 * through their paths or attributes, the type attribute; the origin session
 * and the stanza's name are the run's own. Anything else: READS_ANYTHING.
 */
export function templateReads(t: Template): number {
  let reads = READS_NOTHING;
  for (const p of t.parts) {
    if (p.kind === "text") continue;
    if (p.kind === "path") {
      if (p.address === undefined) return READS_ANYTHING;
      reads |= p.address === "to" ? READS_TO : READS_FROM;
      continue;
    }
    const code = p.code;
    switch (code.kind) {
      case "stanza_name":
        break;
      case "session":
        // A server's `host` is the current host, which is read from the addresses.
        if (code.field === "host") reads |= READS_TO | READS_FROM;
        break;
      case "stanza_attr":
        if (code.name === "to") reads |= READS_TO;
        else if (code.name === "from") reads |= READS_FROM;
        else if (code.name === "type") reads |= READS_TYPE;
        else return READS_ANYTHING;
        break;
      default:
        return READS_ANYTHING;
    }
  }
  return reads;
}
