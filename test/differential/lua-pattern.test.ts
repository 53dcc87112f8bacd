// Differential test of the Lua pattern translator (src/firewall/lua-pattern.ts)
// against Lua itself: lua-pattern.lua runs string.find and string.gmatch in
// one Lua 5.4 process for the whole file, and every generated (pattern,
// subject) pair (lua-patterns.ts) must give the same answers here:
//
// - find mode (JID patterns, block_registrations_matching): find() gives the
//   same byte positions and captures as string.find, test() says whether
//   there is a match, and the backtracking matcher agrees too;
// - match mode (INSPECT ~=, block_registrations_require): match() gives the
//   same values as string.match, and test() agrees;
// - gmatch mode (%PATTERN in SCAN and COUNT): gmatchBytes() yields the same
//   values as a gmatch loop, count() counts them, tokens() keeps exactly the
//   string values that are whole UTF-8 text;
// - errors: whenever Lua raises an error for a pattern, the translator
//   refuses that pattern with the same message. The translator refuses some
//   patterns Lua only fails on when its matcher reaches the bad part; for the
//   generated malformed patterns Lua must then fail on the case's witness (a
//   subject that reaches it), and valid patterns are never refused.
//
// Mismatches are grouped by kind and the first of each group is shrunk by
// fast-check to a minimal pair. Without Lua 5.4 the file is skipped with a
// message, except under CI (CI set), where that is a failure. The
// interpreter is the one Prosody runs under (its launcher's #! line), else
// lua5.4 from PATH; PROSODY_LUA overrides both.
//
//   node scripts/run-tests.mjs lua-pattern
//   LUA_PATTERN_RUNS=100000 LUA_PATTERN_SEED=7 node scripts/run-tests.mjs differential/lua-pattern

import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { accessSync, constants } from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { compileLuaPattern, LuaPattern, LuaPatternError, type LuaFindResult, type LuaPatternMode } from "../../src/firewall/lua-pattern.js";
import { findProsodyLua } from "./oracle.js";
import { features, patternCase, type PatternCase } from "./lua-patterns.js";

const RUNS = Number(process.env.LUA_PATTERN_RUNS) || 12_000;
const SEED = Number(process.env.LUA_PATTERN_SEED) || 20_250_301;
/** Groups of mismatches that get a shrunk example each (LUA_PATTERN_SHRINK; the rest are shown as found). */
const MAX_SHRUNK = Number(process.env.LUA_PATTERN_SHRINK ?? 8);
const SCRIPT = fileURLToPath(new URL("./lua-pattern.lua", import.meta.url));

// ---------------------------------------------------------------------------
// Finding Lua 5.4

function inPath(bin: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    try {
      accessSync(path.join(dir, bin), constants.X_OK);
      return path.join(dir, bin);
    } catch {
      // not here
    }
  }
  return null;
}

/** The interpreter to use, or why there is none. */
function findLua(): { lua: string; via: string } | string {
  const prosody = findProsodyLua();
  const candidates: { lua: string; via: string }[] = [];
  if (typeof prosody !== "string") candidates.push({ lua: prosody.lua, via: prosody.via || "PROSODY_LUA" });
  const plain = inPath("lua5.4");
  if (plain !== null) candidates.push({ lua: plain, via: "PATH" });
  const tried: string[] = [];
  for (const c of candidates) {
    const probe = spawnSync(c.lua, [SCRIPT], { input: "version\n", encoding: "utf8", timeout: 10_000 });
    const version = probe.stdout?.trim();
    if (probe.status === 0 && version === "Lua 5.4") return c;
    tried.push(`${c.lua} (${c.via}): ${probe.status === 0 ? version : probe.stderr?.trim() || probe.error?.message || `status ${probe.status}`}`);
  }
  const prosodyNote = typeof prosody === "string" ? `; ${prosody}` : "";
  return tried.length > 0 ? `no Lua 5.4 among ${tried.join(", ")}` : `no Lua 5.4 interpreter (lua5.4 is not in PATH${prosodyNote})`;
}

const found = findLua();
const missing = typeof found === "string" ? found : null;
const skip = missing !== null && !process.env.CI ? `${missing}. The Lua pattern oracle needs lua5.4 (apt-get install lua5.4; CI installs it with Prosody)` : false;

// ---------------------------------------------------------------------------
// The oracle process

interface LuaAnswer {
  readonly find: string;
  readonly match: string;
  readonly gmatch: string;
  /** Whether string.find, string.match and a gmatch loop raise an error on the witness. */
  readonly witnessErrors: Readonly<Record<LuaPatternMode, boolean>>;
}

