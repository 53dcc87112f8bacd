// Conditions on state the rules keep (docs/firewall.md, "Conditions",
// "Definitions"): LIMIT (%RATE), CHECK LIST, SCAN, COUNT (%LIST, %SEARCH,
// %PATTERN), ORIGIN MARKED, USER MARKED.
import type { CompareOp, Template } from "../ast.js";
import { POLL_OK, POLL_TABLE_FULL, SharedThrottle } from "../limits.js";
import { fail, IDSAFE, isFail, templateOrFail, type ParamFail } from "../param.js";
import { COST_HEAD, COST_LOOKUP, COST_PAYLOAD, COST_SIDE_EFFECT } from "../runtime.js";
import { needsPayload, templateReads } from "../template.js";
import { READS_ANYTHING, READS_NOTHING } from "../memo.js";
import { bareJid } from "../../xmpp/jid.js";
import { defineCondition, type ConditionCompile } from "./define.js";

export type LimitSpec = { readonly name: "LIMIT"; readonly rate: string; readonly on: Template | undefined };
export type MarkedSpec = { readonly name: "ORIGIN_MARKED" | "USER_MARKED"; readonly mark: string; readonly withinSeconds: number | undefined };
export type CheckListSpec = { readonly name: "CHECK_LIST"; readonly list: string; readonly value: Template };
export type ScanSpec = { readonly name: "SCAN"; readonly search: string; readonly pattern: string; readonly list: string };
export type CountSpec = { readonly name: "COUNT"; readonly pattern: string; readonly search: string; readonly op: CompareOp; readonly value: number };

/** LIMIT: takes a token from a %RATE (per value of `on …`); holds when none is left. Runs last in its rule. */
export const LIMIT = defineCondition<LimitSpec>({
  names: ["LIMIT"],
  param: "required",
  parse(p = "", name, ctx) {
    const on = /^([A-Za-z0-9_]+) on (.+)$/.exec(p);
    const rate = on ? on[1]! : /^[A-Za-z0-9_]+$/.test(p) ? p : undefined;
    if (rate === undefined) return fail("Unable to parse LIMIT specification (expected 'name' or 'name on EXPRESSION')");
    if (rate.includes("_")) ctx.warn(`Prosody cannot parse a LIMIT on a rate name containing '_' ('${rate}'); this file is not portable`);
    if (!on) return { name, rate, on: undefined };
    const tpl = templateOrFail(on[2]!, rate.length + 4, ctx);
    return isFail(tpl) ? tpl : { name, rate, on: tpl };
  },
  cost: COST_SIDE_EFFECT,
  // The key's reads; the bucket itself a repeat checks anew (memo.ts), for a token to take.
  // NOT LIMIT lets a stanza on when the bucket is dry, which a repeat would not check: unknown.
  reads: (spec, cx) => (cx.node.negated ? READS_ANYTHING : spec.on === undefined ? READS_NOTHING : templateReads(spec.on)),
  compile(spec, cx) {
    const env = cx.env;
    const rate = env.defs.rates.get(spec.rate);
    if (!rate) return cx.undefinedRef("rate limit", spec.rate);
    const on = spec.on;
    if (on === undefined) {
      const throttle = env.single(spec.rate, rate.def);
      // A bucket kept fleet-wide (SharedThrottle) changes under us: a memo cannot repeat a run that reached it.
      if (throttle instanceof SharedThrottle) {
        return (s) => {
          s.repeatable = false;
          return !throttle.poll(s.now);
        };
      }
      return (s) => {
        const took = throttle.poll(s.now);
        s.polled(null, throttle, took);
        return !took;
      };
    }
    const multi = env.multi(spec.rate, rate.def);
    const shared = multi.shared;
    const rateName = spec.rate;
    const rule = cx.rule;
    // The session's memory keeps the bucket of this condition's last key: a session's
    // stanzas mostly bring the same key again, found then without a table lookup.
    const slot = env.memorySlot();
    return (s) => {
      const memory = s.ctx.memory;
      const buckets = memory?.buckets;
      const r = multi.poll(s.facts.expand(on), s.now, buckets?.[slot] ?? null);
      if (r !== POLL_TABLE_FULL) {
        // A fleet's bucket changes under us (a memo cannot repeat the run); here, the key's bucket is the newest.
        if (shared) s.repeatable = false;
        else s.polled(multi, multi.newest!, r === POLL_OK);
        if (buckets !== undefined) {
          while (buckets.length <= slot) buckets.push(null);
          buckets[slot] = multi.newest;
        }
      }
      if (r === POLL_TABLE_FULL) {
        s.logs.push({
          level: "warn",
          message: `Multirate '${rateName}' has hit its maximum number of active throttles (${multi.entries}), denying new events`,
          rule,
        });
      }
      return r !== POLL_OK;
    };
  },
});

