// MucLimitsStage on a FakeClock over the real Stanza view: mod_muc_limits'
// algorithm step by step (docs/muc-limits.md), exact bounces, the cost
// function, per-occupant-first, the room bucket against a wave, exemptions
// learned from the server's presence, PMs, hosts, eviction and caps, reload.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SessionInfo, Verdict } from "../policy/pipeline.js";
import { FakeClock } from "../../test/helpers/fake-clock.js";
import { Stanza } from "../xml/stanza.js";
import type { StanzaView } from "../xml/stanza-view.js";
import { parseMucLimits, type MucLimitsOptions } from "./config.js";
import { eventCost, MucLimitsStage, type LimitReason, type RateBucket } from "./muc-limits.js";
import { countNewlines } from "./muc-stanza.js";

const HOST = "muc.example";
const ROOM = `room@${HOST}`;
const ERR = "urn:ietf:params:xml:ns:xmpp-stanzas";
const OVERACTIVE = "The room is currently overactive, please try again later";

function options(over: Record<string, unknown> = {}): MucLimitsOptions {
  const r = parseMucLimits({ hosts: [HOST], ...over });
  if (!r.ok) throw new Error(`${r.at}: ${r.message}`);
  return r.value;
}

function c2s(jid: string | undefined): SessionInfo {
  return { id: "c", listener: "c2s", type: "c2s", ip: "192.0.2.1", port: 5000, jid, domain: "example.org", authenticated: true };
}

const S2S: SessionInfo = { id: "s", listener: "s2s", type: "s2s", ip: "192.0.2.9", port: 5269, jid: undefined, domain: "remote.example", authenticated: true };

interface Harness {
  clock: FakeClock;
  stage: MucLimitsStage;
  limited: [LimitReason, RateBucket | undefined][];
  /** Inbound from a session; returns the verdict (undefined = forward). */
  send(session: SessionInfo, xml: string): Verdict | undefined;
  /** Outbound to a session (the server's stanzas). */
  deliver(session: SessionInfo, xml: string): void;
  /** A c2s user's groupchat message to ROOM (or `room`). */
  say(jid: string, body?: string, room?: string): Verdict | undefined;
  /** The server's self-presence (status 110) giving `jid` an affiliation in ROOM. */
  affiliate(jid: string, affiliation: string, nick?: string): void;
}

function harness(over: Record<string, unknown> = {}): Harness {
  const clock = new FakeClock(1_000_000);
  const limited: [LimitReason, RateBucket | undefined][] = [];
  const stage = new MucLimitsStage(options(over), clock, { onLimited: (r, b) => limited.push([r, b]) });
  const view = (session: SessionInfo, xml: string): StanzaView =>
    new Stanza(Buffer.from(xml), session.type === "c2s" ? "jabber:client" : "jabber:server", session.jid);
  const h: Harness = {
    clock,
    stage,
    limited,
    send: (session, xml) => stage.judge(view(session, xml), session, "inbound"),
    deliver: (session, xml) => void stage.judge(view(session, xml), session, "outbound"),
    say: (jid, body = "hi", room = ROOM) => h.send(c2s(jid), `<message to='${room}' type='groupchat' id='g'><body>${body}</body></message>`),
    affiliate: (jid, affiliation, nick = "n") =>
      h.deliver(
        c2s(jid),
        `<presence from='${ROOM}/${nick}' to='${jid}'><x xmlns='http://jabber.org/protocol/muc#user'>` +
          `<item affiliation='${affiliation}' role='participant'/><status code='110'/></x></presence>`,
      ),
  };
  return h;
}

function isBounce(v: Verdict | undefined): v is Extract<Verdict, { action: "bounce" }> {
  return v !== undefined && v.action === "bounce";
}

/** How many of `n` groupchat messages from `jid` pass. */
function passes(h: Harness, jid: string, n: number, body?: string): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (h.say(jid, body) === undefined) ok++;
  return ok;
}

const A = "alice@example.org/pc";
const B = "bob@example.org/phone";
const C = "carol@example.org/web";

describe("cost function (step 5)", () => {
  const D = options();
  it("counts newlines, not lines", () => {
    assert.equal(countNewlines(""), 0);
    assert.equal(countNewlines("one line"), 0);
    assert.equal(countNewlines("a\nb"), 1);
    assert.equal(countNewlines("\n\n\n"), 3);
    assert.equal(countNewlines("a\n".repeat(10_000)), 10_000);
  });

  it("is base + newlines × multiplier (as in mod_muc_limits, a 10-line body costs 1.9)", () => {
    assert.equal(eventCost(0, D), 1);
    assert.equal(eventCost(1, D), 1.1);
    assert.equal(eventCost(9, D), 1 + 9 * 0.1);
    assert.ok(Math.abs(eventCost(9, D) - 1.9) < 1e-12);
    assert.equal(eventCost(3, { limit_base_cost: 0, line_count_multiplier: 0.5 }), 1.5);
    assert.equal(eventCost(5, { limit_base_cost: 2, line_count_multiplier: 0 }), 2);
  });
});

