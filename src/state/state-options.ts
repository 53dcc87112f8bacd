// The `state:` config section, validated without throwing so the config schema
// can adapt it (it returns the shaping units' ParseResult shape). Only SQLite
// for now; `backend` leaves room for the "redis later" of issue 6.
import type { ParseResult } from "../shaping/units.js";
import { DEFAULT_STATE_PATH } from "./sqlite-store.js";

export interface StateOptions {
  /** SQLite file; relative paths are relative to the working directory. Parent directories are created. */
  readonly path: string;
}

export const STATE_DEFAULTS: StateOptions = Object.freeze({ path: DEFAULT_STATE_PATH });

const KEYS = ["path"] as const;

export function parseStateOptions(raw: unknown): ParseResult<StateOptions> {
  if (raw === undefined || raw === null) return { ok: true, value: STATE_DEFAULTS, notes: [] };
  if (typeof raw !== "object" || Array.isArray(raw)) return { ok: false, message: 'expected { path: "data/xmpp-guard.sqlite" }' };
  for (const key of Object.keys(raw)) {
    if (!(KEYS as readonly string[]).includes(key)) return { ok: false, message: `unknown option "${key}" (known: ${KEYS.join(", ")})`, at: key };
  }
  const path = (raw as { path?: unknown }).path;
  if (path === undefined) return { ok: true, value: STATE_DEFAULTS, notes: [] };
  if (typeof path !== "string" || path.trim() === "") return { ok: false, message: "must be a non-empty file path", at: "path" };
  if (path === ":memory:") return { ok: false, message: '":memory:" would lose every tombstone at restart; give a file path', at: "path" };
  return { ok: true, value: { path }, notes: [] };
}
