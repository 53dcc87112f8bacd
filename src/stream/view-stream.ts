// The proxy's view of a whole byte stream, stanza by stanza: what every
// policy reads (name and namespace, type, from, to, xml:lang). Used by the
// differential test against the server's own stream parser and by `trace`.
// `from` here is the attribute as the parser delivers it, before any routing
// stamp (a c2s session's bound JID is stamped later, by the tracker).
import { FRAME_HEADER, FRAME_STANZA, Framer, DEFAULT_LIMITS } from "../xml/framer.js";
import { Stanza, NS_CLIENT, NS_SERVER } from "../xml/stanza.js";

export interface ViewedStanza {
  /** Local name. */
  readonly name: string;
  /** Namespace URI the element is in. */
  readonly ns: string;
  readonly type: string | undefined;
  readonly from: string | undefined;
  readonly to: string | undefined;
  /** Effective xml:lang (the stream's when the stanza has none). */
  readonly lang: string;
}

export interface StreamView {
  readonly stanzas: ViewedStanza[];
  /** Set when the proxy refuses the stream (a framing or namespace error). */
  readonly error: string | undefined;
}

/** Frame `bytes` as one stream from a peer of `type` and read every top-level element. */
export function viewStream(bytes: Buffer, type: "c2s" | "s2s"): StreamView {
  const contentNs = type === "s2s" ? NS_SERVER : NS_CLIENT;
  const stanzas: ViewedStanza[] = [];
  let error: string | undefined;
  const framer = new Framer(
    {
      onFrame(kind, data, start, end) {
        if (kind === FRAME_HEADER || kind !== FRAME_STANZA || error !== undefined) return;
        const v = Stanza.within(Buffer.from(data.subarray(start, end)), 0, end - start, contentNs);
        stanzas.push({ name: v.name, ns: v.xmlns, type: v.type, from: v.from, to: v.to, lang: v.lang });
      },
      onError(e) {
        error ??= e.code;
      },
    },
    DEFAULT_LIMITS,
  );
  framer.write(bytes);
  return { stanzas, error };
}
