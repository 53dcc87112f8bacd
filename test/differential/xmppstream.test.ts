// Differential test: the proxy's reading of a client or server stream
// (viewStream, test/helpers/view-stream.ts) against the server's own, Prosody's
// stream parser run as an oracle (xmppstream.lua, one Lua process for the
// whole file). For every top-level element both must agree on the local
// name, namespace, type, from, to and xml:lang; where the server refuses a
// stream the proxy must refuse it too (see agree() in oracle.ts for the exact
// rule). Three parts:
//
// 1. the hand-written corpus (corpus.json) read by the oracle must match what
//    is pinned there (this checks the oracle, and documents the server);
// 2. the proxy must agree with the oracle on every corpus stream;
// 3. the proxy must agree with the oracle on DIFF_RUNS (default 10,000)
//    generated streams (streams.ts). Mismatches are grouped by cause and each
//    group's first case is shrunk by fast-check to a minimal stream.
//
// Needs Prosody (its Lua modules and lua-expat). Without it the file is
// skipped with a message, except under CI (CI set), where that is a failure.
//
//   node scripts/run-tests.mjs differential
//   DIFF_RUNS=50000 DIFF_SEED=7 node scripts/run-tests.mjs differential

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { viewStream, type ViewedStanza } from "../helpers/view-stream.js";
import { agree, findProsodyLua, FIELDS, Oracle, serverView, type Kind, type Mismatch, type ServerView } from "./oracle.js";
import { features, rawStream, render, type RawStream } from "./streams.js";

const RUNS = Number(process.env.DIFF_RUNS) || 10_000;
const SEED = Number(process.env.DIFF_SEED) || 20_240_611;
/** Groups of generated mismatches that get a shrunk example each (the rest are counted). */
const MAX_SHRUNK = 16;

interface CorpusCase {
  id: string;
  kind: Kind;
  why: string;
  stream: string;
  proxyMayRefuse?: string;
  server: { stanzas: Array<Partial<ViewedStanza> & { name: string; ns: string; lang: string }>; end: string };
}
interface Corpus {
  headers: Record<string, string>;
  cases: CorpusCase[];
}

const corpus = JSON.parse(readFileSync(new URL("./corpus.json", import.meta.url), "utf8")) as Corpus;

function segmentsOf(c: CorpusCase): Buffer[] {
  const text = c.stream.replace(/\{(C2S|S2S)\}/g, (_, h: string) => corpus.headers[h]!);
  return text.split("{RESTART}").map((s) => Buffer.from(s, "utf8"));
}

const found = findProsodyLua();
const missing = typeof found === "string" ? found : null;
const skip = missing !== null && !process.env.CI
  ? `${missing}. The differential test needs the server's stream parser: apt-get install prosody (CI installs it)`
  : false;

let oracle: Promise<Oracle> | undefined;
function getOracle(): Promise<Oracle> {
  if (missing !== null) return Promise.reject(new Error(`${missing}, and CI is set: the differential test must run in CI`));
  return (oracle ??= Oracle.start(found as Exclude<typeof found, string>));
}
after(async () => {
  if (oracle) await (await oracle).close();
});

/** A string with its control characters visible (for failure messages). */
const visible = (s: string): string => JSON.stringify(s);

// ---------------------------------------------------------------------------
// 0: the agreement rule itself (no Prosody needed)

test("agree(): the rule on error streams, closes and stricter proxies", () => {
  const msg = (to: string): ViewedStanza => ({ name: "message", ns: "jabber:client", type: undefined, from: undefined, to, lang: "en" });
  const server = (n: number, end: ServerView["end"]): ServerView => ({
    stanzas: Array.from({ length: n }, (_, i) => msg(`u${i}@example.com`)),
    attrs: Array.from({ length: n }, (_, i) => ({ to: `u${i}@example.com`, "xml:lang": "en" })),
    xml: Array.from({ length: n }, () => "<message/>"),
    end,
    streamLang: "en",
    ignoredErrors: [],
  });
  const proxy = (n: number, error?: string) => ({ stanzas: server(n, "eof").stanzas, error });
  const refused = "error: not well-formed (unbound prefix)" as const;

  assert.equal(agree(server(2, "eof"), proxy(2)), null, "the same stanzas, no error");
  assert.match(agree(server(2, "eof"), { stanzas: [msg("u0@example.com"), msg("x@example.com")], error: undefined })!.message, /stanza 2 differs in to/);
  assert.ok(agree(server(2, "eof"), proxy(1)), "a stanza the proxy missed");
  assert.ok(agree(server(1, "eof"), proxy(2)), "a stanza the server never read");
  assert.ok(agree(server(2, "eof"), proxy(1, "XPX_ERR")), "refusing what the server reads");
  assert.equal(agree(server(2, "eof"), proxy(1, "XPX_ERR"), { proxyMayRefuse: true }), null, "unless allowed");
  assert.ok(agree(server(2, "eof"), proxy(2, "XPX_ERR")), "a late refusal of a clean stream");

  assert.equal(agree(server(1, refused), proxy(1, "XPX_ERR")), null, "refused at the same point");
  assert.equal(agree(server(1, refused), proxy(0, "XPX_ERR")), null, "refused earlier");
  assert.ok(agree(server(1, refused), proxy(1)), "not refused");
  assert.ok(agree(server(1, refused), proxy(2, "XPX_ERR")), "refused, but after judging a stanza the server never read");

  assert.equal(agree(server(1, "stream-error"), proxy(3)), null, "free after the peer's stream error");
  assert.equal(agree(server(1, "close"), proxy(1)), null, "agreeing up to the close");
  assert.ok(agree(server(2, "close"), proxy(1)), "but not short of it");
});

