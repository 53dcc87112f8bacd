// A fleet as docs/deploy.md ("The fleet recipe, as the tests run it") lays
// it out, with the config blocks loaded from that file: a real HAProxy
// sending PROXY v2 to two xmpp-guard instances that share one real Redis, in
// front of a real Prosody (with its MUC). A third instance with the same
// config and no Redis is the reference: "through one instance".
//
// A sender whose connections alternate between the two instances (and, as
// the twin, go straight to one of them) gets the same firewall LIMIT, per-IP
// cap, connection rate, per-occupant and room limits as through one instance
// (within the documented lease slack). Redis is backed up the
// Redis way (redis-cli --rdb, a Redis started on the file). Then Redis is
// killed mid-run: sessions keep flowing on each instance's own limits (the
// documented fail-open), the metrics and /readyz say so; Redis restarts on
// its port and the limits are fleet-wide again, without a restart. Before
// that, a Redis that hangs (SIGSTOP) stalls no stanza.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import type { Element } from "ltx";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { leaseSize } from "../../src/state/fleet-buckets.js";
import { canConnect, freePort, haveProsody, startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { httpRequest } from "../helpers/proxy-process.js";
import { eventually } from "../helpers/raw-client.js";
import { rawLogin, type RawSession } from "../helpers/raw-session.js";
import { haveRedis, startRedis, type RedisInstance } from "../helpers/redis.js";

const HAPROXY = "/usr/sbin/haproxy";
const haveHaproxy = spawnSync(HAPROXY, ["-v"], { stdio: "ignore" }).status === 0;
const skip = !haveRedis() ? "redis-server not installed" : !haveHaproxy ? "haproxy not installed" : !haveProsody() ? "prosody not installed" : false;

const DEPLOY = fileURLToPath(new URL("../../docs/deploy.md", import.meta.url));
const MUC_HOST = "conference.localhost";
const MUC_NS = "http://jabber.org/protocol/muc";

/** The fenced block just below `<!-- fleet-test: NAME -->` in docs/deploy.md. */
function docBlock(name: string): string {
  const text = readFileSync(DEPLOY, "utf8");
  const at = text.indexOf(`<!-- fleet-test: ${name} -->`);
  assert.ok(at >= 0, `docs/deploy.md has no fleet-test block ${name}`);
  const open = text.indexOf("```", at);
  const start = text.indexOf("\n", open) + 1;
  const end = text.indexOf("\n```", start);
  return text.slice(start, end + 1);
}

async function metric(p: RunningProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

/** Opens a TCP stream from `localAddress` and reports whether it got stream features (admitted) or a stream error. */
function probe(port: number, localAddress: string): Promise<{ admitted: boolean; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress });
    let text = "";
    const timer = setTimeout(() => reject(new Error(`no stream features nor error from ${localAddress}: ${text}`)), 5000);
    socket.on("error", () => {});
    socket.on("connect", () => socket.write("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"));
    socket.on("data", (d: Buffer) => {
      text += d.toString("utf8");
      const ok = text.includes("<stream:features");
      if (ok || text.includes("stream:error")) {
        clearTimeout(timer);
        resolve({ admitted: ok, socket });
      }
    });
  });
}

