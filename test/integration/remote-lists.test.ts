// Remote block lists with a real Prosody behind the proxy.
//
// HTTP: prosody-modules' jabberspam-simple-blocklist.pfw, unchanged but for
// its URL (a loopback server listing "blocked.localhost"), bounces what a
// user of the second VirtualHost blocked.localhost sends to a user connected
// through the proxy (the `deliver` chain, keyed on the sender's host); the
// same from the main host passes.
//
// RTBL: Prosody's mod_pubsub on pubsub.localhost, the proxy's XEP-0114
// component subscribed to a node; an admin publishes an item whose id is the
// sha256 hex of a JID, and that JID's messages are then bounced by
// `%LIST rtbl: pubsubitemid:pubsub.localhost/node (hash: sha256)`; retracting
// the item lets them through again. When the component connection drops
// and comes back, the items are fetched again. A reload keeps open lists without
// fetching again. Copies saved in Redis survive a restart. The sender writes each attacker form
// (prefixes, explicit namespace) with a forged `from`: the check uses the
// `from` the server stamps, so none escapes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";
import { eventually } from "../helpers/raw-client.js";
import { rawLogin, type RawSession } from "../helpers/raw-session.js";
import { FORMS, writeAs } from "../helpers/stanza-forms.js";
import { haveRedis, startRedis, type RedisInstance } from "../helpers/redis.js";
import { HttpList, RemoteLists } from "../../src/knowledge/remote-lists.js";
import { RedisListStore } from "../../src/knowledge/list-store.js";

const SCRIPT = "/usr/lib/prosody/modules/mod_firewall/scripts/jabberspam-simple-blocklist.pfw";
const JABBERSPAM_URL = "https://cdn.jsdelivr.net/gh/jabberspam/blacklist/blacklist.txt";
const SECRET = "rtbl-secret";
const NODE = "muc_bans_sha256";
const PUBSUB = "http://jabber.org/protocol/pubsub";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const sha256 = (s: string): string => createHash("sha256").update(s, "utf8").digest("hex");

