// XMPP over WebSocket through the proxy to a real Prosody (Debian 0.12).
// One proxy with two listeners in front of the same server: `c2s` (TCP)
// and `web` (websocket), the same firewall rules and MUC limits on both.
//
// - @xmpp/client logs in over ws:// (SCRAM and PLAIN) and exchanges 100
//   messages each way, in order; the proxy counts them under its listener.
// - A firewall rule (BOUNCE, a muted sender, DROP) and a room's flood limit
//   give exactly the same outcome over WebSocket as over TCP, for the plain
//   stanza and its attacker twins (prefixed, explicit xmlns with a forged
//   `from`). The twin whose prefix is declared on the stream header has no
//   header to declare it on over WebSocket (a prefix on <open/> binds
//   nothing): that stream ends with not-well-formed, nothing delivered.
// - Bad frames (binary, oversized) and refused handshakes (another
//   subprotocol, a bad origin): the right close code or HTTP status, and the
//   stanza inside never delivered.
// - The same client at Prosody's own WebSocket endpoint (mod_websocket),
//   for reference.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Element } from "ltx";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";
import { rawLogin } from "../helpers/raw-session.js";
import { FORMS, PREFIX, writeAs, type Form } from "../helpers/stanza-forms.js";
import { connectStream, connectWs, NS_FRAMING, openMessage, wsLogin } from "../helpers/ws-session.js";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const MUC = "http://jabber.org/protocol/muc";

const RULES = `
::preroute
KIND: message
FROM: muted@localhost
BOUNCE=forbidden (You are muted)

TO: blackhole@localhost
DROP.

KIND: message
INSPECT: body#~=FORBIDDEN
BOUNCE=policy-violation (No forbidden words)
`;

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

/** What a sender did over one transport, in a form both transports can be compared in. */
interface Sender {
  jid: string;
  send(data: string): void;
  take(pred: (el: Element) => boolean): Element[];
  waitFor(pred: (el: Element) => boolean, timeoutMs?: number): Promise<Element>;
  collect(pred: (el: Element) => boolean, count: number, timeoutMs?: number): Promise<Element[]>;
  sync(): Promise<void>;
  closed(timeoutMs?: number): Promise<unknown>;
  stop(): void;
}

type Transport = "tcp" | "websocket";

