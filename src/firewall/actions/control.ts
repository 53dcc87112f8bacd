// Actions on the run itself (docs/firewall.md, "Actions"): JUMP CHAIN, LOG,
// TAG TRACE, and the Prosody module events (EVENT, JUMP EVENT), which a proxy
// refuses.
import { BUILTIN_CHAINS, isChainName, LOG_ACTION_LEVELS, type LogActionLevel, type Template } from "../ast.js";
import { isFail, templateOrFail } from "../param.js";
import { A_NEXT, A_PASS, fireChain, R_FALSE, R_NIL } from "../runtime.js";
import { defineAction, type ActionCompile } from "./define.js";

export type EventSpec = { readonly name: "EVENT" | "JUMP_EVENT"; readonly event: string };
export type JumpChainSpec = { readonly name: "JUMP_CHAIN"; readonly chain: string };
export type TagTraceSpec = { readonly name: "TAG_TRACE"; readonly tag: string };
/** level undefined: a level the server's logger does not have, so nothing is logged. */
export type LogSpec = { readonly name: "LOG"; readonly level: LogActionLevel | undefined; readonly message: Template };

export const JUMP_CHAIN = defineAction<JumpChainSpec>({
  names: ["JUMP_CHAIN"],
  param: "required",
  parse(p = "", name, ctx) {
    // Prosody fires the event of that name, whatever it is; no chain can be
    // called anything but a built-in name or user/<name>, so another jump
    // reaches nothing and the rule goes on.
    const chain = p;
    if (!isChainName(chain)) {
      ctx.warn(`JUMP CHAIN='${chain}': no chain has this name (chains are ${BUILTIN_CHAINS.join(", ")} or user/<name>), so the jump does nothing, as in Prosody`);
    }
    return { name, chain };
  },
  jumpsTo: (spec) => spec.chain,
  compile(spec) {
    const { chain } = spec;
    return (s) => {
      const r = fireChain(chain, s);
      return r === R_NIL ? A_NEXT : r === R_FALSE ? A_PASS : r;
    };
  },
});

export const LOG = defineAction<LogSpec>({
  names: ["LOG"],
  param: "required",
  parse(p = "", name, ctx) {
    const lv = /^\[([A-Za-z]+)\] ?/.exec(p);
    const written = lv ? lv[1]! : "info";
    const level = (LOG_ACTION_LEVELS as readonly string[]).includes(written) ? (written as LogActionLevel) : undefined;
    if (level === undefined) {
      ctx.warn(`'${written}' is not a log level (${LOG_ACTION_LEVELS.join(", ")}, in lower case): Prosody's logger drops the message, and so does xmpp-guard`, 1);
    }
    const offset = lv ? lv[0].length : 0;
    const message = templateOrFail(p.slice(offset), offset, ctx);
    return isFail(message) ? message : { name, level, message };
  },
  compile(spec) {
    const { level, message } = spec;
    // A level the server's logger does not have: the message is dropped there.
    if (level === undefined) return () => A_NEXT;
    return (s, rule) => {
      s.logs.push({ level, message: s.facts.expand(message), rule: rule.ref });
      return A_NEXT;
    };
  },
});

export const TAG_TRACE = defineAction<TagTraceSpec>({
  names: ["TAG_TRACE"],
  param: "required",
  parse: (p = "", name) => ({ name, tag: p.trim() }),
  compile(spec) {
    const { tag } = spec;
    return (s) => {
      s.tags.push(tag);
      return A_NEXT;
    };
  },
});

const refuseEvent = (spec: EventSpec, cx: ActionCompile): undefined =>
  cx.refuse(`it fires the Prosody module event '${spec.event}'; there are no Prosody modules behind a proxy to handle it`);

export const EVENT = defineAction<EventSpec>({
  names: ["EVENT"],
  param: "required",
  parse: (p = "", name) => ({ name, event: p.trim() }),
  compile: refuseEvent,
});

/** JUMP EVENT ends the rule; EVENT does not. */
export const JUMP_EVENT = defineAction<EventSpec>({
  names: ["JUMP_EVENT"],
  param: "required",
  terminal: true,
  parse: (p = "", name) => ({ name, event: p.trim() }),
  compile: refuseEvent,
});

export const CONTROL = [JUMP_CHAIN, LOG, TAG_TRACE, EVENT, JUMP_EVENT] as const;
