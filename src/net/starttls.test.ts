import { test, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect, createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { checkServerIdentity, connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import { DEFAULT_LIMITS } from "../xml/framer.js";
import { CertificateStore } from "./certificates.js";
import { generateSelfSigned } from "./gen-cert.js";
import { NS_TLS } from "../xml/stream-features.js";
import { negotiateStartTls, STARTTLS_PROCEED, type StartTlsOptions, type StartTlsResult } from "./starttls.js";

const dir = mkdtempSync(join(tmpdir(), "xg-starttls-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function writePair(name: string, domains: string[]): { cert: string; key: string; certPem: string; keyPem: string } {
  const pair = generateSelfSigned({ domains });
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, pair.certPem);
  writeFileSync(key, pair.keyPem);
  return { cert, key, ...pair };
}

const A = writePair("a", ["a.test"]);
const B = writePair("b", ["b.test"]);
const PEER = generateSelfSigned({ domains: ["peer.test"] });
// a.test first: it is the fallback, so b.test being served proves the choice.
const store = await CertificateStore.load([A, B]);

const STARTTLS = `<starttls xmlns='${NS_TLS}'/>`;
const header = (to: string, extra = " version='1.0'", ns = "jabber:client"): string =>
  `<?xml version='1.0'?><stream:stream xmlns='${ns}' xmlns:stream='http://etherx.jabber.org/streams' to='${to}'${extra}>`;

interface Harness {
  port: number;
  /** The outcome for the next accepted connection, in accept order. */
  next(): Promise<{ result: StartTlsResult; elapsed: number }>;
  close(): void;
}

async function listen(overrides: Partial<StartTlsOptions> = {}, onResult?: (r: StartTlsResult, sock: Socket) => void): Promise<Harness> {
  const queue: Array<Promise<{ result: StartTlsResult; elapsed: number }>> = [];
  const waiters: Array<(p: Promise<{ result: StartTlsResult; elapsed: number }>) => void> = [];
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    const started = Date.now();
    const p = negotiateStartTls(sock, {
      contentNs: "jabber:client",
      mode: "required",
      store,
      limits: DEFAULT_LIMITS,
      handshakeTimeoutMs: 2000,
      headerTimeoutMs: 2000,
      ...overrides,
    }).then((result) => {
      // Once wrapped, only the TLS socket may be destroyed (see serverHandshake).
      if (result.kind === "tls") {
        sockets.delete(sock);
        sockets.add(result.socket);
      }
      onResult?.(result, sock);
      return { result, elapsed: Date.now() - started };
    });
    const w = waiters.shift();
    if (w) w(p);
    else queue.push(p);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    next: () => queue.shift() ?? new Promise((r) => waiters.push(r)).then((p) => p as Promise<{ result: StartTlsResult; elapsed: number }>),
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

async function dial(port: number): Promise<Socket> {
  const sock = netConnect({ port, host: "127.0.0.1" });
  sock.on("error", () => {});
  await once(sock, "connect");
  return sock;
}

/** Read until `marker` has arrived, then stop reading (the rest may be TLS). */
function readUntil(sock: Socket, marker: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => done(new Error(`no ${JSON.stringify(marker)} within ${timeoutMs} ms; got ${JSON.stringify(text)}`)), timeoutMs);
    const onData = (d: Buffer): void => {
      text += d.toString("latin1");
      if (text.includes(marker)) done(null);
    };
    const onClose = (): void => done(new Error(`closed before ${JSON.stringify(marker)}; got ${JSON.stringify(text)}`));
    const done = (err: Error | null): void => {
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("close", onClose);
      sock.pause();
      if (err) reject(err);
      else resolve(text);
    };
    sock.on("data", onData);
    sock.once("close", onClose);
    sock.resume();
  });
}

