// TLS termination with real parts: a real Prosody in backend mode (no TLS, no
// certificate at all: it can only ever see plaintext) behind xmpp-guard, which
// answers STARTTLS on a c2s listener and runs direct TLS on a c2s-tls
// listener with certificates from gen-cert. Real clients in front verify the
// certificate: slixmpp (cafile) and @xmpp/client (NODE_EXTRA_CA_CERTS, child
// process). Then SNI, certificate reload, and bad input, each ending cleanly
// with a log line and a metric while an established session keeps working.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from "node:tls";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import type { Config } from "../../src/config/schema.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { writeSelfSigned } from "../../src/net/gen-cert.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";
import { eventually } from "../helpers/raw-client.js";

const SLIX_ECHO = fileURLToPath(new URL("../harness/slix_echo.py", import.meta.url));
const XMPPJS_TLS = fileURLToPath(new URL("../harness/xmppjs_tls.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return (m?.values ?? []).filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((n, x) => n + x.value, 0);
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string; result: Record<string, unknown> | null }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 45_000, killSignal: "SIGKILL", cwd: ROOT, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr, result: line ? (JSON.parse(line.slice(7)) as Record<string, unknown>) : null });
    });
  });
}

/** Accumulates what a socket delivers; `until` waits for a pattern (bounded). */
class Reader {
  text = "";
  closed = false;
  readonly #waiters = new Set<() => void>();
  readonly socket: Socket;
  constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (d: Buffer) => {
      this.text += d.toString("utf8");
      for (const w of this.#waiters) w();
    });
    socket.on("close", () => {
      this.closed = true;
      for (const w of this.#waiters) w();
    });
    socket.on("error", () => {});
  }
  until(pattern: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = this.text.match(pattern);
        if (m) {
          finish();
          resolve(m);
        } else if (this.closed) {
          finish();
          reject(new Error(`closed before ${pattern}; got ${JSON.stringify(this.text)}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${pattern} within ${timeoutMs} ms; got ${JSON.stringify(this.text)}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }
  closedWithin(timeoutMs = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      if (this.closed) return resolve(this.text);
      const timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms; got ${JSON.stringify(this.text)}`)), timeoutMs);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve(this.text);
      });
    });
  }
}

const header = (to: string): string =>
  `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${to}' version='1.0'>`;

