// Every reference in the repository points inside it. Background notes that
// do not ship (research files, a design note, a tracker's issue numbers) must
// not be cited from code, tests, benchmarks, scripts, docs, rules, contrib or
// config: what the code relies on is written in docs/ and cited from there.
// A second check keeps those citations honest: `docs/NAME.md, "Heading"`
// must name a page that exists and a heading on it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const SELF = relative(root, fileURLToPath(import.meta.url)).split(sep).join("/");
const ROOTS = ["src", "test", "bench", "scripts", "docs", "rules", "contrib", "config", "README.md"];
const SKIP_DIRS = new Set(["node_modules", "dist", ".git", "results", ".build"]);

/** What points outside the repository, with what it is. */
const OUTSIDE: readonly (readonly [RegExp, string])[] = [
  [/\bresearch\b/i, "a research note"],
  [/\bdesign\.md\b/i, "the design note"],
  [/\b(?:prosody-modules|peers|aesthetics)\.md\b/i, "a research file"],
  [/\.\.\/shared\b|\/work\/shared\b|\bshared\/(?:research|design|harness|hooks)\b/i, "the shared background directory"],
  [/\bissues? #?\d+/i, "an issue number"],
  [/\bquirk \d/i, "a research note's numbered quirk"],
  [/\(§\s?\d/, "a section number with no document"],
];

/**
 * Genuine false positives: [file, text on the line]. Keep this short; fix the
 * reference instead whenever it really points outside.
 */
const ALLOWED: readonly (readonly [string, string])[] = [
  ["src/xml/framer-chars.ts", "XML 1.0 forbids (§2.2 Char)"],
];

function walk(rel: string, out: string[]): void {
  const abs = join(root, rel);
  let st;
  try {
    st = statSync(abs);
  } catch {
    return;
  }
  if (st.isDirectory()) {
    for (const name of readdirSync(abs).sort()) if (!SKIP_DIRS.has(name)) walk(`${rel}/${name}`, out);
  } else if (st.isFile()) {
    out.push(rel);
  }
}

function files(): string[] {
  const out: string[] = [];
  for (const r of ROOTS) walk(r, out);
  return out.filter((f) => f !== SELF);
}

function text(file: string): string | null {
  const buf = readFileSync(join(root, file));
  return buf.includes(0) ? null : buf.toString("utf8");
}

test("no file or reference points outside the repository", () => {
  const found: string[] = [];
  for (const file of files()) {
    for (const [re, what] of OUTSIDE) if (re.test(file)) found.push(`${file}: the file name cites ${what}`);
    const body = text(file);
    if (body === null) continue;
    const lines = body.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      for (const [re, what] of OUTSIDE) {
        if (!re.test(line)) continue;
        if (ALLOWED.some(([f, t]) => f === file && line.includes(t))) continue;
        found.push(`${file}:${i + 1}: cites ${what}: ${line.trim().slice(0, 120)}`);
      }
    }
  }
  assert.deepEqual(found, [], `references outside the repository (point to docs/ instead):\n${found.join("\n")}`);
});

test("the allowance list holds only lines that still exist", () => {
  for (const [file, t] of ALLOWED) {
    const body = text(file) ?? "";
    assert.ok(body.includes(t), `${file} no longer contains "${t}": remove it from ALLOWED`);
  }
});

/** Headings of a docs page, as written after the `#`s. */
function headings(page: string): Set<string> {
  const out = new Set<string>();
  let fenced = false;
  for (const line of page.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const m = !fenced && /^#{1,6} (.+?)\s*$/.exec(line);
    if (m) out.add(m[1]!);
  }
  return out;
}

/** A citation may shorten a heading to what precedes its " (…)" or ": …" tail. */
function names(h: Set<string>, cited: string): boolean {
  if (h.has(cited)) return true;
  for (const heading of h) if (heading.startsWith(`${cited} (`) || heading.startsWith(`${cited}: `)) return true;
  return false;
}

test('`docs/PAGE.md, "Heading"` citations name a page and a heading that exist', () => {
  const pages = new Map<string, Set<string> | null>();
  const bad: string[] = [];
  const cite = /docs\/([\w.-]+\.md)[,:]? \\?"([^"\\]+)\\?"/g;
  for (const file of files()) {
    const body = text(file);
    if (body === null) continue;
    const lines = body.split("\n");
    for (let i = 0; i < lines.length; i++) {
      for (const m of lines[i]!.matchAll(cite)) {
        const page = m[1]!;
        if (!pages.has(page)) {
          let h: Set<string> | null = null;
          try {
            h = headings(readFileSync(join(root, "docs", page), "utf8"));
          } catch {
            h = null;
          }
          pages.set(page, h);
        }
        const h = pages.get(page);
        if (h == null) bad.push(`${file}:${i + 1}: docs/${page} does not exist`);
        else if (!names(h, m[2]!)) bad.push(`${file}:${i + 1}: docs/${page} has no heading "${m[2]}"`);
      }
    }
  }
  assert.deepEqual(bad, [], bad.join("\n"));
});