describe("remote block lists through the proxy, with a real Prosody", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let http: Server;
  let dir: string;
  let fetches = 0;
  const logs: Array<Record<string, unknown>> = [];
  const clients: TestClient[] = [];
  let admin: TestClient;
  let bob: TestClient;
  let files: { jabberspam: string; rtbl: string };
  let configWith: (scripts: string[]) => ReturnType<typeof configFromObject>;
  // The component connection runs through this relay, so a test can cut it (and hold it down).
  let relay: TcpServer;
  const relayed = new Set<Socket>();
  let relayOpen = true;

  const direct = async (u: string, host = "localhost"): Promise<TestClient> => {
    const c = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: host, username: u, password: `${u}-pw`, mechanism: "PLAIN" });
    clients.push(c);
    return c;
  };
  const viaProxy = async (u: string): Promise<TestClient> => {
    const c = await connectClient({ host: "127.0.0.1", port: proxy.listenerAddress("c2s")!.port, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN" });
    clients.push(c);
    return c;
  };
  const iq = async (c: TestClient, type: "get" | "set", child: XmlElement): Promise<XmlElement> => {
    const id = `iq-${Math.random().toString(36).slice(2)}`;
    await c.send(xml("iq", { type, to: "pubsub.localhost", id }, child));
    return c.waitFor((el) => el.is("iq") && el.attrs.id === id);
  };

  before(async () => {
    http = createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { etag: '"b1"' }).end("blocked.localhost\nspam.example\n");
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/blacklist.txt`;

    prosody = await startProsody({
      hosts: ["localhost", "blocked.localhost"],
      muc: false,
      components: [{ jid: "guard.localhost", secret: SECRET }],
      // The last lines of the global section: an admin (pubsub owner), then the pubsub service.
      extraConfig: 'admins = { "admin@localhost" }\nComponent "pubsub.localhost" "pubsub"',
    });
    for (const u of ["admin", "alice", "bob", "carol", "spammer", "spammer2"]) await prosody.createUser(u, `${u}-pw`);
    relay = createTcpServer((inbound) => {
      if (!relayOpen) {
        inbound.destroy();
        return;
      }
      const outbound = connect({ host: "127.0.0.1", port: prosody.componentPort! });
      for (const [a, b] of [[inbound, outbound], [outbound, inbound]] as const) {
        relayed.add(a);
        a.pipe(b);
        a.on("error", () => b.destroy());
        a.on("close", () => {
          relayed.delete(a);
          b.destroy();
        });
      }
    });
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
    await prosody.createUser("mallory", "mallory-pw", "blocked.localhost");

    // The RTBL node exists before the proxy subscribes (as a real RTBL's does).
    admin = await direct("admin");
    const created = await iq(admin, "set", xml("pubsub", { xmlns: PUBSUB }, xml("create", { node: NODE })));
    assert.equal(created.attrs.type, "result", created.toString());

    dir = mkdtempSync(join(tmpdir(), "xg-rl-"));
    const jabberspam = join(dir, "jabberspam-simple-blocklist.pfw");
    writeFileSync(jabberspam, readFileSync(SCRIPT, "utf8").split(JABBERSPAM_URL).join(url));
    const rtbl = join(dir, "rtbl.pfw");
    writeFileSync(
      rtbl,
      [
        `%LIST rtbl: pubsubitemid:pubsub.localhost/${NODE} (hash: sha256)`,
        "",
        "::preroute",
        "KIND: message",
        "CHECK LIST: rtbl contains $<@from|bare>",
        "BOUNCE=policy-violation (You are on a real-time block list)",
        "",
      ].join("\n"),
    );
    files = { jabberspam, rtbl };
    configWith = (scripts: string[]) =>
      configFromObject({
        listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
        hosts: ["localhost", "blocked.localhost", "pubsub.localhost", "guard.localhost"],
        firewall: { scripts, watch: false },
        component: { jid: "guard.localhost", secret: SECRET, upstream: `127.0.0.1:${(relay.address() as AddressInfo).port}` },
        state: { path: join(dir, "state.sqlite") },
        knowledge: { lists: { timeout: 5 } },
        admin: { listen: null },
      });
    proxy = await startProxy(
      configWith([jabberspam, rtbl]),
      { logger: createLogger("info", { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) }) },
    );
    await eventually(() => logs.some((l) => l.msg === "remote list: pubsub items fetched"), 10_000, "RTBL items fetched");
    await eventually(() => fetches > 0 && logs.some((l) => l.msg === "remote list opened (HTTP)"), 10_000, "HTTP list fetched");
    bob = await direct("bob");
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => undefined)));
    await proxy?.shutdown(0);
    await prosody?.stop();
    http?.closeAllConnections();
    await new Promise((r) => http?.close(r));
    for (const sock of relayed) sock.destroy();
    await new Promise((r) => relay?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const chat = (to: string, body: string, id: string): XmlElement => xml("message", { to, type: "chat", id }, xml("body", {}, body));

  it("HTTP list (jabberspam-simple-blocklist.pfw): a listed sender host is bounced on delivery; the main host is not", async () => {
    const alice = await viaProxy("alice");
    const mallory = await direct("mallory", "blocked.localhost");
    const carol = await direct("carol");
    await mallory.send(chat("alice@localhost", "spam", "hs1"));
    const bounced = await mallory.waitFor((el) => el.is("message") && el.attrs.id === "hs1");
    assert.equal(bounced.attrs.type, "error");
    const e = bounced.getChild("error")!;
    assert.ok(e.getChild("policy-violation", STANZAS), bounced.toString());
    assert.equal(e.getChildText("text", STANZAS), "Your server is blocked due to spam");
    await carol.send(chat("alice@localhost", "hello", "hs2"));
    const got = await alice.waitFor((el) => el.is("message") && el.attrs.id === "hs2");
    assert.equal(got.getChildText("body"), "hello");
    await assert.rejects(alice.waitFor((el) => el.is("message") && el.attrs.id === "hs1", 200), "mallory's message never reached alice");
    const m = await proxy.metrics.registry.metrics();
    assert.match(m, /xmpp_guard_remote_list_fetches_total\{list="blocklist",outcome="ok"\} 1/);
    assert.match(m, /xmpp_guard_remote_list_entries\{list="blocklist"\} 2/);
  });

  describe("RTBL over pubsub", () => {
    const SPAMMER = "spammer@localhost";
    type Sessions = ReadonlyMap<(typeof FORMS)[number], RawSession>;
    /** One session per form (the prefixed-on-header form declares its prefix on the stream header). */
    const login = async (u: string): Promise<Sessions> => {
      const port = proxy.listenerAddress("c2s")!.port;
      return new Map(await Promise.all(FORMS.map(async (form) => [form, await rawLogin(port, { domain: "localhost", username: u, password: `${u}-pw`, resource: form, form })] as const)));
    };
    /** Each session sends one message in its form, with a forged `from`: which are bounced to the real sender, which bob receives. */
    const sendForms = async (sessions: Sessions, tag: string, forged = "carol@localhost/forged"): Promise<{ bounced: string[]; delivered: string[] }> => {
      for (const [form, s] of sessions) {
        s.send(writeAs(form, `<message to='bob@localhost' type='chat' id='${tag}-${form}'><body>x</body></message>`, { from: forged }));
      }
      const bounced: string[] = [];
      for (const s of sessions.values()) {
        await s.sync();
        bounced.push(
          ...s
            .take((el) => el.attrs.type === "error" && String(el.attrs.id).startsWith(`${tag}-`))
            .filter((el) => el.getChild("error")?.getChild("policy-violation", STANZAS) !== undefined && el.attrs.to === s.jid)
            .map((el) => String(el.attrs.id)),
        );
      }
      const delivered: string[] = [];
      for (const [form, s] of sessions) {
        const marker = `marker-${tag}-${form}`;
        s.send(`<presence to='bob@localhost' id='${marker}'/>`);
        await bob.waitFor((el) => el.is("presence") && el.attrs.id === marker);
      }
      for (;;) {
        try {
          const el = await bob.waitFor((x) => x.is("message") && String(x.attrs.id).startsWith(`${tag}-`) && !delivered.includes(String(x.attrs.id)), 1);
          delivered.push(String(el.attrs.id));
        } catch {
          break;
        }
      }
      return { bounced: bounced.sort(), delivered: delivered.sort() };
    };
    const all = (tag: string): string[] => FORMS.map((f) => `${tag}-${f}`).sort();

    it("publishing sha256(JID) blocks that JID in every form (forged from too); retracting unblocks it", async () => {
      const s = await login("spammer");
      try {
        assert.deepEqual(await sendForms(s, "before"), { bounced: [], delivered: all("before") });

        const published = await iq(
          admin,
          "set",
          xml("pubsub", { xmlns: PUBSUB }, xml("publish", { node: NODE }, xml("item", { id: sha256(SPAMMER) }, xml("report", { xmlns: "urn:xmpp:reporting:1", reason: "urn:xmpp:reporting:spam" })))),
        );
        assert.equal(published.attrs.type, "result", published.toString());
        await eventually(async () => (await sendForms(s, `probe${Date.now()}`)).bounced.length > 0, 5000, "the published item applied");
        assert.deepEqual(await sendForms(s, "listed"), { bounced: all("listed"), delivered: [] });
        // Others are not affected, even writing the listed JID as their `from`.
        const carol = await login("carol");
        try {
          assert.deepEqual(await sendForms(carol, "carol", `${SPAMMER}/forged`), { bounced: [], delivered: all("carol") });
        } finally {
          for (const c of carol.values()) c.stop();
        }

        const retracted = await iq(admin, "set", xml("pubsub", { xmlns: PUBSUB }, xml("retract", { node: NODE, notify: "true" }, xml("item", { id: sha256(SPAMMER) }))));
        assert.equal(retracted.attrs.type, "result", retracted.toString());
        await eventually(async () => (await sendForms(s, `unprobe${Date.now()}`)).bounced.length === 0, 5000, "the retraction applied");
        assert.deepEqual(await sendForms(s, "after"), { bounced: [], delivered: all("after") });
      } finally {
        for (const x of s.values()) x.stop();
      }
    });
  });

  it("RTBL: after the component connection drops and comes back, the items are fetched again (an item published meanwhile applies)", async () => {
    const fetched = (): number => logs.filter((l) => l.msg === "remote list: pubsub items fetched").length;
    const down = (): number => logs.filter((l) => l.msg === "component connection down; will retry").length;
    const before = { fetched: fetched(), down: down() };
    const spammer2 = await viaProxy("spammer2");
    relayOpen = false;
    for (const sock of relayed) sock.destroy();
    await eventually(() => down() > before.down, 5000, "component down");
    // Published while the component is away: its notification cannot reach it.
    const published = await iq(admin, "set", xml("pubsub", { xmlns: PUBSUB }, xml("publish", { node: NODE }, xml("item", { id: sha256("spammer2@localhost") }, xml("report", { xmlns: "urn:xmpp:reporting:1" })))));
    assert.equal(published.attrs.type, "result", published.toString());
    relayOpen = true;
    await eventually(() => fetched() > before.fetched, 10_000, "items fetched again after the reconnection");
    await spammer2.send(chat("bob@localhost", "still here", "rc1"));
    const err = await spammer2.waitFor((el) => el.is("message") && el.attrs.id === "rc1");
    assert.equal(err.attrs.type, "error");
    assert.ok(err.getChild("error")!.getChild("policy-violation", STANZAS), err.toString());
  });

  it("a reload keeps open lists (no new fetch, no new subscription) and closes the lists no rule uses any more", async () => {
    const count = (msg: string): number => logs.filter((l) => l.msg === msg).length;
    const before = { fetches, items: count("remote list: pubsub items fetched"), opened: count("remote list opened (HTTP)") };
    const extra = join(dir, "extra.pfw");
    writeFileSync(extra, "::preroute\nTO: nobody@localhost\nDROP.\n");
    assert.deepEqual((await proxy.reload(configWith([files.jabberspam, files.rtbl, extra]))).errors, []);
    assert.deepEqual({ fetches, items: count("remote list: pubsub items fetched"), opened: count("remote list opened (HTTP)") }, before);
    // Without the HTTP list's file, that list is closed (its metrics go) and the RTBL stays.
    assert.deepEqual((await proxy.reload(configWith([files.rtbl]))).errors, []);
    assert.equal(count("remote list closed (no rule uses it any more)"), 1);
    assert.doesNotMatch(await proxy.metrics.registry.metrics(), /list="blocklist"/);
    assert.match(await proxy.metrics.registry.metrics(), /xmpp_guard_remote_list_entries\{list="rtbl"\}/);
    // A refused reload (pubsub list without a component) changes nothing.
    const noComponent = { ...configWith([files.rtbl]), component: null };
    const refused = await proxy.reload(noComponent);
    assert.equal(refused.ok, false);
    assert.match(refused.errors.join("\n"), /rtbl\.pfw:1:1: %LIST rtbl: pubsubitemid lists are read over the XEP-0114 component connection: set `component:`/);
    assert.equal(count("remote list closed (no rule uses it any more)"), 1);
  });
});

describe("remote list copies in Redis (state.redis)", { skip: haveRedis() ? false : "redis-server not installed" }, () => {
  let redis: RedisInstance;
  let http: Server;
  let up = true;

  before(async () => {
    redis = await startRedis();
    http = createServer((_req, res) => {
      if (up) res.writeHead(200, { etag: '"r1"' }).end("redis.example\n");
      else res.writeHead(503).end();
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  });

  after(async () => {
    http?.closeAllConnections();
    await new Promise((r) => http?.close(r));
    await redis?.stop();
  });

  it("a restarted instance starts from the copy another one saved, with the server down", async () => {
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/l.txt`;
    const logger = createLogger("silent");
    const make = (): RemoteLists =>
      new RemoteLists({ logger, options: { timeout: 5, max_bytes: 1 << 20 }, jitterSeconds: 0, store: () => new RedisListStore(redis.url, "xgtest:") });
    const first = make();
    await (first.open(url, {}, { name: "r" }) as HttpList).start();
    await first.close();
    up = false;
    const second = make();
    const list = second.open(url, {}, { name: "r" }) as HttpList;
    await list.start();
    assert.equal(await list.refresh(), "http_error");
    assert.equal(list.contains("redis.example"), true);
    await second.close();
  });
});
