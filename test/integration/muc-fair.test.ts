// Fair room limits through a real Prosody MUC: N bots (N = 1, 5, 20) flood a
// room, each trying every 50 ms, while 4 people post in turn, each within its
// fair share of the room's rate (one message every 3 s each, the share being
// rate / (A + 1) = 10 / 25 = 0.4/s with A = 24 senders at most). What is
// asserted is counted, never timed: no person's message is refused, during
// the flood or after it, every one of them reaches the room, and the room as
// a whole admits at most rate × elapsed + burst (joins, people and bots
// together), where elapsed runs from before the first join to after the last
// stanza. The room is created by a watcher logged in to Prosody directly, so
// it owns the room (and is exempt) and sees what the room really delivered.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";

const MUC = "http://jabber.org/protocol/muc";
const RATE = 10; // events per second
const BURST_FACTOR = 3; // burst 30: a share of 30 / 25 = 1.2 covers one message with 24 senders
const PEOPLE = 4;
const POST_EVERY_MS = 3000; // each person: one message per 3 s (0.33/s ≤ the 0.4/s share)
const FLOOD_MS = 4500;
const AFTER_MS = 3000;
const BOT_EVERY_MS = 50;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const selfPresence = (room: string, nick: string) => (el: XmlElement): boolean =>
  el.is("presence") && el.attrs.from === `${room}/${nick}` && el.getChild("x", `${MUC}#user`)?.getChildren("status").some((s) => s.attrs.code === "110") === true;

describe("fair room limits through the proxy, real Prosody MUC", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let watcher: TestClient;
  let port: number;

  before(async () => {
    prosody = await startProsody();
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      muc_limits: { hosts: ["conference.localhost"], event_rate: RATE, burst_factor: BURST_FACTOR },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    port = proxy.listenerAddress("c2s")!.port;
    await prosody.createUser("watcher", "watcher-pw");
    watcher = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: "watcher", password: "watcher-pw", mechanism: "PLAIN" });
  });

  after(async () => {
    await watcher?.stop();
    await proxy?.shutdown(0);
    await prosody?.stop();
  });

  for (const bots of [1, 5, 20]) {
    it(`${bots} flooding bot(s) and ${PEOPLE} people: no person refused, the room held to rate × time + burst`, { timeout: 60_000 }, async (t) => {
      const room = `fair${bots}@conference.localhost`;
      await watcher.send(xml("presence", { to: `${room}/watch` }, xml("x", { xmlns: MUC })));
      await watcher.waitFor(selfPresence(room, "watch"));
      const people: TestClient[] = [];
      const flooders: TestClient[] = [];
      try {
        for (let i = 0; i < PEOPLE; i++) {
          await prosody.createUser(`p${bots}-${i}`, "pw");
          people.push(await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: `p${bots}-${i}`, password: "pw", mechanism: "PLAIN" }));
        }
        for (let i = 0; i < bots; i++) {
          await prosody.createUser(`b${bots}-${i}`, "pw");
          flooders.push(await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: `b${bots}-${i}`, password: "pw", mechanism: "PLAIN" }));
        }
        const started = Date.now();
        let joins = 0;
        for (const [i, c] of [...people, ...flooders].entries()) {
          const nick = i < PEOPLE ? `person${i}` : `bot${i - PEOPLE}`;
          await c.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC })));
          await c.waitFor(selfPresence(room, nick));
          joins++;
        }
        // Every share has refilled (a full share takes burst_factor seconds).
        await sleep(BURST_FACTOR * 1000);

        // The flood: every bot tries every 50 ms for FLOOD_MS.
        let floodSent = 0;
        const floodEnd = Date.now() + FLOOD_MS;
        const flooding = (async () => {
          while (Date.now() < floodEnd) {
            for (const [i, c] of flooders.entries()) {
              void c.send(xml("message", { to: room, type: "groupchat", id: `f${i}-${floodSent}` }, xml("body", {}, "spam")));
              floodSent++;
            }
            await sleep(BOT_EVERY_MS);
          }
        })();
        // The people, in turn: person i posts at i × 750 ms, then every 3 s, during and after the flood.
        const posts: { who: number; id: string }[] = [];
        const t0 = Date.now();
        const schedule: { at: number; who: number }[] = [];
        for (let at = 0; at < FLOOD_MS + AFTER_MS; at += POST_EVERY_MS) {
          for (let i = 0; i < PEOPLE; i++) schedule.push({ at: at + (i * POST_EVERY_MS) / PEOPLE, who: i });
        }
        schedule.sort((a, b) => a.at - b.at);
        for (const { at, who } of schedule) {
          const wait = t0 + at - Date.now();
          if (wait > 0) await sleep(wait);
          const id = `p${who}-${posts.length}`;
          posts.push({ who, id });
          await people[who]!.send(xml("message", { to: room, type: "groupchat", id }, xml("body", {}, `hello ${id}`)));
        }
        await flooding;

        // Every message comes back to its sender: the room's reflection or a bounce.
        const legit = await Promise.all(people.map((c, i) => {
          const mine = posts.filter((p) => p.who === i).map((p) => p.id);
          return c.collect((el) => el.is("message") && mine.includes(el.attrs.id ?? ""), mine.length, 10_000);
        }));
        const floodAnswers = await Promise.all(flooders.map((c, i) => {
          const n = Math.ceil(floodSent / bots);
          return c.collect((el) => el.is("message") && (el.attrs.id ?? "").startsWith(`f${i}-`), n, 20_000).catch(() => [] as XmlElement[]);
        }));
        const ended = Date.now();
        const elapsedS = (ended - started) / 1000;
        const legitRefused = legit.flat().filter((el) => el.attrs.type === "error").map((el) => el.attrs.id);
        const floodAnswered = floodAnswers.flat();
        const floodDelivered = floodAnswered.filter((el) => el.attrs.type !== "error").length;
        const floodBounced = floodAnswered.length - floodDelivered;
        const summary = { bots, posts: posts.length, legitRefused, floodSent, floodAnswered: floodAnswered.length, floodDelivered, floodBounced, joins, elapsedS };
        t.diagnostic(JSON.stringify(summary));
        assert.deepEqual(legitRefused, [], JSON.stringify(summary));
        assert.equal(legit.flat().length, posts.length, JSON.stringify(summary));
        assert.equal(floodAnswered.length, floodSent, `every flood message answered: ${JSON.stringify(summary)}`);
        // The room's total: joins, people and delivered flood within rate × time + burst.
        const admitted = joins + posts.length + floodDelivered;
        assert.ok(admitted <= RATE * elapsedS + RATE * BURST_FACTOR, `room admitted ${admitted} in ${elapsedS} s: ${JSON.stringify(summary)}`);
        assert.ok(floodBounced > 0, JSON.stringify(summary));
        // The watcher saw every person's message.
        const seen = await watcher.collect((el) => el.is("message") && el.attrs.type === "groupchat" && (el.getChildText("body") ?? "").startsWith("hello "), posts.length, 10_000);
        assert.equal(new Set(seen.map((el) => el.getChildText("body"))).size, posts.length);
      } finally {
        await Promise.all([...people, ...flooders].map((c) => c.stop()));
      }
    });
  }
});

