// The dependency rule of docs/ARCHITECTURE.md ("Layers"), enforced: every
// relative import in src/ (tests excluded) points to a file in the same layer
// or a lower one, and the runtime imports (not `import type`) form no circle.
//
// A file's layer is the first entry of LAYERS whose prefix matches its path
// under src/, so a single file can sit lower than its folder if it needs to.
// Type-only imports are held to the layer rule but not to the circle rule:
// TypeScript erases them, so they cannot make a module see another half
// initialised, and a callback's type may name the module that calls it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "src");

/** Lowest first; the names are the ones docs/ARCHITECTURE.md uses. */
const LAYERS: ReadonlyArray<{ name: string; prefixes: readonly string[] }> = [
  { name: "foundations", prefixes: ["errors.ts", "log.ts", "util/", "xmpp/"] },
  { name: "xml", prefixes: ["xml/"] },
  { name: "stream", prefixes: ["stream/", "shaping/", "metrics/"] },
  { name: "policy", prefixes: ["policy/"] },
  { name: "engines", prefixes: ["firewall/", "state/"] },
  { name: "features", prefixes: ["muc/", "registration/", "knowledge/"] },
  { name: "config", prefixes: ["config/"] },
  { name: "io", prefixes: ["net/", "admin/"] },
  { name: "composition", prefixes: ["wiring.ts", "prepare.ts", "app.ts", "cluster.ts", "cli.ts", "commands/"] },
];

function layerOf(file: string): number {
  const i = LAYERS.findIndex((l) => l.prefixes.some((p) => (p.endsWith("/") ? file.startsWith(p) : file === p)));
  assert.notEqual(i, -1, `${file} is in no layer: place it in LAYERS (test/layers.test.ts) and in docs/ARCHITECTURE.md`);
  return i;
}

interface Edge { from: string; to: string; typeOnly: boolean; line: number }

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith(".ts") && !p.endsWith(".test.ts") && !p.endsWith(".d.ts")) out.push(path.relative(SRC, p).split(path.sep).join("/"));
  }
  return out;
}

const IMPORT = /^[ \t]*(?:import|export)[ \t]+(type[ \t]+)?([^;]*?)[ \t]*from[ \t]*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm;

/** `import { type A, type B } from` is type-only too. */
function onlyTypes(clause: string): boolean {
  const c = clause.trim();
  if (!c.startsWith("{") || !c.endsWith("}")) return false;
  const names = c.slice(1, -1).split(",").map((s) => s.trim()).filter(Boolean);
  return names.length > 0 && names.every((s) => s.startsWith("type "));
}

function edgesOf(files: readonly string[]): Edge[] {
  const edges: Edge[] = [];
  for (const from of files) {
    const text = readFileSync(path.join(SRC, from), "utf8");
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[3] ?? m[4] ?? "";
      if (!spec.startsWith(".")) continue;
      const to = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec)).replace(/\.js$/, ".ts");
      const line = text.slice(0, m.index).split("\n").length;
      edges.push({ from, to, typeOnly: m[3] !== undefined && (!!m[1] || onlyTypes(m[2] ?? "")), line });
    }
  }
  return edges;
}

const files = sources(SRC).sort();
const edges = edgesOf(files);

test("every source file sits in a layer", () => {
  for (const f of files) layerOf(f);
});

test("imports resolve to source files", () => {
  const known = new Set(files);
  const missing = edges.filter((e) => !known.has(e.to)).map((e) => `src/${e.from}:${e.line}: ${e.to}`);
  assert.deepEqual(missing, []);
});

test("imports point to the same layer or a lower one", () => {
  const up = edges
    .filter((e) => layerOf(e.to) > layerOf(e.from))
    .map((e) => `src/${e.from}:${e.line} (${LAYERS[layerOf(e.from)]?.name}) imports ${e.typeOnly ? "types of " : ""}src/${e.to} (${LAYERS[layerOf(e.to)]?.name})`);
  assert.deepEqual(up, []);
});

test("runtime imports form no circle", () => {
  const next = new Map<string, string[]>();
  for (const e of edges) if (!e.typeOnly) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const state = new Map<string, "open" | "done">();
  const circles: string[] = [];
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, "open");
    stack.push(f);
    for (const t of next.get(f) ?? []) {
      if (state.get(t) === "open") circles.push([...stack.slice(stack.indexOf(t)), t].join(" -> "));
      else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(f, "done");
  };
  for (const f of files) if (!state.has(f)) visit(f);
  assert.deepEqual(circles, []);
});

test("the layers named here are the ones docs/ARCHITECTURE.md states", () => {
  const doc = readFileSync(path.join(SRC, "..", "docs", "ARCHITECTURE.md"), "utf8");
  const section = doc.split(/^## /m).find((s) => s.startsWith("Layers"));
  assert.ok(section, "docs/ARCHITECTURE.md has a '## Layers' section");
  const named = [...section.matchAll(/\*\*([a-z]+)\*\*/g)].map((m) => m[1]);
  assert.deepEqual(named, LAYERS.map((l) => l.name));
});
