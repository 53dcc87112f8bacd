// The XEP-0114 client against a scripted fake server on loopback: handshake
// digest, queue while offline, reconnect after the server drops it, the queue
// bound, and the config parser.
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { ComponentClient, parseComponentOptions, streamIdFromHeader, type ComponentOptions } from "./component.js";
import { componentHandshake } from "./watchers.js";

interface FakeConn {
  socket: Socket;
  text: () => string;
}

let server: Server;
let port = 0;
let acceptHandshake = true;
const conns: FakeConn[] = [];
const waiters: (() => void)[] = [];

function wake(): void {
  for (const w of waiters.splice(0)) w();
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((r) => {
      waiters.push(r);
      setTimeout(r, 20);
    });
  }
}

before(async () => {
  server = createServer((socket) => {
    let buf = "";
    const conn: FakeConn = { socket, text: () => buf };
    conns.push(conn);
    let id = 0;
    let answered = false;
    socket.on("data", (d) => {
      buf += d.toString("utf8");
      if (id === 0 && buf.includes("<stream:stream")) {
        id = conns.length;
        socket.write(`<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' id='sid-${id}' from='guard.localhost'>`);
      }
      const m = /<handshake>([0-9a-f]+)<\/handshake>/.exec(buf);
      if (m && !answered) {
        answered = true;
        if (acceptHandshake && m[1] === componentHandshake(`sid-${id}`, "s3cret")) socket.write("<handshake/>");
        else socket.end("<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>");
      }
      wake();
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});

after(async () => {
  for (const c of conns) c.socket.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

function options(): ComponentOptions {
  const r = parseComponentOptions({ jid: "guard.localhost", secret: "s3cret", upstream: `127.0.0.1:${port}` });
  assert.ok(r.ok && r.value);
  return r.value;
}

test("parses the component section and reports the bad key", () => {
  assert.deepEqual(parseComponentOptions(null), { ok: true, value: null, notes: [] });
  const missing = parseComponentOptions({ jid: "guard.example.org", upstream: "127.0.0.1:5347" });
  assert.equal(!missing.ok && missing.at, "secret");
  const badJid = parseComponentOptions({ jid: "a@b", secret: "x", upstream: "127.0.0.1:5347" });
  assert.equal(!badJid.ok && badJid.at, "jid");
  const badUp = parseComponentOptions({ jid: "g.example.org", secret: "x", upstream: "nope" });
  assert.equal(!badUp.ok && badUp.at, "upstream");
  const unknown = parseComponentOptions({ jid: "g.example.org", secret: "x", upstream: "127.0.0.1:1", port: 1 });
  assert.equal(!unknown.ok && unknown.at, "port");
});

test("reads the stream id after an XML declaration", () => {
  const b = Buffer.from(`<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' id="abc&amp;1">`);
  assert.equal(streamIdFromHeader(b, 0, b.length), "abc&1");
});

test("handshakes, sends queued stanzas, reconnects after a drop, and bounds the queue", async () => {
  const sent: string[] = [];
  const dropped: string[] = [];
  let online = 0;
  const client = new ComponentClient({
    options: options(),
    maxQueue: 2,
    minBackoffMs: 10,
    maxBackoffMs: 50,
    events: { onSent: (s) => sent.push(s), onDropped: (s) => dropped.push(s), onOnline: () => online++ },
  });
  // Queued before the connection exists; the bound drops the oldest.
  assert.equal(client.send("<message id='1'/>"), true);
  assert.equal(client.send("<message id='2'/>"), true);
  assert.equal(client.send("<message id='3'/>"), false);
  assert.deepEqual(dropped, ["<message id='1'/>"]);
  client.start();
  await until(() => online === 1 && sent.length === 2, "first connection");
  const first = conns.at(-1)!;
  await until(() => first.text().includes("<message id='3'/>"), "queued messages at the server");
  assert.match(first.text(), /^<\?xml version='1.0'\?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http:\/\/etherx.jabber.org\/streams' to='guard.localhost'>/);
  assert.match(first.text(), new RegExp(`<handshake>${componentHandshake(`sid-${conns.length}`, "s3cret")}</handshake><message id='2'/><message id='3'/>`));
  // The server goes away; the client comes back by itself.
  const before = conns.length;
  first.socket.destroy();
  await until(() => online === 2, "reconnect");
  assert.equal(conns.length, before + 1);
  client.send("<message id='4'/>");
  await until(() => conns.at(-1)!.text().includes("<message id='4'/>"), "message after reconnect");
  await client.close();
  assert.equal(client.state, "closed");
});

test("a refused handshake is retried with backoff, nothing is sent", async () => {
  acceptHandshake = false;
  const reasons: string[] = [];
  const client = new ComponentClient({ options: options(), minBackoffMs: 10, maxBackoffMs: 20, events: { onOffline: (r) => reasons.push(r) } });
  client.start();
  client.send("<message id='x'/>");
  await until(() => reasons.length >= 2, "two failed attempts");
  assert.match(reasons[0]!, /stream error from server: <stream:error><not-authorized/);
  assert.equal(client.queued, 1);
  assert.ok(conns.every((c) => !c.text().includes("<message id='x'/>")));
  await client.close();
  acceptHandshake = true;
});
