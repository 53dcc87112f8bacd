// Test support: a StanzaView double built from an XML string with ltx, so the
// firewall's tests do not depend on the framer. Not used by production code.
import { parse, type Element } from "ltx";
import type { StanzaKind, StanzaView } from "../xml/stanza-view.js";

export interface TestStanzaOptions {
  /** Stream default namespace (default jabber:client). */
  readonly streamNs?: string;
  /** Bound JID stamped as `from` when the stanza has none (c2s). */
  readonly sessionJid?: string;
}

export function testStanza(xml: string, options: TestStanzaOptions = {}): StanzaView {
  const streamNs = options.streamNs ?? "jabber:client";
  const el: Element = parse(xml);
  const attrs = { ...el.attrs } as Record<string, string>;
  const xmlns = attrs.xmlns ?? streamNs;
  const localName = el.getName();
  const first = el.getChildElements()[0];
  let tree: Element | null | undefined;
  return {
    bytes: Buffer.from(xml, "utf8"),
    name: el.name,
    localName,
    kind: (["message", "presence", "iq"].includes(el.name) && xmlns === streamNs ? el.name : "other") as StanzaKind,
    xmlns,
    attr: (name) => attrs[name],
    to: attrs.to,
    type: attrs.type,
    id: attrs.id,
    from: attrs.from ?? options.sessionJid,
    firstChildName: first?.name,
    firstChildXmlns: first ? (first.attrs.xmlns ?? xmlns) : undefined,
    tree() {
      if (tree === undefined) {
        tree = parse(xml);
        if (tree.attrs.xmlns === undefined) tree.attrs.xmlns = streamNs;
      }
      return tree;
    },
  };
}
