// Docs that must not drift: the src/ map in docs/ARCHITECTURE.md names every
// source file and nothing that no longer exists, and its "Files over 500
// lines" table names exactly the source files that are that long.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts")) out.push(relative(join(root, "src"), p));
  }
  return out.sort();
}

test("docs/ARCHITECTURE.md maps exactly the files in src/", () => {
  const doc = readFileSync(join(root, "docs/ARCHITECTURE.md"), "utf8");
  const mapped = [...doc.matchAll(/^\| `([a-z0-9/-]+\.ts)` \|/gm)].map((m) => m[1]!).sort();
  assert.deepEqual(mapped, sources(join(root, "src")));
});

test("docs/ARCHITECTURE.md says why each source file over 500 lines is that long", () => {
  const doc = readFileSync(join(root, "docs/ARCHITECTURE.md"), "utf8");
  const section = doc.slice(doc.indexOf("## Files over 500 lines"), doc.indexOf("\n## ", doc.indexOf("## Files over 500 lines") + 3));
  const listed = [...section.matchAll(/^\| ([a-z0-9/.-]+\.ts) \(~\d+\) \|/gm)].map((m) => m[1]!).sort();
  const lines = (p: string): number => readFileSync(p, "utf8").split("\n").length - 1;
  const long = [
    ...sources(join(root, "src")).filter((f) => lines(join(root, "src", f)) > 500),
    ...readdirSync(join(root, "asm")).filter((f) => f.endsWith(".ts") && lines(join(root, "asm", f)) > 500).map((f) => `asm/${f}`),
  ].sort();
  assert.deepEqual(listed, long);
});
