// Firewall rules at the edge with real parts: a real Prosody behind the
// proxy, @xmpp/client in front. DROP, BOUNCE (the exact error the client
// receives), LIMIT; then the rule file is edited on disk and the new
// behaviour applies within 1 s without dropping a session; then a broken edit
// keeps the previous rules and check-rules reports the line. Each rule also
// runs against its attacker twins: the same stanza prefixed, with the prefix
// declared on the stream header, or with an explicit xmlns and a forged
// `from`; the verdict, the error and the count let through must not change.
// So must a session whose bind request wrote <b:bind/> with a prefix.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { connectClient, xml, type TestClient, type XmlElement } from "../helpers/xmpp-client.js";
import { eventually } from "../helpers/raw-client.js";
import { rawLogin, type RawSession } from "../helpers/raw-session.js";
import { FORMS, writeAs, type Form } from "../helpers/stanza-forms.js";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const CLI = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

const RULES_V1 = `
%RATE burst3: 0.01 (burst 300)
%RATE persender: 0.01 (burst 300)

::preroute
# A muted account may not send messages.
KIND: message
FROM: muted@localhost
BOUNCE=forbidden (You are muted)

# Drop anything to the blackhole account.
TO: blackhole@localhost
DROP.

# Bounce messages containing the magic word.
KIND: message
INSPECT: body#~=FORBIDDEN
BOUNCE=policy-violation (No forbidden words)

# At most 3 messages to the limited account, then bounce.
KIND: message
TO: limited@localhost
LIMIT: burst3
BOUNCE=resource-constraint (Slow down)

# Each sender may send at most 3 messages to the inbox account.
KIND: message
TO: inbox@localhost
LIMIT: persender on $<@from|bare>
BOUNCE=resource-constraint (One bucket per sender)
`;

const RULES_V2 = RULES_V1.replace("INSPECT: body#~=FORBIDDEN", "INSPECT: body#~=VERBOTEN");

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

