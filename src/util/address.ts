// `host:port` parsing (the config's listen and upstream addresses, the component port). Pure: no sockets, no DNS, no
// `node:net`. Hostnames are checked for shape only; IP literals and CIDRs are
// src/util/ip.ts's.
import { AddressError, CidrSet, canonicalIp, isIPv4, isIpLiteral, parseCidr } from "./ip.js";
import { issue, list, str, transform, type Spec } from "./validate.js";

export interface HostPort {
  /** IP literal (IPv6 without brackets) or hostname; `*` is returned as "0.0.0.0". */
  readonly host: string;
  readonly port: number;
}

export interface HostPortOptions {
  /** Accept port 0 (let the OS pick). Only meaningful for listen addresses. */
  readonly allowPortZero?: boolean;
}

/**
 * Parses `host:port`, `[v6]:port` or `*:port`. IPv6 literals must be bracketed, since
 * `::1:5222` is itself a valid IPv6 address. Ports are decimal, 1..65535 (0 with
 * `allowPortZero`).
 */
export function parseHostPort(s: string, options: HostPortOptions = {}): HostPort {
  if (s.length === 0) throw new AddressError('must be "host:port", got an empty string');
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0) throw new AddressError('missing "]" after the IPv6 address');
    host = s.slice(1, close);
    if (!isIpLiteral(host, true) || !host.includes(":")) {
      throw new AddressError(`"${host}" is not a valid IPv6 address`);
    }
    const rest = s.slice(close + 1);
    if (rest === "" || rest === ":") throw new AddressError('missing port (expected "[v6]:port")');
    if (!rest.startsWith(":")) throw new AddressError('expected ":port" after "]"');
    portText = rest.slice(1);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0 || colon === s.length - 1) {
      throw new AddressError('missing port (expected "host:port")');
    }
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(":")) {
      throw new AddressError('IPv6 addresses must be in brackets, e.g. "[::1]:5222"');
    }
    if (host === "") throw new AddressError('missing host (use "0.0.0.0:port" or "*:port" for all interfaces)');
    if (host === "*") host = "0.0.0.0";
    else checkHostname(host);
  }
  return { host, port: parsePort(portText, options.allowPortZero === true) };
}

function parsePort(text: string, allowZero: boolean): number {
  if (!/^[0-9]{1,5}$/.test(text)) throw new AddressError(`invalid port "${text}"`);
  const port = Number(text);
  const min = allowZero ? 0 : 1;
  if (port < min || port > 65535) {
    throw new AddressError(`port ${port} is out of range (${min}..65535)`);
  }
  return port;
}

const HOST_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i;

function checkHostname(host: string): void {
  // Anything made of digits and dots is meant as IPv4 and must be a valid one
  // (so "10.0.0.256" or "010.0.0.1" is an error rather than a "hostname").
  if (/^[0-9.]+$/.test(host)) {
    if (!isIPv4(host)) throw new AddressError(`"${host}" is not a valid IPv4 address`);
    return;
  }
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > 253 || !name.split(".").every((l) => HOST_LABEL.test(l))) {
    throw new AddressError(`"${host}" is not a valid hostname or IP address`);
  }
}

/** 127.0.0.0/8, ::1 (also as a mapped address) and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const ip = canonicalIp(h);
  if (ip === null) return false;
  return /^127\./.test(ip) || ip === "::1" || /^::ffff:127\./.test(ip);
}

/**
 * A parsed `host:port` option. `text` is the string as written (for logs and
 * messages); `host` is ready for `server.listen()` / `net.connect()`: brackets
 * removed from IPv6 literals, `*` turned into "0.0.0.0".
 */
export interface Endpoint {
  readonly text: string;
  readonly host: string;
  readonly port: number;
}

// ---------------------------------------------------------------------------
// Specs of addresses, for the config

/** `host:port` → Endpoint. */
export function endpoint(options: { allowPortZero?: boolean } = {}): Spec<Endpoint> {
  const expected = 'a "host:port" string';
  return {
    expected,
    check(value, path, issues) {
      if (typeof value !== "string") return issue(issues, path, `must be ${expected}`);
      try {
        return { text: value, ...parseHostPort(value, options) };
      } catch (err) {
        if (err instanceof AddressError) return issue(issues, path, err.message);
        throw err;
      }
    },
  };
}

/** A list of CIDRs (bare addresses allowed) → CidrSet; each bad entry reported at its index. */
export function cidrSet(): Spec<CidrSet> {
  const entry = transform(str(), (s) => parseCidr(s).text, "a CIDR such as 10.0.0.0/8 or 2001:db8::/32");
  return transform(list(entry), (texts) => new CidrSet(texts), `a list of ${entry.expected}`);
}
