// XEP-0157 contact addresses (mod_server_contact_info; docs/registration.md, "Contact addresses (XEP-0157)"): the one
// place the proxy rewrites bytes. In the server's disco#info result about its
// own domain, on its way to a c2s client, add a XEP-0128 `jabber:x:data` form
// with FORM_TYPE http://jabber.org/network/serverinfo holding the configured
// fields, or fill in the fields missing or empty in the server's own form.
// Every other byte is kept: new markup is spliced in before `</query>` (or
// `</x>`), nothing is re-serialised. The server's caps hash (XEP-0115 `ver`)
// no longer matches the rewritten result; see docs/registration.md.
// contactInfoStage(), at the end, is the pipeline stage that does it.
import { escapeXml } from "../xml/stream-error.js";
import type { Flow, PolicyStage, SessionInfo, Verdict } from "../policy/pipeline.js";
import type { ParseResult } from "../shaping/units.js";
import type { StanzaView } from "../xml/stanza-view.js";
import { INVALID, firstIssue, issue, nullable, obj, optional, transform, validate, type Field, type Spec } from "../util/validate.js";
import { NS_DATA_FORMS } from "./register-query.js";
import { childIndexes, closingIndex, localPart, scanTags, textBetween, type Tag } from "./xml-scan.js";

export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const FORM_TYPE_SERVERINFO = "http://jabber.org/network/serverinfo";

/** XEP-0157 fields, in the order Prosody 0.12 emits them (also 13.0's sorted order). */
export const CONTACT_FIELDS = ["abuse", "admin", "feedback", "sales", "security", "status", "support"] as const;
export type ContactField = (typeof CONTACT_FIELDS)[number];

/** `contact_info:` as configured: field → URIs (mailto:, xmpp:, https:...), in order. */
export type ContactInfo = Readonly<Partial<Record<ContactField, readonly string[]>>>;

const URI = /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/;

const CONTACT_EXAMPLE = 'expected e.g. { abuse: ["mailto:abuse@example.org", "xmpp:abuse@example.org"] }';

/** One field's URIs (a single string is a list of one); each bad one reported at its index. */
const URIS: Spec<readonly string[]> = {
  expected: "a list of URIs",
  check(value, path, issues) {
    const list: unknown = typeof value === "string" ? [value] : value;
    if (!Array.isArray(list)) return issue(issues, path, "must be a list of URIs");
    let ok = true;
    list.forEach((uri: unknown, i) => {
      if (typeof uri === "string" && URI.test(uri)) return;
      ok = false;
      issue(issues, [...path, i], 'must be a URI such as "mailto:abuse@example.org", "xmpp:abuse@example.org" or "https://…"');
    });
    return ok ? Object.freeze([...(list as string[])]) : INVALID;
  },
};

const CONTACT_FIELDS_SPEC = obj(
  Object.fromEntries(CONTACT_FIELDS.map((f) => [f, optional(nullable(URIS), null)])) as Record<ContactField, Field<readonly string[] | null>>,
  { unknown: (key) => `unknown field "${key}" (XEP-0157 fields: ${CONTACT_FIELDS.join(", ")})`, notMapping: () => CONTACT_EXAMPLE },
);

/** The `contact_info:` section: XEP-0157 field → URIs. Every bad field and URI is reported. */
export const CONTACT_INFO_SPEC: Spec<ContactInfo> = transform(CONTACT_FIELDS_SPEC, (fields) => {
  const out: Partial<Record<ContactField, readonly string[]>> = {};
  for (const f of CONTACT_FIELDS) if (fields[f] !== null) out[f] = fields[f];
  return Object.freeze(out);
});

/** CONTACT_INFO_SPEC's verdict as its first problem; absent or null means no form is added. */
export function parseContactInfo(raw: unknown): ParseResult<ContactInfo> {
  if (raw === undefined || raw === null) return { ok: true, value: Object.freeze({}), notes: [] };
  return firstIssue(validate(CONTACT_INFO_SPEC, raw));
}

function configured(info: ContactInfo): ContactField[] {
  return CONTACT_FIELDS.filter((f) => (info[f]?.length ?? 0) > 0);
}

function values(uris: readonly string[]): string {
  return uris.map((u) => `<value>${escapeXml(u)}</value>`).join("");
}

function fieldXml(field: ContactField, uris: readonly string[]): string {
  return `<field type='list-multi' var='${field}-addresses'>${values(uris)}</field>`;
}

/** The whole form for `info` (configured fields only, as Prosody 13 emits them). */
export function contactInfoForm(info: ContactInfo): string {
  return (
    `<x xmlns='${NS_DATA_FORMS}' type='result'>` +
    `<field type='hidden' var='FORM_TYPE'><value>${FORM_TYPE_SERVERINFO}</value></field>` +
    configured(info).map((f) => fieldXml(f, info[f]!)).join("") +
    `</x>`
  );
}

interface Edit {
  readonly at: number;
  /** Bytes removed at `at`. */
  readonly remove: number;
  readonly insert: string;
}

function applyEdits(buf: Buffer, edits: Edit[]): Buffer {
  edits.sort((a, b) => a.at - b.at);
  const parts: Buffer[] = [];
  let pos = 0;
  for (const e of edits) {
    parts.push(buf.subarray(pos, e.at), Buffer.from(e.insert, "utf8"));
    pos = e.at + e.remove;
  }
  parts.push(buf.subarray(pos));
  return Buffer.concat(parts);
}