describe("firewall rules through the proxy, with a real Prosody", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let dir: string;
  let rules: string;
  let alice: TestClient;
  let bob: TestClient;
  let port: number;
  const logs: Array<Record<string, unknown>> = [];

  before(async () => {
    prosody = await startProsody();
    for (const u of ["alice", "bob", "limited", "blackhole"]) await prosody.createUser(u, `${u}-pw`);
    dir = mkdtempSync(join(tmpdir(), "xg-fw-"));
    rules = join(dir, "edge.pfw");
    writeFileSync(rules, RULES_V1);
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      firewall: { scripts: [rules], watch: true },
      admin: { listen: null },
    }), { logger: createLogger("info", { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) }) });
    port = proxy.listenerAddress("c2s")!.port;
    const login = (u: string): Promise<TestClient> => connectClient({ host: "127.0.0.1", port, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN" });
    alice = await login("alice");
    bob = await login("bob");
  });

  after(async () => {
    await Promise.all([alice?.stop(), bob?.stop()]);
    await proxy?.shutdown(0);
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const chat = (to: string, body: string, id: string) => xml("message", { to, type: "chat", id }, xml("body", {}, body));
  const fromAlice = (el: XmlElement): boolean => el.is("message") && el.attrs.from === alice.jid;

  it("DROP: a message to blackhole never reaches the server; others do", async () => {
    await alice.send(chat("blackhole@localhost", "into the void", "d1"));
    await alice.send(chat(bob.jid, "marker-1", "d2"));
    const got = await bob.waitFor((el) => fromAlice(el) && el.getChildText("body") === "marker-1");
    assert.ok(got);
    assert.ok(await metric(proxy, "xmpp_guard_firewall_rule_hits_total", { action: "DROP" }) >= 1);
  });

  it("BOUNCE: the client receives exactly the error Prosody's mod_firewall sends", async () => {
    await alice.send(chat(bob.jid, "this is FORBIDDEN", "b1"));
    const err = await alice.waitFor((el) => el.is("message") && el.attrs.id === "b1");
    assert.equal(err.attrs.type, "error");
    assert.equal(err.attrs.to, alice.jid);
    assert.equal(err.attrs.from, bob.jid);
    const e = err.getChild("error")!;
    assert.equal(e.attrs.type, "modify");
    assert.ok(e.getChild("policy-violation", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    assert.equal(e.getChildText("text", "urn:ietf:params:xml:ns:xmpp-stanzas"), "No forbidden words");
  });

  it("LIMIT: the fourth message to limited@ bounces with resource-constraint", async () => {
    for (let i = 1; i <= 4; i++) await alice.send(chat("limited@localhost", `n${i}`, `l${i}`));
    const err = await alice.waitFor((el) => el.is("message") && el.attrs.id === "l4" && el.attrs.type === "error");
    assert.ok(err.getChild("error")!.getChild("resource-constraint"));
    // The first three were not bounced by the rule (the server may still answer
    // service-unavailable: limited@ is offline and offline storage is off).
    await assert.rejects(alice.waitFor((el) => ["l1", "l2", "l3"].includes(String(el.attrs.id)) && el.getChild("error")?.getChild("resource-constraint") !== undefined, 300));
  });

  describe("attacker twins: the same stanzas prefixed, with the prefix on the header, or with an explicit xmlns and a forged from", () => {
    // Receivers log in to Prosody directly: what they get is what the server delivered.
    let witness: TestClient;
    let inbox: TestClient;
    const direct = (u: string): Promise<TestClient> => connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: u, password: `${u}-pw`, mechanism: "PLAIN" });
    // Senders go through the proxy on a raw stream (the header declares the prefix for prefixed-on-header).
    const viaProxy = (u: string, form: Form): Promise<RawSession> => rawLogin(port, { domain: "localhost", username: u, password: `${u}-pw`, resource: form, form });

    before(async () => {
      for (const u of ["writer", "muted", "witness", "inbox", ...FORMS.flatMap((f) => [`atk-${f}`, `vic-${f}`])]) await prosody.createUser(u, `${u}-pw`);
      witness = await direct("witness");
      inbox = await direct("inbox");
    });

    after(async () => {
      await Promise.all([witness?.stop(), inbox?.stop()]);
      // The raw sessions are gone too before the reload test counts the proxy's sessions.
      await eventually(() => proxy.sessionCount() === 2, 5000, "twin sessions closed");
    });

    /** The sender's answers to its stanzas, once a ping came back after them. */
    const answers = async (s: RawSession): Promise<string[]> => {
      await s.sync();
      return s.take((el) => el.attrs.type === "error").map((el) =>
        `${el.name} ${el.attrs.id} to=${el.attrs.to} from=${el.attrs.from} ${el.getChild("error")?.toString()}`);
    };
    /** How many messages matching `pred` the receiver got before the sender's marker presence. */
    const delivered = async (s: RawSession, to: TestClient, pred: (el: XmlElement) => boolean): Promise<number> => {
      const marker = `marker-${Math.random().toString(36).slice(2)}`;
      s.send(`<presence to='${to.jid}' id='${marker}'/>`);
      await to.waitFor((el) => el.is("presence") && el.attrs.id === marker);
      let n = 0;
      for (;;) {
        try {
          await to.waitFor((el) => el.is("message") && pred(el), 1);
          n++;
        } catch {
          return n;
        }
      }
    };
    const err = (type: string, condition: string, text: string): string =>
      `<error type="${type}"><${condition} xmlns="${STANZAS}"/><text xmlns="${STANZAS}">${text}</text></error>`;

    for (const form of FORMS) {
      it(`DROP, ${form}: a message to blackhole never reaches the server`, async () => {
        const s = await viaProxy("writer", form);
        try {
          const hits = await metric(proxy, "xmpp_guard_firewall_rule_hits_total", { action: "DROP" });
          s.send(writeAs(form, `<message to='blackhole@localhost' type='chat' id='drop-${form}'><body>into the void</body></message>`));
          // Had it reached Prosody, blackhole (offline, no offline storage) would be answered with service-unavailable.
          assert.deepEqual({ answers: await answers(s), drops: await metric(proxy, "xmpp_guard_firewall_rule_hits_total", { action: "DROP" }) - hits }, { answers: [], drops: 1 });
        } finally {
          s.stop();
        }
      });

      it(`BOUNCE, ${form} (forged from): the same error, addressed to the real sender; nothing delivered`, async () => {
        const s = await viaProxy("writer", form);
        try {
          s.send(writeAs(form, `<message to='${witness.jid}' type='chat' id='bounce-${form}'><body>this is FORBIDDEN</body></message>`, { from: "alice@localhost/elsewhere" }));
          assert.deepEqual({ answers: await answers(s), delivered: await delivered(s, witness, (el) => el.attrs.id === `bounce-${form}`) }, {
            answers: [`message bounce-${form} to=${s.jid} from=${witness.jid} ${err("modify", "policy-violation", "No forbidden words")}`],
            delivered: 0,
          });
        } finally {
          s.stop();
        }
      });

      it(`a muted sender, ${form}, writing another user's JID in from: still muted`, async () => {
        const s = await viaProxy("muted", form);
        try {
          s.send(writeAs(form, `<message to='${witness.jid}' type='chat' id='mute-${form}'><body>let me speak</body></message>`, { from: "alice@localhost/elsewhere" }));
          assert.deepEqual({ answers: await answers(s), delivered: await delivered(s, witness, (el) => el.attrs.id === `mute-${form}`) }, {
            answers: [`message mute-${form} to=${s.jid} from=${witness.jid} ${err("auth", "forbidden", "You are muted")}`],
            delivered: 0,
          });
        } finally {
          s.stop();
        }
      });

      it(`LIMIT per sender, ${form}: an attacker writing the victim's JID in from drains its own bucket, not the victim's`, async () => {
        const atk = await viaProxy(`atk-${form}`, form);
        const vic = await viaProxy(`vic-${form}`, "plain");
        try {
          for (let i = 1; i <= 4; i++) atk.send(writeAs(form, `<message to='inbox@localhost' type='chat' id='atk-${form}-${i}'><body>a${i}</body></message>`, { from: vic.jid }));
          const atkAnswers = await answers(atk);
          const atkDelivered = await delivered(atk, inbox, (el) => el.attrs.from === atk.jid);
          for (let i = 1; i <= 4; i++) vic.send(`<message to='inbox@localhost' type='chat' id='vic-${form}-${i}'><body>v${i}</body></message>`);
          const vicAnswers = await answers(vic);
          const vicDelivered = await delivered(vic, inbox, (el) => el.attrs.from === vic.jid);
          const slow = err("wait", "resource-constraint", "One bucket per sender");
          assert.deepEqual({ atkDelivered, atkAnswers, vicDelivered, vicAnswers }, {
            atkDelivered: 3,
            atkAnswers: [`message atk-${form}-4 to=${atk.jid} from=inbox@localhost ${slow}`],
            vicDelivered: 3,
            vicAnswers: [`message vic-${form}-4 to=${vic.jid} from=inbox@localhost ${slow}`],
          });
        } finally {
          atk.stop();
          vic.stop();
        }
      });
    }

    it("a muted sender whose bind request wrote <b:bind/> with a prefix: its plain messages are still muted", async () => {
      // The proxy must learn the bound JID however the bind request was written.
      const s = await rawLogin(port, { domain: "localhost", username: "muted", password: "muted-pw", resource: "b-prefix", prefixedBind: true });
      try {
        s.send(`<message to='${witness.jid}' type='chat' id='mute-bind'><body>let me speak</body></message>`);
        assert.deepEqual({ answers: await answers(s), delivered: await delivered(s, witness, (el) => el.attrs.id === "mute-bind") }, {
          answers: [`message mute-bind to=${s.jid} from=${witness.jid} ${err("auth", "forbidden", "You are muted")}`],
          delivered: 0,
        });
      } finally {
        s.stop();
      }
    });
  });

  it("an edit on disk applies within 1 s, no session dropped; a broken edit keeps the old rules; check-rules reports the line", async () => {
    const t0 = Date.now();
    writeFileSync(`${rules}.tmp`, RULES_V2);
    renameSync(`${rules}.tmp`, rules); // how editors and config managers replace files
    await eventually(async () => (await metric(proxy, "xmpp_guard_firewall_reloads_total", { result: "ok" })) >= 1, 3000, "rules reloaded");
    assert.ok(Date.now() - t0 < 1000, `reloaded after ${Date.now() - t0} ms`);
    // New rule in force, old one gone, same sessions.
    await alice.send(chat(bob.jid, "VERBOTEN now", "v1"));
    const err = await alice.waitFor((el) => el.attrs.id === "v1");
    assert.equal(err.attrs.type, "error");
    await alice.send(chat(bob.jid, "FORBIDDEN is fine now", "v2"));
    await bob.waitFor((el) => fromAlice(el) && el.getChildText("body") === "FORBIDDEN is fine now");

    // A broken edit: the previous rules stay, the error names file:line:col.
    writeFileSync(rules, RULES_V2 + "\nKIND: message\nDROPP.\n");
    await eventually(async () => (await metric(proxy, "xmpp_guard_firewall_reloads_total", { result: "error" })) >= 1, 3000, "broken reload seen");
    assert.ok(logs.some((l) => typeof l.msg === "string" && /edge\.pfw:\d+:1: .*DROPP/.test(l.msg)), "log names file:line:col");
    await alice.send(chat(bob.jid, "VERBOTEN still", "v3"));
    assert.equal((await alice.waitFor((el) => el.attrs.id === "v3")).attrs.type, "error");
    const check = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, ["--import", "tsx", CLI, "check-rules", rules], { timeout: 20_000 }, (e, stdout) =>
        resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, out: stdout }));
    });
    assert.equal(check.code, 1);
    assert.match(check.out, new RegExp(`${rules.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:\\d+:1: error: Unknown action: DROPP`));
    // A line Prosody loads although it is not what it looks like: loaded, with
    // the warning in the log and from check-rules (exit 0), and in force.
    const reloads = await metric(proxy, "xmpp_guard_firewall_reloads_total", { result: "ok" });
    writeFileSync(rules, RULES_V2.replace("BOUNCE=policy-violation (No forbidden words)", "BOUNCE=policy-violation # no text here"));
    await eventually(async () => (await metric(proxy, "xmpp_guard_firewall_reloads_total", { result: "ok" })) > reloads, 3000, "tolerated reload seen");
    assert.ok(logs.some((l) => typeof l.msg === "string" && /^firewall rule warning: .*edge\.pfw:\d+:24: '# no text here' after the error condition is ignored/.test(l.msg)), "warning logged");
    await alice.send(chat(bob.jid, "VERBOTEN again", "v4"));
    const plain = await alice.waitFor((el) => el.attrs.id === "v4");
    assert.ok(plain.getChild("error")!.getChild("policy-violation", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    assert.equal(plain.getChild("error")!.getChild("text"), undefined);
    const tolerated = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, ["--import", "tsx", CLI, "check-rules", rules], { timeout: 20_000 }, (e, stdout) =>
        resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, out: stdout }));
    });
    assert.equal(tolerated.code, 0, tolerated.out);
    assert.match(tolerated.out, /:\d+:24: warning: '# no text here' after the error condition is ignored/);
    // Both sessions survived all of it.
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
    assert.equal(proxy.sessionCount(), 2);
  });
});
