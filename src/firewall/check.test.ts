// checkRules: the check-rules command's output lines and exit code, over real
// files in a temp dir and over the shipped rule set.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { checkRules } from "./check.js";
import { knowledgeProviders } from "../knowledge/providers.js";

describe("checkRules", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "xg-check-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, text: string): Promise<string> {
    const p = join(dir, name);
    await writeFile(p, text);
    return p;
  }

  it("prints a summary per file with rules per chain, and exits 0", async () => {
    const a = await file("a.pfw", "KIND: message\nDROP.\n\n::preroute\nKIND: iq\nBOUNCE.\n\nTYPE: chat\nPASS.\n\n::user/x\nLOG=x\n");
    const b = await file("b.pfw", "FROM: spammer@example.com\nDROP.\n");
    const r = await checkRules([a, b]);
    assert.equal(r.ok, true);
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.lines, [
      `${a}: 4 rules (preroute 2, deliver 1, user/x 1)`,
      `${b}: 1 rule (deliver 1)`,
      "OK: 2 files, 5 rules, 0 warnings",
    ]);
    assert.ok(r.ruleset);
  });

  it("prints every error and warning as file:line:col: severity: message, in file order, and exits 1", async () => {
    const good = await file("good.pfw", "%RATE r: 0.5\n\nLIMIT: r\nDROP.\n");
    const bad = await file("bad.pfw", "LOG=hi\nKIND: message\nDROP.\n\nkind: iq\nDROP.\n");
    const r = await checkRules([good, bad]);
    assert.equal(r.ok, false);
    assert.equal(r.exitCode, 1);
    assert.equal(r.ruleset, undefined);
    assert.deepEqual(r.lines, [
      `${good}:1:10: warning: rate × burst = 0.5 < 1: this limit is always exceeded (give a burst of at least 2)`,
      `${bad}:2:1: error: condition straight after an action: separate rules with a blank line (Prosody would silently drop this condition and run the rule above twice)`,
      `${bad}:5:1: error: Unknown condition: kind (condition names are case-sensitive: write KIND)`,
      "2 errors, 1 warning: rules not loaded",
    ]);
  });

  it("reports an unreadable file at line 1 and still checks the others", async () => {
    const ok = await file("ok.pfw", "DROP.\n");
    const missing = join(dir, "missing.pfw");
    const r = await checkRules([missing, ok]);
    assert.equal(r.exitCode, 1);
    assert.match(r.lines[0]!, new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:1:1: error: cannot read rule file \\(ENOENT`));
    assert.equal(r.lines.length, 2);
  });

  it("warnings alone do not fail the check", async () => {
    const w = await file("w.pfw", "JUMP CHAIN=user/nowhere\n");
    const r = await checkRules([w]);
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.lines, [
      `${w}:1:1: warning: JUMP CHAIN=user/nowhere: no loaded file has rules in this user chain, so the jump does nothing`,
      `${w}: 1 rule (deliver 1)`,
      "OK: 1 file, 1 rule, 1 warning",
    ]);
  });

  it("refuses rules that need a provider unless the same providers are passed", async () => {
    const p = await file("roster.pfw", "NOT IN ROSTER?\nDROP.\n");
    const without = await checkRules([p]);
    assert.equal(without.exitCode, 1);
    assert.match(without.lines[0]!, /:1:1: error: IN ROSTER refused: /);
    const withRoster = await checkRules([p], { providers: { roster: { entry: () => undefined } } });
    assert.equal(withRoster.exitCode, 0);
  });

  it("uses an injected reader, and an empty file list is an error", async () => {
    const r = await checkRules(["x.pfw"], { readFile: async () => "DROP.\n" });
    assert.deepEqual(r.lines, ["x.pfw: 1 rule (deliver 1)", "OK: 1 file, 1 rule, 0 warnings"]);
    const none = await checkRules([]);
    assert.deepEqual([none.exitCode, none.lines], [1, ["check-rules: no rule files given"]]);
  });

  it("the shipped default rule set loads cleanly with the default knowledge providers (as check-rules loads it)", async () => {
    const r = await checkRules(["rules/default.pfw"], { providers: knowledgeProviders() });
    assert.equal(r.exitCode, 0, r.lines.join("\n"));
    assert.equal(r.warnings.length, 0);
  });
});
