// Docs that must not drift: the src/ map in docs/ARCHITECTURE.md names every
// source file and nothing that no longer exists.
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
