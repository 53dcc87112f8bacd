// The syntax tree of a mod_firewall rule file (docs/firewall.md).
// Every node carries the physical position of its first character. The tree
// is plain data: the parser fills it, the compiler reads it and never mutates
// it. Parameters are already parsed here, so the compiler only resolves names.
import type { SourceLoc } from "./rule-error.js";
import type { ActionSpec } from "./actions/index.js";
import type { ConditionSpec } from "./conditions/index.js";
import type { XmlNode } from "./xml.js";

export type { SourceLoc };

export const BUILTIN_CHAINS = ["preroute", "deliver", "deliver_remote"] as const;
export type BuiltinChain = (typeof BUILTIN_CHAINS)[number];

/** A chain name: one of the built-in chains or `user/<name>`. */
export type ChainName = BuiltinChain | `user/${string}`;

/** A name a chain can have: built-in, or user/<name>. */
export function isChainName(name: string): boolean {
  return (BUILTIN_CHAINS as readonly string[]).includes(name) || /^user\/\S+$/.test(name);
}

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
      /** The path is the stanza's own `to` or `from` (worked out once, when parsed; Facts reads those from its address forms). */
      readonly address: "to" | "from" | undefined;
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

/** A parsed condition: each condition's spec is declared with its registry entry (conditions/). */
export type { ConditionSpec };

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

export const LOG_ACTION_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogActionLevel = (typeof LOG_ACTION_LEVELS)[number];

/** A parsed action: each action's spec is declared with its registry entry (actions/). */
export type { ActionSpec };

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
