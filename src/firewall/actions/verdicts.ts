// Actions that end the handler (docs/firewall.md, "Actions", "What a
// handler's answer means", "Error replies"): PASS, DROP, DEFAULT, RETURN,
// BOUNCE, and DISCONNECT (an xmpp-guard extension).
import { STREAM_ERROR_CONDITIONS } from "../../errors.js";
import { errorReplyFor, mayAnswerWithError } from "../error-reply.js";
import { fail } from "../param.js";
import { A_PASS, R_FALSE, R_NIL, R_TRUE } from "../runtime.js";
import { defineAction } from "./define.js";

/** RFC 6120 §8.3.3 stanza error conditions (plus Prosody's legacy payment-required). */
export const STANZA_ERROR_CONDITIONS = [
  "bad-request",
  "conflict",
  "feature-not-implemented",
  "forbidden",
  "gone",
  "internal-server-error",
  "item-not-found",
  "jid-malformed",
  "not-acceptable",
  "not-allowed",
  "not-authorized",
  "payment-required",
  "policy-violation",
  "recipient-unavailable",
  "redirect",
  "registration-required",
  "remote-server-not-found",
  "remote-server-timeout",
  "resource-constraint",
  "service-unavailable",
  "subscription-required",
  "undefined-condition",
  "unexpected-request",
] as const;

export const STANZA_ERROR_TYPES = ["auth", "cancel", "continue", "modify", "wait"] as const;


/** Default error type per condition when BOUNCE gives none (docs/firewall.md, "Error replies"). */
export const DEFAULT_ERROR_TYPES: Readonly<Record<string, string>> = {
  "bad-request": "modify",
  "jid-malformed": "modify",
  "not-acceptable": "modify",
  "policy-violation": "modify",
  redirect: "modify",
  forbidden: "auth",
  "not-authorized": "auth",
  "payment-required": "auth",
  "registration-required": "auth",
  "subscription-required": "auth",
  "recipient-unavailable": "wait",
  "remote-server-timeout": "wait",
  "resource-constraint": "wait",
  "unexpected-request": "wait",
};

export type ReturnSpec = { readonly name: "PASS" | "DROP" | "DEFAULT" | "RETURN" };
export type BounceSpec = { readonly name: "BOUNCE"; readonly condition: string; readonly errorType: string; readonly text: string | undefined };
export type DisconnectSpec = { readonly name: "DISCONNECT"; readonly condition: string; readonly text: string | undefined };

/** PASS: leave this chain's handler with its pass value. */
export const PASS = defineAction<ReturnSpec>({
  names: ["PASS"],
  param: "none",
  terminal: true,
  compile: () => () => A_PASS,
});

export const DROP = defineAction<ReturnSpec>({
  names: ["DROP"],
  param: "none",
  terminal: true,
  compile: () => (s) => {
    s.outcome = { verdict: "drop" };
    return R_TRUE;
  },
});

/** DEFAULT: the handler returns false, what the server does without the firewall. */
export const DEFAULT = defineAction<ReturnSpec>({
  names: ["DEFAULT"],
  param: "none",
  terminal: true,
  compile: () => () => R_FALSE,
});

/** RETURN: the handler returns nil; the next handler (file) runs. */
export const RETURN = defineAction<ReturnSpec>({
  names: ["RETURN"],
  param: "none",
  terminal: true,
  compile: () => () => R_NIL,
});

export const BOUNCE = defineAction<BounceSpec>({
  names: ["BOUNCE"],
  param: "optional",
  terminal: true,
  parse(param, name, ctx) {
    if (param === undefined) return { name, condition: "service-unavailable", errorType: "cancel", text: undefined };
    const p = param;
    // Read as Prosody reads it: the condition is the first word (none when
    // the parameter starts with a space: service-unavailable), its type what
    // follows a ':' in that word, the text a final "(…)" after a space;
    // anything else on the line is ignored.
    const word = /^\S+/.exec(p)?.[0];
    let condition = word ?? "service-unavailable";
    let errorType: string | undefined;
    const colon = condition.indexOf(":");
    if (word !== undefined && colon >= 0 && colon < condition.length - 1) {
      errorType = condition.slice(colon + 1);
      condition = condition.slice(0, colon);
    }
    const textMatch = / \((.+)\)$/s.exec(p);
    const text = textMatch ? textMatch[1] : undefined;
    const wordEnd = word?.length ?? 0;
    const ignored = p.slice(wordEnd, textMatch ? textMatch.index : p.length).trim();
    if (word === undefined) {
      ctx.warn("BOUNCE= is followed by a space: Prosody finds no condition there and sends service-unavailable, as xmpp-guard does (remove the space)");
    } else if (ignored !== "") {
      ctx.warn(`'${ignored}' after the error condition is ignored, as in Prosody (a text goes last, in parentheses: BOUNCE=condition (text))`, wordEnd);
    }
    if (!/^[A-Za-z_][A-Za-z0-9._-]*$/.test(condition)) {
      // Prosody would build an element of that name: it fails at run time
      // (empty name, '<', quotes…) or sends what is not XML.
      return fail(`'${condition}' is not an error condition (an element name such as policy-violation)`);
    }
    if (!(STANZA_ERROR_CONDITIONS as readonly string[]).includes(condition)) {
      ctx.warn(`'${condition}' is not an RFC 6120 stanza error condition; Prosody sends it as one anyway, and so does xmpp-guard`);
    }
    if (errorType !== undefined && !(STANZA_ERROR_TYPES as readonly string[]).includes(errorType)) {
      ctx.warn(`'${errorType}' is not an error type (${STANZA_ERROR_TYPES.join(", ")}); Prosody sends it anyway, and so does xmpp-guard`, colon + 1);
    }
    return { name, condition, errorType: errorType ?? DEFAULT_ERROR_TYPES[condition] ?? "cancel", text };
  },
  compile(spec) {
    const { condition, errorType, text } = spec;
    return (s) => {
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
  },
});

export const DISCONNECT = defineAction<DisconnectSpec>({
  names: ["DISCONNECT"],
  param: "optional",
  terminal: true,
  parse(param, name, ctx) {
    ctx.warn("DISCONNECT is an xmpp-guard extension: Prosody's mod_firewall has no such action and would refuse this file");
    if (param === undefined) return { name, condition: "policy-violation", text: undefined };
    const m = /^(\S+)(?: \((.+)\))?\s*$/s.exec(param);
    if (!m) return fail("expected DISCONNECT=condition (text)");
    if (!(STREAM_ERROR_CONDITIONS as readonly string[]).includes(m[1]!)) {
      return fail(`unknown stream error condition '${m[1]}' (RFC 6120 §4.9.3)`);
    }
    return { name, condition: m[1]!, text: m[2] };
  },
  compile(spec) {
    const { condition, text } = spec;
    return (s) => {
      s.outcome = { verdict: "disconnect", condition, text };
      return R_TRUE;
    };
  },
});

export const VERDICTS = [PASS, DROP, DEFAULT, RETURN, BOUNCE, DISCONNECT] as const;
