// The read-only view of one framed top-level element (stanza or nonza) that
// policy stages see. The original bytes are never re-serialized: `bytes` is
// exactly what arrived, and what is forwarded when the verdict is "forward".
// Everything else is derived lazily: the head (opening tag) is read cheaply
// without building a tree; `tree()` builds an ltx Element once, on demand.
import type { Element } from "ltx";

/** Stanza kinds counted in metrics; nonzas (SASL, SM, features...) are "other". */
export type StanzaKind = "message" | "presence" | "iq" | "other";

export interface StanzaView {
  /** Exact bytes of the element as received (a view; do not mutate). */
  readonly bytes: Buffer;
  /** Qualified name of the top-level element as written, e.g. "message", "stream:features". */
  readonly name: string;
  /** Local name (prefix stripped). */
  readonly localName: string;
  /** message | presence | iq when in the stream's content namespace, else other. */
  readonly kind: StanzaKind;
  /** The element's own xmlns attribute, or the stream's default namespace when absent. */
  readonly xmlns: string;
  /** Attribute values from the opening tag, entity-decoded. */
  attr(name: string): string | undefined;
  readonly to: string | undefined;
  readonly type: string | undefined;
  readonly id: string | undefined;
  /**
   * `from` as the server would see it: for a stanza a bound c2s client sent in
   * the stream's namespace, the session's full JID, whatever the attribute
   * says (Prosody's stanza router overwrites it); otherwise the attribute.
   */
  readonly from: string | undefined;
  /** Name and xmlns of the first child element, read without a full parse. */
  readonly firstChildName: string | undefined;
  readonly firstChildXmlns: string | undefined;
  /** Full ltx tree, parsed once on first call. Throws nothing: returns null if unparsable. */
  tree(): Element | null;
}
