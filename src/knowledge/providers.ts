// The firewall providers the learned server knowledge offers, for checking
// rule files the way the proxy will load them (check-config, check-rules):
// the lookups answer "unknown" here, only their presence matters.
import type { FirewallProviders } from "../firewall/context.js";
import type { ComponentOptions } from "../registration/component.js";
import type { KnowledgeConfig } from "./options.js";
import { LearnedRosters } from "./roster-learner.js";
import { checkOnlyRemoteLists } from "./remote-lists.js";

/**
 * With `config`, what its `knowledge` section turns on; without, the defaults
 * (everything on). Remote lists are accepted unfetched; a pubsubitemid list is
 * refused when the config has no `component` (without a config: not checked).
 */
export function knowledgeProviders(config?: { readonly knowledge: Pick<KnowledgeConfig, "rosters" | "sessions">; readonly component?: ComponentOptions | null }): FirewallProviders {
  const knowledge = config?.knowledge ?? { rosters: true, sessions: true };
  const providers: { -readonly [K in keyof FirewallProviders]: FirewallProviders[K] } = { remoteLists: checkOnlyRemoteLists(config?.component) };
  if (knowledge.rosters) providers.roster = new LearnedRosters(null);
  if (knowledge.sessions) {
    const none = { isOnline: () => false, hasSentTo: () => false };
    providers.sessions = none;
    providers.directedPresence = none;
  }
  return providers;
}
