// Rule-file parser: logical lines → RuleFileAst (docs/firewall.md: "Files and syntax", "Conditions", "Definitions").
// Rules are conditions then actions, separated by blank lines. Unlike Prosody,
// a condition, chain header or definition straight after an action is an
// error (Prosody silently drops the line and duplicates the rule: docs/firewall.md, "Prosody bugs we fix", 1), and
// so are conditions left without an action. Errors are collected; after each
// one the parser resynchronises at the next line so one run reports them all.
import {
  BUILTIN_CHAINS,
  LIST_FILTERS,
  LOG_LEVELS,
  type ActionNode,
  type ActionSpec,
  type ChainName,
  type CompareOp,
  type ConditionNode,
  type ConditionSpec,
  type DefinitionNode,
  type DefinitionSpec,
  type InspectTest,
  type JidPattern,
  type ListFilter,
  type ListSpec,
  type LogLevel,
  type MetadataNode,
  type PartMatcher,
  type RuleFileAst,
  type RuleNode,
  type Template,
  type TimeRange,
} from "./ast.js";
import { cidrBytes, formatIp, parseCidr, parseIp } from "../util/ip.js";
import { isValidJid, splitJid } from "../xmpp/jid.js";
import { lex, type LogicalLine } from "./lexer.js";
import { compileLuaPattern, globToLuaPattern, LuaPatternError } from "./lua-pattern.js";
import { Diagnostics, type SourceLoc } from "./rule-error.js";
import { parseStanzaPath } from "./stanza-path.js";
import { parseTemplate, stripSlashes } from "./template.js";
import { parseXmlSnippet } from "./xml.js";

/** RFC 6120 §8.3.3 stanza error conditions (plus Prosody's legacy payment-required). */
export const STANZA_ERROR_CONDITIONS = [
  "bad-request",
  "conflict",
  "feature-not-implemented",
  "forbidden",
  "gone",
  "internal-server-error",
  "item-not-found",
  "jid-malformed",
  "not-acceptable",
  "not-allowed",
  "not-authorized",
  "payment-required",
  "policy-violation",
  "recipient-unavailable",
  "redirect",
  "registration-required",
  "remote-server-not-found",
  "remote-server-timeout",
  "resource-constraint",
  "service-unavailable",
  "subscription-required",
  "undefined-condition",
  "unexpected-request",
] as const;

export const STANZA_ERROR_TYPES = ["auth", "cancel", "continue", "modify", "wait"] as const;

/** RFC 6120 §4.9.3 stream error conditions, for DISCONNECT. */
export const STREAM_ERROR_CONDITIONS = [
  "bad-format",
  "bad-namespace-prefix",
  "conflict",
  "connection-timeout",
  "host-gone",
  "host-unknown",
  "improper-addressing",
  "internal-server-error",
  "invalid-from",
  "invalid-namespace",
  "invalid-xml",
  "not-authorized",
  "not-well-formed",
  "policy-violation",
  "remote-connection-failed",
  "reset",
  "resource-constraint",
  "restricted-xml",
  "see-other-host",
  "system-shutdown",
  "undefined-condition",
  "unsupported-encoding",
  "unsupported-feature",
  "unsupported-stanza-type",
  "unsupported-version",
] as const;

/** Default error type per condition when BOUNCE gives none (docs/firewall.md, "Error replies"). */
export const DEFAULT_ERROR_TYPES: Readonly<Record<string, string>> = {
  "bad-request": "modify",
  "jid-malformed": "modify",
  "not-acceptable": "modify",
  "policy-violation": "modify",
  redirect: "modify",
  forbidden: "auth",
  "not-authorized": "auth",
  "payment-required": "auth",
  "registration-required": "auth",
  "subscription-required": "auth",
  "recipient-unavailable": "wait",
  "remote-server-timeout": "wait",
  "resource-constraint": "wait",
  "unexpected-request": "wait",
};

type ParamKind = "required" | "none" | "optional";

const CONDITION_PARAMS: Readonly<Record<string, ParamKind>> = {
  KIND: "required",
  TYPE: "required",
  TO: "required",
  FROM: "required",
  TO_EXACTLY: "required",
  FROM_EXACTLY: "required",
  TO_SELF: "none",
  TO_FULL_JID: "none",
  FROM_FULL_JID: "none",
  ENTERING: "required",
  LEAVING: "required",
  IN_ROSTER: "optional",
  IN_ROSTER_GROUP: "required",
  SUBSCRIBED: "none",
  PENDING_SUBSCRIPTION_FROM_SENDER: "none",
  PAYLOAD: "required",
  INSPECT: "required",
  FROM_GROUP: "required",
  TO_GROUP: "required",
  CROSSING_GROUPS: "required",
  FROM_ADMIN: "none",
  TO_ADMIN: "none",
  FROM_ADMIN_OF: "required",
  TO_ADMIN_OF: "required",
  MAY: "required",
  TO_ROLE: "required",
  FROM_ROLE: "required",
  TIME: "required",
  DAY: "required",
  LIMIT: "required",
  ORIGIN_MARKED: "required",
  USER_MARKED: "required",
  SENT_DIRECTED_PRESENCE_TO_SENDER: "none",
  CHECK_LIST: "required",
  SCAN: "required",
  COUNT: "required",
  FROM_IP: "required",
  FROM_SUBNET: "required",
  FROM_COUNTRY: "optional",
};

const ACTION_PARAMS: Readonly<Record<string, ParamKind>> = {
  PASS: "none",
  DROP: "none",
  DEFAULT: "none",
  RETURN: "none",
  UNSUBSCRIBE_SENDER: "none",
  BOUNCE: "optional",
  DISCONNECT: "optional",
  REDIRECT: "required",
  COPY: "required",
  FORWARD: "required",
  REPLY: "required",
  REPORT_TO: "required",
  STRIP: "required",
  INJECT: "required",
  LOG: "required",
  MARK_ORIGIN: "required",
  UNMARK_ORIGIN: "required",
  MARK_USER: "required",
  UNMARK_USER: "required",
  ADD_TO: "required",
  EVENT: "required",
  JUMP_EVENT: "required",
  JUMP_CHAIN: "required",
  TAG_TRACE: "required",
};

const DEFINITION_TYPES = ["ZONE", "RATE", "LIST", "SEARCH", "PATTERN"] as const;

/**
 * Conditions whose parameter Prosody compares as written, so that a leading
 * space (two spaces after the colon) makes them never hold. The others split
 * or trim their parameter, or fail to load with it (ENTERING, LIMIT).
 * INSPECT is left to the path reader, which says the same of its path.
 */
