// XEP-0198 counts with a real Prosody (mod_smacks) behind the proxy, when
// the firewall drops stanzas and writes its own (docs/stream-view.md,
// "Stream management counts"). Without the proxy's ledger, a bounce written
// to a client is a stanza the server never sent: the client acknowledges it
// and Prosody ends the stream ("acknowledged more stanzas than sent"); a
// stanza dropped on its way to the client stays unacknowledged in the
// server's queue and is sent again on resumption; a bounce written to the
// server makes the server acknowledge more than the client sent.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { eventually } from "../helpers/raw-client.js";
import { openRawStream, rawLogin, type RawSession } from "../helpers/raw-session.js";
import { FORMS, type Form } from "../helpers/stanza-forms.js";

const SM = "urn:xmpp:sm:3";
const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

// Messages whose body starts with "sm-" are judged; everything else passes.
const RULES = `
::preroute
KIND: message
INSPECT: body#~=^sm%-blackhole
BOUNCE=item-not-found (Nobody here)

::deliver
KIND: message
INSPECT: body#~=^sm%-drop
DROP.

KIND: message
INSPECT: body#~=^sm%-bounce
BOUNCE=policy-violation (Not wanted)
`;

/** The SM acknowledgement form a client would write in each XML form of the test matrix. */
function ackAs(form: Form, h: number): string {
  if (form === "prefixed" || form === "prefixed-on-header") return `<sm:a xmlns:sm='${SM}' h='${h}'/>`;
  return `<a xmlns='${SM}' h='${h}'/>`;
}

describe("XEP-0198 counts through a proxy that drops and bounces, with a real Prosody", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let dir: string;
  let port: number;

  before(async () => {
    prosody = await startProsody({ extraModules: ["smacks"] });
    for (const u of ["sender", ...FORMS.map((f) => `user-${f}`)]) await prosody.createUser(u, `${u}-pw`);
    dir = mkdtempSync(join(tmpdir(), "xg-sm-"));
    const rules = join(dir, "sm.pfw");
    writeFileSync(rules, RULES);
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      firewall: { scripts: [rules], watch: false },
      admin: { listen: null },
    }), { logger: createLogger(process.env["SM_DEBUG"] ? "debug" : "warn") });
    port = proxy.listenerAddress("c2s")!.port;
  });

  after(async () => {
    await proxy?.shutdown(0);
    await prosody?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The server's answer to <r/>, as this client reads it. */
  const serverH = async (s: RawSession): Promise<number> => {
    s.send(`<r xmlns='${SM}'/>`);
    const a = await s.waitFor((el) => el.name === "a" && el.attrs.xmlns === SM);
    return Number(a.attrs.h);
  };

  for (const form of FORMS) {
    it(`${form}: bounces and drops on both sides keep both ends' counts right, across a resumption`, async () => {
      const user = `user-${form}`;
      const me = await rawLogin(port, { domain: "localhost", username: user, password: `${user}-pw`, resource: "sm", form, presence: true });
      const sender = await rawLogin(port, { domain: "localhost", username: "sender", password: "sender-pw", resource: "s" });
      let again: Awaited<ReturnType<typeof openRawStream>> | undefined;
      try {
        me.send(`<enable xmlns='${SM}' resume='true'/>`);
        const enabled = await me.waitFor((el) => el.name === "enabled" && el.attrs.xmlns === SM);
        const previd = String(enabled.attrs.id);
        let sent = 0; // stanzas this client sent since <enable/>
        let received = 0; // stanzas this client received since <enabled/>

        // 1. A message to a black hole: bounced by the proxy to this client,
        //    never reaching the server.
        me.send(`<message to='nobody@localhost' type='chat' id='b1'><body>sm-blackhole</body></message>`);
        sent += 1;
        await me.waitFor((el) => el.name === "message" && el.attrs.id === "b1" && el.attrs.type === "error");
        received += 1;
        // The client acknowledges what it received, the bounce included: the
        // server must not read it as more than it sent.
        me.send(ackAs(form, received));
        assert.equal(await serverH(me), sent, "the server's count, as the client reads it, is what the client sent");

        // 2. Messages to this client: one dropped, one bounced back to the
        //    sender (a stanza the proxy writes to the server), one passing.
        sender.send(`<message to='${user}@localhost' type='chat' id='d1'><body>sm-drop</body></message>`);
        sender.send(`<message to='${user}@localhost' type='chat' id='x1'><body>sm-bounce</body></message>`);
        sender.send(`<message to='${user}@localhost' type='chat' id='p1'><body>hello</body></message>`);
        await sender.waitFor((el) => el.name === "message" && el.attrs.id === "x1" && el.attrs.type === "error");
        await me.waitFor((el) => el.name === "message" && el.attrs.id === "p1");
        received += 1;
        assert.equal(me.take((el) => el.name === "message" && (el.attrs.id === "d1" || el.attrs.id === "x1")).length, 0);
        me.send(ackAs(form, received));
        assert.equal(await serverH(me), sent, "the bounce the proxy wrote to the server is not the client's");

        // 3. The stream is alive: a ping answers.
        await me.sync();
        sent += 1;
        received += 1;

        // 4. The connection is lost; the client resumes with what it received.
        //    The server has nothing unacknowledged to send again: the dropped
        //    messages were acknowledged with the passing one.
        me.raw.socket.resetAndDestroy();
        await eventually(() => !proxy.sessions({}).some((x) => x.jid === me.jid), 5000, "the connection gone");
        again = await openRawStream(port, { domain: "localhost", form });
        const isFeatures = (el: { name: string }): boolean => el.name === "stream:features";
        await again.waitFor(isFeatures);
        again.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${user}-pw`).toString("base64")}</auth>`);
        await again.waitFor((el) => el.name === "success");
        again.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
        await again.waitFor(isFeatures);
        again.send(`<resume xmlns='${SM}' previd='${previd}' h='${received}'/>`);
        const resumed = await again.waitFor((el) => el.name === "resumed" && el.attrs.xmlns === SM);
        assert.equal(Number(resumed.attrs.h), sent, "<resumed h> counts what the client sent");
        // Nothing is sent again: a ping's answer comes first.
        again.send(`<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
        const first = await again.waitFor((el) => el.name === "message" || (el.name === "iq" && el.attrs.id === "after"));
        assert.equal(first.name, "iq", `nothing resent (got ${first.toString()})`);
        sent += 1;
        again.send(`<r xmlns='${SM}'/>`);
        const a = await again.waitFor((el) => el.name === "a" && el.attrs.xmlns === SM);
        assert.equal(Number(a.attrs.h), sent);
      } finally {
        me.stop();
        sender.stop();
        again?.stop();
      }
    });
  }
});
