// The error replies mod_muc_limits sends, byte for byte (docs/muc-limits.md,
// "The bounces, byte for byte"). They are st.error_reply()
// stanzas plus children added at util.stanza's cursor, which is left on
// <error>: `:up()` moves it to the stanza, so a child added without `:up()`
// lands inside <error>. The shared firewall builder makes the base reply; this
// module only adds those children. Never used on stanzas of type error.
import { errorReplyFor, type ReplyAddressing } from "../firewall/error-reply.js";
import { localName, type XmlNode } from "../firewall/xml.js";
import { namespaceOf, scopeInside, type NsScope } from "../xml/namespaces.js";
import { escapeXml } from "../xml/stream-error.js";

export const NS_MUC = "http://jabber.org/protocol/muc";
export const NS_MUC_USER = "http://jabber.org/protocol/muc#user";

export const NICK_TOO_LONG_TEXT = "Your nick name is too long, please use a shorter one";
export const MESSAGE_TOO_LONG_TEXT = "Your message is too long, please write a shorter one";
export const OVERACTIVE_TEXT = "The room is currently overactive, please try again later";

/**
 * The nick, character and line refusals:
 * `st.error_reply(stanza, "modify", "policy-violation", text):up():tag("x", {xmlns=muc})`,
 * so an empty `<x xmlns='http://jabber.org/protocol/muc'/>` follows `<error>`.
 */
export function tooLongReply(src: ReplyAddressing, text: string): string {
  const reply = errorReplyFor(src, "policy-violation", "modify", text);
  const close = `</${src.name}>`;
  return `${reply.slice(0, -close.length)}<x xmlns='${NS_MUC}'/>${close}`;
}

/**
 * The rate refusal: `wait/policy-violation` "The room is currently overactive…".
 * With a body (even an empty one), `reply:up():tag("body"):text(body):up()`
 * puts a copy of the body text after `<error>`, and the stanza's own muc `<x>`
 * (already serialized, see serializeCopy) follows it. Without a body the
 * cursor is still on `<error>`, so the `<x>` copy ends up inside it, after
 * `<text>`. `body` is the text as Prosody's parser delivers it.
 */
export function overactiveReply(src: ReplyAddressing, body: string | undefined, mucX: string | undefined): string {
  const reply = errorReplyFor(src, "policy-violation", "wait", OVERACTIVE_TEXT);
  const close = `</${src.name}>`;
  if (body !== undefined) {
    const bodyEl = body === "" ? "<body/>" : `<body>${escapeXml(body)}</body>`;
    return `${reply.slice(0, -close.length)}${bodyEl}${mucX ?? ""}${close}`;
  }
  if (mucX === undefined) return reply;
  const closeError = `</error>${close}`;
  return `${reply.slice(0, -closeError.length)}${mucX}${closeError}`;
}

/**
 * Serialize a copy of `el` (st.clone) as Prosody would send it after parsing:
 * local names only, `xmlns` written only where it differs from the parent's
 * (`parentNs`, undefined at the top of a new stanza), prefix declarations
 * dropped, `xml:*` attributes kept, other prefixed attributes as
 * ` xmlns:nsN='uri' nsN:name='v'`, all five characters escaped, empty
 * elements self-closed. `scope` is the namespace scope around `el`.
 * Attribute order: `xmlns` first, then document order (Prosody's is the
 * unspecified order of a Lua table).
 */
export function serializeCopy(el: XmlNode, scope: NsScope, parentNs: string | undefined): string {
  const inner = scopeInside(scope, el.attrs);
  const ns = namespaceOf(el.name, inner);
  const name = localName(el.name);
  let out = `<${name}`;
  if (ns !== parentNs) out += ` xmlns='${escapeXml(ns)}'`;
  let nsid = 0;
  for (const [k, v] of Object.entries(el.attrs)) {
    if (v === undefined || k === "xmlns" || k.startsWith("xmlns:")) continue;
    const colon = k.indexOf(":");
    const uri = colon > 0 && !k.startsWith("xml:") ? inner.resolve(k.slice(0, colon)) : undefined;
    if (uri !== undefined) {
      nsid++;
      out += ` xmlns:ns${nsid}='${escapeXml(uri)}' ns${nsid}:${k.slice(colon + 1)}='${escapeXml(v)}'`;
    } else {
      out += ` ${k}='${escapeXml(v)}'`;
    }
  }
  if (el.children.length === 0) return `${out}/>`;
  out += ">";
  for (const c of el.children) out += typeof c === "string" ? escapeXml(c) : serializeCopy(c, inner, ns);
  return `${out}</${name}>`;
}
