// Conditions on the stanza's name, type and addresses (docs/firewall.md,
// "Conditions"): KIND, TYPE, TO, FROM, TO/FROM EXACTLY, TO SELF,
// FROM FULL JID, ENTERING, LEAVING. All read only the stanza's head.
import type { JidPattern, PartMatcher, Template } from "../ast.js";
import { compileLuaPattern, globToLuaPattern } from "../lua-pattern.js";
import { fail, IDSAFE, isFail, splitList, templateOrFail, type ParamContext, type ParamFail } from "../param.js";
import { COST_HEAD, COST_PAYLOAD } from "../runtime.js";
import { isConstant, needsPayload, templateReads } from "../template.js";
import { READS_FROM, READS_NOTHING, READS_TO, READS_TYPE, readsBoth } from "../memo.js";
import { splitJid } from "../../xmpp/jid.js";
import { defineCondition, type Test } from "./define.js";

export type KindSpec = { readonly name: "KIND" | "TYPE"; readonly values: readonly string[] };
export type JidSpec = { readonly name: "TO" | "FROM"; readonly pattern: JidPattern };
export type ExactlySpec = { readonly name: "TO_EXACTLY" | "FROM_EXACTLY"; readonly value: Template };
export type SelfSpec = { readonly name: "TO_SELF" | "FROM_FULL_JID" };
export type ZoneSpec = { readonly name: "ENTERING" | "LEAVING"; readonly zone: string };

export const KIND = defineCondition<KindSpec>({
  names: ["KIND"],
  param: "required",
  parse(p = "", name, ctx) {
    const values = splitList(p);
    for (const v of values) {
      if (v !== "message" && v !== "presence" && v !== "iq") ctx.warn(`KIND '${v}' never matches (stanza kinds are message, presence, iq)`, p.indexOf(v));
    }
    if (values.length === 0) return fail("Expected stanza kind to match against");
    return { name, values };
  },
  cost: COST_HEAD,
  // The name is the chain function's own: KIND is decided by the pick.
  reads: () => READS_NOTHING,
  compile(spec) {
    const set = new Set(spec.values);
    return (s) => set.has(s.facts.name);
  },
  kinds: (spec) => spec.values,
});

export const TYPE = defineCondition<KindSpec>({
  names: ["TYPE"],
  param: "required",
  parse(p = "", name) {
    const values = splitList(p);
    if (values.length === 0) return fail("Expected 'type' value to match against");
    return { name, values };
  },
  cost: COST_HEAD,
  reads: () => READS_TYPE,
  compile(spec) {
    const set = new Set(spec.values);
    return (s) => {
      const t = s.facts.stanza.effectiveType;
      return t !== undefined && set.has(t);
    };
  },
  types: (spec) => spec.values,
});

