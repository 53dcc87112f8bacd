// xmpp-guard under test: startProxy() with one listener on a free loopback
// port, no admin endpoint, silent logging, everything else at the shipped
// defaults. It runs alone in its own process.
//
//   argv[2]  upstream port
//   argv[3]  "dist", "build", "src" or a directory of compiled output
//   argv[4]  optional JSON GuardOptions: firewall rule files, limits, TLS, websocket
//
// When the config is refused (say, an older build without `tls`), the child
// reports {type: "error", message} instead of "ready" and exits, so the
// suite can skip with the reason. BENCH_GUARD_LOG=debug (or any pino level)
// turns its logging on, to stdout, for debugging a failing run.

import { guardModule, guardSourceArg } from "../lib/guard-source.js";
import { serveProxyChild, upstreamPortArg } from "../lib/proxy-child.js";

type AppModule = typeof import("../../src/app.js");
type LoadModule = typeof import("../../src/config/load.js");
type LogModule = typeof import("../../src/log.js");

export interface GuardOptions {
  /** firewall.scripts; absent or empty: no firewall. */
  rules?: string[];
  /** The `limits` section, as in the YAML. */
  limits?: Record<string, unknown>;
  /** Direct TLS: a `c2s-tls` listener with this certificate. */
  tls?: { cert: string; key: string };
  /** A `websocket` listener (plain ws://, path /xmpp-websocket) instead of c2s. */
  websocket?: boolean;
}

const upstreamPort = upstreamPortArg();
const source = guardSourceArg(process.argv[3]);
const options = JSON.parse(process.argv[4] ?? "{}") as GuardOptions;

function fail(message: string): never {
  process.send?.({ type: "error", message });
  // Let the IPC message leave before exiting.
  setTimeout(() => process.exit(0), 50);
  throw new Error(message);
}

const app = (await import(guardModule(source, "app"))) as AppModule;
const load = (await import(guardModule(source, "config/load"))) as LoadModule;
const log = (await import(guardModule(source, "log"))) as LogModule;

const level = (process.env.BENCH_GUARD_LOG ?? "silent") as "silent";
const raw: Record<string, unknown> = {
  listeners: [{ name: "c2s", type: options.websocket ? "websocket" : options.tls ? "c2s-tls" : "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstreamPort}` }],
  admin: { listen: null },
  log: { level },
};
if (options.rules && options.rules.length > 0) raw.firewall = { scripts: options.rules, watch: false };
if (options.limits) raw.limits = options.limits;
if (options.tls) raw.tls = { certificates: [{ cert: options.tls.cert, key: options.tls.key }] };

let config: ReturnType<LoadModule["configFromObject"]>;
try {
  config = load.configFromObject(raw);
} catch (err) {
  const detail = err instanceof load.ConfigError ? err.issues.map(load.formatIssue).join("; ") : String(err);
  fail(`config refused: ${detail}`);
}
let proxy: Awaited<ReturnType<AppModule["startProxy"]>>;
try {
  proxy = await app.startProxy(config, { logger: log.createLogger(level) });
} catch (err) {
  fail(`startProxy failed: ${err instanceof Error ? err.message : String(err)}`);
}
const port = proxy.listenerAddress("c2s")!.port;
serveProxyChild(port, { kind: "xmpp-guard", source });