/** Everything until the connection closes. */
function readToClose(sock: Socket, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms; got ${JSON.stringify(text)}`)), timeoutMs);
    sock.on("data", (d: Buffer) => (text += d.toString("latin1")));
    sock.once("close", () => {
      clearTimeout(timer);
      resolve(text);
    });
    sock.resume();
  });
}

/** Read exactly n bytes from a socket nobody has read yet. */
function readBytes(sock: TLSSocket, n: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let len = 0;
    const timer = setTimeout(() => reject(new Error(`got ${len} of ${n} bytes`)), timeoutMs);
    sock.on("data", (d: Buffer) => {
      chunks.push(d);
      len += d.length;
      if (len >= n) {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks).toString("utf8"));
      }
    });
  });
}

const trusting = (servername: string | undefined): ConnectionOptions => ({
  ca: [A.certPem, B.certPem],
  ...(servername ? { servername } : {}),
  // Without SNI, check the name the stream asked for, as an XMPP client does.
  checkServerIdentity: (_host, cert) => checkServerIdentity(servername ?? "b.test", cert),
});

const FEATURES_REQUIRED = `<stream:features><starttls xmlns='${NS_TLS}'><required/></starttls></stream:features>`;

test("happy path: header, features, <proceed/>, TLS with the stream's `to` certificate, restarted stream intact", { timeout: 10_000 }, async () => {
  const h = await listen();
  try {
    const raw = await dial(h.port);
    raw.write(header("b.test"));
    const answer = await readUntil(raw, "</stream:features>");
    assert.match(answer, /^<\?xml version='1.0'\?><stream:stream xmlns='jabber:client' xmlns:stream='http:\/\/etherx.jabber.org\/streams' id='[0-9a-f]{16}' from='b.test' version='1.0'>/);
    assert.ok(answer.endsWith(FEATURES_REQUIRED), answer);
    raw.write(STARTTLS);
    assert.equal(await readUntil(raw, "/>"), STARTTLS_PROCEED);

    const client = tlsConnect({ socket: raw, ...trusting(undefined) });
    await once(client, "secureConnect");
    assert.equal(client.authorized, true);
    assert.equal(client.getPeerX509Certificate()!.subject, "CN=b.test", "no SNI: the stream's to picks the certificate");
    // The client restarts at once, before the session reads anything.
    const restart = header("b.test");
    client.write(restart);

    const { result } = await h.next();
    assert.equal(result.kind, "tls");
    if (result.kind !== "tls") return;
    assert.equal(result.servername, undefined);
    assert.equal(result.streamTo, "b.test");
    assert.equal(await readBytes(result.socket, restart.length), restart);
    // And the other way round.
    result.socket.write("<stream:stream>");
    assert.equal(await readUntil(client as unknown as Socket, ">"), "<stream:stream>");
    client.destroy();
  } finally {
    h.close();
  }
});

test("SNI wins over the stream's `to`", { timeout: 10_000 }, async () => {
  const h = await listen();
  try {
    const raw = await dial(h.port);
    raw.write(header("b.test"));
    await readUntil(raw, "</stream:features>");
    raw.write(STARTTLS);
    await readUntil(raw, "/>");
    const client = tlsConnect({ socket: raw, ...trusting("a.test") });
    await once(client, "secureConnect");
    assert.equal(client.getPeerX509Certificate()!.subject, "CN=a.test");
    const { result } = await h.next();
    assert.equal(result.kind === "tls" && result.servername, "a.test");
    client.destroy();
  } finally {
    h.close();
  }
});

/**
 * A TLS client whose first write (the ClientHello) goes out in the SAME TCP
 * write as `prefix`; server bytes after <proceed/> are fed to it.
 */
function pipelinedClient(raw: Socket, prefix: string, options: ConnectionOptions): TLSSocket {
  let first = true;
  let proceeded = false;
  let seen = Buffer.alloc(0);
  const wire = new Duplex({
    write(data: Buffer, _enc, cb): void {
      if (first) {
        first = false;
        raw.write(Buffer.concat([Buffer.from(prefix), data]), cb);
      } else {
        raw.write(data, cb);
      }
    },
    read(): void {},
  });
  raw.on("data", (d: Buffer) => {
    if (proceeded) {
      wire.push(d);
      return;
    }
    seen = Buffer.concat([seen, d]);
    const at = seen.indexOf(STARTTLS_PROCEED);
    if (at < 0) return;
    proceeded = true;
    const rest = seen.subarray(at + STARTTLS_PROCEED.length);
    if (rest.length > 0) wire.push(rest);
  });
  raw.once("close", () => wire.push(null));
  return tlsConnect({ socket: wire, ...options });
}

test("<starttls/> and the ClientHello in one write: no byte lost", { timeout: 10_000 }, async () => {
  const h = await listen();
  try {
    const raw = await dial(h.port);
    raw.write(header("b.test"));
    await readUntil(raw, "</stream:features>");
    raw.resume();
    const client = pipelinedClient(raw, STARTTLS, trusting("b.test"));
    await once(client, "secureConnect");
    assert.equal(client.authorized, true);
    const restart = header("b.test");
    client.write(restart);
    const { result } = await h.next();
    assert.equal(result.kind, "tls");
    if (result.kind === "tls") assert.equal(await readBytes(result.socket, restart.length), restart);
    client.destroy();
  } finally {
    h.close();
  }
});

test("fully pipelined: header, <starttls/> and ClientHello in one write, delivered as `initial`", { timeout: 10_000 }, async () => {
  // The listener read the first chunk (as after a PROXY header) and hands it over.
  const results: Array<Promise<StartTlsResult>> = [];
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    sock.once("data", (first: Buffer) => {
      sock.pause();
      results.push(negotiateStartTls(sock, { contentNs: "jabber:client", mode: "required", store, limits: DEFAULT_LIMITS, handshakeTimeoutMs: 2000, headerTimeoutMs: 2000, initial: first }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const raw = await dial((server.address() as AddressInfo).port);
    const client = pipelinedClient(raw, header("b.test") + STARTTLS, trusting(undefined));
    await once(client, "secureConnect");
    assert.equal(client.getPeerX509Certificate()!.subject, "CN=b.test");
    client.write("<x/>");
    const result = await results[0]!;
    assert.equal(result.kind, "tls");
    if (result.kind === "tls") {
      assert.equal(await readBytes(result.socket, 4), "<x/>");
      result.socket.destroy();
    }
    client.destroy();
  } finally {
    server.close();
  }
});

test("header and <starttls/> split byte by byte", { timeout: 10_000 }, async () => {
  const h = await listen();
  try {
    const raw = await dial(h.port);
    raw.setNoDelay(true);
    const text = header("b.test");
    for (let i = 0; i < text.length; i += 7) {
      raw.write(text.slice(i, i + 7));
      await new Promise((r) => setImmediate(r));
    }
    await readUntil(raw, "</stream:features>");
    for (const ch of ` \n${STARTTLS}`) {
      raw.write(ch);
      await new Promise((r) => setImmediate(r));
    }
    await readUntil(raw, "/>");
    const client = tlsConnect({ socket: raw, ...trusting("b.test") });
    await once(client, "secureConnect");
    assert.equal((await h.next()).result.kind, "tls");
    client.destroy();
  } finally {
    h.close();
  }
});

test("a stanza before STARTTLS (required) gets <policy-violation/> and the connection closes", { timeout: 10_000 }, async () => {
  const h = await listen();
  try {
    for (const early of ["<message to='x@b.test'><body>hi</body></message>", "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"]) {
      const raw = await dial(h.port);
      raw.write(header("b.test") + early);
      const text = await readToClose(raw);
      assert.ok(text.includes(FEATURES_REQUIRED), text);
      assert.ok(text.endsWith(
        "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" +
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>TLS is required before anything else</text></stream:error></stream:stream>",
      ), text);
      const { result } = await h.next();
      assert.deepEqual(result, { kind: "error", code: "XPX_ERR_TLS_REQUIRED", condition: "policy-violation", detail: `<${early.slice(1, early.search(/[ >]/))}> sent before STARTTLS` });
    }
  } finally {
    h.close();
  }
});

test("optional: no <required/>; a pre-1.0 stream passes in plaintext untouched; stanzas are still refused", { timeout: 10_000 }, async () => {
  const h = await listen({ mode: "optional" }, (result, sock) => {
    if (result.kind === "plain") sock.write("MARK");
  });
  try {
    const raw = await dial(h.port);
    raw.write(header("b.test"));
    const answer = await readUntil(raw, "</stream:features>");
    assert.ok(answer.endsWith(`<stream:features><starttls xmlns='${NS_TLS}'></starttls></stream:features>`), answer);
    raw.write(STARTTLS);
    await readUntil(raw, "/>");
    const client = tlsConnect({ socket: raw, ...trusting("b.test") });
    await once(client, "secureConnect");
    assert.equal((await h.next()).result.kind, "tls");
    client.destroy();

    // Pre-1.0 (no version): nothing is answered, every byte is returned.
    const legacy = await dial(h.port);
    const sent = header("b.test", "") + "<db:result from='old.test' to='b.test'>abc</db:result>";
    legacy.write(sent);
    const plain = await h.next();
    assert.deepEqual(plain.result, { kind: "plain", initial: Buffer.from(sent) });
    assert.equal(await readUntil(legacy, "MARK"), "MARK", "the client got nothing from negotiateStartTls");
    legacy.destroy();

    // Our features offer STARTTLS alone, so TLS is mandatory anyway (RFC 6120 §5.3.1).
    const decliner = await dial(h.port);
    decliner.write(header("b.test") + "<iq type='get' id='1'/>");
    assert.match(await readToClose(decliner), /<policy-violation /);
    assert.equal((await h.next()).result.kind, "error");
  } finally {
    h.close();
  }
});

test("required: a pre-1.0 stream cannot negotiate STARTTLS: <unsupported-version/>", { timeout: 10_000 }, async () => {
  const h = await listen();
  try {
    const raw = await dial(h.port);
    raw.write(header("b.test", ""));
    assert.match(await readToClose(raw), /<stream:error><unsupported-version /);
    const { result } = await h.next();
    assert.equal(result.kind === "error" && result.code, "XPX_ERR_STREAM_VERSION");
  } finally {
    h.close();
  }
});

test("bad plaintext: garbage, a wrong namespace, a TLS ClientHello on the STARTTLS port", { timeout: 10_000 }, async () => {
  const h = await listen();
  try {
    const garbage = await dial(h.port);
    garbage.write("GET / HTTP/1.1\r\nHost: b.test\r\n\r\n");
    const text = await readToClose(garbage);
    assert.match(text, /^<\?xml version='1.0'\?><stream:stream [^>]*><stream:error><(not-well-formed|bad-format) /);
    const g = (await h.next()).result;
    assert.equal(g.kind, "error");

    const wrongNs = await dial(h.port);
    wrongNs.write(header("b.test", " version='1.0'", "jabber:server"));
    assert.match(await readToClose(wrongNs), /from='b.test'.*<invalid-namespace /);
    const w = (await h.next()).result;
    assert.equal(w.kind === "error" && w.code, "XPX_ERR_STREAM_HEADER_INVALID");

    // A direct-TLS client on the STARTTLS port.
    const tlsFirst = tlsConnect({ port: h.port, host: "127.0.0.1", rejectUnauthorized: false });
    tlsFirst.on("error", () => {});
    await new Promise((r) => tlsFirst.once("close", r));
    const t = (await h.next()).result;
    assert.equal(t.kind, "error");
  } finally {
    h.close();
  }
});

test("TLS garbage after <proceed/> ends with a handshake error and no XML", { timeout: 10_000 }, async () => {
  const h = await listen();
  try {
    const raw = await dial(h.port);
    raw.write(header("b.test"));
    await readUntil(raw, "</stream:features>");
    raw.write(STARTTLS);
    await readUntil(raw, "/>");
    raw.write("<this is not TLS at all, just more XML/>\r\n");
    const after = await readToClose(raw);
    assert.ok(!after.includes("<"), `nothing readable after <proceed/> (RFC 6120 §5.4.3.2), got ${JSON.stringify(after)}`);
    const { result } = await h.next();
    assert.equal(result.kind, "error");
    if (result.kind === "error") {
      assert.equal(result.code, "XPX_ERR_TLS_HANDSHAKE");
      assert.equal(result.condition, null);
      assert.match(result.detail, /^ERR_SSL_/);
    }
  } finally {
    h.close();
  }
});

test("a client that stalls mid-handshake is cut off by the handshake timeout", { timeout: 10_000 }, async () => {
  const h = await listen({ handshakeTimeoutMs: 200 });
  try {
    const raw = await dial(h.port);
    raw.write(header("b.test"));
    await readUntil(raw, "</stream:features>");
    raw.write(STARTTLS);
    await readUntil(raw, "/>");
    // A TLS record header announcing 512 bytes, then silence.
    raw.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    await readToClose(raw);
    // The 10 s test timeout is the bound; no timing threshold here.
    const { result } = await h.next();
    assert.equal(result.kind === "error" && result.code, "XPX_ERR_TLS_HANDSHAKE_TIMEOUT");
  } finally {
    h.close();
  }
});

test("timeouts before TLS: no header, then no <starttls/>", { timeout: 10_000 }, async () => {
  const h = await listen({ headerTimeoutMs: 150 });
  try {
    const silent = await dial(h.port);
    assert.match(await readToClose(silent), /^<\?xml version='1.0'\?><stream:stream [^>]*><stream:error><connection-timeout /);
    assert.equal((await h.next()).result.kind === "error", true);

    const slow = await dial(h.port);
    slow.write(header("b.test"));
    const text = await readToClose(slow);
    assert.ok(text.includes(FEATURES_REQUIRED + "<stream:error><connection-timeout "), text);
    const { result } = await h.next();
    assert.equal(result.kind === "error" && result.code, "XPX_ERR_STARTTLS_TIMEOUT");
  } finally {
    h.close();
  }
});

test("a peer that closes its stream or the connection before STARTTLS", { timeout: 10_000 }, async () => {
  const h = await listen();
  try {
    const polite = await dial(h.port);
    polite.write(header("b.test"));
    await readUntil(polite, "</stream:features>");
    polite.write("</stream:stream>");
    assert.equal(await readToClose(polite), "</stream:stream>");
    assert.equal((await h.next()).result.kind, "closed");

    const rude = await dial(h.port);
    rude.write(header("b.test").slice(0, 30));
    rude.end();
    await readToClose(rude);
    assert.equal((await h.next()).result.kind, "closed");
  } finally {
    h.close();
  }
});

test("s2s: jabber:server stream, peer certificate requested, stream `from` reported", { timeout: 10_000 }, async () => {
  const h = await listen({ contentNs: "jabber:server", requestCert: true });
  try {
    const raw = await dial(h.port);
    raw.write(header("b.test", " from='peer.test' version='1.0' xmlns:db='jabber:server:dialback'", "jabber:server"));
    const answer = await readUntil(raw, "</stream:features>");
    assert.match(answer, /<stream:stream xmlns='jabber:server' /);
    raw.write(STARTTLS);
    await readUntil(raw, "/>");
    const client = tlsConnect({ socket: raw, ...trusting("b.test"), cert: PEER.certPem, key: PEER.keyPem });
    await once(client, "secureConnect");
    const { result } = await h.next();
    assert.equal(result.kind, "tls");
    if (result.kind === "tls") {
      assert.equal(result.streamFrom, "peer.test");
      assert.equal(result.socket.getPeerX509Certificate()?.subject, "CN=peer.test");
    }
    client.destroy();
  } finally {
    h.close();
  }
});
