// Test support: a StanzaView from an XML string, read by the same Stanza the
// proxy uses on the wire (so a firewall test sees what a live stanza would).
// Not used by production code.
import { Stanza } from "../../src/xml/stanza.js";
import type { StanzaView } from "../../src/xml/stanza-view.js";

export interface TestStanzaOptions {
  /** Stream default namespace (default jabber:client). */
  readonly streamNs?: string;
  /** Bound JID that reads as `from` when the stanza has none (c2s). */
  readonly sessionJid?: string;
}

export function testStanza(xml: string, options: TestStanzaOptions = {}): StanzaView {
  return Stanza.withDefaultFrom(Buffer.from(xml, "utf8"), options.streamNs ?? "jabber:client", options.sessionJid);
}
