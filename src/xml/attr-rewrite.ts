// Rewriting one attribute of an element's start tag in its original text,
// for the few places the proxy must change a value (XEP-0198 counts,
// docs/stream-view.md). The text was already read by the framer, so it is
// well-formed: attribute values are quoted and hold no raw quote of their kind.

const WS = new Set([" ", "\t", "\r", "\n"]);

/**
 * `text` with the value of the start tag's attribute `name` (exactly that
 * name: `h` is not `sm:h`) replaced by `value` (escaped here), everything else
 * byte for byte as it was. null when the start tag has no such attribute.
 */
export function replaceAttribute(text: string, name: string, value: string): string | null {
  let i = text.indexOf("<");
  if (i < 0) return null;
  i += 1;
  while (i < text.length && !WS.has(text[i]!) && text[i] !== "/" && text[i] !== ">") i += 1;
  for (;;) {
    while (i < text.length && WS.has(text[i]!)) i += 1;
    if (i >= text.length || text[i] === "/" || text[i] === ">") return null;
    const nameStart = i;
    while (i < text.length && text[i] !== "=" && !WS.has(text[i]!)) i += 1;
    const attr = text.slice(nameStart, i);
    while (i < text.length && WS.has(text[i]!)) i += 1;
    if (text[i] !== "=") return null;
    i += 1;
    while (i < text.length && WS.has(text[i]!)) i += 1;
    const quote = text[i];
    if (quote !== "'" && quote !== '"') return null;
    const valueStart = i + 1;
    const valueEnd = text.indexOf(quote, valueStart);
    if (valueEnd < 0) return null;
    if (attr === name) return text.slice(0, valueStart) + escapeAttr(value, quote) + text.slice(valueEnd);
    i = valueEnd + 1;
  }
}

function escapeAttr(value: string, quote: string): string {
  const escaped = value.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  return quote === "'" ? escaped.replace(/'/g, "&apos;") : escaped.replace(/"/g, "&quot;");
}
