// A throw-away self-signed certificate for the TLS suite (openssl, P-256,
// CN example.org), in a temp dir removed on the way out.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onCleanup } from "./children.js";

export function makeCertificate(): { cert: string; key: string } | { error: string } {
  const dir = mkdtempSync(join(tmpdir(), "xmpp-guard-bench-tls-"));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  try {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=example.org", "-addext", "subjectAltName=DNS:example.org", "-keyout", key, "-out", cert],
      { stdio: "pipe" },
    );
    return { cert, key };
  } catch (err) {
    return { error: `openssl failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}
