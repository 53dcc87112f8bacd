// Rate/burst/stanza-rate parsing: everything Prosody 0.12/13 mod_limits parses is accepted
// (property-tested), its surprises come back as notes, and garbage gets path-ready messages.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  parseBurst,
  parseByteLimit,
  parseRate,
  parseStanzaRate,
  parseStanzaRates,
} from "./units.js";
import type { ParseError, ParseResult } from "./units.js";

/** The key path and the message, as the config layer reports them ("at" joins with dots). */
function formatParseError(path: string, error: ParseError): string {
  const where = error.at === undefined ? path : path === "" ? error.at : `${path}.${error.at}`;
  return where === "" ? error.message : `${where}: ${error.message}`;
}

function value<T>(r: ParseResult<T>): T {
  if (!r.ok) assert.fail(`expected ok, got error: ${r.message}`);
  return r.value;
}

function notes<T>(r: ParseResult<T>): string {
  if (!r.ok) assert.fail(`expected ok, got error: ${r.message}`);
  return r.notes.join("\n");
}

function error<T>(r: ParseResult<T>): string {
  if (r.ok) assert.fail(`expected an error, got ${JSON.stringify(r.value)}`);
  return r.message;
}

test("rates Prosody parses mean the same here (decimal multipliers, first letter of the unit)", () => {
  const cases: Array<[string, number]> = [
    ["3kb/s", 3000],
    ["30kb/s", 30_000],
    ["1mb/s", 1_000_000],
    ["3 kb/s", 3000],
    ["3kb /s", 3000],
    ["03kb/s", 3000],
    ["3k/s", 3000],
    ["3K/s", 3000],
    ["3KB/s", 3000],
    ["3Mb/s", 3_000_000],
    ["2gb/s", 2e9],
    ["1tb/s", 1e12],
    ["10KiB/s", 10_000],
    ["3kbit/s", 3000],
    ["3k b/s", 3000],
    ["3kilobytes/s", 3000],
  ];
  for (const [text, expected] of cases) assert.equal(value(parseRate(text)), expected, text);
});

test("plain spellings carry no notes; Prosody-surprising ones explain themselves", () => {
  assert.deepEqual(parseRate("3kb/s"), { ok: true, value: 3000, notes: [] });
  assert.match(notes(parseRate("10KiB/s")), /decimal.*not ×1024/);
  assert.match(notes(parseRate("3kbit/s")), /bytes, not bits/);
  assert.match(notes(parseRate("3kzz/s")), /first letter/);
});

test('"b" is one byte (Prosody multiplies it by 10) and says so', () => {
  const r = parseRate("500b/s");
  assert.equal(value(r), 500);
  assert.match(notes(r), /Prosody reads "500b\/s" as 5000 B\/s/);
  assert.equal(value(parseRate("500 bytes/s")), 500);
  assert.equal(value(parseRate("3B/s")), 3);
});

test("values Prosody rejects (it falls back to 3000 B/s) are read as written, with a note", () => {
  const cases: Array<[string | number, number]> = [
    ["1.5kb/s", 1500],
    ["1.1kb/s", 1100], // exact decimal scaling, not 1100.0000000000002
    [".5mb/s", 500_000],
    ["3000/s", 3000],
    ["3000", 3000],
    ["3kb", 3000],
    ["3  kb/s", 3000],
    ["3 kb / s", 3000],
    ["3kb/sec", 3000],
    ["3kb/second", 3000],
    [" 3kb/s ", 3000],
    [3000, 3000],
    [1.5, 1.5],
  ];
  for (const [input, expected] of cases) {
    const r = parseRate(input);
    assert.equal(value(r), expected, String(input));
    if (typeof input === "string") assert.match(notes(r), /^Prosody cannot parse/m, input);
  }
});

test("rate 0 means no limit, as on Prosody's default backend", () => {
  const r = parseRate("0kb/s");
  assert.equal(value(r), 0);
  assert.match(notes(r), /no byte limit/);
  assert.equal(value(parseRate(0)), 0);
  assert.equal(value(parseByteLimit({ rate: "0kb/s", burst: "2s" })), null);
});

