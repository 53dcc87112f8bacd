// Build the few XML strings the proxy itself speaks: its own stream header
// (when it must answer before the server has), and stream errors (RFC 6120
// §4.9). Everything else on the wire is forwarded bytes, never built here.

import { randomBytes } from "node:crypto";
import type { StreamErrorCondition } from "../errors.js";

export const NS_STREAMS = "http://etherx.jabber.org/streams";
export const NS_XMPP_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;" };

/** Escape text and attribute values exactly as Prosody's util.stanza does (all five). */
export function escapeXml(s: string): string {
  return /[&<>'"]/.test(s) ? s.replace(/[&<>'"]/g, (c) => ESCAPES[c]!) : s;
}

/** The opening tag the proxy sends when it must speak first (RFC 6120 §4.9.1.2). */
export function streamHeader(contentNs: string, from: string | undefined, id = randomBytes(8).toString("hex")): string {
  const fromAttr = from ? ` from='${escapeXml(from)}'` : "";
  return `<?xml version='1.0'?><stream:stream xmlns='${contentNs}' xmlns:stream='${NS_STREAMS}' id='${id}'${fromAttr} version='1.0'>`;
}

/** The stream's end tag, as the proxy writes it. */
export const STREAM_CLOSE = "</stream:stream>";

/** The <stream:error/> element alone (a transport that frames elements sends the close on its own). */
export function streamErrorElement(condition: StreamErrorCondition, text?: string): string {
  const textEl = text ? `<text xmlns='${NS_XMPP_STREAMS}'>${escapeXml(text)}</text>` : "";
  return `<stream:error><${condition} xmlns='${NS_XMPP_STREAMS}'/>${textEl}</stream:error>`;
}

/** A stream error followed by the stream close. `text` is for humans and must not leak internals. */
export function streamError(condition: StreamErrorCondition, text?: string): string {
  return streamErrorElement(condition, text) + STREAM_CLOSE;
}