describe("step 6: the room bucket (capacity event_rate × burst_factor = 3, refill 0.5/s)", () => {
  it("passes the burst, then bounces exactly as mod_muc_limits does", () => {
    const h = harness();
    assert.equal(passes(h, A, 3), 3);
    const v = h.send(c2s(A), `<message to='${ROOM}' type='groupchat' id='m4'><body>it's 4</body></message>`);
    assert.ok(isBounce(v));
    assert.equal(
      v.reply,
      `<message to='${A}' from='${ROOM}' id='m4' type='error'><error type='wait'><policy-violation xmlns='${ERR}'/>` +
        `<text xmlns='${ERR}'>${OVERACTIVE}</text></error><body>it&apos;s 4</body></message>`,
    );
    assert.deepEqual(h.limited, [["rate", "room"]]);
    assert.equal(h.stage.limitedCount.rate, 1);
  });

  it("refills at event_rate; a refused stanza takes nothing from the room but counts against its sender", () => {
    const h = harness();
    assert.equal(passes(h, A, 3), 3);
    h.clock.advance(1999);
    assert.ok(isBounce(h.say(B))); // 0.9995 tokens
    h.clock.advance(1);
    assert.equal(h.say(C), undefined); // exactly 1: the bounce above took nothing from the room
    h.clock.advance(2000);
    assert.ok(isBounce(h.say(A))); // A owes its share: it must leave one share (1) for a newcomer
    h.clock.advance(60_000);
    assert.equal(passes(h, A, 5), 3); // the window passed: A starts afresh, the room is full
  });

  it("charges joins and presence changes, and copies the join's muc <x> inside <error>", () => {
    const h = harness();
    for (const who of [A, B, C]) assert.equal(h.send(c2s(who), `<presence to='${ROOM}/${who[0]}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`), undefined);
    const v = h.send(
      c2s("dave@example.org/x"),
      `<presence to='${ROOM}/dave' id='j'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas="0"/><password>s3</password></x></presence>`,
    );
    assert.ok(isBounce(v));
    assert.equal(
      v.reply,
      `<presence to='dave@example.org/x' from='${ROOM}/dave' id='j' type='error'><error type='wait'><policy-violation xmlns='${ERR}'/>` +
        `<text xmlns='${ERR}'>${OVERACTIVE}</text><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/><password>s3</password></x></error></presence>`,
    );
    // A status change from an occupant is charged too.
    assert.ok(isBounce(h.send(c2s(A), `<presence to='${ROOM}/a'><show>away</show></presence>`)));
  });

  it("bounces a bodyless groupchat (chat state) with a plain error reply", () => {
    const h = harness();
    passes(h, A, 3);
    const v = h.send(c2s(A), `<message to='${ROOM}' type='groupchat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`);
    assert.ok(isBounce(v));
    assert.equal(
      v.reply,
      `<message to='${A}' from='${ROOM}' type='error'><error type='wait'><policy-violation xmlns='${ERR}'/><text xmlns='${ERR}'>${OVERACTIVE}</text></error></message>`,
    );
  });

  it("charges the line cost: two 10-line bodies do not fit in 3 tokens at once", () => {
    const h = harness();
    const tenLines = Array.from({ length: 10 }, (_, i) => `line ${i}`).join("\n");
    assert.equal(h.say(A, tenLines), undefined); // 1.9, leaves 1.1
    assert.ok(isBounce(h.say(B, tenLines)));
    h.clock.advance(1590); // 1.895
    assert.ok(isBounce(h.say(C, tenLines)));
    h.clock.advance(20); // 1.905
    assert.equal(h.say("dave@example.org/d", tenLines), undefined);
  });

  it("can never pass a stanza that costs more than the capacity (21+ newlines with the defaults)", () => {
    const h = harness();
    const v = h.say(A, "x\n".repeat(21)); // cost 3.1 > 3, a full bucket
    assert.ok(isBounce(v));
    assert.deepEqual(h.limited, [["rate", "room"]]);
    assert.equal(h.say(B, "x\n".repeat(20)), undefined); // 3.0 fits exactly
  });

  it("a room bucket stops a wave of many senders, each within any occupant limit", () => {
    const h = harness({ per_occupant: { event_rate: 0.2, burst_factor: 5 } });
    let ok = 0;
    for (let i = 0; i < 20; i++) if (h.say(`user${i}@example.org/r`) === undefined) ok++;
    assert.equal(ok, 3);
    assert.equal(h.limited.length, 17);
    assert.ok(h.limited.every(([r, b]) => r === "rate" && b === "room"));
  });

  it("other rooms have their own buckets", () => {
    const h = harness();
    passes(h, A, 3);
    assert.ok(isBounce(h.say(A)));
    assert.equal(passes(h, A, 3), 0);
    assert.equal(h.say(A, "hi", `other@${HOST}`), undefined);
    assert.deepEqual(h.stage.stats(), { rooms: 2, occupants: 0, capEvictions: 0 });
  });

  it("a room is one bucket under every spelling the server's stringprep reads as its JID (ß, case, fullwidth, trailing dot)", () => {
    const h = harness();
    assert.equal(h.say(A, "hi", `Stra\u00DFe@${HOST}`), undefined);
    assert.equal(h.say(B, "hi", `STRASSE@${HOST.toUpperCase()}.`), undefined);
    assert.equal(h.say(C, "hi", `\uFF33trasse@${HOST}`), undefined);
    assert.ok(isBounce(h.say(A, "hi", `strasse@${HOST}`)), "the fourth costs a token from the same room");
    assert.deepEqual(h.stage.stats(), { rooms: 1, occupants: 0, capEvictions: 0 });
  });

  it("refills eagerly, unlike util.throttle's stale refresh (no double burst after idling)", () => {
    // Prosody refreshes only when the balance is short, crediting all the time
    // since the last refresh: after 60 s idle it passes 3, refreshes, passes 3
    // more. Here the bucket is refilled on every look, so the burst is 3.
    const h = harness();
    h.say(A);
    h.clock.advance(60_000);
    assert.equal(passes(h, A, 10), 3);
  });
});