// ---------------------------------------------------------------------------
// 1 + 2: the corpus

test("oracle: the server's parser reads the hand-written corpus as pinned", { skip }, async (t) => {
  const o = await getOracle();
  const views = await o.runAll(corpus.cases.map((c) => ({ kind: c.kind, segments: segmentsOf(c) })));
  // The same bytes one at a time: the server's reading must not depend on
  // how the bytes arrive (the proxy's view is taken on whole streams).
  const dripped = await o.runAll(corpus.cases.map((c) => ({ kind: c.kind, segments: segmentsOf(c), chunk: 1 })));
  for (const [k, c] of corpus.cases.entries()) {
    await t.test(c.id, () => {
      const sv = serverView(views[k]!);
      assert.deepEqual(serverView(dripped[k]!), sv, "fed one byte at a time, the server reads the stream differently");
      const got = sv.stanzas.map((s) => Object.fromEntries(FIELDS.filter((f) => s[f] !== undefined).map((f) => [f, s[f]])));
      const want = c.server.stanzas.map((s) => Object.fromEntries(FIELDS.filter((f) => s[f] !== undefined).map((f) => [f, s[f]])));
      assert.deepEqual(got, want, `${c.why}\nserver read: ${sv.xml.join(" ")}`);
      if (c.server.end.startsWith("error: ")) {
        assert.ok(sv.end.startsWith("error: ") && sv.end.includes(c.server.end.slice("error: ".length)),
          `the server's reading should end in ${c.server.end}, it ends in ${sv.end}`);
      } else {
        assert.equal(sv.end, c.server.end);
      }
    });
  }
});

test("corpus: the proxy reads every hand-written stream as the server does", { skip }, async (t) => {
  const o = await getOracle();
  const cases = corpus.cases;
  const views = await o.runAll(cases.map((c) => ({ kind: c.kind, segments: segmentsOf(c) })));
  for (const [k, c] of cases.entries()) {
    await t.test(c.id, () => {
      // A restart splits the stream: the proxy's framer starts over there, as after SASL success.
      const segments = segmentsOf(c);
      const bytes = Buffer.concat(segments);
      const sv = serverView(views[k]!);
      const pv = viewStream(segments, c.kind);
      const m = agree(sv, pv, { proxyMayRefuse: c.proxyMayRefuse !== undefined });
      if (m !== null) assert.fail(`${c.why}\n${c.kind} ${visible(bytes.toString("utf8"))}\n[${m.category}] ${m.message}`);
    });
  }
});

// ---------------------------------------------------------------------------
// 3: generated streams

interface Outcome {
  text: string;
  server: ServerView;
  mismatch: Mismatch | null;
  category: string | null;
}

/** The group a generated mismatch belongs to, refined with what the stream's description says. */
function categoryOf(raw: RawStream, m: Mismatch): string {
  if (m.category === "element ns" && m.index !== undefined) {
    const el = raw.stanzas[m.index];
    if (el !== undefined && el.prefix !== null) return "element ns: prefixed stanza";
    if (el !== undefined && el.defaultNs === null) return "element ns: default namespace inherited from the stream header";
  }
  return m.category;
}

function judge(raw: RawStream, text: string, events: Parameters<typeof serverView>[0]): Outcome {
  const server = serverView(events);
  let mismatch: Mismatch | null;
  try {
    mismatch = agree(server, viewStream(Buffer.from(text, "utf8"), raw.kind));
  } catch (e) {
    // A throw is a finding like any other: grouped and shrunk.
    const what = e instanceof Error ? e.message : String(e);
    mismatch = { category: `proxy throws: ${what.slice(0, 80)}`, message: `viewStream threw: ${e instanceof Error ? e.stack : what}` };
  }
  return { text, server, mismatch, category: mismatch ? categoryOf(raw, mismatch) : null };
}

async function check(o: Oracle, raw: RawStream): Promise<Outcome> {
  const text = render(raw);
  return judge(raw, text, await o.run({ kind: raw.kind, segments: [Buffer.from(text, "utf8")] }));
}

/**
 * Shrink the failing case at `index` of the seeded run, keeping it in
 * `category` (fast-check replays the run from that case through `path`).
 */
async function shrink(o: Oracle, index: number, category: string): Promise<{ raw: RawStream; outcome: Outcome }> {
  const result = await fc.check(
    fc.asyncProperty(rawStream, async (raw) => (await check(o, raw)).category !== category),
    { seed: SEED, path: String(index), numRuns: RUNS },
  );
  assert.ok(result.failed && result.counterexample, `replaying case ${index} did not fail again`);
  const raw = result.counterexample[0];
  return { raw, outcome: await check(o, raw) };
}

