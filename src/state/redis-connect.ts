// Opening the two ioredis connections a shared store needs (commands, and a
// subscriber for its pub/sub channel) within a bound, the same way for every
// store: connect both, run the store's own start-up (subscribe, load), and on
// any failure disconnect both and reject with the redacted URL in the message.
import { Redis } from "ioredis";

/** The URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(invalid URL)";
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export interface RedisPairOptions {
  readonly url: string;
  /** Bound on connecting; start-up gets `startMultiple` times as long. */
  readonly connectTimeoutMs?: number;
}

/**
 * Connects a command and a subscriber connection, builds the store over them
 * with `make`, and runs its `start` (what it does before answering: subscribe,
 * load a snapshot) within `startMultiple` × the connect timeout.
 */
export async function openRedisPair<T>(
  options: RedisPairOptions,
  make: (r: Redis, sub: Redis) => T,
  start: { readonly run: (store: T) => Promise<unknown>; readonly what: string; readonly startMultiple?: number },
): Promise<T> {
  const timeout = options.connectTimeoutMs ?? 5000;
  const common = { lazyConnect: true, connectTimeout: timeout, maxRetriesPerRequest: 2, enableOfflineQueue: true } as const;
  const r = new Redis(options.url, common);
  const sub = new Redis(options.url, common);
  const store = make(r, sub);
  const where = `state.redis ${redactUrl(options.url)}`;
  try {
    await withTimeout(Promise.all([r.connect(), sub.connect()]), timeout, where);
    await withTimeout(start.run(store), timeout * (start.startMultiple ?? 1), `${where}: ${start.what}`);
  } catch (err) {
    r.disconnect();
    sub.disconnect();
    throw new Error(`${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return store;
}