function parseMarkSpec(name: "ORIGIN_MARKED" | "USER_MARKED", param: string): MarkedSpec | ParamFail {
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

export const ORIGIN_MARKED = defineCondition<MarkedSpec>({
  names: ["ORIGIN_MARKED"],
  param: "required",
  parse: (p = "", name) => parseMarkSpec(name, p),
  cost: COST_HEAD,
  compile(spec) {
    const { mark, withinSeconds } = spec;
    return (s) => {
      const at = s.ctx.origin?.marks.get(mark);
      if (at === undefined) return false;
      return withinSeconds === undefined || s.now - at < withinSeconds * 1000;
    };
  },
});

export const USER_MARKED = defineCondition<MarkedSpec>({
  names: ["USER_MARKED"],
  param: "required",
  parse: (p = "", name) => parseMarkSpec(name, p),
  needs: "userMarks",
  cost: COST_LOOKUP,
  compile(spec, cx) {
    const store = cx.provider("userMarks");
    const { mark, withinSeconds } = spec;
    return (s) => {
      const o = s.ctx.origin;
      if (o?.type !== "c2s" || o.jid === undefined) return false;
      const user = bareJid(o.jid);
      const at = user !== undefined ? store.get(user, mark) : undefined;
      if (at === undefined) return false;
      return withinSeconds === undefined || s.now - at < withinSeconds * 1000;
    };
  },
});

// CHECK LIST, SCAN and COUNT split their parameter as Prosody does: single
// spaces around the keywords, the first match from the left, so a second
// space stays in the expression (and a list entry with a leading space is
// looked up).

export const CHECK_LIST = defineCondition<CheckListSpec>({
  names: ["CHECK_LIST"],
  param: "required",
  parse(p = "", name, ctx) {
    const m = /(\S+) contains (.+)$/s.exec(p);
    if (!m) return fail("Error parsing list check, syntax: LISTNAME contains EXPRESSION");
    const value = templateOrFail(m[2]!, p.length - m[2]!.length, ctx);
    return isFail(value) ? value : { name, list: m[1]!, value };
  },
  cost: (spec) => (needsPayload(spec.value) ? COST_PAYLOAD : COST_LOOKUP),
  compile(spec, cx) {
    const list = cx.env.defs.lists.get(spec.list);
    if (!list) return cx.undefinedRef("list", spec.list);
    const v = spec.value;
    return (s) => list.contains(s.facts.expand(v));
  },
});

/** The %SEARCH path and %PATTERN a SCAN or COUNT names; undefined (reported) when either is not defined. */
function searchAndPattern(cx: ConditionCompile, search: string, pattern: string) {
  const found = cx.env.defs.searches.get(search);
  if (!found) return cx.undefinedRef("search", search);
  const compiled = cx.env.defs.patterns.get(pattern);
  if (!compiled) return cx.undefinedRef("pattern", pattern);
  return { path: found.spec.path, pattern: compiled };
}

export const SCAN = defineCondition<ScanSpec>({
  names: ["SCAN"],
  param: "required",
  parse(p = "", name) {
    const m = /(\S+) for (\S+) in (\S+)$/.exec(p);
    if (!m) return fail("Error parsing SCAN expression, syntax: SEARCH for PATTERN in LIST");
    return { name, search: m[1]!, pattern: m[2]!, list: m[3]! };
  },
  cost: COST_PAYLOAD,
  compile(spec, cx) {
    const found = searchAndPattern(cx, spec.search, spec.pattern);
    if (!found) return undefined;
    const list = cx.env.defs.lists.get(spec.list);
    if (!list) return cx.undefinedRef("list", spec.list);
    const { path, pattern } = found;
    const name = spec.search;
    return (s) => {
      const text = s.facts.search(name, path);
      for (const token of pattern.tokens(text)) if (list.contains(token)) return true;
      return false;
    };
  },
});

export const COUNT = defineCondition<CountSpec>({
  names: ["COUNT"],
  param: "required",
  parse(p = "", name, ctx) {
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
  },
  cost: COST_PAYLOAD,
  compile(spec, cx) {
    const found = searchAndPattern(cx, spec.search, spec.pattern);
    if (!found) return undefined;
    const { path, pattern } = found;
    const { op, value } = spec;
    const name = spec.search;
    return (s) => {
      const n = pattern.count(s.facts.search(name, path));
      switch (op) {
        case ">":
          return n > value;
        case "<":
          return n < value;
        case ">=":
          return n >= value;
        case "<=":
          return n <= value;
        case "==":
          return n === value;
      }
    };
  },
});

export const STATE = [LIMIT, ORIGIN_MARKED, USER_MARKED, CHECK_LIST, SCAN, COUNT] as const;