describe("per-occupant buckets (charged first)", () => {
  const per = { per_occupant: { event_rate: 0.2, burst_factor: 5 } }; // capacity 1, one per 5 s

  it("stop a single flooder without draining the room for the others", () => {
    const h = harness(per);
    assert.equal(passes(h, A, 100), 1);
    assert.equal(h.limited.length, 99);
    assert.ok(h.limited.every(([r, b]) => r === "rate" && b === "occupant"));
    // The room spent 1 of 3 on the flooder: two others still get through.
    assert.equal(h.say(B), undefined);
    assert.equal(h.say(C), undefined);
  });

  it("mod_muc_limits' single room bucket lets the flooder get others bounced", () => {
    const h = harness();
    assert.equal(passes(h, A, 100), 3);
    assert.ok(isBounce(h.say(B)));
  });

  it("bounce the same way as the room bucket", () => {
    const h = harness(per);
    h.say(A);
    const v = h.say(A, "again");
    assert.ok(isBounce(v));
    assert.equal(
      v.reply,
      `<message to='${A}' from='${ROOM}' id='g' type='error'><error type='wait'><policy-violation xmlns='${ERR}'/>` +
        `<text xmlns='${ERR}'>${OVERACTIVE}</text></error><body>again</body></message>`,
    );
  });

  it("a stanza the room refuses costs the occupant nothing", () => {
    const h = harness(per);
    for (const who of [B, C, "dave@example.org/d"]) assert.equal(h.say(who), undefined); // room empty
    assert.ok(isBounce(h.say(A)));
    assert.deepEqual(h.limited.at(-1), ["rate", "room"]);
    // 4 s on the room holds 2, enough for A even in debt in the room; A's own
    // bucket (1, refilled at 0.2/s) is still full: it would hold 0.8 had the
    // refusal taken from it.
    h.clock.advance(4000);
    assert.equal(h.say(A), undefined);
  });

  it("are keyed by room and bare JID: other resources share, other rooms do not", () => {
    const h = harness(per);
    assert.equal(h.say(A), undefined);
    assert.ok(isBounce(h.say("alice@example.org/phone")));
    assert.deepEqual(h.limited.at(-1), ["rate", "occupant"]);
    assert.equal(h.say(A, "hi", `other@${HOST}`), undefined);
  });
});

describe("step 1: presence that is never limited", () => {
  it("unavailable presence passes with an empty bucket", () => {
    const h = harness();
    passes(h, A, 3);
    assert.equal(h.send(c2s(A), `<presence to='${ROOM}/a' type='unavailable'/>`), undefined);
  });

  it("only available presence to an occupant JID or the bare room is charged", () => {
    const h = harness();
    passes(h, A, 3);
    for (const type of ["error", "subscribe", "probe", "unsubscribed"]) {
      assert.equal(h.send(c2s(A), `<presence to='${ROOM}/a' type='${type}'/>`), undefined, type);
    }
    assert.equal(h.limited.length, 0);
    // Presence to the bare room is an occupant's presence update (the MUC
    // redirects it to the occupant's nick): charged, like a status change.
    assert.ok(isBounce(h.send(c2s(A), `<presence to='${ROOM}'/>`)));
    assert.deepEqual(h.limited, [["rate", "room"]]);
  });
});

