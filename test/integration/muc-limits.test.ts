// MUC flood limits at the edge with a real Prosody MUC behind the proxy:
// a flooder is bounced with mod_muc_limits' error while another occupant
// keeps talking (per-occupant bucket first), exempt affiliations learned from
// the server's presence pass, over-long nicks and bodies bounce, and the
// proxy's metrics say why. Also: a 100-message flood against what the other
// occupants receive, a member exempted by affiliation, another room unaffected,
// a wave of 20 senders hitting the room bucket (not the occupant buckets), and
// bad input (10,000-line body, 1 MB nick, malformed room JIDs). Last, the
// attacker twins: a join, a flood, an over-long nick and an over-long body
// written prefixed, with the prefix on the stream header, or with an explicit
// xmlns (and the room owner's JID forged in `from`) are limited exactly like
// the plain ones, as are plain stanzas after a bind written as <b:bind/>.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";
import { rawLogin } from "../helpers/raw-session.js";
import { FORMS, writeAs } from "../helpers/stanza-forms.js";

const MUC = "http://jabber.org/protocol/muc";
const ROOM = "lobby@conference.localhost";
const OTHER = "quiet@conference.localhost";
const WAVE = "wave@conference.localhost";
const TWINS = "twins@conference.localhost";
// The over-long twins get a room of their own: the flood twins drain TWINS's bucket.
const TWINS_LONG = "twins-long@conference.localhost";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

