// Plain-text tables for the console and Markdown tables for docs; the same
// rows feed both so the docs can paste exactly what a run printed.

export interface Table {
  title: string;
  headers: string[];
  rows: string[][];
  notes?: string[];
}

/** Right-align columns whose cells look numeric. */
function numericColumns(t: Table): boolean[] {
  return t.headers.map((_, col) => t.rows.length > 0 && t.rows.every((r) => /^[-+]?[\d.,]+\s*(%|×|k|M)?$|^–$/.test(r[col] ?? "")));
}

/** A Markdown table (pipe syntax), readable as plain text too. */
export function renderTable(t: Table): string {
  const numeric = numericColumns(t);
  const widths = t.headers.map((h, col) => Math.max(h.length, ...t.rows.map((r) => (r[col] ?? "").length)));
  const line = (cells: string[]): string =>
    "| " + cells.map((c, col) => (numeric[col] ? c.padStart(widths[col]!) : c.padEnd(widths[col]!))).join(" | ") + " |";
  const rule = "|" + widths.map((w, col) => (numeric[col] ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2))).join("|") + "|";
  const out = [`### ${t.title}`, "", line(t.headers), rule, ...t.rows.map(line)];
  if (t.notes && t.notes.length > 0) out.push("", ...t.notes);
  return out.join("\n");
}

/** Thousands separators, fixed decimals. */
export function num(value: number, decimals = 0): string {
  if (!Number.isFinite(value)) return "–";
  return value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export function pct(ratio: number): string {
  return Number.isFinite(ratio) ? `${(ratio * 100).toFixed(0)} %` : "–";
}

/** A cost ratio such as "1.35 ×". */
export function times(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)} ×` : "–";
}
