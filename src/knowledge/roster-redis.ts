// Learned rosters in Redis when `state.redis` is set, shared by every
// instance of a fleet, as a replicated cache (state/redis-replica.ts): every
// roster is loaded into memory; lookups are answered from memory; each write
// is applied locally at once and sent as one Lua script that changes the
// owner's hash and PUBLISHes the change.
//
// Keys (P = state.prefix):
//   P roster:<owner>   hash  "v"          → JSON [ver|null]: present when the whole roster was seen
//                            "i:<contact>" → JSON [subscription, ask|null, groups]
//                            "p:<contact>" → "1": a pending inbound subscription request
//   P roster-events    pub/sub channel of the changes
import { RedisReplica } from "../state/redis-replica.js";
import { applyTo, emptyOwner, type OwnerState, type RosterItem, type RosterStore, type Subscription } from "./roster-store.js";

export interface RedisRosterStoreOptions {
  readonly url: string;
  readonly prefix: string;
  readonly connectTimeoutMs?: number;
  /** A background write or the subscription failed (the cache keeps answering). */
  readonly onError?: (err: unknown, op: string) => void;
}

type ItemJson = [Subscription, "subscribe" | null, string[]];

type Event =
  | { t: "r"; k: string; ver: string | null; items: Array<[string, ItemJson]> }
  | { t: "i"; k: string; c: string; v: ItemJson | null; ver: string | null }
  | { t: "p"; k: string; c: string; v: boolean };

// ARGV: ver JSON, channel, event, then field/value pairs.
const LUA_REPLACE = `
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 2) == 'i:' then redis.call('HDEL', KEYS[1], f) end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;
// ARGV: field, value ('' deletes), ver JSON, channel, event. The version moves only on a known roster.
const LUA_ITEM = `
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
if redis.call('HEXISTS', KEYS[1], 'v') == 1 then redis.call('HSET', KEYS[1], 'v', ARGV[3]) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1`;
// ARGV: field, '1' sets / '' clears, channel, event.
const LUA_PENDING = `
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], '1') end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1`;

function toJson(it: RosterItem): ItemJson {
  return [it.subscription, it.ask ?? null, [...it.groups]];
}

function fromJson(j: ItemJson): RosterItem {
  return { subscription: j[0], ask: j[1] === "subscribe" ? "subscribe" : undefined, groups: j[2] };
}

export class RedisRosterStore implements RosterStore {
  /** Set by open() before the store is handed out. */
  #rep!: RedisReplica;
  readonly #p: string;
  readonly #owners = new Map<string, OwnerState>();

  /** Connects, subscribes, loads every roster under the prefix. Rejects (and disconnects) when Redis is unreachable in time. */
  static async open(options: RedisRosterStoreOptions): Promise<RedisRosterStore> {
    const store = new RedisRosterStore(options.prefix);
    store.#rep = await RedisReplica.open(
      { url: options.url, channel: `${options.prefix}roster-events`, connectTimeoutMs: options.connectTimeoutMs, onError: options.onError, what: "loading rosters" },
      { load: (rep) => store.#load(rep), apply: (change) => store.#apply(change as Event) },
    );
    return store;
  }

  private constructor(prefix: string) {
    this.#p = prefix;
  }

  #key(owner: string): string {
    return `${this.#p}roster:${owner}`;
  }

  async #load(rep: RedisReplica): Promise<void> {
    const prefix = `${this.#p}roster:`;
    await rep.scan(`${prefix}*`, async (key) => {
      const h = await rep.r.hgetall(key);
      const s = emptyOwner();
      for (const [f, v] of Object.entries(h)) {
        if (f === "v") {
          s.known = true;
          s.ver = (JSON.parse(v) as [string | null])[0] ?? undefined;
        } else if (f.startsWith("i:")) s.items.set(f.slice(2), fromJson(JSON.parse(v) as ItemJson));
        else if (f.startsWith("p:")) s.pending.add(f.slice(2));
      }
      this.#owners.set(key.slice(prefix.length), s);
    });
  }

  #owner(owner: string): OwnerState {
    let s = this.#owners.get(owner);
    if (s === undefined) this.#owners.set(owner, (s = emptyOwner()));
    return s;
  }

  #apply(e: Event): void {
    switch (e.t) {
      case "r":
        applyTo.replace(this.#owner(e.k), e.ver ?? undefined, new Map(e.items.map(([c, j]) => [c, fromJson(j)])));
        break;
      case "i":
        applyTo.setItem(this.#owner(e.k), e.c, e.v === null ? null : fromJson(e.v), e.ver ?? undefined);
        break;
      case "p":
        applyTo.setPendingIn(this.#owner(e.k), e.c, e.v);
        break;
    }
  }

  #send(op: string, p: Promise<unknown>): void {
    this.#rep.send(op, p);
  }

  #check(): void {
    if (this.#rep.closed) throw new Error("RedisRosterStore is closed");
  }

  known(owner: string): { readonly ver: string | undefined } | undefined {
    this.#check();
    const s = this.#owners.get(owner);
    return s?.known === true ? { ver: s.ver } : undefined;
  }

  item(owner: string, contact: string): RosterItem | undefined {
    this.#check();
    return this.#owners.get(owner)?.items.get(contact);
  }

  pendingIn(owner: string, contact: string): boolean {
    this.#check();
    return this.#owners.get(owner)?.pending.has(contact) ?? false;
  }

  replace(owner: string, ver: string | undefined, items: ReadonlyMap<string, RosterItem>): void {
    this.#check();
    applyTo.replace(this.#owner(owner), ver, items);
    const pairs: Array<[string, ItemJson]> = [...items].map(([c, it]) => [c, toJson(it)]);
    const event: Event = { t: "r", k: owner, ver: ver ?? null, items: pairs };
    const args = pairs.flatMap(([c, j]) => [`i:${c}`, JSON.stringify(j)]);
    this.#send("roster", this.#rep.r.eval(LUA_REPLACE, 1, this.#key(owner), JSON.stringify([ver ?? null]), this.#rep.channel, JSON.stringify(event), ...args));
  }

  setItem(owner: string, contact: string, item: RosterItem | null, ver: string | undefined): void {
    this.#check();
    applyTo.setItem(this.#owner(owner), contact, item, ver);
    const j = item === null ? null : toJson(item);
    const event: Event = { t: "i", k: owner, c: contact, v: j, ver: ver ?? null };
    this.#send(
      "roster",
      this.#rep.r.eval(LUA_ITEM, 1, this.#key(owner), `i:${contact}`, j === null ? "" : JSON.stringify(j), JSON.stringify([ver ?? null]), this.#rep.channel, JSON.stringify(event)),
    );
  }

  setPendingIn(owner: string, contact: string, pending: boolean): void {
    this.#check();
    applyTo.setPendingIn(this.#owner(owner), contact, pending);
    const event: Event = { t: "p", k: owner, c: contact, v: pending };
    this.#send("roster", this.#rep.r.eval(LUA_PENDING, 1, this.#key(owner), `p:${contact}`, pending ? "1" : "", this.#rep.channel, JSON.stringify(event)));
  }

  countKnown(): number {
    let n = 0;
    for (const s of this.#owners.values()) if (s.known) n++;
    return n;
  }

  /** Resolves when every write sent so far has been answered by Redis. */
  flush(): Promise<void> {
    return this.#rep.flush();
  }

  /** Resolves once this instance has applied every change Redis published before now. */
  sync(): Promise<void> {
    return this.#rep.sync();
  }

  close(): void {
    this.#rep.close();
  }
}
