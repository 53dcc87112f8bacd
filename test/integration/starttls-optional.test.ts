// `tls.starttls: optional` really is optional: in front of a real Prosody
// that has no TLS at all, a client that ignores the offer logs in and chats
// in plaintext, and one that takes it gets TLS from the proxy (certificate
// verified) and chats too; both with slixmpp. The plaintext client sees the
// server's own features with a STARTTLS offer (no <required/>) added.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { writeSelfSigned } from "../../src/net/gen-cert.js";
import { withStartTls } from "../../src/xml/stream-features.js";
import { startProsody, type ProsodyInstance } from "../helpers/prosody.js";

const SLIX_ECHO = fileURLToPath(new URL("../harness/slix_echo.py", import.meta.url));

function slix(port: number, tls: "none" | "starttls", cafile: string): Promise<{ stdout: string; result: Record<string, unknown> | null }> {
  return new Promise((resolve) => {
    execFile("/usr/bin/python3", [SLIX_ECHO, "--host", "127.0.0.1", "--port", String(port), "--domain", "localhost",
      "--user1", "slix1", "--pass1", "slix1-pw", "--user2", "slix2", "--pass2", "slix2-pw", "-n", "20", "--tls", tls,
      ...(tls === "starttls" ? ["--cafile", cafile] : []), "--timeout", "15"], { timeout: 45_000 }, (_err, stdout, stderr) => {
      const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
      resolve({ stdout: stdout + stderr, result: line ? (JSON.parse(line.slice(7)) as Record<string, unknown>) : null });
    });
  });
}

describe("tls.starttls: optional in front of a real Prosody", () => {
  let prosody: ProsodyInstance;
  let proxy: RunningProxy;
  let port: number;
  let cert: { certFile: string; keyFile: string };
  const dir = mkdtempSync(join(tmpdir(), "xg-optional-"));

  before(async () => {
    cert = await writeSelfSigned(dir, ["localhost"]);
    prosody = await startProsody();
    for (const u of ["slix1", "slix2"]) await prosody.createUser(u, `${u}-pw`);
    proxy = await startProxy(configFromObject({
      listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${prosody.port}` }],
      tls: { certificates: [{ cert: cert.certFile, key: cert.keyFile }], starttls: "optional" },
      admin: { listen: null },
    }), { logger: createLogger("silent") });
    port = proxy.listenerAddress("c2s")!.port;
  });

  after(async () => {
    await proxy?.shutdown(0);
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the plaintext client sees the server's features with an optional STARTTLS added", async () => {
    const s = connect({ host: "127.0.0.1", port });
    let text = "";
    s.on("data", (d: Buffer) => (text += d.toString()));
    s.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>");
    for (let i = 0; i < 100 && !text.includes("</stream:features>"); i++) await new Promise((r) => setTimeout(r, 50));
    s.destroy();
    assert.match(text, /<stream:features[^>]*><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'\/>/);
    assert.doesNotMatch(text, /<required\/>/);
    assert.match(text, /<mechanism>PLAIN<\/mechanism>/, "the server's own features come through");
  });

  it("a client that ignores the offer chats in plaintext", async () => {
    const r = await slix(port, "none", cert.certFile);
    assert.ok(r.result, r.stdout);
    assert.equal(r.result["error"], undefined, JSON.stringify(r.result));
    assert.equal(r.result["received"], 20);
  });

  it("a client that takes it gets TLS from the proxy (certificate verified) and chats", async () => {
    const m = async (): Promise<number> => ((await proxy.metrics.registry.getSingleMetric("xmpp_guard_tls_handshakes_total")?.get())?.values ?? []).reduce((n, v) => n + v.value, 0);
    const before = await m();
    const r = await slix(port, "starttls", cert.certFile);
    assert.ok(r.result, r.stdout);
    assert.equal(r.result["error"], undefined, JSON.stringify(r.result));
    assert.equal(r.result["received"], 20);
    assert.equal(await m() - before, 2, "both clients' TLS was the proxy's");
    // Both sessions are TLS sessions of the proxy now.
    assert.ok(proxy.sessions().every((s) => s.tls !== null));
  });

  it("withStartTls: any features element, empty or not", () => {
    assert.equal(withStartTls("<stream:features><a/></stream:features>"), "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><a/></stream:features>");
    assert.equal(withStartTls("<s:features xmlns:s='http://etherx.jabber.org/streams'/>"), "<s:features xmlns:s='http://etherx.jabber.org/streams'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></s:features>");
  });
});