describe("step 2: affiliated senders skip every check", () => {
  it("learns a member from the server's self-presence and exempts them", () => {
    const h = harness();
    h.affiliate(A, "member");
    assert.equal(passes(h, A, 100), 100);
    assert.equal(h.say(A, "x".repeat(10_000)), undefined); // length checks are skipped too
    assert.equal(h.send(c2s(A), `<presence to='${ROOM}/${"n".repeat(100)}'/>`), undefined); // and the nick check
    assert.equal(h.say(B), undefined); // nothing was drawn from the room
    assert.deepEqual(h.stage.stats(), { rooms: 1, occupants: 1, capEvictions: 0 });
  });

  it("applies to the user's bare JID, any resource", () => {
    const h = harness();
    h.affiliate(A, "owner");
    assert.equal(passes(h, "alice@example.org/other", 10), 10);
  });

  it("loses the exemption when the affiliation changes to none", () => {
    const h = harness();
    h.affiliate(A, "admin");
    assert.equal(passes(h, A, 10), 10);
    h.affiliate(A, "none");
    assert.equal(passes(h, A, 10), 3);
    assert.equal(h.stage.stats().occupants, 0); // nothing left worth keeping
  });

  it("exempts only the configured affiliations", () => {
    const h = harness({ exempt_affiliations: ["owner", "admin"] });
    h.affiliate(A, "member");
    assert.equal(passes(h, A, 10), 3);
    h.stage.reconfigure(options({ exempt_affiliations: ["owner", "admin", "member"] }));
    assert.equal(passes(h, A, 10), 10); // the learned affiliation was kept
  });

  it("exempts outcasts by default, as Prosody does (any affiliation)", () => {
    const h = harness();
    h.affiliate(A, "outcast");
    assert.equal(passes(h, A, 10), 10);
  });

  it("uses the session's bound JID when the server's presence has no `to`", () => {
    const h = harness();
    h.deliver(
      c2s(A),
      `<presence from='${ROOM}/a'><x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/><item affiliation='member'/></x></presence>`,
    );
    assert.equal(passes(h, A, 10), 10);
  });

  it("learns another occupant's affiliation from `item jid` (non-anonymous rooms), e.g. a remote user", () => {
    const h = harness();
    h.deliver(
      c2s(B),
      `<presence from='${ROOM}/zed' to='${B}'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' jid='zed@remote.example/r' role='participant'/></x></presence>`,
    );
    let ok = 0;
    for (let i = 0; i < 10; i++) {
      if (h.send(S2S, `<message from='zed@remote.example/r' to='${ROOM}' type='groupchat'><body>z</body></message>`) === undefined) ok++;
    }
    assert.equal(ok, 10);
  });

  it("does not take the recipient's affiliation from someone else's presence", () => {
    const h = harness();
    // No status 110 and no jid: the item is the other occupant's, unnamed.
    h.deliver(c2s(A), `<presence from='${ROOM}/boss' to='${A}'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/></x></presence>`);
    assert.equal(passes(h, A, 10), 3);
  });

  it("never learns from what a peer sends (inbound), nor from rooms on other hosts", () => {
    const h = harness();
    const claim = `<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner'/><status code='110'/></x>`;
    h.send(c2s(A), `<presence from='${ROOM}/a' to='${A}'>${claim}</presence>`);
    h.send(S2S, `<presence from='${ROOM}/a' to='${A}'>${claim}</presence>`);
    h.deliver(c2s(A), `<presence from='room@elsewhere.example/a' to='${A}'>${claim}</presence>`);
    h.deliver(c2s(A), `<presence from='${ROOM}/a' to='${A}' type='error'>${claim}</presence>`);
    assert.equal(passes(h, A, 10), 3);
  });

  it("keeps the affiliation across a nick change (303) and a leave", () => {
    const h = harness();
    h.affiliate(A, "member", "old");
    h.deliver(
      c2s(A),
      `<presence from='${ROOM}/old' to='${A}' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>` +
        `<item affiliation='member' nick='new'/><status code='303'/><status code='110'/></x></presence>`,
    );
    assert.equal(passes(h, A, 10), 10);
  });
});

