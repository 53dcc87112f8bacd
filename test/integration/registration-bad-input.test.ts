// Bad registration input through the proxy, real Prosody behind: an empty, a
// 10 KB and an invalid-UTF-8 username, duplicate username fields, and a flood
// of 1,000 attempts from one IP. Each is refused with the right error, the
// state database stays small, and a session that was already logged in, and a
// registration from another IP, are unaffected.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { encodeProxyV1 } from "../../src/net/proxy-protocol.js";
import { SqliteStore } from "../../src/state/sqlite-store.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { CLIENT_HEADER, rawClient, type RawClient } from "../helpers/raw-client.js";
import { connectClient, xml, type TestClient } from "../helpers/xmpp-client.js";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const INVALID = `<error type='modify'><not-acceptable xmlns='${STANZAS}'/><text xmlns='${STANZAS}'>The requested username is invalid.</text></error>`;
const NOT_ACCEPTABLE = `<error type='modify'><not-acceptable xmlns='${STANZAS}'/></error>`;
const THROTTLED = `<error type='wait'><policy-violation xmlns='${STANZAS}'/><text xmlns='${STANZAS}'>Too many registrations from this IP address recently</text></error>`;

const legacy = (id: string, username: string | Buffer, password = "pw"): Buffer =>
  Buffer.concat([
    Buffer.from(`<iq type='set' id='${id}'><query xmlns='jabber:iq:register'><username>`),
    Buffer.isBuffer(username) ? username : Buffer.from(username),
    Buffer.from(`</username><password>${password}</password></query></iq>`),
  ]);

async function open(port: number, via?: string): Promise<RawClient> {
  const c = await rawClient(port);
  if (via !== undefined) c.write(encodeProxyV1({ address: via, port: 40000 }, { address: "127.0.0.1", port }));
  c.write(CLIENT_HEADER);
  await c.waitFor((t) => t.includes("</stream:features>"));
  return c;
}

/** The reply to iq `id`, whole. */
async function reply(c: RawClient, id: string): Promise<string> {
  const re = new RegExp(`<iq [^>]*id=["']${id}["'][^>]*(/>|>[\\s\\S]*?</iq>)`);
  return (await c.waitFor((t) => re.test(t))).match(re)![0];
}

async function metric(p: RunningProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0;
}

