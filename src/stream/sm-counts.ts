// The XEP-0198 side of one c2s session: when counting starts, which
// acknowledgements to rewrite, and resumption (docs/stream-view.md,
// "Stream management counts"). The session tells it what became of each
// stanza; it hands back the text to send instead of an acknowledgement whose
// count the proxy changed, or null to forward the original bytes.
import type { StanzaView } from "../xml/stanza-view.js";
import { replaceAttribute } from "../xml/attr-rewrite.js";
import { SmLedger } from "./sm-ledger.js";
import { NS_SM3 } from "./tracker.js";

/**
 * What became of one stanza on its way: forwarded (as it was or rewritten),
 * dropped, or bounced (not forwarded; a reply went back to its sender).
 */
export type Fate = "passed" | "dropped" | "bounced";

/** Where a session's ledger is kept for a later resumption (by the server's resumption id). */
export interface LedgerKeeper {
  ledger(id: string): SmLedger | undefined;
}

export class SmCounts {
  /** null until the client asks for stream management. */
  #ledger: SmLedger | null = null;
  /** The server has said <enabled/>: stanzas toward the client count from now. */
  #toClientOn = false;
  /** A <resume/> on its way: the old ledger and the client's `h` in it. */
  #resuming: { ledger: SmLedger; clientH: number } | null = null;

  /** The ledger to keep for resumption (once counting runs). */
  get ledger(): SmLedger | null {
    return this.#ledger;
  }

  /** A stanza from the client, and what became of it. */
  fromClient(fate: Fate): void {
    const l = this.#ledger;
    if (l === null) return;
    if (fate === "passed") l.toServer.passed();
    else {
      l.toServer.dropped();
      if (fate === "bounced" && this.#toClientOn) l.toClient.injected();
    }
  }

  /** A stanza from the server, and what became of it. */
  fromServer(fate: Fate): void {
    const l = this.#ledger;
    if (l === null || !this.#toClientOn) return;
    if (fate === "passed") l.toClient.passed();
    else {
      l.toClient.dropped();
      if (fate === "bounced") l.toServer.injected();
    }
  }

  /** A stanza the proxy wrote on its own, toward the client ("peer") or the server. */
  injected(target: "peer" | "upstream"): void {
    const l = this.#ledger;
    if (l === null) return;
    if (target === "upstream") l.toServer.injected();
    else if (this.#toClientOn) l.toClient.injected();
  }

  /** A client nonza: the text to send upstream instead, or null to forward it as it is. */
  clientNonza(view: StanzaView, text: () => string, keeper: LedgerKeeper): string | null {
    if (view.xmlns !== NS_SM3) return null;
    switch (view.name) {
      case "enable":
        this.#ledger = new SmLedger();
        this.#toClientOn = false;
        return null;
      case "a": {
        const l = this.#ledger;
        const h = count(view.attr("h"));
        if (l === null || h === null || !this.#toClientOn) return null;
        if (l.toClient.aligned) return null;
        return rewritten(text(), h, l.clientAck(h));
      }
      case "resume": {
        const id = view.attr("previd");
        const h = count(view.attr("h"));
        const old = id === undefined ? undefined : keeper.ledger(id);
        if (old === undefined || h === null) return null;
        this.#resuming = { ledger: old, clientH: h };
        return old.toClient.aligned ? null : rewritten(text(), h, old.toClient.toSender(h));
      }
    }
    return null;
  }

  /** A server nonza: the text to send to the client instead, or null to forward it as it is. */
  serverNonza(view: StanzaView, text: () => string): string | null {
    if (view.xmlns !== NS_SM3) return null;
    switch (view.name) {
      case "enabled":
        if (this.#ledger !== null) this.#toClientOn = true;
        return null;
      case "a": {
        const l = this.#ledger;
        const h = count(view.attr("h"));
        if (l === null || h === null || l.toServer.aligned) return null;
        return rewritten(text(), h, l.serverAck(h));
      }
      case "resumed": {
        const r = this.#resuming;
        this.#resuming = null;
        if (r === null) return null;
        const h = count(view.attr("h"));
        if (h === null) return null;
        const mapped = r.ledger.toServer.toSender(h);
        r.ledger.toClient.resumeAt(r.clientH);
        r.ledger.toServer.resumeAt(h);
        this.#ledger = r.ledger;
        this.#toClientOn = true;
        return mapped === h ? null : rewritten(text(), h, mapped);
      }
      case "failed": {
        // Enabling or resuming failed. The server's `h` (if any) counts the
        // old session's stanzas it handled.
        const r = this.#resuming;
        this.#resuming = null;
        if (r === null) {
          if (!this.#toClientOn) this.#ledger = null;
          return null;
        }
        const h = count(view.attr("h"));
        if (h === null || r.ledger.toServer.aligned) return null;
        return rewritten(text(), h, r.ledger.toServer.toSender(h));
      }
    }
    return null;
  }
}

/** An `h` as XEP-0198 writes it: a decimal count below 2^32; null when it is not one. */
function count(value: string | undefined): number | null {
  if (value === undefined || !/^[0-9]{1,10}$/.test(value)) return null;
  const n = Number(value);
  return n < 2 ** 32 ? n : null;
}

function rewritten(text: string, from: number, to: number): string | null {
  if (from === to) return null;
  return replaceAttribute(text, "h", String(to));
}