class Oracle {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #waiting: Array<{ resolve: (a: LuaAnswer) => void; reject: (e: Error) => void }> = [];
  #out = "";
  #err = "";
  #dead: Error | null = null;

  constructor(lua: string) {
    this.#child = spawn(lua, [SCRIPT], { stdio: ["pipe", "pipe", "pipe"] });
    this.#child.stdout.setEncoding("latin1");
    this.#child.stderr.setEncoding("utf8");
    this.#child.stdout.on("data", (s: string) => this.#onData(s));
    this.#child.stderr.on("data", (s: string) => (this.#err += s));
    this.#child.stdin.on("error", () => {});
    this.#child.on("error", (e) => this.#fail(e));
    this.#child.on("exit", (code, signal) => this.#fail(new Error(`the Lua oracle exited (${code ?? signal}): ${this.#err.trim() || "no stderr"}`)));
  }

  #onData(s: string): void {
    this.#out += s;
    let nl: number;
    while ((nl = this.#out.indexOf("\n")) >= 0) {
      const line = this.#out.slice(0, nl);
      this.#out = this.#out.slice(nl + 1);
      const w = this.#waiting.shift();
      if (w === undefined) return this.#fail(new Error(`unexpected oracle output: ${line.slice(0, 200)}`));
      const [find, match, gmatch, witness] = line.split("\t");
      if (find === undefined || match === undefined || gmatch === undefined || witness === undefined || witness.length !== 3) {
        w.reject(new Error(`unreadable oracle line: ${line.slice(0, 200)}`));
        continue;
      }
      w.resolve({ find, match, gmatch, witnessErrors: { find: witness[0] === "e", match: witness[1] === "e", gmatch: witness[2] === "e" } });
    }
  }

  #fail(e: Error): void {
    this.#dead ??= e;
    for (const w of this.#waiting.splice(0)) w.reject(this.#dead);
  }

  /** Ask about one case; many may be in flight (answers come in order). */
  ask(c: PatternCase): Promise<LuaAnswer> {
    if (this.#dead) return Promise.reject(this.#dead);
    const p = Buffer.from(c.pattern, "utf8");
    const s = Buffer.from(c.subject, "utf8");
    const w = Buffer.from(c.witness, "utf8");
    const promise = new Promise<LuaAnswer>((resolve, reject) => this.#waiting.push({ resolve, reject }));
    this.#child.stdin.write(Buffer.concat([Buffer.from(`${p.length} ${s.length} ${w.length}\n`), p, s, w]));
    return promise;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#child.removeAllListeners("exit");
      this.#child.once("exit", () => resolve());
      this.#child.stdin.end();
    });
  }
}

let oracle: Oracle | undefined;
function getOracle(): Oracle {
  if (missing !== null) throw new Error(`${missing}, and CI is set: the Lua pattern oracle must run in CI`);
  return (oracle ??= new Oracle((found as { lua: string }).lua));
}
after(async () => {
  await oracle?.close();
});

// ---------------------------------------------------------------------------
// Comparing

const hex = (bytes: string): string => Buffer.from(bytes, "latin1").toString("hex");
const value = (v: string | number): string => (typeof v === "number" ? `n${v}` : `s${hex(v)}`);

function encodeFind(r: LuaFindResult | null): string {
  return r === null ? "nil" : ["ok", r.start, r.end, ...r.captures.map(value)].join(" ");
}

function encodeMatch(values: readonly (string | number)[] | null): string {
  return values === null ? "nil" : ["ok", ...values.map(value)].join(" ");
}

function encodeGmatch(values: readonly (string | number)[]): string {
  return ["ok", values.length, ...values.map(value)].join(" ");
}

/** Lua's error message, without the "file:line: " a gmatch loop adds. */
function luaError(answer: string): string | null {
  if (!answer.startsWith("err ")) return null;
  return Buffer.from(answer.slice(4), "hex").toString("utf8").replace(/^[^:\n]*:\d+: /, "");
}

const STRICT = new TextDecoder("utf-8", { fatal: true });

/** The string values of a gmatch answer that are whole UTF-8 text: what tokens() must give. */
function luaTokens(answer: string): string[] {
  const out: string[] = [];
  for (const v of answer.split(" ").slice(2)) {
    if (!v.startsWith("s")) continue;
    try {
      out.push(STRICT.decode(Buffer.from(v.slice(1), "hex")));
    } catch {
      // not text: cannot be a list entry
    }
  }
  return out;
}

interface Finding {
  readonly category: string;
  readonly message: string;
}

function compile(pattern: string, mode: LuaPatternMode, engine: "auto" | "backtrack" = "auto"): LuaPattern | LuaPatternError {
  try {
    return compileLuaPattern(pattern, { mode, engine });
  } catch (e) {
    if (e instanceof LuaPatternError) return e;
    throw e;
  }
}