describe("bad registration input", { timeout: 110_000 }, () => {
  let prosody: ProsodyInstance;
  let dir: string;
  let proxy: RunningProxy;
  let bystander: TestClient;
  let c2s = 0;
  let lb = 0;

  before(async () => {
    prosody = await startProsody();
    await prosody.createUser("bystander", "bystander-pw");
    dir = mkdtempSync(join(tmpdir(), "xg-regbad-"));
    proxy = await startProxy(configFromObject({
      listeners: [
        { name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` },
        { name: "lb", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}`, accept_proxy_from: ["127.0.0.0/8"] },
      ],
      registration: { min_seconds_between_registrations: 300 },
      state: { path: join(dir, "state.sqlite") },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    c2s = proxy.listenerAddress("c2s")!.port;
    lb = proxy.listenerAddress("lb")!.port;
    bystander = await connectClient({ host: "127.0.0.1", port: c2s, domain: "localhost", username: "bystander", password: "bystander-pw", mechanism: "PLAIN" });
  });

  after(async () => {
    await bystander?.stop();
    await proxy?.shutdown(0);
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("empty, 10 KB and duplicate-field usernames are refused with Prosody's errors; none takes a token", async () => {
    const c = await open(c2s);
    try {
      c.write(legacy("empty", ""));
      assert.equal(await reply(c, "empty"), `<iq id='empty' type='error'>${INVALID}</iq>`);
      c.write(legacy("big", "a".repeat(10 * 1024)));
      assert.equal(await reply(c, "big"), `<iq id='big' type='error'>${INVALID}</iq>`);
      // Two legacy <username/> fields, one reserved: every value is judged.
      c.write(`<iq type='set' id='dup1'><query xmlns='jabber:iq:register'><username>harmless</username><username>admin</username><password>pw</password></query></iq>`);
      assert.equal(await reply(c, "dup1"), `<iq id='dup1' type='error'>${NOT_ACCEPTABLE}</iq>`);
      // A data form with two username fields.
      c.write(
        `<iq type='set' id='dup2'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>` +
          `<field var='FORM_TYPE'><value>jabber:iq:register</value></field>` +
          `<field var='username'><value>root</value></field><field var='username'><value>fine</value></field>` +
          `<field var='password'><value>pw</value></field></x></query></iq>`,
      );
      assert.equal(await reply(c, "dup2"), `<iq id='dup2' type='error'>${NOT_ACCEPTABLE}</iq>`);
    } finally {
      c.destroy();
    }
    assert.equal(await metric(proxy, "xmpp_guard_registration_refusals_total", { reason: "invalid-username" }), 2);
    assert.equal(await metric(proxy, "xmpp_guard_registration_refusals_total", { reason: "reserved" }), 2);
    assert.equal(await metric(proxy, "xmpp_guard_registration_refusals_total", { reason: "throttled" }), 0);
  });

  it("an invalid-UTF-8 username ends that stream with not-well-formed; the server never sees it", async () => {
    const c = await open(c2s);
    c.write(legacy("utf8", Buffer.from([0x61, 0xc3, 0x28, 0x62])));
    await c.closed();
    assert.match(c.text(), /<stream:error><not-well-formed xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']\/>/);
    assert.doesNotMatch(c.text(), /id=["']utf8["']/);
  });

  it("a flood of 1,000 attempts from one IP: one passes, 999 are throttled; the database stays small; others unaffected", async () => {
    const TOTAL = 1000;
    const PER_CONNECTION = 50; // under limits.pre_auth.max_stanzas (64)
    const replies: string[] = [];
    for (let conn = 0; conn < TOTAL / PER_CONNECTION; conn++) {
      const c = await open(c2s);
      try {
        const base = conn * PER_CONNECTION;
        // The first attempt goes alone, so it is answered by the server before the rest arrive.
        if (conn === 0) {
          c.write(legacy("f0", "flood0"));
          replies.push(await reply(c, "f0"));
        }
        const start = conn === 0 ? 1 : 0;
        c.write(Buffer.concat(Array.from({ length: PER_CONNECTION - start }, (_, i) => legacy(`f${base + start + i}`, `flood${base + start + i}`))));
        for (let i = start; i < PER_CONNECTION; i++) replies.push(await reply(c, `f${base + i}`));
      } finally {
        c.destroy();
      }
    }
    assert.equal(replies.length, TOTAL);
    // Prosody writes the attributes in either order (Lua table iteration).
    assert.match(replies[0]!, /^<iq (type='result' id='f0'|id='f0' type='result')\/>$/);
    const throttled = replies.filter((r, i) => r === `<iq id='f${i}' type='error'>${THROTTLED}</iq>`);
    assert.equal(throttled.length, TOTAL - 1);
    assert.equal(await metric(proxy, "xmpp_guard_registration_refusals_total", { reason: "throttled" }), TOTAL - 1);
    assert.equal(await metric(proxy, "xmpp_guard_registrations_total"), 1);

    // Another IP (trusted PROXY header) still registers.
    const other = await open(lb, "192.0.2.77");
    try {
      other.write(legacy("o1", "otherip"));
      assert.match(await reply(other, "o1"), /^<iq (type='result' id='o1'|id='o1' type='result')\/>$/);
    } finally {
      other.destroy();
    }
    // The session logged in before the flood still works end to end.
    await bystander.send(xml("iq", { type: "get", to: "localhost", id: "ping1" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    const pong = await bystander.waitFor((el) => el.is("iq") && el.attrs.id === "ping1");
    assert.equal(pong.attrs.type, "result");

    // What the database holds: two throttle rows, the accounts learned, no junk.
    const path = join(dir, "state.sqlite");
    const store = SqliteStore.open(path, { readonly: true });
    try {
      assert.equal(store.countThrottles(), 2);
      assert.equal(store.countAccounts(), 3); // bystander (bind), flood0, otherip
      assert.equal(store.hasAccount("localhost", "flood1"), false);
    } finally {
      store.close();
    }
    const size = (f: string): number => {
      try {
        return statSync(f).size;
      } catch {
        return 0;
      }
    };
    const bytes = size(path) + size(`${path}-wal`);
    assert.ok(bytes < 512 * 1024, `state database and WAL are ${bytes} bytes after the flood`);
  });
});
