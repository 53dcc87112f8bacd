// The admin HTTP endpoint (loopback by default): Prometheus metrics,
// liveness, readiness, reload, and live sessions. Tiny on purpose: node:http,
// a handful of routes, JSON answers.
//
// Who may do what. /metrics, /healthz, /readyz and /about are read by
// scrapers and health checks and need nothing. The routes that change
// something (POST) or show people (GET /sessions: JIDs and addresses) need
// the admin token when one is configured (`Authorization: Bearer …`); off
// loopback a token is required by the config. Browsers are kept out of those
// routes entirely: a request with an Origin header (every cross-site POST
// has one) or a Sec-Fetch-Site other than "none" is refused, and so is a
// body a plain HTML form can send (form-urlencoded, multipart, text/plain).
// On a loopback address the Host header must name loopback too, so a page
// whose domain was rebound to 127.0.0.1 cannot read anything.

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { timingSafeEqual } from "node:crypto";
import type { Endpoint } from "../config/schema.js";
import { isLoopbackHost } from "../util/address.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/definitions.js";
import { filterFromQuery, type SessionFilter, type SessionSummary } from "./sessions.js";
import type { UpstreamReport } from "./upstream-check.js";

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
  /** Whether each listener's upstream answers; one that does not makes /readyz 503. */
  upstreams?(): Promise<UpstreamReport[]>;
  reload(): Promise<{ ok: boolean; errors: string[] }>;
  sessions?(filter: SessionFilter): Promise<SessionSummary[]>;
  /** Ends a session with a stream error; its summary, or null when no session has that id. */
  closeSession?(sid: string): Promise<SessionSummary | null>;
  /** What `xmpp-guard about` shows of the running process. */
  about?(): Promise<Record<string, unknown>>;
  /** The admin token in force (admin.token or admin.token_file), or null. */
  token(): string | null;
}

export interface AdminServer {
  address(): AddressInfo | null;
  close(): Promise<void>;
}

const ROUTES = ["GET /metrics", "GET /healthz", "GET /readyz", "GET /about", "POST /reload", "GET /sessions", "POST /sessions/{sid}/close"];

