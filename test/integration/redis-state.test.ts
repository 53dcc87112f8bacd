// Fleet state (docs/deploy.md, "Fleets: several instances, one Redis"): the registration stage gives the same answers on
// SQLite and on Redis — one instance, and two instances sharing one Redis
// taking turns — and the Redis throttle debit is atomic across instances.
// The MUC limits likewise: the same groupchat messages and joins bounce at
// the same points with one process's room buckets, with one Redis-backed
// instance and with two taking turns; a late instance loads a drained room at start.
// A real redis-server from Debian on a private loopback port.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { createMetrics } from "../../src/metrics/definitions.js";
import { parseMucLimits, type MucLimitsOptions } from "../../src/muc/config.js";
import { MucLimitsStage } from "../../src/muc/muc-limits.js";
import { LocalRoomBuckets } from "../../src/muc/room-buckets.js";
import { PolicyState } from "../../src/wiring.js";
import type { SessionInfo } from "../../src/policy/pipeline.js";
import { parseRegistrationOptions } from "../../src/registration/options.js";
import { RegistrationStage, type RefusalReason } from "../../src/registration/registration-stage.js";
import { FakeClock } from "../helpers/fake-clock.js";
import type { RegistrationStore } from "../../src/state/registration-store.js";
import { RedisRoomBuckets } from "../../src/muc/redis-room-buckets.js";
import { RedisStore } from "../../src/state/redis-store.js";
import { SqliteStore } from "../../src/state/sqlite-store.js";
import { Stanza } from "../../src/xml/stanza.js";
import { haveRedis, startRedis, type RedisInstance } from "../helpers/redis.js";

const T0 = Date.UTC(2025, 0, 1);
const skip = haveRedis() ? false : "redis-server not installed (Debian package redis-server)";
let redis: RedisInstance | undefined;
let prefixSeq = 0;

