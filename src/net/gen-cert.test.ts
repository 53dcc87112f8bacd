import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createSecureContext, TLSSocket } from "node:tls";
import { CertificateStore } from "./certificates.js";
import { generateSelfSigned, writeSelfSigned } from "./gen-cert.js";

const dir = mkdtempSync(join(tmpdir(), "xg-gencert-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("the certificate names exactly the given domains, CN = first, and matches its key", () => {
  const { certPem, keyPem } = generateSelfSigned({ domains: ["example.test", "conference.example.test", "*.upload.example.test"], days: 10 });
  const cert = new X509Certificate(certPem);
  assert.equal(cert.subject, "CN=example.test");
  assert.equal(cert.issuer, "CN=example.test");
  assert.equal(cert.subjectAltName, "DNS:example.test, DNS:conference.example.test, DNS:*.upload.example.test");
  assert.ok(cert.checkPrivateKey(createPrivateKey(keyPem)));
  assert.ok(cert.verify(cert.publicKey), "self-signed");
  assert.equal(cert.ca, false);
  assert.deepEqual(cert.keyUsage?.sort(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"], "serverAuth and clientAuth (s2s)");
  const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
  assert.ok(days > 9.9 && days <= 10, `validTo ${cert.validTo}`);
  assert.ok(Date.parse(cert.validFrom) < Date.now());
  assert.equal(createPrivateKey(keyPem).asymmetricKeyDetails?.modulusLength, 2048);
  // Serials are random and positive.
  const other = new X509Certificate(generateSelfSigned({ domains: ["example.test"] }).certPem);
  assert.notEqual(other.serialNumber, cert.serialNumber);
  assert.ok(Number.parseInt(cert.serialNumber.slice(0, 2), 16) < 0x80);
});

test("a TLS client that trusts the certificate verifies it for each domain, and only those", async () => {
  const { certPem, keyPem } = generateSelfSigned({ domains: ["a.test", "b.test"] });
  const context = createSecureContext({ cert: certPem, key: keyPem });
  const server = createServer((sock) => {
    const t = new TLSSocket(sock, { isServer: true, secureContext: context });
    t.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  const check = (servername: string): Promise<string> =>
    new Promise((resolve) => {
      const c = connect({ port, host: "127.0.0.1", servername, ca: certPem }, () => {
        resolve(c.authorized ? "authorized" : `unauthorized ${String(c.authorizationError)}`);
        c.destroy();
      });
      c.on("error", (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`));
    });
  try {
    assert.equal(await check("a.test"), "authorized");
    assert.equal(await check("b.test"), "authorized");
    assert.equal(await check("c.test"), "error ERR_TLS_CERT_ALTNAME_INVALID");
  } finally {
    server.close();
  }
});

test("bad input is refused with a message", () => {
  assert.throws(() => generateSelfSigned({ domains: [] }), /at least one --domain/);
  assert.throws(() => generateSelfSigned({ domains: ["ok.test", "not a domain"] }), /not a DNS name: "not a domain"/);
  assert.throws(() => generateSelfSigned({ domains: ["../etc/passwd"] }), /not a DNS name/);
  assert.throws(() => generateSelfSigned({ domains: ["a.*.test"] }), /not a DNS name/);
  assert.throws(() => generateSelfSigned({ domains: ["a.test"], days: 0 }), /days must be a positive integer/);
});

test("writeSelfSigned writes <domain>.crt and a 0600 <domain>.key that the certificate store loads", async () => {
  const out = join(dir, "nested", "certs");
  const { certFile, keyFile } = await writeSelfSigned(out, ["Chat.Test", "muc.chat.test"]);
  assert.equal(certFile, join(out, "chat.test.crt"));
  assert.equal(keyFile, join(out, "chat.test.key"));
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  const store = await CertificateStore.load([{ cert: certFile, key: keyFile }]);
  assert.deepEqual(store.info()[0]!.names, ["chat.test", "muc.chat.test"]);

  // Regenerating over a key file someone made world-readable fixes its mode.
  const wild = join(out, "_.wild.test.key");
  writeFileSync(wild, "old", { mode: 0o644 });
  const again = await writeSelfSigned(out, ["*.wild.test"], { days: 2 });
  assert.equal(again.keyFile, wild);
  assert.equal(statSync(wild).mode & 0o777, 0o600);
  assert.match(readFileSync(wild, "utf8"), /BEGIN PRIVATE KEY/);
});
