// Self-signed development certificates (`xmpp-guard gen-cert`), so the quick
// start runs with TLS on a fresh machine. The RSA key comes from OpenSSL
// (node:crypto, milliseconds) and node-forge builds and signs the X.509
// certificate (pure-JS RSA key generation would take seconds). Never for
// production: nothing vouches for a self-signed certificate but itself.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import forge from "node-forge";

export interface SelfSignedOptions {
  /** DNS names, first one is also the CN and the file name. Wildcards (`*.example.org`) allowed. */
  domains: string[];
  /** Validity in days (default 365). */
  days?: number;
  keyBits?: 2048 | 3072 | 4096;
}

export interface SelfSigned {
  certPem: string;
  /** PKCS#8 PEM, unencrypted. */
  keyPem: string;
}

// A DNS name (RFC 1123 labels), optionally with a whole-label left-most wildcard.
const DOMAIN = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export function generateSelfSigned(options: SelfSignedOptions): SelfSigned {
  const { domains, days = 365, keyBits = 2048 } = options;
  if (domains.length === 0) throw new Error("gen-cert: at least one --domain is required");
  for (const d of domains) {
    if (d.length > 253 || !DOMAIN.test(d)) throw new Error(`gen-cert: not a DNS name: ${JSON.stringify(d)}`);
  }
  if (!Number.isInteger(days) || days < 1) throw new Error("gen-cert: days must be a positive integer");

  const { publicKey, privateKey } = generateKeyPairSync("rsa", {
    modulusLength: keyBits,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  // RFC 5280 §4.1.2.2: positive, at most 20 octets, unique per issuer.
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  cert.serialNumber = serial.toString("hex");
  const now = Date.now();
  // A little slack for clocks that disagree by a few minutes.
  cert.validity.notBefore = new Date(now - 5 * 60_000);
  cert.validity.notAfter = new Date(now + days * 86_400_000);
  const subject = [{ name: "commonName", value: domains[0]!.toLowerCase() }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    // An end-entity certificate: strict clients refuse a CA certificate as a
    // server certificate, and OpenSSL trusts a self-signed leaf given as `ca`.
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    // clientAuth too: an s2s peer presents its certificate as a TLS client.
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    // type 2 = dNSName (RFC 5280 §4.2.1.6).
    { name: "subjectAltName", altNames: domains.map((value) => ({ type: 2, value: value.toLowerCase() })) },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: privateKey };
}

/**
 * Write `<first-domain>.crt` and `<first-domain>.key` (mode 0600) into outDir,
 * creating it if needed. A wildcard's `*` becomes `_` in the file name.
 */
export async function writeSelfSigned(
  outDir: string,
  domains: string[],
  options: Omit<SelfSignedOptions, "domains"> = {},
): Promise<{ certFile: string; keyFile: string }> {
  const { certPem, keyPem } = generateSelfSigned({ ...options, domains });
  const base = domains[0]!.toLowerCase().replace(/\*/g, "_");
  await mkdir(outDir, { recursive: true });
  const certFile = join(outDir, `${base}.crt`);
  const keyFile = join(outDir, `${base}.key`);
  await writeFile(keyFile, keyPem, { mode: 0o600 });
  // writeFile's mode only applies to a new file; an old key file keeps its own.
  await chmod(keyFile, 0o600);
  await writeFile(certFile, certPem, { mode: 0o644 });
  return { certFile, keyFile };
}
