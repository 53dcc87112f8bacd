// The XMPP stringprep profiles (RFC 3920 appendices A and B, on RFC 3454) as
// Prosody's util.encodings applies them: nodeprep for the localpart, nameprep
// for the domain, resourceprep for the resource. The one implementation for
// the whole proxy: JIDs (xmpp/jid.ts prepJid) and usernames (registration) go
// through the same functions, so "Straße" is "strasse" everywhere, as in
// Prosody. docs/registration.md, "Names: nodeprep and skeletons", lists what
// is approximated.
//
// The server's own stringprep stays authoritative: these must never refuse a
// string the server would accept, so the prohibited sets are subsets of the
// real ones (the bidi rules and Unicode 3.2's unassigned code points are left
// to the server), and case folding and NFKC use today's Unicode tables.

/** Prosody's stringprep works in a 1024-byte buffer, NUL included: 1024 bytes or more fail (docs/registration.md, "Names: nodeprep and skeletons"). */
export const MAX_PREP_BYTES = 1023;

// RFC 3454 table B.1: commonly mapped to nothing (all three profiles).
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu;

// Prohibited in all three profiles: C.1.2 (non-ASCII spaces), C.2.2
// (non-ASCII controls), C.3 (private use), C.4 (non-characters), C.5
// (surrogates), C.6, C.7, C.8, C.9.
const PROHIBITED_COMMON = [
  "[\\u00A0\\u1680\\u2000-\\u200B\\u202F\\u205F\\u3000\\u0080-\\u009F\\u2028\\u2029\\p{Co}\\p{Cs}]",
  "[\\u06DD\\u070F\\u180E\\u200C\\u200D\\u2060-\\u2063\\u206A-\\u206F\\uFFF9-\\uFFFD\\u{1D173}-\\u{1D17A}]",
  "[\\uFDD0-\\uFDEF\\uFFFE\\uFFFF\\u{1FFFE}\\u{1FFFF}\\u{2FFFE}\\u{2FFFF}\\u{10FFFE}\\u{10FFFF}]",
  "[\\u2FF0-\\u2FFB\\u0340\\u0341\\u200E\\u200F\\u202A-\\u202E\\u{E0001}\\u{E0020}-\\u{E007F}]",
];
// Nodeprep adds C.1.1 (ASCII space), C.2.1 (ASCII controls) and the eight
// ASCII characters " & ' / : < > @; resourceprep adds only C.2.1 (a space is
// fine in a resource); nameprep adds nothing.
const NODE_PROHIBITED = new RegExp([...PROHIBITED_COMMON, "[\\x00-\\x20\\x7F\"&'/:<>@]"].join("|"), "u");
const RESOURCE_PROHIBITED = new RegExp([...PROHIBITED_COMMON, "[\\x00-\\x1F\\x7F]"].join("|"), "u");
const NAME_PROHIBITED = new RegExp(PROHIBITED_COMMON.join("|"), "u");

/** ASCII: no B.1 mapping, NFKC changes nothing, and case folding is lower-casing. */
const ASCII = /^[\x00-\x7f]*$/;

/**
 * Case folding as in table B.2, per code point: the full folding, found as
 * the lower case of the upper case (ß → SS → ss, ς → Σ → σ, ﬁ → FI → fi,
 * K (Kelvin) → k). Cherokee capitals had no lower case in Unicode 3.2 and
 * stay as they are.
 */
function caseFold(s: string): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) {
      out += c >= 0x41 && c <= 0x5a ? String.fromCharCode(c + 32) : ch;
    } else if (c >= 0x13a0 && c <= 0x13f5) {
      out += ch;
    } else {
      out += ch.toUpperCase().toLowerCase();
    }
  }
  return out;
}

function fits(s: string): boolean {
  // UTF-16 length bounds the UTF-8 length from both sides: ≤ 3 bytes per unit.
  return s.length * 3 <= MAX_PREP_BYTES || Buffer.byteLength(s, "utf8") <= MAX_PREP_BYTES;
}

/** B.1, then B.2 and NFKC: B.2 is case folding closed under NFKC, so fold, normalise, fold again and normalise (ℌ → H → h). */
function foldMap(s: string): string {
  return caseFold(caseFold(s.replace(MAPPED_TO_NOTHING, "")).normalize("NFKC")).normalize("NFKC");
}

function prep(s: string, fold: boolean, prohibited: RegExp): string | null {
  if (!fits(s)) return null;
  let mapped: string;
  if (ASCII.test(s)) {
    mapped = fold ? s.toLowerCase() : s;
  } else {
    mapped = fold ? foldMap(s) : s.replace(MAPPED_TO_NOTHING, "").normalize("NFKC");
    if (!fits(mapped)) return null;
  }
  return prohibited.test(mapped) ? null : mapped;
}

/**
 * Nodeprep `node`, or null when it fails: over MAX_PREP_BYTES before or after
 * mapping, or a prohibited character after it. Also null for the empty
 * string: Prosody's raw stringprep call returns "" there, but every Prosody
 * caller refuses an empty localpart (jid.prep, mod_register_ibr).
 */
export function nodeprep(node: string): string | null {
  const out = prep(node, true, NODE_PROHIBITED);
  return out === "" ? null : out;
}

/** Nameprep `domain` (one JID domainpart, without the trailing-dot rule), or null when it fails. */
export function nameprep(domain: string): string | null {
  return prep(domain, true, NAME_PROHIBITED);
}

/** Resourceprep `resource` (no case folding), or null when it fails. */
export function resourceprep(resource: string): string | null {
  if (PRINTABLE_ASCII.test(resource)) return fits(resource) ? resource : null;
  return prep(resource, false, RESOURCE_PROHIBITED);
}

/** Resourceprep changes no printable ASCII, upper case and space included. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
