// Registration hygiene at the edge with a real Prosody behind the proxy:
// in-band registration (XEP-0077) passes and is learned; a second one from
// the same IP is throttled; reserved and look-alike names are refused with
// Prosody's errors; what was learned survives a restart of the proxy. Then
// the attacker twins: the same register iqs and disco#info requests written
// prefixed, with the prefix on the stream header, or with an explicit xmlns
// (and with the <query/> itself written with a prefix) get the same
// verdicts, errors and counts.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { CLIENT_HEADER, rawClient } from "../helpers/raw-client.js";
import { rawLogin } from "../helpers/raw-session.js";
import { ATTACKER_FORMS, FORMS, prefixPayload, streamHeader, writeAs, type Form } from "../helpers/stanza-forms.js";
import { connectClient, xml } from "../helpers/xmpp-client.js";

/** The answer to register iq `reg1` (prefixed too, so a prefixed answer is shown rather than timed out on). */
const REPLY = /<(?:[\w.-]+:)?iq [^>]*id=["']reg1["'][^>]*(\/>|>[\s\S]*?<\/(?:[\w.-]+:)?iq>)/;

/**
 * In-band registration on a fresh stream, the header and the iq written in
 * `form` (and with `prefixedQuery`, <r:query xmlns:r='jabber:iq:register'>);
 * returns the answer.
 */
async function register(port: number, username: string, password: string, form: Form = "plain", prefixedQuery = false): Promise<string> {
  const c = await rawClient(port);
  c.write(form === "plain" ? CLIENT_HEADER : streamHeader(form, { to: "localhost" }));
  await c.waitFor((t) => t.includes("</stream:features>"));
  let iq = `<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>${username}</username><password>${password}</password></query></iq>`;
  if (prefixedQuery) iq = prefixPayload(iq, "jabber:iq:register", "r");
  c.write(form === "plain" ? iq : writeAs(form, iq));
  const text = await c.waitFor((t) => REPLY.test(t));
  c.destroy();
  return text.match(REPLY)![0];
}

async function metric(p: RunningProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

describe("registration hygiene through the proxy, real Prosody", () => {
  let prosody: ProsodyInstance;
  let dir: string;
  const proxies: RunningProxy[] = [];

  const start = async (registration: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<number> => {
    const p = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      registration,
      state: { path: join(dir, "state.sqlite") },
      ...extra,
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    proxies.push(p);
    return p.listenerAddress("c2s")!.port;
  };

  before(async () => {
    prosody = await startProsody();
    dir = mkdtempSync(join(tmpdir(), "xg-reg-"));
  });

  after(async () => {
    for (const p of proxies) await p.shutdown(0);
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("one registration passes and is counted; the next from the same IP is throttled", async () => {
    const port = await start({ min_seconds_between_registrations: 300 });
    const ok = await register(port, "newuser1", "pw-1");
    assert.match(ok, /type=["']result["']/, ok);
    const again = await register(port, "anotheruser", "pw-2");
    assert.match(again, /type=["']error["']/);
    assert.match(again, /<error type=["']wait["']><policy-violation xmlns=["']urn:ietf:params:xml:ns:xmpp-stanzas["']\/><text [^>]*>Too many registrations from this IP address recently<\/text><\/error>/, again);
    const p = proxies.at(-1)!;
    assert.equal(await metric(p, "xmpp_guard_registrations_total"), 1);
    assert.equal(await metric(p, "xmpp_guard_registration_refusals_total", { reason: "throttled" }), 1);
    await p.shutdown(0);
  });

  it("after a restart (same state file): reserved and look-alike names are refused, a fresh name passes", async () => {
    // Loopback allowlisted so the throttle does not get in the way of the name checks.
    const port = await start({ registration_allowlist: ["127.0.0.1"] });
    const reserved = await register(port, "admin", "pw");
    assert.match(reserved, /<error type=["']modify["']><not-acceptable /, reserved);
    // newuser1 was learned before the restart: "newuserl" (l for 1) looks the same.
    const lookalike = await register(port, "newuserl", "pw");
    assert.match(lookalike, /<error type=["']modify["']><not-acceptable /, lookalike);
    const fresh = await register(port, "zebra", "pw");
    assert.match(fresh, /type=["']result["']/, fresh);
    const p = proxies.at(-1)!;
    assert.equal(await metric(p, "xmpp_guard_registration_refusals_total", { reason: "reserved" }), 1);
    assert.equal(await metric(p, "xmpp_guard_registration_refusals_total", { reason: "look-alike" }), 1);
  });

  it("XEP-0157: the server's disco#info reaches clients with the abuse address added", async () => {
    await prosody.createUser("reader", "reader-pw");
    const port = await start({}, { contact_info: { abuse: ["mailto:abuse@example.org", "xmpp:abuse@localhost"] } });
    const c = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: "reader", password: "reader-pw", mechanism: "PLAIN" });
    try {
      await c.send(xml("iq", { type: "get", to: "localhost", id: "disco1" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
      const res = await c.waitFor((el) => el.is("iq") && el.attrs.id === "disco1");
      const query = res.getChild("query", "http://jabber.org/protocol/disco#info")!;
      assert.ok(query.getChildren("identity").length > 0, "the server's own answer is intact");
      const form = query.getChildren("x", "jabber:x:data").find((x) => x.getChildren("field").some((f) => f.attrs.var === "FORM_TYPE" && f.getChildText("value") === "http://jabber.org/network/serverinfo"));
      assert.ok(form, "serverinfo form present");
      const abuse = form.getChildren("field").find((f) => f.attrs.var === "abuse-addresses");
      assert.deepEqual(abuse?.getChildren("value").map((v) => v.text()), ["mailto:abuse@example.org", "xmpp:abuse@localhost"]);
    } finally {
      await c.stop();
    }
  });

  describe("attacker twins: the register iq and disco#info written another way", () => {
    const THROTTLED = "<iq id='reg1' type='error'><error type='wait'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Too many registrations from this IP address recently</text></error></iq>";
    const REFUSED = "<iq id='reg1' type='error'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>";
    const RESULT = /^<iq [^>]*type=["']result["']/;
    /** A reply, shortened to what the twins compare: the proxy's error as written, or "result". */
    const outcome = (reply: string): string => (RESULT.test(reply) ? "result" : reply);

    for (const form of FORMS) {
      it(`throttle, ${form}: one registration per IP; the second in the same form and a third written plain are refused`, async () => {
        // A fresh proxy and state file: this IP's bucket starts full.
        const port = await start({ min_seconds_between_registrations: 300 }, { state: { path: join(dir, `throttle-${form}.sqlite`) } });
        const p = proxies.at(-1)!;
        try {
          const replies = [
            await register(port, `thr-${form}-a`, "pw", form),
            await register(port, `thr-${form}-b`, "pw", form),
            await register(port, `thr-${form}-c`, "pw", "plain"),
          ].map(outcome);
          assert.deepEqual({
            replies,
            registered: await metric(p, "xmpp_guard_registrations_total"),
            throttled: await metric(p, "xmpp_guard_registration_refusals_total", { reason: "throttled" }),
          }, { replies: ["result", THROTTLED, THROTTLED], registered: 1, throttled: 2 });
        } finally {
          await p.shutdown(0);
        }
      });
    }

    describe("reserved and look-alike names (loopback allowlisted, so the throttle stays out of the way)", () => {
      let port: number;
      let p: RunningProxy;
      before(async () => {
        port = await start({ registration_allowlist: ["127.0.0.1"] }, { state: { path: join(dir, "names.sqlite") } });
        p = proxies.at(-1)!;
      });

      // A different reserved name per form: one that slipped through would exist afterwards.
      const RESERVED: Record<Form, string> = { plain: "admin", prefixed: "root", "prefixed-on-header": "postmaster", "explicit-ns": "webmaster" };
      const RESERVED_Q: Record<Form, string> = { plain: "hostmaster", prefixed: "sysadmin", "prefixed-on-header": "security", "explicit-ns": "support" };
      for (const [k, form] of FORMS.entries()) {
        it(`reserved name, ${form}: '${RESERVED[form]}' is refused with not-acceptable`, async () => {
          const before = await metric(p, "xmpp_guard_registration_refusals_total", { reason: "reserved" });
          const reply = outcome(await register(port, RESERVED[form], "pw", form));
          assert.deepEqual({ reply, refusals: await metric(p, "xmpp_guard_registration_refusals_total", { reason: "reserved" }) - before }, { reply: REFUSED, refusals: 1 });
        });

        it(`reserved name, ${form}, <query> written with a prefix: '${RESERVED_Q[form]}' is refused with not-acceptable`, async () => {
          const before = await metric(p, "xmpp_guard_registration_refusals_total", { reason: "reserved" });
          const reply = outcome(await register(port, RESERVED_Q[form], "pw", form, true));
          assert.deepEqual({ reply, refusals: await metric(p, "xmpp_guard_registration_refusals_total", { reason: "reserved" }) - before }, { reply: REFUSED, refusals: 1 });
        });

        it(`look-alike, ${form}: after 'look${k}al1' registered, 'look${k}all' is refused with not-acceptable`, async () => {
          assert.equal(outcome(await register(port, `look${k}al1`, "pw")), "result");
          const before = await metric(p, "xmpp_guard_registration_refusals_total", { reason: "look-alike" });
          const reply = outcome(await register(port, `look${k}all`, "pw", form));
          assert.deepEqual({ reply, refusals: await metric(p, "xmpp_guard_registration_refusals_total", { reason: "look-alike" }) - before }, { reply: REFUSED, refusals: 1 });
        });
      }
    });

    for (const form of ATTACKER_FORMS) {
      it(`XEP-0157, ${form}: a disco#info request written this way gets the same abuse addresses`, async () => {
        await prosody.createUser(`reader-${form}`, "reader-pw");
        const port = await start({}, { contact_info: { abuse: ["mailto:abuse@example.org", "xmpp:abuse@localhost"] }, state: { path: join(dir, `contact-${form}.sqlite`) } });
        const s = await rawLogin(port, { domain: "localhost", username: `reader-${form}`, password: "reader-pw", form });
        try {
          s.send(writeAs(form, "<iq type='get' to='localhost' id='disco1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"));
          const res = await s.waitFor((el) => el.getName() === "iq" && el.attrs.id === "disco1");
          assert.equal(res.attrs.type, "result");
          const query = res.getChild("query", "http://jabber.org/protocol/disco#info")!;
          assert.ok(query.getChildren("identity").length > 0, "the server's own answer is intact");
          const forms = query.getChildren("x", "jabber:x:data").filter((x) => x.getChildren("field").some((f) => f.attrs.var === "FORM_TYPE" && f.getChildText("value") === "http://jabber.org/network/serverinfo"));
          assert.equal(forms.length, 1, res.toString());
          const abuse = forms[0]!.getChildren("field").find((f) => f.attrs.var === "abuse-addresses");
          assert.deepEqual(abuse?.getChildren("value").map((v) => v.getText()), ["mailto:abuse@example.org", "xmpp:abuse@localhost"]);
        } finally {
          s.stop();
          await proxies.at(-1)!.shutdown(0);
        }
      });
    }
  });
});