const SPACE_SENSITIVE = new Set([
  "TO",
  "FROM",
  "TO_EXACTLY",
  "FROM_EXACTLY",
  "IN_ROSTER_GROUP",
  "FROM_GROUP",
  "TO_GROUP",
  "PAYLOAD",
  "FROM_ADMIN_OF",
  "TO_ADMIN_OF",
  "MAY",
  "TO_ROLE",
  "FROM_ROLE",
]);
const IDSAFE = /^[A-Za-z][A-Za-z0-9_]*$/;
const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;

/** A parameter failure: message plus an offset into the parameter text. */
export class ParamFail {
  readonly error: string;
  readonly at: number | undefined;

  constructor(error: string, at?: number) {
    this.error = error;
    this.at = at;
  }
}

type Fail = ParamFail;

function fail(error: string, at?: number): Fail {
  return new ParamFail(error, at);
}

function isFail(x: unknown): x is Fail {
  return x instanceof ParamFail;
}

/** What a parameter parser may add besides its result. */
export interface ParamContext {
  warn(message: string, at?: number): void;
}

// ---------------------------------------------------------------------------
// Entry point.

/** What parseRuleFile returns (not the config layer's ParseResult, which is a value or an error). */
export interface RuleFileParse {
  readonly ast: RuleFileAst;
  readonly errors: Diagnostics["errors"];
  readonly warnings: Diagnostics["warnings"];
}

/** Parse one file's text. `diag` collects errors and warnings (a fresh one if omitted). */
export function parseRuleFile(file: string, source: string, diag: Diagnostics = new Diagnostics()): RuleFileParse {
  const parser = new Parser(file, diag);
  for (const line of lex(file, source, diag)) parser.feed(line);
  const ast = parser.finish();
  return { ast, errors: diag.errors, warnings: diag.warnings };
}

interface OpenRule {
  readonly loc: SourceLoc;
  readonly chain: ChainName;
  readonly conditions: ConditionNode[];
  readonly actions: ActionNode[];
  /** A terminal action has run: later actions in the rule are dead code. */
  terminatedBy: string | undefined;
}

const TERMINAL_ACTIONS = new Set(["PASS", "DROP", "DEFAULT", "RETURN", "BOUNCE", "REDIRECT", "JUMP_EVENT", "DISCONNECT"]);

class Parser {
  readonly #file: string;
  readonly #diag: Diagnostics;
  readonly #rules: RuleNode[] = [];
  readonly #definitions: DefinitionNode[] = [];
  readonly #metadata: MetadataNode[] = [];
  #chain: ChainName = "deliver";
  #rule: OpenRule | undefined;
  #state: "none" | "conditions" | "actions" = "none";

  constructor(file: string, diag: Diagnostics) {
    this.#file = file;
    this.#diag = diag;
  }

  feed(line: LogicalLine): void {
    switch (line.kind) {
      case "comment":
        return;
      case "blank":
        this.#endRule();
        return;
      case "chain":
      case "definition":
      case "metadata":
        if (this.#state !== "none") {
          const what = line.kind === "chain" ? "a chain header" : line.kind === "definition" ? "a definition" : "metadata";
          if (this.#state === "actions") {
            this.#diag.error(
              line.loc,
              `${what} straight after an action: separate it from the rule above with a blank line (Prosody would silently swallow this line)`,
            );
            this.#endRule();
          } else {
            // Keep the open rule so the actions below still attach to it: one error, not two.
            this.#diag.error(line.loc, `${what} inside a rule: the conditions above have no action yet`);
          }
        }
        if (line.kind === "chain") this.#chainHeader(line);
        else if (line.kind === "definition") this.#definition(line);
        else this.#metadataLine(line);
        return;
      case "action":
        if (this.#state === "none") this.#startRule(line.loc);
        this.#state = "actions";
        this.#action(line);
        return;
      case "condition":
        if (this.#state === "actions") {
          this.#diag.error(
            line.loc,
            "condition straight after an action: separate rules with a blank line " +
              "(Prosody would silently drop this condition and run the rule above twice)",
          );
          this.#endRule();
        }
        if (this.#state === "none") this.#startRule(line.loc);
        this.#state = "conditions";
        this.#condition(line);
        return;
    }
  }

  finish(): RuleFileAst {
    this.#endRule(true);
    return {
      kind: "file",
      file: this.#file,
      rules: this.#rules,
      definitions: this.#definitions,
      metadata: this.#metadata,
    };
  }

