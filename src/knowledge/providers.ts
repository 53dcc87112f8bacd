// The firewall providers the learned server knowledge offers, for checking
// rule files the way the proxy will load them (check-config, check-rules):
// the lookups answer "unknown" here, only their presence matters.
import type { Config } from "../config/schema.js";
import type { FirewallProviders } from "../firewall/context.js";
import { LearnedRosters } from "./roster-learner.js";

/** With `config`, what its `knowledge` section turns on; without, the defaults (everything on). */
export function knowledgeProviders(config?: Pick<Config, "knowledge">): FirewallProviders {
  const rosters = config?.knowledge.rosters ?? true;
  return rosters ? { roster: new LearnedRosters(null) } : {};
}
