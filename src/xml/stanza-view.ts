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
  /** Local name of the top-level element, whatever prefix was written ("message", "features"). */
  readonly name: string;
  /** message | presence | iq when in the stream's content namespace, else other. */
  readonly kind: StanzaKind;
  /** The namespace the element is in (resolved through prefixes and the stream header's declarations). */
  readonly xmlns: string;
  /**
   * An attribute as the server holds it, entity-decoded: unprefixed names,
   * `xml:lang` (the stream's language when the stanza has none), `xmlns` only
   * when the element is not in the stream's namespace; prefixed names are not
   * attributes the server keys by name and read as undefined.
   */
  attr(name: string): string | undefined;
  /**
   * Every attribute as the server holds it, in document order: no namespace
   * declarations or prefixed names, `xmlns` only when not the stream's namespace.
   */
  attrs(): Array<[string, string]>;
  /** Effective xml:lang: the stanza's own, else the stream header's, else "en". */
  readonly lang: string;
  readonly to: string | undefined;
  /** The `type` attribute as written (undefined when absent). */
  readonly type: string | undefined;
  /** `type` with the defaults the server applies: a message is "normal", a presence "available". */
  readonly effectiveType: string | undefined;
  readonly id: string | undefined;
  /**
   * `from` as the server would see it: for a stanza a bound c2s client sent in
   * the stream's namespace, the session's full JID, whatever the attribute
   * says (Prosody's stanza router overwrites it); otherwise the attribute.
   */
  readonly from: string | undefined;
  /** Local name and namespace of the first child element, read without a full parse. */
  readonly firstChildName: string | undefined;
  readonly firstChildXmlns: string | undefined;
  /** Full ltx tree, parsed once on first call. Throws nothing: returns null if unparsable. */
  tree(): Element | null;
}