  #startRule(loc: SourceLoc): void {
    this.#rule = { loc, chain: this.#chain, conditions: [], actions: [], terminatedBy: undefined };
  }

  #endRule(atEof = false): void {
    const rule = this.#rule;
    if (rule && this.#state === "conditions") {
      this.#diag.error(
        rule.loc,
        `conditions without an action: a rule needs at least one action (such as DROP.) before ${atEof ? "the end of the file" : "the blank line"}`,
      );
    } else if (rule && rule.actions.length > 0) {
      const { loc, chain, conditions, actions } = rule;
      this.#rules.push({ kind: "rule", loc, chain, conditions, actions });
    }
    this.#rule = undefined;
    this.#state = "none";
  }

  #chainHeader(line: LogicalLine): void {
    const name = line.text.replace(/^::\s*/, "");
    const nameAt = line.text.length - name.length;
    if ((BUILTIN_CHAINS as readonly string[]).includes(name) || /^user\/\S+$/.test(name)) {
      this.#chain = name as ChainName;
    } else {
      this.#diag.error(
        line.locAt(nameAt),
        `Unknown chain: ${name} (chains are ${BUILTIN_CHAINS.join(", ")} or user/<name>)`,
      );
    }
  }

  #metadataLine(line: LogicalLine): void {
    const m = /^@@\s*([^\s=]+)\s*=\s*(.+)$/.exec(line.text);
    if (!m) {
      this.#diag.error(line.loc, "Unable to parse metadata assignment (expected '@@ key = value')");
      return;
    }
    this.#metadata.push({ kind: "metadata", loc: line.loc, key: m[1]!, value: m[2]! });
  }

  // -------------------------------------------------------------------------
  // Definitions.

  #definition(line: LogicalLine): void {
    const text = line.text;
    const m = /^%\s*([A-Za-z0-9_]+) +([^ :]+)/.exec(text);
    if (!m) {
      this.#diag.error(line.loc, "malformed definition (expected '%TYPE name: value')");
      return;
    }
    const type = m[1]!;
    const name = m[2]!;
    if (!(DEFINITION_TYPES as readonly string[]).includes(type)) {
      const hint = (DEFINITION_TYPES as readonly string[]).includes(type.toUpperCase()) ? ` (write %${type.toUpperCase()})` : "";
      this.#diag.error(line.locAt(text.indexOf(type)), `Definition of unknown object: ${type}${hint}; known: ${DEFINITION_TYPES.join(", ")}`);
      return;
    }
    const nameAt = text.indexOf(name, text.indexOf(type) + type.length);
    if (!IDSAFE.test(name)) {
      this.#diag.error(line.locAt(nameAt), `Invalid ${type} name '${name}' (letters, digits and '_', starting with a letter)`);
      return;
    }
    const colon = text.indexOf(":");
    if (colon < 0) {
      this.#diag.error(line.locAt(text.length), "No value given for definition (expected ': value')");
      return;
    }
    let valueAt = colon + 1;
    if (text[valueAt] === " ") valueAt++;
    const raw = text.slice(valueAt);
    const value = stripSlashes(raw);
    const ctx: ParamContext = { warn: (msg, at) => this.#diag.warn(line.locAt(valueAt + (at ?? 0)), msg) };
    const spec = parseDefinition(type as DefinitionSpec["type"], name, value, ctx);
    if (isFail(spec)) {
      this.#diag.error(line.locAt(valueAt + (spec.at ?? 0)), spec.error);
      return;
    }
    this.#definitions.push({ kind: "definition", loc: line.loc, name, text: raw, spec });
  }

  // -------------------------------------------------------------------------
  // Conditions.

  #condition(line: LogicalLine): void {
    const text = line.text;
    const rawName = /^[^:=.?]*/.exec(text)![0];
    let nameText = rawName;
    let negated = false;
    const not = /(^|[^A-Za-z0-9])NOT(?![A-Za-z0-9])/.exec(rawName);
    if (not) {
      const start = not.index + not[1]!.length;
      // As Prosody cuts it: NOT and the character after it.
      nameText = rawName.slice(0, start) + rawName.slice(start + 4);
      negated = true;
    }
    const name = nameText.trim().replace(/\s+/g, "_");
    const kind = CONDITION_PARAMS[name];
    // Prosody trims the name only when it removed a NOT, and turns each
    // space (not tabs) into '_': `KIND : x` or a doubled space is a name it
    // does not know, and the file does not load there.
    const prosodyName = (not ? nameText.replace(/^\s+|\s+$/g, "") : rawName).replace(/ /g, "_");
    if (kind !== undefined && prosodyName !== name) {
      this.#diag.warn(line.loc, `Prosody reads this condition's name as '${prosodyName}' and fails to load the file (write '${name.replace(/_/g, " ")}')`);
    }
    if (kind === undefined) {
      const upper = name.toUpperCase();
      const hint =
        CONDITION_PARAMS[upper] !== undefined
          ? ` (condition names are case-sensitive: write ${upper.replace(/_/g, " ")})`
          : ACTION_PARAMS[upper] !== undefined
            ? ` (${upper.replace(/_/g, " ")} is an action: write it as '${upper.replace(/_/g, " ")}=…' or '${upper.replace(/_/g, " ")}.')`
            : "";
      this.#diag.error(line.loc, `Unknown condition: ${name.replace(/_/g, " ") || text}${hint}`);
      return;
    }
    let param: string | undefined;
    let paramAt = text.length;
    const colon = text.indexOf(":", rawName.length);
    if (colon === rawName.length) {
      paramAt = colon + 1;
      if (/^[ \t\n\v\f\r]/.test(text.slice(paramAt))) paramAt++;
      param = text.slice(paramAt);
      if (param === "") param = undefined;
    }
    const display = name.replace(/_/g, " ");
    if (kind === "required" && param === undefined) {
      this.#diag.error(line.locAt(paramAt), `${display} needs a parameter ('${display}: …')`);
      return;
    }
    if (kind === "none" && param !== undefined) {
      this.#diag.warn(line.locAt(paramAt), `${display} takes no parameter; '${param}' is ignored (write '${display}?')`);
      param = undefined;
    }
    const ctx: ParamContext = { warn: (msg, at) => this.#diag.warn(line.locAt(paramAt + (at ?? 0)), msg) };
    if (param !== undefined && /^\s/.test(param) && SPACE_SENSITIVE.has(name)) {
      ctx.warn(
        `more than one space after '${display}:': Prosody keeps the second as part of the parameter ('${param}'), ` +
          "which nothing equals, so this condition never holds; xmpp-guard reads it the same way (remove the extra space)",
      );
    }
    const spec = parseCondition(name, param, ctx);
    if (isFail(spec)) {
      this.#diag.error(line.locAt(paramAt + (spec.at ?? 0)), spec.error);
      return;
    }
    this.#rule!.conditions.push({ kind: "condition", loc: line.loc, text, negated, spec });
  }

  // -------------------------------------------------------------------------
  // Actions.

  #action(line: LogicalLine): void {
    const text = line.text;
    const rawName = /^[A-Za-z0-9_ ]+/.exec(text)![0];
    const name = rawName.trim().toUpperCase().replace(/\s+/g, "_");
    const kind = ACTION_PARAMS[name];
    const rule = this.#rule!;
    const prosodyName = rawName.toUpperCase().replace(/ /g, "_");
    if (kind !== undefined && prosodyName !== name) {
      this.#diag.warn(line.loc, `Prosody reads this action's name as '${prosodyName}' and fails to load the file (write '${name.replace(/_/g, " ")}')`);
    }
    if (kind === undefined) {
      const hint = CONDITION_PARAMS[name] !== undefined ? ` (${name.replace(/_/g, " ")} is a condition: write '${name.replace(/_/g, " ")}: …')` : "";
      this.#diag.error(line.loc, `Unknown action: ${name.replace(/_/g, " ")}${hint}`);
      return;
    }
    const sep = text[rawName.length];
    let param: string | undefined;
    const paramAt = rawName.length + 1;
    if (sep === "=") {
      param = text.slice(paramAt);
      if (param === "") param = undefined;
    } else if (text.length > paramAt) {
      this.#diag.warn(line.locAt(paramAt), `text after '${name.replace(/_/g, " ")}.' is ignored`);
    }
    const display = name.replace(/_/g, " ");
    if (kind === "required" && param === undefined) {
      this.#diag.error(line.locAt(rawName.length), `${display} needs a parameter ('${display}=…')`);
      return;
    }
    if (kind === "none" && param !== undefined) {
      this.#diag.warn(line.locAt(paramAt), `${display} takes no parameter; '${param}' is ignored (write '${display}.')`);
      param = undefined;
    }
    const ctx: ParamContext = { warn: (msg, at) => this.#diag.warn(line.locAt(paramAt + (at ?? 0)), msg) };
    const spec = parseAction(name, param, ctx);
    if (isFail(spec)) {
      this.#diag.error(line.locAt(param === undefined ? rawName.length : paramAt + (spec.at ?? 0)), spec.error);
      return;
    }
    if (rule.terminatedBy !== undefined) {
      this.#diag.warn(line.loc, `unreachable: ${rule.terminatedBy.replace(/_/g, " ")} above already ended this rule`);
    } else if (TERMINAL_ACTIONS.has(spec.name)) {
      rule.terminatedBy = spec.name;
    }
    rule.actions.push({ kind: "action", loc: line.loc, text, spec });
  }
}

