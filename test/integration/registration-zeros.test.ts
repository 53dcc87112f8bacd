// Registration options whose zero Prosody accepts, through a real Prosody:
// `min_seconds_between_registrations: 0` throttles nothing, and
// `registration_throttle_max: 0` refuses every registration with the throttle
// error; `user_tombstone_expiry: 0` lets a deleted name be registered again at
// once; `registration_notification_type: groupchat` reaches a watcher's
// session (a full JID) as a groupchat message; and presence to a deleted
// account is answered as mod_tombstones answers it: `gone` "User deleted",
// then an unsubscribe, or unsubscribed for a probe.

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
import { connectClient, xml, type TestClient } from "../helpers/xmpp-client.js";

const SECRET = "component-secret-for-tests";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const THROTTLED = `<error type='wait'><policy-violation xmlns='${STANZAS}'/><text xmlns='${STANZAS}'>Too many registrations from this IP address recently</text></error>`;

/** Raw XML registration; returns the answer to it. */
async function register(port: number, username: string, password = "pw"): Promise<string> {
  const c = await rawClient(port);
  try {
    c.write(CLIENT_HEADER);
    await c.waitFor((t) => t.includes("</stream:features>"));
    c.write(`<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>${username}</username><password>${password}</password></query></iq>`);
    const re = /<iq [^>]*id=["']reg1["'][^>]*(\/>|>[\s\S]*?<\/iq>)/;
    const text = await c.waitFor((t) => re.test(t));
    return text.match(re)![0];
  } finally {
    c.destroy();
  }
}

describe("registration zeros, groupchat notifications and presence to a deleted account: real Prosody", { timeout: 60_000 }, () => {
  let prosody: ProsodyInstance;
  let dir: string;
  const proxies: RunningProxy[] = [];
  let watcher: TestClient;

  const start = async (registration: Record<string, unknown>, name: string, component = false): Promise<number> => {
    const p = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      registration,
      ...(component ? { component: { jid: "guard.localhost", secret: SECRET, upstream: `127.0.0.1:${prosody.componentPort!}` } } : {}),
      state: { path: join(dir, `${name}.sqlite`) },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    proxies.push(p);
    return p.listenerAddress("c2s")!.port;
  };

  /** Logs in through `port`, deletes the account (XEP-0077 <remove/>), and waits for the server's result. */
  const deleteSelf = async (port: number, username: string): Promise<void> => {
    const c = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username, password: "pw", mechanism: "PLAIN" });
    try {
      await c.send(xml("iq", { type: "set", id: "del" }, xml("query", { xmlns: "jabber:iq:register" }, xml("remove"))));
      const r = await c.waitFor((el) => el.is("iq") && el.attrs.id === "del");
      assert.equal(r.attrs.type, "result");
    } finally {
      await c.stop().catch(() => undefined);
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "xg-regzero-"));
    prosody = await startProsody({ components: [{ jid: "guard.localhost", secret: SECRET }] });
    await prosody.createUser("watcher", "watcher-pw");
    watcher = await connectClient({ host: "127.0.0.1", port: prosody.port, domain: "localhost", username: "watcher", password: "watcher-pw", mechanism: "PLAIN", resource: "desk" });
  });

  after(async () => {
    await watcher?.stop();
    for (const p of proxies) await p.shutdown(0);
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("min_seconds_between_registrations: 0 throttles nothing; notifications of type groupchat reach a watcher's session", async () => {
    const port = await start({
      min_seconds_between_registrations: 0,
      registration_watchers: ["watcher@localhost/desk"],
      registration_notification_type: "groupchat",
    }, "open", true);
    for (const name of ["zero1", "zero2", "zero3"]) {
      assert.match(await register(port, name), /type=["']result["']/, name);
      const note = await watcher.waitFor((el) => el.is("message") && (el.getChildText("body") ?? "").includes(`User ${name} just registered`), 10_000);
      assert.equal(note.attrs.type, "groupchat");
      assert.equal(note.attrs.from, "guard.localhost");
    }
  });

  it("registration_throttle_max: 0 refuses every registration with the throttle error", async () => {
    const port = await start({ registration_throttle_max: 0 }, "closed");
    for (const name of ["shut1", "shut2"]) {
      const answer = await register(port, name);
      assert.ok(answer.includes(THROTTLED), answer);
    }
  });

  it("user_tombstone_expiry: 0 lets a deleted name be registered again at once; the default keeps it", async () => {
    const zero = await start({ user_tombstone_expiry: 0 }, "expiry0");
    assert.match(await register(zero, "phoenix"), /type=["']result["']/);
    await deleteSelf(zero, "phoenix");
    assert.match(await register(zero, "phoenix"), /type=["']result["']/);
    const keep = await start({}, "expiry-default");
    assert.match(await register(keep, "ashes"), /type=["']result["']/);
    await deleteSelf(keep, "ashes");
    assert.match(await register(keep, "ashes"), /not-acceptable/);
  });

  it("presence to a deleted account: gone 'User deleted', then unsubscribe (unsubscribed for a probe)", async () => {
    const port = await start({}, "gone");
    assert.match(await register(port, "ghost"), /type=["']result["']/);
    await deleteSelf(port, "ghost");
    await prosody.createUser("mourner", "pw");
    const c = await connectClient({ host: "127.0.0.1", port, domain: "localhost", username: "mourner", password: "pw", mechanism: "PLAIN" });
    try {
      for (const [type, follow] of [[undefined, "unsubscribe"], ["probe", "unsubscribed"]] as const) {
        await c.send(xml("presence", { to: "ghost@localhost", id: `g-${type ?? "available"}`, ...(type === undefined ? {} : { type }) }));
        const err = await c.waitFor((el) => el.is("presence") && el.attrs.id === `g-${type ?? "available"}`);
        assert.equal(err.attrs.type, "error");
        assert.equal(err.attrs.from, "ghost@localhost");
        assert.equal(err.attrs.to, c.jid);
        const e = err.getChild("error")!;
        assert.equal(e.attrs.type, "cancel");
        assert.ok(e.getChild("gone", STANZAS));
        assert.equal(e.getChildText("text", STANZAS), "User deleted");
        const f = await c.waitFor((el) => el.is("presence") && el.attrs.type === follow && el.attrs.from === "ghost@localhost");
        assert.equal(f.attrs.to, c.jid);
      }
    } finally {
      await c.stop();
    }
  });
});
