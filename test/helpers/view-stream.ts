// The proxy's view of a whole byte stream, stanza by stanza: what every
// policy reads (name and namespace, type, from, to, xml:lang). Used by the
// differential test against the server's own stream parser, and for
// debugging. It reads with the same pieces as a live session (framer, stream
// tracker, stanza view); `from` here is the attribute as the parser delivers
// it, before the router's stamp on c2s.
import { FRAME_CLOSE, FRAME_HEADER, FRAME_STANZA, Framer, DEFAULT_LIMITS } from "../../src/xml/framer.js";
import { NS_STREAMS } from "../../src/xml/stream-error.js";
import { StreamTracker } from "../../src/stream/tracker.js";

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
  /** Set when the proxy refuses the stream (the error code), or knows the server will. */
  readonly error: string | undefined;
}

/**
 * Frame `input` as one stream from a peer of `type` and read every top-level
 * element, until the first refusal. `input` may be split at stream restarts
 * (as after SASL success): each part starts a new stream on the same
 * session, as the framer is reset there.
 *
 * A namespace error inside a stanza (below its start tag) is not checked on
 * the live data path; the server refuses that stanza and the stream. Here it
 * is reported as the error at that stanza, since that is where the server
 * stops (docs/stream-view.md).
 */
export function viewStream(input: Buffer | readonly Buffer[], type: "c2s" | "s2s"): StreamView {
  const tracker = new StreamTracker(type);
  const stanzas: ViewedStanza[] = [];
  let error: string | undefined;
  let closed = false;
  const framer = new Framer(
    {
      onFrame(kind, data, start, end) {
        if (error !== undefined || closed) return;
        if (kind === FRAME_HEADER) {
          const problem = tracker.peerHeader(data, start, end);
          if (problem !== null) error = problem.code;
          return;
        }
        if (kind === FRAME_CLOSE) {
          closed = true;
          return;
        }
        if (kind !== FRAME_STANZA) return;
        const bytes = Buffer.from(data.subarray(start, end));
        const view = tracker.peerView(bytes, 0, bytes.length);
        try {
          if (view.head.duplicate !== null) return void (error = "XPX_ERR_XML_DUPLICATE_ATTRIBUTE");
          if (view.namespaceProblem !== null) return void (error = "XPX_ERR_XML_NAMESPACE");
          if (view.tree() === null) return void (error = "XPX_ERR_XML_NAMESPACE (inside the stanza)");
          stanzas.push({ name: view.name, ns: view.xmlns, type: view.type, from: view.attr("from"), to: view.to, lang: view.lang });
          // The peer's stream error ends its stream.
          if (view.name === "error" && view.xmlns === NS_STREAMS) closed = true;
        } finally {
          view.release();
        }
      },
      onError(e) {
        error ??= e.code;
      },
    },
    DEFAULT_LIMITS,
  );
  const parts = Buffer.isBuffer(input) ? [input] : input;
  for (let k = 0; k < parts.length && error === undefined && !closed; k++) {
    if (k > 0) framer.reset();
    framer.write(parts[k]!);
  }
  return { stanzas, error };
}