// ---------------------------------------------------------------------------
// Parameter parsers (pure; offsets are relative to the parameter text).

/** A name a chain can have: built-in, or user/<name>. */
export function isChainName(name: string): boolean {
  return (BUILTIN_CHAINS as readonly string[]).includes(name) || /^user\/\S+$/.test(name);
}

function splitList(s: string): string[] {
  return s.split(/[\s,|]+/).filter((v) => v !== "");
}

function parseJidPart(part: string | undefined, ctx: ParamContext): PartMatcher | Fail | undefined {
  if (part === undefined) return undefined;
  const m = /^<(.*)>$/.exec(part);
  if (!m) return { kind: "exact", value: part };
  const inner = m[1]!;
  if (inner === "*") return { kind: "present" };
  const lua = /^<(.*)>$/.exec(inner);
  // mod_firewall runs part:find("^" .. pattern .. "$"), gluing the anchors to
  // the text as written: a `^` or `$` of the pattern's own is then an
  // ordinary character, and a trailing `%` escapes the closing `$`. The
  // glued pattern is what runs here too.
  const pattern = lua ? `^${lua[1]!}$` : globToLuaPattern(inner);
  try {
    compileLuaPattern(pattern, { mode: "find" });
  } catch (e) {
    return fail(`invalid Lua pattern <${inner}>: ${(e as Error).message}`);
  }
  if (lua) {
    const own = lua[1]!;
    if (own.startsWith("^")) ctx.warn(`'^' at the start of <${inner}> is an ordinary character: the pattern is already anchored, so it only matches a '^' in the JID`);
    if (/(^|[^%])(%%)*\$$/.test(own)) ctx.warn(`'$' at the end of <${inner}> is an ordinary character: the pattern is already anchored, so it only matches a '$' in the JID`);
    else if (/(^|[^%])(%%)*%$/.test(own)) ctx.warn(`'%' at the end of <${inner}> escapes the anchor mod_firewall appends: the pattern then matches any JID part that starts with it and continues with a '$'`);
  }
  return { kind: "pattern", lua: pattern };
}

function parseJidPattern(param: string, ctx: ParamContext): JidPattern | Fail {
  // Untrimmed, as Prosody splits it: a leading space stays in the first part,
  // which then equals no JID's.
  const p = splitJid(param);
  if (p.host === undefined) return fail(`invalid JID pattern '${param}'`);
  const node = parseJidPart(p.node, ctx);
  const host = parseJidPart(p.host, ctx);
  const resource = parseJidPart(p.resource, ctx);
  for (const part of [node, host, resource]) if (isFail(part)) return part;
  return { node: node as PartMatcher | undefined, host: host as PartMatcher, resource: resource as PartMatcher | undefined };
}

function templateOrFail(source: string, offset = 0, ctx?: ParamContext): Template | Fail {
  const t = parseTemplate(source);
  if ("error" in t) return fail(t.error, offset + t.offset);
  for (const part of t.parts) if (part.kind === "path" && part.path.warning !== undefined) ctx?.warn(part.path.warning, offset);
  return t;
}

function dayNumber(name: string): number | undefined {
  const i = (DAY_NAMES as readonly string[]).indexOf(name.slice(0, 3).toLowerCase());
  return i < 0 || name.length < 3 ? undefined : i;
}

function dayRange(from: number, to: number): number[] {
  const out: number[] = [];
  for (let d = from; ; d = (d + 1) % 7) {
    out.push(d);
    if (d === to) return out;
  }
}

function parseClock(h: string, m: string | undefined, ampm: string | undefined): number | undefined {
  let hour = Number(h);
  const minute = m === undefined ? 0 : Number(m);
  if (minute > 59) return undefined;
  if (ampm !== undefined) {
    if (hour > 12) return undefined;
    hour = (hour % 12) + (ampm.toLowerCase() === "pm" ? 12 : 0);
  } else if (hour > 24 || (hour === 24 && minute !== 0)) return undefined;
  return hour * 60 + minute;
}

