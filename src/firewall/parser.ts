// Rule-file parser: logical lines → RuleFileAst (docs/firewall.md: "Files and syntax", "Conditions", "Definitions").
// Rules are conditions then actions, separated by blank lines. Unlike Prosody,
// a condition, chain header or definition straight after an action is an
// error (Prosody silently drops the line and duplicates the rule: docs/firewall.md, "Prosody bugs we fix", 1), and
// so are conditions left without an action. Errors are collected; after each
// one the parser resynchronises at the next line so one run reports them all.
// The parser knows the line structure only: a condition or action line's name
// is looked up in the registry (conditions/, actions/), whose entry says
// whether it takes a parameter and reads it; definitions.ts reads %… values.
import { BUILTIN_CHAINS, type ActionNode, type ChainName, type ConditionNode, type DefinitionNode, type DefinitionSpec, type MetadataNode, type RuleFileAst, type RuleNode } from "./ast.js";
import { ACTIONS } from "./actions/index.js";
import { CONDITIONS } from "./conditions/index.js";
import { DEFINITION_TYPES, parseDefinition } from "./definitions.js";
import { lex, type LogicalLine } from "./lexer.js";
import { IDSAFE, isFail, type ParamContext } from "./param.js";
import { Diagnostics, type SourceLoc } from "./rule-error.js";
import { stripSlashes } from "./template.js";

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
    const def = CONDITIONS.get(name);
    // Prosody trims the name only when it removed a NOT, and turns each
    // space (not tabs) into '_': `KIND : x` or a doubled space is a name it
    // does not know, and the file does not load there.
    const prosodyName = (not ? nameText.replace(/^\s+|\s+$/g, "") : rawName).replace(/ /g, "_");
    if (def !== undefined && prosodyName !== name) {
      this.#diag.warn(line.loc, `Prosody reads this condition's name as '${prosodyName}' and fails to load the file (write '${name.replace(/_/g, " ")}')`);
    }
    if (def === undefined) {
      const upper = name.toUpperCase();
      const hint = CONDITIONS.has(upper)
        ? ` (condition names are case-sensitive: write ${upper.replace(/_/g, " ")})`
        : ACTIONS.has(upper)
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
    if (def.param === "required" && param === undefined) {
      this.#diag.error(line.locAt(paramAt), `${display} needs a parameter ('${display}: …')`);
      return;
    }
    if (def.param === "none" && param !== undefined) {
      this.#diag.warn(line.locAt(paramAt), `${display} takes no parameter; '${param}' is ignored (write '${display}?')`);
      param = undefined;
    }
    const ctx: ParamContext = { warn: (msg, at) => this.#diag.warn(line.locAt(paramAt + (at ?? 0)), msg) };
    if (param !== undefined && /^\s/.test(param) && def.spaceSensitive === true) {
      ctx.warn(
        `more than one space after '${display}:': Prosody keeps the second as part of the parameter ('${param}'), ` +
          "which nothing equals, so this condition never holds; xmpp-guard reads it the same way (remove the extra space)",
      );
    }
    // The registry entry reads the parameter (conditions/).
    const spec = def.parse ? def.parse(param, name as ConditionNode["spec"]["name"], ctx) : ({ name } as ConditionNode["spec"]);
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
    const def = ACTIONS.get(name);
    const rule = this.#rule!;
    const prosodyName = rawName.toUpperCase().replace(/ /g, "_");
    if (def !== undefined && prosodyName !== name) {
      this.#diag.warn(line.loc, `Prosody reads this action's name as '${prosodyName}' and fails to load the file (write '${name.replace(/_/g, " ")}')`);
    }
    if (def === undefined) {
      const hint = CONDITIONS.has(name) ? ` (${name.replace(/_/g, " ")} is a condition: write '${name.replace(/_/g, " ")}: …')` : "";
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
    if (def.param === "required" && param === undefined) {
      this.#diag.error(line.locAt(rawName.length), `${display} needs a parameter ('${display}=…')`);
      return;
    }
    if (def.param === "none" && param !== undefined) {
      this.#diag.warn(line.locAt(paramAt), `${display} takes no parameter; '${param}' is ignored (write '${display}.')`);
      param = undefined;
    }
    const ctx: ParamContext = { warn: (msg, at) => this.#diag.warn(line.locAt(paramAt + (at ?? 0)), msg) };
    // The registry entry reads the parameter (actions/).
    const spec = def.parse ? def.parse(param, name as ActionNode["spec"]["name"], ctx) : ({ name } as ActionNode["spec"]);
    if (isFail(spec)) {
      this.#diag.error(line.locAt(param === undefined ? rawName.length : paramAt + (spec.at ?? 0)), spec.error);
      return;
    }
    if (rule.terminatedBy !== undefined) {
      this.#diag.warn(line.loc, `unreachable: ${rule.terminatedBy.replace(/_/g, " ")} above already ended this rule`);
    } else if (def.terminal === true) {
      rule.terminatedBy = spec.name;
    }
    rule.actions.push({ kind: "action", loc: line.loc, text, spec });
  }
}

