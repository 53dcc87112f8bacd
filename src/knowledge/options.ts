// The `knowledge:` config section (docs/knowledge.md): what the proxy learns
// of the server's state from the streams it carries, and the fetch limits of
// the remote block lists. Its spec (KNOWLEDGE_SPEC) is plugged into the
// config schema.
import { bool, int, num, obj, optional, section, type Spec } from "../util/validate.js";

/** Remote block lists (%LIST over http(s) or pubsubitemid): see docs/knowledge.md. */
export interface KnowledgeListsConfig {
  /** Seconds a whole HTTP fetch may take (connect, headers and body). */
  readonly timeout: number;
  /** Largest list body accepted, in bytes; a bigger one is a failed fetch. */
  readonly max_bytes: number;
}

/** Server knowledge the proxy learns from the streams it carries (docs/knowledge.md). */
export interface KnowledgeConfig {
  /** Learn rosters from c2s streams (the firewall's roster conditions). */
  readonly rosters: boolean;
  /** Track bound c2s sessions and their directed presence (TO FULL JID?, SENT DIRECTED PRESENCE TO SENDER?). */
  readonly sessions: boolean;
  /** Remote block lists: fetch limits. */
  readonly lists: KnowledgeListsConfig;
}

export const KNOWLEDGE_DEFAULTS: KnowledgeConfig = Object.freeze({
  rosters: true,
  sessions: true,
  lists: Object.freeze({ timeout: 30, max_bytes: 16_777_216 }),
});

const D = KNOWLEDGE_DEFAULTS;

export const KNOWLEDGE_SPEC: Spec<KnowledgeConfig> = obj({
  rosters: optional(bool(), D.rosters),
  sessions: optional(bool(), D.sessions),
  lists: section(
    obj({
      timeout: optional(num({ above: 0, max: 600 }), D.lists.timeout),
      max_bytes: optional(int({ min: 1024, max: 1_073_741_824 }), D.lists.max_bytes),
    }),
  ),
});
