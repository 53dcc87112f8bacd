// watchRuleFiles over real files in a temp dir: in-place writes, editor-style
// rename-over, delete and re-create, Kubernetes-style symlink swaps, bursts
// debounced to one call, unrelated files ignored, close() final. Every wait is
// bounded; "nothing happens" is checked over a few debounce periods.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { watchRuleFiles, type RuleFileWatcher } from "./watch.js";

const DEBOUNCE = 50;
const QUIET = DEBOUNCE * 6;

async function waitFor(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

describe("watchRuleFiles", () => {
  let dir = "";
  let watcher: RuleFileWatcher | undefined;
  let calls = 0;
  const errors: unknown[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "xg-watch-"));
    calls = 0;
    errors.length = 0;
  });
  afterEach(async () => {
    watcher?.close();
    watcher = undefined;
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(errors, []);
  });

  async function start(paths: string[]): Promise<void> {
    watcher = watchRuleFiles(paths, () => calls++, { debounceMs: DEBOUNCE, onError: (e) => errors.push(e) });
    await sleep(20); // let the initial signatures be read
  }

  it("calls once after an in-place write, and once for a burst of writes", async () => {
    const f = join(dir, "a.pfw");
    await writeFile(f, "DROP.\n");
    await start([f]);
    await writeFile(f, "PASS.\n");
    await waitFor("first change", () => calls === 1);
    for (let i = 0; i < 5; i++) await writeFile(f, `LOG=${i}\n`);
    await waitFor("burst", () => calls === 2);
    await sleep(QUIET);
    assert.equal(calls, 2);
  });

  it("sees a new file renamed over the old one (how editors save)", async () => {
    const f = join(dir, "a.pfw");
    await writeFile(f, "DROP.\n");
    await start([f]);
    const tmp = join(dir, ".a.pfw.swp");
    await writeFile(tmp, "PASS.\n");
    await rename(tmp, f);
    await waitFor("rename over", () => calls === 1);
    // The watch survives the replacement.
    await writeFile(f, "LOG=again\n");
    await waitFor("write after rename", () => calls === 2);
  });

  it("ignores other files in the same directory", async () => {
    const f = join(dir, "a.pfw");
    await writeFile(f, "DROP.\n");
    await start([f]);
    await writeFile(join(dir, "notes.txt"), "x");
    await writeFile(join(dir, "b.pfw"), "x");
    await sleep(QUIET);
    assert.equal(calls, 0);
  });

  it("sees a file deleted, and a missing file created", async () => {
    const f = join(dir, "a.pfw");
    const later = join(dir, "later.pfw");
    await writeFile(f, "DROP.\n");
    await start([f, later]);
    await unlink(f);
    await waitFor("delete", () => calls === 1);
    await writeFile(later, "PASS.\n");
    await waitFor("create", () => calls === 2);
  });

  it("watches files in several directories", async () => {
    await mkdir(join(dir, "x"));
    await mkdir(join(dir, "y"));
    const a = join(dir, "x", "a.pfw");
    const b = join(dir, "y", "b.pfw");
    await writeFile(a, "DROP.\n");
    await writeFile(b, "DROP.\n");
    await start([a, b, a]);
    await writeFile(b, "PASS.\n");
    await waitFor("second dir", () => calls === 1);
    await writeFile(a, "PASS.\n");
    await waitFor("first dir", () => calls === 2);
  });

  it("sees a Kubernetes-style ..data symlink swap, where only other names change", async () => {
    // rules.pfw -> ..data/rules.pfw, ..data -> v1; the update points ..data at v2.
    await mkdir(join(dir, "v1"));
    await mkdir(join(dir, "v2"));
    await writeFile(join(dir, "v1", "rules.pfw"), "DROP.\n");
    await writeFile(join(dir, "v2", "rules.pfw"), "PASS.\n");
    await symlink("v1", join(dir, "..data"));
    await symlink(join("..data", "rules.pfw"), join(dir, "rules.pfw"));
    await start([join(dir, "rules.pfw")]);
    await symlink("v2", join(dir, "..data_tmp"));
    await rename(join(dir, "..data_tmp"), join(dir, "..data"));
    await waitFor("symlink swap", () => calls === 1);
  });

  it("close() is final and idempotent", async () => {
    const f = join(dir, "a.pfw");
    await writeFile(f, "DROP.\n");
    await start([f]);
    await writeFile(f, "PASS.\n");
    watcher!.close(); // before the debounce fires
    watcher!.close();
    await writeFile(f, "LOG=x\n");
    await sleep(QUIET);
    assert.equal(calls, 0);
  });

  it("reports a throwing onChange instead of crashing, and throws for a missing directory", async () => {
    const f = join(dir, "a.pfw");
    await writeFile(f, "DROP.\n");
    const seen: unknown[] = [];
    watcher = watchRuleFiles([f], () => { throw new Error("reload failed"); }, { debounceMs: DEBOUNCE, onError: (e) => seen.push(e) });
    await sleep(20);
    await writeFile(f, "PASS.\n");
    await waitFor("error report", () => seen.length === 1);
    assert.equal((seen[0] as Error).message, "reload failed");
    assert.throws(() => watchRuleFiles([join(dir, "nope", "a.pfw")], () => {}), { code: "ENOENT" });
  });
});
