// The policy pipeline: an ordered list of stages, each of which may return a
// verdict for a stanza. The first non-forward verdict wins. Stages are pure
// with respect to the network: they see a StanzaView and the session's
// identity, and answer; the session carries the verdict out.
//
// Order (docs/ARCHITECTURE.md, "Order of the policy stages"): shaping → registration → firewall → MUC limits. The
// stanza size limit is enforced earlier, inside the framer, because it must
// bound the memory held for a partial stanza.

import type { ErrorCode } from "../errors.js";
import { kindIndex } from "../metrics/definitions.js";
import type { StanzaKind, StanzaView } from "../xml/stanza-view.js";

/** What a stage knows about the session a stanza belongs to. */
export interface SessionInfo {
  readonly id: string;
  readonly listener: string;
  readonly type: "c2s" | "s2s";
  /** Real client address (from the socket or a trusted PROXY header). */
  readonly ip: string;
  readonly port: number;
  /** Bound full JID (c2s), once learned from the server's bind result. */
  readonly jid: string | undefined;
  /** s2s peer domain (stream `from`) or c2s stream `to`. */
  readonly domain: string | undefined;
  readonly authenticated: boolean;
  /**
   * c2s: how long (ms) the server would keep this session for XEP-0198
   * resumption if the connection were lost now; 0 when it would end it (not
   * resumable, or a stream close was sent). Optional for stages' tests.
   */
  readonly resumeMs?: number | undefined;
  /**
   * Send a complete stanza a stage produced (a firewall REPLY, COPY…) toward
   * the peer or the upstream, on a frame boundary like everything else, in
   * the same turn as the stanza being judged. Sessions have it; a stage's
   * test double may leave it out.
   */
  emit?(target: "peer" | "upstream", bytes: Buffer): void;
}

/** Direction of a stanza through the proxy. */
export type Flow = "inbound" | "outbound";

export type Verdict =
  | { readonly action: "forward" }
  /** Swallow the stanza silently. */
  | { readonly action: "drop"; readonly reason: string }
  /** Do not forward; send `reply` (a complete stanza) back to the sender instead. */
  | { readonly action: "bounce"; readonly reply: string; readonly reason: string }
  /** Forward `bytes` instead of the original (e.g. XEP-0157 fields added to disco#info). */
  | { readonly action: "rewrite"; readonly bytes: Buffer; readonly reason: string }
  /** Close the stream with the catalogue's stream error for `code`. */
  | { readonly action: "close"; readonly code: ErrorCode; readonly reason: string };

export interface PolicyStage {
  readonly name: string;
  /**
   * Judge one stanza. `inbound` = sent by the connected peer (client or remote
   * server) toward the upstream; `outbound` = sent by the upstream toward the peer.
   * Return undefined (or FORWARD) to let the next stage decide.
   */
  judge(stanza: StanzaView, session: SessionInfo, flow: Flow): Verdict | undefined;
  /**
   * Optional: the only stanzas this stage ever looks at (by the view's
   * `kind`, in `flow` or in both). The pipeline does not call the stage for
   * any other, and sessions skip building views for stanzas no stage wants
   * (an observer of presence alone costs nothing on messages). It must be
   * true: for a stanza outside it, judge() would return undefined and change
   * nothing (pipeline.test.ts checks the stages that declare one).
   */
  readonly only?: { readonly flow: Flow | "both"; readonly kinds: readonly StanzaKind[] } | undefined;
  /** Forget per-session state (optional). */
  sessionEnded?(session: SessionInfo): void;
  /** The server bound the session's full JID (session.jid), or resumed it (XEP-0198) (optional). */
  sessionBound?(session: SessionInfo, resumed: boolean): void;
}

/** The kinds in kindIndex order. */
const KINDS: readonly StanzaKind[] = ["message", "presence", "iq", "other"];

/** Whether `stage` looks at stanzas of `kind` in `flow` (its `only`, else everything). */
function looksAt(stage: PolicyStage, flow: Flow, kind: StanzaKind): boolean {
  const only = stage.only;
  return only === undefined || ((only.flow === "both" || only.flow === flow) && only.kinds.includes(kind));
}

export class Pipeline {
  readonly stages: readonly PolicyStage[];
  /** True when no stage wants to see stanzas: the session can skip building views. */
  readonly empty: boolean;
  /**
   * Per flow, per kind (kindIndex), the stages that look at such stanzas, in
   * pipeline order: judge() calls only those. Two fields, not a table keyed
   * by flow: a read with two keys is a megamorphic keyed load, and judge()
   * runs for every stanza.
   */
  readonly #in: readonly (readonly PolicyStage[])[];
  readonly #out: readonly (readonly PolicyStage[])[];

  constructor(stages: readonly PolicyStage[]) {
    this.stages = Object.freeze([...stages]);
    this.empty = stages.length === 0;
    this.#in = KINDS.map((k) => stages.filter((s) => looksAt(s, "inbound", k)));
    this.#out = KINDS.map((k) => stages.filter((s) => looksAt(s, "outbound", k)));
  }

  /** Whether any stage wants to judge a stanza of `kind` in `flow` (false: judging it is a no-op). */
  wants(flow: Flow, kind: StanzaKind): boolean {
    return (flow === "inbound" ? this.#in : this.#out)[kindIndex(kind)]!.length > 0;
  }

  sessionEnded(session: SessionInfo): void {
    const stages = this.stages;
    for (let k = 0; k < stages.length; k++) stages[k]!.sessionEnded?.(session);
  }

  sessionBound(session: SessionInfo, resumed: boolean): void {
    for (const stage of this.stages) stage.sessionBound?.(session, resumed);
  }

  /** Run the stages in order; returns the deciding stage's name with its verdict. */
  judge(stanza: StanzaView, session: SessionInfo, flow: Flow): { stage: string; verdict: Verdict } | null {
    // Indexed loops throughout: for…of over a frozen array is not optimised (docs/performance.md).
    const stages = (flow === "inbound" ? this.#in : this.#out)[kindIndex(stanza.kind)]!;
    for (let k = 0; k < stages.length; k++) {
      const stage = stages[k]!;
      const v = stage.judge(stanza, session, flow);
      if (v !== undefined && v.action !== "forward") return { stage: stage.name, verdict: v };
    }
    return null;
  }
}
