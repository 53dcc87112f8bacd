import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, TLSSocket } from "node:tls";
import forge from "node-forge";
import { CertificateError, CertificateStore, type CertificateFiles } from "./certificates.js";
import { generateSelfSigned } from "./gen-cert.js";

const dir = mkdtempSync(join(tmpdir(), "xg-certs-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function writePair(name: string, domains: string[], days = 30): CertificateFiles & { certPem: string } {
  const { certPem, keyPem } = generateSelfSigned({ domains, days });
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, certPem);
  writeFileSync(key, keyPem);
  return { cert, key, certPem };
}

const A = writePair("a", ["a.test", "*.a.test"]);
const B = writePair("b", ["b.test"]);

/** A TLS server on 127.0.0.1 that picks certificates from `store` like the proxy does. */
async function listenTls(store: CertificateStore): Promise<{ port: number; close(): void }> {
  const server = createServer((sock) => {
    const tlsSock = new TLSSocket(sock, { isServer: true, secureContext: store.contextFor(undefined), SNICallback: store.sniCallback });
    tlsSock.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

/** The leaf certificate a TLS client sees when it asks for `servername` (undefined: no SNI). */
async function servedCertificate(store: CertificateStore, servername?: string): Promise<X509Certificate> {
  const server = await listenTls(store);
  try {
    return await new Promise<X509Certificate>((resolve, reject) => {
      const client = connect({ port: server.port, host: "127.0.0.1", rejectUnauthorized: false, ...(servername ? { servername } : {}) }, () => {
        const cert = client.getPeerX509Certificate()!;
        client.destroy();
        resolve(cert);
      });
      client.on("error", reject);
    });
  } finally {
    server.close();
  }
}

test("SNI selection: exact, wildcard (one label), case-insensitive, fallback to the first certificate", async () => {
  const store = await CertificateStore.load([B, A]);
  const ctxA = store.contextFor("a.test");
  const ctxB = store.contextFor("b.test");
  assert.notEqual(ctxA, ctxB);
  assert.equal(store.contextFor("A.Test"), ctxA);
  assert.equal(store.contextFor("a.test."), ctxA);
  assert.equal(store.contextFor("chat.a.test"), ctxA);
  assert.equal(store.match("x.chat.a.test"), undefined, "a wildcard covers exactly one label");
  assert.equal(store.contextFor("x.chat.a.test"), ctxB, "fallback is the first configured certificate");
  assert.equal(store.contextFor(undefined), ctxB);
  assert.equal(store.contextFor("unknown.test"), ctxB);
  assert.equal(store.covers("upload.a.test"), true);
  assert.equal(store.covers("test"), false);

  // And on the wire, through the SNI callback.
  assert.equal((await servedCertificate(store, "muc.a.test")).subject, "CN=a.test");
  assert.equal((await servedCertificate(store, "b.test")).subject, "CN=b.test");
  assert.equal((await servedCertificate(store, "nobody.example")).subject, "CN=b.test");
  assert.equal((await servedCertificate(store)).subject, "CN=b.test");
});

test("info(): names from subjectAltName and expiry", async () => {
  const store = await CertificateStore.load([A, B]);
  const info = store.info();
  assert.deepEqual(info.map((i) => ({ file: i.file, names: i.names })), [
    { file: A.cert, names: ["a.test", "*.a.test"] },
    { file: B.cert, names: ["b.test"] },
  ]);
  const days = (info[0]!.notAfter.getTime() - Date.now()) / 86_400_000;
  assert.ok(days > 29 && days <= 30, `notAfter ${info[0]!.notAfter.toISOString()}`);
  // A copy: callers cannot change the store.
  info[0]!.names.push("evil.test");
  assert.equal(store.covers("evil.test"), false);
});

test("load lists every broken file with its reason", async () => {
  const garbage = join(dir, "garbage.crt");
  writeFileSync(garbage, "hello, not a certificate\n");
  const badKey = join(dir, "bad.key");
  writeFileSync(badKey, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  const misordered = join(dir, "misordered.crt");
  writeFileSync(misordered, A.certPem + B.certPem);
  const missing = join(dir, "missing.crt");

  await assert.rejects(
    CertificateStore.load([
      { cert: missing, key: A.key },
      { cert: garbage, key: A.key },
      { cert: A.cert, key: B.key },
      { cert: B.cert, key: badKey },
      { cert: misordered, key: A.key },
    ]),
    (err: unknown) => {
      assert.ok(err instanceof CertificateError);
      const byFile = err.problems.map((p) => `${p.file}: ${p.message}`);
      assert.deepEqual(byFile, [
        `${missing}: no such file`,
        `${garbage}: no PEM certificate found`,
        `${B.key}: private key does not match ${A.cert}`,
        byFile[3]!,
        `${misordered}: certificate 2 in the chain did not issue certificate 1 (leaf first, then intermediates)`,
      ]);
      assert.match(byFile[3]!, new RegExp(`^${badKey}: bad private key: `));
      // One message naming every file, for the log line.
      for (const f of [missing, garbage, B.key, badKey, misordered]) assert.ok(err.message.includes(f));
      return true;
    },
  );
  await assert.rejects(CertificateStore.load([]), CertificateError);
});

/** A CA and a leaf it signed, with node-forge (keys from node:crypto for speed). */
function issuedChain(leafName: string): { caPem: string; leafPem: string; leafKeyPem: string } {
  const keys = (): { publicKey: string; privateKey: string } =>
    generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
  const caKeys = keys();
  const leafKeys = keys();
  const make = (subject: string, publicKey: string, serial: string, ext: object[]): forge.pki.Certificate => {
    const c = forge.pki.createCertificate();
    c.publicKey = forge.pki.publicKeyFromPem(publicKey);
    c.serialNumber = serial;
    c.validity.notBefore = new Date(Date.now() - 60_000);
    c.validity.notAfter = new Date(Date.now() + 86_400_000);
    c.setSubject([{ name: "commonName", value: subject }]);
    c.setIssuer([{ name: "commonName", value: "Test CA" }]);
    c.setExtensions(ext);
    c.sign(forge.pki.privateKeyFromPem(caKeys.privateKey), forge.md.sha256.create());
    return c;
  };
  const ca = make("Test CA", caKeys.publicKey, "01", [{ name: "basicConstraints", cA: true, critical: true }, { name: "keyUsage", keyCertSign: true, critical: true }]);
  const leaf = make(leafName, leafKeys.publicKey, "02", [{ name: "subjectAltName", altNames: [{ type: 2, value: leafName }] }]);
  return { caPem: forge.pki.certificateToPem(ca), leafPem: forge.pki.certificateToPem(leaf), leafKeyPem: leafKeys.privateKey };
}

test("a chain file (leaf, then intermediate) is served whole; a reversed one is refused", async () => {
  const { caPem, leafPem, leafKeyPem } = issuedChain("chain.test");
  const cert = join(dir, "chain.crt");
  const key = join(dir, "chain.key");
  writeFileSync(cert, leafPem + caPem);
  writeFileSync(key, leafKeyPem);
  const store = await CertificateStore.load([{ cert, key }]);
  assert.deepEqual(store.info()[0]!.names, ["chain.test"]);
  const server = await listenTls(store);
  try {
    const issuer = await new Promise<string>((resolve, reject) => {
      const c = connect({ port: server.port, host: "127.0.0.1", servername: "chain.test", rejectUnauthorized: false }, () => {
        const peer = c.getPeerCertificate(true);
        c.destroy();
        resolve(String(peer.issuerCertificate.subject.CN));
      });
      c.on("error", reject);
    });
    assert.equal(issuer, "Test CA", "the intermediate is sent along");
  } finally {
    server.close();
  }
  const reversed = join(dir, "reversed.crt");
  writeFileSync(reversed, caPem + leafPem);
  await assert.rejects(CertificateStore.load([{ cert: reversed, key }]), CertificateError);
});

test("reload returns a new store; the old one keeps serving; a failed reload changes nothing", async () => {
  const live = writePair("live", ["old.test"]);
  const store1 = await CertificateStore.load([live]);
  const before = await servedCertificate(store1);
  assert.equal(before.subject, "CN=old.test");

  // Replace both files in place, as certbot's deploy hook would.
  const next = generateSelfSigned({ domains: ["new.test"], days: 10 });
  writeFileSync(live.cert, next.certPem);
  writeFileSync(live.key, next.keyPem);
  const store2 = await store1.reload();
  assert.notEqual(store2, store1);
  assert.deepEqual(store2.info()[0]!.names, ["new.test"]);
  assert.equal((await servedCertificate(store2)).subject, "CN=new.test");
  // The old store is untouched and still hands out the old certificate.
  assert.deepEqual(store1.info()[0]!.names, ["old.test"]);
  assert.equal((await servedCertificate(store1)).fingerprint256, before.fingerprint256);

  // Half-written renewal: new certificate, old key. Reload fails; store2 lives on.
  writeFileSync(live.cert, generateSelfSigned({ domains: ["newer.test"] }).certPem);
  await assert.rejects(store2.reload(), (err: unknown) => err instanceof CertificateError && /does not match/.test(err.message));
  assert.equal((await servedCertificate(store2)).subject, "CN=new.test");
});

test("defaults: TLS 1.3 negotiated, TLS 1.1 refused; min_version is configurable", async () => {
  const normal = await listenTls(await CertificateStore.load([A]));
  const strict = await listenTls(await CertificateStore.load([A], { min_version: "TLSv1.3" }));
  const attempt = (port: number, opts: { minVersion?: "TLSv1"; maxVersion?: "TLSv1.1" | "TLSv1.2" }): Promise<string> =>
    new Promise((resolve) => {
      const c = connect({ port, host: "127.0.0.1", rejectUnauthorized: false, servername: "a.test", ...opts }, () => {
        const v = c.getProtocol() ?? "?";
        c.destroy();
        resolve(v);
      });
      c.on("error", (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`));
    });
  try {
    assert.equal(await attempt(normal.port, {}), "TLSv1.3");
    assert.equal(await attempt(normal.port, { maxVersion: "TLSv1.2" }), "TLSv1.2");
    assert.match(await attempt(normal.port, { minVersion: "TLSv1", maxVersion: "TLSv1.1" }), /^error /);
    assert.match(await attempt(strict.port, { maxVersion: "TLSv1.2" }), /^error /);
    assert.equal(await attempt(strict.port, {}), "TLSv1.3");
  } finally {
    normal.close();
    strict.close();
  }
});

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

test("ECDSA certificates load (node-forge cannot parse them)", { skip: !hasOpenssl() && "no openssl binary" }, async () => {
  const cert = join(dir, "ec.crt");
  const key = join(dir, "ec.key");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "5", "-subj", "/CN=ec.test",
    "-addext", "subjectAltName=DNS:ec.test,DNS:*.ec.test",
  ], { stdio: "ignore" });
  const store = await CertificateStore.load([A, { cert, key }]);
  assert.deepEqual(store.info()[1]!.names, ["ec.test", "*.ec.test"]);
  assert.equal((await servedCertificate(store, "pubsub.ec.test")).subject, "CN=ec.test");
});

test("the CN is used only when there is no subjectAltName", { skip: !hasOpenssl() && "no openssl binary" }, async () => {
  const cert = join(dir, "cn.crt");
  const key = join(dir, "cn.key");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "5", "-subj", "/O=Test/CN=Legacy.Test",
  ], { stdio: "ignore" });
  const store = await CertificateStore.load([A, { cert, key }]);
  assert.deepEqual(store.info()[1]!.names, ["legacy.test"]);
  assert.equal(store.contextFor("legacy.test"), store.contextFor("LEGACY.test"));
  assert.notEqual(store.contextFor("legacy.test"), store.contextFor("a.test"));
});
