// Evaluation of every condition (docs/firewall.md, "Conditions") through compiled rule sets,
// with fake providers; conditions whose provider is missing are refused at
// load with a message; payload conditions call tree() only when reached.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import type { StanzaView } from "../xml/stanza-view.js";
import { compileRuleSources, type CompileOptions } from "./compile.js";
import type { FirewallProviders, OriginSession, RosterEntry } from "./context.js";
import { testStanza } from "../../test/helpers/test-stanza.js";
import { readHead } from "../xml/head.js";
import { NsScope } from "../xml/namespaces.js";
import { Stanza, StreamContext } from "../xml/stanza.js";

function c2s(jid: string, ip = "192.0.2.10"): OriginSession {
  return { type: "c2s", jid, ip, authenticated: true, marks: new Map() };
}

function s2s(domain: string, ip = "198.51.100.7"): OriginSession {
  return { type: "s2sin", domain, ip, authenticated: true, marks: new Map() };
}

interface Check {
  readonly chain?: "deliver" | "preroute" | "deliver_remote";
  readonly origin?: OriginSession;
  readonly options?: CompileOptions;
  readonly stanza?: StanzaView;
  readonly fromServer?: boolean;
}

/** Does `conditions` match `xml`? Compiles `conditions` + DROP and runs the chain. */
function matches(conditions: string, xml: string, check: Check = {}): boolean {
  const r = compileRuleSources([{ file: "t.pfw", text: `${check.chain ? `::${check.chain}\n` : ""}${conditions}\nDROP.` }], check.options);
  assert.deepEqual(r.errors.map((e) => e.format()), []);
  const stanza = check.stanza ?? testStanza(xml, check.origin?.type === "c2s" && check.origin.jid ? { sessionJid: check.origin.jid } : {});
  return r.ruleset!.run(check.chain ?? "deliver", { stanza, origin: check.origin, fromServer: check.fromServer }).verdict === "drop";
}

/** A stanza read on a stream that opened with `header` (its language and declarations apply). */
function streamStanza(header: string, xml: string): StanzaView {
  const head = readHead(Buffer.from(header), 0, header.length)!;
  const ctx = new StreamContext("jabber:client", NsScope.EMPTY.enter(head) as NsScope, head.attr("xml:lang") ?? "en", false);
  return new Stanza(Buffer.from(xml), ctx);
}

function refused(text: string, options: CompileOptions = {}): string[] {
  return compileRuleSources([{ file: "t.pfw", text }], options).errors.map((e) => e.format());
}

const MSG = "<message from='alice@remote.example/phone' to='bob@local.example/laptop' type='chat' id='m1'><body>Hello there</body></message>";

