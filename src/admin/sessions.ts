// Live sessions as the admin interface shows them (GET /sessions, the
// `sessions` and `kick` commands): one plain JSON object per session, and
// the filters an operator narrows the list with. Pure: the proxy (or each
// cluster worker) describes its sessions, this module filters them.
import { CidrSet } from "../util/ip.js";

export interface SessionSummary {
  readonly sid: string;
  readonly listener: string;
  readonly type: "c2s" | "s2s";
  readonly ip: string;
  readonly port: number;
  /** c2s: the bound full JID, once known. */
  readonly jid: string | null;
  /** c2s: the stream's `to`; s2s: the verified peer domain. */
  readonly domain: string | null;
  readonly state: string;
  readonly authenticated: boolean;
  /** Negotiated TLS version when the proxy terminated TLS, else null. */
  readonly tls: string | null;
  /** ISO time the connection was accepted. */
  readonly started: string;
  readonly seconds: number;
  /** Worker slot (1..workers) in workers mode. */
  readonly worker?: number;
}

export interface SessionFilter {
  /** A bare JID matches every resource; a full JID only itself; a domain every JID of it. Case-insensitive. */
  readonly jid?: string | undefined;
  /** An address or a CIDR. */
  readonly ip?: string | undefined;
  readonly listener?: string | undefined;
}

/** Parses `?jid=…&ip=…&listener=…`; an invalid `ip` is an error message. */
export function filterFromQuery(params: URLSearchParams): SessionFilter | string {
  const ip = params.get("ip") ?? undefined;
  if (ip !== undefined && !validIp(ip)) return `ip: ${JSON.stringify(ip)} is not an address or a CIDR`;
  return { jid: params.get("jid") ?? undefined, ip, listener: params.get("listener") ?? undefined };
}

function validIp(text: string): boolean {
  try {
    new CidrSet([text]);
    return true;
  } catch {
    return false;
  }
}

function ipMatches(pattern: string, ip: string): boolean {
  return new CidrSet([pattern]).has(ip);
}

function jidMatches(pattern: string, s: SessionSummary): boolean {
  const p = pattern.toLowerCase();
  const jid = s.jid?.toLowerCase();
  if (jid !== undefined) {
    if (jid === p) return true;
    const bare = jid.split("/")[0]!;
    if (bare === p) return true;
    if (!p.includes("@") && bare.slice(bare.indexOf("@") + 1) === p) return true;
  }
  return !p.includes("@") && s.domain?.toLowerCase() === p;
}

export function matchSession(filter: SessionFilter, s: SessionSummary): boolean {
  if (filter.listener !== undefined && filter.listener !== s.listener) return false;
  if (filter.ip !== undefined && !ipMatches(filter.ip, s.ip)) return false;
  if (filter.jid !== undefined && !jidMatches(filter.jid, s)) return false;
  return true;
}

/** Sessions as a table for a terminal (the `sessions` command). */
export function formatSessions(list: readonly SessionSummary[]): string {
  const header = ["SID", "LISTENER", "IP", "JID/DOMAIN", "STATE", "TLS", "AGE", ...(list.some((s) => s.worker !== undefined) ? ["WORKER"] : [])];
  const rows = list.map((s) => [
    s.sid,
    s.listener,
    s.ip.includes(":") ? `[${s.ip}]:${s.port}` : `${s.ip}:${s.port}`,
    s.jid ?? s.domain ?? "-",
    s.state,
    s.tls ?? "-",
    age(s.seconds),
    ...(s.worker !== undefined ? [String(s.worker)] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  return [line(header), ...rows.map(line), `${list.length} session${list.length === 1 ? "" : "s"}`].join("\n");
}

function age(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, "0")}h`;
}
