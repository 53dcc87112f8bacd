// Fleet-wide limits through one Redis (docs/deploy.md, "Fleets: every limit
// across instances"). One mechanism for every limit keyed by something wider
// than one TCP session (an IP, a JID, a room occupant, a firewall LIMIT key):
//
// Token buckets (firewall LIMIT, MUC per-occupant buckets) are decided on the
// data path synchronously, from a local lease of tokens per key. Leases are
// refilled asynchronously by one Lua script per request (token bucket refilled
// by Redis TIME, so instance clocks do not matter); ioredis auto-pipelining
// sends every request issued in one tick as one write. An instance asks for
// more when its lease runs below half, so a key in steady use costs about one
// script call per lease, not one per stanza.
//
//   Over-admission: a key an instance has not seen yet gets one provisional
//   lease (what it spends is debited from Redis with its first request, into
//   debt if need be); a lease not spent within LEASE_TTL_MS, or held by a
//   key that is short or forgotten, goes back to Redis with the next request.
//   So the fleet admits at most one lease per instance per key beyond what
//   one bucket would: N × lease(capacity) in the worst case, lease(c) =
//   clamp(ceil(c / 4), 1, 64). Under-admission: events arriving on one
//   instance faster than one Redis round trip draw on the local lease only.
//   A key refused by Redis is not asked again until Redis said a token would
//   be there, so a refused flood costs no Redis calls.
//
// Connection counters (limits.max_connections_per_ip) are not buckets: each
// instance stores its own count per IP in a hash field; its liveness is a
// score in a sorted set refreshed by a heartbeat, so a dead instance's
// connections stop counting after INSTANCE_TTL_MS. Admission of a connection
// asks Redis once (sum of the live instances' counts, and the connection
// rate bucket, in one script) with a bound of ADMIT_TIMEOUT_MS; a stanza
// never waits on Redis.
//
// When Redis is slow or gone (docs/deploy.md, "When Redis is slow or gone"),
// every kind fails open to the instance's own limits: the same bucket or cap,
// counted by this instance alone (so a flooder spread over N instances gets
// at most N times the limit again). A request without an answer within
// COMMAND_TIMEOUT_MS marks Redis down; ioredis reconnects by itself and the
// heartbeat marks it up again; leases and counts are then taken from Redis
// again (each instance's counts are written back, in case Redis lost them).
//
// The Redis side (keys, Lua scripts) is state/fleet-scripts.ts.
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { realClock, type Clock } from "../shaping/clock.js";
import { TokenBucket } from "../shaping/token-bucket.js";
import { defineScripts, type FleetRedis } from "./fleet-scripts.js";
import { redactUrl } from "./redis-connect.js";

/** A request without an answer within this marks Redis down (the data path never waits on it). */
export const COMMAND_TIMEOUT_MS = 250;
/** Longest a new connection waits for the fleet's verdict before the local one is used. */
export const ADMIT_TIMEOUT_MS = 250;
/** A lease not spent within this goes back to Redis (leases held idle would otherwise strand tokens). */
export const LEASE_TTL_MS = 2000;
/** How often an instance proves it is alive (and checks Redis). */
export const HEARTBEAT_MS = 2000;
/** An instance silent this long no longer counts in the connection caps. */
export const INSTANCE_TTL_MS = 10_000;
/** Entries untouched this long are forgotten locally (Redis expires its own). */
const IDLE_MS = 60_000;
/**
 * Most buckets held locally; past it the oldest is forgotten (its unspent
 * lease goes back to Redis and what it spent is debited, in one request).
 */
export const MAX_ENTRIES = 200_000;

/** Tokens an instance takes from Redis at a time for a bucket of `capacity`. */
export function leaseSize(capacity: number): number {
  return Math.max(1, Math.min(64, Math.ceil(capacity / 4)));
}

/** A bucket: `rate` tokens per second up to `capacity` (both as TokenBucket takes them). */
export interface FleetBucketSpec {
  readonly rate: number;
  readonly capacity: number;
}

/** The kinds of state kept by this module, as the metrics label them. */
export type FleetKind = "firewall" | "occupant" | "connection";

/** Why a connection is refused, as the listener's own admission names it. */
export type ConnectionRefusal = "XPX_ERR_TOO_MANY_CONNECTIONS" | "XPX_ERR_CONNECTION_RATE";

export interface FleetHooks {
  /** Redis went down (true) or came back (false); logged once per change. */
  onState?(up: boolean, why: string): void;
  /** A decision made locally because Redis could not be asked (the fail-open metric). */
  onLocal?(kind: FleetKind): void;
  /** A request failed (counted; not logged per request). */
  onError?(err: unknown, op: string): void;
}

