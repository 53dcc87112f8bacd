// The proxy's own certificates: PEM files read and checked once, one
// tls.SecureContext per certificate, and SNI selection by the names each
// certificate carries (RFC 6125 §6.4: DNS-IDs from subjectAltName, the CN only
// when there is none; a wildcard covers exactly one left-most label, §6.4.3).
// A store is immutable: reload() builds a new one and the caller swaps the
// reference, so a broken file never disturbs the live contexts.
//
// Names and expiry come from node:crypto's X509Certificate, not node-forge:
// forge cannot parse ECDSA certificates ("OID is not RSA"), which is what
// certbot issues by default.

import { constants, createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createSecureContext, type SecureContext } from "node:tls";

/** One configured certificate: PEM file paths. `cert` may hold the chain (leaf first). */
export interface CertificateFiles {
  cert: string;
  key: string;
}

/** `tls.*` settings that shape every context (names follow the config file). */
export interface TlsSettings {
  min_version?: "TLSv1.2" | "TLSv1.3";
  ciphers?: string;
}

/**
 * TLS 1.3 suites, then the TLS 1.2 AEAD suites with forward secrecy
 * (Mozilla "intermediate" minus DHE, which would need a dhparam file).
 */
export const DEFAULT_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

export const DEFAULT_MIN_VERSION = "TLSv1.2";

export interface CertificateInfo {
  /** The certificate file as configured. */
  file: string;
  /** Lower-case DNS names the certificate serves (wildcards as `*.domain`). */
  names: string[];
  notAfter: Date;
}

export interface CertificateProblem {
  file: string;
  message: string;
}

/** Every broken file in one error, so the operator fixes them all at once. */
export class CertificateError extends Error {
  readonly problems: readonly CertificateProblem[];
  constructor(problems: readonly CertificateProblem[]) {
    super(`certificates: ${problems.map((p) => `${p.file}: ${p.message}`).join("; ")}`);
    this.name = "CertificateError";
    this.problems = problems;
  }
}

