// Fleet state (issue 7): the registration stage gives the same answers on
// SQLite and on Redis — one instance, and two instances sharing one Redis
// taking turns — and the Redis throttle debit is atomic across instances.
// A real redis-server from Debian on a private loopback port.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SessionInfo } from "../../src/policy/pipeline.js";
import { parseRegistrationOptions } from "../../src/registration/options.js";
import { RegistrationStage, type RefusalReason } from "../../src/registration/registration-stage.js";
import { FakeClock } from "../../src/shaping/clock.js";
import type { RegistrationStore } from "../../src/state/registration-store.js";
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
  const s = members[0]!.store;
  out.push(`accounts ${s.countAccounts("example.org")}: alice ${s.hasAccount("example.org", "alice")}, dave ${s.hasAccount("example.org", "dave")}, matt ${s.getAccount("example.org", "matt")?.source}`);
  out.push(`tombstone alice: ${JSON.stringify(s.getTombstone("example.org", "alice") ?? null)}`);
  out.push(`throttle ip1: ${JSON.stringify(s.getThrottle("192.0.2.1") ?? null)}, ip2: ${JSON.stringify(s.getThrottle("192.0.2.2") ?? null)}`);
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
