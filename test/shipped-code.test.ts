// What `npm run build` ships is the code the program runs: every file that
// tsconfig.json compiles (src/**/*.ts but the *.test.ts files) must be reached
// by imports from the package's entry points, dist/cli.js (bin) and
// dist/app.js (main). A file that only tests import (a fake clock, a stanza
// double, an in-memory store) belongs in test/helpers/, where the build does
// not look; a file nothing imports is dead code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const src = join(root, "src");

function built(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...built(p));
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

/** Relative module specifiers of static and dynamic imports and re-exports. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)["'](\.[^"']+)["']/gm)) {
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, ".ts")));
  }
  return out;
}

function entryPoints(): string[] {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { main: string; bin: Record<string, string> };
  return [pkg.main, ...Object.values(pkg.bin)].map((p) => join(src, relative("dist", p).replace(/\.js$/, ".ts")));
}

test("every file the build compiles is reached from the entry points (no test-only code in dist/)", () => {
  const entries = entryPoints();
  for (const e of entries) assert.ok(existsSync(e), `entry point ${relative(root, e)} exists`);
  const reached = new Set<string>();
  const queue = [...entries];
  while (queue.length > 0) {
    const f = queue.pop()!;
    if (reached.has(f) || !existsSync(f)) continue;
    reached.add(f);
    queue.push(...importsOf(f));
  }
  const unreached = built(src)
    .filter((f) => !reached.has(f))
    .map((f) => relative(root, f))
    .sort();
  assert.deepEqual(unreached, [], "move test-only files to test/helpers/ and delete dead ones");
});

test("no src file imports from test/", () => {
  const offenders = built(src)
    .filter((f) => importsOf(f).some((i) => i.startsWith(join(root, "test"))))
    .map((f) => relative(root, f));
  assert.deepEqual(offenders, []);
});
