// Fleet-wide leases and connection counts (src/state/fleet-buckets.ts) over a
// real redis-server on loopback: two instances sharing one Redis, an attacker
// that alternates between them, retries, many keys, a burst within one round
// trip (the documented lease slack), a Redis that stops answering (fail open
// to the instance's own bucket, counted) and comes back, and a dead
// instance's connections that stop counting.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { FakeClock } from "../../test/helpers/fake-clock.js";
import { haveRedis, startRedis, type RedisInstance } from "../../test/helpers/redis.js";
import { FleetBuckets, leaseSize } from "./fleet-buckets.js";
import { defineScripts, type FleetRedis } from "./fleet-scripts.js";

let redis: RedisInstance | undefined;
const clients: Redis[] = [];
const fleets: FleetBuckets[] = [];
const skip = !haveRedis();

before(async () => {
  if (!skip) redis = await startRedis();
});

after(async () => {
  for (const f of fleets) f.close();
  for (const c of clients) c.disconnect();
  await redis?.stop();
});

/** A Redis double over a real client: counts calls, and can be made to fail (Redis "gone"). */
class Switchable implements FleetRedis {
  calls = 0;
  broken = false;
  readonly #r: FleetRedis;
  constructor(r: FleetRedis) {
    this.#r = r;
  }
  #go<T>(f: () => Promise<T>): Promise<T> {
    this.calls++;
    return this.broken ? Promise.reject(new Error("connection refused")) : f();
  }
  fleetLease(...a: Parameters<FleetRedis["fleetLease"]>): Promise<[string, string]> {
    return this.#go(() => this.#r.fleetLease(...a));
  }
  fleetAdmit(...a: Parameters<FleetRedis["fleetAdmit"]>): Promise<number> {
    return this.#go(() => this.#r.fleetAdmit(...a));
  }
  fleetSetCount(...a: Parameters<FleetRedis["fleetSetCount"]>): Promise<unknown> {
    return this.#go(() => this.#r.fleetSetCount(...a));
  }
  fleetHeartbeat(...a: Parameters<FleetRedis["fleetHeartbeat"]>): Promise<unknown> {
    return this.#go(() => this.#r.fleetHeartbeat(...a));
  }
}

let prefixN = 0;

async function pair(): Promise<{ a: FleetBuckets; b: FleetBuckets; ra: Switchable; rb: Switchable; clock: FakeClock; raw: Redis; prefix: string }> {
  const prefix = `t${++prefixN}:`;
  const clock = new FakeClock(1000);
  const mk = async (): Promise<Switchable> => {
    const c = new Redis(redis!.url, { enableAutoPipelining: true });
    clients.push(c);
    defineScripts(c);
    return new Switchable(c as unknown as FleetRedis);
  };
  const ra = await mk();
  const rb = await mk();
  const a = new FleetBuckets(ra, { prefix, clock });
  const b = new FleetBuckets(rb, { prefix, clock });
  fleets.push(a, b);
  await a.heartbeat();
  await b.heartbeat();
  const raw = new Redis(redis!.url);
  clients.push(raw);
  return { a, b, ra, rb, clock, raw, prefix };
}

// A bucket that never refills within the test: rate 0.
const NO_REFILL = { rate: 0, capacity: 10 };

test("an attacker alternating between two instances gets one bucket's capacity, as through one instance", { skip }, async () => {
  const { a, b } = await pair();
  let admitted = 0;
  for (let i = 0; i < 30; i++) {
    const via = i % 2 === 0 ? a : b;
    if (via.poll("firewall", "k", NO_REFILL)) admitted++;
    await a.flush();
    await b.flush();
  }
  assert.equal(admitted, 10);
});

test("the same sender's retries after a refusal cost no Redis call until a token is due", { skip }, async () => {
  const { a, ra } = await pair();
  for (let i = 0; i < 10; i++) {
    assert.equal(a.poll("firewall", "r", NO_REFILL), true);
    await a.flush();
  }
  assert.equal(a.poll("firewall", "r", NO_REFILL), false);
  await a.flush();
  const calls = ra.calls;
  for (let i = 0; i < 100; i++) assert.equal(a.poll("firewall", "r", NO_REFILL), false);
  await a.flush();
  assert.equal(ra.calls, calls, "a refused flood asks Redis nothing");
});

test("a burst within one round trip: at most one lease per instance per key beyond the bucket", { skip }, async () => {
  const { a, b } = await pair();
  const slack = 2 * leaseSize(NO_REFILL.capacity);
  let admitted = 0;
  for (let round = 0; round < 10; round++) {
    // Both instances judge a burst synchronously, before any answer.
    for (let i = 0; i < 8; i++) {
      if (a.poll("firewall", "burst", NO_REFILL)) admitted++;
      if (b.poll("firewall", "burst", NO_REFILL)) admitted++;
    }
    await a.flush();
    await b.flush();
  }
  assert.ok(admitted >= NO_REFILL.capacity, `admitted ${admitted}`);
  assert.ok(admitted <= NO_REFILL.capacity + slack, `admitted ${admitted} > ${NO_REFILL.capacity} + ${slack}`);
});

test("many keys are independent buckets, fractional costs within the lease slack, nothing stranded in leases", { skip }, async () => {
  const { a, b } = await pair();
  const counts = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const key = `room${i % 20}/sender`;
    const via = i % 3 === 0 ? a : b;
    if (via.poll("occupant", key, { rate: 0, capacity: 5 }, 1.25)) counts.set(key, (counts.get(key) ?? 0) + 1);
    await a.flush();
    await b.flush();
  }
  assert.equal(counts.size, 20);
  // 5 tokens at 1.25 each: 4 through one bucket; a second instance's first
  // contact may add what one provisional lease (2 tokens) pays for, once.
  const slack = 2 * Math.floor(leaseSize(5) / 1.25);
  for (const [k, n] of counts) assert.ok(n >= 4 && n <= 4 + slack, `${k}: ${n}`);
});

