// Actions → closures (docs/firewall.md, "Actions"). Each returns how control goes on: next
// action, return nil/true/false from the handler, or return the chain's pass
// value. Stanzas are built the way Prosody builds them (st.reply,
// st.error_reply, the FORWARD/REPORT wrappers). Actions that need the
// server's internals (EVENT, UNSUBSCRIBE SENDER) are refused at load.
import type { ActionNode } from "./ast.js";
import type { CompileEnv } from "./compile-env.js";
import type { EmittedStanza, RuleRef } from "./context.js";
import { errorReplyFor, mayAnswerWithError } from "./error-reply.js";
import { bareJid, hostOf } from "../xmpp/jid.js";
import {
  A_NEXT,
  A_PASS,
  MAX_REENTRY,
  R_FALSE,
  R_NIL,
  R_TRUE,
  fireChain,
  type ActionFlow,
  type CompiledAction,
  type CompiledRule,
  type RunState,
} from "./runtime.js";
import { locate, rootOf, type Located } from "./stanza-path.js";
import { cloneNode, escapeXml, NS_CLIENT, serializeAttrs } from "./xml.js";

const NS_FORWARD = "urn:xmpp:forward:0";
const NS_REPORTING = "urn:xmpp:reporting:1";

type Run = (state: RunState, rule: CompiledRule) => ActionFlow;

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

function logRef(s: RunState, rule: RuleRef, level: "debug" | "warn", message: string): void {
  s.logs.push({ level, message, rule });
}