/** Text of the first `<value>` child of the field at `fieldIndex`, or null. */
function firstValue(buf: Buffer, tags: readonly Tag[], fieldIndex: number): string | null {
  for (const k of childIndexes(tags, fieldIndex)) {
    const t = tags[k]!;
    if (localPart(t.name) !== "value") continue;
    if (t.kind === "empty") return "";
    return textBetween(buf, t.end, tags[closingIndex(tags, k)]!.start);
  }
  return null;
}

/** The query's serverinfo form: index of its `<x>` start tag, or -1. */
function findServerInfoForm(buf: Buffer, tags: readonly Tag[], queryIndex: number): number {
  for (const k of childIndexes(tags, queryIndex)) {
    const t = tags[k]!;
    if (localPart(t.name) !== "x") continue;
    const colon = t.name.indexOf(":");
    const ns = t.attrs.get(colon < 0 ? "xmlns" : `xmlns:${t.name.slice(0, colon)}`);
    if (ns !== NS_DATA_FORMS) continue;
    for (const f of childIndexes(tags, k)) {
      const field = tags[f]!;
      if (localPart(field.name) === "field" && field.attrs.get("var") === "FORM_TYPE" && firstValue(buf, tags, f) === FORM_TYPE_SERVERINFO) return k;
    }
  }
  return -1;
}

/** Edits that fill the fields of the server's own form that it left missing or empty. */
function mergeEdits(buf: Buffer, tags: readonly Tag[], formIndex: number, info: ContactInfo): Edit[] | null {
  const form = tags[formIndex]!;
  if (form.kind === "empty") return null; // not a valid XEP-0128 form (no FORM_TYPE); leave it
  const fields = new Map<string, number>();
  for (const k of childIndexes(tags, formIndex)) {
    const t = tags[k]!;
    const v = t.attrs.get("var");
    if (localPart(t.name) === "field" && v !== undefined && !fields.has(v)) fields.set(v, k);
  }
  const edits: Edit[] = [];
  let appended = "";
  for (const f of configured(info)) {
    const k = fields.get(`${f}-addresses`);
    if (k === undefined) {
      appended += fieldXml(f, info[f]!);
      continue;
    }
    if (firstValue(buf, tags, k) !== null) continue; // the server's own addresses win
    const t = tags[k]!;
    if (t.kind === "empty") {
      // `<field type='list-multi' var='abuse-addresses'/>` → same start tag, now with values.
      const open = buf.toString("utf8", t.start, t.end - 2).replace(/\s+$/, "");
      edits.push({ at: t.start, remove: t.end - t.start, insert: `${open}>${values(info[f]!)}</${t.name}>` });
    } else {
      edits.push({ at: tags[closingIndex(tags, k)]!.start, remove: 0, insert: values(info[f]!) });
    }
  }
  if (appended !== "") edits.push({ at: tags[closingIndex(tags, formIndex)]!.start, remove: 0, insert: appended });
  return edits;
}

/** True when `node` is absent or an entity-caps node (`<uri>#<ver>`): the queries Prosody adds the form to (docs/registration.md, "Contact addresses (XEP-0157)"). */
function hostNode(node: string | undefined): boolean {
  return node === undefined || node.includes("#");
}

/**
 * For the server's disco#info result about its own domain (outbound, c2s),
 * the stanza's bytes with the contact form added or merged; null when the
 * stanza is not such a result, nothing is configured, or nothing changes.
 */
export function injectContactInfo(stanza: StanzaView, session: SessionInfo, info: ContactInfo): Buffer | null {
  if (session.type !== "c2s" || stanza.kind !== "iq" || stanza.type !== "result") return null;
  if (stanza.firstChildXmlns !== NS_DISCO_INFO || stanza.firstChildName === undefined || localPart(stanza.firstChildName) !== "query") return null;
  const from = stanza.attr("from");
  const domain = session.domain;
  if (from === undefined || domain === undefined || from.toLowerCase() !== domain.toLowerCase()) return null;
  if (configured(info).length === 0) return null;
  const tags = scanTags(stanza.bytes);
  if (tags === null || tags.length === 0) return null;
  const queryIndex = childIndexes(tags, 0).find((k) => localPart(tags[k]!.name) === "query");
  if (queryIndex === undefined) return null;
  const query = tags[queryIndex]!;
  if (!hostNode(query.attrs.get("node"))) return null;

  if (query.kind === "empty") {
    const open = stanza.bytes.toString("utf8", query.start, query.end - 2).replace(/\s+$/, "");
    return applyEdits(stanza.bytes, [{ at: query.start, remove: query.end - query.start, insert: `${open}>${contactInfoForm(info)}</${query.name}>` }]);
  }
  const formIndex = findServerInfoForm(stanza.bytes, tags, queryIndex);
  const edits =
    formIndex < 0 ? [{ at: tags[closingIndex(tags, queryIndex)]!.start, remove: 0, insert: contactInfoForm(info) }] : mergeEdits(stanza.bytes, tags, formIndex, info);
  if (edits === null || edits.length === 0) return null;
  return applyEdits(stanza.bytes, edits);
}

/** The pipeline stage: the server's disco#info about itself gets the configured addresses. */
export function contactInfoStage(info: ContactInfo): PolicyStage {
  return {
    name: "contact_info",
    // The server's disco#info results, toward the client.
    only: { flow: "outbound", kinds: ["iq"] },
    judge(stanza: StanzaView, session: SessionInfo, flow: Flow): Verdict | undefined {
      if (flow !== "outbound") return undefined;
      const bytes = injectContactInfo(stanza, session, info);
      return bytes === null ? undefined : { action: "rewrite", bytes, reason: "XEP-0157 contact addresses" };
    },
  };
}
