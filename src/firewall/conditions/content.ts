// Conditions on the stanza's content (docs/firewall.md, "Conditions"):
// PAYLOAD and INSPECT. They need the payload tree, except INSPECT of the
// stanza's own attributes.
import type { InspectTest, StanzaPath } from "../ast.js";
import { cachedLuaPattern, compileLuaPattern, LuaPattern, LuaPatternError } from "../lua-pattern.js";
import { fail, isFail, templateOrFail, type ParamContext, type ParamFail } from "../param.js";
import { COST_HEAD, COST_PAYLOAD, type RunState } from "../runtime.js";
import { getChild, parseStanzaPath, rootOf } from "../stanza-path.js";
import { needsPayload } from "../template.js";
import { defineCondition, type Test } from "./define.js";

export type PayloadSpec = { readonly name: "PAYLOAD"; readonly ns: string };
export type InspectSpec = { readonly name: "INSPECT"; readonly path: StanzaPath; readonly test: InspectTest };

export const PAYLOAD = defineCondition<PayloadSpec>({
  names: ["PAYLOAD"],
  param: "required",
  spaceSensitive: true,
  parse: (p = "", name) => ({ name, ns: p }),
  cost: COST_PAYLOAD,
  compile(spec) {
    // Prosody's get_child(nil, ns): a direct child whose recorded namespace
    // is ns. A child in the stanza's own namespace has none recorded, so
    // `PAYLOAD: jabber:client` never matches a plain <body/> (stanza-path.ts).
    const want = spec.ns;
    return (s) => {
      const f = s.facts;
      const st = f.stanza;
      // The first child is known without parsing; only look further when it differs.
      if (!f.modified) {
        if (st.firstChildName === undefined) return false;
        const first = st.firstChildXmlns;
        if ((first === st.xmlns ? undefined : first) === want) return true;
      }
      const tree = f.tree();
      if (!tree) return false;
      return getChild(rootOf(tree, st.xmlns), { ns: want, name: undefined }, st.xmlns, f.treeForm) !== undefined;
    };
  },
});

function parseInspect(param: string, ctx: ParamContext): InspectSpec | ParamFail {
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

/** INSPECT: a stanza path exists, or its text/attribute equals, contains or matches a value. */
export const INSPECT = defineCondition<InspectSpec>({
  names: ["INSPECT"],
  param: "required",
  // The path reader says it of a leading space itself.
  parse: (p = "", _name, ctx) => parseInspect(p, ctx),
  // Attribute reads of the stanza itself need only the head.
  cost: ({ path, test: t }) => (path.steps.length === 0 && (t.kind === "exists" || !needsPayload(t.value)) ? COST_HEAD : COST_PAYLOAD),
  compile(spec): Test {
    const path = spec.path;
    const t = spec.test;
    const read = (s: RunState): string | object | undefined => s.facts.find(path);
    switch (t.kind) {
      case "exists":
        return (s) => read(s) !== undefined;
      case "equals": {
        const v = t.value;
        return (s) => read(s) === s.facts.expand(v);
      }
      case "contains": {
        const v = t.value;
        return (s) => {
          const r = read(s);
          return (typeof r === "string" ? r : "").includes(s.facts.expand(v));
        };
      }
      case "matches": {
        const fixed = t.pattern !== undefined ? compileLuaPattern(t.pattern, { mode: "match" }) : undefined;
        const v = t.value;
        return (s) => {
          const r = read(s);
          const text = typeof r === "string" ? r : "";
          if (fixed) return fixed.test(text);
          // Built per stanza. Where Prosody's string.match would raise an
          // error (the stanza is then lost), the condition is false.
          const p = cachedLuaPattern(s.facts.expand(v), "match");
          return p instanceof LuaPattern && p.test(text);
        };
      }
    }
  },
});

export const CONTENT = [PAYLOAD, INSPECT] as const;
