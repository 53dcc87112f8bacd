// Stanza error replies built the way Prosody's st.error_reply does (docs/
// firewall.md, "Error replies"): to/from swapped, same name and id,
// type='error', an <error type=…> with the condition and optional <text> in
// urn:ietf:params:xml:ns:xmpp-stanzas. No payload, no xml:lang, no `by`.
// Shared by every policy stage that answers a stanza with an error.
import type { StanzaView } from "../xml/stanza-view.js";
import { escapeXml } from "../xml/stream-error.js";
import { NS_STANZAS, serializeAttrs } from "./xml.js";

/** The attributes an error reply is built from. */
export interface ReplyAddressing {
  /** Local name of the stanza: message, presence or iq. */
  readonly name: string;
  readonly to: string | undefined;
  readonly from: string | undefined;
  readonly id: string | undefined;
  readonly type: string | undefined;
}

/**
 * RFC 6120 §8.3.1: an entity MUST NOT respond to a stanza of type "error";
 * iq results are not answered either. Check this before bouncing.
 */
export function mayAnswerWithError(name: string, type: string | undefined): boolean {
  return !(type === "error" || (name === "iq" && type === "result"));
}

/** Build the error reply for explicit addressing (see buildErrorReply). */
export function errorReplyFor(src: ReplyAddressing, condition: string, type: string, text?: string): string {
  const attrs = serializeAttrs({ to: src.from, from: src.to, id: src.id, type: "error" });
  const textEl = text !== undefined ? `<text xmlns='${NS_STANZAS}'>${escapeXml(text)}</text>` : "";
  return (
    `<${src.name}${attrs}><error type='${escapeXml(type)}'>` +
    `<${condition} xmlns='${NS_STANZAS}'/>${textEl}</error></${src.name}>`
  );
}

/**
 * The error reply to `stanza`, byte for byte as Prosody sends it, e.g.
 * `<message to='a@example.com/r' from='b@example.net' id='3' type='error'><error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Sending too fast!</text></error></message>`.
 * `from` is the view's `from` (the bound JID for c2s stanzas without one);
 * absent addresses are left out. Callers must not answer errors or iq
 * results (see mayAnswerWithError).
 */
export function buildErrorReply(stanza: StanzaView, condition: string, type: string, text?: string): string {
  return errorReplyFor(
    { name: stanza.name, to: stanza.to, from: stanza.from, id: stanza.id, type: stanza.type },
    condition,
    type,
    text,
  );
}
