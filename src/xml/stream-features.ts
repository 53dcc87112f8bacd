// Stream features (RFC 6120 §4.3.2) as the proxy touches them: the ones it
// offers itself before TLS, STARTTLS added to the server's features when TLS
// is optional, and SASL EXTERNAL taken out of an s2s server's features.
// Pure text and view helpers, shared by the session and the STARTTLS step.

import type { StanzaView } from "./stanza-view.js";

export const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";
export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

/** Our pre-TLS features (RFC 6120 §5.4.1). */
export function startTlsFeatures(mode: "required" | "optional"): string {
  const required = mode === "required" ? "<required/>" : "";
  return `<stream:features><starttls xmlns='${NS_TLS}'>${required}</starttls></stream:features>`;
}

/**
 * Stream features with an (optional) STARTTLS offer added as their first
 * child, whatever prefix the features element has and whether it is empty.
 */
export function withStartTls(features: string): string {
  const offer = `<starttls xmlns='${NS_TLS}'/>`;
  const open = /^<([^\s/>]+)([^>]*?)(\/?)>/.exec(features);
  if (open === null) return features;
  if (open[3] === "/") return `<${open[1]}${open[2]}>${offer}</${open[1]}>${features.slice(open[0].length)}`;
  return open[0] + offer + features.slice(open[0].length);
}

// Any prefix (or none): the caller has checked by namespace that EXTERNAL is
// a SASL mechanism in these features (offersSaslExternal).
const MECHANISM_EXTERNAL = /<([A-Za-z_][\w.-]*:)?mechanism(?:\s[^>]*)?>\s*EXTERNAL\s*<\/\1mechanism\s*>/g;
const EMPTY_MECHANISMS = /<([A-Za-z_][\w.-]*:)?mechanisms\b[^>]*>\s*<\/\1mechanisms\s*>/g;

/** True when these stream features offer SASL EXTERNAL (read by namespace, whatever the prefixes). */
export function offersSaslExternal(features: StanzaView): boolean {
  const mechanisms = features.tree()?.getChild("mechanisms", NS_SASL);
  return mechanisms?.getChildren("mechanism", NS_SASL).some((m) => m.getText().trim() === "EXTERNAL") ?? false;
}

/**
 * s2s: remove SASL EXTERNAL from the server's stream features (docs/tls.md).
 * Behind the proxy the server cannot see the peer's certificate, so it could
 * only fail EXTERNAL; without it, peers fall back to dialback. Returns null
 * when there is nothing to remove. A <mechanisms/> left empty is removed too.
 */
export function stripSaslExternal(features: string): string | null {
  if (!features.includes("EXTERNAL")) return null;
  const out = features.replace(MECHANISM_EXTERNAL, "");
  if (out === features) return null;
  return out.replace(EMPTY_MECHANISMS, "");
}

/**
 * The server's features as the peer gets them: on s2s without SASL EXTERNAL
 * (it cannot work behind the proxy, docs/tls.md: peers use dialback), and
 * with STARTTLS added when `offerTls` (tls.starttls: optional, and the server
 * offers none itself). `text` reads the features' original text. Null when
 * the original bytes go out unchanged.
 */
export function serverFeatures(view: StanzaView, text: () => string, s2s: boolean, offerTls: boolean): string | null {
  let out: string | null = null;
  if (s2s && offersSaslExternal(view)) out = stripSaslExternal(text());
  if (offerTls && view.tree()?.getChild("starttls", NS_TLS) === undefined) out = withStartTls(out ?? text());
  return out;
}
