// The WebSocket baseline: the plainest relay that lets an RFC 7395 client
// reach a c2s server, built on the same `ws` library as xmpp-guard's
// websocket listener (same options: text only, no compression, the same
// message size cap). Per client one upstream connection; each message goes
// upstream as it is, except the stream's <open/> and <close/>, which become
// the c2s header and end tag (a relay cannot do with less), and the messages
// of one read go out in one write (corked for the turn, as xmpp-guard
// batches them); what the upstream sends comes back one read per message.
// No XML is read, nothing is checked, nothing is judged: what is left is the
// cost of WebSocket framing and relaying. Backpressure both ways, as in the
// pipe proxy.
// argv[2] is the upstream port. It runs alone in its own process.

import { connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { WS_STREAM_HEADER } from "../lib/fixture.js";
import { serveProxyChild, upstreamPortArg } from "../lib/proxy-child.js";

const upstreamPort = upstreamPortArg();
const HIGH_WATER = 64 * 1024;
const TEXT = { binary: false } as const;
const OPEN = Buffer.from("<open", "latin1");
const CLOSE = Buffer.from("<close", "latin1");
const HEADER = Buffer.from(WS_STREAM_HEADER, "latin1");
const END = Buffer.from("</stream:stream>", "latin1");
const sockets = new Set<Socket>();

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  backlog: 1024,
  perMessageDeflate: false,
  maxPayload: 262_144,
  clientTracking: false,
  handleProtocols: (p: Set<string>) => (p.has("xmpp") ? "xmpp" : false),
});

wss.on("connection", (ws: WebSocket) => {
  const upstream = connect({ host: "127.0.0.1", port: upstreamPort });
  upstream.setNoDelay(true);
  sockets.add(upstream);
  const teardown = (): void => {
    ws.terminate();
    upstream.destroy();
  };
  let corked = false;
  const uncork = (): void => {
    corked = false;
    upstream.uncork();
  };
  ws.on("message", (data: RawData) => {
    const m = data as Buffer;
    const out = m.subarray(0, 5).equals(OPEN) ? HEADER : m.subarray(0, 6).equals(CLOSE) ? END : m;
    if (!corked) {
      corked = true;
      upstream.cork();
      queueMicrotask(uncork);
    }
    if (!upstream.write(out)) {
      ws.pause();
      upstream.once("drain", () => ws.resume());
    }
  });
  const sent = (): void => {
    if (upstream.isPaused() && ws.bufferedAmount < HIGH_WATER) upstream.resume();
  };
  upstream.on("data", (chunk: Buffer) => {
    ws.send(chunk, TEXT, sent);
    if (ws.bufferedAmount >= HIGH_WATER) upstream.pause();
  });
  ws.on("close", () => upstream.end());
  ws.on("error", teardown);
  upstream.on("error", teardown).on("end", () => ws.close()).on("close", () => sockets.delete(upstream));
});

wss.on("listening", () => {
  const { port } = wss.address() as AddressInfo;
  serveProxyChild(port, { kind: "ws-relay" }, () => {
    for (const s of sockets) s.destroy();
  });
});
