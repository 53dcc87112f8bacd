// The syntax tree of a mod_firewall rule file (docs/firewall.md).
// Every node carries the physical position of its first character. The tree
// is plain data: the parser fills it, the compiler reads it and never mutates
// it. Parameters are already parsed here, so the compiler only resolves names.
import type { SourceLoc } from "./rule-error.js";
import type { XmlNode } from "./xml.js";

export type { SourceLoc };

export const BUILTIN_CHAINS = ["preroute", "deliver", "deliver_remote"] as const;
export type BuiltinChain = (typeof BUILTIN_CHAINS)[number];

/** A chain name: one of the built-in chains or `user/<name>`. */
export type ChainName = BuiltinChain | `user/${string}`;

export interface RuleFileAst {
  readonly kind: "file";
  readonly file: string;
  readonly rules: readonly RuleNode[];
  readonly definitions: readonly DefinitionNode[];
  readonly metadata: readonly MetadataNode[];
}

export interface RuleNode {
  readonly kind: "rule";
  readonly loc: SourceLoc;
  readonly chain: ChainName;
  readonly conditions: readonly ConditionNode[];
  readonly actions: readonly ActionNode[];
}

export interface MetadataNode {
  readonly kind: "metadata";
  readonly loc: SourceLoc;
  readonly key: string;
  readonly value: string;
}

// ---------------------------------------------------------------------------
// Expressions: `$<path|func||"default">` and a safe subset of `$(lua)`.

/** Which child `find` takes at one step: `{ns}name`, either part optional. */
export interface PathStep {
  readonly ns: string | undefined;
  readonly name: string | undefined;
}

/**
 * A Prosody stanza path (`util.stanza` find): walk `steps` taking the first
 * matching child each time, then return the element, its text, or an
 * attribute of the element reached.
 */
export interface StanzaPath {
  readonly source: string;
  readonly steps: readonly PathStep[];
  readonly end: { readonly kind: "element" } | { readonly kind: "text" } | { readonly kind: "attr"; readonly name: string };
  /** The path names something no stanza has (a name with a space or a brace…): it finds nothing. */
  readonly never?: boolean | undefined;
  /** What the loader should say about how the path was read (it is never refused). */
  readonly warning?: string | undefined;
}

export const JID_FUNCS = ["bare", "node", "host", "resource"] as const;
export type JidFunc = (typeof JID_FUNCS)[number];

/** The `$(…)` forms we evaluate (instead of arbitrary Lua). */
export type CodeExpr =
  | { readonly kind: "session"; readonly field: "ip" | "type" | "host" | "username" | "full_jid" }
  | { readonly kind: "stanza" }
  | { readonly kind: "top_tag" }
  | { readonly kind: "stanza_name" }
  | { readonly kind: "stanza_attr"; readonly name: string };

export type TemplatePart =
  | { readonly kind: "text"; readonly value: string }
  | {
      readonly kind: "path";
      readonly path: StanzaPath;
      readonly funcs: readonly JidFunc[];
      readonly fallback: string;
    }
  | { readonly kind: "code"; readonly code: CodeExpr; readonly source: string };

/** A string with expressions; a template without expressions is one text part. */
export interface Template {
  readonly source: string;
  readonly parts: readonly TemplatePart[];
}

// ---------------------------------------------------------------------------
// Conditions (docs/firewall.md, "Conditions").

export type PartMatcher =
  | { readonly kind: "exact"; readonly value: string }
  | { readonly kind: "present" }
  /**
   * A `<glob>` or `<<lua pattern>>`, as the Lua pattern mod_firewall builds
   * from it and runs with string.find (anchored with `^…$`).
   */
  | { readonly kind: "pattern"; readonly lua: string };

/** A JID pattern split into parts; an absent node/host must be absent in the stanza. */
export interface JidPattern {
  readonly node: PartMatcher | undefined;
  readonly host: PartMatcher | undefined;
  /** Compared only when the pattern has a resource. */
  readonly resource: PartMatcher | undefined;
}

export type CompareOp = ">" | "<" | ">=" | "<=" | "==";

export type InspectTest =
  | { readonly kind: "exists" }
  | { readonly kind: "equals"; readonly value: Template }
  | { readonly kind: "contains"; readonly value: Template }
  /** Lua pattern (string.match); `pattern` is set when it has no expressions, checked at load; else it is compiled per stanza. */
  | { readonly kind: "matches"; readonly value: Template; readonly pattern: string | undefined };

export interface TimeRange {
  /** Minutes after midnight; start inclusive, end exclusive, wraps when start > end. */
  readonly start: number;
  readonly end: number;
}

