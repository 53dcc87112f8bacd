// loadRuleFiles: injected and real file readers, list files resolved next to
// the rule file, all-or-nothing results, diagnostics sorted by file order.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadRuleFiles, resolveListPath } from "./load.js";
import { testStanza } from "../../test/helpers/test-stanza.js";

function reader(files: Record<string, string>) {
  const read: string[] = [];
  const fn = async (p: string): Promise<string> => {
    read.push(p);
    const text = files[p];
    if (text === undefined) throw Object.assign(new Error(`no such file ${p}`), { code: "ENOENT" });
    return text;
  };
  return { fn, read };
}

describe("loadRuleFiles", () => {
  it("compiles every file in order and reads list files relative to the rule file", async () => {
    const { fn, read } = reader({
      "/etc/guard/a.pfw": "%LIST bad: file:lists/bad.txt\n\nCHECK LIST: bad contains $<@from|bare>\nDROP.",
      "/etc/guard/lists/bad.txt": "spam@example.org\n",
      "/etc/guard/b.pfw": "LOG=b",
    });
    const r = await loadRuleFiles(["/etc/guard/a.pfw", "/etc/guard/b.pfw"], fn);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.ruleset?.files, ["/etc/guard/a.pfw", "/etc/guard/b.pfw"]);
    assert.ok(read.includes("/etc/guard/lists/bad.txt"));
    assert.equal(r.ruleset!.run("deliver", { stanza: testStanza("<message from='spam@example.org/x'/>") }).verdict, "drop");
    assert.equal(r.ruleset!.ruleCount, 2);
  });

  it("reports unreadable rule files and still checks the others", async () => {
    const { fn } = reader({ "b.pfw": "FOO." });
    const r = await loadRuleFiles(["a.pfw", "b.pfw"], fn);
    assert.equal(r.ruleset, undefined);
    assert.deepEqual(r.errors.map((e) => e.format()), [
      "a.pfw:1:1: cannot read rule file (ENOENT: no such file a.pfw)",
      "b.pfw:1:1: Unknown action: FOO",
    ]);
  });

  it("a missing list file is an error that names the rule", async () => {
    const { fn } = reader({ "/r/a.pfw": "\n%LIST bad: file:/nope.txt\n\nDROP." });
    const r = await loadRuleFiles(["/r/a.pfw"], fn);
    assert.deepEqual(r.errors.map((e) => e.format()), [
      "/r/a.pfw:2:1: list file '/nope.txt' cannot be read (add '(missing: ignore)' to start with an empty list)",
    ]);
  });

  it("warns about files listed twice and loads them once", async () => {
    const { fn } = reader({ "a.pfw": "DROP." });
    const r = await loadRuleFiles(["a.pfw", "a.pfw"], fn);
    assert.equal(r.ruleset?.ruleCount, 1);
    assert.deepEqual(r.warnings.map((w) => w.format()), ["a.pfw:1:1: rule file listed more than once; loaded once"]);
  });

  it("an empty list of files is a valid, empty rule set", async () => {
    const r = await loadRuleFiles([]);
    assert.equal(r.ruleset?.ruleCount, 0);
    assert.equal(r.ruleset?.hasChain("deliver"), false);
  });

  it("reads from disk by default", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fw-"));
    try {
      await writeFile(join(dir, "r.pfw"), "%LIST l: file:l.txt\n\nCHECK LIST: l contains x\nDROP.\n");
      await writeFile(join(dir, "l.txt"), "x\n");
      const r = await loadRuleFiles([join(dir, "r.pfw")]);
      assert.deepEqual(r.errors, []);
      assert.equal(r.ruleset?.ruleCount, 1);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it("resolveListPath keeps absolute paths", () => {
    assert.equal(resolveListPath("/x/y.txt", "/etc/a.pfw"), "/x/y.txt");
    assert.equal(resolveListPath("y.txt", "/etc/guard/a.pfw"), "/etc/guard/y.txt");
  });
});
