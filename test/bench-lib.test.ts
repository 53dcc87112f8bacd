// Smoke tests of the benchmark library (bench/lib): the statistics, the table
// renderer, the traffic fixture, the rule-rate scaling, the --guard choice and the session count
// under an fd limit. No timing is measured here; these only guard the
// arithmetic that turns raw samples into the published tables.
import { test } from "node:test";
import assert from "node:assert/strict";
import { median, percentile, spread } from "../bench/lib/stats.js";
import { num, pct, renderTable, times } from "../bench/lib/table.js";
import { CLIENT_HEADER, CLIENT_STEPS, Handshake, SERVER_STEPS, STANZA_BYTES, clientStream, messageStanza } from "../bench/lib/fixture.js";
import { scaleRates } from "../bench/lib/rules.js";
import { chooseGuardSource, guardSourceArg } from "../bench/lib/guard-source.js";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { sessionsThatFit } from "../bench/memory.js";
import { parseModLimitsRate } from "../bench/shaping.js";

test("percentile is nearest-rank on a sorted array", () => {
  const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
  assert.equal(percentile(sorted, 0.5), 50);
  assert.equal(percentile(sorted, 0.99), 99);
  assert.equal(percentile(sorted, 0.999), 100);
  assert.equal(percentile(sorted, 0), 1);
  assert.equal(percentile(sorted, 1), 100);
  assert.equal(percentile([7], 0.99), 7);
  assert.ok(Number.isNaN(percentile([], 0.5)));
});

test("median and spread", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  assert.equal(spread([90, 100, 110]), 0.2);
  assert.equal(spread([5]), 0);
});

test("number formatting", () => {
  assert.equal(num(1234567), "1,234,567");
  assert.equal(num(3.14159, 2), "3.14");
  assert.equal(num(Number.NaN), "–");
  assert.equal(pct(0.8), "80 %");
  assert.equal(pct(Number.POSITIVE_INFINITY), "–");
  assert.equal(times(1.5), "1.50 ×");
});

test("renderTable aligns numeric columns right and text columns left", () => {
  const out = renderTable({
    title: "T",
    headers: ["name", "value"],
    rows: [
      ["a", "1,000"],
      ["longer", "5"],
    ],
    notes: ["a note"],
  });
  assert.equal(
    out,
    ["### T", "", "| name   | value |", "|--------|------:|", "| a      | 1,000 |", "| longer |     5 |", "", "a note"].join("\n"),
  );
});

test("fixture stanzas are exactly STANZA_BYTES of UTF-8 and well-formed enough to count", () => {
  for (const i of [0, 1, 99, 12_345_678]) {
    const s = messageStanza(i);
    assert.equal(s.length, STANZA_BYTES);
    const text = s.toString("utf8");
    assert.ok(text.startsWith("<message ") && text.endsWith("</message>"));
    assert.doesNotMatch(text, /&(?!amp;)/, "only complete entities");
  }
  const stream = clientStream(10);
  assert.equal(stream.toString().match(/<\/message>/g)?.length, 10);
});

test("the client and server handshake scripts drive each other to the bound state", () => {
  const client = new Handshake(CLIENT_STEPS);
  const server = new Handshake(SERVER_STEPS);
  let toServer = CLIENT_HEADER;
  for (let turns = 0; turns < 10 && !(client.done && server.done); turns++) {
    const toClient = server.feed(Buffer.from(toServer));
    toServer = client.feed(Buffer.from(toClient));
  }
  assert.ok(client.done && server.done);
});

test("scaleRates multiplies %RATE figures and leaves everything else alone", () => {
  const text = "%RATE a: 0.1 (burst 100) (entries 10)\n%RATE b:5 (burst 6)\nKIND: message\n# %RATE c: 3\n";
  assert.equal(scaleRates(text, 1000), "%RATE a: 100 (burst 100) (entries 10)\n%RATE b:5000 (burst 6)\nKIND: message\n# %RATE c: 3\n");
});

test("sessionsThatFit leaves two descriptors per session plus a reserve", () => {
  assert.equal(sessionsThatFit(10_000, null), 10_000);
  assert.equal(sessionsThatFit(10_000, 1_048_576), 10_000);
  assert.equal(sessionsThatFit(10_000, 20_000), 9_968);
  assert.equal(sessionsThatFit(10, 10), 0);
});

test("mod_limits rates parse with decimal units, as Prosody does", () => {
  assert.equal(parseModLimitsRate("3kb/s"), 3000);
  assert.equal(parseModLimitsRate("30 kb/s"), 30_000);
  assert.equal(parseModLimitsRate("1mb/s"), 1_000_000);
  assert.equal(parseModLimitsRate("500b/s"), 500);
  assert.throws(() => parseModLimitsRate("fast"));
});

test("tsung log: chat-phase figures leave out the first and last partial seconds", async () => {
  const { parseTsungLog, summarise } = await import("../bench/tsung.js");
  const dump = (at: number, chats: number, sent: number, rcv: number, extra = "") =>
    `# stats: dump at ${at}\nstats: tr_chat ${chats} 0 0 0\nstats: size_sent ${sent} ${sent}\nstats: size_rcv ${rcv} ${rcv}\n${extra}`;
  const log = [
    "# stats: dump at 100\nstats: tr_auth 10 0 0 0\n",
    dump(101, 5, 500, 600),
    dump(102, 100, 10_000, 13_000),
    dump(103, 100, 10_000, 13_000, "stats: error_connect_econnrefused 2 2\n"),
    dump(104, 7, 700, 900),
  ].join("");
  const s = summarise(parseTsungLog(log));
  assert.equal(s.usersLoggedIn, 10);
  assert.equal(s.chatsSent, 212);
  assert.equal(s.sentPerSec, 100);
  assert.equal(s.deliveredBytesPerSec, 13_000);
  assert.equal(s.rcvSentRatio, 1.3);
  assert.deepEqual(s.errors, { error_connect_econnrefused: 2 });
});

test("--guard takes a build's directory, relative or absolute, and refuses one that holds no build", () => {
  const dir = mkdtempSync(join(tmpdir(), "guard-src-"));
  try {
    const build = join(dir, "build-a");
    mkdirSync(build);
    writeFileSync(join(build, "app.js"), "");
    const relativeDir = relative(process.cwd(), build);
    assert.equal(chooseGuardSource(relativeDir).source, build, "a relative directory is that directory, not a fresh build of src/");
    assert.equal(chooseGuardSource(build).source, build);
    assert.equal(guardSourceArg(relativeDir), build);
    assert.throws(() => chooseGuardSource(relative(process.cwd(), dir)), /no app\.js/);
    assert.throws(() => guardSourceArg("nowhere-at-all"), /a directory holding a build/);
    assert.equal(chooseGuardSource("src").source, "src");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
