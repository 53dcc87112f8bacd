// The firewall providers the learned server knowledge offers, for checking
// rule files the way the proxy will load them (check-config, check-rules):
// the lookups answer "unknown" here, only their presence matters.
import type { Config } from "../config/schema.js";
import type { FirewallProviders } from "../firewall/context.js";
import { LearnedRosters } from "./roster-learner.js";

/** With `config`, what its `knowledge` section turns on; without, the defaults (everything on). */
export function knowledgeProviders(config?: Pick<Config, "knowledge">): FirewallProviders {
  const knowledge = config?.knowledge ?? { rosters: true, sessions: true };
  const providers: { -readonly [K in keyof FirewallProviders]: FirewallProviders[K] } = {};
  if (knowledge.rosters) providers.roster = new LearnedRosters(null);
  if (knowledge.sessions) {
    const none = { isOnline: () => false, hasSentTo: () => false };
    providers.sessions = none;
    providers.directedPresence = none;
  }
  return providers;
}