interface Entry {
  readonly info: CertificateInfo;
  readonly context: SecureContext;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export class CertificateStore {
  readonly #files: readonly CertificateFiles[];
  readonly #settings: TlsSettings;
  readonly #entries: readonly Entry[];
  readonly #exact = new Map<string, SecureContext>();
  /** `*.example.org` is stored under `example.org`. */
  readonly #wildcard = new Map<string, SecureContext>();

  private constructor(files: readonly CertificateFiles[], settings: TlsSettings, entries: Entry[]) {
    this.#files = files;
    this.#settings = settings;
    this.#entries = entries;
    // The first certificate that names a host wins, as in the config order.
    for (const { info, context } of entries) {
      for (const name of info.names) {
        if (name.startsWith("*.")) {
          if (!this.#wildcard.has(name.slice(2))) this.#wildcard.set(name.slice(2), context);
        } else if (!this.#exact.has(name)) {
          this.#exact.set(name, context);
        }
      }
    }
  }

  /**
   * Read, check and build every certificate. Throws a CertificateError listing
   * each broken file (unreadable, no PEM, bad chain, key not matching).
   */
  static async load(files: readonly CertificateFiles[], settings: TlsSettings = {}): Promise<CertificateStore> {
    if (files.length === 0) throw new CertificateError([{ file: "tls.certificates", message: "no certificate configured" }]);
    const frozen = Object.freeze(files.map((f) => Object.freeze({ cert: f.cert, key: f.key })));
    const results = await Promise.all(frozen.map((f) => loadEntry(f, settings)));
    const problems = results.flatMap((r) => ("problems" in r ? r.problems : []));
    if (problems.length > 0) throw new CertificateError(problems);
    return new CertificateStore(frozen, { ...settings }, results.map((r) => r as Entry));
  }

  /** A fresh store from the same files (the live one is never changed). */
  reload(): Promise<CertificateStore> {
    return CertificateStore.load(this.#files, this.#settings);
  }

  /** The context of the certificate naming `servername`, or undefined. */
  match(servername: string | undefined): SecureContext | undefined {
    if (!servername) return undefined;
    let name = servername.toLowerCase();
    if (name.endsWith(".")) name = name.slice(0, -1);
    const exact = this.#exact.get(name);
    if (exact) return exact;
    const dot = name.indexOf(".");
    // "*.example.org" covers "a.example.org", not "example.org" nor "a.b.example.org".
    return dot > 0 ? this.#wildcard.get(name.slice(dot + 1)) : undefined;
  }

  /** SNI selection: the matching certificate, else the first configured one. */
  contextFor(servername: string | undefined): SecureContext {
    return this.match(servername) ?? this.#entries[0]!.context;
  }

  /** Does any certificate cover this name? */
  covers(name: string): boolean {
    return this.match(name) !== undefined;
  }

  /** For `tls.createServer({ SNICallback })` or `new TLSSocket(…, { SNICallback })`. */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    cb(null, this.contextFor(servername));
  };

  /** File, names and expiry of each certificate (for the expiry metric and logs). */
  info(): CertificateInfo[] {
    return this.#entries.map(({ info }) => ({ file: info.file, names: [...info.names], notAfter: new Date(info.notAfter) }));
  }
}

async function loadEntry(files: CertificateFiles, settings: TlsSettings): Promise<Entry | { problems: CertificateProblem[] }> {
  const problems: CertificateProblem[] = [];
  const [certPem, keyPem] = await Promise.all([
    readFile(files.cert, "utf8").catch((err: NodeJS.ErrnoException) => {
      problems.push({ file: files.cert, message: err.code === "ENOENT" ? "no such file" : err.message });
      return null;
    }),
    readFile(files.key, "utf8").catch((err: NodeJS.ErrnoException) => {
      problems.push({ file: files.key, message: err.code === "ENOENT" ? "no such file" : err.message });
      return null;
    }),
  ]);

  let chain: X509Certificate[] = [];
  if (certPem !== null) {
    const blocks = certPem.match(PEM_CERT) ?? [];
    if (blocks.length === 0) problems.push({ file: files.cert, message: "no PEM certificate found" });
    try {
      chain = blocks.map((b) => new X509Certificate(b));
    } catch (err) {
      problems.push({ file: files.cert, message: `bad certificate: ${(err as Error).message}` });
      chain = [];
    }
    // Clients only get what we send: a misordered chain fails for them, not us.
    for (let i = 0; i + 1 < chain.length; i++) {
      if (!chain[i]!.checkIssued(chain[i + 1]!)) {
        problems.push({ file: files.cert, message: `certificate ${i + 2} in the chain did not issue certificate ${i + 1} (leaf first, then intermediates)` });
        break;
      }
    }
  }

  let key: ReturnType<typeof createPrivateKey> | null = null;
  if (keyPem !== null) {
    try {
      key = createPrivateKey(keyPem);
    } catch (err) {
      const msg = (err as Error).message;
      problems.push({ file: files.key, message: /passphrase/i.test(msg) ? "encrypted private keys are not supported" : `bad private key: ${msg}` });
    }
  }

  const leaf = chain[0];
  if (leaf && key && !leaf.checkPrivateKey(key)) problems.push({ file: files.key, message: `private key does not match ${files.cert}` });
  if (problems.length > 0 || !leaf || certPem === null || keyPem === null) return { problems };

  let context: SecureContext;
  try {
    context = createSecureContext({
      key: keyPem,
      cert: certPem,
      minVersion: settings.min_version ?? DEFAULT_MIN_VERSION,
      ciphers: settings.ciphers ?? DEFAULT_CIPHERS,
      honorCipherOrder: true,
      // Every server context, so STARTTLS and direct TLS alike: a TLS 1.2 peer
      // asking to renegotiate gets a no_renegotiation warning instead of a full
      // handshake's worth of our CPU. Node's own renegotiation limit cannot
      // help: our TLSSockets are built by hand, and on those it reports its
      // ERR_TLS_SESSION_ATTACK only as an internal event (see serverHandshake).
      secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    });
  } catch (err) {
    return { problems: [{ file: files.cert, message: `cannot build a TLS context: ${(err as Error).message}` }] };
  }
  const info: CertificateInfo = { file: files.cert, names: certificateNames(leaf), notAfter: new Date(leaf.validTo) };
  return { info, context };
}

/** RFC 6125 §6.4.4: DNS-IDs from subjectAltName; the CN only when there are none. */
export function certificateNames(cert: X509Certificate): string[] {
  const names: string[] = [];
  const san = cert.subjectAltName;
  if (san) {
    // Node renders "DNS:a.example, DNS:*.b.example, IP Address:…"; values with
    // separators in them are quoted, which DNS names never need.
    for (const m of san.matchAll(/(?:^|, )DNS:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
      const raw = m[1]!;
      const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
      names.push(value.toLowerCase());
    }
  }
  if (names.length === 0) {
    for (const line of cert.subject.split("\n")) {
      if (line.startsWith("CN=")) names.push(line.slice(3).toLowerCase());
    }
  }
  return [...new Set(names)];
}
