// The StanzaView implementation over a frame's bytes. Construction is cheap
// (no parsing); the head is read on first attribute access, the ltx tree on
// first tree() call. Policy stages share one instance per stanza.

import { parse as ltxParse, type Element } from "ltx";
import { readFirstChild, readHead, type Head } from "./head.js";
import type { StanzaKind, StanzaView } from "./stanza-view.js";

export const NS_CLIENT = "jabber:client";
export const NS_SERVER = "jabber:server";

const MESSAGE = Buffer.from("message", "latin1");
const PRESENCE = Buffer.from("presence", "latin1");

/** True when data[at…] spells `word` and the name ends right after it. */
function nameIs(data: Buffer, at: number, word: Buffer): boolean {
  const n = word.length;
  for (let k = 1; k < n; k++) if (data[at + k] !== word[k]) return false;
  const b = data[at + n];
  return b === 0x20 || b === 0x3e || b === 0x2f || b === 0x09 || b === 0x0a || b === 0x0d;
}

/** Kind from the name bytes alone (for metrics on the fast path): no strings, no closures. */
export function kindOf(data: Buffer, start: number): StanzaKind {
  // '<' then the name: message, presence, iq (unprefixed; stanzas are never prefixed in practice).
  const at = start + 1;
  const c = data[at];
  if (c === 0x6d) return nameIs(data, at, MESSAGE) ? "message" : "other";
  if (c === 0x70) return nameIs(data, at, PRESENCE) ? "presence" : "other";
  if (c === 0x69) {
    const b = data[at + 2];
    return data[at + 1] === 0x71 && (b === 0x20 || b === 0x3e || b === 0x2f || b === 0x09 || b === 0x0a || b === 0x0d) ? "iq" : "other";
  }
  return "other";
}

export class Stanza implements StanzaView {
  /** The chunk the element lies in, and where: bytes() is cut from it only when asked for. */
  readonly #data: Buffer;
  readonly #start: number;
  readonly #end: number;
  #bytes: Buffer | undefined;
  readonly #streamNs: string;
  #sessionJid: string | undefined;
  #head: Head | null | undefined;
  #tree: Element | null | undefined;
  #child: { name: string; xmlns: string | undefined } | null | undefined;

  /** True: `sessionJid` only fills a missing `from` (trace --from), it overrides nothing. */
  readonly #fillOnly: boolean;

  /**
   * @param bytes exactly the element's bytes (or the chunk holding them, with start/end)
   * @param streamNs the stream's default namespace (jabber:client / jabber:server)
   * @param sessionJid the bound full JID of the c2s session that sent the stanza:
   *   Prosody's stanza router sets `from` to it on every stanza in the stream's
   *   namespace, whatever the client wrote (so policy keyed on `from` cannot be
   *   dodged by writing another one)
   */
  constructor(bytes: Buffer, streamNs: string, sessionJid?: string, start = 0, end = bytes.length, fillOnly = false) {
    this.#fillOnly = fillOnly;
    this.#data = bytes;
    this.#start = start;
    this.#end = end;
    this.#bytes = start === 0 && end === bytes.length ? bytes : undefined;
    this.#streamNs = streamNs;
    this.#sessionJid = sessionJid;
  }

  /**
   * A view of the element data[start, end) inside a larger chunk (a read
   * buffer holding several frames), without copying or slicing it.
   */
  static within(data: Buffer, start: number, end: number, streamNs: string, sessionJid?: string): Stanza {
    return new Stanza(data, streamNs, sessionJid, start, end);
  }

  /** A stanza whose `from`, when it has none, reads as `from` (what `trace --from` stamps). */
  static withDefaultFrom(bytes: Buffer, streamNs: string, from: string | undefined): Stanza {
    return new Stanza(bytes, streamNs, from, 0, bytes.length, true);
  }

  /** Exactly the element's bytes (a subarray of the chunk, made on first use). */
  get bytes(): Buffer {
    return (this.#bytes ??= this.#data.subarray(this.#start, this.#end));
  }

  get head(): Head {
    if (this.#head === undefined) this.#head = readHead(this.#data, this.#start, this.#end, this.#start);
    // Frames are well-formed, so a missing head means a bug upstream of us.
    if (this.#head === null) throw new Error("frame has no start tag");
    return this.#head;
  }

  get name(): string {
    return this.head.name;
  }

  get localName(): string {
    const n = this.head.name;
    const colon = n.indexOf(":");
    return colon < 0 ? n : n.slice(colon + 1);
  }

  get xmlns(): string {
    return this.head.attr("xmlns") ?? this.#streamNs;
  }

  get kind(): StanzaKind {
    const n = this.head.name;
    if ((n === "message" || n === "presence" || n === "iq") && this.xmlns === this.#streamNs) return n;
    return "other";
  }

  attr(name: string): string | undefined {
    return this.head.attr(name);
  }

  get to(): string | undefined {
    return this.head.attr("to");
  }

  get from(): string | undefined {
    const jid = this.#sessionJid;
    if (jid === undefined) return this.head.attr("from");
    // core_process_stanza: `if origin.type == "c2s" and not stanza.attr.xmlns
    // then … stanza.attr.from = origin.full_jid`.
    if (!this.#fillOnly && this.head.attr("xmlns") === undefined) return jid;
    return this.head.attr("from") ?? jid;
  }

  get type(): string | undefined {
    return this.head.attr("type");
  }

  get id(): string | undefined {
    return this.head.attr("id");
  }

  get firstChildName(): string | undefined {
    return this.#firstChild()?.name;
  }

  get firstChildXmlns(): string | undefined {
    const child = this.#firstChild();
    return child ? (child.xmlns ?? this.xmlns) : undefined;
  }

  #firstChild(): { name: string; xmlns: string | undefined } | null {
    if (this.#child === undefined) {
      const head = this.head;
      this.#child = head.selfClosing ? null : readFirstChild(this.#data, this.#start + head.end, this.#end);
    }
    return this.#child;
  }

  tree(): Element | null {
    if (this.#tree === undefined) {
      try {
        const el = ltxParse(this.bytes.toString("utf8"));
        // Give the stanza the stream's default namespace, as the server sees it.
        if (el.attrs.xmlns === undefined) el.attrs.xmlns = this.#streamNs;
        this.#tree = el;
      } catch {
        this.#tree = null;
      }
    }
    return this.#tree;
  }
}