describe("a fleet: HAProxy (PROXY v2) → two instances + one Redis → Prosody", { skip, timeout: 180_000 }, () => {
  let prosody: ProsodyInstance;
  let redis: RedisInstance;
  let a: RunningProxy;
  let b: RunningProxy;
  let single: RunningProxy;
  let haproxy: ChildProcess | undefined;
  let lbPort = 0;
  let dir = "";
  const sessions: RawSession[] = [];
  /** The configs the three instances started with (a test reloads them with more limits, then back). */
  const configs: Record<"a" | "b" | "single", Record<string, unknown>> = { a: {}, b: {}, single: {} };

  const users = ["boss", "slow1", "lim1", "lim2", "occ1", "occ2", "r1", "r2", "r3", "s1", "s2", "s3", "down1", "up1"];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "xg-fleet-"));
    redis = await startRedis();
    prosody = await startProsody();
    for (const u of users) await prosody.createUser(u, `${u}-pw`);
    const rules = join(dir, "fleet.pfw");
    writeFileSync(rules, docBlock("fleet.pfw"));
    const yaml = docBlock("xmpp-guard.yaml")
      .replace("0.0.0.0:5222", "127.0.0.1:0")
      .replace("10.0.0.20:5222", `127.0.0.1:${prosody.port}`)
      .replace('["10.0.0.2"]', '["127.0.0.1"]')
      .replace("/etc/xmpp-guard/fleet.pfw", rules)
      .replace("conference.example.org", MUC_HOST)
      .replace("redis://10.0.0.5:6379/0", redis.url);
    const doc = parseYaml(yaml) as Record<string, unknown>;
    const logger = createLogger("silent");
    configs.a = { ...doc, admin: { listen: "127.0.0.1:0" } };
    configs.b = { ...doc, admin: { listen: null } };
    a = await startProxy(configFromObject(configs.a), { logger });
    b = await startProxy(configFromObject(configs.b), { logger });
    // The reference: one instance, no Redis, clients straight to it.
    const { state: _state, ...alone } = doc;
    const listeners = (doc.listeners as Record<string, unknown>[]).map(({ accept_proxy_from: _apf, ...l }) => l);
    configs.single = { ...alone, listeners, admin: { listen: null } };
    single = await startProxy(configFromObject(configs.single), { logger });
    lbPort = await freePort();
    const cfg = docBlock("haproxy.cfg")
      .replace("10.0.0.2:5222", `127.0.0.1:${lbPort}`)
      .replace("10.0.0.11:5222", `127.0.0.1:${a.listenerAddress("c2s")!.port}`)
      .replace("10.0.0.12:5222", `127.0.0.1:${b.listenerAddress("c2s")!.port}`);
    writeFileSync(join(dir, "haproxy.cfg"), cfg);
    haproxy = spawn(HAPROXY, ["-f", join(dir, "haproxy.cfg"), "-db"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    haproxy.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    await eventually(() => canConnect(lbPort), 10_000, `haproxy listening (${stderr})`);
    // That probe may reach an instance (at once or a moment later) or not:
    // wait until it is there and gone, or was never dialled.
    await new Promise((r) => setTimeout(r, 500));
    await eventually(() => a.sessionCount() + b.sessionCount() === 0, 30_000, "the probe's session closed");
  });
  /** Sessions left open before each test (the start-up probe's is closed). */
  const idle = 0;

  after(async () => {
    for (const s of sessions) s.stop();
    haproxy?.kill("SIGKILL");
    await Promise.all([a?.shutdown(0), b?.shutdown(0), single?.shutdown(0)]);
    await prosody?.stop();
    await redis?.stop();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  const login = async (port: number, user: string, resource: string): Promise<RawSession> => {
    const s = await rawLogin(port, { domain: "localhost", username: user, password: `${user}-pw`, resource });
    sessions.push(s);
    return s;
  };
  const closeAll = async (list: RawSession[]): Promise<void> => {
    // A closed stream, so that Prosody closes at once (it waits for one after a bare FIN).
    for (const s of list) s.send("</stream:stream>");
    await Promise.all(list.map((s) => s.closed().catch(() => "")));
    for (const s of list) s.stop();
    await eventually(() => a.sessionCount() + b.sessionCount() + single.sessionCount() <= idle, 10_000, `sessions closed (${a.sessionCount()} ${b.sessionCount()} ${single.sessionCount()})`);
  };
  /** Logs `user` in `n` times through `port`. */
  const logins = async (port: number, user: string, n: number): Promise<RawSession[]> => {
    const out: RawSession[] = [];
    for (let i = 0; i < n; i++) out.push(await login(port, user, `r${i}`));
    return out;
  };
  let seq = 0;
  /** Sends one stanza, then a ping round trip: true when the proxy bounced it. */
  const bounced = async (s: RawSession, stanza: (id: string) => string): Promise<boolean> => {
    const id = `f${++seq}`;
    s.send(stanza(id));
    await s.sync();
    // The proxy's bounces only (a chat to an offline account gets Prosody's own error).
    return s.take((el: Element) => el.attrs.id === id && el.attrs.type === "error" && /Too many messages|overactive/.test(el.toString())).length > 0;
  };
  const chat = (to: string) => (id: string): string => `<message to='${to}' type='chat' id='${id}'><body>hello</body></message>`;
  const groupchat = (room: string) => (id: string): string => `<message to='${room}' type='groupchat' id='${id}'><body>hi</body></message>`;
  /** Sends `count` messages round-robin over `via`; how many passed. */
  const passed = async (via: RawSession[], count: number, stanza: (id: string) => string): Promise<number> => {
    let n = 0;
    for (let i = 0; i < count; i++) if (!(await bounced(via[i % via.length]!, stanza))) n++;
    return n;
  };

  it("connections through HAProxy alternate between the two instances", async () => {
    const before = [a.sessionCount(), b.sessionCount()];
    const s = await logins(lbPort, "lim2", 4);
    assert.deepEqual([a.sessionCount() - before[0]!, b.sessionCount() - before[1]!], [2, 2]);
    await closeAll(s);
  });

  it("firewall LIMIT per account: the same as through one instance, within the lease slack", async (t) => {
    const one = await logins(single.listenerAddress("c2s")!.port, "lim1", 4);
    const base = await passed(one, 10, chat("up1@localhost"));
    assert.equal(base, 5, "%RATE permessage is a bucket of 5");
    const fleet = await logins(lbPort, "lim2", 4);
    const shared = await passed(fleet, 10, chat("up1@localhost"));
    const slack = 2 * leaseSize(5);
    t.diagnostic(`LIMIT: one instance passed ${base} of 10, the fleet ${shared}`);
    assert.ok(shared >= base && shared <= base + slack, `fleet passed ${shared}, one instance ${base} (slack ${slack})`);
    await closeAll([...one, ...fleet]);
  });

  it("per-IP cap: the same count through the fleet as through one instance", async () => {
    const attempt = async (port: number, from: string): Promise<boolean[]> => {
      const out: boolean[] = [];
      const sockets: Socket[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await probe(port, from);
        out.push(r.admitted);
        sockets.push(r.socket);
      }
      for (const s of sockets) s.end("</stream:stream>");
      return out;
    };
    const base = await attempt(single.listenerAddress("c2s")!.port, "127.0.0.6");
    assert.deepEqual(base, [true, true, true, true, true, true, false, false]);
    const fleet = await attempt(lbPort, "127.0.0.5");
    assert.deepEqual(fleet, base);
    assert.ok((await metric(a, "xmpp_guard_connections_refused_total", { reason: "too_many_connections" })) + (await metric(b, "xmpp_guard_connections_refused_total", { reason: "too_many_connections" })) === 2);
    await eventually(() => a.sessionCount() + b.sessionCount() + single.sessionCount() <= idle, 10_000, "probes closed");
    // The twin: the same client straight to an instance (no PROXY header from
    // there) and through the balancer: one count.
    const mixed: boolean[] = [];
    const sockets: Socket[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await probe(i % 2 === 0 ? lbPort : b.listenerAddress("c2s")!.port, "127.0.0.7");
      mixed.push(r.admitted);
      sockets.push(r.socket);
    }
    for (const s of sockets) s.end("</stream:stream>");
    assert.deepEqual(mixed, base);
    await eventually(() => a.sessionCount() + b.sessionCount() + single.sessionCount() <= idle, 10_000, "probes closed");
  });

  it("connection rate per IP (after a reload that sets it): one bucket across the fleet", async () => {
    const withRate = (c: Record<string, unknown>): ReturnType<typeof configFromObject> =>
      configFromObject({ ...c, limits: { ...(c.limits as object), connection_rate_per_ip: { rate: 0.001, burst: 3 } } });
    for (const [p, c] of [[a, configs.a], [b, configs.b], [single, configs.single]] as const) assert.deepEqual((await p.reload(withRate(c))).errors, []);
    try {
      const attempt = async (port: (i: number) => number, from: string): Promise<boolean[]> => {
        const out: boolean[] = [];
        for (let i = 0; i < 6; i++) {
          const r = await probe(port(i), from);
          out.push(r.admitted);
          r.socket.end("</stream:stream>");
        }
        return out;
      };
      const base = await attempt(() => single.listenerAddress("c2s")!.port, "127.0.0.8");
      assert.deepEqual(base, [true, true, true, false, false, false]);
      // Through the balancer, and straight to B, alternately.
      const fleet = await attempt((i) => (i % 3 === 2 ? b.listenerAddress("c2s")!.port : lbPort), "127.0.0.9");
      assert.deepEqual(fleet, base);
      assert.equal((await metric(a, "xmpp_guard_connections_refused_total", { reason: "connection_rate" })) + (await metric(b, "xmpp_guard_connections_refused_total", { reason: "connection_rate" })), 3);
    } finally {
      for (const [p, c] of [[a, configs.a], [b, configs.b], [single, configs.single]] as const) await p.reload(configFromObject(c));
    }
    await eventually(() => a.sessionCount() + b.sessionCount() + single.sessionCount() <= idle, 10_000, "probes closed");
  });

  const joinRoom = async (s: RawSession, room: string, nick: string): Promise<void> => {
    s.send(`<presence to='${room}/${nick}'><x xmlns='${MUC_NS}'/></presence>`);
    await s.waitFor((el: Element) => el.name === "presence" && el.attrs.from === `${room}/${nick}` && /code=["']110["']/.test(el.toString()));
  };

  it("per-occupant bucket: one occupant on both instances is one bucket", async (t) => {
    const run = async (port: number, user: string, room: string): Promise<number> => {
      // Someone else creates the room: its owner is exempt (exempt_affiliations).
      const boss = await login(port, "boss", "muc");
      await joinRoom(boss, room, "boss");
      const s = await logins(port, user, 2);
      for (const x of s) await joinRoom(x, room, user);
      const n = await passed(s, 8, groupchat(room));
      await closeAll([boss, ...s]);
      return n;
    };
    const base = await run(single.listenerAddress("c2s")!.port, "occ1", `occ-base@${MUC_HOST}`);
    assert.ok(base > 0 && base < 8, `one instance passed ${base} of 8`);
    const fleet = await run(lbPort, "occ2", `occ-fleet@${MUC_HOST}`);
    const slack = 2 * leaseSize(3);
    t.diagnostic(`occupant: one instance passed ${base} of 8, the fleet ${fleet}`);
    assert.ok(fleet >= base && fleet <= base + slack, `fleet passed ${fleet}, one instance ${base} (slack ${slack})`);
    assert.ok((await metric(a, "xmpp_guard_muc_limited_total", { bucket: "occupant" })) + (await metric(b, "xmpp_guard_muc_limited_total", { bucket: "occupant" })) > 0);
  });

  it("room bucket: three senders on alternating instances drain one room", async (t) => {
    const run = async (port: number, who: string[], room: string): Promise<number> => {
      const s: RawSession[] = [];
      for (const u of who) s.push(await login(port, u, "muc"));
      for (let i = 0; i < s.length; i++) await joinRoom(s[i]!, room, who[i]!);
      const n = await passed(s, 12, groupchat(room));
      await closeAll(s);
      return n;
    };
    const base = await run(single.listenerAddress("c2s")!.port, ["r1", "r2", "r3"], `room-base@${MUC_HOST}`);
    assert.ok(base > 0 && base < 12, `one instance passed ${base} of 12`);
    const fleet = await run(lbPort, ["s1", "s2", "s3"], `room-fleet@${MUC_HOST}`);
    // The room is replicated (one commit window), the occupants leased.
    const slack = 3 * leaseSize(3);
    t.diagnostic(`room: one instance passed ${base} of 12, the fleet ${fleet}`);
    assert.ok(fleet >= base - 1 && fleet <= base + slack, `fleet passed ${fleet}, one instance ${base}`);
    assert.ok((await metric(a, "xmpp_guard_muc_limited_total", { bucket: "room" })) + (await metric(b, "xmpp_guard_muc_limited_total", { bucket: "room" })) > 0);
  });

  it("backup the Redis way: redis-cli --rdb, and a Redis started on that file has the fleet's keys", { skip: existsSync("/usr/bin/redis-cli") ? false : "no redis-cli" }, async () => {
    const rdb = join(dir, "backup.rdb");
    const dump = spawnSync("/usr/bin/redis-cli", ["-p", String(redis.port), "--rdb", rdb], { encoding: "utf8", timeout: 10_000 });
    assert.equal(dump.status, 0, dump.stderr);
    const keys = (port: number): string[] =>
      spawnSync("/usr/bin/redis-cli", ["-p", String(port), "--scan", "--pattern", "xg:*"], { encoding: "utf8", timeout: 5000 }).stdout.split("\n").filter((k) => k !== "").sort();
    const live = keys(redis.port);
    assert.ok(live.some((k) => k.startsWith("xg:fleet:")), `fleet keys in Redis: ${live.join(" ")}`);
    const port = await freePort();
    const restored = spawn("/usr/bin/redis-server", ["--bind", "127.0.0.1", "--port", String(port), "--dir", dir, "--dbfilename", "backup.rdb", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    try {
      await eventually(() => canConnect(port), 10_000, "the restored redis");
      const back = keys(port);
      // Keys that expired in between aside, the backup holds what Redis held.
      assert.ok(back.length > 0 && back.every((k) => live.includes(k)), `restored ${back.join(" ")}`);
      assert.ok(back.includes("xg:fleet:instances"));
    } finally {
      restored.kill("SIGKILL");
    }
  });

  it("Redis that stops answering (SIGSTOP): stanzas never wait on it, each instance falls back, and comes back on SIGCONT", async (t) => {
    const s = await logins(lbPort, "slow1", 2);
    process.kill(redis.pid, "SIGSTOP");
    try {
      // A stanza judged while Redis hangs: answered at once (its lease or the local bucket).
      const t0 = Date.now();
      const n = await passed(s, 4, chat("lim1@localhost"));
      const ms = Date.now() - t0;
      t.diagnostic(`4 messages while Redis hangs: ${n} passed, ${ms} ms in all`);
      assert.ok(n >= 1);
      await eventually(async () => (await metric(a, "xmpp_guard_fleet_redis_down")) === 1 && (await metric(b, "xmpp_guard_fleet_redis_down")) === 1, 10_000, "both instances see Redis hang");
      // Still flowing, decided by each instance alone.
      const before = (await metric(a, "xmpp_guard_fleet_local_decisions_total", { kind: "firewall" })) + (await metric(b, "xmpp_guard_fleet_local_decisions_total", { kind: "firewall" }));
      await passed(s, 2, chat("lim1@localhost"));
      const after = (await metric(a, "xmpp_guard_fleet_local_decisions_total", { kind: "firewall" })) + (await metric(b, "xmpp_guard_fleet_local_decisions_total", { kind: "firewall" }));
      assert.ok(after > before, "decided locally");
    } finally {
      process.kill(redis.pid, "SIGCONT");
    }
    await eventually(async () => (await metric(a, "xmpp_guard_fleet_redis_down")) === 0 && (await metric(b, "xmpp_guard_fleet_redis_down")) === 0, 15_000, "both instances see Redis answer again");
    await closeAll(s);
  });

  it("Redis killed mid-run: sessions flow on each instance's own limits, counted and shown; limits come back with Redis", async (t) => {
    const port = redis.port;
    await redis.stop();
    await eventually(async () => (await metric(a, "xmpp_guard_fleet_redis_down")) === 1 && (await metric(b, "xmpp_guard_fleet_redis_down")) === 1, 10_000, "both instances see Redis down");
    const ready = await httpRequest(a.adminAddress()!.port, "GET", "/readyz");
    assert.equal(ready.status, 200, ready.body);
    assert.match(ready.body, /state\.redis: unreachable/);
    // Sessions open and flow; each instance's own bucket of 5.
    const down = await logins(lbPort, "down1", 4);
    const n = await passed(down, 14, chat("lim1@localhost"));
    t.diagnostic(`Redis down: passed ${n} of 14`);
    assert.ok(n > 5 && n <= 10, `passed ${n} while Redis was down (two buckets of 5)`);
    assert.ok((await metric(a, "xmpp_guard_fleet_local_decisions_total", { kind: "firewall" })) > 0);
    assert.ok((await metric(a, "xmpp_guard_fleet_local_decisions_total", { kind: "connection" })) + (await metric(b, "xmpp_guard_fleet_local_decisions_total", { kind: "connection" })) > 0);
    await closeAll(down);

    redis = await startRedis(10_000, port);
    await eventually(async () => (await metric(a, "xmpp_guard_fleet_redis_down")) === 0 && (await metric(b, "xmpp_guard_fleet_redis_down")) === 0, 15_000, "both instances see Redis back");
    const readyAgain = await httpRequest(a.adminAddress()!.port, "GET", "/readyz");
    assert.doesNotMatch(readyAgain.body, /state\.redis/);
    const local = await metric(a, "xmpp_guard_fleet_local_decisions_total", { kind: "firewall" });
    const up = await logins(lbPort, "up1", 4);
    const m = await passed(up, 10, chat("lim1@localhost"));
    const slack = 2 * leaseSize(5);
    t.diagnostic(`Redis back: passed ${m} of 10`);
    assert.ok(m >= 5 && m <= 5 + slack, `passed ${m} with Redis back (one bucket of 5, slack ${slack})`);
    assert.equal(await metric(a, "xmpp_guard_fleet_local_decisions_total", { kind: "firewall" }), local, "no local decisions once Redis answers");
    await closeAll(up);
  });
});
