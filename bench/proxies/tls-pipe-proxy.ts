// The TLS baseline: the simplest correct Node TLS-terminating L4 proxy.
// tls.createServer decrypts, one plaintext upstream connection per client,
// bytes moved with stream.pipe() both ways, Nagle off on both sides.
// argv: <upstream-port> <cert.pem> <key.pem>. It runs alone in its own process.

import { readFileSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import { createServer } from "node:tls";
import { pipeToUpstream, serveProxyChild, upstreamPortArg } from "../lib/proxy-child.js";

const upstreamPort = upstreamPortArg();
const [cert, key] = [process.argv[3], process.argv[4]];
if (!cert || !key) throw new Error("usage: tls-pipe-proxy.ts <upstream-port> <cert.pem> <key.pem>");
const sockets = new Set<Socket>();

const server = createServer({ cert: readFileSync(cert), key: readFileSync(key), ALPNProtocols: ["xmpp-client"] }, (client) =>
  pipeToUpstream(client, upstreamPort, sockets),
);
server.on("tlsClientError", () => {});

server.listen({ host: "127.0.0.1", port: 0, backlog: 1024 }, () => {
  const { port } = server.address() as AddressInfo;
  serveProxyChild(port, { kind: "pipe-tls" }, () => {
    for (const s of sockets) s.destroy();
  });
});
