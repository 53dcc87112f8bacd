// `xmpp-guard gen-cert`: a self-signed development certificate and key
// (<domain>.crt, <domain>.key) and the `tls` section that uses them.
import { writeSelfSigned } from "../net/gen-cert.js";
import { failure, output, type CommandOutput } from "./output.js";

export async function genCertCommand(opts: { domain: readonly string[]; out: string; days: string }): Promise<CommandOutput> {
  try {
    const { certFile, keyFile } = await writeSelfSigned(opts.out, [...opts.domain], { days: Number(opts.days) });
    return output([
      certFile,
      keyFile,
      "tls:",
      "  certificates:",
      `    - { cert: ${JSON.stringify(certFile)}, key: ${JSON.stringify(keyFile)} }`,
      `Clients must be told to trust ${certFile} (it is self-signed): development only.`,
    ]);
  } catch (err) {
    return failure([err instanceof Error ? err.message : String(err)]);
  }
}