test("garbage rates are rejected with a message the config layer can prefix", () => {
  const r = parseRate("fast");
  assert.equal(error(r), '"fast" is not a rate: expected e.g. "3kb/s"');
  assert.ok(!r.ok);
  assert.equal(formatParseError("limits.c2s.rate", r), 'limits.c2s.rate: "fast" is not a rate: expected e.g. "3kb/s"');
  const rejected: unknown[] = ["", "kb/s", "-3kb/s", "3xb/s", "3kb/min", "3kb/s/s", "3 5kb/s", "1e3kb/s", -1, Number.NaN, Infinity, true, null, undefined, [3000], { rate: 3 }];
  for (const input of rejected) assert.match(error(parseRate(input)), /is not a rate/, String(input));
  assert.match(error(parseRate("3kb/min")), /only per-second rates/);
  assert.match(error(parseRate("3xb/s")), /unknown unit "xb"/);
  assert.match(error(parseRate("2s")), /looks like a burst/);
  assert.match(error(parseRate("1" + "0".repeat(400) + "kb/s")), /too large/);
});

test("property: every rate string Prosody parses is accepted with Prosody's value (b: a tenth of it)", () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9]{1,9} ?[bkmgtBKMGT][^/]{0,8}\/s$/), (text) => {
      const m = /^(\d+) ?(.)/.exec(text)!;
      const exp = { b: 1, k: 3, m: 6, g: 9, t: 12 }[m[2]!.toLowerCase() as "b" | "k" | "m" | "g" | "t"];
      const prosody = Number(m[1]) * 10 ** exp;
      const expected = exp === 1 ? prosody / 10 : prosody;
      const r = parseRate(text);
      assert.ok(r.ok, `${JSON.stringify(text)}: ${r.ok ? "" : r.message}`);
      assert.ok(Math.abs(r.value - expected) <= expected * 1e-12, `${JSON.stringify(text)} → ${r.value}, expected ${expected}`);
    }),
    { seed: 4, numRuns: 2000 },
  );
});

test("bursts: numbers and every Prosody spelling, plus decimals and ms", () => {
  const cases: Array<[unknown, number]> = [
    [2, 2],
    [0.5, 0.5],
    [0, 0],
    ["2s", 2],
    ["2 s", 2],
    ["10s", 10],
    ["0.5s", 0.5],
    ["2", 2],
    ["1.5", 1.5],
    ["500ms", 0.5],
    ["3 seconds", 3],
    ["3sec", 3],
  ];
  for (const [input, expected] of cases) assert.equal(value(parseBurst(input)), expected, String(input));
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9]{1,6} ?s$/), (text) => {
      const r = parseBurst(text);
      assert.ok(r.ok && r.value === Number.parseInt(text, 10) && r.notes.length === 0, text);
    }),
    { seed: 4, numRuns: 500 },
  );
});

test("bursts Prosody silently turns into 2 s get a note", () => {
  assert.match(notes(parseBurst("0.5s")), /Prosody silently reads burst "0.5s" as 2 s/);
  assert.match(notes(parseBurst("500ms")), /silently/);
  assert.equal(notes(parseBurst("2")), ""); // Prosody's fallback 2 s happens to match
});

test("garbage bursts are rejected", () => {
  assert.equal(error(parseBurst("fast")), '"fast" is not a burst: expected seconds, e.g. "2s", "0.5s" or 2');
  for (const input of ["", "-1s", "2m", "2 minutes", "s", -1, Number.NaN, Infinity, null, true, {}]) {
    assert.match(error(parseBurst(input)), /is not a burst/, String(input));
  }
});