before(async () => {
  if (!skip) redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

function openRedis(prefix: string): Promise<RedisStore> {
  return RedisStore.open({ url: redis!.url, prefix, onError: (err, op) => assert.fail(`redis ${op}: ${String(err)}`) });
}

const OPTIONS = (() => {
  const r = parseRegistrationOptions({ registration_throttle_max: 2, registration_throttle_period: 60, mimicking: true, user_tombstone_expiry: "1h" });
  if (!r.ok) throw new Error(r.message);
  return r.value;
})();

let sid = 0;
function session(over: Partial<SessionInfo> = {}): SessionInfo {
  return { id: `s${++sid}`, listener: "c2s", type: "c2s", ip: "192.0.2.1", port: 1, jid: undefined, domain: "example.org", authenticated: false, ...over };
}
const xml = (s: string): Stanza => new Stanza(Buffer.from(s), "jabber:client");
const registerIq = (u: string): Stanza =>
  xml(`<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>${u}</username><password>pw</password></query></iq>`);

/** One fleet member: a stage over its own store, all members on one clock. */
interface Member {
  stage: RegistrationStage;
  store: RegistrationStore;
  refused: RefusalReason[];
}

function member(store: RegistrationStore, clock: FakeClock): Member {
  const m: Member = { store, refused: [], stage: undefined as unknown as RegistrationStage };
  m.stage = new RegistrationStage({ options: OPTIONS, store, clock, hooks: { onRefused: (e) => m.refused.push(e.reason) } });
  return m;
}

/**
 * The scenario: throttle windows, look-alikes, bind-learned accounts,
 * deletions, tombstone expiry. Step i runs on members[i % n]; `between` runs
 * after each step (Redis: let every instance see the writes). Returns the transcript.
 */
async function scenario(members: Member[], clock: FakeClock, between: () => Promise<void>): Promise<string[]> {
  const out: string[] = [];
  let i = 0;
  const on = (): Member => members[i++ % members.length]!;
  const step = async (label: string, run: (m: Member) => void): Promise<void> => {
    const m = on();
    const before = m.refused.length;
    run(m);
    out.push(`${label}: ${m.refused.length > before ? m.refused.at(-1) : "ok"}`);
    await between();
  };
  const attempt = (u: string, ip: string) => (m: Member) => void m.stage.judge(registerIq(u), session({ ip }), "inbound");
  const register = (u: string, ip: string) => (m: Member) => {
    const s = session({ ip });
    if (m.stage.judge(registerIq(u), s, "inbound") === undefined) m.stage.judge(xml("<iq type='result' id='r1'/>"), s, "outbound");
  };
  await step("alice from ip1", register("alice", "192.0.2.1"));
  await step("bob from ip1", register("bob", "192.0.2.1"));
  await step("carol from ip1 (3rd in the window)", attempt("carol", "192.0.2.1"));
  await step("carol from ip2", attempt("carol", "192.0.2.2"));
  await step("look-alike of alice", attempt("\u0430lice", "192.0.2.3"));
  await step("bind teaches matt", (m) =>
    void m.stage.judge(xml("<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>matt@example.org/x</jid></bind></iq>"), session({ authenticated: true }), "outbound"));
  await step("rnatt looks like matt", attempt("rnatt", "192.0.2.4"));
  await step("alice deletes herself", (m) => {
    const s = session({ authenticated: true, jid: "alice@example.org/phone" });
    m.stage.judge(xml("<iq type='set' id='d1'><query xmlns='jabber:iq:register'><remove/></query></iq>"), s, "inbound");
    m.stage.judge(xml("<iq type='result' id='d1'/>"), s, "outbound");
  });
  await step("alice again (tombstoned)", attempt("alice", "192.0.2.5"));
  clock.advance(29_999);
  await step("dave from ip1 at +30s-1ms", attempt("dave", "192.0.2.1"));
  clock.advance(1);
  await step("dave from ip1 at +30s", register("dave", "192.0.2.1"));
  await step("erin from ip1 right after", attempt("erin", "192.0.2.1"));
  clock.advance(3_600_000);
  await step("alice after the tombstone expired", attempt("alice", "192.0.2.6"));
  // util.throttle refreshes lazily (docs/shaping.md): a bucket left with a
  // token is debited without a refresh, and the next short poll credits the
  // whole wait, so four pass back to back where an eager bucket passes three.
  await step("frank from ip7", register("frank", "192.0.2.7"));
  clock.advance(600_000);
  await step("gina from ip7 after 10 min", register("gina", "192.0.2.7"));
  await step("hank from ip7 right after", register("hank", "192.0.2.7"));
  await step("ivan from ip7 right after", register("ivan", "192.0.2.7"));
  await step("judy from ip7 right after", attempt("judy", "192.0.2.7"));
  const s = members[0]!.store;
  out.push(`accounts ${s.countAccounts("example.org")}: alice ${s.hasAccount("example.org", "alice")}, dave ${s.hasAccount("example.org", "dave")}, matt ${s.getAccount("example.org", "matt")?.source}`);
  out.push(`tombstone alice: ${JSON.stringify(s.getTombstone("example.org", "alice") ?? null)}`);
  out.push(`throttle ip1: ${JSON.stringify(s.getThrottle("192.0.2.1") ?? null)}, ip2: ${JSON.stringify(s.getThrottle("192.0.2.2") ?? null)}, ip7: ${JSON.stringify(s.getThrottle("192.0.2.7") ?? null)}`);
  return out;
}

test("SQLite, one Redis instance and two Redis instances give the same answers", { skip, timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "xg-redis-eq-"));
  try {
    const c1 = new FakeClock(T0);
    const sqlite = SqliteStore.open(join(dir, "state.sqlite"));
    const expected = await scenario([member(sqlite, c1)], c1, async () => {});
    sqlite.close();
    // Sanity: the scenario exercises every kind of answer.
    assert.deepEqual(expected.slice(0, 13).map((l) => l.split(": ")[1]), [
      "ok", "ok", "throttled", "ok", "look-alike", "ok", "look-alike", "ok", "tombstoned", "throttled", "ok", "throttled", "ok",
    ]);
    assert.deepEqual(expected.slice(13, 18).map((l) => l.split(": ")[1]), ["ok", "ok", "ok", "ok", "throttled"], "util.throttle's lazy refresh");

    const c2 = new FakeClock(T0);
    const one = await openRedis(`eq${++prefixSeq}:`);
    const single = await scenario([member(one, c2)], c2, () => one.flush());
    assert.deepEqual(single, expected);

    const prefix = `eq${++prefixSeq}:`;
    const a = await openRedis(prefix);
    const b = await openRedis(prefix);
    const c3 = new FakeClock(T0);
    const fleet = await scenario([member(a, c3), member(b, c3)], c3, async () => {
      await a.flush();
      await b.flush();
      await a.sync();
      await b.sync();
    });
    assert.deepEqual(fleet, expected);
    // An instance started later loads the same state from Redis.
    const late = await openRedis(prefix);
    assert.equal(late.countAccounts("example.org"), one.countAccounts("example.org"));
    assert.deepEqual(late.getThrottle("192.0.2.1"), one.getThrottle("192.0.2.1"));
    assert.equal(late.findBySkeleton("example.org", "rnatt"), "matt");
    for (const s of [one, a, b, late]) s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the throttle debit is atomic across instances: concurrent accepts leave the bucket in debt", { skip, timeout: 20_000 }, async () => {
  const prefix = `atomic${++prefixSeq}:`;
  const a = await openRedis(prefix);
  const b = await openRedis(prefix);
  const clock = new FakeClock(T0);
  const ma = member(a, clock);
  const mb = member(b, clock);
  // Both instances judge before either has seen the other's write (the
  // documented propagation window): both accept...
  assert.equal(ma.stage.judge(registerIq("x1"), session({ ip: "198.51.100.9" }), "inbound"), undefined);
  assert.equal(ma.stage.judge(registerIq("x2"), session({ ip: "198.51.100.9" }), "inbound"), undefined);
  assert.equal(mb.stage.judge(registerIq("x3"), session({ ip: "198.51.100.9" }), "inbound"), undefined);
  await a.flush();
  await b.flush();
  await a.sync();
  await b.sync();
  // ...but Redis counted all three debits against a bucket of 2, so both now
  // hold the same bucket, in debt, and refuse until it refills past 1.
  assert.deepEqual(a.getThrottle("198.51.100.9"), { tokens: -1, updated_at: T0 });
  assert.deepEqual(b.getThrottle("198.51.100.9"), { tokens: -1, updated_at: T0 });
  clock.advance(59_999);
  mb.stage.judge(registerIq("x4"), session({ ip: "198.51.100.9" }), "inbound");
  assert.deepEqual(mb.refused, ["throttled"]);
  a.close();
  b.close();
});

test("an unreachable Redis fails open() within its bound", { skip, timeout: 20_000 }, async () => {
  const dead = await startRedis();
  const url = dead.url;
  await dead.stop();
  await assert.rejects(RedisStore.open({ url, prefix: "x:", connectTimeoutMs: 1000 }), /state\.redis redis:\/\/127\.0\.0\.1/);
});

// --- MUC room buckets ------------------------------------------------------

const MUC = "muc.example";

function mucOptions(over: Record<string, unknown> = {}): MucLimitsOptions {
  // A room bucket of 3 events refilled at 1 per second; short bodies and nicks.
  const r = parseMucLimits({ hosts: [MUC], event_rate: 1, burst_factor: 3, max_char_count: 40, max_nick_length: 10, ...over });
  if (!r.ok) throw new Error(`${r.at}: ${r.message}`);
  return r.value;
}

function openRooms(prefix: string, clock: FakeClock): Promise<RedisRoomBuckets> {
  return RedisRoomBuckets.open({ url: redis!.url, prefix, clock, onError: (err, op) => assert.fail(`redis ${op}: ${String(err)}`) });
}

/** One fleet member's MUC limits: a stage over its own room buckets. */
interface MucMember {
  stage: MucLimitsStage;
  rooms: RedisRoomBuckets | undefined;
}

function mucMember(clock: FakeClock, rooms?: RedisRoomBuckets): MucMember {
  return { stage: new MucLimitsStage(mucOptions(), clock, {}, rooms ?? new LocalRoomBuckets()), rooms };
}

const user = (jid: string): SessionInfo => session({ jid, authenticated: true });
const say = (jid: string, room: string, body = "hi") => (m: MucMember) =>
  m.stage.judge(xml(`<message to='${room}@${MUC}' type='groupchat' id='g'><body>${body}</body></message>`), user(jid), "inbound");
const enter = (jid: string, room: string, nick: string) => (m: MucMember) =>
  m.stage.judge(xml(`<presence to='${room}@${MUC}/${nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`), user(jid), "inbound");
const leave = (jid: string, room: string, nick: string) => (m: MucMember) =>
  m.stage.judge(xml(`<presence to='${room}@${MUC}/${nick}' type='unavailable'/>`), user(jid), "inbound");

/**
 * Joins, messages (one of ten lines: cost 1.9), refills, a body and a nick
 * over the limits, a second room with its own bucket, a reload to another
 * rate and burst; retries that count against their sender (the fair room). Step i runs on members[i % n]; `between` runs after each
 * step. Times keep clear of the ulp-level edges of the refill arithmetic.
 * Returns the transcript: each step's verdict reason, or "ok".
 */
async function mucScenario(members: MucMember[], clock: FakeClock, between: () => Promise<void>): Promise<string[]> {
  const out: string[] = [];
  let i = 0;
  const step = async (label: string, run: (m: MucMember) => ReturnType<MucLimitsStage["judge"]>): Promise<void> => {
    const v = run(members[i++ % members.length]!);
    out.push(`${label}: ${v === undefined ? "ok" : v.action === "bounce" ? v.reason : v.action}`);
    await between();
  };
  const A = "alice@example.org/pc";
  const B = "bob@example.org/phone";
  const C = "carol@example.org/web";
  await step("alice joins r1", enter(A, "r1", "alice"));
  await step("bob joins r1", enter(B, "r1", "bob"));
  await step("alice says hi", say(A, "r1"));
  await step("bob says hi (r1 empty)", say(B, "r1"));
  await step("carol joins r2 (its own bucket)", enter(C, "r2", "carol"));
  await step("alice leaves r1 (never limited)", leave(A, "r1", "alice"));
  await step("bob's nick too long", enter(B, "r1", "bartholomew"));
  await step("carol's body too long", say(C, "r2", "x".repeat(41)));
  clock.advance(990);
  await step("bob at +0.99 s", say(B, "r1"));
  clock.advance(20);
  await step("bob at +1.01 s (his retry counts against him)", say(B, "r1"));
  await step("carol right after (she has not tried)", say(C, "r1"));
  clock.advance(1_880);
  await step("ten lines at +1.89 s (cost 1.9)", say(A, "r1", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10"));
  clock.advance(20);
  await step("ten lines at +1.91 s (alice retries, in debt, and must leave one share)", say(A, "r1", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10"));
  await step("r2 still has room", say(C, "r2"));
  // A reload right after a debit: 2 events per second, a bucket of 4.
  for (const m of members) m.stage.reconfigure(mucOptions({ event_rate: 2, burst_factor: 2 }));
  clock.advance(1_000);
  await step("after the reload, 1st", say(A, "r1"));
  await step("after the reload, 2nd", say(B, "r1"));
  await step("after the reload, 3rd", say(C, "r1"));
  clock.advance(10_000);
  for (let n = 1; n <= 5; n++) await step(`refilled to 4, message ${n}`, say(n % 2 === 0 ? A : B, "r1"));
  // A minute on, everyone has left the window. Mallory floods; a second
  // later alice and bob arrive and each gets a share, mallory stays refused.
  clock.advance(61_000);
  const M = "mallory@example.org/bot";
  for (let n = 1; n <= 6; n++) await step(`mallory floods, ${n}`, say(M, "r1"));
  clock.advance(1_000);
  await step("alice arrives a second later", say(A, "r1"));
  await step("bob right after", say(B, "r1"));
  await step("mallory again", say(M, "r1"));
  return out;
}

/** Resolves when every member has sent its debits and holds the newest state of each room; bounded. */
async function converge(members: MucMember[], rooms: string[], clock: FakeClock): Promise<void> {
  for (const m of members) await m.rooms!.flush();
  const deadline = Date.now() + 5_000;
  for (;;) {
    const views = rooms.map((r) => members.map((m) => m.rooms!.peek(`${r}@${MUC}`, clock.now())));
    const settled = views.every((vs) => {
      const newest = Math.max(...vs.map((v) => v?.seq ?? 0));
      return vs.every((v) => (newest === 0 ? v === undefined || v.pending === 0 : v !== undefined && v.seq === newest && v.pending === 0));
    });
    if (settled) return;
    if (Date.now() > deadline) assert.fail(`room buckets did not converge: ${JSON.stringify(views)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("MUC room buckets: local, one Redis instance and two Redis instances bounce at the same points", { skip, timeout: 30_000 }, async () => {
  const c1 = new FakeClock(T0);
  const expected = await mucScenario([mucMember(c1)], c1, async () => {});
  // Sanity: every kind of answer occurs, the room bucket runs dry, and a
  // retry counts against its sender while someone who has not tried passes.
  const room = "muc_limits: room bucket empty";
  assert.deepEqual(expected.map((l) => l.slice(l.indexOf(": ") + 2)), [
    "ok", "ok", "ok", room, "ok", "ok", "muc_limits: nick of 11 bytes", "muc_limits: body of 41 bytes",
    room, room, "ok", room, room, "ok",
    "ok", "ok", room,
    "ok", "ok", "ok", room, room,
    "ok", "ok", "ok", "ok", room, room,
    "ok", "ok", room,
  ]);

  const c2 = new FakeClock(T0);
  const one = mucMember(c2, await openRooms(`meq${++prefixSeq}:`, c2));
  const single = await mucScenario([one], c2, () => converge([one], ["r1", "r2"], c2));
  assert.deepEqual(single, expected);

  const prefix = `meq${++prefixSeq}:`;
  const c3 = new FakeClock(T0);
  const fleet = [mucMember(c3, await openRooms(prefix, c3)), mucMember(c3, await openRooms(prefix, c3))];
  const turns = await mucScenario(fleet, c3, () => converge(fleet, ["r1", "r2"], c3));
  assert.deepEqual(turns, expected);
  // Both hold r1 as Redis left it.
  assert.deepEqual(fleet[0]!.rooms!.peek(`r1@${MUC}`), fleet[1]!.rooms!.peek(`r1@${MUC}`));

  // Without sharing, two instances taking turns let through what one refuses.
  const c4 = new FakeClock(T0);
  const apart = await mucScenario([mucMember(c4), mucMember(c4)], c4, async () => {});
  assert.notDeepEqual(apart, expected);
  assert.equal(apart[3], "bob says hi (r1 empty): ok");

  for (const m of [one, ...fleet]) m.stage.close();
});

test("MUC room buckets: concurrent debits leave the shared bucket in debt; a late instance loads the room at start", { skip, timeout: 20_000 }, async () => {
  const prefix = `mdebt${++prefixSeq}:`;
  const clock = new FakeClock(T0);
  const a = mucMember(clock, await openRooms(prefix, clock));
  const b = mucMember(clock, await openRooms(prefix, clock));
  // Neither has seen the other's debits (the documented window): 3 + 2 pass...
  for (let n = 0; n < 3; n++) assert.equal(say(`u${n}@example.org/x`, "hot")(a), undefined);
  for (let n = 0; n < 2; n++) assert.equal(say(`v${n}@example.org/x`, "hot")(b), undefined);
  await converge([a, b], ["hot"], clock);
  // ...but Redis counted all five against a bucket of 3: both copies are 2 in debt.
  const key = `hot@${MUC}`;
  assert.equal(a.rooms!.peek(key)!.balance, -2);
  assert.deepEqual(a.rooms!.peek(key), b.rooms!.peek(key));
  assert.equal(a.rooms!.peek(key)!.seq, 5);
  clock.advance(2_500);
  assert.match((say("w@example.org/x", "hot")(b) as { reason?: string } | undefined)?.reason ?? "ok", /room bucket empty/);

  // An instance started now loads the rooms Redis holds at start: it knows
  // the debt before anyone speaks there, and refuses like the others.
  await converge([a, b], ["hot"], clock);
  const late = mucMember(clock, await openRooms(prefix, clock));
  assert.deepEqual(late.rooms!.peek(key), b.rooms!.peek(key));
  assert.match((say("x@example.org/x", "hot")(late) as { reason?: string } | undefined)?.reason ?? "ok", /room bucket empty/);
  await converge([a, b, late], ["hot"], clock);
  assert.deepEqual(a.rooms!.peek(key), late.rooms!.peek(key));
  for (const m of [a, b, late]) m.stage.close();
});

test("PolicyState: with state.redis the MUC stage of two instances shares its room buckets", { skip, timeout: 20_000 }, async () => {
  const config = configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: "127.0.0.1:5222" }],
    muc_limits: { hosts: [MUC], event_rate: 0.01, burst_factor: 200 },
    state: { redis: redis!.url, prefix: `mpol${++prefixSeq}:` },
  });
  const metrics = [createMetrics(), createMetrics()];
  const states = metrics.map((m) => new PolicyState(createLogger("silent"), m));
  // build() before openState() refuses: the buckets would not be shared.
  assert.throws(() => states[0]!.build(config, false), /MUC room buckets are not open/);
  for (const s of states) await s.openState(config);
  const [p1, p2] = states.map((s) => s.build(config, false));
  const msg = (body: string): Stanza => xml(`<message to='lobby@${MUC}' type='groupchat' id='m'><body>${body}</body></message>`);
  // A bucket of 2 (0.01 events/s × 200); ten lines through the first instance cost 1.9...
  assert.equal(p1!.judge(msg("1\n2\n3\n4\n5\n6\n7\n8\n9\n10"), user("a@example.org/x"), "inbound"), null);
  // ...which reaches the second one, which then holds the room (its tracked-rooms gauge)...
  const rooms = async (): Promise<number | undefined> =>
    (await metrics[1]!.registry.getSingleMetric("xmpp_guard_muc_tracked")!.get()).values.find((v) => v.labels.kind === "rooms")?.value;
  const deadline = Date.now() + 5_000;
  while ((await rooms()) !== 1) {
    if (Date.now() > deadline) assert.fail("the second instance never heard of the room");
    await new Promise((r) => setTimeout(r, 10));
  }
  // ...and bounces a one-line message (its own bucket alone would have let it through).
  const next = p2!.judge(msg("hi"), user("b@example.org/y"), "inbound");
  assert.equal(next?.stage, "muc_limits");
  assert.equal(next?.verdict.action, "bounce");
  for (const s of states) s.close();
});

test("MUC fair rooms across a fleet: a flooder on one instance never gets a person on the other refused", { skip, timeout: 60_000 }, async () => {
  const prefix = `mfair${++prefixSeq}:`;
  const clock = new FakeClock(T0);
  // rate 1/s, burst 6: with two senders each share is 2 deep, refilled at 1/3 per second.
  const r = parseMucLimits({ hosts: [MUC], event_rate: 1, burst_factor: 6 });
  if (!r.ok) throw new Error(r.message);
  const ra = await openRooms(prefix, clock);
  const rb = await openRooms(prefix, clock);
  const ma: MucMember = { stage: new MucLimitsStage(r.value, clock, {}, ra), rooms: ra };
  const mb: MucMember = { stage: new MucLimitsStage(r.value, clock, {}, rb), rooms: rb };
  const settle = (): Promise<void> => converge([ma, mb], ["fair"], clock);
  const refused: number[] = [];
  let flood = 0;
  // Ann (on b) speaks first; the bot (on a) then tries every 200 ms for 20 s;
  // Ann posts every 4 s. Every instance has seen every attempt before the next.
  assert.equal(say("ann@example.org/x", "fair")(mb), undefined);
  await settle();
  for (let t = 200; t <= 20_000; t += 200) {
    clock.advance(200);
    if (t % 4000 === 0) {
      if (say("ann@example.org/x", "fair")(mb) !== undefined) refused.push(t);
      await settle();
    }
    if (say("bot@example.org/x", "fair")(ma) === undefined) flood++;
    await settle();
  }
  assert.deepEqual(refused, [], "ann was refused");
  // The room admitted at most rate × time + burst: 20 + 6, of which ann took 6.
  assert.ok(flood >= 1 && flood <= 20, `flood ${flood}`);
  // Both copies agree with Redis.
  assert.deepEqual(ra.peek(`fair@${MUC}`), rb.peek(`fair@${MUC}`));
  ma.stage.close();
  mb.stage.close();
});
