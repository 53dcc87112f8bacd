// The `state:` config section, validated without throwing so the config schema
// can adapt it (it returns the shaping units' ParseResult shape). SQLite by
// default; `redis` (docs/deploy.md, "Fleets: several instances, one Redis") moves the shared state of a fleet to one Redis.
import type { ParseResult } from "../shaping/units.js";
import { DEFAULT_STATE_PATH } from "./sqlite-file.js";

export interface StateOptions {
  /** SQLite file; relative paths are relative to the working directory. Parent directories are created. */
  readonly path: string;
  /** redis://[user:pass@]host:port/db — when set, the state lives there (see src/state/redis-store.ts). */
  readonly redis: string | null;
  /** Prefix of every Redis key and the pub/sub channel, so instances of several fleets can share a Redis. */
  readonly prefix: string;
}

export const STATE_DEFAULTS: StateOptions = Object.freeze({ path: DEFAULT_STATE_PATH, redis: null, prefix: "xg:" });

const KEYS = ["path", "redis", "prefix"] as const;

export function parseStateOptions(raw: unknown): ParseResult<StateOptions> {
  if (raw === undefined || raw === null) return { ok: true, value: STATE_DEFAULTS, notes: [] };
  if (typeof raw !== "object" || Array.isArray(raw)) return { ok: false, message: 'expected { path: "data/xmpp-guard.sqlite" }' };
  for (const key of Object.keys(raw)) {
    if (!(KEYS as readonly string[]).includes(key)) return { ok: false, message: `unknown option "${key}" (known: ${KEYS.join(", ")})`, at: key };
  }
  const { path = DEFAULT_STATE_PATH, redis = null, prefix = "xg:" } = raw as { path?: unknown; redis?: unknown; prefix?: unknown };
  if (typeof path !== "string" || path.trim() === "") return { ok: false, message: "must be a non-empty file path", at: "path" };
  if (path === ":memory:") return { ok: false, message: '":memory:" would lose every tombstone at restart; give a file path', at: "path" };
  if (redis !== null) {
    if (typeof redis !== "string") return { ok: false, message: 'expected a URL like "redis://127.0.0.1:6379/0"', at: "redis" };
    let url: URL;
    try {
      url = new URL(redis);
    } catch {
      return { ok: false, message: 'expected a URL like "redis://127.0.0.1:6379/0"', at: "redis" };
    }
    if (url.protocol !== "redis:" && url.protocol !== "rediss:") return { ok: false, message: "must start with redis:// or rediss://", at: "redis" };
    if (url.hostname === "") return { ok: false, message: "needs a host", at: "redis" };
    if (url.pathname !== "" && url.pathname !== "/" && !/^\/\d{1,2}$/.test(url.pathname)) return { ok: false, message: "the path must be a database number, like /0", at: "redis" };
  }
  if (typeof prefix !== "string" || !/^[A-Za-z0-9_.:-]{0,64}$/.test(prefix)) {
    return { ok: false, message: "must be up to 64 characters of A-Z a-z 0-9 _ . : -", at: "prefix" };
  }
  return { ok: true, value: { path, redis, prefix }, notes: [] };
}
