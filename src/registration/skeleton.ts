// UTS #39 §4 skeletons, as ICU's uspoof_getSkeleton computes them for
// mod_mimicking and mod_block_registrations (docs/registration.md, "Names: nodeprep and skeletons"): NFD, map every code
// point to its prototype from Unicode's confusables.txt, NFD again. Two names
// look alike when their skeletons are equal. The table comes from the
// `unhomoglyph` npm package (confusables.txt 13.0.0, one entry per source code
// point); the algorithm around it is ours.
import { createRequire } from "node:module";

/** Code point → prototype string. */
export type ConfusablesTable = Readonly<Record<string, string>>;

const require = createRequire(import.meta.url);

/** The confusables data the proxy ships with. */
export const CONFUSABLES: ConfusablesTable = require("unhomoglyph/data.json") as ConfusablesTable;

/**
 * Names the data and the algorithm. Stored skeletons are recomputed when this
 * changes (RegistrationStore.reindexSkeletons), so a data upgrade never leaves
 * stale skeletons behind.
 */
export const SKELETON_VERSION = `uts39-skeleton/1 unhomoglyph@${(require("unhomoglyph/package.json") as { version: string }).version}`;

/** ICU refuses longer input (a fixed 1024-unit buffer); Prosody then has no skeleton. */
export const MAX_SKELETON_INPUT = 1024;

/**
 * The skeleton of `s`, or null where ICU would fail (input over
 * MAX_SKELETON_INPUT UTF-16 units). Case-sensitive: pass nodeprepped names.
 */
export function skeleton(s: string, table: ConfusablesTable = CONFUSABLES): string | null {
  if (s.length > MAX_SKELETON_INPUT) return null;
  let out = "";
  for (const ch of s.normalize("NFD")) out += Object.hasOwn(table, ch) ? table[ch]! : ch;
  return out.normalize("NFD");
}
