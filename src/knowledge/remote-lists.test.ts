// Remote block lists: parsing and hashing as mod_firewall does, HTTP polling
// against a loopback server (ETag / If-Modified-Since, 304, size cap,
// timeout, failures keep the last good copy), the copy saved in SQLite across
// a restart, sharing across reloads, metrics, pubsubitemid lists over a fake
// component connection, and prosody-modules' block list scripts compiled
// unchanged (but for their URL) with this provider.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadRuleFiles } from "../firewall/load.js";
import { testStanza } from "../../test/helpers/test-stanza.js";
import { createLogger } from "../log.js";
import { createMetrics } from "../metrics/definitions.js";
import type { ComponentClient, ComponentWatcher } from "../registration/component.js";
import { SqliteListStore } from "./list-store.js";
import { HttpList, PubsubList, RemoteLists, checkOnlyRemoteLists, hashItem, parseListBody, type ListCopyStore } from "./remote-lists.js";

const SCRIPTS = "/usr/lib/prosody/modules/mod_firewall/scripts/";
const JABBERSPAM_URL = "https://cdn.jsdelivr.net/gh/jabberspam/blacklist/blacklist.txt";
const sha256 = (s: string): string => createHash("sha256").update(s, "utf8").digest("hex");

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describe("remote lists", () => {
  let server: Server;
  let base: string;
  let handler: Handler = (_req, res) => res.end();
  const seen: IncomingMessage[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger("debug", { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) });
  let dir: string;

  before(async () => {
    server = createServer((req, res) => {
      seen.push(req);
      handler(req, res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = mkdtempSync(join(tmpdir(), "xg-lists-"));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const lists = (extra: { store?: () => ListCopyStore | null; timeout?: number; max_bytes?: number; metrics?: ReturnType<typeof createMetrics> } = {}): RemoteLists =>
    new RemoteLists({
      logger,
      metrics: extra.metrics,
      options: { timeout: extra.timeout ?? 5, max_bytes: extra.max_bytes ?? 1_000_000 },
      store: extra.store,
      jitterSeconds: 0,
    });

  describe("parsing, as mod_firewall's gmatch over the body", () => {
    it("default pattern: one entry per LF or CR LF line; blank lines are no entry; a last line without a line end is none either", () => {
      assert.deepEqual([...parseListBody("spam.example\r\n\nbad.example\n# comment\nlast.example")], ["spam.example", "bad.example", "# comment"]);
    });

    it("a custom pattern yields its first capture (or the whole match)", () => {
      assert.deepEqual([...parseListBody("a.example b.example\nc.example", "%S+")], ["a.example", "b.example", "c.example"]);
      assert.deepEqual([...parseListBody("a.example;1\nb.example;2\n", "([^;\n]+);%d\n")], ["a.example", "b.example"]);
    });

    it("with a hash option, entries are compared as lower-case hex", () => {
      const h = sha256("spam@example.org");
      assert.deepEqual([...parseListBody(`${h.toUpperCase()}\n`, undefined, "sha256")], [h]);
      assert.equal(hashItem("sha1", "x"), createHash("sha1").update("x").digest("hex"));
    });
  });

  describe("HTTP", () => {
    it("fetches at open, then a poll sends If-None-Match and If-Modified-Since; 304 keeps the list", async () => {
      const metrics = createMetrics({ defaultMetrics: false });
      handler = (req, res) => {
        if (req.headers["if-none-match"] === '"v1"') {
          res.writeHead(304).end();
          return;
        }
        res.writeHead(200, { etag: '"v1"', "last-modified": "Sat, 05 Dec 2026 00:00:00 GMT" }).end("spam.example\nbad.example\n");
      };
      const l = lists({ metrics });
      const list = l.open(`${base}/etag.txt`, {}, { name: "bl" }) as HttpList;
      await list.start();
      assert.equal(list.contains("spam.example"), true);
      assert.equal(list.contains("good.example"), false);
      seen.length = 0;
      assert.equal(await list.refresh(), "not_modified");
      assert.equal(seen[0]!.headers["if-none-match"], '"v1"');
      assert.equal(seen[0]!.headers["if-modified-since"], "Sat, 05 Dec 2026 00:00:00 GMT");
      assert.equal(list.size, 2);
      const text = await metrics.registry.metrics();
      assert.match(text, /xmpp_guard_remote_list_fetches_total\{list="bl",outcome="ok"\} 1/);
      assert.match(text, /xmpp_guard_remote_list_fetches_total\{list="bl",outcome="not_modified"\} 1/);
      assert.match(text, /xmpp_guard_remote_list_fetches_total\{list="bl",outcome="timeout"\} 0/);
      assert.match(text, /xmpp_guard_remote_list_entries\{list="bl"\} 2/);
      assert.doesNotMatch(text, /xmpp_guard_remote_list_last_success_timestamp_seconds\{list="bl"\} 0\n/);
      await l.close();
      assert.doesNotMatch(await metrics.registry.metrics(), /list="bl"/);
    });

    it("a failed fetch (5xx, size cap, timeout, refused) keeps the last good copy, logs once, and counts the outcome", async () => {
      let mode = "ok";
      handler = (_req, res) => {
        if (mode === "ok") res.end("spam.example\n");
        else if (mode === "500") res.writeHead(500).end("oops");
        else if (mode === "big") res.end("x".repeat(5000) + "\n");
        else if (mode === "chunked") {
          res.writeHead(200, { "transfer-encoding": "chunked" });
          for (let i = 0; i < 10; i++) res.write("y".repeat(500) + "\n");
          res.end();
        } else if (mode === "hang") res.writeHead(200).write("spam"); // never ends
      };
      const metrics = createMetrics({ defaultMetrics: false });
      const l = lists({ metrics, timeout: 0.3, max_bytes: 1024 });
      const list = l.open(`${base}/fail.txt`, {}, { name: "fl" }) as HttpList;
      await list.start();
      assert.equal(list.contains("spam.example"), true);
      logs.length = 0;
      const outcomes: string[] = [];
      const delays: number[] = [list.nextDelaySeconds];
      for (const m of ["500", "big", "chunked", "hang"]) {
        mode = m;
        outcomes.push(await list.refresh());
        delays.push(list.nextDelaySeconds);
        assert.equal(list.contains("spam.example"), true, m);
        assert.equal(list.size, 1, m);
      }
      assert.deepEqual(outcomes, ["http_error", "too_large", "too_large", "timeout"]);
      // mod_firewall's steps: ttl (default 3600) after a success, then 60, 120, 300, 300… after failures.
      assert.deepEqual(delays, [3600, 60, 120, 300, 300]);
      const warned = logs.filter((x) => x.msg === "remote list: fetch failed, last good copy kept");
      assert.equal(warned.length, 1, "one warning for a run of failures");
      assert.equal(logs.filter((x) => x.msg === "remote list: fetch failed again").length, 3);
      mode = "ok";
      assert.equal(await list.refresh(), "ok");
      assert.equal(list.nextDelaySeconds, 3600);
      assert.ok(logs.some((x) => x.msg === "remote list: fetched again after failures"));
      await l.close();

      const refused = lists({ timeout: 1 });
      const dead = refused.open("http://127.0.0.1:1/none.txt", {}, { name: "dead" }) as HttpList;
      await dead.start();
      assert.equal(await dead.refresh(), "network_error");
      assert.equal(dead.size, 0);
      await refused.close();
    });

    it("polls again by itself after ttl seconds", async () => {
      let n = 0;
      let second!: () => void;
      const polled = new Promise<void>((r) => (second = r));
      handler = (_req, res) => {
        n++;
        res.end(n === 1 ? "one.example\n" : "two.example\n");
        if (n === 2) second();
      };
      const l = lists();
      const list = l.open(`${base}/poll.txt`, { ttl: "0.05" }, { name: "p" }) as HttpList;
      await list.start();
      assert.equal(list.contains("one.example"), true);
      await polled;
      await list.refresh();
      assert.equal(list.contains("two.example"), true);
      assert.equal(list.contains("one.example"), false);
      await l.close();
    });

    it("https: the certificate is checked unless checkcert is never", async () => {
      const key = join(dir, "key.pem");
      const cert = join(dir, "cert.pem");
      execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"], { stdio: "ignore" });
      const tls = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => res.end("tls.example\n"));
      await new Promise<void>((r) => tls.listen(0, "127.0.0.1", r));
      const url = `https://127.0.0.1:${(tls.address() as AddressInfo).port}/list.txt`;
      try {
        const l = lists();
        const checked = l.open(url, {}, { name: "c" }) as HttpList;
        const whenSni = l.open(url, { checkcert: "when-sni" }, { name: "w" }) as HttpList;
        const never = l.open(url, { checkcert: "never" }, { name: "n" }) as HttpList;
        assert.equal(checked, whenSni, "any value but never verifies: the same list");
        await Promise.all([checked.start(), never.start()]);
        assert.equal(await checked.refresh(), "network_error");
        assert.equal(checked.size, 0);
        assert.equal(never.contains("tls.example"), true);
        await l.close();
      } finally {
        tls.closeAllConnections();
        await new Promise((r) => tls.close(r));
      }
    });

    it("start-up never waits for the fetch: open returns at once with an empty list", async () => {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      handler = (_req, res) => void gate.then(() => res.end("late.example\n"));
      const l = lists();
      const list = l.open(`${base}/slow.txt`, {}, { name: "slow" }) as HttpList;
      assert.equal(list.contains("late.example"), false);
      release();
      await list.start();
      assert.equal(list.contains("late.example"), true);
      await l.close();
    });

    it("hash option: lookups hash the item (UTF-8, lower-case hex) after the filters", async () => {
      handler = (_req, res) => res.end(`${sha256("spam@example.org")}\n${sha256("ünï@example.org")}\n`);
      const l = lists();
      const list = l.open(`${base}/hashed.txt`, { hash: "sha256" }, { name: "h" }) as HttpList;
      await list.start();
      assert.equal(list.contains("spam@example.org"), true);
      assert.equal(list.contains("ünï@example.org"), true);
      assert.equal(list.contains(sha256("spam@example.org")), false);
      // Through a rule: `filter: lower` runs first, then the hash.
      const rules = join(dir, "hashed.pfw");
      writeFileSync(rules, `%LIST h: ${base}/hashed.txt (hash: sha256, filter: lower)\n::deliver\nCHECK LIST: h contains $<@from|bare>\nDROP.\n`);
      const r = await loadRuleFiles([rules], undefined, { providers: { remoteLists: l.scope(null).factory } });
      assert.deepEqual(r.errors.map((e) => e.format()), []);
      assert.equal(l.keys.length, 1, "the rule's definition reuses the open list");
      const verdict = (from: string): string => r.ruleset!.run("deliver", { stanza: testStanza(`<message from='${from}' to='u@local.example'/>`) }).verdict;
      assert.equal(verdict("SPAM@Example.org/x"), "drop");
      assert.equal(verdict("ham@example.org/x"), "pass");
      await l.close();
    });

    it("the last good copy is saved in SQLite and used after a restart, before (and without) a good fetch", async () => {
      const path = join(dir, "state.sqlite");
      let up = true;
      handler = (req, res) => {
        if (!up) res.writeHead(503).end();
        else if (req.headers["if-none-match"] === '"c1"') res.writeHead(304).end();
        else res.writeHead(200, { etag: '"c1"' }).end("saved.example\n");
      };
      const first = lists({ store: () => SqliteListStore.open(path) });
      await (first.open(`${base}/saved.txt`, {}, { name: "s" }) as HttpList).start();
      await first.close();

      // Restart: the server answers 304 to the saved ETag, so only the copy can fill the list.
      seen.length = 0;
      const second = lists({ store: () => SqliteListStore.open(path) });
      const again = second.open(`${base}/saved.txt`, {}, { name: "s" }) as HttpList;
      await again.start();
      assert.equal(seen[0]!.headers["if-none-match"], '"c1"');
      assert.equal(again.contains("saved.example"), true);
      await second.close();

      // Restart with the server down: the copy is kept.
      up = false;
      const third = lists({ store: () => SqliteListStore.open(path) });
      const down = third.open(`${base}/saved.txt`, {}, { name: "s" }) as HttpList;
      await down.start();
      assert.equal(down.contains("saved.example"), true);
      await third.close();
    });

    it("reloads reuse an open list with the same URL and options; retain closes the others", async () => {
      handler = (_req, res) => res.end("a.example\n");
      const l = lists();
      const one = l.scope(null);
      const a = one.factory.open(`${base}/r.txt`, { ttl: "600" }, { name: "r" });
      await (a as HttpList).start();
      seen.length = 0;
      const two = l.scope(null);
      const b = two.factory.open(`${base}/r.txt`, { ttl: "600" }, { name: "r" });
      const c = two.factory.open(`${base}/r.txt`, { ttl: "60" }, { name: "r2" });
      assert.equal(a, b, "same list object");
      assert.notEqual(a, c, "another ttl is another list");
      await (c as HttpList).start();
      assert.equal(seen.length, 1, "only the new definition fetched");
      l.retain(two.keys);
      assert.equal(l.keys.length, 2);
      l.retain([...two.keys].slice(0, 1));
      assert.equal(l.keys.length, 1);
      assert.equal((c as HttpList).closed, true);
      await l.close();
    });
  });

  it("an option the list type does not read loads with a warning (Prosody ignores it)", async () => {
    const rules = join(dir, "opts.pfw");
    writeFileSync(rules, `%LIST bl: http://127.0.0.1:1/x.txt (ttl: 60, case: insensitive)\n::deliver\nCHECK LIST: bl contains $<@from|host>\nDROP.\n`);
    const r = await loadRuleFiles([rules], undefined, { providers: { remoteLists: checkOnlyRemoteLists(undefined) } });
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings.map((w) => w.message), ["unknown list option 'case' is ignored, as in Prosody (this list type reads: ttl, pattern, hash, checkcert, filter)"]);
  });

  describe("pubsubitemid (real-time block lists) over a component connection", () => {
    class FakeComponent {
      jid = "guard.localhost";
      state = "online";
      sent: string[] = [];
      watchers = new Set<ComponentWatcher>();
      onSend: (() => void) | undefined;
      send(s: string): boolean {
        this.sent.push(s);
        this.onSend?.();
        return true;
      }
      watch(w: ComponentWatcher): () => void {
        this.watchers.add(w);
        return () => this.watchers.delete(w);
      }
      deliver(xml: string): void {
        const b = Buffer.from(xml);
        for (const w of this.watchers) w.onStanza?.(b, 0, b.length);
      }
    }

    it("subscribes, fetches the items, applies publish/retract/purge live, and replays events seen while the items were in flight", () => {
      const l = lists();
      const fake = new FakeComponent();
      l.setComponent(fake as unknown as ComponentClient);
      const list = l.open("pubsubitemid:pubsub.localhost/muc_bans_sha256", { hash: "sha256" }, { name: "rtbl" }, { jid: "guard.localhost", secret: "s", upstream: { text: "x:1", host: "x", port: 1 } }) as PubsubList;
      assert.equal(fake.sent.length, 2);
      assert.match(fake.sent[0]!, /^<iq type='set' from='guard.localhost' to='pubsub.localhost' id='[^']+'><pubsub xmlns='http:\/\/jabber.org\/protocol\/pubsub'><subscribe node='muc_bans_sha256' jid='guard.localhost'\/>/);
      assert.match(fake.sent[1]!, /<items node='muc_bans_sha256'\/>/);
      const itemsId = /id='([^']+)'/.exec(fake.sent[1]!)![1]!;
      const a = sha256("a@evil.example");
      const b = sha256("b@evil.example");
      const c = sha256("c@evil.example");
      // An event that arrives before the items answer (published after the snapshot).
      fake.deliver(`<message from='pubsub.localhost' to='guard.localhost'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='muc_bans_sha256'><item id='${c}'/></items></event></message>`);
      fake.deliver(
        `<iq type='result' from='pubsub.localhost' to='guard.localhost' id='${itemsId}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='muc_bans_sha256'><item id='${a}'/><item id='${b}'/></items></pubsub></iq>`,
      );
      assert.deepEqual(["a", "b", "c"].map((u) => list.contains(`${u}@evil.example`)), [true, true, true]);
      // Retract, from another node (ignored), from another service (ignored), prefixed event namespace.
      fake.deliver(`<message from='pubsub.localhost'><e:event xmlns:e='http://jabber.org/protocol/pubsub#event'><e:items node='muc_bans_sha256'><e:retract id='${a}'/></e:items></e:event></message>`);
      fake.deliver(`<message from='pubsub.localhost'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='other'><retract id='${b}'/></items></event></message>`);
      fake.deliver(`<message from='evil.example'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='muc_bans_sha256'><retract id='${b}'/></items></event></message>`);
      assert.deepEqual(["a", "b", "c"].map((u) => list.contains(`${u}@evil.example`)), [false, true, true]);
      fake.deliver(`<message from='pubsub.localhost'><event xmlns='http://jabber.org/protocol/pubsub#event'><purge node='muc_bans_sha256'/></event></message>`);
      assert.equal(list.size, 0);
      // A reconnection subscribes and fetches again.
      fake.sent.length = 0;
      for (const w of fake.watchers) w.onOnline?.();
      assert.equal(fake.sent.length, 2);
      l.retain([]);
      assert.match(fake.sent.at(-1)!, /<unsubscribe node='muc_bans_sha256' jid='guard.localhost'\/>/);
    });

    it("an error answer keeps the list, counts pubsub_error, and subscribes and fetches again after the retry delay", async () => {
      const metrics = createMetrics({ defaultMetrics: false });
      const l = new RemoteLists({ logger, metrics, options: { timeout: 5, max_bytes: 1 << 20 }, jitterSeconds: 0, retrySeconds: [0.01] });
      const fake = new FakeComponent();
      l.setComponent(fake as unknown as ComponentClient);
      l.open("pubsubitemid:pubsub.localhost/nope", {}, { name: "nope" }, { jid: "guard.localhost", secret: "s", upstream: { text: "x:1", host: "x", port: 1 } });
      const itemsId = /id='([^']+)'/.exec(fake.sent[1]!)![1]!;
      const again = new Promise<void>((r) => (fake.onSend = () => fake.sent.length === 4 && r()));
      fake.deliver(`<iq type='error' from='pubsub.localhost' id='${itemsId}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
      assert.match(await metrics.registry.metrics(), /xmpp_guard_remote_list_fetches_total\{list="nope",outcome="pubsub_error"\} 1/);
      await again;
      assert.match(fake.sent[2]!, /<subscribe node='nope'/);
      assert.match(fake.sent[3]!, /<items node='nope'\/>/);
      await l.close();
    });

    it("without a component connection configured, the %LIST line is refused with the config key to set", async () => {
      const rules = join(dir, "rtbl.pfw");
      writeFileSync(rules, "%LIST rtbl: pubsubitemid:pubsub.localhost/muc_bans_sha256 (hash: sha256)\n\n::deliver\nCHECK LIST: rtbl contains $<@from|bare>\nDROP.\n");
      const l = lists();
      const r = await loadRuleFiles([rules], undefined, { providers: { remoteLists: l.scope(null).factory } });
      // (The CHECK LIST line then names an unknown list, as for any refused definition.)
      assert.equal(
        r.errors[0]?.format(),
        `${rules}:1:1: %LIST rtbl: pubsubitemid lists are read over the XEP-0114 component connection: set \`component:\` ({ jid, secret, upstream }) in the config (see docs/knowledge.md)`,
      );
      const checked = await loadRuleFiles([rules], undefined, { providers: { remoteLists: checkOnlyRemoteLists(null) } });
      assert.match(checked.errors[0]!.message, /set `component:`/);
      assert.equal((await loadRuleFiles([rules], undefined, { providers: { remoteLists: checkOnlyRemoteLists(undefined) } })).errors.length, 0);
      await l.close();
    });
  });

  describe("prosody-modules' block list scripts, unchanged but for the URL", { skip: existsSync(SCRIPTS) ? false : "prosody-modules not installed" }, () => {
    it("jabberspam-simple-blocklist.pfw and spam-blocking.pfw + spam-blocklists.pfw compile with the provider and bounce a listed server", async () => {
      handler = (_req, res) => res.end("spam.example\nother.example\n");
      const url = `${base}/blacklist.txt`;
      const copy = (name: string): string => {
        const text = readFileSync(`${SCRIPTS}${name}`, "utf8");
        const out = join(dir, name);
        writeFileSync(out, text.split(JABBERSPAM_URL).join(url));
        return out;
      };
      const simple = copy("jabberspam-simple-blocklist.pfw");
      const blocking = copy("spam-blocking.pfw");
      const blocklists = copy("spam-blocklists.pfw");
      const l = lists();
      const r1 = await loadRuleFiles([simple], undefined, { providers: { remoteLists: l.scope(null).factory } });
      assert.deepEqual(r1.errors.map((e) => e.format()), []);
      // spam-blocking.pfw also needs rosters and online sessions (other providers; stand-ins here).
      const others = { roster: { entry: () => undefined }, sessions: { isOnline: () => false } };
      const r2 = await loadRuleFiles([blocking, blocklists], undefined, { providers: { ...others, remoteLists: l.scope(null).factory }, localHosts: ["local.example"] });
      assert.deepEqual(r2.errors.map((e) => e.format()), []);
      assert.equal(l.keys.length, 1, "both files' `blocklist` share one list");
      await (l.get(l.keys[0]!) as HttpList).start();
      const run = (xml: string) => r1.ruleset!.run("deliver", { stanza: testStanza(xml) });
      const v = run("<message type='chat' from='bot@spam.example/x' to='u@local.example' id='m1'><body>buy</body></message>");
      assert.equal(v.verdict, "bounce");
      assert.match(v.bounce!.stanza, /<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Your server is blocked due to spam<\/text>/);
      assert.equal(run("<message type='chat' from='friend@good.example/x' to='u@local.example' id='m2'/>").verdict, "pass");
      assert.equal(run("<message type='chat' from='bot@sub.spam.example/x' to='u@local.example' id='m3'/>").verdict, "pass", "exact host match only");
      await l.close();
    });
  });
});