describe("TLS termination in front of a real Prosody", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let config: Config;
  let starttlsPort: number;
  let directPort: number;
  const dir = mkdtempSync(join(tmpdir(), "xg-tls-it-"));
  const logLines: Array<Record<string, unknown>> = [];
  const open: Socket[] = [];
  let localhost: { certFile: string; keyFile: string };
  let btest: { certFile: string; keyFile: string };

  before(async () => {
    localhost = await writeSelfSigned(dir, ["localhost"]);
    btest = await writeSelfSigned(dir, ["b.test"]);
    prosody = await startProsody({ s2s: true, extraModules: ["dialback"] });
    for (const u of ["alice", "bob", "slix1", "slix2", "carol"]) await prosody.createUser(u, `${u}-pw`);
    const logger = createLogger("debug", { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
    config = configFromObject({
      listeners: [
        { name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` },
        { name: "c2s-tls", type: "c2s-tls", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` },
        { name: "s2s", type: "s2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.s2sPort!}` },
        { name: "s2s-tls", type: "s2s-tls", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.s2sPort!}` },
      ],
      tls: {
        certificates: [{ cert: localhost.certFile, key: localhost.keyFile }, { cert: btest.certFile, key: btest.keyFile }],
        handshake_timeout: 1,
      },
      admin: { listen: null },
    });
    proxy = await startProxy(config, { logger });
    starttlsPort = proxy.listenerAddress("c2s")!.port;
    directPort = proxy.listenerAddress("c2s-tls")!.port;
  });

  after(async () => {
    for (const s of open) s.destroy();
    await proxy?.shutdown(0);
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Direct TLS, SASL PLAIN, bind: an established session for "others keep working" checks. */
  async function directSession(user: string, caFile: string): Promise<{ reader: Reader; ping(): Promise<void> }> {
    const socket = tlsConnect({ host: "127.0.0.1", port: directPort, servername: "localhost", ca: readFileSync(caFile), ALPNProtocols: ["xmpp-client"] });
    open.push(socket);
    const reader = new Reader(socket);
    await once(socket, "secureConnect");
    socket.write(header("localhost"));
    await reader.until(/<\/stream:features>/);
    const plain = Buffer.from(`\0${user}\0${user}-pw`).toString("base64");
    socket.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
    await reader.until(/<success /);
    socket.write(header("localhost"));
    await reader.until(/<success [\s\S]*<\/stream:features>/);
    socket.write("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    await reader.until(/<jid>[^<]+<\/jid>/);
    let n = 0;
    return {
      reader,
      async ping() {
        const id = `p${++n}`;
        socket.write(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
        await reader.until(new RegExp(`<iq [^>]*id=['"]${id}['"][^>]*type=['"]result['"]|<iq [^>]*type=['"]result['"][^>]*id=['"]${id}['"]`));
      },
    };
  }

  it("Prosody has no certificate: whatever reaches it is plaintext", () => {
    assert.equal(prosody.certPath, undefined);
  });

  it("slixmpp through STARTTLS, verifying the gen-cert certificate: 50 messages delivered", async () => {
    const before = await metric(proxy, "xmpp_guard_tls_handshakes_total", { listener: "c2s" });
    const res = await run("/usr/bin/python3", [SLIX_ECHO, "--host", "127.0.0.1", "--port", String(starttlsPort), "--domain", "localhost",
      "--user1", "slix1", "--pass1", "slix1-pw", "--user2", "slix2", "--pass2", "slix2-pw", "-n", "50", "--tls", "starttls", "--cafile", localhost.certFile, "--timeout", "15"]);
    assert.ok(res.result, `no RESULT (exit ${res.code})\n${res.stdout}\n${res.stderr}`);
    assert.equal(res.result.error, undefined, JSON.stringify(res.result));
    assert.equal(res.result.received, 50);
    assert.equal(await metric(proxy, "xmpp_guard_tls_handshakes_total", { listener: "c2s" }) - before, 2);
  });

  it("slixmpp through direct TLS, verifying the certificate: 50 messages delivered", async () => {
    const before = await metric(proxy, "xmpp_guard_tls_handshakes_total", { listener: "c2s-tls" });
    const res = await run("/usr/bin/python3", [SLIX_ECHO, "--host", "127.0.0.1", "--port", String(directPort), "--domain", "localhost",
      "--user1", "slix1", "--pass1", "slix1-pw", "--user2", "slix2", "--pass2", "slix2-pw", "-n", "50", "--tls", "direct", "--cafile", localhost.certFile, "--timeout", "15"]);
    assert.ok(res.result, `no RESULT (exit ${res.code})\n${res.stdout}\n${res.stderr}`);
    assert.equal(res.result.error, undefined, JSON.stringify(res.result));
    assert.equal(res.result.received, 50);
    assert.equal(await metric(proxy, "xmpp_guard_tls_handshakes_total", { listener: "c2s-tls" }) - before, 2);
  });

  it("slixmpp refuses the proxy when it trusts another certificate (the verification is real)", async () => {
    const res = await run("/usr/bin/python3", [SLIX_ECHO, "--host", "127.0.0.1", "--port", String(directPort), "--domain", "localhost",
      "--user1", "slix1", "--pass1", "slix1-pw", "--user2", "slix2", "--pass2", "slix2-pw", "-n", "1", "--tls", "direct", "--cafile", btest.certFile, "--timeout", "4"]);
    assert.notEqual(res.code, 0);
    assert.equal(res.result?.received, 0);
  });

  for (const [mode, scheme] of [["STARTTLS", "xmpp"], ["direct TLS", "xmpps"]] as const) {
    it(`@xmpp/client through ${mode} (NODE_EXTRA_CA_CERTS): 20 messages delivered`, async () => {
      const port = scheme === "xmpp" ? starttlsPort : directPort;
      const res = await run(process.execPath, ["--import", "tsx", XMPPJS_TLS, `${scheme}://localhost:${port}`, "localhost", "alice", "alice-pw", "bob", "bob-pw", "20"],
        { NODE_EXTRA_CA_CERTS: localhost.certFile });
      assert.ok(res.result, `no RESULT (exit ${res.code})\n${res.stdout}\n${res.stderr}`);
      assert.equal(res.result.error, undefined, JSON.stringify(res.result));
      assert.equal(res.result.received, 20);
      assert.equal(res.result.secure, true);
    });
  }

  it("SNI: each name gets its own certificate; ALPN xmpp-client; no SNI gets the first", async () => {
    const subjects: Record<string, string | undefined> = {};
    for (const servername of ["localhost", "b.test", undefined]) {
      const s = tlsConnect({ host: "127.0.0.1", port: directPort, ...(servername ? { servername } : {}), ALPNProtocols: ["xmpp-client"], rejectUnauthorized: false });
      s.on("error", () => {});
      await once(s, "secureConnect");
      subjects[servername ?? "(none)"] = s.getPeerX509Certificate()?.subject;
      assert.equal(s.alpnProtocol, "xmpp-client");
      s.destroy();
    }
    assert.deepEqual(subjects, { localhost: "CN=localhost", "b.test": "CN=b.test", "(none)": "CN=localhost" });
    // The expiry gauge lists both certificates.
    assert.ok(await metric(proxy, "xmpp_guard_tls_certificate_expiry_timestamp_seconds", { name: "b.test" }) > Date.now() / 1000);
    assert.ok(await metric(proxy, "xmpp_guard_tls_certificate_expiry_timestamp_seconds", { name: "localhost" }) > Date.now() / 1000);
  });

  it("ALPN: s2s-tls speaks xmpp-server and refuses a client that offers only xmpp-client", async () => {
    const port = proxy.listenerAddress("s2s-tls")!.port;
    const good = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", ALPNProtocols: ["xmpp-server"], ca: readFileSync(localhost.certFile) });
    good.on("error", () => {});
    await once(good, "secureConnect");
    assert.equal(good.alpnProtocol, "xmpp-server");
    good.end();
    const before = await metric(proxy, "xmpp_guard_tls_handshake_failures_total", { listener: "s2s-tls", reason: "handshake" });
    const wrong = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", ALPNProtocols: ["xmpp-client"], rejectUnauthorized: false });
    const err = await new Promise<Error>((resolve) => wrong.once("error", resolve));
    assert.match(String((err as NodeJS.ErrnoException).code), /ALERT_NO_APPLICATION_PROTOCOL/);
    await eventually(async () => (await metric(proxy, "xmpp_guard_tls_handshake_failures_total", { listener: "s2s-tls", reason: "handshake" })) - before === 1);
  });

  it("certificate reload: new connections get the new certificate, an existing session keeps going; a broken file keeps the old one", async () => {
    const ca = `${localhost.certFile}.old`;
    copyFileSync(localhost.certFile, ca);
    const existing = await directSession("carol", ca);
    await existing.ping();
    const fingerprint = async (): Promise<string> => {
      const s = tlsConnect({ host: "127.0.0.1", port: directPort, servername: "localhost", rejectUnauthorized: false });
      s.on("error", () => {});
      await once(s, "secureConnect");
      const fp = s.getPeerX509Certificate()!.fingerprint256;
      s.destroy();
      return fp;
    };
    const oldFp = await fingerprint();
    await writeSelfSigned(dir, ["localhost"]); // same paths, new key and certificate
    const ok = await proxy.reload(config);
    assert.deepEqual(ok, { ok: true, errors: [] });
    const newFp = await fingerprint();
    assert.notEqual(newFp, oldFp);
    await existing.ping();

    // A broken certificate file: the reload is refused, the running certificate stays.
    const failedBefore = await metric(proxy, "xmpp_guard_config_reloads_total", { result: "error" });
    writeFileSync(btest.certFile, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    const refused = await proxy.reload(config);
    assert.equal(refused.ok, false);
    assert.match(refused.errors.join("\n"), new RegExp(`${btest.certFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: bad certificate`));
    assert.equal(await metric(proxy, "xmpp_guard_config_reloads_total", { result: "error" }) - failedBefore, 1);
    assert.ok(logLines.some((l) => l.code === "XPX_ERR_TLS_CERTIFICATES" && String(l.msg).includes(btest.certFile)));
    assert.equal(await fingerprint(), newFp);
    await existing.ping();
  });

  describe("bad input ends cleanly, with a log line and a metric, while another session keeps working", () => {
    let witness: { reader: Reader; ping(): Promise<void> };
    before(async () => {
      witness = await directSession("carol", localhost.certFile);
    });
    const failures = (listener: string, reason: string): Promise<number> => metric(proxy, "xmpp_guard_tls_handshake_failures_total", { listener, reason });
    const loggedCode = (code: string): boolean => logLines.some((l) => l.code === code);

    it("plaintext XMPP on the direct-TLS port: <policy-violation/> in plaintext", async () => {
      const before = await failures("c2s-tls", "tls_required");
      const s = netConnect({ host: "127.0.0.1", port: directPort });
      open.push(s);
      const r = new Reader(s);
      s.write(header("localhost"));
      const text = await r.closedWithin();
      assert.match(text, /<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
      assert.equal(await failures("c2s-tls", "tls_required") - before, 1);
      assert.ok(loggedCode("XPX_ERR_TLS_REQUIRED"));
      await witness.ping();
    });

    it("TLS garbage (a handshake record that is not a ClientHello) is closed without XML", async () => {
      const before = await failures("c2s-tls", "handshake");
      const s = netConnect({ host: "127.0.0.1", port: directPort });
      open.push(s);
      const r = new Reader(s);
      s.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x20]), Buffer.alloc(0x20, 0x41)]));
      const text = await r.closedWithin();
      assert.ok(!text.includes("<"), JSON.stringify(text));
      assert.equal(await failures("c2s-tls", "handshake") - before, 1);
      assert.ok(loggedCode("XPX_ERR_TLS_HANDSHAKE"));
      await witness.ping();
    });

    it("a client that stalls mid-handshake is cut off by tls.handshake_timeout", async () => {
      const before = await failures("c2s-tls", "timeout");
      const s = netConnect({ host: "127.0.0.1", port: directPort });
      open.push(s);
      const r = new Reader(s);
      s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])); // announces 512 bytes, sends 1
      await r.closedWithin(8000);
      assert.equal(await failures("c2s-tls", "timeout") - before, 1);
      assert.ok(loggedCode("XPX_ERR_TLS_HANDSHAKE_TIMEOUT"));
      await witness.ping();
    });

    it("a stanza before STARTTLS gets <policy-violation/>", async () => {
      const before = await failures("c2s", "tls_required");
      const s = netConnect({ host: "127.0.0.1", port: starttlsPort });
      open.push(s);
      const r = new Reader(s);
      s.write(header("localhost") + "<message to='bob@localhost'><body>early</body></message>");
      const text = await r.closedWithin();
      assert.match(text, /<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required\/><\/starttls>/);
      assert.match(text, /<stream:error><policy-violation /);
      assert.equal(await failures("c2s", "tls_required") - before, 1);
      await witness.ping();
    });

    it("STARTTLS twice: the second gets <failure/> and the stream ends", async () => {
      const before = await failures("c2s", "starttls_twice");
      const raw = netConnect({ host: "127.0.0.1", port: starttlsPort });
      open.push(raw);
      const r = new Reader(raw);
      raw.write(header("localhost"));
      await r.until(/<\/stream:features>/);
      raw.write(`<starttls xmlns='${NS_TLS}'/>`);
      await r.until(/<proceed /);
      raw.removeAllListeners("data");
      const s: TLSSocket = tlsConnect({ socket: raw, servername: "localhost", rejectUnauthorized: false });
      open.push(s);
      const tr = new Reader(s);
      await once(s, "secureConnect");
      s.write(header("localhost"));
      // Prosody's own features now (plaintext to it, so no STARTTLS among them).
      const features = await tr.until(/<stream:features>[\s\S]*?<\/stream:features>/);
      assert.ok(!features[0].includes(NS_TLS), features[0]);
      s.write(`<starttls xmlns='${NS_TLS}'/>`);
      const text = await tr.closedWithin();
      assert.match(text, /<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'\/><\/stream:stream>$/);
      assert.equal(await failures("c2s", "starttls_twice") - before, 1);
      assert.ok(loggedCode("XPX_ERR_STARTTLS_TWICE"));
      await witness.ping();
    });
  });

  it("s2s: STARTTLS at the proxy, Prosody's dialback offer passes through (EXTERNAL never), the session learns the peer domain", async () => {
    const port = proxy.listenerAddress("s2s")!.port;
    const s2sHeader = (): string =>
      "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' " +
      "xmlns:db='jabber:server:dialback' from='peer.test' to='localhost' version='1.0'>";
    const raw = netConnect({ host: "127.0.0.1", port });
    open.push(raw);
    const r = new Reader(raw);
    raw.write(s2sHeader());
    await r.until(/<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required\/><\/starttls><\/stream:features>/);
    raw.write(`<starttls xmlns='${NS_TLS}'/>`);
    await r.until(/<proceed /);
    raw.removeAllListeners("data");
    const s = tlsConnect({ socket: raw, servername: "localhost", ca: readFileSync(localhost.certFile) });
    open.push(s);
    const tr = new Reader(s);
    await once(s, "secureConnect");
    assert.equal(s.authorized, true);
    s.write(s2sHeader());
    const features = (await tr.until(/<stream:features[\s\S]*?<\/stream:features>/))[0];
    assert.match(features, /urn:xmpp:features:dialback/, features);
    assert.ok(!features.includes("EXTERNAL"), features);
    // Dialback passes through both ways: Prosody, authoritative for localhost,
    // answers a verification request at once (a made-up key: invalid).
    s.write("<db:verify from='peer.test' to='localhost' id='abc123'>0123456789abcdef</db:verify>");
    await tr.until(/<db:verify [^>]*type=['"]invalid['"]/);
    s.destroy();
    // The session's lines name the peer domain (the closing line is at info).
    await eventually(() => logLines.some((l) => l.listener === "s2s" && l.msg === "session closed"));
    const closed = logLines.find((l) => l.listener === "s2s" && l.msg === "session closed")!;
    assert.equal(closed.domain, "peer.test");
  });

  it("Prosody logged no errors", async () => {
    const bad = (await prosody.logText()).split("\n").filter((l) => /\terror\t/.test(l));
    assert.deepEqual(bad, []);
  });
});

describe("tls.upstream_tls: the proxy dials the upstream over TLS", () => {
  it("the client's bytes reach a TLS upstream unchanged, and its answer comes back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xg-up-tls-"));
    const pair = await writeSelfSigned(dir, ["upstream.test"]);
    let received = "";
    const upstream = createTlsServer({ cert: readFileSync(pair.certFile), key: readFileSync(pair.keyFile) }, (s) => {
      s.on("error", () => {});
      s.on("data", (d: Buffer) => {
        received += d.toString("utf8");
        if (received.includes(">")) s.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='u1' from='localhost' version='1.0'><stream:features/>");
      });
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${(upstream.address() as { port: number }).port}` }],
      tls: { upstream_tls: true },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    try {
      const c = netConnect({ host: "127.0.0.1", port: proxy.listenerAddress("c2s")!.port });
      const r = new Reader(c);
      c.write(header("localhost"));
      await r.until(/<stream:features\/>/);
      assert.equal(received, header("localhost"));
      c.destroy();
    } finally {
      await proxy.shutdown(0);
      upstream.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