describe("step 3: nick length on joins and nick changes", () => {
  it("bounces a nick over max_nick_length bytes with the exact layout, taking no tokens", () => {
    const h = harness();
    const nick = "n".repeat(24);
    const v = h.send(c2s(A), `<presence to='${ROOM}/${nick}' id='p1'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    assert.ok(isBounce(v));
    assert.equal(
      v.reply,
      `<presence to='${A}' from='${ROOM}/${nick}' id='p1' type='error'><error type='modify'><policy-violation xmlns='${ERR}'/>` +
        `<text xmlns='${ERR}'>Your nick name is too long, please use a shorter one</text></error>` +
        `<x xmlns='http://jabber.org/protocol/muc'/></presence>`,
    );
    assert.deepEqual(h.limited, [["nick", undefined]]);
    assert.equal(h.stage.stats().rooms, 0);
    assert.equal(passes(h, A, 3), 3);
  });

  it("counts bytes, not characters", () => {
    const h = harness();
    assert.equal(h.send(c2s(A), `<presence to='${ROOM}/${"n".repeat(23)}'/>`), undefined);
    assert.equal(h.send(c2s(B), `<presence to='${ROOM}/${"é".repeat(11)}'/>`), undefined); // 22 bytes
    assert.ok(isBounce(h.send(c2s(C), `<presence to='${ROOM}/${"é".repeat(12)}'/>`))); // 12 characters, 24 bytes
  });

  it("does not check the nick the sender already holds (a status change is not a join)", () => {
    const h = harness();
    const long = "a-very-long-nick-from-before-limits";
    // The server says A is in the room under this nick (an unaffiliated user).
    h.deliver(c2s(A), `<presence from='${ROOM}/${long}' to='${A}'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='110'/></x></presence>`);
    assert.equal(h.send(c2s(A), `<presence to='${ROOM}/${long}'><show>away</show></presence>`), undefined);
    assert.ok(isBounce(h.send(c2s(B), `<presence to='${ROOM}/${long}'/>`))); // someone else's join
    // A leaves: the nick is no longer held.
    h.deliver(c2s(A), `<presence from='${ROOM}/${long}' to='${A}' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='110'/></x></presence>`);
    assert.equal(h.stage.stats().occupants, 0);
    assert.ok(isBounce(h.send(c2s(A), `<presence to='${ROOM}/${long}'/>`)));
  });

  it("checks a nick change to a long nick", () => {
    const h = harness();
    h.deliver(c2s(A), `<presence from='${ROOM}/short' to='${A}'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none'/><status code='110'/></x></presence>`);
    assert.ok(isBounce(h.send(c2s(A), `<presence to='${ROOM}/${"x".repeat(30)}'/>`)));
  });
});

describe("step 5: body size limits", () => {
  it("bounces a body over max_char_count bytes, before counting lines, taking no tokens", () => {
    const h = harness();
    assert.equal(h.say(A, "x".repeat(5664)), undefined);
    const v = h.send(c2s(A), `<message to='${ROOM}' type='groupchat' id='big'><body>${"é".repeat(2833)}\n\n</body></message>`);
    assert.ok(isBounce(v));
    assert.equal(
      v.reply,
      `<message to='${A}' from='${ROOM}' id='big' type='error'><error type='modify'><policy-violation xmlns='${ERR}'/>` +
        `<text xmlns='${ERR}'>Your message is too long, please write a shorter one</text></error>` +
        `<x xmlns='http://jabber.org/protocol/muc'/></message>`,
    );
    assert.deepEqual(h.limited, [["chars", undefined]]);
    assert.equal(passes(h, A, 2), 2);
  });

  it("bounces more than max_line_count newlines, with the same error", () => {
    const h = harness();
    const v = h.say(A, "l\n".repeat(24));
    assert.ok(isBounce(v));
    assert.ok(v.reply.includes("Your message is too long, please write a shorter one"));
    assert.deepEqual(h.limited, [["lines", undefined]]);
    // 23 newlines is within the line limit, but costs 3.3 > 3: refused by rate.
    assert.ok(isBounce(h.say(A, "l\n".repeat(23))));
    assert.deepEqual(h.limited.at(-1), ["rate", "room"]);
    // The room is still full; B gets its share and one more, and the last
    // token stays as the open share for a newcomer (A, in debt, is active).
    assert.equal(passes(h, B, 3), 2);
  });

  it("refuses a 10,000-line body: for its size first (checked before lines), else for its lines", () => {
    const h = harness();
    const v = h.say(A, "\n".repeat(10_000));
    assert.ok(isBounce(v));
    assert.ok(v.reply.includes("Your message is too long, please write a shorter one"));
    assert.deepEqual(h.limited, [["chars", undefined]]);
    const roomy = harness({ max_char_count: 100_000 });
    assert.ok(isBounce(roomy.say(A, "\n".repeat(10_000))));
    assert.deepEqual(roomy.limited, [["lines", undefined]]);
  });

  it("reads line ends as an XML parser does (CRLF and CR are one newline)", () => {
    const h = harness({ max_line_count: 2 });
    assert.equal(h.say(A, "a\r\nb\rc"), undefined);
    assert.ok(isBounce(h.say(A, "a\r\nb\r\nc\r\nd")));
    assert.equal(h.limited.at(-1)?.[0], "lines");
  });

  it("counts decoded text, and only the first <body> in the stanza's namespace", () => {
    const h = harness({ max_char_count: 3 });
    assert.equal(h.say(A, "&lt;&amp;&gt;"), undefined); // 3 bytes once decoded
    assert.equal(
      h.send(c2s(A), `<message to='${ROOM}' type='groupchat'><body xmlns='urn:other'>too long here</body><body>ok</body></message>`),
      undefined,
    );
    // A body with child elements has no text for Prosody: not measured.
    assert.equal(h.send(c2s(B), `<message to='${ROOM}' type='groupchat'><body>long text<b/></body></message>`), undefined);
  });

  it("measures a <body> in a presence too (the same handler)", () => {
    const h = harness({ max_char_count: 3 });
    assert.ok(isBounce(h.send(c2s(A), `<presence to='${ROOM}/a'><body>four</body></presence>`)));
    assert.equal(h.limited.at(-1)?.[0], "chars");
  });
});

describe("what is charged", () => {
  it("private messages in rooms are not limited (current mod_muc_limits)", () => {
    const h = harness();
    passes(h, A, 3);
    assert.equal(h.send(c2s(A), `<message to='${ROOM}/bob' type='chat'><body>psst</body></message>`), undefined);
    assert.equal(h.send(c2s(A), `<message to='${ROOM}/bob'><body>psst</body></message>`), undefined);
    assert.equal(h.send(c2s(A), `<message to='${ROOM}/bob' type='groupchat'><body>bad</body></message>`), undefined);
    // Invitations and other non-groupchat messages to the room.
    assert.equal(h.send(c2s(A), `<message to='${ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='c@example.org'/></x></message>`), undefined);
    assert.equal(h.send(c2s(A), `<message to='${ROOM}' type='error'><body>e</body></message>`), undefined);
    assert.equal(h.limited.length, 0);
  });

  it("only rooms on listed hosts; the service itself and iqs are not charged", () => {
    const h = harness();
    for (let i = 0; i < 10; i++) {
      assert.equal(h.say(A, "hi", "room@conference.elsewhere.example"), undefined);
      assert.equal(h.send(c2s(A), `<message to='bob@example.org' type='chat'><body>x</body></message>`), undefined);
      assert.equal(h.send(c2s(A), `<iq to='${ROOM}' type='get' id='q'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`), undefined);
      assert.equal(h.send(c2s(A), `<presence to='${HOST}/x'/>`), undefined);
      assert.equal(h.send(c2s(A), `<presence/>`), undefined);
    }
    assert.deepEqual(h.stage.stats(), { rooms: 0, occupants: 0, capEvictions: 0 });
  });

  it("matches the host and room case-insensitively (NFKC), so variants share one bucket", () => {
    const h = harness();
    assert.equal(h.say(A, "1", "Room@MUC.Example"), undefined);
    assert.equal(h.say(A, "2", "ROOM@muc.example."), undefined);
    assert.equal(h.say(A, "3", "ｒｏｏｍ@muc.example"), undefined);
    assert.ok(isBounce(h.say(A, "4")));
    assert.equal(h.stage.stats().rooms, 1);
  });

  it("leaves malformed room JIDs to the server (jid-malformed) and tracks nothing for them", () => {
    const h = harness({ event_rate: 0 }); // anything charged would bounce
    const bad = [
      `@${HOST}`,
      `${ROOM}/`,
      `ro"om@${HOST}`,
      `ro om@${HOST}`,
      `a@b@${HOST}`,
      `${"r".repeat(1024)}@${HOST}`,
      `${HOST}/room@x`,
    ];
    for (const to of bad) assert.equal(h.say(A, "x", to), undefined, to);
    assert.equal(h.send(c2s(A), `<presence to='${ROOM}/${"n".repeat(1024)}'/>`), undefined);
    assert.equal(h.send(c2s(A), `<presence to='${ROOM}/${"n".repeat(1 << 20)}'/>`), undefined);
    assert.deepEqual(h.stage.stats(), { rooms: 0, occupants: 0, capEvictions: 0 });
    // A valid room on the same stage is still limited.
    assert.ok(isBounce(h.say(A)));
  });

  it("ignores stanzas from a c2s session that is not bound yet", () => {
    const h = harness({ event_rate: 0 });
    assert.equal(h.send(c2s(undefined), `<message to='${ROOM}' type='groupchat'><body>x</body></message>`), undefined);
  });
});

describe("senders: c2s and s2s", () => {
  it("c2s: the bound JID is the sender, whatever `from` the client wrote", () => {
    const h = harness({ per_occupant: { event_rate: 0.2, burst_factor: 5 } });
    assert.equal(h.send(c2s(A), `<message from='${B}' to='${ROOM}' type='groupchat'><body>1</body></message>`), undefined);
    const v = h.send(c2s(A), `<message from='${B}' to='${ROOM}' type='groupchat'><body>2</body></message>`);
    assert.ok(isBounce(v));
    assert.ok(v.reply.startsWith(`<message to='${A}' from='${ROOM}'`));
    assert.equal(h.say(B), undefined); // B's own bucket is untouched
  });

  it("s2s: remote users are charged to the same room bucket, and bounced to their full JID", () => {
    const h = harness();
    const remote = (i: number): Verdict | undefined =>
      h.send(S2S, `<message from='eve@remote.example/r' to='${ROOM}' type='groupchat' id='r${i}'><body>spam</body></message>`);
    assert.equal(remote(1), undefined);
    assert.equal(remote(2), undefined);
    assert.equal(h.say(A), undefined);
    const v = remote(3);
    assert.ok(isBounce(v));
    assert.ok(v.reply.startsWith(`<message to='eve@remote.example/r' from='${ROOM}' id='r3' type='error'>`));
  });

  it("s2s: a stanza without `from` is left for the server to refuse", () => {
    const h = harness({ event_rate: 0 });
    assert.equal(h.send(S2S, `<message to='${ROOM}' type='groupchat'><body>x</body></message>`), undefined);
  });
});

describe("memory: idle eviction and caps", () => {
  it("forgets idle rooms and occupants lazily and on sweep()", () => {
    const h = harness({ idle_seconds: 60, per_occupant: { event_rate: 0.2, burst_factor: 5 } });
    h.say(A);
    h.say(B, "x", `other@${HOST}`);
    assert.deepEqual(h.stage.stats(), { rooms: 2, occupants: 2, capEvictions: 0 });
    h.clock.advance(59_999);
    assert.equal(h.stage.sweep(), 0);
    h.clock.advance(1);
    assert.equal(h.stage.sweep(h.clock.now()), 4);
    assert.deepEqual(h.stage.stats(), { rooms: 0, occupants: 0, capEvictions: 0 });
  });

  it("forgetting an idle bucket changes nothing: it had refilled", () => {
    const h = harness({ idle_seconds: 6, active_seconds: 6 }); // burst_factor 6: a full refill takes 6 s
    passes(h, A, 3);
    h.clock.advance(6000);
    assert.equal(passes(h, A, 10), 3);
  });

  it("forgets a learned affiliation once nothing from the room reached the user for idle_seconds", () => {
    const h = harness({ idle_seconds: 60 });
    h.affiliate(A, "member");
    h.clock.advance(50_000);
    // Groupchat from the room to A shows A is still there.
    h.deliver(c2s(A), `<message from='${ROOM}/bob' to='${A}' type='groupchat'><body>hi</body></message>`);
    h.clock.advance(50_000);
    assert.equal(passes(h, A, 10), 10);
    h.clock.advance(60_000);
    assert.equal(passes(h, A, 10), 3);
  });

  it("caps rooms, forgetting the least recently used", () => {
    const h = harness({ max_tracked_rooms: 2 });
    passes(h, A, 3); // room: empty
    assert.equal(h.say(A, "x", `r2@${HOST}`), undefined);
    assert.equal(h.say(A, "x", `r3@${HOST}`), undefined); // evicts room@
    assert.deepEqual(h.stage.stats(), { rooms: 2, occupants: 0, capEvictions: 1 });
  });

  it("caps occupant entries over all rooms", () => {
    const h = harness({ max_tracked_occupants: 3, per_occupant: { event_rate: 0.2, burst_factor: 5 } });
    for (let i = 0; i < 10; i++) h.say(`u${i}@example.org/r`, "x", `r${i}@${HOST}`);
    assert.equal(h.stage.stats().occupants, 3);
    assert.equal(h.stage.stats().capEvictions, 7);
  });
});

describe("reconfigure (reload) keeps state", () => {
  it("keeps a drained room drained: no free burst on reload", () => {
    const h = harness();
    passes(h, A, 3);
    h.stage.reconfigure(options({ burst_factor: 10 })); // capacity 5
    assert.ok(isBounce(h.say(A)));
    h.clock.advance(2000);
    assert.equal(passes(h, B, 5), 1);
  });

  it("applies a new rate to refills and caps at a smaller capacity", () => {
    const h = harness();
    h.stage.reconfigure(options({ event_rate: 1, burst_factor: 2 })); // capacity 2, 1/s
    assert.equal(passes(h, A, 5), 2);
    h.clock.advance(1000);
    assert.equal(passes(h, B, 5), 1);
  });

  it("a zero rate mutes unaffiliated senders; restoring it does not refill at once", () => {
    const h = harness({ event_rate: 0 });
    h.affiliate(B, "member");
    assert.ok(isBounce(h.say(A)));
    assert.equal(h.say(B), undefined);
    h.stage.reconfigure(options({ event_rate: 0.5 }));
    assert.ok(isBounce(h.say(A)));
    h.clock.advance(2000);
    assert.equal(h.say(A), undefined);
    assert.ok(isBounce(h.say(A)));
  });

  it("a zero base cost lets single-line messages through a zero-rate room", () => {
    const h = harness({ event_rate: 0, limit_base_cost: 0 });
    assert.equal(passes(h, A, 10), 10);
    assert.ok(isBounce(h.say(A, "a\nb")));
  });

  it("adds, keeps and drops per-occupant buckets", () => {
    const h = harness();
    h.stage.reconfigure(options({ per_occupant: { event_rate: 0.2, burst_factor: 5 } }));
    assert.equal(passes(h, A, 3), 1);
    h.stage.reconfigure(options({ per_occupant: { event_rate: 0.2, burst_factor: 5 }, event_rate: 1 }));
    assert.ok(isBounce(h.say(A)));
    assert.deepEqual(h.limited.at(-1), ["rate", "occupant"]);
    h.stage.reconfigure(options());
    assert.equal(h.stage.stats().occupants, 0);
    assert.equal(h.say(A), undefined);
  });

  it("forgets rooms on hosts no longer listed, and starts on new ones", () => {
    const h = harness();
    h.affiliate(A, "member");
    passes(h, B, 3);
    h.stage.reconfigure(options({ hosts: ["new.example"] }));
    assert.deepEqual(h.stage.stats(), { rooms: 0, occupants: 0, capEvictions: 0 });
    assert.equal(passes(h, B, 10), 10); // muc.example is not limited any more
    for (let i = 0; i < 3; i++) assert.equal(h.say(B, "x", "r@new.example"), undefined);
    assert.ok(isBounce(h.say(B, "x", "r@new.example")));
  });

  it("applies new caps at once", () => {
    const h = harness();
    for (let i = 0; i < 5; i++) h.say(A, "x", `r${i}@${HOST}`);
    h.stage.reconfigure(options({ max_tracked_rooms: 2 }));
    assert.equal(h.stage.stats().rooms, 2);
  });
});

describe("hot path", () => {
  /** Wraps a view and counts tree() calls. */
  function counted(xml: string, session: SessionInfo): { view: StanzaView; trees: () => number } {
    const inner = new Stanza(Buffer.from(xml), "jabber:client", session.jid);
    let n = 0;
    const view = new Proxy(inner, {
      get(target, prop) {
        if (prop === "tree") return () => (n++, target.tree());
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as StanzaView;
    return { view, trees: () => n };
  }

  it("parses nothing for stanzas to other hosts, joins without a body, or PMs", () => {
    const h = harness();
    const s = c2s(A);
    for (const xml of [
      `<message to='bob@example.org' type='chat'><body>hello</body></message>`,
      `<presence to='${ROOM}/a'><x xmlns='http://jabber.org/protocol/muc'/></presence>`,
      `<message to='${ROOM}/b' type='chat'><body>pm</body></message>`,
    ]) {
      const c = counted(xml, s);
      h.stage.judge(c.view, s, "inbound");
      assert.equal(c.trees(), 0, xml);
    }
    const c = counted(`<message to='bob@example.org/x' from='${ROOM}/a' type='groupchat'><body>x</body></message>`, s);
    h.stage.judge(c.view, s, "outbound");
    assert.equal(c.trees(), 0);
  });

  it("parses a groupchat body once", () => {
    const h = harness();
    const s = c2s(A);
    const c = counted(`<message to='${ROOM}' type='groupchat'><body>hello</body></message>`, s);
    assert.equal(h.stage.judge(c.view, s, "inbound"), undefined);
    assert.equal(c.trees(), 1);
  });
});

describe("occupancy: what the MUC refuses before the limits is not charged", () => {
  const S1: SessionInfo = { ...c2s(A), id: "s1" };
  const bound = (h: Harness, s: SessionInfo = S1): void =>
    h.deliver(s, `<iq type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>${s.jid}</jid></bind></iq>`);
  const self = (h: Harness, s: SessionInfo, nick: string, type = "", codes: string[] = []): void =>
    h.deliver(s, `<presence from='${ROOM}/${nick}' to='${s.jid}'${type === "" ? "" : ` type='${type}'`}><x xmlns='http://jabber.org/protocol/muc#user'>` +
      `<item affiliation='none' role='participant'/>${["110", ...codes].map((c) => `<status code='${c}'/>`).join("")}</x></presence>`);
  const join = (h: Harness, s: SessionInfo, nick: string, x = true): Verdict | undefined =>
    h.send(s, `<presence to='${ROOM}/${nick}'>${x ? "<x xmlns='http://jabber.org/protocol/muc'/>" : ""}</presence>`);
  const sayAs = (h: Harness, s: SessionInfo): Verdict | undefined => h.send(s, `<message to='${ROOM}' type='groupchat' id='g'><body>hi</body></message>`);

  it("groupchat from a freshly bound session that never joined the room is not charged", () => {
    const h = harness();
    bound(h);
    for (let i = 0; i < 10; i++) assert.equal(sayAs(h, S1), undefined);
    assert.equal(h.stage.stats().rooms, 0);
    assert.equal(passes(h, B, 5), 3); // the room is still full
  });

  it("a session the proxy did not see bind (resumed) is charged as before", () => {
    const h = harness();
    assert.equal(passes(h, A, 5), 3);
  });

  it("a join is charged, and so is what follows it before the server answers (pipelined join and flood)", () => {
    const h = harness();
    bound(h);
    assert.equal(join(h, S1, "a"), undefined);
    assert.equal(sayAs(h, S1), undefined);
    assert.equal(sayAs(h, S1), undefined);
    assert.ok(isBounce(sayAs(h, S1)));
  });

  it("after the server's answer: joined is charged; refused (an error) or left is not", () => {
    const h = harness({ event_rate: 0.01, burst_factor: 300 }); // 3 tokens, no refill to speak of
    bound(h);
    join(h, S1, "a");
    h.deliver(S1, `<presence from='${ROOM}/a' to='${A}' type='error'><error type='cancel'><conflict xmlns='${ERR}'/></error></presence>`);
    assert.equal(sayAs(h, S1), undefined); // not in the room: free
    join(h, S1, "a");
    self(h, S1, "a");
    assert.equal(sayAs(h, S1), undefined); // in the room: the second token
    h.send(S1, `<presence to='${ROOM}/a' type='unavailable'/>`);
    self(h, S1, "a", "unavailable");
    for (let i = 0; i < 5; i++) assert.equal(sayAs(h, S1), undefined); // left: free again
    assert.equal(h.limited.length, 0);
    assert.equal(passes(h, B, 3), 0); // the two joins and the one message took the 3 tokens
  });

  it("a nick change (unavailable with 303, then the new nick) keeps the session in the room", () => {
    const h = harness({ event_rate: 0.01, burst_factor: 300 });
    bound(h);
    join(h, S1, "a");
    self(h, S1, "a");
    h.send(S1, `<presence to='${ROOM}/b'/>`);
    self(h, S1, "a", "unavailable", ["303"]);
    self(h, S1, "b");
    // Still in the room, so charged: the join and the nick change took 2 of 3.
    assert.equal(sayAs(h, S1), undefined);
    assert.ok(isBounce(sayAs(h, S1)));
  });

  it("a join without <x xmlns='…/muc'> from a session not in the room is not charged", () => {
    const h = harness();
    bound(h);
    for (let i = 0; i < 10; i++) assert.equal(join(h, S1, "a", false), undefined);
    assert.equal(h.stage.stats().rooms, 0);
  });

  it("the creator's first join is free: status 201 refunds it, to the room and the occupant bucket", () => {
    const h = harness({ event_rate: 0.01, burst_factor: 200, per_occupant: { event_rate: 0.01, burst_factor: 200 } }); // 2 tokens each
    bound(h);
    assert.equal(join(h, S1, "a"), undefined);
    self(h, S1, "a", "", ["201"]);
    assert.equal(sayAs(h, S1), undefined);
    assert.equal(sayAs(h, S1), undefined);
    assert.ok(isBounce(sayAs(h, S1)));
  });

  it("without 201 (the room existed) the join stays charged", () => {
    const h = harness({ event_rate: 0.01, burst_factor: 200 });
    bound(h);
    join(h, S1, "a");
    self(h, S1, "a");
    assert.equal(sayAs(h, S1), undefined);
    assert.ok(isBounce(sayAs(h, S1)));
  });

  it("forgets a session's rooms when it ends", () => {
    const h = harness();
    bound(h);
    join(h, S1, "a");
    h.stage.sessionEnded(S1);
    // Not known as fresh any more: charged whatever it sends.
    assert.equal(passes(h, A, 5), 2);
  });
});
