// Actions that send stanzas (docs/firewall.md, "Actions"): REDIRECT, COPY,
// FORWARD, REPLY, REPORT TO. Stanzas are built the way Prosody builds them
// (st.reply, the FORWARD/REPORT wrappers).
import type { EmittedStanza } from "../context.js";
import { fail, type ParamFail } from "../param.js";
import { A_NEXT, MAX_REENTRY, R_TRUE, type RunState } from "../runtime.js";
import { NS_CLIENT } from "../../xml/stanza.js";
import { escapeXml } from "../../xml/stream-error.js";
import { serializeAttrs } from "../xml.js";
import { isValidJid } from "../../xmpp/jid.js";
import { defineAction, type Run } from "./define.js";

const NS_FORWARD = "urn:xmpp:forward:0";
const NS_REPORTING = "urn:xmpp:reporting:1";

export type RouteSpec = { readonly name: "REDIRECT" | "COPY" | "FORWARD"; readonly jid: string };
export type ReplySpec = { readonly name: "REPLY"; readonly text: string };
export type ReportSpec = { readonly name: "REPORT_TO"; readonly jid: string; readonly reason: string; readonly text: string };

/** Queue a routed stanza unless this stanza is already a copy of a copy of… */
function emitRouted(s: RunState, item: EmittedStanza): void {
  if ((s.ctx.depth ?? 0) >= MAX_REENTRY) {
    s.logs.push({
      level: "warn",
      message: `${item.kind} to ${item.to} not sent: this stanza was already re-routed ${MAX_REENTRY} times (a loop in the rules?)`,
      rule: item.rule,
    });
    return;
  }
  s.emitted.push(item);
}

function forwardWrapper(s: RunState, to: string, extraAttrs: Record<string, string | undefined>, after: string): string {
  const copy = s.facts.serialize({ xmlns: NS_CLIENT });
  const attrs = serializeAttrs({ to, from: s.facts.currentHost, ...extraAttrs });
  return `<message${attrs}><forwarded xmlns='${NS_FORWARD}'>${copy}</forwarded>${after}</message>`;
}

function parseJidParam(p = "", name: RouteSpec["name"]): RouteSpec | ParamFail {
  // Prosody routes a copy to whatever is written; the server then refuses
  // an address that is no JID. Refused here instead (deliberate difference).
  if (!isValidJid(p)) return fail(`invalid JID '${p}'${/^\s/.test(p) ? " (it starts with a space)" : ""}`);
  return { name, jid: p };
}

/** REDIRECT and COPY: route the stanza to another JID; REDIRECT instead of delivering it. */
function routeTo(jid: string, redirect: boolean): Run {
  return (s, rule) => {
    emitRouted(s, { kind: redirect ? "redirect" : "copy", via: "route", to: jid, stanza: s.facts.serialize({ to: jid }), rule: rule.ref });
    if (!redirect) return A_NEXT;
    s.outcome = { verdict: "drop" };
    return R_TRUE;
  };
}

export const REDIRECT = defineAction<RouteSpec>({
  names: ["REDIRECT"],
  param: "required",
  terminal: true,
  parse: parseJidParam,
  compile: (spec) => routeTo(spec.jid, true),
});

export const COPY = defineAction<RouteSpec>({
  names: ["COPY"],
  param: "required",
  parse: parseJidParam,
  compile: (spec) => routeTo(spec.jid, false),
});

export const FORWARD = defineAction<RouteSpec>({
  names: ["FORWARD"],
  param: "required",
  parse: parseJidParam,
  compile(spec) {
    const { jid } = spec;
    return (s, rule) => {
      emitRouted(s, { kind: "forward", via: "route", to: jid, stanza: forwardWrapper(s, jid, {}, ""), rule: rule.ref });
      return A_NEXT;
    };
  },
});

export const REPLY = defineAction<ReplySpec>({
  names: ["REPLY"],
  param: "required",
  parse: (p = "", name) => ({ name, text: p }),
  compile(spec) {
    const body = escapeXml(spec.text);
    return (s, rule) => {
      const f = s.facts;
      const attrs = serializeAttrs({ to: f.from, from: f.toAttr, id: f.stanza.id, type: f.name === "iq" ? "result" : f.type });
      s.emitted.push({ kind: "reply", via: "origin", to: f.from, stanza: `<${f.name}${attrs}><body>${body}</body></${f.name}>`, rule: rule.ref });
      return A_NEXT;
    };
  },
});

export const REPORT_TO = defineAction<ReportSpec>({
  names: ["REPORT_TO"],
  param: "required",
  parse(p = "", name, ctx) {
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
  },
  compile(spec, cx) {
    const { jid, reason, text } = spec;
    const env = cx.env;
    const textEl = text !== "" ? `<text>${escapeXml(text)}</text>` : "";
    const report = `<report xmlns='${NS_REPORTING}' reason='${escapeXml(reason)}'${textEl === "" ? "/>" : `>${textEl}</report>`}`;
    return (s, rule) => {
      emitRouted(s, { kind: "report", via: "route", to: jid, stanza: forwardWrapper(s, jid, { id: env.newId() }, report), rule: rule.ref });
      return A_NEXT;
    };
  },
});

export const ROUTING = [REDIRECT, COPY, FORWARD, REPLY, REPORT_TO] as const;
