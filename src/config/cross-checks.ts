// Cross-field checks of the whole config: what no single section can judge
// (listener names and addresses against each other, TLS options against the
// listeners, MUC hosts against the local domains, ...). They run on a
// shape-valid Config and report with the same key paths as the schema, so
// load.ts places them at file:line:col too. Checks within one section live
// with its spec (`refine` in util/validate.ts).
import type { Config, Endpoint } from "./schema.js";
import { isLoopbackHost } from "../util/address.js";
import { canonicalIp } from "../util/ip.js";
import { formatPath, type Path, type Report, type SchemaIssue } from "../util/validate.js";


export type CrossCheck = (config: Config, report: Report) => void;

interface BindKey {
  readonly host: string; // canonical IP or lowercased hostname
  readonly family: 0 | 4 | 6; // 0: hostname
  readonly port: number;
}

function bindKey(e: Endpoint): BindKey {
  const ip = canonicalIp(e.host);
  if (ip === null) return { host: e.host.toLowerCase().replace(/\.$/, ""), family: 0, port: e.port };
  return { host: ip, family: ip.includes(":") ? 6 : 4, port: e.port };
}

/**
 * Two listen addresses collide when binding both would fail: same port (not 0)
 * and the same host, or a family's wildcard next to an address of that family.
 * Cross-family overlap ("::" and "0.0.0.0") depends on IPV6_V6ONLY, so it is not
 * flagged here.
 */
function bindsCollide(a: BindKey, b: BindKey): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  if (a.host === b.host) return true;
  const wildcard = (k: BindKey, other: BindKey): boolean =>
    (k.host === "0.0.0.0" && other.family === 4) || (k.host === "::" && other.family === 6);
  return wildcard(a, b) || wildcard(b, a);
}

/** Would dialing `up` reach a socket listening on `listen`? (Same address, or loopback/any into a wildcard.) */
function reachesListener(up: BindKey, listen: BindKey): boolean {
  if (up.port !== listen.port || listen.port === 0) return false;
  if (up.host === listen.host) return true;
  const v4Local = up.host === "0.0.0.0" || /^127\./.test(up.host);
  const v6Local = up.host === "::" || up.host === "::1";
  const localhost = up.host === "localhost";
  if (localhost && (listen.host === "::1" || /^127\./.test(listen.host))) return true;
  // A "::" listener is dual-stack by default, so IPv4 loopback reaches it too.
  if (listen.host === "::") return localhost || v4Local || v6Local;
  return listen.host === "0.0.0.0" && (localhost || v4Local);
}

export const CROSS_CHECKS: readonly CrossCheck[] = [
  function distinctHosts(config, report) {
    const seen = new Map<string, number>();
    config.hosts.forEach((h, i) => {
      const first = seen.get(h);
      if (first === undefined) seen.set(h, i);
      else report(["hosts", i], `"${h}" is listed twice (also hosts[${first}])`);
    });
  },
  function mucHostsAreLocal(config, report) {
    // A MUC service is one of the server's components: with the local
    // domains given, one missing from them is a typo, or traffic to the
    // rooms would count as leaving for a remote domain.
    if (config.hosts.length === 0 || config.muc_limits === null) return;
    const local = new Set(config.hosts);
    config.muc_limits.hosts.forEach((h, i) => {
      if (!local.has(h)) report(["muc_limits", "hosts", i], `"${h}" is not in hosts (the server's local domains); add it there too`);
    });
  },
  function uniqueListenerNames(config, report) {
    const seen = new Map<string, number>();
    config.listeners.forEach((l, i) => {
      const first = seen.get(l.name);
      if (first === undefined) seen.set(l.name, i);
      else report(["listeners", i, "name"], `duplicate listener name "${l.name}" (also listeners[${first}])`);
    });
  },
  function distinctListenAddresses(config, report) {
    const binds: { key: BindKey; path: Path; text: string }[] = [];
    config.listeners.forEach((l, i) => binds.push({ key: bindKey(l.listen), path: ["listeners", i, "listen"], text: l.listen.text }));
    if (config.admin.listen) binds.push({ key: bindKey(config.admin.listen), path: ["admin", "listen"], text: config.admin.listen.text });
    binds.forEach((b, i) => {
      const clash = binds.slice(0, i).find((earlier) => bindsCollide(earlier.key, b.key));
      if (clash) report(b.path, `"${b.text}" conflicts with ${formatPath(clash.path)} "${clash.text}"`);
    });
  },
  function directTlsNeedsCertificates(config, report) {
    if (config.tls.certificates.length > 0) return;
    config.listeners.forEach((l, i) => {
      if (l.type.endsWith("-tls")) report(["listeners", i, "type"], `${l.type} needs tls.certificates (generate a development pair with: xmpp-guard gen-cert --domain DOMAIN --out certs)`);
      if (l.websocket?.tls === true) report(["listeners", i, "websocket", "tls"], "wss needs tls.certificates (or set it false behind a web server that terminates TLS)");
    });
  },
  function websocketOptionsOnlyOnWebsocket(config, report) {
    config.listeners.forEach((l, i) => {
      if (l.type !== "websocket" && l.websocket !== null) report(["listeners", i, "websocket"], `only a listener of type websocket takes websocket options (this one is ${l.type})`);
    });
  },
  function upstreamTlsWithoutProxyHeader(config, report) {
    if (!config.tls.upstream_tls) return;
    config.listeners.forEach((l, i) => {
      if (l.proxy_protocol !== "off") report(["listeners", i, "proxy_protocol"], "cannot be combined with tls.upstream_tls (the PROXY header would have to precede the TLS handshake)");
    });
  },
  function adminTokenOffLoopback(config, report) {
    const a = config.admin;
    if (a.token !== null && a.token_file !== null) report(["admin", "token_file"], "give admin.token or admin.token_file, not both");
    if (a.listen === null || isLoopbackHost(a.listen.host) || a.token !== null || a.token_file !== null) return;
    report(["admin", "listen"], `"${a.listen.text}" is not a loopback address: set admin.token (or admin.token_file) too, so that only holders of the token can reload, list or close sessions`);
  },
  function upstreamIsNotSelf(config, report) {
    config.listeners.forEach((l, i) => {
      const up = bindKey(l.upstream);
      const j = config.listeners.findIndex((other) => reachesListener(up, bindKey(other.listen)));
      if (j < 0) return;
      report(
        ["listeners", i, "upstream"],
        `"${l.upstream.text}" reaches this proxy's own listeners[${j}].listen "${config.listeners[j]!.listen.text}" (it would connect to itself)`,
      );
    });
  },
];

/** Every cross-field issue of a shape-valid config. */
export function crossCheck(config: Config): SchemaIssue[] {
  const issues: SchemaIssue[] = [];
  for (const check of CROSS_CHECKS) check(config, (path, message) => issues.push({ path, target: "value", message }));
  return issues;
}
