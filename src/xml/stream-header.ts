// The stream header (RFC 6120 §4.7-4.9): where its element starts in a header
// frame, and whether it is one the proxy will carry: the streams namespace
// (by namespace, whatever prefix), the expected content namespace, a 1.x
// version. Shared by the session and the proxy's own STARTTLS step.
import type { ErrorCode } from "../errors.js";
import type { Head } from "./head.js";
import { checkAttributes, NamespaceProblem, NsScope } from "./namespaces.js";
import { NS_STREAMS } from "./stream-error.js";

/** The stream element's '<' inside a header frame (after any prolog). */
export function headerElementStart(data: Buffer, start: number, end: number): number {
  let i = start;
  for (;;) {
    const lt = data.indexOf(0x3c, i);
    if (lt < 0 || lt >= end) return start;
    if (data[lt + 1] !== 0x3f) return lt;
    const close = data.indexOf("?>", lt, "latin1");
    if (close < 0) return start;
    i = close + 2;
  }
}

/** RFC 6120 §4.8-4.9: the stream namespace, content namespace and version. */
export function checkStreamHeader(head: Head | null, contentNs: string): { code: ErrorCode; detail: string } | null {
  if (head === null) return { code: "XPX_ERR_STREAM_HEADER_INVALID", detail: "no stream element" };
  const colon = head.name.indexOf(":");
  const local = colon < 0 ? head.name : head.name.slice(colon + 1);
  const streamNs = colon < 0 ? head.attrs.get("xmlns") : head.attrs.get(`xmlns:${head.name.slice(0, colon)}`);
  if (local !== "stream" || streamNs !== NS_STREAMS) return { code: "XPX_ERR_STREAM_HEADER_INVALID", detail: `<${head.name}> in namespace ${streamNs ?? "(none)"}` };
  if (head.duplicate !== null) return { code: "XPX_ERR_XML_DUPLICATE_ATTRIBUTE", detail: head.duplicate };
  const content = colon < 0 ? undefined : head.attrs.get("xmlns");
  if (content !== contentNs) return { code: "XPX_ERR_STREAM_HEADER_INVALID", detail: `content namespace ${content ?? "(none)"}, expected ${contentNs}` };
  const scope = NsScope.EMPTY.enter(head);
  const bad = scope instanceof NamespaceProblem ? scope : checkAttributes(head, scope);
  if (bad !== null) return { code: "XPX_ERR_XML_NAMESPACE", detail: bad.detail };
  const version = head.attrs.get("version");
  if (version !== undefined && !/^1\.[0-9]+$/.test(version)) return { code: "XPX_ERR_STREAM_VERSION", detail: version };
  return null;
}


/**
 * The XML declaration before the stream element, if any: like the server,
 * refuse a version other than 1.0 or an encoding other than UTF-8 (RFC 6120
 * §11.6: restricted XML). `elementStart` is where the stream element begins.
 */
export function checkXmlDeclaration(data: Buffer, start: number, elementStart: number): { code: ErrorCode; detail: string } | null {
  const lt = data.indexOf("<?xml", start, "latin1");
  if (lt < 0 || lt >= elementStart) return null;
  const decl = data.toString("utf8", lt, elementStart);
  const version = /\sversion\s*=\s*(["'])(.*?)\1/.exec(decl)?.[2];
  const encoding = /\sencoding\s*=\s*(["'])(.*?)\1/.exec(decl)?.[2];
  if (version !== undefined && version !== "1.0") return { code: "XPX_ERR_XML_RESTRICTED", detail: `XML version ${version}` };
  if (encoding !== undefined && encoding.toLowerCase() !== "utf-8") return { code: "XPX_ERR_XML_RESTRICTED", detail: `encoding ${encoding}` };
  return null;
}