function parseTime(param: string, ctx: ParamContext): ConditionSpec | Fail {
  const ranges: TimeRange[] = [];
  const days = new Set<number>();
  let offset = 0;
  for (const rawItem of param.split(",")) {
    const item = rawItem.trim();
    const at = offset + rawItem.indexOf(item);
    offset += rawItem.length + 1;
    if (item === "") continue;
    const m = /^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\s*-\s*(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$/i.exec(item);
    if (m && ((m[2] === undefined && m[3] === undefined) || (m[5] === undefined && m[6] === undefined))) {
      ctx.warn(`Prosody fails to load a time with neither minutes nor am/pm ('${item}'); write e.g. 9:00-17:00 for portable files`, at);
    }
    if (m) {
      const start = parseClock(m[1]!, m[2], m[3]);
      const end = parseClock(m[4]!, m[5], m[6]);
      if (start === undefined || end === undefined) return fail(`invalid time in range '${item}'`, at);
      if (start === end) ctx.warn(`time range '${item}' is empty and never matches`, at);
      ranges.push({ start, end: end === 1440 ? 0 : end });
      continue;
    }
    const day = /^[A-Za-z]+$/.test(item) ? dayNumber(item) : undefined;
    if (day !== undefined) {
      ctx.warn(
        `weekday '${item}' in TIME matches that whole day (the documented meaning); Prosody fails to load this, use DAY: for portable files`,
        at,
      );
      days.add(day);
      continue;
    }
    return fail(`Unable to parse time range: '${item}' (expected e.g. 9am-5pm or 14:00-15:30)`, at);
  }
  if (ranges.length === 0 && days.size === 0) return fail("expected a list of time ranges");
  return { name: "TIME", ranges, days: [...days].sort() };
}

function parseDay(param: string): ConditionSpec | Fail {
  const days = new Set<number>();
  let offset = 0;
  for (const rawItem of param.split(",")) {
    const item = rawItem.trim();
    const at = offset + rawItem.indexOf(item);
    offset += rawItem.length + 1;
    if (item === "") continue;
    const range = /^([A-Za-z]+)\s*-\s*([A-Za-z]+)$/.exec(item);
    if (range) {
      const a = dayNumber(range[1]!);
      const b = dayNumber(range[2]!);
      if (a === undefined || b === undefined) return fail(`Unknown day name in '${item}'`, at);
      for (const d of dayRange(a, b)) days.add(d);
      continue;
    }
    const d = /^[A-Za-z]+$/.test(item) ? dayNumber(item) : undefined;
    if (d === undefined) return fail(`Unable to parse day/day range: '${item}'`, at);
    days.add(d);
  }
  if (days.size === 0) return fail("Expected a list of days or day ranges");
  return { name: "DAY", days: [...days].sort() };
}

function parseMarkSpec(name: "ORIGIN_MARKED" | "USER_MARKED", param: string): ConditionSpec | Fail {
  const timed = /^\s*([A-Za-z0-9_]+)\s+\(([^)]+)s\)\s*$/.exec(param);
  const plain = /^\s*([A-Za-z0-9_]+)\s*$/.exec(param);
  const m = timed ?? plain;
  if (!m) return fail("Error parsing mark name (expected 'name' or 'name (3600s)')");
  if (!IDSAFE.test(m[1]!)) return fail(`invalid mark name '${m[1]}' (must start with a letter)`);
  let withinSeconds: number | undefined;
  if (timed) {
    withinSeconds = Number(timed[2]);
    if (!Number.isFinite(withinSeconds) || withinSeconds < 0) return fail(`invalid mark age '${timed[2]}s'`);
  }
  return { name, mark: m[1]!, withinSeconds };
}

function parseInspect(param: string, ctx: ParamContext): ConditionSpec | Fail {
  const eq = param.indexOf("=");
  if (eq < 0) {
    const path = parseStanzaPath(param);
    if (path.warning !== undefined) ctx.warn(path.warning);
    return { name: "INSPECT", path, test: { kind: "exists" } };
  }
  const m = /^(.*?)([~/$]*)=(.*)$/s.exec(param)!;
  const query = m[1]!;
  let op = m[2]!;
  const rawValue = m[3]!;
  if (!(query.endsWith("#") || /@[^/]+/.test(query))) {
    return fail("Stanza path does not return a string (append # for text content or @name for value of named attribute)");
  }
  const path = parseStanzaPath(query);
  if (path.warning !== undefined) ctx.warn(path.warning);
  const expand = op.includes("$");
  op = op.replace(/\$/g, "");
  const valueAt = query.length + m[2]!.length + 1;
  const value = expand ? templateOrFail(rawValue, valueAt, ctx) : { source: rawValue, parts: [{ kind: "text" as const, value: rawValue }] };
  if (isFail(value)) return value;
  let test: InspectTest;
  if (op === "") test = { kind: "equals", value };
  else if (op === "/") test = { kind: "contains", value };
  else if (op === "~") {
    // mod_firewall runs (text):match(value) per stanza and checks nothing at
    // load; a malformed pattern is refused here instead (docs/firewall.md).
    let pattern: string | undefined;
    if (!expand) {
      try {
        compileLuaPattern(rawValue, { mode: "match" });
        pattern = rawValue;
      } catch (e) {
        const at = e instanceof LuaPatternError ? valueAt + e.index : valueAt;
        return fail(`invalid Lua pattern '${rawValue}': ${(e as Error).message}`, at);
      }
    }
    test = { kind: "matches", value, pattern };
  } else return fail(`Unrecognised comparison '${op}='`, query.length);
  return { name: "INSPECT", path, test };
}

