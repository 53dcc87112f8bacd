// xmpp-guard under test: startProxy() with one c2s listener on a free
// loopback port, no admin endpoint, silent logging, default limits, no
// policy stages. argv[2] is the upstream port, argv[3] "dist", "build" or "src".
// It runs alone in its own process. BENCH_GUARD_LOG=debug (or any pino
// level) turns its logging on, to stdout, for debugging a failing run.

import { guardModule, guardSourceArg } from "../lib/guard-source.js";
import { serveProxyChild, upstreamPortArg } from "../lib/proxy-child.js";

type AppModule = typeof import("../../src/app.js");
type LoadModule = typeof import("../../src/config/load.js");
type LogModule = typeof import("../../src/log.js");

const upstreamPort = upstreamPortArg();
const source = guardSourceArg(process.argv[3]);

const app = (await import(guardModule(source, "app"))) as AppModule;
const load = (await import(guardModule(source, "config/load"))) as LoadModule;
const log = (await import(guardModule(source, "log"))) as LogModule;

const level = (process.env.BENCH_GUARD_LOG ?? "silent") as "silent";
const config = load.configFromObject({
  listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstreamPort}` }],
  admin: { listen: null },
  log: { level },
});
const proxy = await app.startProxy(config, { logger: log.createLogger(level) });
const port = proxy.listenerAddress("c2s")!.port;
serveProxyChild(port, { kind: "xmpp-guard", source });
