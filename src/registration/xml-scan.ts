// A tag scanner over one framed element's bytes that reports byte offsets, so
// a caller can splice new markup into the original bytes without
// re-serialising anything (contact-info.ts). The framer has already checked
// well-formedness; this scanner is lenient and returns null on anything it
// does not understand, and the caller then leaves the bytes alone.

export interface Tag {
  readonly kind: "start" | "end" | "empty";
  /** Qualified name as written. */
  readonly name: string;
  /** Entity-decoded attribute values (empty for end tags). */
  readonly attrs: ReadonlyMap<string, string>;
  /** Byte offset of `<`. */
  readonly start: number;
  /** Byte offset just past `>`. */
  readonly end: number;
  /** Nesting depth: 0 for the root element. */
  readonly depth: number;
}

const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;
const EQ = 0x3d;
const BANG = 0x21;
const QMARK = 0x3f;

function isSpace(b: number | undefined): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

const NAMED: Readonly<Record<string, string>> = { lt: "<", gt: ">", amp: "&", apos: "'", quot: '"' };

/** Decode the five XML entities and character references. */
export function decodeEntities(s: string): string {
  if (!s.includes("&")) return s;
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith("#x")) return String.fromCodePoint(parseInt(ref.slice(2), 16));
    if (ref.startsWith("#")) return String.fromCodePoint(parseInt(ref.slice(1), 10));
    return NAMED[ref] ?? whole;
  });
}

/** Character data between `from` and `to`: entities decoded, CDATA sections unwrapped. */
export function textBetween(buf: Buffer, from: number, to: number): string {
  const raw = buf.toString("utf8", from, to);
  let out = "";
  let i = 0;
  for (;;) {
    const c = raw.indexOf("<![CDATA[", i);
    if (c < 0) return out + decodeEntities(raw.slice(i));
    out += decodeEntities(raw.slice(i, c));
    const e = raw.indexOf("]]>", c + 9);
    if (e < 0) return out + raw.slice(c + 9);
    out += raw.slice(c + 9, e);
    i = e + 3;
  }
}

function indexOfSeq(buf: Buffer, seq: string, from: number): number {
  return buf.indexOf(seq, from, "latin1");
}

/** Every tag of the element in document order, or null if the bytes do not scan. */
export function scanTags(buf: Buffer): Tag[] | null {
  const tags: Tag[] = [];
  let depth = 0;
  let i = 0;
  const n = buf.length;
  while (i < n) {
    if (buf[i] !== LT) {
      const next = buf.indexOf(LT, i);
      if (next < 0) break;
      i = next;
      continue;
    }
    const b1 = buf[i + 1];
    if (b1 === BANG) {
      // Comment or CDATA section: skip it whole.
      const cdata = indexOfSeq(buf, "<![CDATA[", i) === i;
      const close = cdata ? indexOfSeq(buf, "]]>", i + 9) : indexOfSeq(buf, "-->", i + 4);
      if (close < 0) return null;
      i = close + 3;
      continue;
    }
    if (b1 === QMARK) {
      const close = indexOfSeq(buf, "?>", i + 2);
      if (close < 0) return null;
      i = close + 2;
      continue;
    }
    if (b1 === SLASH) {
      const close = buf.indexOf(GT, i);
      if (close < 0) return null;
      depth--;
      if (depth < 0) return null;
      tags.push({ kind: "end", name: buf.toString("utf8", i + 2, close).trim(), attrs: new Map(), start: i, end: close + 1, depth });
      i = close + 1;
      continue;
    }
    // Start or empty-element tag.
    let j = i + 1;
    while (j < n && !isSpace(buf[j]) && buf[j] !== GT && buf[j] !== SLASH) j++;
    const name = buf.toString("utf8", i + 1, j);
    if (name === "") return null;
    const attrs = new Map<string, string>();
    for (;;) {
      while (isSpace(buf[j])) j++;
      if (j >= n) return null;
      if (buf[j] === GT) {
        tags.push({ kind: "start", name, attrs, start: i, end: j + 1, depth });
        depth++;
        i = j + 1;
        break;
      }
      if (buf[j] === SLASH) {
        if (buf[j + 1] !== GT) return null;
        tags.push({ kind: "empty", name, attrs, start: i, end: j + 2, depth });
        i = j + 2;
        break;
      }
      const nameStart = j;
      while (j < n && buf[j] !== EQ && !isSpace(buf[j])) j++;
      const attrName = buf.toString("utf8", nameStart, j);
      while (isSpace(buf[j])) j++;
      if (buf[j] !== EQ) return null;
      j++;
      while (isSpace(buf[j])) j++;
      const quote = buf[j];
      if (quote !== 0x27 && quote !== 0x22) return null;
      const valueEnd = buf.indexOf(quote, j + 1);
      if (valueEnd < 0) return null;
      attrs.set(attrName, decodeEntities(buf.toString("utf8", j + 1, valueEnd)));
      j = valueEnd + 1;
    }
  }
  return depth === 0 ? tags : null;
}

/** Local part of a qualified name. */
export function localPart(qname: string): string {
  const colon = qname.indexOf(":");
  return colon < 0 ? qname : qname.slice(colon + 1);
}

/** Index of the end tag closing the start tag at `startIndex` (its own index for an empty tag), or -1. */
export function closingIndex(tags: readonly Tag[], startIndex: number): number {
  const open = tags[startIndex]!;
  if (open.kind === "empty") return startIndex;
  for (let k = startIndex + 1; k < tags.length; k++) {
    const t = tags[k]!;
    if (t.kind === "end" && t.depth === open.depth) return k;
  }
  return -1;
}

/** Indexes of the direct children of the element whose start tag is at `parentIndex`. */
export function childIndexes(tags: readonly Tag[], parentIndex: number): number[] {
  const parent = tags[parentIndex]!;
  const out: number[] = [];
  if (parent.kind === "empty") return out;
  const close = closingIndex(tags, parentIndex);
  for (let k = parentIndex + 1; k < close; k++) {
    const t = tags[k]!;
    if (t.depth === parent.depth + 1 && t.kind !== "end") out.push(k);
  }
  return out;
}