/** Parse a condition's parameter (name already validated and normalised). */
export function parseCondition(name: string, param: string | undefined, ctx: ParamContext): ConditionSpec | Fail {
  const p = param ?? "";
  switch (name) {
    case "KIND": {
      const values = splitList(p);
      for (const v of values) {
        if (v !== "message" && v !== "presence" && v !== "iq") ctx.warn(`KIND '${v}' never matches (stanza kinds are message, presence, iq)`, p.indexOf(v));
      }
      if (values.length === 0) return fail("Expected stanza kind to match against");
      return { name, values };
    }
    case "TYPE": {
      const values = splitList(p);
      if (values.length === 0) return fail("Expected 'type' value to match against");
      return { name, values };
    }
    case "TO":
    case "FROM": {
      const pattern = parseJidPattern(p, ctx);
      return isFail(pattern) ? pattern : { name, pattern };
    }
    case "TO_EXACTLY":
    case "FROM_EXACTLY": {
      const value = templateOrFail(p, 0, ctx);
      return isFail(value) ? value : { name, value };
    }
    case "TO_SELF":
    case "TO_FULL_JID":
    case "FROM_FULL_JID":
    case "SUBSCRIBED":
    case "PENDING_SUBSCRIPTION_FROM_SENDER":
    case "SENT_DIRECTED_PRESENCE_TO_SENDER":
    case "FROM_ADMIN":
    case "TO_ADMIN":
      return { name };
    case "IN_ROSTER": {
      if (param === undefined) return { name, expect: true };
      // As Prosody reads it: yes or true (any case) mean yes, anything else no.
      const v = param.toLowerCase();
      const expect = v === "yes" || v === "true";
      if (expect || v === "no" || v === "false") ctx.warn("the 'IN ROSTER: yes/no' form is deprecated; write 'IN ROSTER?' or 'NOT IN ROSTER?'");
      else ctx.warn(`IN ROSTER: '${param}' is read as 'no' (only yes and true mean yes, as in Prosody); write 'IN ROSTER?' or 'NOT IN ROSTER?'`);
      return { name, expect };
    }
    case "IN_ROSTER_GROUP":
    case "FROM_GROUP":
    case "TO_GROUP":
      return { name, group: p };
    case "CROSSING_GROUPS": {
      const groups = p.split(",").map((g) => g.trim()).filter((g) => g !== "");
      if (groups.length === 0) return fail("Expected a comma-separated list of groups");
      return { name, groups };
    }
    case "ENTERING":
    case "LEAVING": {
      // Prosody fails to load a zone name that is not a plain word (a leading space included).
      if (p !== "$local" && !IDSAFE.test(p)) return fail(`Invalid zone name: '${p}' (letters, digits and '_', starting with a letter; or $local)`);
      return { name, zone: p };
    }
    case "PAYLOAD":
      return { name, ns: p };
    case "INSPECT":
      return parseInspect(p, ctx);
    case "FROM_ADMIN_OF":
    case "TO_ADMIN_OF":
      return { name, host: p };
    case "MAY":
      return { name, permission: p };
    case "TO_ROLE":
    case "FROM_ROLE":
      return { name, role: p };
    case "TIME":
      return parseTime(p, ctx);
    case "DAY":
      return parseDay(p);
    case "LIMIT": {
      const on = /^([A-Za-z0-9_]+) on (.+)$/.exec(p);
      const rate = on ? on[1]! : /^[A-Za-z0-9_]+$/.test(p) ? p : undefined;
      if (rate === undefined) return fail("Unable to parse LIMIT specification (expected 'name' or 'name on EXPRESSION')");
      if (rate.includes("_")) ctx.warn(`Prosody cannot parse a LIMIT on a rate name containing '_' ('${rate}'); this file is not portable`);
      if (!on) return { name, rate, on: undefined };
      const tpl = templateOrFail(on[2]!, rate.length + 4, ctx);
      return isFail(tpl) ? tpl : { name, rate, on: tpl };
    }
    case "ORIGIN_MARKED":
    case "USER_MARKED":
      return parseMarkSpec(name, p);
    // CHECK LIST, SCAN and COUNT split their parameter as Prosody does: single
    // spaces around the keywords, the first match from the left, so a second
    // space stays in the expression (and a list entry with a leading space is
    // looked up).
    case "CHECK_LIST": {
      const m = /(\S+) contains (.+)$/s.exec(p);
      if (!m) return fail("Error parsing list check, syntax: LISTNAME contains EXPRESSION");
      const value = templateOrFail(m[2]!, p.length - m[2]!.length, ctx);
      return isFail(value) ? value : { name, list: m[1]!, value };
    }
    case "SCAN": {
      const m = /(\S+) for (\S+) in (\S+)$/.exec(p);
      if (!m) return fail("Error parsing SCAN expression, syntax: SEARCH for PATTERN in LIST");
      return { name, search: m[1]!, pattern: m[2]!, list: m[3]! };
    }
    case "COUNT": {
      const m = /(\S+) in (\S+) (.+)$/s.exec(p);
      if (!m) return fail("Error parsing COUNT expression, syntax: PATTERN in SEARCH COMPARATOR NUMBER");
      // Prosody's reading: the last run of digits is the number; what is left,
      // without spaces, the comparison.
      const digits = m[3]!.match(/\d+/g);
      if (!digits) return fail(`Error parsing COUNT expression, expected a number in '${m[3]}'`, p.length - m[3]!.length);
      let op = m[3]!.replace(/\d+/g, "").replace(/\s+/g, "");
      if (!["==", "=", ">", "<", ">=", "<="].includes(op)) {
        return fail(`Error parsing COUNT comparison '${m[3]}' (expected one of > < >= <= == and a number)`, p.length - m[3]!.length);
      }
      if (digits.length > 1 || !/^\s*(>=|<=|==|=|>|<)\s*\d+$/.test(m[3]!)) {
        ctx.warn(`COUNT comparison '${m[3]}' is read as '${op} ${digits[digits.length - 1]}' (as in Prosody); write it as e.g. '> 10'`, p.length - m[3]!.length);
      }
      if (op === "=") {
        ctx.warn("COUNT with '=' is read as '=='; Prosody fails to load '=' (write '==' for portable files)", p.length - m[3]!.length);
        op = "==";
      }
      return { name, pattern: m[1]!, search: m[2]!, op: op as CompareOp, value: Number(digits[digits.length - 1]) };
    }
    case "FROM_IP": {
      const ip = parseIp(p);
      if (!ip) return fail(`Cannot parse IP address: ${p}`);
      return { name, address: formatIp(ip) };
    }
    case "FROM_SUBNET": {
      let cidr: ReturnType<typeof cidrBytes>;
      try {
        cidr = cidrBytes(parseCidr(p.trim(), { lenient: true }));
      } catch {
        cidr = undefined;
      }
      if (!cidr) return fail(`Cannot parse subnet CIDR: ${p}`);
      return { name, network: formatIp(cidr.network), bits: cidr.bits };
    }
    case "FROM_COUNTRY": {
      if (param === undefined) return { name, field: undefined, value: "" };
      const kv = /^\s*(\w+)=(\w+)\s*$/.exec(p);
      if (kv) {
        const field = kv[1]!.toLowerCase();
        if (field !== "code" && field !== "code3" && field !== "continent") return fail(`Unknown country field '${kv[1]}' (code, code3, continent)`);
        return { name, field, value: kv[2]!.toUpperCase() };
      }
      const v = p.trim();
      if (/^[A-Za-z]{3}$/.test(v)) return { name, field: "code3", value: v.toUpperCase() };
      if (/^[A-Za-z]{2}$/.test(v)) return { name, field: "code", value: v.toUpperCase() };
      return fail(`Unknown country code type: '${p}'`);
    }
  }
  return fail(`Unknown condition: ${name}`);
}