export type ConditionSpec =
  | { readonly name: "KIND" | "TYPE"; readonly values: readonly string[] }
  | { readonly name: "TO" | "FROM"; readonly pattern: JidPattern }
  | { readonly name: "TO_EXACTLY" | "FROM_EXACTLY"; readonly value: Template }
  | {
      readonly name:
        | "TO_SELF"
        | "TO_FULL_JID"
        | "FROM_FULL_JID"
        | "SUBSCRIBED"
        | "PENDING_SUBSCRIPTION_FROM_SENDER"
        | "SENT_DIRECTED_PRESENCE_TO_SENDER"
        | "FROM_ADMIN"
        | "TO_ADMIN";
    }
  /** `IN ROSTER?`; the deprecated `IN ROSTER: no` form sets expect=false. */
  | { readonly name: "IN_ROSTER"; readonly expect: boolean }
  | { readonly name: "IN_ROSTER_GROUP" | "FROM_GROUP" | "TO_GROUP"; readonly group: string }
  | { readonly name: "CROSSING_GROUPS"; readonly groups: readonly string[] }
  | { readonly name: "ENTERING" | "LEAVING"; readonly zone: string }
  | { readonly name: "PAYLOAD"; readonly ns: string }
  | { readonly name: "INSPECT"; readonly path: StanzaPath; readonly test: InspectTest }
  | { readonly name: "FROM_ADMIN_OF" | "TO_ADMIN_OF"; readonly host: string }
  | { readonly name: "MAY"; readonly permission: string }
  | { readonly name: "TO_ROLE" | "FROM_ROLE"; readonly role: string }
  /** `days` are whole weekdays ORed with the ranges (0 = Sunday). */
  | { readonly name: "TIME"; readonly ranges: readonly TimeRange[]; readonly days: readonly number[] }
  | { readonly name: "DAY"; readonly days: readonly number[] }
  | { readonly name: "LIMIT"; readonly rate: string; readonly on: Template | undefined }
  | { readonly name: "ORIGIN_MARKED" | "USER_MARKED"; readonly mark: string; readonly withinSeconds: number | undefined }
  | { readonly name: "CHECK_LIST"; readonly list: string; readonly value: Template }
  | { readonly name: "SCAN"; readonly search: string; readonly pattern: string; readonly list: string }
  | { readonly name: "COUNT"; readonly pattern: string; readonly search: string; readonly op: CompareOp; readonly value: number }
  | { readonly name: "FROM_IP"; readonly address: string }
  | { readonly name: "FROM_SUBNET"; readonly network: string; readonly bits: number }
  /** `FROM COUNTRY: …`; `FROM COUNTRY?` has field undefined (country known). */
  | { readonly name: "FROM_COUNTRY"; readonly field: "code" | "code3" | "continent" | undefined; readonly value: string };

export interface ConditionNode {
  readonly kind: "condition";
  readonly loc: SourceLoc;
  /** The logical line as written (after trimming and joining). */
  readonly text: string;
  readonly negated: boolean;
  readonly spec: ConditionSpec;
}

// ---------------------------------------------------------------------------
// Actions (docs/firewall.md, "Actions"). DISCONNECT is an xmpp-guard extension.

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type ActionSpec =
  | { readonly name: "PASS" | "DROP" | "DEFAULT" | "RETURN" | "UNSUBSCRIBE_SENDER" }
  | { readonly name: "BOUNCE"; readonly condition: string; readonly errorType: string; readonly text: string | undefined }
  | { readonly name: "REDIRECT" | "COPY" | "FORWARD"; readonly jid: string }
  | { readonly name: "REPLY"; readonly text: string }
  | { readonly name: "REPORT_TO"; readonly jid: string; readonly reason: string; readonly text: string }
  /** element undefined = any name (`*`); ns undefined = the stanza's own namespace. */
  | { readonly name: "STRIP"; readonly element: string | undefined; readonly ns: string | undefined }
  | { readonly name: "INJECT"; readonly xml: XmlNode }
  /** level undefined: a level the server's logger does not have, so nothing is logged. */
  | { readonly name: "LOG"; readonly level: LogLevel | undefined; readonly message: Template }
  | { readonly name: "MARK_ORIGIN" | "UNMARK_ORIGIN" | "MARK_USER" | "UNMARK_USER"; readonly mark: string }
  | { readonly name: "ADD_TO"; readonly list: string; readonly value: Template }
  | { readonly name: "EVENT" | "JUMP_EVENT"; readonly event: string }
  | { readonly name: "JUMP_CHAIN"; readonly chain: string }
  | { readonly name: "TAG_TRACE"; readonly tag: string }
  | { readonly name: "DISCONNECT"; readonly condition: string; readonly text: string | undefined };

export type ActionName = ActionSpec["name"];

export interface ActionNode {
  readonly kind: "action";
  readonly loc: SourceLoc;
  readonly text: string;
  readonly spec: ActionSpec;
}

// ---------------------------------------------------------------------------
// Definitions (docs/firewall.md, "Definitions").

export const LIST_FILTERS = ["upper", "lower", "md5", "sha1", "sha256", "prep", "bare", "log"] as const;
export type ListFilter = (typeof LIST_FILTERS)[number];

export type ListSpec =
  | { readonly backend: "memory"; readonly limit: number | undefined }
  | { readonly backend: "file"; readonly path: string; readonly missingOk: boolean }
  /** Remote lists are opened by an injected provider (HTTP polling, pubsub). */
  | { readonly backend: "http" | "pubsubitemid"; readonly url: string; readonly options: Readonly<Record<string, string>> };

export type DefinitionSpec =
  | { readonly type: "ZONE"; readonly members: readonly string[] }
  | {
      readonly type: "RATE";
      readonly rate: number;
      readonly burst: number;
      readonly entries: number | undefined;
      readonly allowOverflow: boolean;
    }
  | { readonly type: "LIST"; readonly list: ListSpec; readonly filters: readonly ListFilter[] }
  /** A Lua pattern for string.gmatch (SCAN, COUNT), checked at load. */
  | { readonly type: "PATTERN"; readonly source: string; readonly captures: number }
  | { readonly type: "SEARCH"; readonly path: StanzaPath };

export interface DefinitionNode {
  readonly kind: "definition";
  readonly loc: SourceLoc;
  readonly name: string;
  /** The value after `:` exactly as written (before escapes are decoded). */
  readonly text: string;
  readonly spec: DefinitionSpec;
}
