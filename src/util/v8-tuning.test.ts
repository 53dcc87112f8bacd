// Tests for the V8 settings the proxy starts with (util/v8-tuning.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { INLINE_BUDGET, tuneV8 } from "./v8-tuning.js";

test("tuneV8 raises the cumulative inlining budget", () => {
  const set: string[] = [];
  assert.equal(tuneV8([], (f) => set.push(f)), INLINE_BUDGET);
  assert.deepEqual(set, [`--max-inlined-bytecode-size-cumulative=${INLINE_BUDGET}`]);
});

test("tuneV8 leaves a budget given on the command line (either spelling)", () => {
  for (const arg of ["--max-inlined-bytecode-size-cumulative=920", "--max_inlined_bytecode_size_cumulative=2000"]) {
    const set: string[] = [];
    assert.equal(tuneV8(["--expose-gc", arg], (f) => set.push(f)), undefined);
    assert.deepEqual(set, []);
  }
});

test("the budget stays under V8's absolute cap, which would silently override it", () => {
  assert.ok(INLINE_BUDGET > 920 && INLINE_BUDGET <= 4600);
});

test("V8 accepts the flag (no 'unrecognized flag' on stderr)", async () => {
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync(process.execPath, ["-e", `require("node:v8").setFlagsFromString("--max-inlined-bytecode-size-cumulative=${INLINE_BUDGET}")`], { encoding: "utf8" });
  assert.equal(r.status, 0);
  assert.equal(r.stderr, "");
});