/** Parse an action's parameter (name already validated and normalised). */
export function parseAction(name: string, param: string | undefined, ctx: ParamContext): ActionSpec | Fail {
  const p = param ?? "";
  switch (name) {
    case "PASS":
    case "DROP":
    case "DEFAULT":
    case "RETURN":
    case "UNSUBSCRIBE_SENDER":
      return { name };
    case "BOUNCE": {
      if (param === undefined) return { name, condition: "service-unavailable", errorType: "cancel", text: undefined };
      // Read as Prosody reads it: the condition is the first word (none when
      // the parameter starts with a space: service-unavailable), its type what
      // follows a ':' in that word, the text a final "(…)" after a space;
      // anything else on the line is ignored.
      const word = /^\S+/.exec(p)?.[0];
      let condition = word ?? "service-unavailable";
      let errorType: string | undefined;
      const colon = condition.indexOf(":");
      if (word !== undefined && colon >= 0 && colon < condition.length - 1) {
        errorType = condition.slice(colon + 1);
        condition = condition.slice(0, colon);
      }
      const textMatch = / \((.+)\)$/s.exec(p);
      const text = textMatch ? textMatch[1] : undefined;
      const wordEnd = word?.length ?? 0;
      const ignored = p.slice(wordEnd, textMatch ? textMatch.index : p.length).trim();
      if (word === undefined) {
        ctx.warn("BOUNCE= is followed by a space: Prosody finds no condition there and sends service-unavailable, as xmpp-guard does (remove the space)");
      } else if (ignored !== "") {
        ctx.warn(`'${ignored}' after the error condition is ignored, as in Prosody (a text goes last, in parentheses: BOUNCE=condition (text))`, wordEnd);
      }
      if (!/^[A-Za-z_][A-Za-z0-9._-]*$/.test(condition)) {
        // Prosody would build an element of that name: it fails at run time
        // (empty name, '<', quotes…) or sends what is not XML.
        return fail(`'${condition}' is not an error condition (an element name such as policy-violation)`);
      }
      if (!(STANZA_ERROR_CONDITIONS as readonly string[]).includes(condition)) {
        ctx.warn(`'${condition}' is not an RFC 6120 stanza error condition; Prosody sends it as one anyway, and so does xmpp-guard`);
      }
      if (errorType !== undefined && !(STANZA_ERROR_TYPES as readonly string[]).includes(errorType)) {
        ctx.warn(`'${errorType}' is not an error type (${STANZA_ERROR_TYPES.join(", ")}); Prosody sends it anyway, and so does xmpp-guard`, colon + 1);
      }
      return { name, condition, errorType: errorType ?? DEFAULT_ERROR_TYPES[condition] ?? "cancel", text };
    }
    case "DISCONNECT": {
      ctx.warn("DISCONNECT is an xmpp-guard extension: Prosody's mod_firewall has no such action and would refuse this file");
      if (param === undefined) return { name, condition: "policy-violation", text: undefined };
      const m = /^(\S+)(?: \((.+)\))?\s*$/s.exec(p);
      if (!m) return fail("expected DISCONNECT=condition (text)");
      if (!(STREAM_ERROR_CONDITIONS as readonly string[]).includes(m[1]!)) {
        return fail(`unknown stream error condition '${m[1]}' (RFC 6120 §4.9.3)`);
      }
      return { name, condition: m[1]!, text: m[2] };
    }
    case "REDIRECT":
    case "COPY":
    case "FORWARD": {
      // Prosody routes a copy to whatever is written; the server then refuses
      // an address that is no JID. Refused here instead (deliberate difference).
      const jid = p;
      if (!isValidJid(jid)) return fail(`invalid JID '${p}'${/^\s/.test(p) ? " (it starts with a space)" : ""}`);
      return { name, jid };
    }
    case "REPLY":
      return { name, text: p };
    case "REPORT_TO": {
      const m = /^\s*(\S+) *(\S*) *(.*)$/s.exec(p);
      if (m === null) return fail("expected a JID after REPORT_TO=");
      const jid = m[1]!;
      if (!isValidJid(jid)) return fail(`invalid JID '${jid}'`);
      const r = m[2]!;
      const reason = r === "spam" ? "urn:xmpp:reporting:spam" : r === "abuse" || r === "" ? "urn:xmpp:reporting:abuse" : r;
      if (r !== "" && r !== "spam" && r !== "abuse" && !r.includes(":")) {
        ctx.warn(`REPORT TO reason '${r}' is used as a reason URI (Prosody does the same); write 'spam' or 'abuse' before the text`, p.indexOf(r));
      }
      return { name, jid, reason, text: m[3]! };
    }
    case "STRIP": {
      // Split as Prosody does: the first word, then everything after one space.
      const m = /^(\S+) (.+)$/s.exec(p);
      const el = m ? m[1]! : p;
      const ns = m ? m[2]! : undefined;
      if (/\s/.test(el)) ctx.warn(`STRIP of an element named '${el}': no element has a name with a space, so nothing is removed (in Prosody too)`);
      else if (ns !== undefined && /\s/.test(ns)) ctx.warn(`STRIP in namespace '${ns}': a namespace with a space is none a child has, so nothing is removed (in Prosody too)`, el.length + 1);
      return { name, element: el === "*" ? undefined : el, ns };
    }
    case "INJECT": {
      const r = parseXmlSnippet(p);
      if ("error" in r) return fail(`INJECT needs one XML element: ${r.error}`);
      return { name, xml: r.node };
    }
    case "LOG": {
      const lv = /^\[([A-Za-z]+)\] ?/.exec(p);
      const written = lv ? lv[1]! : "info";
      const level = (LOG_LEVELS as readonly string[]).includes(written) ? (written as LogLevel) : undefined;
      if (level === undefined) {
        ctx.warn(`'${written}' is not a log level (${LOG_LEVELS.join(", ")}, in lower case): Prosody's logger drops the message, and so does xmpp-guard`, 1);
      }
      const offset = lv ? lv[0].length : 0;
      const message = templateOrFail(p.slice(offset), offset, ctx);
      return isFail(message) ? message : { name, level, message };
    }
    case "MARK_ORIGIN":
    case "UNMARK_ORIGIN":
    case "MARK_USER":
    case "UNMARK_USER": {
      const mark = p.trim();
      if (!IDSAFE.test(mark)) return fail(`Invalid characters in mark name: ${mark}`);
      return { name, mark };
    }
    case "ADD_TO": {
      // Prosody's split: the first word followed by one space, then the rest.
      const m = /(\S+) (.+)/s.exec(p);
      if (!m) return fail("expected ADD TO=list EXPRESSION");
      const value = templateOrFail(m[2]!, m.index + m[1]!.length + 1, ctx);
      return isFail(value) ? value : { name, list: m[1]!, value };
    }
    case "EVENT":
    case "JUMP_EVENT":
      return { name, event: p.trim() };
    case "JUMP_CHAIN": {
      // Prosody fires the event of that name, whatever it is; no chain can be
      // called anything but a built-in name or user/<name>, so another jump
      // reaches nothing and the rule goes on.
      const chain = p;
      if (!isChainName(chain)) {
        ctx.warn(`JUMP CHAIN='${chain}': no chain has this name (chains are ${BUILTIN_CHAINS.join(", ")} or user/<name>), so the jump does nothing, as in Prosody`);
      }
      return { name, chain };
    }
    case "TAG_TRACE":
      return { name, tag: p.trim() };
  }
  return fail(`Unknown action: ${name}`);
}