describe("stanza head conditions", () => {
  it("KIND matches any listed name", () => {
    assert.ok(matches("KIND: message", MSG));
    assert.ok(matches("KIND: presence|message", MSG));
    assert.ok(!matches("KIND: iq", MSG));
    assert.ok(matches("NOT KIND: iq", MSG));
  });

  it("TYPE defaults to normal (message) and available (presence), none for iq", () => {
    assert.ok(matches("TYPE: chat", MSG));
    assert.ok(matches("TYPE: normal", "<message to='a@b'/>"));
    assert.ok(matches("TYPE: available", "<presence/>"));
    assert.ok(!matches("TYPE: get", "<iq id='x'/>"));
    assert.ok(matches("NOT TYPE: subscribe,subscribed", "<presence type='unavailable'/>"));
  });

  it("TO / FROM: parts missing from the pattern must be missing from the JID", () => {
    assert.ok(matches("FROM: alice@remote.example", MSG), "resource not compared");
    assert.ok(!matches("FROM: remote.example", MSG), "a domain pattern never matches users");
    assert.ok(matches("FROM: remote.example", "<message from='remote.example/x'/>"));
    assert.ok(matches("FROM: <*>@remote.example", MSG));
    assert.ok(matches("TO: <*>@<*>/<*>", MSG));
    assert.ok(!matches("TO: <*>@<*>/<*>", "<message to='bob@local.example'/>"));
    assert.ok(matches("FROM: alice@<*.example>", MSG));
    assert.ok(!matches("FROM: alice@<*.example>", "<message from='alice@example'/>"));
    assert.ok(matches("FROM: <al?ce>@remote.example", MSG));
    assert.ok(matches("FROM: <<%a+>>@remote.example/<<pho.e>>", MSG));
    assert.ok(!matches("FROM: <<%d+>>@remote.example", MSG));
    assert.ok(matches("FROM: alice@remote.example/phone", MSG));
    assert.ok(!matches("FROM: alice@remote.example/tablet", MSG));
  });

  it("JIDs are prepped before matching; patterns are compared as written", () => {
    assert.ok(matches("FROM: alice@remote.example", "<message from='Alice@REMOTE.example/Phone'/>"));
    assert.ok(!matches("FROM: Alice@remote.example", "<message from='Alice@remote.example'/>"));
  });

  it("TO_EXACTLY / FROM_EXACTLY compare whole strings, with expressions", () => {
    assert.ok(matches("FROM_EXACTLY: alice@remote.example/phone", MSG));
    assert.ok(!matches("FROM_EXACTLY: alice@remote.example", MSG));
    assert.ok(matches("TO_EXACTLY: bob@local.example/laptop", MSG));
    assert.ok(matches("FROM_EXACTLY: $<@to|bare>", "<message from='bob@local.example' to='bob@local.example/laptop'/>"));
    assert.ok(!matches("FROM_EXACTLY: $<@to|bare>", MSG));
  });

  it("TO uses the origin's bare JID when the stanza has no `to`", () => {
    const origin = c2s("carol@local.example/pc");
    assert.ok(matches("TO_EXACTLY: carol@local.example", "<iq type='get' id='r'/>", { origin }));
  });

  it("TO SELF? is true when there is no `to`; in preroute also for one's own bare JID", () => {
    assert.ok(matches("TO SELF?", "<iq type='get' id='1'/>"));
    assert.ok(!matches("TO SELF?", MSG));
    const origin = c2s("alice@local.example/phone");
    assert.ok(matches("TO SELF?", "<iq type='get' id='1' to='alice@local.example'/>", { chain: "preroute", origin }));
    assert.ok(!matches("TO SELF?", "<iq type='get' id='1' to='alice@local.example'/>", { chain: "deliver", origin }));
  });

  it("FROM FULL JID? checks the form only", () => {
    assert.ok(matches("FROM FULL JID?", MSG));
    assert.ok(!matches("FROM FULL JID?", "<message from='a@b'/>"));
  });

  it("ENTERING / LEAVING a zone: host, bare or full JID members", () => {
    const zone = "%ZONE mine: local.example, vip@remote.example\n\n";
    assert.ok(matches(`${zone}ENTERING: mine`, MSG));
    assert.ok(!matches(`${zone}LEAVING: mine`, MSG));
    assert.ok(matches(`${zone}LEAVING: mine`, "<message from='vip@remote.example/x' to='z@elsewhere.example'/>"));
    assert.ok(!matches(`${zone}ENTERING: mine`, "<message from='a@local.example' to='b@local.example'/>"), "inside the zone already");
    assert.ok(!matches(`${zone}ENTERING: mine`, "<message from='a@remote.example' to='b@sub.local.example'/>"), "subdomains are not covered");
  });

  it("$local is the configured host list", () => {
    const options = { localHosts: ["local.example"] };
    assert.ok(matches("ENTERING: $local", MSG, { options }));
    assert.deepEqual(refused("ENTERING: $local\nDROP."), [
      "t.pfw:1:1: ENTERING refused: the $local zone is the server's local domains, and none are configured (`hosts:` in the configuration; check-rules and trace: --host DOMAIN)",
    ]);
    // Prosody compiles a zone nobody defined as an empty one: a warning, and it never holds.
    assert.deepEqual(refused("LEAVING: nowhere\nDROP."), []);
    assert.ok(!matches("LEAVING: nowhere", MSG));
    assert.ok(matches("NOT ENTERING: nowhere", MSG));
  });

  it("ORIGIN MARKED, with and without an age", () => {
    let now = 10_000;
    const options = { clock: { now: () => now } };
    const origin = s2s("remote.example");
    assert.ok(!matches("ORIGIN MARKED: spammer", MSG, { origin, options }));
    origin.marks.set("spammer", 5_000);
    assert.ok(matches("ORIGIN MARKED: spammer", MSG, { origin, options }));
    assert.ok(matches("ORIGIN MARKED: spammer (10s)", MSG, { origin, options }));
    now = 16_000;
    assert.ok(!matches("ORIGIN MARKED: spammer (10s)", MSG, { origin, options }));
    assert.ok(!matches("ORIGIN MARKED: spammer", MSG), "no origin known");
  });

  it("FROM IP / FROM SUBNET use the origin's real address (v4-mapped v6 normalised)", () => {
    const origin = c2s("a@local.example/r", "::ffff:203.0.113.9");
    assert.ok(matches("FROM IP: 203.0.113.9", "<message/>", { origin }));
    assert.ok(matches("FROM SUBNET: 203.0.113.0/24", "<message/>", { origin }));
    assert.ok(!matches("FROM SUBNET: 203.0.112.0/24", "<message/>", { origin }));
    assert.ok(matches("FROM SUBNET: 2001:db8::/32", "<message/>", { origin: c2s("a@b/c", "2001:db8::5") }));
    assert.ok(matches("NOT FROM IP: 203.0.113.9", "<message/>"), "unknown origin never matches");
  });

  it("TIME and DAY use local time (start inclusive, end exclusive, wrapping)", () => {
    let t = { hour: 23, minute: 30, weekday: 3 };
    const options = { localTime: () => t };
    assert.ok(matches("TIME: 10pm-6am", MSG, { options }));
    assert.ok(!matches("TIME: 9am-5pm", MSG, { options }));
    t = { hour: 14, minute: 45, weekday: 3 };
    assert.ok(matches("TIME: 14:30-15:00", MSG, { options }), "minutes count (Prosody's minute bug fixed)");
    t = { hour: 15, minute: 0, weekday: 3 };
    assert.ok(!matches("TIME: 14:30-15:00", MSG, { options }), "end exclusive");
    assert.ok(matches("DAY: Wednesday", MSG, { options }), "weekday, not day of month (Prosody's DAY bug fixed)");
    assert.ok(!matches("DAY: Sat-Sun", MSG, { options }));
    t = { hour: 12, minute: 0, weekday: 0 };
    assert.ok(matches("DAY: Sat-Sun", MSG, { options }));
    assert.ok(matches("TIME: 12am-9am, 5pm-12am, Saturday, Sunday", MSG, { options }), "weekday in TIME: the whole day");
  });
});