let generated: Promise<{ raws: RawStream[]; outcomes: Outcome[]; ms: { generate: number; oracle: number; compare: number } }> | undefined;

function runGenerated(): NonNullable<typeof generated> {
  generated ??= (async () => {
    const o = await getOracle();
    const t0 = performance.now();
    const raws = fc.sample(rawStream, { seed: SEED, numRuns: RUNS });
    const texts = raws.map(render);
    const t1 = performance.now();
    const events = await o.runAll(raws.map((r, k) => ({ kind: r.kind, segments: [Buffer.from(texts[k]!, "utf8")] })));
    const t2 = performance.now();
    const outcomes = raws.map((r, k) => judge(r, texts[k]!, events[k]!));
    const t3 = performance.now();
    return { raws, outcomes, ms: { generate: t1 - t0, oracle: t2 - t1, compare: t3 - t2 } };
  })();
  return generated;
}

test(`generated: ${RUNS} random streams cover every dimension`, { skip }, async (t) => {
  const { raws, outcomes, ms } = await runGenerated();
  t.diagnostic(`seed ${SEED}; generate ${ms.generate.toFixed(0)} ms, oracle ${ms.oracle.toFixed(0)} ms, compare ${ms.compare.toFixed(0)} ms`);
  const counts = new Map<string, number>();
  for (const r of raws) for (const f of features(r)) counts.set(f, (counts.get(f) ?? 0) + 1);
  const ends = new Map<string, number>();
  let stanzas = 0;
  for (const o of outcomes) {
    const end = o.server.end.startsWith("error") ? o.server.end.replace(/^error: not well-formed \((.*)\)$/, "error: $1").replace(/ \(.*$/, "") : o.server.end;
    ends.set(end, (ends.get(end) ?? 0) + 1);
    stanzas += o.server.stanzas.length;
  }
  t.diagnostic(`server endings: ${[...ends].map(([k, v]) => `${k} ${v}`).join("; ")}; ${stanzas} stanzas read`);
  t.diagnostic(`features: ${[...counts].map(([k, v]) => `${k} ${v}`).join("; ")}`);
  // The generator is doing its job: most streams are read without error, and
  // each dimension shows up in at least 1% of them.
  const clean = outcomes.filter((o) => !o.server.end.startsWith("error")).length;
  assert.ok(clean >= RUNS * 0.6, `only ${clean} of ${RUNS} generated streams are read without error`);
  const wanted = [
    "c2s", "s2s", "xml:lang on header", "xml:lang on stanza", "stream close", "several stanzas",
    "header default namespace not the stream's", "prefixed stanza, declared on the stanza", "prefixed stanza, declared on the header",
    "prefixed stanza, declared in scope (or unbound)", "explicit default namespace = the stream's", "stanza redefines the default namespace",
    "nested default-namespace redefinition", "prefixed attribute on stanza", "references in attribute values",
    "literal whitespace in attribute values", "declarations after attributes",
  ];
  for (const f of wanted) assert.ok((counts.get(f) ?? 0) >= RUNS / 100, `feature "${f}" in only ${counts.get(f) ?? 0} streams`);
  for (const e of ["eof", "close", "stream-error", "error: unbound prefix", "error: duplicate attribute", "error: no-stream"]) {
    assert.ok((ends.get(e) ?? 0) > 0, `no generated stream ends in ${e}`);
  }
});

test(`generated: the proxy reads ${RUNS} random streams as the server does`, { skip, timeout: 50_000 }, async (t) => {
  const o = await getOracle();
  const { outcomes } = await runGenerated();
  const groups = new Map<string, number[]>();
  outcomes.forEach((out, k) => {
    if (out.category === null) return;
    const g = groups.get(out.category) ?? [];
    g.push(k);
    groups.set(out.category, g);
  });
  if (groups.size === 0) return;
  const sorted = [...groups].sort((a, b) => b[1].length - a[1].length);
  const failed = sorted.reduce((n, [, ks]) => n + ks.length, 0);
  const report: string[] = [`${failed} of ${RUNS} generated streams read differently (seed ${SEED}), in ${groups.size} group(s):`];
  const started = performance.now();
  let shrunk = 0;
  for (const [category, ks] of sorted) {
    if (shrunk++ >= MAX_SHRUNK || performance.now() - started > 20_000) {
      report.push(`\n[${category}] ${ks.length} stream(s), e.g. case ${ks[0]} (not shrunk)`);
      continue;
    }
    const { raw, outcome } = await shrink(o, ks[0]!, category);
    report.push(`\n[${category}] ${ks.length} stream(s); minimal (${raw.kind}):\n  ${visible(outcome.text)}\n  ${outcome.mismatch!.message.replace(/\n/g, "\n  ")}`);
  }
  t.diagnostic(`shrinking took ${(performance.now() - started).toFixed(0)} ms`);
  assert.fail(report.join("\n"));
});
