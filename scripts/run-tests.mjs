#!/usr/bin/env node
// Test entry point (`npm test`). Plain Node ESM with no dependencies.
//
// Node 20's runner finds no .ts files by itself (`node --test test/` and quoted
// globs both report 0 tests), so this script walks src/ and test/ for
// *.test.ts and passes an explicit, sorted file list to
// `node --import tsx --test`. Unit files run in one invocation (parallel);
// test/integration/ files, which start real servers, in a second one with
// --test-concurrency=1. Output: the spec reporter on stdout for people, plus a
// TAP copy in a temp file whose summary (`# tests N`, `# pass N`, ...) is what
// we count. Exits non-zero if anything failed, timed out, or if no test ran.
//
//   node scripts/run-tests.mjs                  all tests
//   node scripts/run-tests.mjs --unit           everything except test/integration/
//   node scripts/run-tests.mjs --integration    only test/integration/
//   node scripts/run-tests.mjs framer prosody   only files whose path contains a filter
//
// Timeouts. Node 20 applies --test-timeout to each test *file* (the file runs
// as one test in its own subprocess), so it is a per-file bound: 60 s for a
// unit file, 120 s for an integration file. Tighten single tests with
// `{ timeout }` in the test itself. Env: TEST_TIMEOUT_MS overrides both;
// TEST_RUN_TIMEOUT_S (default 900) is a watchdog on each whole node invocation.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SEARCH_DIRS = ['src', 'test'];
const INTEGRATION_DIR = 'test/integration/';
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git']);

function usage(message) {
  if (message) console.error(`run-tests: ${message}`);
  console.error('usage: node scripts/run-tests.mjs [--unit | --integration] [path-substring ...]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { unit: true, integration: true, filters: [] };
  let only = null;
  for (const arg of argv) {
    if (arg === '--unit' || arg === '--integration') {
      if (only !== null && only !== arg) usage('--unit and --integration exclude each other');
      only = arg;
    } else if (arg === '-h' || arg === '--help') {
      usage();
    } else if (arg.startsWith('-')) {
      usage(`unknown option ${arg}`);
    } else {
      opts.filters.push(arg);
    }
  }
  if (only === '--unit') opts.integration = false;
  if (only === '--integration') opts.unit = false;
  return opts;
}

/** Repo-relative POSIX paths of every *.test.ts under dir. */
function walk(dir, out) {
  let entries;
  try {
    entries = readdirSync(path.join(ROOT, dir), { withFileTypes: true });
  } catch (err) {
    if (err.code === 'ENOENT') return out;
    throw err;
  }
  for (const e of entries) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) walk(rel, out);
    } else if (e.isFile() && e.name.endsWith('.test.ts')) {
      out.push(rel);
    }
  }
  return out;
}

/** Counts from the TAP reporter's closing summary, or null if it never got there. */
function tapSummary(text) {
  const counts = {};
  for (const m of text.matchAll(/^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) {
    counts[m[1]] = Number(m[2]);
  }
  if (counts.tests === undefined) return null;
  return {
    tests: counts.tests,
    passed: counts.pass ?? 0,
    failed: (counts.fail ?? 0) + (counts.cancelled ?? 0),
    skipped: (counts.skipped ?? 0) + (counts.todo ?? 0),
  };
}

function runNodeTest({ label, files, concurrency, timeoutMs, tapFile, watchdogS }) {
  const args = [
    '--import', 'tsx',
    '--test',
    `--test-timeout=${timeoutMs}`,
    ...(concurrency !== undefined ? [`--test-concurrency=${concurrency}`] : []),
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tapFile}`,
    ...files,
  ];
  console.log(`\n▶ ${label}: ${files.length} file(s)`);
  return new Promise((resolve) => {
    // Own process group, so the watchdog can stop the runner and its per-file children together.
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'inherit', detached: true });
    let timedOut = false;
    const killGroup = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    const watchdog = setTimeout(() => {
      timedOut = true;
      console.error(`\nrun-tests: ${label} still running after ${watchdogS} s; killing it`);
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), 5000).unref();
    }, watchdogS * 1000);
    const forward = (signal) => killGroup(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('exit', (code, signal) => {
      clearTimeout(watchdog);
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      let summary = null;
      try {
        summary = tapSummary(readFileSync(tapFile, 'utf8'));
      } catch {
        // no TAP file: the runner died before writing it
      }
      resolve({ label, code, signal, timedOut, summary });
    });
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const all = SEARCH_DIRS.flatMap((d) => walk(d, [])).sort();
  const selected = all.filter((f) => opts.filters.length === 0 || opts.filters.some((s) => f.includes(s)));
  const groups = [];
  const unitFiles = selected.filter((f) => !f.startsWith(INTEGRATION_DIR));
  const integrationFiles = selected.filter((f) => f.startsWith(INTEGRATION_DIR));
  const envMs = Number(process.env.TEST_TIMEOUT_MS) || undefined;
  const watchdogS = Number(process.env.TEST_RUN_TIMEOUT_S) || 900;
  if (opts.unit && unitFiles.length > 0) {
    groups.push({ label: 'unit', files: unitFiles, concurrency: undefined, timeoutMs: envMs ?? 60_000 });
  }
  if (opts.integration && integrationFiles.length > 0) {
    groups.push({ label: 'integration', files: integrationFiles, concurrency: 1, timeoutMs: envMs ?? 120_000 });
  }

  const totals = { tests: 0, passed: 0, failed: 0, skipped: 0 };
  const problems = [];
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'xmpp-guard-tests-'));
  try {
    for (const g of groups) {
      const r = await runNodeTest({ ...g, tapFile: path.join(tmp, `${g.label}.tap`), watchdogS });
      if (r.summary === null) {
        problems.push(`${g.label}: no test summary (runner exit ${r.code ?? r.signal})`);
        totals.failed += 1;
        continue;
      }
      for (const k of Object.keys(totals)) totals[k] += r.summary[k];
      if (r.timedOut) problems.push(`${g.label}: killed by the ${watchdogS} s watchdog`);
      else if (r.code !== 0 && r.summary.failed === 0) problems.push(`${g.label}: runner exited with ${r.code ?? r.signal}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  if (groups.length === 0) problems.push('no test files matched');
  if (totals.passed + totals.failed === 0) problems.push('0 tests ran');
  console.log('');
  for (const p of problems) console.log(`run-tests: ${p}`);
  const skipped = totals.skipped > 0 ? `, ${totals.skipped} skipped` : '';
  console.log(`${totals.passed} passed, ${totals.failed} failed${skipped}`);
  process.exit(totals.failed > 0 || problems.length > 0 ? 1 : 0);
}

await main();