export async function startAdminServer(listen: Endpoint, hooks: AdminHooks): Promise<AdminServer> {
  const loopback = isLoopbackHost(listen.host);
  const server = createServer((req, res) => {
    handle(req, res, hooks, loopback).catch((err: unknown) => {
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
  hooks.logger.info({ address: `${addr.address}:${addr.port}`, token: hooks.token() !== null }, "admin endpoint listening");
  return {
    address: () => server.address() as AddressInfo | null,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** `Host: localhost:9470`, `127.0.0.1`, `[::1]:9470`… (no Host at all: HTTP/1.0, allowed). */
function hostIsLoopback(host: string | undefined): boolean {
  if (host === undefined) return true;
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(host.trim());
  return m !== null && isLoopbackHost(m[1]!);
}

/** Content types an HTML form (or a no-preflight fetch) can send. */
const FORM_TYPES = /^\s*(application\/x-www-form-urlencoded|multipart\/form-data|text\/plain)\s*(;|$)/i;

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (m === null) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * A POST to a route that changes state: the method, then refuseUnsafe.
 * True when the request may go on; otherwise it has been answered.
 */
function acceptPost(req: IncomingMessage, res: ServerResponse, hooks: AdminHooks): boolean {
  if (req.method !== "POST") {
    res.setHeader("allow", "POST");
    send(res, 405, { error: "use POST" });
    return false;
  }
  req.resume();
  return !refuseUnsafe(req, res, hooks);
}

/** Refuses what may not reach a route that changes state or shows sessions; true when it answered. */
function refuseUnsafe(req: IncomingMessage, res: ServerResponse, hooks: AdminHooks): boolean {
  const fetchSite = req.headers["sec-fetch-site"];
  if (req.headers.origin !== undefined || (fetchSite !== undefined && fetchSite !== "none")) {
    send(res, 403, { error: "cross-site requests are refused: use curl or xmpp-guard's commands, not a browser page" });
    return true;
  }
  const type = req.headers["content-type"];
  if (req.method === "POST" && type !== undefined && FORM_TYPES.test(type)) {
    send(res, 415, { error: `content type ${type.split(";")[0]} is refused (a form can send it); send no body, or application/json` });
    return true;
  }
  const token = hooks.token();
  if (token !== null && !tokenMatches(req.headers.authorization, token)) {
    res.setHeader("www-authenticate", 'Bearer realm="xmpp-guard"');
    send(res, 401, { error: "this route needs the admin token: Authorization: Bearer <admin.token>" });
    return true;
  }
  return false;
}

async function handle(req: IncomingMessage, res: ServerResponse, hooks: AdminHooks, loopback: boolean): Promise<void> {
  const url = new URL(req.url ?? "/", "http://admin");
  const path = url.pathname;
  const method = req.method ?? "GET";
  if (loopback && !hostIsLoopback(req.headers.host)) {
    send(res, 403, { error: "the Host header must name this machine (localhost, 127.0.0.1 or [::1])" });
    return;
  }
  const read = method === "GET" || method === "HEAD";
  if (path === "/metrics" && read) {
    const { body, contentType } = hooks.scrape
      ? await hooks.scrape()
      : { body: await hooks.metrics!.registry.metrics(), contentType: hooks.metrics!.registry.contentType };
    res.writeHead(200, { "content-type": contentType });
    res.end(method === "HEAD" ? undefined : body);
    return;
  }
  if (path === "/healthz" && read) {
    send(res, 200, { status: "ok" });
    return;
  }
  if (path === "/readyz" && read) {
    const listening = hooks.ready();
    const [degraded, upstreams] = await Promise.all([hooks.degraded?.() ?? [], hooks.upstreams?.() ?? []]);
    const down = upstreams.filter((u) => !u.ok);
    const ready = listening && down.length === 0;
    const reasons = [...(listening ? [] : ["listeners not bound, or draining"]), ...down.map((u) => `upstream of ${u.listener} (${u.upstream}): ${u.error}`)];
    send(res, ready ? 200 : 503, {
      status: ready ? "ready" : "not ready",
      ...(reasons.length > 0 ? { reasons } : {}),
      ...(degraded.length > 0 ? { degraded } : {}),
      ...(upstreams.length > 0 ? { upstreams } : {}),
    });
    return;
  }
  if (path === "/about" && read && hooks.about) {
    send(res, 200, await hooks.about());
    return;
  }
  if (path === "/reload") {
    if (!acceptPost(req, res, hooks)) return;
    const result = await hooks.reload();
    send(res, result.ok ? 200 : 422, result);
    return;
  }
  if (path === "/sessions" && hooks.sessions) {
    if (!read) {
      res.setHeader("allow", "GET");
      send(res, 405, { error: "use GET" });
      return;
    }
    if (refuseUnsafe(req, res, hooks)) return;
    const filter = filterFromQuery(url.searchParams);
    if (typeof filter === "string") {
      send(res, 400, { error: filter });
      return;
    }
    const sessions = await hooks.sessions(filter);
    send(res, 200, { sessions });
    return;
  }
  const close = /^\/sessions\/([^/]+)\/close$/.exec(path);
  if (close !== null && hooks.closeSession) {
    if (!acceptPost(req, res, hooks)) return;
    const sid = decodeURIComponent(close[1]!);
    const closed = await hooks.closeSession(sid);
    if (closed === null) {
      send(res, 404, { error: `no session ${sid}` });
      return;
    }
    hooks.logger.info({ sid, jid: closed.jid, ip: closed.ip, listener: closed.listener, stage: "admin", action: "close", reason: "POST /sessions/{sid}/close" }, "policy action");
    send(res, 200, { closed });
    return;
  }
  send(res, 404, { error: "not found", routes: ROUTES });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body) + "\n");
}