/** Prosody ignores options a list type does not read; say so (remote lists: docs/knowledge.md). */
function warnUnknownListOptions(options: Record<string, string>, known: readonly string[], ctx: ParamContext): void {
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) ctx.warn(`unknown list option '${k}' is ignored, as in Prosody (this list type reads: ${known.join(", ")})`);
  }
}

function parseListSpec(value: string, ctx: ParamContext): { list: ListSpec; filters: ListFilter[] } | Fail {
  const backend = /^\w+/.exec(value)?.[0];
  const spec = /^\S+/.exec(value)?.[0] ?? "";
  const options: Record<string, string> = {};
  // Options are what Prosody takes: a "(…)" right after the list type, up to
  // the last ')'; anything else after the type is ignored there, and here.
  const optMatch = /^\S+\s+\((.+)\)/s.exec(value);
  if (optMatch) {
    // A comma only separates options when another `name:` follows, so `filter: lower,bare` keeps
    // both filters (Prosody splits at every comma and silently loses all but the first).
    for (const m of optMatch[1]!.matchAll(/(\w+): ?(.*?)(?=,\s*\w+:|$)/gs)) options[m[1]!] = m[2]!.trim();
  }
  const rest = value.slice(optMatch ? optMatch[0].length : spec.length).trim();
  if (rest !== "") ctx.warn(`'${rest}' after the list ${optMatch ? "options" : "type"} is ignored, as in Prosody (options go in parentheses: (name: value, …))`, value.length - rest.length);
  const filters: ListFilter[] = [];
  if (options.filter !== undefined) {
    for (const f of options.filter.match(/[\w_]+/g) ?? []) {
      if (!(LIST_FILTERS as readonly string[]).includes(f)) return fail(`Unknown list filter: ${f} (known: ${LIST_FILTERS.join(", ")})`);
      filters.push(f as ListFilter);
    }
  }
  switch (backend) {
    case "memory": {
      let limit: number | undefined;
      if (options.limit !== undefined) {
        limit = Number(options.limit);
        if (!Number.isInteger(limit) || limit < 1) return fail(`Invalid list limit '${options.limit}'`);
      }
      return { list: { backend, limit }, filters };
    }
    case "file": {
      const path = spec.replace(/^file:/, "");
      if (path === "") return fail("expected file:/path/to/list");
      if (options.missing !== undefined && options.missing !== "ignore") ctx.warn(`unknown value '${options.missing}' for 'missing' (only 'ignore')`);
      return { list: { backend, path, missingOk: options.missing === "ignore" }, filters };
    }
    case "http":
    case "https":
      warnUnknownListOptions(options, ["ttl", "pattern", "hash", "checkcert", "filter"], ctx);
      if (options.hash !== undefined && !/^(md5|sha1|sha256|sha384|sha512)$/.test(options.hash)) return fail(`invalid hash function: ${options.hash}`);
      if (options.ttl !== undefined && !(Number(options.ttl) > 0)) return fail(`invalid ttl for <${spec}> (expected number of seconds)`);
      if (options.pattern !== undefined) {
        try {
          // The list body is split with string.gmatch.
          compileLuaPattern(options.pattern, { mode: "gmatch" });
        } catch (e) {
          return fail(`invalid pattern for <${spec}>: ${(e as Error).message}`);
        }
      }
      return { list: { backend: "http", url: spec, options }, filters };
    case "pubsubitemid":
      warnUnknownListOptions(options, ["hash", "filter"], ctx);
      if (!/^pubsubitemid:[^/]*\/.+$/.test(spec)) return fail("Invalid list specification (expected 'pubsubitemid:<service>/<node>')");
      if (options.hash !== undefined && !/^(md5|sha1|sha256|sha384|sha512)$/.test(options.hash)) return fail(`invalid hash function: ${options.hash}`);
      return { list: { backend, url: spec, options }, filters };
  }
  return fail(`Unknown list type '${backend ?? value}' (memory, file:, http(s)://, pubsubitemid:)`);
}

export function parseDefinition(type: DefinitionSpec["type"], name: string, value: string, ctx: ParamContext): DefinitionSpec | Fail {
  switch (type) {
    case "ZONE": {
      const members = value.match(/[^, ]+/g) ?? [];
      if (members.length === 0) ctx.warn(`zone '${name}' has no members: ENTERING/LEAVING it never holds (as in Prosody)`);
      return { type, members };
    }
    case "RATE": {
      const r = /([\d.]+)/.exec(value);
      const rate = r ? Number(r[1]) : NaN;
      if (!Number.isFinite(rate)) return fail("Unable to parse rate");
      const b = /\(\s*burst\s+([\d.]+)\s*\)/.exec(value);
      const burst = b ? Number(b[1]) : 1;
      if (!Number.isFinite(burst)) return fail("Unable to parse burst");
      const e = /\(\s*entries\s+(\d+)\s*\)/.exec(value);
      const entries = e ? Number(e[1]) : undefined;
      if (entries !== undefined && entries < 1) return fail("entries must be at least 1");
      const allowOverflow = /\(allow overflow\)/.test(value);
      for (const m of value.matchAll(/\(([^)]*)\)/g)) {
        if (!/^\s*(burst\s+[\d.]+|entries\s+\d+)\s*$|^allow overflow$/.test(m[1]!)) ctx.warn(`unknown rate option '(${m[1]})' is ignored`, m.index);
      }
      if (rate * burst < 1) ctx.warn(`rate × burst = ${rate * burst} < 1: this limit is always exceeded (give a burst of at least ${Math.ceil(1 / rate)})`);
      return { type, rate, burst, entries, allowOverflow };
    }
    case "LIST": {
      const r = parseListSpec(value, ctx);
      return isFail(r) ? r : { type, list: r.list, filters: r.filters };
    }
    case "PATTERN":
      try {
        // Used by SCAN and COUNT through string.gmatch, which never anchors.
        const t = compileLuaPattern(value, { mode: "gmatch" });
        if (value.startsWith("^")) ctx.warn(`'^' at the start of %PATTERN ${name} is an ordinary character: SCAN and COUNT use string.gmatch, which never anchors`);
        return { type, source: value, captures: t.captures };
      } catch (e) {
        return fail(`Invalid pattern '${name}': ${(e as Error).message}`);
      }
    case "SEARCH": {
      const path = parseStanzaPath(value);
      if (path.warning !== undefined) ctx.warn(path.warning);
      return { type, path };
    }
  }
}