function judgeMode(c: PatternCase, lua: LuaAnswer, mode: LuaPatternMode): Finding | null {
  const answer = lua[mode];
  const refused = luaError(answer);
  const ours = compile(c.pattern, mode);
  if (ours instanceof LuaPatternError) {
    if (refused !== null) {
      return ours.message.startsWith(refused) ? null : { category: `${mode}: another error than Lua's`, message: `ours: ${ours.message}\nLua:  ${refused}` };
    }
    if (c.kind === "valid") return { category: `${mode}: refuses a valid pattern`, message: `ours: ${ours.message}; Lua accepts it` };
    if (c.kind === "fault" && !lua.witnessErrors[mode]) {
      return { category: `${mode}: refuses a malformed pattern Lua does not fail on (${c.fault})`, message: `ours: ${ours.message}; Lua ran it on the witness ${JSON.stringify(c.witness)} without error` };
    }
    return null;
  }
  if (refused !== null) return { category: `${mode}: accepts a pattern Lua fails on`, message: `Lua: ${refused}` };
  if (lua.witnessErrors[mode]) return { category: `${mode}: accepts a pattern Lua fails on`, message: `Lua fails on the witness ${JSON.stringify(c.witness)}` };
  const backtrack = compile(c.pattern, mode, "backtrack") as LuaPattern;
  if (mode === "match") {
    const mine = encodeMatch(ours.match(c.subject));
    if (mine !== answer) return { category: "match() differs", message: `ours: ${mine}\nLua:  ${answer}\n(RegExp ${ours.source})` };
    if (ours.test(c.subject) !== (answer !== "nil")) return { category: "match: test() differs", message: `test() is ${ours.test(c.subject)}, string.match gives ${answer}` };
    const bt = encodeMatch(backtrack.match(c.subject));
    if (bt !== answer) return { category: "backtracking matcher: match() differs", message: `ours: ${bt}\nLua:  ${answer}` };
    return null;
  }
  if (mode === "find") {
    const mine = encodeFind(ours.find(c.subject));
    if (mine !== answer) return { category: "find() differs", message: `ours: ${mine}\nLua:  ${answer}\n(RegExp ${ours.source})` };
    if (ours.test(c.subject) !== (answer !== "nil")) return { category: "test() differs", message: `test() is ${ours.test(c.subject)}, string.find gives ${answer}` };
    const bt = encodeFind(backtrack.find(c.subject));
    if (bt !== answer) return { category: "backtracking matcher: find() differs", message: `ours: ${bt}\nLua:  ${answer}` };
    return null;
  }
  const mine = encodeGmatch(ours.gmatchBytes(c.subject));
  if (mine !== answer) return { category: "gmatchBytes() differs", message: `ours: ${mine}\nLua:  ${answer}\n(RegExp ${ours.source})` };
  const count = Number(answer.split(" ")[1]);
  if (ours.count(c.subject) !== count) return { category: "count() differs", message: `count() is ${ours.count(c.subject)}, Lua's gmatch takes ${count} steps` };
  const tokens = ours.tokens(c.subject);
  const want = luaTokens(answer);
  if (JSON.stringify(tokens) !== JSON.stringify(want)) return { category: "tokens() differs", message: `ours: ${JSON.stringify(tokens)}\nLua:  ${JSON.stringify(want)}` };
  const bt = encodeGmatch(backtrack.gmatchBytes(c.subject));
  if (bt !== answer) return { category: "backtracking matcher: gmatch differs", message: `ours: ${bt}\nLua:  ${answer}` };
  return null;
}

function judge(c: PatternCase, lua: LuaAnswer): Finding | null {
  try {
    return judgeMode(c, lua, "find") ?? judgeMode(c, lua, "match") ?? judgeMode(c, lua, "gmatch");
  } catch (e) {
    const what = e instanceof Error ? e.message : String(e);
    return { category: `throws: ${what.slice(0, 80)}`, message: e instanceof Error ? (e.stack ?? what) : what };
  }
}

async function check(o: Oracle, c: PatternCase): Promise<Finding | null> {
  return judge(c, await o.ask(c));
}

const show = (c: PatternCase): string => `pattern ${JSON.stringify(c.pattern)} subject ${JSON.stringify(c.subject)} (${c.kind}${c.fault ? ` ${c.fault}` : ""})`;

// ---------------------------------------------------------------------------

let generated: Promise<{ cases: PatternCase[]; answers: LuaAnswer[]; findings: (Finding | null)[]; ms: Record<string, number> }> | undefined;

