// The admin HTTP endpoint (loopback by default): Prometheus metrics, liveness,
// readiness and reload. Tiny on purpose: node:http, four routes, JSON errors.

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Endpoint } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/definitions.js";

export interface AdminHooks {
  /** Scraped on /metrics unless `scrape` is given. */
  readonly metrics?: Metrics;
  /** The /metrics body from elsewhere (the cluster primary aggregates its workers'). */
  scrape?(): Promise<{ contentType: string; body: string }>;
  readonly logger: Logger;
  /** Ready = every listener bound and not draining. */
  ready(): boolean;
  /**
   * What works only in part (a lost state database: registration refused),
   * listed in the /readyz body. It does not make the proxy unready: sessions,
   * new ones too, are served as usual.
   */
  degraded?(): string[] | Promise<string[]>;
  reload(): Promise<{ ok: boolean; errors: string[] }>;
}

export interface AdminServer {
  address(): AddressInfo | null;
  close(): Promise<void>;
}

export async function startAdminServer(listen: Endpoint, hooks: AdminHooks): Promise<AdminServer> {
  const server = createServer((req, res) => {
    handle(req, res, hooks).catch((err: unknown) => {
      hooks.logger.error({ err: String(err) }, "admin request failed");
      if (!res.headersSent) send(res, 500, { error: "internal error" });
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(new Error(`admin: cannot listen on ${listen.text}: ${err.message}`)));
    server.listen({ host: listen.host, port: listen.port }, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  hooks.logger.info({ address: `${addr.address}:${addr.port}` }, "admin endpoint listening");
  return {
    address: () => server.address() as AddressInfo | null,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, hooks: AdminHooks): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  const method = req.method ?? "GET";
  if (path === "/metrics" && (method === "GET" || method === "HEAD")) {
    const { body, contentType } = hooks.scrape
      ? await hooks.scrape()
      : { body: await hooks.metrics!.registry.metrics(), contentType: hooks.metrics!.registry.contentType };
    res.writeHead(200, { "content-type": contentType });
    res.end(method === "HEAD" ? undefined : body);
    return;
  }
  if (path === "/healthz" && (method === "GET" || method === "HEAD")) {
    send(res, 200, { status: "ok" });
    return;
  }
  if (path === "/readyz" && (method === "GET" || method === "HEAD")) {
    const ready = hooks.ready();
    const degraded = (await hooks.degraded?.()) ?? [];
    send(res, ready ? 200 : 503, { status: ready ? "ready" : "not ready", ...(degraded.length > 0 ? { degraded } : {}) });
    return;
  }
  if (path === "/reload") {
    if (method !== "POST") {
      res.setHeader("allow", "POST");
      send(res, 405, { error: "use POST" });
      return;
    }
    req.resume();
    const result = await hooks.reload();
    send(res, result.ok ? 200 : 422, result);
    return;
  }
  send(res, 404, { error: "not found", routes: ["GET /metrics", "GET /healthz", "GET /readyz", "POST /reload"] });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body) + "\n");
}
