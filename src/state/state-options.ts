// The `state:` config section and its spec (STATE_SPEC), which the config
// schema plugs in. SQLite by
// default; `redis` (docs/deploy.md, "Fleets: several instances, one Redis") moves the shared state of a fleet to one Redis.
import type { ParseResult } from "../shaping/units.js";
import { DEFAULT_STATE_PATH } from "./sqlite-file.js";
import { firstIssue, frozen, obj, optional, parsed, validate, type Spec } from "../util/validate.js";

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
const REDIS_EXAMPLE = 'expected a URL like "redis://127.0.0.1:6379/0"';

/** The `state:` section. Every problem is reported at its key. */
export const STATE_SPEC: Spec<StateOptions> = frozen(
  obj(
    {
      path: optional(
        parsed<string>("a file path", (path) => {
          if (typeof path !== "string" || path.trim() === "") return { ok: false, message: "must be a non-empty file path" };
          if (path === ":memory:") return { ok: false, message: '":memory:" would lose every tombstone at restart; give a file path' };
          return { ok: true, value: path };
        }),
        STATE_DEFAULTS.path,
      ),
      redis: optional(
        parsed<string | null>('a URL like "redis://127.0.0.1:6379/0", or null', (redis) => {
          if (redis === null) return { ok: true, value: null };
          if (typeof redis !== "string") return { ok: false, message: REDIS_EXAMPLE };
          let url: URL;
          try {
            url = new URL(redis);
          } catch {
            return { ok: false, message: REDIS_EXAMPLE };
          }
          if (url.protocol !== "redis:" && url.protocol !== "rediss:") return { ok: false, message: "must start with redis:// or rediss://" };
          if (url.hostname === "") return { ok: false, message: "needs a host" };
          if (url.pathname !== "" && url.pathname !== "/" && !/^\/\d{1,2}$/.test(url.pathname)) return { ok: false, message: "the path must be a database number, like /0" };
          return { ok: true, value: redis };
        }),
        STATE_DEFAULTS.redis,
      ),
      prefix: optional(
        parsed<string>("up to 64 characters of A-Z a-z 0-9 _ . : -", (prefix) =>
          typeof prefix === "string" && /^[A-Za-z0-9_.:-]{0,64}$/.test(prefix) ? { ok: true, value: prefix } : { ok: false, message: "must be up to 64 characters of A-Z a-z 0-9 _ . : -" },
        ),
        STATE_DEFAULTS.prefix,
      ),
    },
    {
      unknown: (key) => `unknown option "${key}" (known: ${KEYS.join(", ")})`,
      notMapping: () => 'expected { path: "data/xmpp-guard.sqlite" }',
    },
  ),
);

/** STATE_SPEC's verdict as its first problem; absent or null is the defaults. */
export function parseStateOptions(raw: unknown): ParseResult<StateOptions> {
  if (raw === undefined || raw === null) return { ok: true, value: STATE_DEFAULTS, notes: [] };
  return firstIssue(validate(STATE_SPEC, raw));
}
