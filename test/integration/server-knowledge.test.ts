// The ecosystem's anti-spam scripts, unchanged, through the proxy in front of
// a real Prosody, on what the proxy learns from the streams it carries
// (docs/knowledge.md): prosody-modules' spam-blocking.pfw with its add-ons
// spam-blocklists.pfw and spam-strip-xhtml.pfw, then
// jabberspam-simple-blocklist.pfw. The only change is the block list's URL,
// which points at a loopback HTTP server (there is no internet here). The
// block-listed domain is a second VirtualHost of the same Prosody.
//
// Then rules/default.pfw against a wave: three fresh accounts send
// unsolicited chat at 20 messages/s each to four users, who meanwhile talk to
// their contacts. At most the first-contact allowance reaches the users, and
// their own conversations lose nothing.

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";

const SCRIPTS = "/usr/lib/prosody/modules/mod_firewall/scripts/";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const ROSTER = "jabber:iq:roster";
const DEFAULT_RULES = new URL("../../rules/default.pfw", import.meta.url).pathname;

/** A script from prosody-modules with its HTTP list URL pointed at `url`; nothing else changes. */
function withListUrl(script: string, url: string, dir: string): string {
  const text = readFileSync(join(SCRIPTS, script), "utf8");
  const changed = text.replace(/https:\/\/cdn\.jsdelivr\.net\/\S+/g, url);
  assert.notEqual(changed, text, `${script} names the list URL this test replaces`);
  const out = join(dir, script);
  writeFileSync(out, changed);
  return out;
}

async function fetchRoster(c: TestClient): Promise<void> {
  const id = `roster-${Math.random().toString(36).slice(2)}`;
  await c.send(xml("iq", { type: "get", id }, xml("query", { xmlns: ROSTER })));
  await c.waitFor((el) => el.is("iq") && el.attrs.id === id);
}

const bare = (jid: string): string => jid.split("/")[0]!;

/** Both ways subscribed, as two people adding each other; waits for the server's roster pushes. */
async function befriend(a: TestClient, b: TestClient): Promise<void> {
  const pushBoth = (owner: TestClient, other: TestClient) => (el: XmlElement): boolean =>
    el.is("iq") && el.attrs.type === "set" &&
    el.getChild("query", ROSTER)?.getChildren("item").some((i: XmlElement) => i.attrs.jid === bare(other.jid) && i.attrs.subscription === "both") === true;
  const aSeesBoth = a.waitFor(pushBoth(a, b), 10_000);
  const bSeesBoth = b.waitFor(pushBoth(b, a), 10_000);
  for (const [from, to] of [[a, b], [b, a]] as const) {
    await from.send(xml("presence", { to: bare(to.jid), type: "subscribe" }));
    await to.waitFor((el) => el.is("presence") && el.attrs.type === "subscribe" && bare(el.attrs.from ?? "") === bare(from.jid), 10_000);
    await to.send(xml("presence", { to: bare(from.jid), type: "subscribed" }));
  }
  await Promise.all([aSeesBoth, bSeesBoth]);
}

const message = (to: string, type: string, body: string, id: string, ...extra: XmlElement[]): XmlElement =>
  xml("message", { to, type, id }, xml("body", {}, body), ...extra);

const policyViolation = (el: XmlElement): boolean =>
  el.attrs.type === "error" && el.getChild("error")?.getChild("policy-violation", STANZAS) !== undefined;