test("Redis gone: decisions fall back to the instance's own bucket (counted), and go back to Redis when it answers", { skip }, async () => {
  const { a, b, ra, rb } = await pair();
  const states: boolean[] = [];
  const spec = { rate: 0, capacity: 4 };
  // Half the bucket spent through the fleet.
  assert.equal(a.poll("firewall", "d", spec), true);
  await a.flush();
  assert.equal(b.poll("firewall", "d", spec), true);
  await b.flush();
  ra.broken = true;
  rb.broken = true;
  await a.heartbeat();
  await b.heartbeat();
  assert.equal(a.up, false);
  assert.match(a.why, /connection refused/);
  // Fail open to per-instance limits: each instance's own bucket, full.
  let local = 0;
  for (let i = 0; i < 10; i++) if (a.poll("firewall", "d", spec)) local++;
  assert.equal(local, spec.capacity);
  assert.ok(a.localDecisions.firewall >= 10);
  // Redis back: the heartbeat notices, and the bucket is Redis's again
  // (what was spent while down is debited: it is empty now).
  ra.broken = false;
  rb.broken = false;
  await a.heartbeat();
  assert.equal(a.up, true);
  states.push(a.up);
  let after = 0;
  for (let i = 0; i < 10; i++) {
    if (a.poll("firewall", "d", spec)) after++;
    await a.flush();
  }
  // One provisional lease at most (the documented slack after recovery).
  assert.ok(after <= leaseSize(spec.capacity), `admitted ${after} after recovery`);
  const before = a.localDecisions.firewall;
  a.poll("firewall", "d", spec);
  assert.equal(a.localDecisions.firewall, before, "no local decisions once Redis answers");
});

test("per-IP cap across instances, and a dead instance's connections stop counting", { skip }, async () => {
  const { a, b, raw, prefix } = await pair();
  const ip = "192.0.2.7";
  let onA = 0;
  let onB = 0;
  const results: (string | undefined | null)[] = [];
  for (let i = 0; i < 6; i++) {
    const viaA = i % 2 === 0;
    const mine = (viaA ? onA : onB) + 1;
    const r = await (viaA ? a : b).admitConnection(ip, mine, 3, null);
    results.push(r);
    if (r === undefined) {
      if (viaA) a.setConnections(ip, ++onA);
      else b.setConnections(ip, ++onB);
    }
    await a.flush();
    await b.flush();
  }
  assert.deepEqual(results, [undefined, undefined, undefined, "XPX_ERR_TOO_MANY_CONNECTIONS", "XPX_ERR_TOO_MANY_CONNECTIONS", "XPX_ERR_TOO_MANY_CONNECTIONS"]);
  // A connection on B closes: one more may open, on either instance.
  b.setConnections(ip, --onB);
  await b.flush();
  assert.equal(await b.admitConnection(ip, onB + 1, 3, null), undefined);
  b.setConnections(ip, ++onB);
  await b.flush();
  assert.equal(await a.admitConnection(ip, onA + 1, 3, null), "XPX_ERR_TOO_MANY_CONNECTIONS");
  // A dies (no more heartbeats; its deadline passed): its two connections no longer count.
  a.close();
  await raw.zadd(`${prefix}fleet:instances`, 0, a.id);
  assert.equal(await b.admitConnection(ip, onB + 1, 3, null), undefined);
  assert.equal(await raw.hget(`${prefix}fleet:conn:${ip}`, a.id), null, "the dead instance's field is dropped");
});

test("connection rate across instances: one bucket, refusals charge nothing", { skip }, async () => {
  const { a, b } = await pair();
  const ip = "2001:db8::9";
  const rate = { rate: 0.001, capacity: 3 };
  const results: (string | undefined | null)[] = [];
  for (let i = 0; i < 6; i++) results.push(await (i % 2 === 0 ? a : b).admitConnection(ip, 0, 0, rate));
  assert.deepEqual(results, [undefined, undefined, undefined, "XPX_ERR_CONNECTION_RATE", "XPX_ERR_CONNECTION_RATE", "XPX_ERR_CONNECTION_RATE"]);
});

test("many keys: the local table is bounded; a forgotten key starts again with one lease on trust", { skip }, async () => {
  const { ra } = await pair();
  const clock = new FakeClock(0);
  const small = new FleetBuckets(ra, { prefix: "bounded:", clock, maxEntries: 50 });
  fleets.push(small);
  for (let i = 0; i < 500; i++) {
    assert.equal(small.poll("firewall", `to${i}`, NO_REFILL), true);
    if (i % 50 === 0) await small.flush();
  }
  await small.flush();
  assert.ok(small.size <= 50, `holds ${small.size}`);
  // The first key was forgotten: the fleet's bucket still has 10 - 1 tokens spent on it.
  let n = 0;
  for (let i = 0; i < 20; i++) {
    if (small.poll("firewall", "to0", NO_REFILL)) n++;
    await small.flush();
  }
  assert.ok(n >= 9 && n <= 9 + leaseSize(10), `passed ${n}`);
});

test("Redis gone: a connection is decided locally at once (null), counted", { skip }, async () => {
  const { a, ra } = await pair();
  ra.broken = true;
  await a.heartbeat();
  const t0 = Date.now();
  assert.equal(await a.admitConnection("198.51.100.1", 1, 1, null), null);
  assert.ok(a.localDecisions.connection >= 1);
  assert.ok(Date.now() - t0 < 1000);
});
