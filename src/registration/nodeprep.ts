// An approximation of the XMPP nodeprep profile of stringprep (RFC 3920
// Appendix A, RFC 3454), enough to normalise a requested username the way the
// server will before the proxy compares it with reserved names, skeletons and
// tombstones. The server's own nodeprep stays authoritative: this must never
// refuse a name the server would accept, so the prohibited set below is a
// subset of nodeprep's (bidi rules and Unicode 3.2 unassigned code points are
// left to the server).

/** Prosody's stringprep works in a 1024-byte buffer, NUL included: 1024 bytes or more fail (docs/registration.md, "Names: nodeprep and skeletons"). */
export const MAX_NODE_BYTES = 1023;

// RFC 3454 table B.1: commonly mapped to nothing.
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu;

// Nodeprep prohibitions (RFC 3920 A.5): C.1.1, C.1.2 (spaces), C.2.1, C.2.2
// (controls), C.3 (private use), C.4 (non-characters), C.5 (surrogates), C.6,
// C.7, C.8, C.9, and the eight ASCII characters " & ' / : < > @.
const PROHIBITED = new RegExp(
  [
    "[\\s\\p{Zs}\\p{Cc}\\p{Co}\\p{Cs}\"&'/:<>@]",
    "[\\u06DD\\u070F\\u180E\\u2028\\u2029\\u2061-\\u2063\\u206A-\\u206F\\uFFF9-\\uFFFD\\u{1D173}-\\u{1D17A}]",
    "[\\uFDD0-\\uFDEF\\uFFFE\\uFFFF\\u{1FFFE}\\u{1FFFF}\\u{2FFFE}\\u{2FFFF}\\u{10FFFE}\\u{10FFFF}]",
    "[\\u2FF0-\\u2FFB\\u0340\\u0341\\u200E\\u200F\\u202A-\\u202E\\u{E0001}\\u{E0020}-\\u{E007F}]",
  ].join("|"),
  "u",
);

/**
 * Case folding as in table B.2, per code point: lower-case, and the full
 * foldings (ß → ss, ŉ → ʼn, ligatures...) that lower-casing keeps as they are,
 * found through their multi-character upper case.
 */
function caseFold(s: string): string {
  let out = "";
  for (const ch of s) {
    const lower = ch.toLowerCase();
    if (lower === ch) {
      const upper = ch.toUpperCase();
      out += [...upper].length > 1 ? upper.toLowerCase() : lower;
    } else {
      out += lower;
    }
  }
  return out;
}

/**
 * Nodeprep `name`, or null when the server would refuse it as invalid: empty,
 * over MAX_NODE_BYTES, or containing a prohibited character after mapping.
 */
export function nodeprep(name: string): string | null {
  if (Buffer.byteLength(name, "utf8") > MAX_NODE_BYTES) return null;
  // B.2 is case folding closed under NFKC; fold, normalise, fold again gets the
  // same result for the characters NFKC turns into capitals (ℌ → H → h).
  const mapped = caseFold(caseFold(name.replace(MAPPED_TO_NOTHING, "")).normalize("NFKC")).normalize("NFKC");
  if (mapped.length === 0 || PROHIBITED.test(mapped)) return null;
  if (Buffer.byteLength(mapped, "utf8") > MAX_NODE_BYTES) return null;
  return mapped;
}
