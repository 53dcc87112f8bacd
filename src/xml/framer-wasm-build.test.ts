// The WebAssembly module committed in framer-wasm-module.ts is what asm/framer.ts
// compiles to with the pinned assemblyscript devDependency (a few seconds to
// tens of seconds: binaryen's optimiser runs in JavaScript).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ARTEFACT, artefactSource, buildWasm } from "../../asm/build.js";

test("the committed module is what asm/framer.ts compiles to", async () => {
  const { binary } = await buildWasm();
  assert.equal(readFileSync(ARTEFACT, "utf8"), artefactSource(binary), "run `npm run build:wasm` and commit src/xml/framer-wasm-module.ts");
});