/** Compile one action; reports and returns undefined when it is refused. */
export function compileAction(node: ActionNode, env: CompileEnv): CompiledAction | undefined {
  const spec = node.spec;
  const refuse = (why: string): undefined => {
    env.diag.error(node.loc, `${spec.name.replace(/_/g, " ")} refused: ${why}`);
    return undefined;
  };
  let run: Run;

  switch (spec.name) {
    case "PASS":
      run = () => A_PASS;
      break;
    case "DROP":
      run = (s) => {
        s.outcome = { verdict: "drop" };
        return R_TRUE;
      };
      break;
    case "DEFAULT":
      run = () => R_FALSE;
      break;
    case "RETURN":
      run = () => R_NIL;
      break;
    case "BOUNCE": {
      const { condition, errorType, text } = spec;
      run = (s) => {
        const f = s.facts;
        // Never answer an error or an iq result: just drop it.
        if (!mayAnswerWithError(f.name, f.type)) {
          s.outcome = { verdict: "drop" };
          return R_TRUE;
        }
        const stanza = errorReplyFor({ name: f.name, to: f.toAttr, from: f.from, id: f.stanza.id, type: f.type }, condition, errorType, text);
        s.outcome = { verdict: "bounce", condition, type: errorType, text, stanza };
        return R_TRUE;
      };
      break;
    }
    case "REDIRECT":
    case "COPY": {
      const { jid } = spec;
      const redirect = spec.name === "REDIRECT";
      run = (s, rule) => {
        emitRouted(s, { kind: redirect ? "redirect" : "copy", via: "route", to: jid, stanza: s.facts.serialize({ to: jid }), rule: rule.ref });
        if (!redirect) return A_NEXT;
        s.outcome = { verdict: "drop" };
        return R_TRUE;
      };
      break;
    }
    case "REPLY": {
      const body = escapeXml(spec.text);
      run = (s, rule) => {
        const f = s.facts;
        const attrs = serializeAttrs({ to: f.from, from: f.toAttr, id: f.stanza.id, type: f.name === "iq" ? "result" : f.type });
        s.emitted.push({ kind: "reply", via: "origin", to: f.from, stanza: `<${f.name}${attrs}><body>${body}</body></${f.name}>`, rule: rule.ref });
        return A_NEXT;
      };
      break;
    }
    case "FORWARD": {
      const { jid } = spec;
      run = (s, rule) => {
        emitRouted(s, { kind: "forward", via: "route", to: jid, stanza: forwardWrapper(s, jid, {}, ""), rule: rule.ref });
        return A_NEXT;
      };
      break;
    }
    case "REPORT_TO": {
      const { jid, reason, text } = spec;
      const textEl = text !== "" ? `<text>${escapeXml(text)}</text>` : "";
      const report = `<report xmlns='${NS_REPORTING}' reason='${escapeXml(reason)}'${textEl === "" ? "/>" : `>${textEl}</report>`}`;
      run = (s, rule) => {
        emitRouted(s, { kind: "report", via: "route", to: jid, stanza: forwardWrapper(s, jid, { id: env.newId() }, report), rule: rule.ref });
        return A_NEXT;
      };
      break;
    }
    case "STRIP": {
      const { element, ns } = spec;
      // Prosody's test on each direct child: the name as written, and the
      // child's recorded namespace (none for a child in the stanza's own
      // namespace, see stanza-path.ts) equal to the given one, or, without
      // one, equal to the stanza's (none).
      const matches = (c: Located): boolean => (element === undefined || c.el.name === element) && c.recorded === ns;
      run = (s) => {
        const f = s.facts;
        const contentNs = f.stanza.xmlns;
        const current = f.tree();
        if (!current) return A_NEXT;
        const root = rootOf(current, contentNs);
        const form = f.treeForm;
        if (!current.children.some((c) => typeof c !== "string" && matches(locate(root, c, contentNs, form)))) return A_NEXT;
        const tree = f.mutableTree()!;
        const copy = rootOf(tree, contentNs);
        tree.children = tree.children.filter((c) => typeof c === "string" || !matches(locate(copy, c, contentNs, "prosody")));
        return A_NEXT;
      };
      break;
    }
    case "INJECT": {
      const xml = spec.xml;
      run = (s) => {
        s.facts.mutableTree()?.children.push(cloneNode(xml));
        return A_NEXT;
      };
      break;
    }
    case "LOG": {
      const { level, message } = spec;
      // A level the server's logger does not have: the message is dropped there.
      if (level === undefined) {
        run = () => A_NEXT;
        break;
      }
      run = (s, rule) => {
        s.logs.push({ level, message: s.facts.expand(message), rule: rule.ref });
        return A_NEXT;
      };
      break;
    }
    case "MARK_ORIGIN":
    case "UNMARK_ORIGIN": {
      const { mark } = spec;
      const set = spec.name === "MARK_ORIGIN";
      run = (s, rule) => {
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
      break;
    }
    case "MARK_USER":
    case "UNMARK_USER": {
      const store = env.providers.userMarks;
      if (!store) return refuse("per-account marks are kept in Prosody's storage; no user-mark store is configured");
      const { mark } = spec;
      const set = spec.name === "MARK_USER";
      run = (s, rule) => {
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
      break;
    }
    case "ADD_TO": {
      const list = env.defs.lists.get(spec.list);
      if (!list) {
        env.diag.error(node.loc, `Unknown list: ${spec.list} (define it with %LIST ${spec.list}: …)`);
        return undefined;
      }
      const value = spec.value;
      run = (s) => {
        list.add(s.facts.expand(value));
        return A_NEXT;
      };
      break;
    }
    case "JUMP_CHAIN": {
      const { chain } = spec;
      run = (s) => {
        const r = fireChain(chain, s);
        return r === R_NIL ? A_NEXT : r === R_FALSE ? A_PASS : r;
      };
      break;
    }
    case "TAG_TRACE": {
      const { tag } = spec;
      run = (s) => {
        s.tags.push(tag);
        return A_NEXT;
      };
      break;
    }
    case "DISCONNECT": {
      const { condition, text } = spec;
      run = (s) => {
        s.outcome = { verdict: "disconnect", condition, text };
        return R_TRUE;
      };
      break;
    }
    case "EVENT":
    case "JUMP_EVENT":
      return refuse(`it fires the Prosody module event '${spec.event}'; there are no Prosody modules behind a proxy to handle it`);
    case "UNSUBSCRIBE_SENDER":
      return refuse("it rewrites the recipient's roster in the server's storage, which a proxy cannot do");
  }
  return { name: spec.name, loc: node.loc, run };
}
