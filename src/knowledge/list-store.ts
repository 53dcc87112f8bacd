// Where remote lists keep their last good copy between restarts: the SQLite
// state file (table remote_lists), or Redis when state.redis is set (one hash
// per URL: P list:<sha256 of the URL> with body, etag, last_modified,
// fetched_at). A copy is only a head start: the list is fetched again at
// start, so a lost or failed save costs nothing but that head start.
import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import { RUNNING_BUSY_TIMEOUT_MS, SqliteStore, type RemoteListCopy } from "../state/sqlite-store.js";
import { withTimeout } from "../state/redis-connect.js";
import type { ListCopyStore } from "./remote-lists.js";

export class SqliteListStore implements ListCopyStore {
  readonly #store: SqliteStore;
  readonly #owned: boolean;

  /** Over an open store (owned: closed with this one). */
  constructor(store: SqliteStore, owned = false) {
    this.#store = store;
    this.#owned = owned;
  }

  /** Opens the state file for the lists alone (registration off, or before its store opens). */
  static open(path: string): SqliteListStore {
    return new SqliteListStore(SqliteStore.open(path, { busyTimeoutMs: RUNNING_BUSY_TIMEOUT_MS }), true);
  }

  load(url: string): Promise<RemoteListCopy | undefined> {
    try {
      return Promise.resolve(this.#store.getRemoteList(url));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  save(url: string, copy: RemoteListCopy): Promise<void> {
    try {
      this.#store.putRemoteList(url, copy);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  close(): void {
    if (this.#owned) this.#store.close();
  }
}

export class RedisListStore implements ListCopyStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #timeoutMs: number;

  constructor(url: string, prefix: string, timeoutMs = 5000) {
    this.#redis = new Redis(url, { lazyConnect: false, connectTimeout: timeoutMs, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    // Errors reach the caller of each command; the connection retries by itself.
    this.#redis.on("error", () => undefined);
    this.#prefix = prefix;
    this.#timeoutMs = timeoutMs;
  }

  #key(url: string): string {
    return `${this.#prefix}list:${createHash("sha256").update(url).digest("hex")}`;
  }

  async load(url: string): Promise<RemoteListCopy | undefined> {
    const h = await withTimeout(this.#redis.hgetall(this.#key(url)), this.#timeoutMs, "state.redis: reading a remote list copy");
    if (h.body === undefined || h.url !== url) return undefined;
    return { body: h.body, etag: h.etag || null, last_modified: h.last_modified || null, fetched_at: Number(h.fetched_at) || 0 };
  }

  async save(url: string, copy: RemoteListCopy): Promise<void> {
    await withTimeout(
      this.#redis.hset(this.#key(url), { url, body: copy.body, etag: copy.etag ?? "", last_modified: copy.last_modified ?? "", fetched_at: String(copy.fetched_at) }),
      this.#timeoutMs,
      "state.redis: saving a remote list copy",
    );
  }

  close(): void {
    this.#redis.disconnect();
  }
}