interface Entry {
  readonly spec: FleetBucketSpec;
  /** Half a lease: below it a new one is asked for. */
  readonly half: number;
  /** Tokens granted by Redis, spendable until `leaseUntil`. */
  backed: number;
  leaseUntil: number;
  /** What is left of the first-contact allowance (not backed by Redis). */
  provisional: number;
  /** Spent from the provisional allowance (or while Redis was down) and not yet debited in Redis. */
  unreported: number;
  inflight: boolean;
  /** No request before this (Redis said the bucket is empty until then). */
  retryAt: number;
  last: number;
  /** The instance's own bucket while Redis is down; null while up. */
  local: TokenBucket | null;
}

export interface FleetBucketsOptions {
  readonly url: string;
  readonly prefix: string;
  readonly hooks?: FleetHooks;
  /** Monotonic ms (leases, retries, the local fallback buckets). */
  readonly clock?: Clock;
  /** Bound on the first connection; past it the instance starts on its own limits and keeps trying. */
  readonly connectTimeoutMs?: number;
  /** Most buckets held locally (default MAX_ENTRIES). */
  readonly maxEntries?: number;
}

export class FleetBuckets {
  readonly #r: FleetRedis;
  readonly #client: Redis | null;
  readonly #p: string;
  readonly #clock: Clock;
  readonly #hooks: FleetHooks;
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  /** This instance's open connections per IP, as last written to Redis. */
  readonly #counts = new Map<string, number>();
  readonly id = randomUUID();
  #up: boolean;
  #why = "";
  #beat: NodeJS.Timeout | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #closed = false;
  /** Requests sent and not yet answered (tests, bench: flush()). */
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Decisions made locally, by kind (tests; the metric counts the same). */
  readonly localDecisions: Record<FleetKind, number> = { firewall: 0, occupant: 0, connection: 0 };