describe("XMPP over WebSocket through the proxy, real Prosody", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let dir: string;
  let wsUrl: string;
  let tcpPort: number;
  let witness: TestClient;
  let watcher: TestClient;
  const clients: TestClient[] = [];
  const logs: Array<Record<string, unknown>> = [];

  before(async () => {
    prosody = await startProsody({ websocket: true });
    for (const u of ["alice", "bob", "writer", "muted", "witness", "watcher", "blackhole"]) await prosody.createUser(u, `${u}-pw`);
    dir = mkdtempSync(join(tmpdir(), "xg-ws-"));
    writeFileSync(join(dir, "edge.pfw"), RULES);
    proxy = await startProxy(configFromObject({
      listeners: [
        { name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` },
        { name: "web", type: "websocket", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}`, websocket: { allowed_origins: ["https://chat.example.org"] } },
      ],
      firewall: { scripts: [join(dir, "edge.pfw")], watch: false },
      muc_limits: {
        hosts: ["conference.localhost"],
        event_rate: 2, burst_factor: 5,
        per_occupant: { event_rate: 0.5, burst_factor: 4 }, // 2 at once, then 1 per 2 s
        exempt_affiliations: ["owner", "admin", "member"],
      },
      max_stanza_size: 16_384,
      admin: { listen: null },
    }), { logger: createLogger("info", { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) }) });
    wsUrl = `ws://127.0.0.1:${proxy.listenerAddress("web")!.port}/xmpp-websocket`;
    tcpPort = proxy.listenerAddress("c2s")!.port;
    // Receivers log in to Prosody directly: what they get is what the server delivered.
    witness = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: "witness", password: "witness-pw", mechanism: "PLAIN" });
    watcher = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: "watcher", password: "watcher-pw", mechanism: "PLAIN" });
  });

  after(async () => {
    await Promise.all([...clients, witness, watcher].map((c) => c?.stop()));
    await proxy?.shutdown(0);
    await prosody?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("@xmpp/client over ws://: two clients log in (SCRAM, PLAIN) and exchange 100 messages each way, in order", async () => {
    const login = async (username: string, mechanism?: string): Promise<TestClient> => {
      const c = await connectClient({ host: "127.0.0.1", port: 0, service: wsUrl, domain: "localhost", username, password: `${username}-pw`, ...(mechanism ? { mechanism } : {}) });
      clients.push(c);
      return c;
    };
    const alice = await login("alice");
    const bob = await login("bob", "PLAIN");
    assert.match(alice.jid, /^alice@localhost\/.+/);
    assert.match(bob.jid, /^bob@localhost\/.+/);
    const N = 100;
    const tag = `ws-${Date.now()}`;
    const body = (who: string, i: number): string => `${tag} ${who} ${i} é \u{1F600} <&>`;
    for (let i = 0; i < N; i++) {
      await alice.send(xml("message", { to: bob.jid, type: "chat", id: `a${i}` }, xml("body", {}, body("a", i))));
      await bob.send(xml("message", { to: alice.jid, type: "chat", id: `b${i}` }, xml("body", {}, body("b", i))));
    }
    const from = (c: TestClient) => (el: XmlElement): boolean => el.is("message") && el.attrs.from === c.jid && (el.getChildText("body") ?? "").startsWith(tag);
    const atBob = await bob.collect(from(alice), N, 20_000);
    const atAlice = await alice.collect(from(bob), N, 20_000);
    assert.deepEqual(atBob.map((m) => m.getChildText("body")), Array.from({ length: N }, (_, i) => body("a", i)));
    assert.deepEqual(atAlice.map((m) => m.getChildText("body")), Array.from({ length: N }, (_, i) => body("b", i)));
    assert.deepEqual([...alice.errors, ...bob.errors], []);
    // Counted under the websocket listener, which learned the JIDs the server bound.
    assert.ok(await metric(proxy, "xmpp_guard_stanzas_total", { listener: "web", direction: "in", kind: "message" }) >= 2 * N);
    assert.ok(await metric(proxy, "xmpp_guard_stanzas_total", { listener: "web", direction: "out", kind: "message" }) >= 2 * N);
    assert.equal(await metric(proxy, "xmpp_guard_sessions", { listener: "web", state: "bound" }), 2);
    const bound = logs.filter((l) => l.msg === "session bound" && l.listener === "web").map((l) => l.jid);
    assert.ok(bound.includes(alice.jid) && bound.includes(bob.jid), JSON.stringify(bound));
    await Promise.all([alice.stop(), bob.stop()]);
  });

  it("the same client at Prosody's own WebSocket endpoint, for reference", async () => {
    const c = await connectClient({ host: "127.0.0.1", port: 0, service: `ws://127.0.0.1:${prosody.httpPort}/xmpp-websocket`, domain: "localhost", username: "alice", password: "alice-pw" });
    clients.push(c);
    await c.send(xml("message", { to: witness.jid, type: "chat", id: "ref" }, xml("body", {}, "straight")));
    assert.equal((await witness.waitFor((el) => el.is("message") && el.attrs.id === "ref")).getChildText("body"), "straight");
    await c.stop();
  });

  /** A sender logged in over `transport`, writing stanzas in `form`. */
  const sender = async (transport: Transport, username: string, form: Form, resource: string): Promise<Sender> => {
    if (transport === "tcp") {
      const s = await rawLogin(tcpPort, { domain: "localhost", username, password: `${username}-pw`, resource, form, presence: true });
      return s;
    }
    // Over WebSocket the "header" is the <open/>: a prefix declared there binds nothing.
    const openExtra = form === "prefixed-on-header" ? ` xmlns:${PREFIX}='jabber:client'` : "";
    return wsLogin(wsUrl, { domain: "localhost", username, password: `${username}-pw`, resource, form, presence: true, openExtra });
  };

  /** The errors the sender got back, once a ping came back after them (or the stream's end). */
  const answers = async (s: Sender): Promise<string[]> => {
    // A ping's answer, or the end of the stream: what came before it is all there is.
    await Promise.race([s.sync().catch(() => undefined), s.closed(6000).catch(() => undefined)]);
    return s.take((el) => el.attrs.type === "error" || el.name === "stream:error").map((el) =>
      el.name === "stream:error" ? `stream:error ${el.children.map((c) => (typeof c === "string" ? c : (c as Element).name)).join(" ")}` :
        `${el.name} ${el.attrs.id} to=${el.attrs.to} from=${el.attrs.from} ${el.getChild("error")?.toString()}`);
  };

  /** Messages with this id the witness got, once the marker sent after them through the server came. */
  const delivered = async (id: string): Promise<number> => {
    const marker = `marker-${Math.random().toString(36).slice(2)}`;
    await watcher.send(xml("message", { to: witness.jid, type: "chat", id: marker }, xml("body", {}, "marker")));
    await witness.waitFor((el) => el.is("message") && el.attrs.id === marker);
    let n = 0;
    for (;;) {
      try {
        await witness.waitFor((el) => el.is("message") && el.attrs.id === id, 1);
        n++;
      } catch {
        return n;
      }
    }
  };

  const err = (type: string, condition: string, text: string): string =>
    `<error type="${type}"><${condition} xmlns="${STANZAS}"/><text xmlns="${STANZAS}">${text}</text></error>`;

  /** One firewall case over one transport: what came back and what was delivered, with the sender's own JID written as SELF. */
  const firewallCase = async (transport: Transport, form: Form, user: "writer" | "muted", stanza: (id: string) => string, id: string) => {
    const s = await sender(transport, user, form, `${transport}-${form}`);
    try {
      const drops = await metric(proxy, "xmpp_guard_firewall_rule_hits_total", { action: "DROP" });
      s.send(writeAs(form, stanza(id), { from: "alice@localhost/elsewhere" }));
      const got = (await answers(s)).map((a) => a.replaceAll(s.jid, "SELF").replaceAll(witness.jid, "WITNESS"));
      return { answers: got, delivered: await delivered(id), dropped: await metric(proxy, "xmpp_guard_firewall_rule_hits_total", { action: "DROP" }) - drops };
    } finally {
      s.stop();
    }
  };

  const FIREWALL_CASES = [
    { rule: "BOUNCE", user: "writer" as const, stanza: (id: string) => `<message to='${witness.jid}' type='chat' id='${id}'><body>this is FORBIDDEN</body></message>`,
      expect: (id: string) => ({ answers: [`message ${id} to=SELF from=WITNESS ${err("modify", "policy-violation", "No forbidden words")}`], delivered: 0, dropped: 0 }) },
    { rule: "muted", user: "muted" as const, stanza: (id: string) => `<message to='${witness.jid}' type='chat' id='${id}'><body>let me speak</body></message>`,
      expect: (id: string) => ({ answers: [`message ${id} to=SELF from=WITNESS ${err("auth", "forbidden", "You are muted")}`], delivered: 0, dropped: 0 }) },
    { rule: "DROP", user: "writer" as const, stanza: (id: string) => `<message to='blackhole@localhost' type='chat' id='${id}'><body>into the void</body></message>`,
      // Had it reached Prosody, blackhole (offline, no offline storage) would answer service-unavailable.
      expect: () => ({ answers: [], delivered: 0, dropped: 1 }) },
  ];

  for (const form of FORMS) {
    for (const c of FIREWALL_CASES) {
      if (form === "prefixed-on-header") {
        it(`firewall ${c.rule}, ${form}: over WebSocket a prefix declared on <open/> binds nothing; the stream ends with not-well-formed, nothing delivered`, async () => {
          const id = `fw-${c.rule}-${form}-ws`;
          const ws = await firewallCase("websocket", form, c.user, c.stanza, id);
          assert.deepEqual(ws, { answers: ["stream:error not-well-formed text"], delivered: 0, dropped: 0 });
          // Over TCP the same stanza, the prefix on the stream header, meets the rule.
          const tcp = await firewallCase("tcp", form, c.user, c.stanza, `${id}-tcp`);
          assert.deepEqual(tcp, c.expect(`${id}-tcp`));
        });
        continue;
      }
      it(`firewall ${c.rule}, ${form} (forged from): the same verdict over WebSocket as over TCP`, async () => {
        const id = `fw-${c.rule}-${form}`;
        const tcp = await firewallCase("tcp", form, c.user, c.stanza, id);
        const ws = await firewallCase("websocket", form, c.user, c.stanza, id);
        assert.deepEqual(tcp, c.expect(id));
        assert.deepEqual(ws, tcp);
      });
    }
  }

  const joinAsWatcher = async (room: string): Promise<void> => {
    await watcher.send(xml("presence", { to: `${room}/watch` }, xml("x", { xmlns: MUC })));
    await watcher.waitFor((el) => el.is("presence") && el.attrs.from === `${room}/watch` && el.getChild("x", `${MUC}#user`)?.getChildren("status").some((st) => st.attrs.code === "110") === true);
  };

  /** A new occupant joins over `transport` and sends 10 at once, all in `form` with the room owner's JID forged in from. */
  const floodTwin = async (transport: Transport, form: Form, nick: string) => {
    const user = `twin-${nick}`;
    await prosody.createUser(user, "twin-pw");
    // A room of its own, created by the exempt watcher, so every run starts from a full room bucket.
    const room = `flood-${nick}@conference.localhost`;
    await joinAsWatcher(room);
    const s = await (async () => {
      if (transport === "tcp") return rawLogin(tcpPort, { domain: "localhost", username: user, password: "twin-pw", resource: form, form, presence: true });
      const openExtra = form === "prefixed-on-header" ? ` xmlns:${PREFIX}='jabber:client'` : "";
      return wsLogin(wsUrl, { domain: "localhost", username: user, password: "twin-pw", resource: form, form, presence: true, openExtra });
    })();
    try {
      const forged = { from: watcher.jid };
      s.send(writeAs(form, `<presence to='${room}/${nick}'><x xmlns='${MUC}'/></presence>`, forged));
      if (transport === "websocket" && form === "prefixed-on-header") {
        return { refused: await answers(s), joined: s.take((el) => el.name === "presence" && el.attrs.from === `${room}/${nick}`).length };
      }
      await s.waitFor((el) => el.name === "presence" && el.attrs.from === `${room}/${nick}` && el.getChild("x", `${MUC}#user`)?.getChildren("status").some((st) => st.attrs.code === "110") === true);
      const flood = Array.from({ length: 10 }, (_, i) => writeAs(form, `<message to='${room}' type='groupchat' id='tw${i}'><body>flood ${i}</body></message>`, forged));
      // TCP: one write; WebSocket: one message each, as RFC 7395 wants.
      if (transport === "tcp") s.send(flood.join(""));
      else for (const m of flood) s.send(m);
      const answered = await s.collect((el) => el.name === "message" && /^tw\d$/.test(el.attrs.id ?? "") &&
        (el.attrs.type === "error" || el.attrs.from === `${room}/${nick}`), 10, 10_000);
      await watcher.send(xml("message", { to: room, type: "groupchat", id: `sync-${nick}` }, xml("body", {}, "sync")));
      await watcher.waitFor((el) => el.is("message") && el.attrs.id === `sync-${nick}`);
      let seen = 0;
      for (;;) {
        try {
          await watcher.waitFor((el) => el.is("message") && el.attrs.from === `${room}/${nick}`, 1);
          seen++;
        } catch {
          break;
        }
      }
      const bounces = answered.filter((el) => el.attrs.type === "error").map((el) =>
        `${el.attrs.id} to=${el.attrs.to === s.jid ? "SELF" : el.attrs.to} from=${el.attrs.from} ${el.children.map(String).join("")}`);
      return { delivered: answered.length - bounces.length, seenByWatcher: seen, bounces };
    } finally {
      s.stop();
    }
  };

  const overactive = (room: string, i: number): string =>
    `tw${i} to=SELF from=${room} <error type="wait"><policy-violation xmlns="${STANZAS}"/><text xmlns="${STANZAS}">The room is currently overactive, please try again later</text></error><body>flood ${i}</body>`;

  for (const [k, form] of FORMS.entries()) {
    if (form === "prefixed-on-header") {
      it(`room limit, ${form}: over WebSocket the join is refused (not-well-formed), nothing reaches the room`, async () => {
        assert.deepEqual(await floodTwin("websocket", form, `w${k}`), { refused: ["stream:error not-well-formed text"], joined: 0 });
      });
      continue;
    }
    it(`room limit, ${form} (the owner's JID forged): joins and sends 10 at once: 1 delivered, 9 bounced, over WebSocket as over TCP`, async () => {
      const expected = (nick: string) => ({ delivered: 1, seenByWatcher: 1, bounces: Array.from({ length: 9 }, (_, i) => overactive(`flood-${nick}@conference.localhost`, i + 1)) });
      assert.deepEqual(await floodTwin("tcp", form, `t${k}`), expected(`t${k}`));
      assert.deepEqual(await floodTwin("websocket", form, `w${k}`), expected(`w${k}`));
    });
  }

  it("XEP-0198: a WebSocket that drops leaves the session resumable; a new one resumes it, and the proxy knows whose it is (a muted sender stays muted)", async () => {
    // A server of its own with stream management (mod_smacks): @xmpp/client would use it too, elsewhere in this file.
    const sm = await startProsody({ extraModules: ["smacks"] });
    const p = await startProxy(configFromObject({
      listeners: [{ name: "web", type: "websocket", listen: "127.0.0.1:0", upstream: `127.0.0.1:${sm.port}` }],
      firewall: { scripts: [join(dir, "edge.pfw")], watch: false },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    const url = `ws://127.0.0.1:${p.listenerAddress("web")!.port}/xmpp-websocket`;
    const SM = "urn:xmpp:sm:3";
    try {
      await sm.createUser("muted", "muted-pw");
      const first = await wsLogin(url, { domain: "localhost", username: "muted", password: "muted-pw", resource: "sm", presence: true });
      first.send(`<enable xmlns='${SM}' resume='true'/>`);
      const enabled = await first.waitFor((el) => el.name === "enabled" && el.attrs.xmlns === SM);
      assert.ok(enabled.attrs.id);
      first.ws.terminate(); // the network went away: no <close/>, no close frame
      await first.closed();
      const again = await connectStream(url);
      try {
        again.send(openMessage("localhost"));
        await again.waitFor((el) => el.name === "stream:features");
        again.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0muted\0muted-pw").toString("base64")}</auth>`);
        await again.waitFor((el) => el.name === "success");
        again.send(openMessage("localhost"));
        await again.waitFor((el) => el.name === "stream:features");
        again.send(`<resume xmlns='${SM}' previd='${enabled.attrs.id}' h='0'/>`);
        const resumed = await again.waitFor((el) => (el.name === "resumed" || el.name === "failed") && el.attrs.xmlns === SM);
        assert.equal(resumed.name, "resumed", resumed.toString());
        // The resumed session is muted@localhost to the proxy too, whatever `from` says.
        again.send(`<message xmlns='jabber:client' to='someone@localhost' type='chat' id='after-resume' from='alice@localhost/elsewhere'><body>let me speak</body></message>`);
        const bounce = await again.waitFor((el) => el.name === "message" && el.attrs.id === "after-resume" && el.attrs.type === "error");
        assert.equal(bounce.getChild("error")?.getChildText("text", STANZAS), "You are muted");
        assert.equal(bounce.attrs.to, "muted@localhost/sm");
        again.send(`<close xmlns='${NS_FRAMING}'/>`);
        await again.closed();
      } finally {
        again.stop();
      }
      const bad = (await sm.logText()).split("\n").filter((l) => /\t(error|warn)\t/.test(l));
      assert.deepEqual(bad, []);
    } finally {
      await p.shutdown(0);
      await sm.stop();
    }
  });

  it("bad frames: binary 1003 and oversized 1009, the stanza inside never delivered; another subprotocol and a bad origin refused before any session", async () => {
    const inside = (id: string): string => `<message xmlns='jabber:client' to='${witness.jid}' type='chat' id='${id}'><body>smuggled</body></message>`;
    for (const [what, code, send] of [
      ["binary", 1003, (s: Sender & { sendBinary(b: Buffer): void }) => s.sendBinary(Buffer.from(inside("bin")))],
      ["oversized", 1009, (s: Sender) => s.send(inside("big").replace("smuggled", "x".repeat(20_000)))],
    ] as const) {
      const s = await wsLogin(wsUrl, { domain: "localhost", username: "writer", password: "writer-pw", resource: what });
      send(s);
      assert.equal((await s.closed()).code, code, what);
      assert.equal(await delivered(what === "binary" ? "bin" : "big"), 0, what);
    }
    const sessions = proxy.sessionCount();
    await assert.rejects(connectWs(wsUrl, ["mqtt"]), (e: Error & { status?: number }) => e.status === 400);
    await assert.rejects(connectWs(wsUrl, ["xmpp"], { origin: "https://evil.example" }), (e: Error & { status?: number }) => e.status === 403);
    assert.equal(proxy.sessionCount(), sessions, "no session for a refused handshake");
    // The allowed origin gets its stream, answered by the server.
    const s = await connectStream(wsUrl, ["xmpp"], { origin: "https://chat.example.org" });
    s.send(openMessage("localhost"));
    await s.waitFor((el) => el.name === "stream:features");
    s.stop();
    assert.equal(await metric(proxy, "xmpp_guard_connections_refused_total", { listener: "web", reason: "websocket_origin" }), 1);
    assert.equal(await metric(proxy, "xmpp_guard_connections_refused_total", { listener: "web", reason: "websocket_subprotocol" }), 1);
  });

  it("Prosody logged no errors or warnings", async () => {
    const bad = (await prosody.logText()).split("\n").filter((l) => /\t(error|warn)\t/.test(l));
    assert.deepEqual(bad, []);
  });
});