describe("payload conditions", () => {
  it("PAYLOAD: any direct child in the namespace", () => {
    const xml = "<message><body>x</body><html xmlns='http://jabber.org/protocol/xhtml-im'/></message>";
    assert.ok(matches("PAYLOAD: http://jabber.org/protocol/xhtml-im", xml));
    assert.ok(!matches("PAYLOAD: urn:xmpp:receipts", xml));
    assert.ok(!matches("PAYLOAD: urn:xmpp:receipts", "<message/>"));
  });

  it("xml:lang: a stanza without one has the stream's (en by default), as the server's parser stamps it", () => {
    assert.ok(matches("INSPECT: @xml:lang=en", "<message/>"));
    assert.ok(matches("INSPECT: @xml:lang", "<message/>"));
    assert.ok(matches("INSPECT: @xml:lang=de", "<message xml:lang='de'/>"));
    assert.ok(matches("INSPECT: @xml:lang=", "<message xml:lang=''/>"), "an explicit empty language is kept");
    assert.ok(matches("INSPECT: @xml:lang$=$<@xml:lang>", "<message/>"));
    assert.ok(matches("INSPECT: body#$=$(stanza.attr[\"xml:lang\"])", "<message><body>en</body></message>"));
    assert.ok(!matches("INSPECT: body@xml:lang", "<message><body>x</body></message>"), "only the stanza itself is stamped");
    const de = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xml:lang='de'>";
    assert.ok(matches("INSPECT: @xml:lang=de", "", { stanza: streamStanza(de, "<message/>") }));
  });

  it("xml:lang toward a client is read as the server wrote it: a stanza the server made has none", () => {
    assert.ok(!matches("INSPECT: @xml:lang", "<message/>", { fromServer: true }));
    assert.ok(matches("INSPECT: @xml:lang=fr", "<message xml:lang='fr'/>", { fromServer: true }));
    assert.ok(matches("INSPECT: body#$=$<@xml:lang>", "<message><body>&lt;undefined&gt;</body></message>", { fromServer: true }));
  });

  it("PAYLOAD: the stanza's own namespace is never a payload namespace (nothing is recorded on such a child)", () => {
    for (const xml of ["<message><body>x</body></message>", "<message><body xmlns='jabber:client'>x</body></message>", "<c:message xmlns:c='jabber:client'><c:body>x</c:body></c:message>"]) {
      assert.ok(!matches("PAYLOAD: jabber:client", xml), xml);
      assert.ok(matches("NOT PAYLOAD: jabber:client", xml), xml);
    }
    // Deeper down, under a child in another namespace, jabber:client is recorded, but PAYLOAD only looks at direct children.
    assert.ok(!matches("PAYLOAD: jabber:client", "<message><x xmlns='urn:a'><body xmlns='jabber:client'/></x></message>"));
    assert.ok(matches("INSPECT: {urn:a}x/{jabber:client}body", "<message><x xmlns='urn:a'><body xmlns='jabber:client'/></x></message>"));
    assert.ok(!matches("INSPECT: {jabber:client}body#", "<message><body>x</body></message>"));
  });

  it("PAYLOAD on s2s: jabber:server is the stanza's own; a child declaring jabber:client is a jabber:client payload", () => {
    const s2sMsg = (xml: string) => testStanza(xml, { streamNs: "jabber:server" });
    const plain = s2sMsg("<message><body>x</body></message>");
    const explicit = s2sMsg("<message><body xmlns='jabber:server'>x</body></message>");
    const client = s2sMsg("<message><body xmlns='jabber:client'>x</body></message>");
    for (const stanza of [plain, explicit]) {
      assert.ok(!matches("PAYLOAD: jabber:server", "", { stanza }));
      assert.ok(!matches("PAYLOAD: jabber:client", "", { stanza }));
      assert.ok(!matches("INSPECT: {jabber:server}body", "", { stanza }));
      assert.ok(matches("INSPECT: body#=x", "", { stanza }));
    }
    assert.ok(matches("PAYLOAD: jabber:client", "", { stanza: client }));
    assert.ok(matches("INSPECT: {jabber:client}body#=x", "", { stanza: client }));
    assert.ok(!matches("INSPECT: body", "", { stanza: client }));
  });

  it("INSPECT: existence, equality, substring, Lua pattern, expanded values", () => {
    const reg = "<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>admin</username></query></iq>";
    assert.ok(matches("INSPECT: {jabber:iq:register}query", reg));
    assert.ok(matches("INSPECT: {jabber:iq:register}query/username#=admin", reg));
    assert.ok(!matches("INSPECT: {jabber:iq:register}query/username#=root", reg));
    assert.ok(matches("INSPECT: body#/=there", MSG));
    assert.ok(matches("INSPECT: body#~=^H%a+", MSG));
    assert.ok(!matches("INSPECT: body#~=^%d", MSG));
    assert.ok(matches("INSPECT: body#~=^$", "<message/>"), "a missing text matches against ''");
    assert.ok(matches("INSPECT: @id$=m$<@type||\"x\">", "<message id='mx'/>"));
    assert.ok(matches("INSPECT: @type=chat", MSG));
    assert.ok(matches("INSPECT: body#$/=$<@id>", "<message id='zz'><body>..zz..</body></message>"));
    assert.ok(matches("INSPECT: body#$~=^$<@id>$", "<message id='ab'><body>ab</body></message>"));
  });

  it("CHECK LIST with expressions; filters normalise the lookup", () => {
    const def = "%LIST seen: memory (filter: lower)\n\nADD TO=seen $<@from|bare>\n\n";
    assert.ok(matches(`${def}CHECK LIST: seen contains $<@from|bare>`, MSG));
    assert.ok(matches(`${def}CHECK LIST: seen contains ALICE@REMOTE.EXAMPLE`, MSG));
    assert.ok(!matches(`${def}CHECK LIST: seen contains $<@to|bare>`, MSG));
    assert.deepEqual(refused("CHECK LIST: nope contains x\nDROP."), ["t.pfw:1:1: Unknown list: nope (define it with %LIST nope: …)"]);
  });

  it("file lists come from the injected reader", () => {
    const options = { readListFile: (p: string) => (p === "/l.txt" ? "spammer@x.example\nalice@remote.example\n" : undefined) };
    assert.ok(matches("%LIST bad: file:/l.txt\n\nCHECK LIST: bad contains $<@from|bare>", MSG, { options }));
    assert.deepEqual(refused("%LIST bad: file:/missing.txt\n\nDROP."), [
      "t.pfw:1:1: list file '/missing.txt' cannot be read (add '(missing: ignore)' to start with an empty list)",
    ]);
    assert.ok(!matches("%LIST bad: file:/missing.txt (missing: ignore)\n\nCHECK LIST: bad contains x", MSG));
  });

  it("hash filters compare lower-case hex digests", () => {
    const digest = createHash("sha256").update("remote.example").digest("hex");
    const options = { readListFile: () => `${digest}\n` };
    assert.ok(matches("%LIST h: file:/h.txt (filter: sha256)\n\nCHECK LIST: h contains $<@from|host>", MSG, { options }));
    assert.ok(!matches("%LIST h: file:/h.txt (filter: lower,sha256)\n\nCHECK LIST: h contains $<@to|host>", MSG, { options }));
  });

  it("SCAN tokenises a %SEARCH with a %PATTERN and checks a list", () => {
    const defs = "%SEARCH body: body#\n%PATTERN word: [A-Za-z]+\n%LIST badwords: memory\n\nADD TO=badwords viagra\n\n";
    assert.ok(matches(`${defs}SCAN: body for word in badwords`, "<message><body>cheap Viagra? viagra!</body></message>"));
    assert.ok(!matches(`${defs}SCAN: body for word in badwords`, "<message><body>hello</body></message>"));
    assert.ok(!matches(`${defs}SCAN: body for word in badwords`, "<message/>"));
  });

  it("COUNT compares the number of pattern matches", () => {
    const defs = "%SEARCH body: body#\n%PATTERN url: https?://%S+\n\n";
    const two = "<message><body>see http://a.example and https://b.example/x</body></message>";
    assert.ok(matches(`${defs}COUNT: url in body > 1`, two));
    assert.ok(!matches(`${defs}COUNT: url in body > 2`, two));
    assert.ok(matches(`${defs}COUNT: url in body == 2`, two));
    assert.ok(matches(`${defs}COUNT: url in body <= 2`, two));
    assert.ok(matches(`${defs}COUNT: url in body < 1`, "<message/>"));
    assert.ok(matches(`${defs}COUNT: url in body >= 0`, "<message/>"));
    assert.deepEqual(refused("COUNT: url in nothing > 1\nDROP."), ["t.pfw:1:1: Unknown search: nothing (define it with %SEARCH nothing: …)"]);
  });

  it("payload conditions run after head conditions and call tree() only when reached", () => {
    let parsed = 0;
    const base = testStanza("<presence><x xmlns='urn:other'/><c xmlns='urn:caps'/></presence>");
    // The view with tree() counted (a Proxy: the view's getters need the view itself as `this`).
    const stanza: StanzaView = new Proxy(base, {
      get(target, key) {
        if (key === "tree") {
          return () => {
            parsed++;
            return target.tree();
          };
        }
        const v: unknown = Reflect.get(target, key, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    // PAYLOAD is written first but KIND fails: no parse.
    assert.ok(!matches("PAYLOAD: urn:caps\nKIND: message", "", { stanza }));
    assert.equal(parsed, 0);
    assert.ok(matches("PAYLOAD: urn:other", "", { stanza }), "first child known from the head");
    assert.equal(parsed, 0);
    assert.ok(matches("PAYLOAD: urn:caps\nKIND: presence", "", { stanza }));
    assert.equal(parsed, 1);
    // The stanza's own attributes, in conditions and expressions, never need the tree.
    parsed = 0;
    const head = "%RATE r: 1000 (burst 1000)\n\nINSPECT: @xml:lang=en\nINSPECT: @type$=$<@type||\"x\">\nLIMIT: r on $<@from|bare>$(stanza.attr.id)$<@xml:lang>";
    assert.ok(!matches(head, "", { stanza }));
    assert.ok(matches("%SEARCH lang: @xml:lang\n%PATTERN w: %a+\n\nCOUNT: w in lang == 1", "", { stanza }));
    assert.equal(parsed, 0);
  });
});

describe("conditions backed by providers", () => {
  const rosters: Record<string, Record<string, RosterEntry>> = {
    "bob@local.example": {
      "alice@remote.example": { subscription: "to", groups: ["Friends"] },
      "eve@remote.example": { subscription: "from", groups: [] },
    },
  };
  const providers: FirewallProviders = {
    roster: {
      entry: (owner, contact) => rosters[owner]?.[contact],
      pendingIn: (owner, contact) => owner === "bob@local.example" && contact === "mallory@remote.example",
    },
    sessions: { isOnline: (jid) => jid === "bob@local.example/laptop" },
    directedPresence: { hasSentTo: (sender, target) => sender === "bob@local.example/laptop" && target === "alice@remote.example/phone" },
    groups: { contains: (g, jid) => (g === "staff" && jid.endsWith("@local.example")) || (g === "partners" && jid === "alice@remote.example") },
    roles: { roleOf: (jid) => (jid === "bob@local.example" ? "prosody:admin" : "prosody:registered") },
    admins: { isAdmin: (jid, host) => jid === "bob@local.example" && host === "local.example" },
    permissions: { may: (perm, actor) => perm === "xmpp:federate" && actor.jid === "alice@local.example/r" },
    userMarks: {
      get: (user, name) => (user === "alice@local.example" && name === "bad" ? 1000 : undefined),
      set: () => {},
      unset: () => {},
    },
    geoip: { lookup: (ip) => (ip === "203.0.113.9" ? { code: "SE", code3: "SWE", continent: "EU" } : undefined) },
  };
  const options: CompileOptions = { providers, clock: { now: () => 5000 } };
  const m = (cond: string, xml = MSG, extra: Check = {}) => matches(cond, xml, { options, ...extra });

  it("IN ROSTER? / IN ROSTER GROUP look up the recipient's roster", () => {
    assert.ok(m("IN ROSTER?"));
    assert.ok(m("IN ROSTER GROUP: Friends"));
    assert.ok(!m("IN ROSTER GROUP: Family"));
    assert.ok(!m("IN ROSTER?", "<message from='stranger@remote.example' to='bob@local.example'/>"));
    assert.ok(m("NOT IN ROSTER?", "<message from='x@y' to='unknown@local.example'/>"), "unknown rosters count as not in roster");
  });

  it("SUBSCRIBED? means the recipient receives the sender's presence (to/both)", () => {
    assert.ok(m("SUBSCRIBED?"));
    assert.ok(!m("SUBSCRIBED?", "<message from='eve@remote.example/x' to='bob@local.example'/>"));
    assert.ok(m("SUBSCRIBED?", "<message from='bob@local.example/a' to='bob@local.example/b'/>"), "self");
  });

  it("PENDING SUBSCRIPTION FROM SENDER?", () => {
    assert.ok(m("PENDING SUBSCRIPTION FROM SENDER?", "<presence from='mallory@remote.example' to='bob@local.example' type='subscribe'/>"));
    assert.ok(!m("PENDING SUBSCRIPTION FROM SENDER?"));
  });

  it("TO FULL JID? and SENT DIRECTED PRESENCE TO SENDER?", () => {
    assert.ok(m("TO FULL JID?"));
    assert.ok(!m("TO FULL JID?", "<message from='a@b' to='bob@local.example/other'/>"));
    assert.ok(m("SENT DIRECTED PRESENCE TO SENDER?"));
    assert.ok(!m("SENT DIRECTED PRESENCE TO SENDER?", "<presence from='x@remote.example/y' to='bob@local.example/laptop'/>"));
  });

  it("groups, roles, admins, MAY", () => {
    assert.ok(m("TO GROUP: staff"));
    assert.ok(m("FROM GROUP: partners"));
    assert.ok(m("CROSSING GROUPS: staff"), "sender is not in staff");
    assert.ok(!m("CROSSING GROUPS: staff", "<message from='a@local.example' to='b@local.example'/>"));
    assert.ok(m("TO ROLE: prosody:admin"));
    assert.ok(!m("FROM ROLE: prosody:admin"));
    assert.ok(m("TO ADMIN?"));
    assert.ok(m("TO ADMIN OF: local.example"));
    assert.ok(!m("FROM ADMIN?"));
    assert.ok(m("MAY: xmpp:federate", "<message/>", { chain: "preroute", origin: c2s("alice@local.example/r") }));
  });

  it("USER MARKED reads the origin account's marks", () => {
    assert.ok(m("USER MARKED: bad", "<message/>", { chain: "preroute", origin: c2s("alice@local.example/r") }));
    assert.ok(m("USER MARKED: bad (5s)", "<message/>", { chain: "preroute", origin: c2s("alice@local.example/r") }));
    assert.ok(!m("USER MARKED: bad (3s)", "<message/>", { chain: "preroute", origin: c2s("alice@local.example/r") }));
    assert.ok(!m("USER MARKED: bad", "<message/>", { chain: "preroute", origin: c2s("bob@local.example/r") }));
  });

  it("FROM COUNTRY by code, code3, continent, or known at all", () => {
    const origin = s2s("remote.example", "203.0.113.9");
    assert.ok(m("FROM COUNTRY: SE", MSG, { origin }));
    assert.ok(m("FROM COUNTRY: swe", MSG, { origin }));
    assert.ok(m("FROM COUNTRY: continent=EU", MSG, { origin }));
    assert.ok(!m("FROM COUNTRY: DE", MSG, { origin }));
    assert.ok(m("FROM COUNTRY?", MSG, { origin }));
    assert.ok(m("NOT FROM COUNTRY?", MSG, { origin: s2s("x", "192.0.2.1") }));
  });

  it("every provider-backed condition is refused at load without its provider", () => {
    const errs = refused(
      [
        "IN ROSTER?",
        "IN ROSTER GROUP: g",
        "SUBSCRIBED?",
        "PENDING SUBSCRIPTION FROM SENDER?",
        "TO FULL JID?",
        "SENT DIRECTED PRESENCE TO SENDER?",
        "FROM GROUP: g",
        "TO GROUP: g",
        "CROSSING GROUPS: g",
        "FROM ADMIN?",
        "TO ADMIN OF: h",
        "MAY: p",
        "TO ROLE: r",
        "FROM ROLE: r",
        "USER MARKED: m",
        "FROM COUNTRY: SE",
        "DROP.",
      ].join("\n"),
    );
    assert.equal(errs.length, 16);
    assert.equal(
      errs[0],
      "t.pfw:1:1: IN ROSTER refused: it needs the recipient's roster; the proxy only knows rosters it learns from the server's roster results and pushes, and no roster provider is configured (knowledge.rosters is off)",
    );
    assert.match(errs[11]!, /^t\.pfw:12:1: MAY refused: it needs Prosody's permission system/);
    assert.match(errs[15]!, /^t\.pfw:16:1: FROM COUNTRY refused: it needs a GeoIP database/);
  });

  it("PENDING SUBSCRIPTION needs a roster provider that tracks pending requests", () => {
    assert.deepEqual(refused("PENDING SUBSCRIPTION FROM SENDER?\nDROP.", { providers: { roster: { entry: () => undefined } } }), [
      "t.pfw:1:1: PENDING SUBSCRIPTION FROM SENDER refused: it needs pending inbound subscription requests, which the configured roster provider does not track",
    ]);
  });
});
