// The firewall rule set the benchmarks load: the shipped rules/default.pfw,
// with one change. Its rates are meant for people (rule 5 lets a local
// account send 5 messages/s after a burst of 30), so a bulk benchmark would
// measure the BOUNCE path after the first 30 stanzas instead of forwarding.
// The copy multiplies every %RATE by RATE_SCALE: every stanza still walks
// the same rules, conditions and LIMIT buckets (a token is taken per
// stanza), but no bucket runs dry, so every stanza is forwarded. The copy
// lives in a temp dir that is removed on the way out.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onCleanup } from "./children.js";
import { REPO_ROOT } from "./guard-source.js";

export const DEFAULT_RULES = join(REPO_ROOT, "rules", "default.pfw");
export const RATE_SCALE = 1_000_000;

/** `%RATE name: R ...` → `%RATE name: R×scale ...`; other lines unchanged. */
export function scaleRates(text: string, scale: number): string {
  return text.replace(/^(\s*%RATE\s+[^:\n]+:\s*)([\d.]+)/gm, (_, head: string, rate: string) => `${head}${Number(rate) * scale}`);
}

/** Write the bench copy of rules/default.pfw; returns its path and how many %RATE lines were scaled. */
export function benchRules(): { path: string; scaled: number } {
  const text = readFileSync(DEFAULT_RULES, "utf8");
  const dir = mkdtempSync(join(tmpdir(), "xmpp-guard-bench-rules-"));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "default.pfw");
  writeFileSync(path, scaleRates(text, RATE_SCALE));
  const scaled = (text.match(/^\s*%RATE\s/gm) ?? []).length;
  return { path, scaled };
}