  /** Connects to Redis (ioredis, reconnecting by itself) and starts the heartbeat. */
  static async open(options: FleetBucketsOptions): Promise<FleetBuckets> {
    const client = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: options.connectTimeoutMs ?? 5000,
      retryStrategy: (times) => Math.min(100 * times, 1000),
    });
    defineScripts(client);
    const fleet = new FleetBuckets(client as unknown as FleetRedis, options, client);
    try {
      await client.connect();
      await fleet.heartbeat();
    } catch (err) {
      fleet.#down(`state.redis ${redactUrl(options.url)}: ${err instanceof Error ? err.message : String(err)}`);
    }
    return fleet;
  }

  /** `client` is only for closing and connection events; tests pass a double as `r`. */
  constructor(r: FleetRedis, options: Omit<FleetBucketsOptions, "url">, client: Redis | null = null) {
    this.#r = r;
    this.#client = client;
    this.#p = options.prefix;
    this.#clock = options.clock ?? realClock;
    this.#hooks = options.hooks ?? {};
    this.#maxEntries = options.maxEntries ?? MAX_ENTRIES;
    this.#up = true;
    if (client !== null) {
      client.on("error", (err: Error) => this.#hooks.onError?.(err, "fleet-redis"));
      client.on("close", () => this.#down("connection to Redis lost"));
      client.on("ready", () => void this.heartbeat());
      this.#beat = setInterval(() => void this.heartbeat(), HEARTBEAT_MS).unref();
    }
    this.#sweep = setInterval(() => this.sweep(), IDLE_MS).unref();
  }

  /** Whether limits are fleet-wide right now (false: each instance applies its own). */
  get up(): boolean {
    return this.#up;
  }

  /** Why Redis is considered down ("" while up). */
  get why(): string {
    return this.#up ? "" : this.#why;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Whether `cost` tokens of bucket `name` are there for this instance now
   * (nothing is spent). Synchronous: answered from the local lease; a refill
   * is requested in the background when the lease runs low.
   */
  covers(kind: FleetKind, name: string, spec: FleetBucketSpec, cost: number): boolean {
    if (cost <= 0) return true;
    const now = this.#clock.now();
    const e = this.#entry(name, spec, now);
    if (e.local !== null) {
      this.#hooks.onLocal?.(kind);
      this.localDecisions[kind]++;
      return e.local.balance(now) >= cost;
    }
    if (e.backed > 0 && now > e.leaseUntil) {
      // An expired lease goes back to Redis with the next request.
      e.unreported -= e.backed;
      e.backed = 0;
    }
    const have = e.backed + e.provisional;
    if (have >= cost) return true;
    // Short: what is left of the lease goes back with a request for one that
    // covers `cost` (leases scattered over instances would otherwise strand
    // tokens). Low leases are topped up by spend(), once the spending is recorded.
    if (!e.inflight && e.backed > 0 && this.#up) {
      e.unreported -= e.backed;
      e.backed = 0;
    }
    this.#refill(name, e, now, cost);
    return false;
  }

  /** Spends `cost` tokens of `name` (after covers() said yes); a negative cost is a refund. */
  spend(name: string, cost: number): void {
    if (cost === 0) return;
    const e = this.#entries.get(name);
    if (e === undefined) return;
    const now = this.#clock.now();
    if (cost < 0) {
      // Given back to Redis with the next request (locally too while down).
      e.local?.credit(-cost, now);
      e.unreported += cost;
      return;
    }
    if (e.local !== null) {
      e.local.take(cost, now);
      // Counted against Redis's bucket too once it answers again.
      e.unreported += cost;
      return;
    }
    let left = cost;
    const fromBacked = Math.min(e.backed, left);
    e.backed -= fromBacked;
    left -= fromBacked;
    if (left > 0) {
      const fromProvisional = Math.min(e.provisional, left);
      e.provisional -= fromProvisional;
      e.unreported += fromProvisional;
      left -= fromProvisional;
    }
    if (left > 0) e.unreported += left;
    if (e.backed < e.half) this.#refill(name, e, now, cost);
  }

  /** covers() then spend(): Prosody's poll (nothing is taken when refused). */
  poll(kind: FleetKind, name: string, spec: FleetBucketSpec, cost = 1): boolean {
    // The common case first: a live lease that covers the cost (one clock read, one lookup).
    const e = this.#entries.get(name);
    if (e !== undefined && e.local === null && e.backed >= cost && cost > 0 && e.spec.rate === spec.rate && e.spec.capacity === spec.capacity) {
      const now = this.#clock.now();
      if (now <= e.leaseUntil) {
        e.last = now;
        e.backed -= cost;
        if (e.backed < e.half) this.#refill(name, e, now, cost);
        return true;
      }
    }
    if (!this.covers(kind, name, spec, cost)) return false;
    this.spend(name, cost);
    return true;
  }

  /**
   * Asks the fleet whether a new connection from `ip` may open: at most
   * `max` connections from it across live instances (0: no cap), counting
   * `mine` of this instance's (the new one included), and a token of the
   * connection rate bucket (`rate` null: none). Resolves undefined (admitted,
   * and recorded), a refusal, or null: Redis could not answer in time, decide
   * locally.
   */
  async admitConnection(ip: string, mine: number, max: number, rate: FleetBucketSpec | null): Promise<ConnectionRefusal | undefined | null> {
    if (!this.#up || this.#closed) {
      this.localDecisions.connection++;
      this.#hooks.onLocal?.("connection");
      return null;
    }
    const p = this.#p;
    try {
      const r = await timeout(
        this.#track(this.#r.fleetAdmit(`${p}fleet:conn:${ip}`, `${p}fleet:instances`, `${p}fleet:b:connrate:${ip}`, this.id, String(mine), String(max), rate === null ? "0" : fmt(rate.rate), rate === null ? "0" : fmt(rate.capacity))),
        ADMIT_TIMEOUT_MS,
      );
      const n = Number(r);
      // A refused connection is not recorded by the script; the listener's own count (setConnections) says the rest.
      return n === 1 ? "XPX_ERR_TOO_MANY_CONNECTIONS" : n === 2 ? "XPX_ERR_CONNECTION_RATE" : undefined;
    } catch (err) {
      this.#failed(err, "fleet-admit");
      this.localDecisions.connection++;
      this.#hooks.onLocal?.("connection");
      return null;
    }
  }

  /** A decision of `kind` made locally by the caller because Redis is down (counted like the module's own). */
  noteLocal(kind: FleetKind): void {
    this.localDecisions[kind]++;
    this.#hooks.onLocal?.(kind);
  }

  /** This instance now has `count` connections from `ip` (every open and close; written in the background). */
  setConnections(ip: string, count: number): void {
    if (count > 0) this.#counts.set(ip, count);
    else this.#counts.delete(ip);
    if (!this.#up || this.#closed) return;
    this.#send(this.#r.fleetSetCount(`${this.#p}fleet:conn:${ip}`, this.id, String(count)), "fleet-count");
  }

  /** Proves this instance alive; marks Redis up (writing its counts back) or down. */
  async heartbeat(): Promise<void> {
    if (this.#closed) return;
    try {
      await timeout(this.#track(this.#r.fleetHeartbeat(`${this.#p}fleet:instances`, this.id, String(INSTANCE_TTL_MS))), COMMAND_TIMEOUT_MS);
      if (!this.#up) this.#recover();
    } catch (err) {
      this.#failed(err, "fleet-heartbeat");
    }
  }

  /** Forgets entries idle for a while (their Redis keys expire by themselves). */
  sweep(now: number = this.#clock.now()): number {
    let n = 0;
    for (const [k, e] of this.#entries) {
      if (now - e.last >= IDLE_MS && !e.inflight) {
        this.#forget(k, e);
        n++;
      }
    }
    return n;
  }

  /** Drops a bucket held locally; its unspent lease and unsent debit go to Redis. */
  #forget(name: string, e: Entry): void {
    this.#entries.delete(name);
    const debit = e.unreported - e.backed;
    if (debit === 0 || e.local !== null || !this.#up || this.#closed) return;
    this.#send(this.#r.fleetLease(`${this.#p}fleet:b:${name}`, fmt(e.spec.rate), fmt(e.spec.capacity), fmt(debit), "0", "0"), "fleet-lease");
  }

  /** Resolves when every request sent so far has been answered (or failed). */
  async flush(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#beat);
    clearInterval(this.#sweep);
    const c = this.#client;
    if (c !== null) void c.quit().catch(() => c.disconnect());
  }

  #entry(name: string, spec: FleetBucketSpec, now: number): Entry {
    let e = this.#entries.get(name);
    if (e === undefined || e.spec.rate !== spec.rate || e.spec.capacity !== spec.capacity) {
      if (e === undefined && this.#entries.size >= this.#maxEntries) {
        const [oldest, old] = this.#entries.entries().next().value as [string, Entry];
        this.#forget(oldest, old);
      }
      e = {
        spec,
        half: leaseSize(spec.capacity) / 2,
        backed: 0,
        leaseUntil: 0,
        // The first contact: one lease on trust (see the header).
        provisional: Math.min(leaseSize(spec.capacity), spec.capacity),
        unreported: 0,
        inflight: false,
        retryAt: 0,
        last: now,
        local: this.#up ? null : localBucket(spec, now),
      };
      this.#entries.set(name, e);
    }
    e.last = now;
    return e;
  }

  #refill(name: string, e: Entry, now: number, need: number): void {
    // Before a retry is due only a debit or a give-back is worth sending.
    if (e.inflight || (now < e.retryAt && e.unreported === 0) || !this.#up || this.#closed) return;
    e.inflight = true;
    const spec = e.spec;
    const debit = e.unreported;
    const want = Math.max(leaseSize(spec.capacity), need);
    const sent = this.#r.fleetLease(`${this.#p}fleet:b:${name}`, fmt(spec.rate), fmt(spec.capacity), fmt(debit), fmt(want), fmt(need));
    this.#send(sent.then(
      (reply) => {
        e.inflight = false;
        const grant = Number(reply[0]);
        const wait = Number(reply[1]);
        const at = this.#clock.now();
        e.unreported -= debit;
        // The provisional allowance was only until Redis answered.
        e.provisional = 0;
        if (grant > 0) {
          e.backed += grant;
          e.leaseUntil = at + LEASE_TTL_MS;
        } else {
          e.retryAt = at + (Number.isFinite(wait) ? wait : 1000);
        }
      },
      (err: unknown) => {
        e.inflight = false;
        throw err;
      },
    ), "fleet-lease");
  }

  #send(p: Promise<unknown>, op: string): void {
    // The client's own commandTimeout (COMMAND_TIMEOUT_MS) bounds it: no timer per request here.
    this.#track(p).catch((err: unknown) => this.#failed(err, op));
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p);
    const done = (): void => void this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  #failed(err: unknown, op: string): void {
    this.#hooks.onError?.(err, op);
    this.#down(`${op}: ${err instanceof Error ? err.message : String(err)}`);
  }

  /** Every bucket falls back to one of this instance's own, starting full (fail open to per-instance limits). */
  #down(why: string): void {
    if (!this.#up || this.#closed) return;
    this.#up = false;
    this.#why = why;
    const now = this.#clock.now();
    for (const e of this.#entries.values()) {
      e.local = localBucket(e.spec, now);
      e.backed = 0;
      e.provisional = 0;
      e.inflight = false;
    }
    this.#hooks.onState?.(false, why);
  }

  /** Redis answers again: buckets go back to leases (one provisional each), counts are written back. */
  #recover(): void {
    this.#up = true;
    this.#why = "";
    for (const e of this.#entries.values()) {
      e.local = null;
      e.backed = 0;
      e.provisional = Math.min(leaseSize(e.spec.capacity), e.spec.capacity);
      e.retryAt = 0;
      // What was spent while down is debited with the next request, up to one bucket.
      if (e.unreported > e.spec.capacity) e.unreported = e.spec.capacity;
    }
    for (const [ip, n] of this.#counts) this.#send(this.#r.fleetSetCount(`${this.#p}fleet:conn:${ip}`, this.id, String(n)), "fleet-count");
    this.#hooks.onState?.(true, "");
  }
}

/** The instance's own bucket while Redis is down (a bucket that never refills refills negligibly). */
function localBucket(spec: FleetBucketSpec, now: number): TokenBucket {
  return new TokenBucket(spec.rate > 0 ? spec.rate : 1e-9, spec.capacity, now);
}

function timeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A double as Lua reads it back exactly. */
function fmt(x: number): string {
  return Number.isFinite(x) ? String(x) : "0";
}