function runGenerated(): NonNullable<typeof generated> {
  generated ??= (async () => {
    const o = getOracle();
    const t0 = performance.now();
    const cases = fc.sample(patternCase, { seed: SEED, numRuns: RUNS });
    const t1 = performance.now();
    const answers = await Promise.all(cases.map((c) => o.ask(c)));
    const t2 = performance.now();
    const findings = cases.map((c, k) => judge(c, answers[k]!));
    const t3 = performance.now();
    return { cases, answers, findings, ms: { generate: t1 - t0, oracle: t2 - t1, compare: t3 - t2 } };
  })();
  return generated;
}

test(`generated: ${RUNS} (pattern, subject) pairs cover the pattern language`, { skip }, async (t) => {
  const { cases, answers, ms } = await runGenerated();
  t.diagnostic(`seed ${SEED}; generate ${ms.generate!.toFixed(0)} ms, Lua ${ms.oracle!.toFixed(0)} ms, compare ${ms.compare!.toFixed(0)} ms`);
  const counts = new Map<string, number>();
  for (const c of cases) for (const f of features(c)) counts.set(f, (counts.get(f) ?? 0) + 1);
  const found = answers.filter((a) => a.find.startsWith("ok")).length;
  const errors = answers.filter((a) => a.find.startsWith("err")).length;
  const many = answers.filter((a) => a.gmatch.startsWith("ok") && Number(a.gmatch.split(" ")[1]) > 1).length;
  t.diagnostic(`string.find: ${found} matches, ${errors} errors, ${RUNS - found - errors} no match; gmatch with 2+ values: ${many}`);
  t.diagnostic(`features: ${[...counts].map(([k, v]) => `${k} ${v}`).join("; ")}`);
  // The generator does its job: matches are common, and every feature shows up.
  assert.ok(found >= RUNS * 0.4, `only ${found} of ${RUNS} pairs match`);
  assert.ok(many >= RUNS * 0.1, `only ${many} of ${RUNS} pairs give several gmatch values`);
  const wanted = [
    "valid", "fault", "junk", "^ first", "$ last", "%f", "%b", "back-reference", "position capture", "capture", "%z", "negated set",
    "set with leading ]", "lazy -", "non-ASCII pattern", "non-ASCII subject", "empty subject", "quantifier *", "quantifier +", "quantifier ?",
  ];
  for (const f of wanted) assert.ok((counts.get(f) ?? 0) >= RUNS / 200, `feature "${f}" in only ${counts.get(f) ?? 0} pairs`);
  for (const f of ["set-unclosed", "percent-at-end", "frontier-without-set", "frontier-set-unclosed", "balance-short", "close-unmatched", "open-unclosed", "backref-zero", "backref-unknown", "backref-open", "too-many-captures"]) {
    assert.ok((counts.get(`fault ${f}`) ?? 0) > 0, `no generated fault ${f}`);
  }
});

test(`generated: the translator answers ${RUNS} (pattern, subject) pairs as Lua 5.4 does`, { skip, timeout: 50_000 }, async (t) => {
  const o = getOracle();
  const { cases, findings } = await runGenerated();
  const groups = new Map<string, number[]>();
  findings.forEach((f, k) => {
    if (f === null) return;
    groups.set(f.category, [...(groups.get(f.category) ?? []), k]);
  });
  if (groups.size === 0) return;
  const sorted = [...groups].sort((a, b) => b[1].length - a[1].length);
  const failed = sorted.reduce((n, [, ks]) => n + ks.length, 0);
  const report = [`${failed} of ${RUNS} generated pairs differ from Lua (seed ${SEED}), in ${groups.size} group(s):`];
  const started = performance.now();
  let shrunk = 0;
  for (const [category, ks] of sorted) {
    if (shrunk++ >= MAX_SHRUNK || performance.now() - started > 20_000) {
      report.push(`\n[${category}] ${ks.length} pair(s), e.g. ${show(cases[ks[0]!]!)} (not shrunk)\n  ${findings[ks[0]!]!.message.replace(/\n/g, "\n  ")}`);
      continue;
    }
    const result = await fc.check(
      fc.asyncProperty(patternCase, async (c) => (await check(o, c))?.category !== category),
      { seed: SEED, path: String(ks[0]), numRuns: RUNS, interruptAfterTimeLimit: 5_000 },
    );
    const minimal = result.failed && result.counterexample ? result.counterexample[0] : cases[ks[0]!]!;
    const finding = await check(o, minimal);
    report.push(`\n[${category}] ${ks.length} pair(s); minimal: ${show(minimal)}\n  ${(finding?.message ?? "(did not fail again)").replace(/\n/g, "\n  ")}`);
  }
  t.diagnostic(`shrinking took ${(performance.now() - started).toFixed(0)} ms`);
  assert.fail(report.join("\n"));
});