describe("MUC flood limits through the proxy, real Prosody MUC", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  const clients: Record<string, TestClient> = {};

  const join = async (who: string, nick: string, room = ROOM): Promise<void> => {
    const c = clients[who]!;
    await c.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC })));
    await c.waitFor((el) => el.is("presence") && el.attrs.from === `${room}/${nick}` && el.getChild("x", `${MUC}#user`)?.getChildren("status").some((s) => s.attrs.code === "110") === true, 5000);
  };
  const say = (who: string, body: string, id: string, room = ROOM) =>
    clients[who]!.send(xml("message", { to: room, type: "groupchat", id }, xml("body", {}, body)));
  const bounced = (id: string) => (el: XmlElement): boolean => el.is("message") && el.attrs.id === id && el.attrs.type === "error";

  before(async () => {
    prosody = await startProsody();
    for (const u of ["owner", "flooder", "calm", "member", "bad"]) await prosody.createUser(u, `${u}-pw`);
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      muc_limits: {
        hosts: ["conference.localhost"],
        event_rate: 2, burst_factor: 5, // room: 10 at once, then 2/s
        per_occupant: { event_rate: 0.5, burst_factor: 4 }, // each occupant: 2 at once, then 1 per 2 s
        exempt_affiliations: ["owner", "admin", "member"],
        max_nick_length: 10,
      },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    const port = proxy.listenerAddress("c2s")!.port;
    for (const u of ["owner", "flooder", "calm", "member", "bad"]) {
      clients[u] = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN" });
    }
    await join("owner", "boss"); // creates the room: owner affiliation, learned from the server's presence
    // The owner makes `member` a member (muc#admin); the server's presence to
    // member then says affiliation='member', which the proxy learns.
    await clients.owner!.send(xml("iq", { type: "set", to: ROOM, id: "aff1" },
      xml("query", { xmlns: `${MUC}#admin` }, xml("item", { affiliation: "member", jid: "member@localhost" }))));
    const granted = await clients.owner!.waitFor((el) => el.is("iq") && el.attrs.id === "aff1");
    assert.equal(granted.attrs.type, "result");
    await join("flooder", "flood");
    await join("calm", "calm");
    await join("member", "mem");
    await join("calm", "calm", OTHER);
    await join("owner", "boss", OTHER);
  });

  after(async () => {
    await Promise.all(Object.values(clients).map((c) => c.stop()));
    await proxy?.shutdown(0);
    await prosody?.stop();
  });

  it("a flooder sends 100 messages at once: bounced after its burst; the others get no more than burst + rate × time", async () => {
    const flooder = clients.flooder!;
    const started = Date.now();
    for (let i = 0; i < 100; i++) void say("flooder", `flood ${i}`, `f${i}`);
    // Every flood message comes back to the flooder: as the room's reflection
    // (delivered) or as a bounce (limited). Wait for all 100 answers.
    const answers = await flooder.collect((el) => el.is("message") && /^f\d+$/.test(el.attrs.id ?? "") &&
      (el.attrs.type === "error" || el.attrs.from === `${ROOM}/flood`), 100, 20_000);
    const elapsedS = (Date.now() - started) / 1000;
    const bounces = answers.filter((el) => el.attrs.type === "error");
    const delivered = answers.length - bounces.length;
    // Occupant bucket: capacity 0.5 × 4 = 2, refilling 0.5/s; the join took 1.
    assert.ok(delivered >= 1, `the burst passes (${delivered} delivered)`);
    assert.ok(delivered <= 2 + Math.ceil(0.5 * elapsedS), `${delivered} delivered in ${elapsedS.toFixed(1)} s exceeds burst + rate`);
    const e = bounces[0]!.getChild("error")!;
    assert.equal(e.attrs.type, "wait");
    assert.ok(e.getChild("policy-violation", STANZAS));
    assert.match(e.getChildText("text", STANZAS) ?? "", /overactive/);
    assert.equal(bounces[0]!.attrs.from, ROOM);
    // The other occupant saw exactly the delivered ones, in order.
    const seen = await clients.calm!.collect((el) => el.is("message") && el.attrs.from === `${ROOM}/flood`, delivered, 5000);
    assert.equal(seen.length, delivered);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await clients.calm!.collect((el) => el.is("message") && el.attrs.from === `${ROOM}/flood`, 1, 200).catch(() => [])).length, 0,
      "calm received more flood messages than the flooder saw delivered");
    // The room's bucket was not drained by the flooder: the calm occupant still gets through.
    await say("calm", "hello everyone", "c1");
    await clients.owner!.waitFor((el) => el.is("message") && el.attrs.from === `${ROOM}/calm` && el.getChildText("body") === "hello everyone");
    assert.equal(await metric(proxy, "xmpp_guard_muc_limited_total", { reason: "rate", bucket: "occupant" }), bounces.length);
    assert.equal(await metric(proxy, "xmpp_guard_muc_limited_total", { reason: "rate", bucket: "room" }), 0);
  });

  it("another room is unaffected while the flooder is limited in the first", async () => {
    await say("flooder", "still flooding", "f-again");
    await clients.flooder!.waitFor(bounced("f-again"));
    await say("calm", "over here", "q1", OTHER);
    const got = await clients.owner!.waitFor((el) => el.is("message") && el.attrs.from === `${OTHER}/calm`);
    assert.equal(got.getChildText("body"), "over here");
  });

  it("a member floods with members exempt: all 30 delivered", async () => {
    for (let i = 0; i < 30; i++) void say("member", `member says ${i}`, `m${i}`);
    const seen = await clients.calm!.collect((el) => el.is("message") && el.attrs.from === `${ROOM}/mem`, 30, 10_000);
    assert.deepEqual(seen.map((el) => el.getChildText("body")), Array.from({ length: 30 }, (_, i) => `member says ${i}`));
  });

  it("the owner (exempt, learned from the server) is never limited", async () => {
    for (let i = 0; i < 15; i++) await say("owner", `announcement ${i}`, `o${i}`);
    const seen = await clients.calm!.collect((el) => el.is("message") && el.attrs.from === `${ROOM}/boss` && (el.getChildText("body") ?? "").startsWith("announcement"), 15, 10_000);
    assert.equal(seen.length, 15);
  });

  it("an over-long nick and an over-long body are bounced before the server sees them", async () => {
    const c = clients.calm!;
    await c.send(xml("presence", { to: `${ROOM}/${"n".repeat(20)}`, id: "nick1" }));
    const nickErr = await c.waitFor((el) => el.is("presence") && el.attrs.id === "nick1" && el.attrs.type === "error");
    assert.ok(nickErr.getChild("error")!.getChild("policy-violation"));
    assert.ok(await metric(proxy, "xmpp_guard_muc_limited_total", { reason: "nick" }) >= 1);
    await say("calm", "x".repeat(6000), "long1");
    const bodyErr = await c.waitFor(bounced("long1"));
    assert.ok(bodyErr.getChild("error")!.getChild("policy-violation"));
    assert.ok(await metric(proxy, "xmpp_guard_muc_limited_total", { reason: "chars" }) >= 1);
    assert.ok(await metric(proxy, "xmpp_guard_muc_tracked", { kind: "rooms" }) >= 1);
  });

  it("bad input: a 10,000-line body is bounced, malformed room JIDs get the server's error, a 1 MB nick ends only that stream", async () => {
    const c = clients.calm!;
    await say("calm", "line\n".repeat(10_000), "lines1");
    const linesErr = await c.waitFor(bounced("lines1"));
    assert.ok(linesErr.getChild("error")!.getChild("policy-violation", STANZAS));
    for (const [i, to] of ["@conference.localhost", "lobby@conference.localhost/", "lo bby@conference.localhost"].entries()) {
      await c.send(xml("message", { to, type: "groupchat", id: `mal${i}` }, xml("body", {}, "x")));
      const err = await c.waitFor((el) => el.attrs.id === `mal${i}` && el.attrs.type === "error");
      assert.ok(err.getChild("error")!.getChild("jid-malformed", STANZAS), `${to}: ${err.toString()}`);
    }
    // 1 MB nick: over max_stanza_size (256 KiB); the proxy ends that stream
    // with policy-violation before the server sees a byte of it.
    const bad = clients.bad!;
    const closed = new Promise<void>((resolve) => {
      bad.xmpp.on("offline", () => resolve());
      bad.xmpp.on("disconnect", () => resolve());
    });
    void bad.send(xml("presence", { to: `${ROOM}/${"n".repeat(1 << 20)}` })).catch(() => undefined);
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error(`still ${bad.xmpp.status}; errors: ${bad.errors.map(String).join("; ")}`)), 10_000))]);
    assert.ok(bad.errors.some((e) => /policy-violation/.test(String((e as { condition?: string }).condition ?? e.message))), bad.errors.map(String).join("; "));
    // Everyone else carries on.
    await say("owner", "after the storm", "o-after");
    await clients.calm!.waitFor((el) => el.is("message") && el.attrs.from === `${ROOM}/boss` && el.getChildText("body") === "after the storm");
  });

  it("a wave: 20 senders, 2 messages each at once, hit the room bucket and never an occupant bucket", async () => {
    // A second proxy in front of the same server, with a roomy occupant limit
    // and a room bucket of 25 that refills slowly (0.1/s): the 20 joins take 20
    // tokens, so most of the 40 messages must bounce on the room bucket.
    const waveProxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      muc_limits: {
        hosts: ["conference.localhost"],
        event_rate: 0.1, burst_factor: 250,
        per_occupant: { event_rate: 0.5, burst_factor: 10 }, // 5 each: a join and two messages fit
      },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    const wave: TestClient[] = [];
    try {
      const port = waveProxy.listenerAddress("c2s")!.port;
      for (let i = 0; i < 20; i++) {
        await prosody.createUser(`w${i}`, "wave-pw");
        const c = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: `w${i}`, password: "wave-pw", mechanism: "PLAIN" });
        wave.push(c);
        await c.send(xml("presence", { to: `${WAVE}/w${i}` }, xml("x", { xmlns: MUC })));
        await c.waitFor((el) => el.is("presence") && el.attrs.from === `${WAVE}/w${i}` && el.attrs.type !== "error", 5000);
      }
      await Promise.all(wave.flatMap((c, i) => [0, 1].map((k) =>
        c.send(xml("message", { to: WAVE, type: "groupchat", id: `wave${i}-${k}` }, xml("body", {}, `wave ${i}.${k}`))))));
      const answers = await Promise.all(wave.map((c, i) => c.collect((el) => el.is("message") && /^wave\d+-\d$/.test(el.attrs.id ?? "") &&
        (el.attrs.type === "error" || el.attrs.from === `${WAVE}/w${i}`), 2, 10_000)));
      const bounces = answers.flat().filter((el) => el.attrs.type === "error").length;
      assert.ok(bounces >= 30, `only ${bounces} of 40 bounced`);
      const errs = answers.flat().filter((el) => el.attrs.type === "error");
      assert.equal(await metric(waveProxy, "xmpp_guard_muc_limited_total", { reason: "rate", bucket: "room" }), bounces, errs.map(String).join("\n"));
      assert.equal(await metric(waveProxy, "xmpp_guard_muc_limited_total", { reason: "rate", bucket: "occupant" }), 0);
    } finally {
      await Promise.all(wave.map((c) => c.stop()));
      await waveProxy.shutdown(0);
    }
  });

  describe("attacker twins: joins, floods, nicks and bodies written another way", () => {
    // The room is created by a watcher logged in to Prosody directly (so it
    // owns the room and is exempt); it sees what the room really delivered.
    let watcher: TestClient;
    before(async () => {
      await prosody.createUser("watcher", "watcher-pw");
      watcher = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: "watcher", password: "watcher-pw", mechanism: "PLAIN" });
      for (const room of [TWINS, TWINS_LONG]) {
        await watcher.send(xml("presence", { to: `${room}/watch` }, xml("x", { xmlns: MUC })));
        await watcher.waitFor((el) => el.is("presence") && el.attrs.from === `${room}/watch` && el.getChild("x", `${MUC}#user`)?.getChildren("status").some((st) => st.attrs.code === "110") === true);
      }
    });
    after(async () => {
      await watcher?.stop();
    });

    /** A new occupant joins and floods, everything written in `form` (its bind request prefixed with `prefixedBind`). */
    const floodTwin = async (form: (typeof FORMS)[number], nick: string, prefixedBind = false): Promise<void> => {
      const user = `twin-${nick}`;
      await prosody.createUser(user, "twin-pw");
      const s = await rawLogin(proxy.listenerAddress("c2s")!.port, { domain: "localhost", username: user, password: "twin-pw", resource: form, form, presence: true, prefixedBind });
      try {
        // The owner's JID in `from`: the server ignores it on a c2s stream, and so must the limits.
        const forged = { from: watcher.jid };
        s.send(writeAs(form, `<presence to='${TWINS}/${nick}'><x xmlns='${MUC}'/></presence>`, forged));
        await s.waitFor((el) => el.getName() === "presence" && el.attrs.from === `${TWINS}/${nick}` && el.getChild("x", `${MUC}#user`)?.getChildren("status").some((st) => st.attrs.code === "110") === true);
        let flood = "";
        for (let i = 0; i < 10; i++) flood += writeAs(form, `<message to='${TWINS}' type='groupchat' id='tw${i}'><body>flood ${i}</body></message>`, forged);
        s.send(flood);
        // Every message comes back: the room's reflection (delivered) or a bounce (limited).
        const answers = await s.collect((el) => el.getName() === "message" && /^tw\d$/.test(el.attrs.id ?? "") &&
          (el.attrs.type === "error" || el.attrs.from === `${TWINS}/${nick}`), 10, 10_000);
        // A message from the exempt watcher comes after every broadcast of the flood.
        await watcher.send(xml("message", { to: TWINS, type: "groupchat", id: `sync-${nick}` }, xml("body", {}, "sync")));
        await watcher.waitFor((el) => el.is("message") && el.attrs.id === `sync-${nick}`);
        let seen = 0;
        for (;;) {
          try {
            await watcher.waitFor((el) => el.is("message") && el.attrs.from === `${TWINS}/${nick}`, 1);
            seen++;
          } catch {
            break;
          }
        }
        const bounces = answers.filter((el) => el.attrs.type === "error").map((el) =>
          `${el.attrs.id} to=${el.attrs.to} from=${el.attrs.from} ${el.children.map(String).join("")}`);
        const overactive = (i: number): string =>
          `tw${i} to=${s.jid} from=${TWINS} <error type="wait"><policy-violation xmlns="${STANZAS}"/><text xmlns="${STANZAS}">The room is currently overactive, please try again later</text></error><body>flood ${i}</body>`;
        // Occupant bucket: 2 tokens, refilled at 0.5/s; the join took one.
        assert.deepEqual({ delivered: answers.length - bounces.length, seenByWatcher: seen, bounces }, {
          delivered: 1,
          seenByWatcher: 1,
          bounces: Array.from({ length: 9 }, (_, i) => overactive(i + 1)),
        });
      } finally {
        s.stop();
      }
    };

    for (const [k, form] of FORMS.entries()) {
      it(`${form}: a new occupant joins and sends 10 at once: 1 delivered, 9 bounced with the overactive error`, () => floodTwin(form, `t${k}`));
    }

    it("plain stanzas from an occupant whose bind request wrote <b:bind/> with a prefix: 1 delivered, 9 bounced", () => floodTwin("plain", "tb", true));

    for (const [k, form] of FORMS.entries()) {
      it(`${form}: an over-long nick and an over-long body are bounced before the server sees them`, async () => {
        const user = `long-${form}`;
        await prosody.createUser(user, "long-pw");
        const s = await rawLogin(proxy.listenerAddress("c2s")!.port, { domain: "localhost", username: user, password: "long-pw", resource: form, form, presence: true });
        try {
          const forged = { from: watcher.jid };
          s.send(writeAs(form, `<presence to='${TWINS_LONG}/l${k}'><x xmlns='${MUC}'/></presence>`, forged));
          await s.waitFor((el) => el.getName() === "presence" && el.attrs.from === `${TWINS_LONG}/l${k}` && el.attrs.type === undefined);
          const longNick = "n".repeat(20);
          s.send(writeAs(form, `<presence to='${TWINS_LONG}/${longNick}' id='nick-${form}'><x xmlns='${MUC}'/></presence>`, forged));
          s.send(writeAs(form, `<message to='${TWINS_LONG}' type='groupchat' id='long-${form}'><body>${"x".repeat(6000)}</body></message>`, forged));
          await s.sync();
          const described = (el: { attrs: Record<string, string | undefined>; children: unknown[] }): string =>
            `${el.attrs.id} to=${el.attrs.to} from=${el.attrs.from} ${el.children.map(String).join("")}`;
          const tooLong = (text: string): string =>
            `<error type="modify"><policy-violation xmlns="${STANZAS}"/><text xmlns="${STANZAS}">${text}</text></error><x xmlns="${MUC}"/>`;
          assert.deepEqual({
            bounces: s.take((el) => el.attrs.type === "error").map(described),
            // What the room did with them, had they reached it.
            nickTaken: s.take((el) => el.getName() === "presence" && el.attrs.from === `${TWINS_LONG}/${longNick}`).length,
            bodyReflected: s.take((el) => el.getName() === "message" && el.attrs.id === `long-${form}`).length,
          }, {
            bounces: [
              `nick-${form} to=${s.jid} from=${TWINS_LONG}/${longNick} ${tooLong("Your nick name is too long, please use a shorter one")}`,
              `long-${form} to=${s.jid} from=${TWINS_LONG} ${tooLong("Your message is too long, please write a shorter one")}`,
            ],
            nickTaken: 0,
            bodyReflected: 0,
          });
        } finally {
          s.stop();
        }
      });
    }
  });
});
