// Conditions on what the server knows about users, which the proxy learns
// from the streams it carries (docs/knowledge.md): TO FULL JID (online
// sessions), IN ROSTER, IN ROSTER GROUP, SUBSCRIBED,
// PENDING SUBSCRIPTION FROM SENDER (rosters), SENT DIRECTED PRESENCE TO SENDER.
// Each names the provider it needs; without it the rule file is refused.
import type { RosterEntry } from "../context.js";
import type { RunState } from "../runtime.js";
import { COST_LOOKUP } from "../runtime.js";
import { READS_ANYTHING, READS_SESSIONS, READS_TO } from "../memo.js";
import { defineCondition, type ConditionCompile } from "./define.js";

type NameOnly<N extends string> = { readonly name: N };
/** `IN ROSTER?`; the deprecated `IN ROSTER: no` form sets expect=false. */
export type InRosterSpec = { readonly name: "IN_ROSTER"; readonly expect: boolean };
export type RosterGroupSpec = { readonly name: "IN_ROSTER_GROUP"; readonly group: string };

export const TO_FULL_JID = defineCondition<NameOnly<"TO_FULL_JID">>({
  names: ["TO_FULL_JID"],
  param: "none",
  needs: "sessions",
  cost: COST_LOOKUP,
  // Online sessions change under the rules: only a provider with a version can be keyed.
  reads: (_spec, cx) => (cx.provider("sessions").version !== undefined ? READS_TO | READS_SESSIONS : READS_ANYTHING),
  compile(_spec, cx) {
    const sessions = cx.provider("sessions");
    return (s) => {
      const to = s.facts.to;
      return to !== undefined && sessions.isOnline(to);
    };
  },
});

/** The recipient's roster entry for the sender (a local recipient only). */
function rosterEntry(cx: ConditionCompile): (s: RunState) => RosterEntry | undefined {
  const roster = cx.provider("roster");
  return (s) => {
    const f = s.facts;
    const owner = f.bareTo;
    const contact = f.bareFrom;
    if (f.toParts.node === undefined || owner === undefined || contact === undefined) return undefined;
    return roster.entry(owner, contact);
  };
}

export const IN_ROSTER = defineCondition<InRosterSpec>({
  names: ["IN_ROSTER"],
  param: "optional",
  parse(param, name, ctx) {
    if (param === undefined) return { name, expect: true };
    // As Prosody reads it: yes or true (any case) mean yes, anything else no.
    const v = param.toLowerCase();
    const expect = v === "yes" || v === "true";
    if (expect || v === "no" || v === "false") ctx.warn("the 'IN ROSTER: yes/no' form is deprecated; write 'IN ROSTER?' or 'NOT IN ROSTER?'");
    else ctx.warn(`IN ROSTER: '${param}' is read as 'no' (only yes and true mean yes, as in Prosody); write 'IN ROSTER?' or 'NOT IN ROSTER?'`);
    return { name, expect };
  },
  needs: "roster",
  cost: COST_LOOKUP,
  compile(spec, cx) {
    const entry = rosterEntry(cx);
    const expect = spec.expect;
    return (s) => (entry(s) !== undefined) === expect;
  },
});

export const IN_ROSTER_GROUP = defineCondition<RosterGroupSpec>({
  names: ["IN_ROSTER_GROUP"],
  param: "required",
  spaceSensitive: true,
  parse: (p = "", name) => ({ name, group: p }),
  needs: "roster",
  cost: COST_LOOKUP,
  compile(spec, cx) {
    const entry = rosterEntry(cx);
    const group = spec.group;
    return (s) => entry(s)?.groups.includes(group) ?? false;
  },
});

export const SUBSCRIBED = defineCondition<NameOnly<"SUBSCRIBED">>({
  names: ["SUBSCRIBED"],
  param: "none",
  needs: "roster",
  cost: COST_LOOKUP,
  compile(_spec, cx) {
    const roster = cx.provider("roster");
    // README/vNew meaning: the recipient is subscribed to the sender (subscription to/both).
    return (s) => {
      const f = s.facts;
      if (f.bareTo === f.bareFrom) return true;
      if (f.toParts.node === undefined || f.bareTo === undefined || f.bareFrom === undefined) return false;
      const sub = roster.entry(f.bareTo, f.bareFrom)?.subscription;
      return sub === "to" || sub === "both";
    };
  },
});

export const PENDING_SUBSCRIPTION_FROM_SENDER = defineCondition<NameOnly<"PENDING_SUBSCRIPTION_FROM_SENDER">>({
  names: ["PENDING_SUBSCRIPTION_FROM_SENDER"],
  param: "none",
  needs: "roster",
  cost: COST_LOOKUP,
  compile(_spec, cx) {
    const roster = cx.provider("roster");
    const pendingIn = roster.pendingIn?.bind(roster);
    if (!pendingIn) {
      return cx.error(`${cx.display} refused: it needs pending inbound subscription requests, which the configured roster provider does not track`);
    }
    return (s) => {
      const f = s.facts;
      if (f.bareTo === f.bareFrom) return true;
      if (f.toParts.node === undefined || f.bareTo === undefined || f.bareFrom === undefined) return false;
      return pendingIn(f.bareTo, f.bareFrom);
    };
  },
});

export const SENT_DIRECTED_PRESENCE_TO_SENDER = defineCondition<NameOnly<"SENT_DIRECTED_PRESENCE_TO_SENDER">>({
  names: ["SENT_DIRECTED_PRESENCE_TO_SENDER"],
  param: "none",
  needs: "directedPresence",
  cost: COST_LOOKUP,
  compile(_spec, cx) {
    const dp = cx.provider("directedPresence");
    // The README's meaning: the recipient has sent directed presence to the sender.
    return (s) => {
      const { to, from } = s.facts;
      return to !== undefined && from !== undefined && dp.hasSentTo(to, from);
    };
  },
});

export const KNOWLEDGE = [TO_FULL_JID, IN_ROSTER, IN_ROSTER_GROUP, SUBSCRIBED, PENDING_SUBSCRIPTION_FROM_SENDER, SENT_DIRECTED_PRESENCE_TO_SENDER] as const;
