// What the MUC limits read from a stanza, as mod_muc_limits and the MUC see
// it: room addresses on the listed hosts, senders' bare JIDs as keys, the
// body and its lines, the <x xmlns='…/muc'> of a join, and what the server's
// presence from a room says (self-presence statuses, the occupant's item).
// Pure functions over StanzaView and ltx trees; never throw on peer input.
import { Buffer } from "node:buffer";
import type { Element } from "ltx";
import { localName, normNs, textOf } from "../firewall/xml.js";
import { namespaceOf, NsScope, scopeInside } from "../xml/namespaces.js";
import type { StanzaView } from "../xml/stanza-view.js";
import { prepJid } from "../xmpp/jid.js";
import { nodeprep } from "../xmpp/stringprep.js";
import { AFFILIATIONS, normaliseDomain, type Affiliation } from "./config.js";
import { NS_MUC, NS_MUC_USER, serializeCopy } from "./muc-error.js";

/** A room JID on a listed host: the table key and the resource (nick), if any. */
export interface RoomAddress {
  readonly room: string;
  readonly nick: string | undefined;
}

/** RFC 7622 §3.1: each part of a JID is at most 1023 bytes. */
const MAX_JID_PART_BYTES = 1023;
/** A domain that might read differently after nameprep: try the normalised form. */
const NEEDS_PREP = /[^a-z0-9.-]|\.$/;
const AFFILIATION_SET: ReadonlySet<string> = new Set(AFFILIATIONS);

/** Byte length of a JID part, without encoding short strings (3 bytes per UTF-16 unit at most). */
function exceedsBytes(s: string, max: number): boolean {
  return s.length * 3 > max && Buffer.byteLength(s, "utf8") > max;
}

/** The bare JID prepped as Prosody preps it (xmpp/stringprep.ts), used as a key; undefined if malformed. */
export function bareKey(jid: string): string | undefined {
  const slash = jid.indexOf("/");
  const bare = slash < 0 ? jid : jid.slice(0, slash);
  if (bare === "" || exceedsBytes(bare, 2 * MAX_JID_PART_BYTES + 1)) return undefined;
  return prepJid(bare);
}

/**
 * `node@host[/resource]` with host in `hosts` and a valid node, else
 * undefined. The host is checked first, with one Set lookup on the common
 * path. JIDs the server would refuse as malformed are left for it to refuse.
 */
export function roomAddress(jid: string, hosts: ReadonlySet<string>): RoomAddress | undefined {
  const slash = jid.indexOf("/");
  const bareEnd = slash < 0 ? jid.length : slash;
  const at = jid.indexOf("@");
  if (at < 0 || at > bareEnd) return undefined;
  let host = jid.slice(at + 1, bareEnd);
  if (!hosts.has(host)) {
    if (!NEEDS_PREP.test(host)) return undefined;
    host = normaliseDomain(host);
    if (!hosts.has(host)) return undefined;
  }
  // A node that nodeprep refuses (empty, too long, a prohibited character) is not a room.
  const node = nodeprep(jid.slice(0, at));
  if (node === null) return undefined;
  let nick: string | undefined;
  if (slash >= 0) {
    nick = jid.slice(slash + 1);
    if (nick === "" || exceedsBytes(nick, MAX_JID_PART_BYTES)) return undefined;
  }
  return { room: `${node}@${host}`, nick };
}

/** The text of the stanza's first <body> as Prosody's get_child_text("body") gives it. */
export function bodyOf(root: Element): string | undefined {
  const scope = scopeInside(NsScope.EMPTY, root.attrs);
  const ns = normNs(namespaceOf(root.name, scope));
  for (const c of root.children) {
    if (typeof c === "string" || localName(c.name) !== "body") continue;
    if (normNs(namespaceOf(c.name, scopeInside(scope, c.attrs))) !== ns) continue;
    const text = textOf(c);
    if (text === undefined) return undefined;
    // Expat normalises literal line ends (XML 1.0 §2.11); ltx does not.
    return text.includes("\r") ? text.replace(/\r\n?/g, "\n") : text;
  }
  return undefined;
}

