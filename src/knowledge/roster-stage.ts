// The observing stage that learns rosters (docs/knowledge.md). Placed last in
// the pipeline, so it only sees stanzas every other stage let through; it
// never refuses anything. Its one verdict of its own is a rewrite: a roster
// get whose `ver` the proxy holds no copy of loses that `ver`, so the server
// answers with the whole roster.
import type { Flow, PolicyStage, SessionInfo, Verdict } from "../policy/pipeline.js";
import type { StanzaView } from "../xml/stanza-view.js";
import type { RosterLearner } from "./roster-learner.js";

/** What the stage drives: a RosterLearner, or something that forwards to one. */
export type RosterObserver = Pick<RosterLearner, "observe" | "sessionEnded">;

export class RosterStage implements PolicyStage {
  readonly name = "roster_knowledge";
  /** Roster iqs and subscription presence, both ways. */
  readonly only = { flow: "both", kinds: ["presence", "iq"] } as const;
  readonly #learner: RosterObserver;

  constructor(learner: RosterObserver) {
    this.#learner = learner;
  }

  judge(stanza: StanzaView, session: SessionInfo, flow: Flow): Verdict | undefined {
    if (session.type !== "c2s" || (stanza.kind !== "iq" && stanza.kind !== "presence")) return undefined;
    const rewrite = this.#learner.observe(stanza, session, flow);
    return rewrite === undefined ? undefined : { action: "rewrite", bytes: rewrite.bytes, reason: rewrite.reason };
  }

  sessionEnded(session: SessionInfo): void {
    this.#learner.sessionEnded(session.id);
  }
}
