// Which build of xmpp-guard the benchmarks load:
//   dist   the compiled dist/, what production runs; used when up to date
//          (every src/**/*.ts, tests aside, has a dist/**/*.js at least as new);
//   build  otherwise: src/ compiled by tsc into bench/.build/ (gitignored) at
//          the start of the run, the same output `npm run build` would give;
//   src    the TypeScript sources through tsx, only on request. esbuild's
//          output is not the same code: it wraps every function created at
//          run time in a __name() call (keepNames), which costs real time on
//          the hot path, so figures from src/ understate the proxy;
//   <dir>  any other directory of compiled output (an absolute path), to
//          A/B a patched build against the current one without touching src/.

import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** "dist", "build", "src", or an absolute path to a directory of compiled output. */
export type GuardSource = string;

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BUILD_DIR = join(REPO_ROOT, "bench", ".build");

export interface GuardChoice {
  source: GuardSource;
  reason: string;
}

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") && !entry.name.endsWith(".d.ts")) yield path;
  }
}

/** The first source file whose compiled output in `outDir` is missing or older, or null. */
function staleFile(outDir: string): string | null {
  const src = join(REPO_ROOT, "src");
  for (const file of sourceFiles(src)) {
    const rel = relative(src, file);
    let outTime: number;
    try {
      outTime = statSync(join(outDir, rel.replace(/\.ts$/, ".js"))).mtimeMs;
    } catch {
      return `src/${rel} (no compiled output)`;
    }
    if (outTime < statSync(file).mtimeMs) return `src/${rel}`;
  }
  return null;
}

/**
 * tsc src/ → bench/.build/. Type errors do not stop the emit (other people's
 * work in progress must not block a benchmark), but a missing app.js does.
 */
function compile(): string {
  rmSync(BUILD_DIR, { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  let note = "";
  try {
    execFileSync(process.execPath, [tsc, "-p", join(REPO_ROOT, "tsconfig.json"), "--outDir", BUILD_DIR], { cwd: REPO_ROOT, stdio: "pipe" });
  } catch (err) {
    const out = String((err as { stdout?: Buffer }).stdout ?? "");
    const errors = out.split("\n").filter((l) => l.includes("error TS")).length;
    note = `; tsc reported ${errors} type error(s), output emitted anyway`;
  }
  if (!existsSync(join(BUILD_DIR, "app.js"))) throw new Error(`compiling src/ into bench/.build/ failed${note}`);
  return note;
}

/** The words --guard takes besides a directory. */
const GUARD_WORDS = new Set(["auto", "dist", "build", "src"]);

/**
 * `value` as a directory holding a build (its app.js), relative to where the
 * bench runs or absolute, or undefined (a relative one used to fall through
 * to a fresh build of src/, unsaid).
 */
function buildDir(value: string): string | undefined {
  const dir = resolve(value);
  return existsSync(join(dir, "app.js")) ? dir : undefined;
}

export function chooseGuardSource(wanted: "auto" | GuardSource): GuardChoice {
  if (!GUARD_WORDS.has(wanted)) {
    const dir = buildDir(wanted);
    if (dir === undefined) throw new Error(`--guard=${wanted}: no app.js in ${resolve(wanted)} (give auto, dist, build, src or a directory holding a build)`);
    return { source: dir, reason: "requested with --guard=<dir>" };
  }
  if (wanted === "src") return { source: "src", reason: "requested with --guard=src (tsx; slower than compiled output)" };
  const stale = staleFile(join(REPO_ROOT, "dist"));
  if (wanted === "dist") {
    return { source: "dist", reason: stale ? `requested with --guard=dist, although ${stale} is newer` : "requested with --guard=dist" };
  }
  if (wanted === "auto" && stale === null) return { source: "dist", reason: "dist/ is up to date with src/" };
  const note = compile();
  const why = wanted === "build" ? "requested with --guard=build" : `dist/ is stale (${stale} is newer)`;
  return { source: "build", reason: `${why}; compiled src/ with tsc into bench/.build/${note}` };
}

/** URL of one module of xmpp-guard, e.g. guardModule("dist", "app") → dist/app.js. */
export function guardModule(source: GuardSource, path: string): string {
  const dir = source === "dist" ? join(REPO_ROOT, "dist") : source === "build" ? BUILD_DIR : source;
  const file = source === "src" ? join(REPO_ROOT, "src", `${path}.ts`) : join(dir, `${path}.js`);
  return pathToFileURL(file).href;
}

export function guardSourceArg(value: string | undefined): GuardSource {
  if (value === "dist" || value === "build" || value === "src" || (value !== undefined && isAbsolute(value))) return value;
  const dir = value === undefined || GUARD_WORDS.has(value) ? undefined : buildDir(value);
  if (dir !== undefined) return dir;
  throw new Error(`expected dist, build, src or a directory holding a build, got ${value}`);
}

/** How to name a source in tables: where the code came from. */
export function guardLabel(source: GuardSource): string {
  return source === "dist" ? "dist/" : source === "build" ? "tsc build of src/" : source === "src" ? "src/ via tsx" : source;
}