function parseJidPart(part: string | undefined, ctx: ParamContext): PartMatcher | ParamFail | undefined {
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

function parseJidPattern(param: string, ctx: ParamContext): JidPattern | ParamFail {
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

function partTester(m: PartMatcher | undefined): (v: string | undefined) => boolean {
  if (m === undefined) return (v) => v === undefined;
  switch (m.kind) {
    case "exact": {
      const want = m.value;
      return (v) => v === want;
    }
    case "present":
      return (v) => v !== undefined;
    case "pattern": {
      const p = compileLuaPattern(m.lua, { mode: "find" });
      return (v) => v !== undefined && p.test(v);
    }
  }
}

/** TO, FROM: a JID pattern, each part exact, `<*>`, a `<glob>` or a `<<Lua pattern>>`. */
export const TO_FROM = defineCondition<JidSpec>({
  names: ["TO", "FROM"],
  param: "required",
  spaceSensitive: true,
  parse(p = "", name, ctx) {
    const pattern = parseJidPattern(p, ctx);
    return isFail(pattern) ? pattern : { name, pattern };
  },
  cost: COST_HEAD,
  reads: (spec) => (spec.name === "TO" ? READS_TO : READS_FROM),
  compile(spec) {
    const node = partTester(spec.pattern.node);
    const host = partTester(spec.pattern.host);
    const res = spec.pattern.resource !== undefined ? partTester(spec.pattern.resource) : undefined;
    const to = spec.name === "TO";
    return (s) => {
      const parts = to ? s.facts.toParts : s.facts.fromParts;
      return node(parts.node) && host(parts.host) && (res === undefined || res(parts.resource));
    };
  },
});

export const EXACTLY = defineCondition<ExactlySpec>({
  names: ["TO_EXACTLY", "FROM_EXACTLY"],
  param: "required",
  spaceSensitive: true,
  parse(p = "", name, ctx) {
    const value = templateOrFail(p, 0, ctx);
    return isFail(value) ? value : { name, value };
  },
  cost: (spec) => (!isConstant(spec.value) && needsPayload(spec.value) ? COST_PAYLOAD : COST_HEAD),
  reads: (spec) => readsBoth(spec.name === "TO_EXACTLY" ? READS_TO : READS_FROM, templateReads(spec.value)),
  compile(spec) {
    const to = spec.name === "TO_EXACTLY";
    const t = spec.value;
    if (isConstant(t)) {
      const v = t.source;
      return (s) => (to ? s.facts.to : s.facts.from) === v;
    }
    return (s) => {
      const actual = to ? s.facts.to : s.facts.from;
      return actual !== undefined && actual === s.facts.expand(t);
    };
  },
});

export const TO_SELF = defineCondition<SelfSpec>({
  names: ["TO_SELF"],
  param: "none",
  cost: COST_HEAD,
  reads: () => READS_TO,
  compile: () => (s) => s.facts.toAttr === undefined,
});

export const FROM_FULL_JID = defineCondition<SelfSpec>({
  names: ["FROM_FULL_JID"],
  param: "none",
  cost: COST_HEAD,
  reads: () => READS_FROM,
  compile: () => (s) => s.facts.fromParts.resource !== undefined,
});

const EMPTY_ZONE: ReadonlySet<string> = new Set();

/** ENTERING, LEAVING: a %ZONE (or `$local`) holds the recipient but not the sender, or the reverse. */
export const ZONE = defineCondition<ZoneSpec>({
  names: ["ENTERING", "LEAVING"],
  param: "required",
  parse(p = "", name) {
    // Prosody fails to load a zone name that is not a plain word (a leading space included).
    if (p !== "$local" && !IDSAFE.test(p)) return fail(`Invalid zone name: '${p}' (letters, digits and '_', starting with a letter; or $local)`);
    return { name, zone: p };
  },
  cost: COST_HEAD,
  // Zones are fixed with the rule set.
  reads: () => READS_TO | READS_FROM,
  compile(spec, cx): Test | undefined {
    const env = cx.env;
    let zone: ReadonlySet<string> | undefined;
    if (spec.zone === "$local") {
      zone = env.localHosts;
      if (!zone) {
        return cx.error(
          `${cx.display} refused: the $local zone is the server's local domains, and none are configured ` +
            "(`hosts:` in the configuration; check-rules and trace: --host DOMAIN)",
        );
      }
    } else {
      zone = env.defs.zones.get(spec.zone);
      if (!zone) {
        // Prosody compiles a zone it does not know as an empty one.
        cx.warn(`zone '${spec.zone}' is not defined (above, or in an earlier file): it is empty, so ${cx.display} never holds, as in Prosody`);
        zone = EMPTY_ZONE;
      }
    }
    const z = zone;
    const inZone = (full: string | undefined, host: string | undefined, bare: string | undefined): boolean =>
      (host !== undefined && z.has(host)) || (full !== undefined && z.has(full)) || (bare !== undefined && z.has(bare));
    const entering = spec.name === "ENTERING";
    return (s) => {
      const f = s.facts;
      const dest = inZone(f.to, f.toParts.host, f.bareTo);
      const src = inZone(f.from, f.fromParts.host, f.bareFrom);
      return entering ? dest && !src : src && !dest;
    };
  },
});

export const ADDRESSING = [KIND, TYPE, TO_FROM, EXACTLY, TO_SELF, FROM_FULL_JID, ZONE] as const;
