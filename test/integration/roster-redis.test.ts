// Learned rosters in Redis (state.redis): two store instances on one real
// redis-server share what either learns; a third one opened later loads it
// all from the snapshot; two PolicyStates (two proxies) answer the firewall
// from what either learned. A private redis-server on a loopback port.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configFromObject } from "../../src/config/load.js";
import { testStanza } from "../helpers/test-stanza.js";
import { createLogger } from "../../src/log.js";
import { createMetrics } from "../../src/metrics/definitions.js";
import type { Pipeline } from "../../src/policy/pipeline.js";
import { PolicyState } from "../../src/wiring.js";
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

test("with state.redis, two proxies' firewalls share what either learned", { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "xg-roster-redis-"));
  const rules = join(dir, "r.pfw");
  writeFileSync(rules, "::deliver\nIN ROSTER?\nPASS.\n\nKIND: message\nDROP.\n");
  const config = configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: "127.0.0.1:1" }],
    firewall: { scripts: [rules], watch: false },
    state: { redis: redis!.url, prefix: "t3:" },
  });
  const instances = [0, 1].map(() => new PolicyState(createLogger("error"), createMetrics({ defaultMetrics: false })));
  t.after(() => {
    for (const p of instances) p.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const pipelines: Pipeline[] = [];
  for (const p of instances) {
    await p.openState(config);
    const r = await p.loadRules(config);
    assert.deepEqual(r.errors, []);
    p.firewall.swap(r.ruleset);
    pipelines.push(p.build(config, true));
  }
  const [a, b] = pipelines as [Pipeline, Pipeline];
  const session = { id: "s1", listener: "c2s", type: "c2s" as const, ip: "127.0.0.1", port: 1, jid: "alice@example.org/r", domain: "example.org", authenticated: true };
  const message = "<message from='bob@example.org/x' to='alice@example.org/r' type='chat'><body>hi</body></message>";
  assert.equal(b.judge(testStanza(message), session, "outbound")?.verdict.action, "drop");
  // Learned on instance a…
  a.judge(testStanza("<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>", { sessionJid: session.jid }), session, "inbound");
  a.judge(testStanza("<iq type='result' id='g'><query xmlns='jabber:iq:roster' ver='1'><item jid='bob@example.org' subscription='both'/></query></iq>"), session, "outbound");
  await (instances[0]!.rosterStore as RedisRosterStore).flush();
  await (instances[1]!.rosterStore as RedisRosterStore).sync();
  // …answered on instance b.
  assert.equal(b.judge(testStanza(message), session, "outbound"), null);
});