// Where mod_muc_limits on a live Prosody takes no token, neither does the
// proxy: groupchat from someone not in the room and a join without the muc
// <x> are refused by the MUC first; presence to the bare room is an
// occupant's presence update and is charged; the creator's first join is
// free. A room of 3 tokens that hardly refills (0.01/s), no exemptions.
describe("what is charged, as mod_muc_limits on a live Prosody: real Prosody MUC", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let watcher: TestClient;
  let port: number;
  const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

  before(async () => {
    prosody = await startProsody();
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      muc_limits: { hosts: ["conference.localhost"], event_rate: 0.01, burst_factor: 300, exempt_affiliations: [] },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    port = proxy.listenerAddress("c2s")!.port;
    await prosody.createUser("watcher", "watcher-pw");
    watcher = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: "watcher", password: "watcher-pw", mechanism: "PLAIN" });
  });

  after(async () => {
    await watcher?.stop();
    await proxy?.shutdown(0);
    await prosody?.stop();
  });

  const limited = async (): Promise<number> =>
    (await proxy.metrics.registry.getSingleMetric("xmpp_guard_muc_limited_total")?.get())?.values.reduce((a, v) => a + v.value, 0) ?? 0;
  const user = async (name: string): Promise<TestClient> => {
    await prosody.createUser(name, "pw");
    return connectClient({ host: "127.0.0.1", port, domain: "localhost", username: name, password: "pw", mechanism: "PLAIN" });
  };
  const watched = async (room: string): Promise<void> => {
    await watcher.send(xml("presence", { to: `${room}/watch` }, xml("x", { xmlns: MUC })));
    await watcher.waitFor(selfPresence(room, "watch"));
  };
  const say = (c: TestClient, room: string, id: string) => c.send(xml("message", { to: room, type: "groupchat", id }, xml("body", {}, id)));
  /** Sends `n` groupchat messages and returns [delivered, bounced with "overactive"]. */
  const flood = async (c: TestClient, room: string, nick: string, n: number, tag: string): Promise<[number, number]> => {
    for (let i = 0; i < n; i++) await say(c, room, `${tag}${i}`);
    const answers = await c.collect((el) => el.is("message") && (el.attrs.id ?? "").startsWith(tag) &&
      (el.attrs.type === "error" || el.attrs.from === `${room}/${nick}`), n, 10_000);
    const bounced = answers.filter((el) => el.attrs.type === "error");
    assert.ok(bounced.every((el) => /overactive/.test(el.getChild("error")?.getChildText("text", STANZAS) ?? "")), bounced.map(String).join("\n"));
    return [answers.length - bounced.length, bounced.length];
  };

  it("groupchat from someone not in the room: the MUC answers not-acceptable, no token is taken", async () => {
    const room = "notin@conference.localhost";
    await watched(room);
    const c = await user("outsider");
    try {
      for (let i = 0; i < 10; i++) await say(c, room, `out${i}`);
      const errs = await c.collect((el) => el.is("message") && (el.attrs.id ?? "").startsWith("out") && el.attrs.type === "error", 10, 10_000);
      assert.deepEqual(errs.map((el) => el.getChild("error")?.getChildren("not-acceptable").length), Array(10).fill(1));
      assert.equal(await limited(), 0);
      // All 3 tokens are still there: a join and two messages.
      await c.send(xml("presence", { to: `${room}/out` }, xml("x", { xmlns: MUC })));
      await c.waitFor(selfPresence(room, "out"));
      assert.deepEqual(await flood(c, room, "out", 3, "in"), [2, 1]);
    } finally {
      await c.stop();
    }
  });

  it("a join without <x xmlns='http://jabber.org/protocol/muc'/>: the MUC answers item-not-found, no token is taken", async () => {
    const room = "nox@conference.localhost";
    await watched(room);
    const c = await user("nox");
    try {
      const before = await limited();
      for (let i = 0; i < 10; i++) await c.send(xml("presence", { to: `${room}/nox`, id: `nx${i}` }));
      const errs = await c.collect((el) => el.is("presence") && (el.attrs.id ?? "").startsWith("nx") && el.attrs.type === "error", 10, 10_000);
      assert.deepEqual(errs.map((el) => el.getChild("error")?.getChildren("item-not-found").length), Array(10).fill(1));
      assert.equal(await limited(), before);
      await c.send(xml("presence", { to: `${room}/nox` }, xml("x", { xmlns: MUC })));
      await c.waitFor(selfPresence(room, "nox"));
      assert.deepEqual(await flood(c, room, "nox", 3, "m"), [2, 1]);
    } finally {
      await c.stop();
    }
  });

  it("an occupant's presence to the bare room address is charged like a status change", async () => {
    const room = "bare@conference.localhost";
    await watched(room);
    const c = await user("bare");
    try {
      await c.send(xml("presence", { to: `${room}/bare` }, xml("x", { xmlns: MUC })));
      await c.waitFor(selfPresence(room, "bare"));
      // Two updates fit in the 2 tokens left; the server answers each with a self-presence.
      for (const show of ["away", "xa"]) {
        await c.send(xml("presence", { to: room, id: show }, xml("show", {}, show)));
        await c.waitFor((el) => selfPresence(room, "bare")(el) && el.getChildText("show") === show);
      }
      await c.send(xml("presence", { to: room, id: "dnd" }, xml("show", {}, "dnd")));
      const err = await c.waitFor((el) => el.is("presence") && el.attrs.id === "dnd");
      assert.equal(err.attrs.type, "error");
      assert.equal(err.attrs.from, room);
      assert.match(err.getChild("error")?.getChildText("text", STANZAS) ?? "", /overactive/);
    } finally {
      await c.stop();
    }
  });

  it("the room creator's first join is free: 3 messages after creating a room of 3 tokens", async () => {
    const room = "created@conference.localhost";
    const c = await user("creator");
    try {
      await c.send(xml("presence", { to: `${room}/boss` }, xml("x", { xmlns: MUC })));
      const self = await c.waitFor(selfPresence(room, "boss"));
      assert.ok(self.getChild("x", `${MUC}#user`)?.getChildren("status").some((s) => s.attrs.code === "201"), "the join created the room");
      assert.deepEqual(await flood(c, room, "boss", 4, "c"), [3, 1]);
      // A second join by someone else into the existing room is charged: nothing left for it.
      const late = await user("late");
      try {
        await late.send(xml("presence", { to: `${room}/late`, id: "lj" }, xml("x", { xmlns: MUC })));
        const answer = await late.waitFor((el) => el.is("presence") && el.attrs.from === `${room}/late`);
        assert.equal(answer.attrs.type, "error");
      } finally {
        await late.stop();
      }
    } finally {
      await c.stop();
    }
  });
});
