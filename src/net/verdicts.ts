// The policy step of a session's data path: what a stage's verdict does to
// the stanza it judged. A forward lets it go on; a drop swallows it; a
// bounce sends the reply back to whoever sent it; a rewrite sends other
// bytes on in its place; a close ends the stream (the session does that). It
// counts the verdict, writes the rate-limited "policy action" line, and
// tells the XEP-0198 counts what became of the stanza.

import type { SessionLog } from "../log.js";
import type { Metrics } from "../metrics/definitions.js";
import { ruleOf, type AuditLimiter } from "../policy/audit.js";
import type { SessionInfo, Verdict } from "../policy/pipeline.js";
import type { Fate, SmCounts } from "../stream/sm-counts.js";
import { FRAME_STANZA } from "../xml/framer.js";
import type { StanzaView } from "../xml/stanza-view.js";
import type { PeerOutput } from "./peer.js";
import type { WriteBatch } from "./write-batch.js";

/** What carrying out a verdict touches: the session's outputs, counts and log. */
export interface VerdictScene {
  readonly session: SessionInfo;
  readonly metrics: Metrics;
  readonly audit: AuditLimiter;
  readonly log: SessionLog;
  readonly sm: SmCounts | null;
  readonly toPeer: PeerOutput;
  readonly toUpstream: WriteBatch;
}

/**
 * Carry out `stage`'s verdict on a stanza that came in (`dir` "in": from the
 * peer) or out (from the server). Returns true only if the original bytes
 * should still be forwarded; on "close" the caller closes the stream.
 */
export function carryOut(scene: VerdictScene, stage: string, verdict: Verdict, dir: "in" | "out", view: StanzaView): boolean {
  scene.metrics.verdicts.inc({ listener: scene.session.listener, stage, verdict: verdict.action });
  if (verdict.action === "drop" || verdict.action === "bounce" || verdict.action === "close") audit(scene, stage, verdict.action, verdict.reason, dir, view);
  if (verdict.action !== "forward" && verdict.action !== "close" && view.kind !== "other") {
    const fate: Fate = verdict.action === "rewrite" ? "passed" : verdict.action === "bounce" ? "bounced" : "dropped";
    if (dir === "in") scene.sm?.fromClient(fate);
    else scene.sm?.fromServer(fate);
  }
  switch (verdict.action) {
    case "forward":
      return true;
    case "drop":
    case "close":
      return false;
    case "bounce": {
      // The reply goes back to whoever sent the stanza.
      const reply = Buffer.from(verdict.reply);
      if (dir === "in") scene.toPeer.add(reply, 0, reply.length, FRAME_STANZA);
      else scene.toUpstream.add(reply, 0, reply.length);
      return false;
    }
    case "rewrite":
      if (dir === "in") scene.toUpstream.add(verdict.bytes, 0, verdict.bytes.length);
      else scene.toPeer.add(verdict.bytes, 0, verdict.bytes.length, FRAME_STANZA);
      return false;
  }
}

/** The "policy action" line (rate-limited, see policy/audit.ts). */
function audit(scene: VerdictScene, stage: string, action: string, reason: string, dir: "in" | "out", view: StanzaView): void {
  const suppressed = scene.audit.admit(scene.session);
  if (suppressed === null) {
    scene.metrics.policyLogsSuppressed.inc();
    return;
  }
  scene.log.info({
    ip: scene.session.ip,
    stage,
    rule: ruleOf(reason),
    action,
    reason,
    dir,
    stanza: { name: view.name, type: view.type, id: view.id?.slice(0, 64), to: view.to?.slice(0, 256) },
    ...(suppressed > 0 ? { suppressed } : {}),
  }, "policy action");
}