/** The newlines in a body: what muc_max_line_count limits and each extra line costs. */
export function countNewlines(s: string): number {
  let n = 0;
  for (let i = s.indexOf("\n"); i !== -1; i = s.indexOf("\n", i + 1)) n++;
  return n;
}

/** The first child of `parent` named `name` in namespace `ns`, with the scope inside `parent`. */
function childNs(parent: Element, scope: NsScope, name: string, ns: string): Element | undefined {
  for (const c of parent.children) {
    if (typeof c === "string" || localName(c.name) !== name) continue;
    if (namespaceOf(c.name, scopeInside(scope, c.attrs)) === ns) return c;
  }
  return undefined;
}

/** Whether the stanza carries <x xmlns='…/muc'> (a join). */
export function hasMucX(stanza: StanzaView): boolean {
  if (!stanza.bytes.includes(NS_MUC)) return false;
  const root = stanza.tree();
  return root !== null && childNs(root, scopeInside(NsScope.EMPTY, root.attrs), "x", NS_MUC) !== undefined;
}

/** The stanza's own <x xmlns='…/muc'>, serialised for copying into a bounce; `root` if already parsed. */
export function mucXCopy(stanza: StanzaView, root: Element | null): string | undefined {
  if (!stanza.bytes.includes(NS_MUC)) return undefined;
  root ??= stanza.tree();
  if (root === null) return undefined;
  const scope = scopeInside(NsScope.EMPTY, root.attrs);
  const x = childNs(root, scope, "x", NS_MUC);
  return x === undefined ? undefined : serializeCopy(x, scope, undefined);
}

/** The <x xmlns='…/muc#user'> of a presence from a room, with its scope. */
function mucUserX(stanza: StanzaView): { x: Element; scope: NsScope } | undefined {
  if (!stanza.bytes.includes(NS_MUC_USER)) return undefined;
  const root = stanza.tree();
  if (root === null) return undefined;
  const scope = scopeInside(NsScope.EMPTY, root.attrs);
  const x = childNs(root, scope, "x", NS_MUC_USER);
  return x === undefined ? undefined : { x, scope: scopeInside(scope, x.attrs) };
}

/** The status codes of a self-presence (one with status 110); undefined for any other presence. */
export function selfPresenceStatuses(stanza: StanzaView): string[] | undefined {
  const found = mucUserX(stanza);
  if (found === undefined) return undefined;
  const statuses = found.x.children.filter((c): c is Element => typeof c !== "string" && localName(c.name) === "status").map((c) => String(c.attrs.code));
  return statuses.includes("110") ? statuses : undefined;
}

/** What a room's presence says about one occupant. */
export interface OccupantItem {
  /** Status 110: the presence is about its recipient. */
  readonly self: boolean;
  /** `item jid`, when the room reveals it. */
  readonly jid: string | undefined;
  /** undefined for "none"; null when the item says nothing usable. */
  readonly affiliation: Affiliation | undefined | null;
}

/** The <item/> of a room's presence, or undefined when it has none. */
export function occupantItem(stanza: StanzaView): OccupantItem | undefined {
  const found = mucUserX(stanza);
  if (found === undefined) return undefined;
  const { x, scope } = found;
  const item = childNs(x, scope, "item", NS_MUC_USER);
  if (item === undefined) return undefined;
  let self = false;
  for (const c of x.children) {
    if (typeof c !== "string" && localName(c.name) === "status" && c.attrs.code === "110") self = true;
  }
  const raw = item.attrs.affiliation as string | undefined;
  const affiliation = raw === "none" ? undefined : raw !== undefined && AFFILIATION_SET.has(raw) ? (raw as Affiliation) : null;
  return { self, jid: item.attrs.jid as string | undefined, affiliation };
}