describe("server knowledge: prosody-modules' anti-spam scripts unchanged, through a real Prosody", () => {
  let prosody: ProsodyInstance;
  let lists: Server;
  let listUrl: string;
  let dir: string;
  const clients: TestClient[] = [];
  let proxies: RunningProxy[] = [];

  before(async () => {
    prosody = await startProsody({ hosts: ["localhost", "blocked.localhost"] });
    for (const u of ["alice", "bob", "stranger"]) await prosody.createUser(u, `${u}-pw`);
    await prosody.createUser("spammer", "spammer-pw", "blocked.localhost");
    lists = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("blocked.localhost\n");
    });
    await new Promise<void>((resolve) => lists.listen(0, "127.0.0.1", resolve));
    listUrl = `http://127.0.0.1:${(lists.address() as AddressInfo).port}/blacklist.txt`;
    dir = mkdtempSync(join(tmpdir(), "xg-knowledge-"));
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    for (const p of proxies) await p.shutdown(0);
    await prosody?.stop();
    await new Promise<void>((resolve) => lists?.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function proxyWith(scripts: string[], name: string): Promise<{ proxy: RunningProxy; login: (u: string, host?: string) => Promise<TestClient> }> {
    const proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      hosts: ["localhost", "blocked.localhost"],
      firewall: { scripts },
      state: { path: join(dir, `${name}.sqlite`) },
      admin: { listen: null },
    }), { logger: createLogger("warn", { write: () => {} }) });
    proxies.push(proxy);
    const port = proxy.listenerAddress("c2s")!.port;
    const login = async (u: string, host = "localhost"): Promise<TestClient> => {
      const c = await connectClient({ host: "127.0.0.1", port, domain: host, username: u, password: `${u}-pw`, mechanism: "PLAIN" });
      clients.push(c);
      await fetchRoster(c); // as every client does: the proxy learns the roster from the answer
      return c;
    };
    return { proxy, login };
  }

  describe("spam-blocking.pfw + spam-blocklists.pfw + spam-strip-xhtml.pfw", () => {
    let alice: TestClient;
    let bob: TestClient;
    let stranger: TestClient;
    let spammer: TestClient;

    before(async () => {
      const { login } = await proxyWith([join(SCRIPTS, "spam-blocking.pfw"), withListUrl("spam-blocklists.pfw", listUrl, dir), join(SCRIPTS, "spam-strip-xhtml.pfw")], "spam-blocking");
      [alice, bob, stranger] = await Promise.all([login("alice"), login("bob"), login("stranger")]);
      spammer = await login("spammer", "blocked.localhost");
      await befriend(alice, bob);
    });

    it("a stranger's headline message is bounced with policy-violation; the same from a contact passes", async () => {
      await stranger.send(message(bare(alice.jid), "headline", "win a prize", "s-h1"));
      const err = await stranger.waitFor((el) => el.is("message") && el.attrs.id === "s-h1", 5000);
      assert.ok(policyViolation(err), err.toString());
      await bob.send(message(bare(alice.jid), "headline", "from a friend", "b-h1"));
      const got = await alice.waitFor((el) => el.is("message") && el.attrs.id === "b-h1", 5000);
      assert.equal(got.getChildText("body"), "from a friend");
      assert.equal(alice.errors.length, 0);
    });

    it("a message from a stranger to an online full JID passes", async () => {
      await stranger.send(message(alice.jid, "normal", "a reply to your client", "s-full"));
      const got = await alice.waitFor((el) => el.is("message") && el.attrs.id === "s-full", 5000);
      assert.equal(got.getChildText("body"), "a reply to your client");
    });

    it("a stranger's chat passes with its XHTML stripped (spam-strip-xhtml.pfw)", async () => {
      await stranger.send(message(bare(alice.jid), "chat", "plain please", "s-x", xml("html", { xmlns: "http://jabber.org/protocol/xhtml-im" }, xml("body", { xmlns: "http://www.w3.org/1999/xhtml" }, "rich"))));
      const got = await alice.waitFor((el) => el.is("message") && el.attrs.id === "s-x", 5000);
      assert.equal(got.getChildText("body"), "plain please");
      assert.equal(got.getChild("html", "http://jabber.org/protocol/xhtml-im"), undefined);
    });

    it("a chat from a block-listed domain is bounced with the list's text", async () => {
      await spammer.send(message(bare(alice.jid), "chat", "cheap pills", "sp-1"));
      const err = await spammer.waitFor((el) => el.is("message") && el.attrs.id === "sp-1", 5000);
      assert.ok(policyViolation(err), err.toString());
      assert.equal(err.getChild("error")?.getChildText("text", STANZAS), "Your server is blocked due to spam");
    });
  });

  describe("jabberspam-simple-blocklist.pfw", () => {
    it("blocks a listed domain even for contacts, and nobody else", async () => {
      const { login } = await proxyWith([withListUrl("jabberspam-simple-blocklist.pfw", listUrl, join(dir))], "simple");
      const carol = await login("bob");
      const spammer = await login("spammer", "blocked.localhost");
      const stranger = await login("stranger");
      await spammer.send(message(bare(carol.jid), "chat", "hello", "sp-2"));
      const err = await spammer.waitFor((el) => el.is("message") && el.attrs.id === "sp-2", 5000);
      assert.ok(policyViolation(err), err.toString());
      await stranger.send(message(bare(carol.jid), "chat", "hello", "st-2"));
      assert.equal((await carol.waitFor((el) => el.is("message") && el.attrs.id === "st-2", 5000)).getChildText("body"), "hello");
    });
  });

  describe("rules/default.pfw against a wave of unsolicited chat", () => {
    it("3 fresh accounts at 20 messages/s to 4 users: at most the first-contact allowance arrives; conversations lose nothing", { timeout: 90_000 }, async () => {
      const users = ["u1", "u2", "u3", "u4"];
      const bots = ["bot1", "bot2", "bot3"];
      for (const u of [...users, ...bots]) await prosody.createUser(u, `${u}-pw`);
      const { login } = await proxyWith([DEFAULT_RULES], "wave");
      const people = await Promise.all(users.map((u) => login(u)));
      const spam = await Promise.all(bots.map((u) => login(u)));
      await befriend(people[0]!, people[1]!);
      await befriend(people[2]!, people[3]!);

      let spamSeen = 0;
      for (const p of people) p.xmpp.on("stanza", (el: XmlElement) => void (el.is("message") && String(el.attrs.id).startsWith("spam-") && spamSeen++));

      const SECONDS = 4;
      const RATE = 20;
      const start = Date.now();
      const talk = (async () => {
        // Each user writes to their contact every 250 ms, as a quick typist would.
        for (let i = 0; i < SECONDS * 4; i++) {
          await Promise.all(people.map((p, k) => p.send(message(bare(people[k ^ 1]!.jid), "chat", `talk ${i}`, `talk-${k}-${i}`))));
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      const flood = (async () => {
        for (let i = 0; i < SECONDS * RATE; i++) {
          await Promise.all(spam.map((b, k) => b.send(message(bare(people[(i + k) % 4]!.jid), "chat", `buy ${i}`, `spam-${k}-${i}`))));
          await new Promise((r) => setTimeout(r, 1000 / RATE));
        }
      })();
      await Promise.all([talk, flood]);
      const elapsed = (Date.now() - start) / 1000;

      // Every conversation message arrives.
      for (let k = 0; k < 4; k++) {
        const got = await people[k ^ 1]!.collect((el) => el.is("message") && String(el.attrs.id).startsWith(`talk-${k}-`), SECONDS * 4, 10_000);
        assert.equal(got.length, SECONDS * 4);
      }
      // A marker after the wave: once it has arrived, everything before it has too.
      await people[1]!.send(message(bare(people[0]!.jid), "chat", "end", "end-marker"));
      await people[0]!.waitFor((el) => el.attrs.id === "end-marker", 5000);
      await new Promise((r) => setTimeout(r, 300));
      // The allowance (rules/default.pfw): 10 at once, then one every 5 s, per sender.
      const allowance = bots.length * (10 + Math.ceil(0.2 * (elapsed + 1)));
      assert.ok(spamSeen <= allowance, `${spamSeen} unsolicited messages arrived; the allowance is ${allowance}`);
      assert.ok(spamSeen >= bots.length, "each fresh account's first message arrives (first contact stays possible)");
    });
  });
});