test("byte limits: { rate, burst } with Prosody's 2 s default burst", () => {
  assert.deepEqual(value(parseByteLimit({ rate: "3kb/s", burst: "2s" })), { rate: 3000, burst: 2, capacity: 6000 });
  assert.deepEqual(value(parseByteLimit({ rate: "30kb/s", burst: "3s" })), { rate: 30_000, burst: 3, capacity: 90_000 });
  assert.deepEqual(value(parseByteLimit({ rate: "3kb/s" })), { rate: 3000, burst: 2, capacity: 6000 });
  assert.deepEqual(value(parseByteLimit({ rate: 5000, burst: 0 })), { rate: 5000, burst: 0, capacity: 0 });
});

test("byte limit errors point at the offending key", () => {
  const cases: Array<[unknown, string]> = [
    [{ rate: "fast" }, 'limits.c2s.rate: "fast" is not a rate: expected e.g. "3kb/s"'],
    [{ rate: "3kb/s", burst: "soon" }, 'limits.c2s.burst: "soon" is not a burst: expected seconds, e.g. "2s", "0.5s" or 2'],
    [{ burst: "2s" }, 'limits.c2s.rate: missing: expected e.g. "3kb/s"'],
    [{ rate: "3kb/s", brust: "2s" }, 'limits.c2s.brust: unknown key (expected "rate" and "burst")'],
    ["3kb/s", 'limits.c2s: "3kb/s" is not a limit: expected { rate: "3kb/s", burst: "2s" }'],
  ];
  for (const [input, expected] of cases) {
    const r = parseByteLimit(input);
    assert.ok(!r.ok);
    assert.equal(formatParseError("limits.c2s", r), expected);
  }
});

test("stanza rates: rate per second, burst is a count of stanzas (or seconds with a unit)", () => {
  assert.deepEqual(value(parseStanzaRate({ rate: 10, burst: 20 })), { rate: 10, capacity: 20 });
  assert.deepEqual(value(parseStanzaRate({ rate: "10/s", burst: "20" })), { rate: 10, capacity: 20 });
  assert.deepEqual(value(parseStanzaRate({ rate: 10, burst: "2s" })), { rate: 10, capacity: 20 });
  assert.deepEqual(value(parseStanzaRate({ rate: 10 })), { rate: 10, capacity: 10 });
  assert.deepEqual(value(parseStanzaRate({ rate: 0.2 })), { rate: 0.2, capacity: 1 });
  assert.deepEqual(value(parseStanzaRates({ message: { rate: 10, burst: 20 }, iq: { rate: 5 } })), {
    message: { rate: 10, capacity: 20 },
    iq: { rate: 5, capacity: 5 },
  });
});

test("stanza rate errors", () => {
  const cases: Array<[unknown, string]> = [
    [{ message: { rate: "fast" } }, 's.message.rate: "fast" is not a stanza rate: expected stanzas per second, e.g. 10 or "10/s"'],
    [{ message: { rate: 0 } }, "s.message.rate: must be greater than 0 (leave the kind out to keep it unlimited)"],
    [{ message: { rate: 10, burst: 0.5 } }, "s.message.burst: 0.5 allows less than one stanza: the burst must be at least 1"],
    [{ message: { rate: 0.2, burst: "2s" } }, 's.message.burst: "2s" allows less than one stanza: the burst must be at least 1'],
    [{ message: { rate: 10, burst: -1 } }, 's.message.burst: -1 is not a stanza burst: expected a number of stanzas, e.g. 20, or seconds, e.g. "2s"'],
    [{ message: {} }, 's.message.rate: missing: expected stanzas per second, e.g. 10 or "10/s"'],
    [{ message: { rate: 1, per: 2 } }, 's.message.per: unknown key (expected "rate" and "burst")'],
    [{ sm: { rate: 1 } }, 's.sm: unknown stanza kind (expected "message", "presence" or "iq")'],
    [{ message: 10 }, "s.message: 10 is not a stanza rate: expected e.g. { rate: 10, burst: 20 }"],
    [[], "s: a list is not a map of stanza rates: expected e.g. { message: { rate: 10, burst: 20 } }"],
  ];
  for (const [input, expected] of cases) {
    const r = parseStanzaRates(input);
    assert.ok(!r.ok, JSON.stringify(input));
    assert.equal(formatParseError("s", r), expected);
  }
});
