// The baseline: the simplest correct Node L4 proxy. One upstream connection
// per client, bytes moved with stream.pipe() both ways, Nagle off on both
// sides (as xmpp-guard does), either side's end or error tears down both.
// It runs alone in its own process; argv[2] is the upstream port.

import { createServer, type AddressInfo, type Socket } from "node:net";
import { pipeToUpstream, serveProxyChild, upstreamPortArg } from "../lib/proxy-child.js";

const upstreamPort = upstreamPortArg();
const sockets = new Set<Socket>();

const server = createServer((client) => pipeToUpstream(client, upstreamPort, sockets));

server.listen({ host: "127.0.0.1", port: 0, backlog: 1024 }, () => {
  const { port } = server.address() as AddressInfo;
  serveProxyChild(port, { kind: "pipe" }, () => {
    for (const s of sockets) s.destroy();
  });
});
