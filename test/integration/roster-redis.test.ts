// Learned rosters in Redis (state.redis): two store instances on one real
// redis-server share what either learns; a third one opened later loads it
// all from the snapshot. A private redis-server on a loopback port.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { RedisRosterStore } from "../../src/knowledge/roster-redis.js";
import type { RosterItem } from "../../src/knowledge/roster-store.js";
import { haveRedis, startRedis, type RedisInstance } from "../helpers/redis.js";

const skip = haveRedis() ? false : "redis-server not installed (Debian package redis-server)";
let redis: RedisInstance | undefined;

before(async () => {
  if (!skip) redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

function open(prefix: string): Promise<RedisRosterStore> {
  return RedisRosterStore.open({ url: redis!.url, prefix, onError: (err, op) => assert.fail(`redis ${op}: ${String(err)}`) });
}

const BOB: RosterItem = { subscription: "both", ask: undefined, groups: ["Friends"] };

test("a roster learned on one instance is seen by the other, and by one opened later", { skip }, async () => {
  const a = await open("t1:");
  const b = await open("t1:");
  try {
    assert.equal(b.known("alice@example.org"), undefined);
    a.replace("alice@example.org", "4", new Map([["bob@example.org", BOB], ["carol@example.net", { subscription: "none", ask: "subscribe", groups: [] }]]));
    a.setPendingIn("alice@example.org", "pat@example.net", true);
    await b.sync();
    assert.deepEqual(b.known("alice@example.org"), { ver: "4" });
    assert.deepEqual(b.item("alice@example.org", "bob@example.org"), BOB);
    assert.equal(b.item("alice@example.org", "carol@example.net")?.ask, "subscribe");
    assert.equal(b.pendingIn("alice@example.org", "pat@example.net"), true);

    // A push and an answered request on b reach a.
    b.setItem("alice@example.org", "carol@example.net", null, "5");
    b.setItem("alice@example.org", "dave@example.net", { subscription: "to", groups: ["X", "Y"] }, "6");
    b.setPendingIn("alice@example.org", "pat@example.net", false);
    await a.sync();
    assert.equal(a.item("alice@example.org", "carol@example.net"), undefined);
    assert.deepEqual(a.item("alice@example.org", "dave@example.net"), { subscription: "to", ask: undefined, groups: ["X", "Y"] });
    assert.deepEqual(a.known("alice@example.org"), { ver: "6" });
    assert.equal(a.pendingIn("alice@example.org", "pat@example.net"), false);

    // A full result replaces: items not in it are gone everywhere.
    a.replace("alice@example.org", "7", new Map([["erin@example.org", BOB]]));
    // A push to a roster never seen whole keeps it unknown.
    a.setItem("zoe@example.org", "bob@example.org", BOB, "1");
    await a.flush();
    const c = await open("t1:");
    try {
      await b.sync();
      for (const s of [b, c]) {
        assert.deepEqual(s.known("alice@example.org"), { ver: "7" });
        assert.equal(s.item("alice@example.org", "bob@example.org"), undefined);
        assert.deepEqual(s.item("alice@example.org", "erin@example.org"), BOB);
        assert.equal(s.known("zoe@example.org"), undefined);
        assert.deepEqual(s.item("zoe@example.org", "bob@example.org"), BOB);
        assert.equal(s.countKnown(), 1);
      }
    } finally {
      c.close();
    }
    // Another prefix is another fleet.
    const other = await open("t2:");
    try {
      assert.equal(other.known("alice@example.org"), undefined);
    } finally {
      other.close();
    }
  } finally {
    a.close();
    b.close();
  }
});
