// knowledge.sessions across a fleet: two (and three) session directories
// sharing one real redis-server see each other's online sessions and
// directed presence; a late instance loads them; a resumption on another
// instance takes the JID over; an instance that says goodbye, or whose hash
// expired (a crash), has its sessions dropped by the others. Also PolicyState
// with state.redis: the firewall providers of two instances share it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { createMetrics } from "../../src/metrics/definitions.js";
import { PolicyState } from "../../src/wiring.js";
import type { SessionInfo } from "../../src/policy/pipeline.js";
import { RedisSessionReplicator } from "../../src/knowledge/replicate.js";
import { SessionDirectory } from "../../src/knowledge/sessions.js";
import { Stanza } from "../../src/xml/stanza.js";
import { haveRedis, startRedis, type RedisInstance } from "../helpers/redis.js";

const skip = haveRedis() ? false : "redis-server not installed (Debian package redis-server)";
let redis: RedisInstance | undefined;
let prefixSeq = 0;

before(async () => {
  if (!skip) redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

const ALICE = "alice@example.org/phone";
const STRANGER = "stranger@example.net/x";

async function instance(prefix: string, name: string): Promise<{ dir: SessionDirectory; rep: RedisSessionReplicator }> {
  const dir = new SessionDirectory({ instance: name });
  const rep = await RedisSessionReplicator.open({ url: redis!.url, prefix, directory: dir, onError: (err, op) => assert.fail(`redis ${op}: ${String(err)}`) });
  return { dir, rep };
}

test("two instances on one Redis share online sessions and directed presence; a late one loads them", { skip, timeout: 20_000 }, async () => {
  const prefix = `k${++prefixSeq}:`;
  const a = await instance(prefix, "A");
  const b = await instance(prefix, "B");
  try {
    a.dir.bound("s1", ALICE);
    a.dir.addDirected("s1", ALICE, STRANGER);
    await b.rep.sync();
    assert.equal(b.dir.isOnline(ALICE), true);
    assert.equal(b.dir.hasSentTo(ALICE, STRANGER), true);
    assert.deepEqual(b.dir.stats(), { sessions: 1, directed: 1 });

    const c = await instance(prefix, "C");
    assert.equal(c.dir.hasSentTo(ALICE, STRANGER), true, "loaded at open");

    a.dir.removeDirected("s1", ALICE, STRANGER);
    await b.rep.sync();
    await c.rep.sync();
    assert.equal(b.dir.hasSentTo(ALICE, STRANGER), false);
    assert.equal(c.dir.hasSentTo(ALICE, STRANGER), false);

    a.dir.ended("s1", ALICE);
    await b.rep.sync();
    assert.equal(b.dir.isOnline(ALICE), false);
    c.dir.close();
  } finally {
    a.dir.close();
    b.dir.close();
  }
});

test("a resumption on another instance takes the JID over; the first instance's copy is withdrawn", { skip, timeout: 20_000 }, async () => {
  const prefix = `k${++prefixSeq}:`;
  const a = await instance(prefix, "A");
  const b = await instance(prefix, "B");
  const r = new Redis(redis!.url);
  try {
    a.dir.bound("s1", ALICE);
    a.dir.addDirected("s1", ALICE, STRANGER);
    a.dir.ended("s1", ALICE, 600_000); // hibernating
    await b.rep.sync();
    assert.equal(b.dir.isOnline(ALICE), true);
    b.dir.resumed("s9", ALICE);
    await a.rep.sync(); // A applies B's takeover and withdraws its own copy
    await b.rep.sync();
    assert.equal(a.dir.hasSentTo(ALICE, STRANGER), true, "the resumed session keeps its directed presence");
    assert.equal(await r.hexists(`${prefix}sessions:A`, ALICE), 0);
    assert.equal(await r.hexists(`${prefix}sessions:B`, ALICE), 1);
    const c = await instance(prefix, "C");
    assert.equal(c.dir.isOnline(ALICE), true);
    c.dir.close();
    // The session ends on B: gone everywhere.
    b.dir.ended("s9", ALICE);
    await a.rep.sync();
    assert.equal(a.dir.isOnline(ALICE), false);
  } finally {
    r.disconnect();
    a.dir.close();
    b.dir.close();
  }
});

test("an instance that says goodbye, or whose hash expired (a crash), has its sessions dropped", { skip, timeout: 20_000 }, async () => {
  const prefix = `k${++prefixSeq}:`;
  const a = await instance(prefix, "A");
  const b = await instance(prefix, "B");
  const c = await instance(prefix, "C");
  const r = new Redis(redis!.url);
  try {
    a.dir.bound("s1", ALICE);
    c.dir.bound("s2", "carol@example.org/r");
    await b.rep.sync();
    assert.equal(b.dir.stats().sessions, 2);
    assert.ok((await r.pttl(`${prefix}sessions:A`)) > 0, "each instance's hash has a TTL");

    a.dir.close(); // goodbye
    await b.rep.sync();
    assert.equal(b.dir.isOnline(ALICE), false);
    assert.equal(await r.exists(`${prefix}sessions:A`), 0);

    // C crashes: no goodbye; its hash outlives it until the TTL. Expire it
    // now, as Redis would once C stops renewing it.
    c.rep.abandon();
    await b.rep.checkPeers();
    assert.equal(b.dir.isOnline("carol@example.org/r"), true, "C's hash is still there");
    await r.del(`${prefix}sessions:C`);
    await b.rep.checkPeers();
    assert.equal(b.dir.isOnline("carol@example.org/r"), false);

    // A live instance whose hash was lost (Redis out of reach past the TTL,
    // or restarted empty) is dropped too, and sends its entries again.
    const d = await instance(prefix, "D");
    d.dir.bound("s4", "dan@example.org/r");
    await b.rep.sync();
    await r.del(`${prefix}sessions:D`);
    await b.rep.checkPeers();
    assert.equal(b.dir.isOnline("dan@example.org/r"), false);
    assert.equal(d.rep.republish(), 1);
    await d.rep.flush();
    await b.rep.sync();
    assert.equal(b.dir.isOnline("dan@example.org/r"), true);
    assert.equal(await r.hexists(`${prefix}sessions:D`, "dan@example.org/r"), 1);
    d.dir.close();
  } finally {
    r.disconnect();
    b.dir.close();
    c.dir.close();
  }
});

test("PolicyState with state.redis: two instances' firewall providers and knowledge stages share the directory", { skip, timeout: 20_000 }, async () => {
  const prefix = `k${++prefixSeq}:`;
  const config = configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: "127.0.0.1:5222" }],
    state: { redis: redis!.url, prefix },
  });
  const logger = createLogger("silent");
  const states = [new PolicyState(logger, createMetrics({ defaultMetrics: false })), new PolicyState(logger, createMetrics({ defaultMetrics: false }))];
  try {
    for (const s of states) await s.openState(config);
    const pipeline = states[0]!.build(config, false);
    assert.equal(pipeline.stages.at(-1)?.name, "knowledge", "the learning stage runs last");
    const alice: SessionInfo = { id: "s1", listener: "c2s", type: "c2s", ip: "192.0.2.1", port: 1, jid: ALICE, domain: "example.org", authenticated: true };
    pipeline.sessionBound(alice, false);
    pipeline.judge(new Stanza(Buffer.from(`<presence to='${STRANGER}'/>`), "jabber:client", ALICE), alice, "inbound");
    await states[0]!.sessionDirectory!.sync();
    await states[1]!.sessionDirectory!.sync();
    const directory = states[1]!.sessionDirectory!;
    assert.equal(directory.isOnline(ALICE), true);
    assert.equal(directory.hasSentTo(ALICE, STRANGER), true);
  } finally {
    for (const s of states) s.close();
  }
});
