// What every condition and action parameter parser shares (docs/firewall.md,
// "Adding a condition"): the failure value with an offset into the parameter
// text, the warning sink, and small readers several parameters use.
import type { Template } from "./ast.js";
import { parseTemplate } from "./template.js";

/** Whether a condition or action takes a parameter. */
export type ParamKind = "required" | "none" | "optional";

/** A parameter failure: message plus an offset into the parameter text. */
export class ParamFail {
  readonly error: string;
  readonly at: number | undefined;

  constructor(error: string, at?: number) {
    this.error = error;
    this.at = at;
  }
}

export function fail(error: string, at?: number): ParamFail {
  return new ParamFail(error, at);
}

export function isFail(x: unknown): x is ParamFail {
  return x instanceof ParamFail;
}

/** What a parameter parser may add besides its result (offsets relative to the parameter). */
export interface ParamContext {
  warn(message: string, at?: number): void;
}

/** Names Prosody accepts for marks, zones and definitions. */
export const IDSAFE = /^[A-Za-z][A-Za-z0-9_]*$/;

/** KIND and TYPE lists: split at spaces, commas and '|'. */
export function splitList(s: string): string[] {
  return s.split(/[\s,|]+/).filter((v) => v !== "");
}

/** A `$<…>` template; errors point into the parameter at `offset`. */
export function templateOrFail(source: string, offset = 0, ctx?: ParamContext): Template | ParamFail {
  const t = parseTemplate(source);
  if ("error" in t) return fail(t.error, offset + t.offset);
  for (const part of t.parts) if (part.kind === "path" && part.path.warning !== undefined) ctx?.warn(part.path.warning, offset);
  return t;
}
