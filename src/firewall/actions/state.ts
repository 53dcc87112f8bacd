// Actions that change state kept beyond the stanza (docs/firewall.md,
// "Actions"): MARK/UNMARK ORIGIN (the session), MARK/UNMARK USER (the
// account), ADD TO (a %LIST), and UNSUBSCRIBE SENDER, which a proxy refuses.
import type { Template } from "../ast.js";
import type { RuleRef } from "../context.js";
import { fail, IDSAFE, isFail, templateOrFail, type ParamFail } from "../param.js";
import { A_NEXT, type RunState } from "../runtime.js";
import { bareJid, hostOf } from "../../xmpp/jid.js";
import { defineAction } from "./define.js";

export type MarkSpec = { readonly name: "MARK_ORIGIN" | "UNMARK_ORIGIN" | "MARK_USER" | "UNMARK_USER"; readonly mark: string };
export type AddToSpec = { readonly name: "ADD_TO"; readonly list: string; readonly value: Template };
export type UnsubscribeSpec = { readonly name: "UNSUBSCRIBE_SENDER" };

function logRef(s: RunState, rule: RuleRef, level: "debug" | "warn", message: string): void {
  s.logs.push({ level, message, rule });
}

function parseMark(p = "", name: MarkSpec["name"]): MarkSpec | ParamFail {
  const mark = p.trim();
  if (!IDSAFE.test(mark)) return fail(`Invalid characters in mark name: ${mark}`);
  return { name, mark };
}

export const MARK_ORIGIN = defineAction<MarkSpec>({
  names: ["MARK_ORIGIN", "UNMARK_ORIGIN"],
  param: "required",
  parse: parseMark,
  compile(spec) {
    const { mark } = spec;
    const set = spec.name === "MARK_ORIGIN";
    return (s, rule) => {
      const origin = s.ctx.origin;
      if (!origin) {
        logRef(s, rule.ref, "debug", `${set ? "MARK" : "UNMARK"} ORIGIN=${mark}: the origin session is not visible here; nothing marked`);
        return A_NEXT;
      }
      if (set) origin.marks.set(mark, s.now);
      else origin.marks.delete(mark);
      s.marks.push({ op: set ? "mark" : "unmark", scope: "origin", name: mark, at: s.now, rule: rule.ref });
      return A_NEXT;
    };
  },
});

export const MARK_USER = defineAction<MarkSpec>({
  names: ["MARK_USER", "UNMARK_USER"],
  param: "required",
  parse: parseMark,
  compile(spec, cx) {
    const store = cx.env.providers.userMarks;
    if (!store) return cx.refuse("per-account marks are kept in Prosody's storage; no user-mark store is configured");
    const { mark } = spec;
    const set = spec.name === "MARK_USER";
    return (s, rule) => {
      const o = s.ctx.origin;
      const user = o?.type === "c2s" ? bareJid(o.jid) : undefined;
      if (user === undefined || hostOf(user) !== s.facts.currentHost) {
        logRef(s, rule.ref, "warn", `Attempt to ${set ? "MARK" : "UNMARK"} a remote user - only local users may be marked`);
        return A_NEXT;
      }
      if (set) store.set(user, mark, s.now);
      else store.unset(user, mark);
      s.marks.push({ op: set ? "mark" : "unmark", scope: "user", name: mark, user, at: s.now, rule: rule.ref });
      return A_NEXT;
    };
  },
});

export const ADD_TO = defineAction<AddToSpec>({
  names: ["ADD_TO"],
  param: "required",
  parse(p = "", name, ctx) {
    // Prosody's split: the first word followed by one space, then the rest.
    const m = /(\S+) (.+)/s.exec(p);
    if (!m) return fail("expected ADD TO=list EXPRESSION");
    const value = templateOrFail(m[2]!, m.index + m[1]!.length + 1, ctx);
    return isFail(value) ? value : { name, list: m[1]!, value };
  },
  compile(spec, cx) {
    const list = cx.env.defs.lists.get(spec.list);
    if (!list) return cx.error(`Unknown list: ${spec.list} (define it with %LIST ${spec.list}: …)`);
    const value = spec.value;
    return (s) => {
      list.add(s.facts.expand(value));
      return A_NEXT;
    };
  },
});

export const UNSUBSCRIBE_SENDER = defineAction<UnsubscribeSpec>({
  names: ["UNSUBSCRIBE_SENDER"],
  param: "none",
  compile: (_spec, cx) => cx.refuse("it rewrites the recipient's roster in the server's storage, which a proxy cannot do"),
});

export const STATE = [MARK_ORIGIN, MARK_USER, ADD_TO, UNSUBSCRIBE_SENDER] as const;
