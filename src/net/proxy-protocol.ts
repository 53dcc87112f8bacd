// PROXY protocol v1 (text) and v2 (binary), both directions: parse the header a
// front load balancer sends us, and build the header we send the upstream
// server so it sees the real client address. Spec: HAProxy's proxy-protocol.txt
// (v1 §2.1: at most 107 bytes, CRLF-terminated; v2 §2.2: 16-byte fixed part,
// then addresses and TLVs). Pure functions; no sockets.

import { isIP } from "node:net";

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from("PROXY ", "latin1");
const V1_MAX = 107;
/** v2 headers larger than this are refused (addresses + generous TLVs). */
const V2_MAX = 16 + 216 + 1024;

/** An IP address and port as a socket or a PROXY header gives them (not a configured `host:port`: that is config's Endpoint). */
export interface TransportAddress {
  address: string;
  port: number;
}

export type ProxyParse =
  | { status: "incomplete" }
  | { status: "error"; message: string }
  /** `source`/`destination` are absent for LOCAL (v2) and UNKNOWN (v1) headers: use the socket's. */
  | { status: "ok"; length: number; version: 1 | 2; source?: TransportAddress; destination?: TransportAddress };

/** Could these first bytes be the start of a PROXY header (either version)? */
export function looksLikeProxyHeader(buf: Buffer): boolean {
  const n = Math.min(buf.length, V2_SIGNATURE.length);
  if (n === 0) return false;
  if (buf[0] === 0x50) return buf.subarray(0, Math.min(n, V1_PREFIX.length)).equals(V1_PREFIX.subarray(0, Math.min(n, V1_PREFIX.length)));
  return buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n));
}

export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return { status: "incomplete" };
  if (buf[0] === 0x50) return parseV1(buf);
  if (buf[0] === 0x0d) return parseV2(buf);
  return { status: "error", message: "no PROXY header" };
}

function parseV1(buf: Buffer): ProxyParse {
  const prefixLen = Math.min(buf.length, V1_PREFIX.length);
  if (!buf.subarray(0, prefixLen).equals(V1_PREFIX.subarray(0, prefixLen))) return { status: "error", message: "no PROXY header" };
  const crlf = buf.indexOf("\r\n", 0, "latin1");
  if (crlf < 0) return buf.length >= V1_MAX ? { status: "error", message: "v1 header longer than 107 bytes" } : { status: "incomplete" };
  if (crlf + 2 > V1_MAX) return { status: "error", message: "v1 header longer than 107 bytes" };
  const parts = buf.toString("latin1", 0, crlf).split(" ");
  const length = crlf + 2;
  if (parts[1] === "UNKNOWN") return { status: "ok", length, version: 1 };
  if (parts.length !== 6) return { status: "error", message: "v1 header must have 6 fields" };
  const [, proto, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const family = proto === "TCP4" ? 4 : proto === "TCP6" ? 6 : 0;
  if (family === 0) return { status: "error", message: `v1 protocol ${JSON.stringify(proto)} is not TCP4, TCP6 or UNKNOWN` };
  if (isIP(src) !== family || isIP(dst) !== family) return { status: "error", message: "v1 address does not match its protocol" };
  const sp = parsePort(sport);
  const dp = parsePort(dport);
  if (sp < 0 || dp < 0) return { status: "error", message: "v1 port out of range" };
  return { status: "ok", length, version: 1, source: { address: src, port: sp }, destination: { address: dst, port: dp } };
}

function parsePort(s: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

function parseV2(buf: Buffer): ProxyParse {
  const sigLen = Math.min(buf.length, V2_SIGNATURE.length);
  if (!buf.subarray(0, sigLen).equals(V2_SIGNATURE.subarray(0, sigLen))) return { status: "error", message: "no PROXY header" };
  if (buf.length < 16) return { status: "incomplete" };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { status: "error", message: "v2 version nibble is not 2" };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { status: "error", message: "v2 command is neither LOCAL nor PROXY" };
  const famProto = buf[13]!;
  const addrLen = buf.readUInt16BE(14);
  const length = 16 + addrLen;
  if (length > V2_MAX) return { status: "error", message: "v2 header too long" };
  if (buf.length < length) return { status: "incomplete" };
  // LOCAL: health checks from the balancer itself; the socket's addresses stand.
  if (cmd === 0) return { status: "ok", length, version: 2 };
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family === 0) return { status: "ok", length, version: 2 }; // UNSPEC
  if (transport !== 1) return { status: "error", message: "v2 transport is not STREAM" };
  if (family === 1) {
    if (addrLen < 12) return { status: "error", message: "v2 IPv4 address block too short" };
    const src = `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`;
    const dst = `${buf[20]}.${buf[21]}.${buf[22]}.${buf[23]}`;
    return { status: "ok", length, version: 2, source: { address: src, port: buf.readUInt16BE(24) }, destination: { address: dst, port: buf.readUInt16BE(26) } };
  }
  if (family === 2) {
    if (addrLen < 36) return { status: "error", message: "v2 IPv6 address block too short" };
    return {
      status: "ok", length, version: 2,
      source: { address: ipv6ToString(buf, 16), port: buf.readUInt16BE(48) },
      destination: { address: ipv6ToString(buf, 32), port: buf.readUInt16BE(50) },
    };
  }
  return { status: "error", message: "v2 address family is not INET or INET6" };
}

function ipv6ToString(buf: Buffer, off: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(off + i * 2).toString(16));
  // Canonical form is not needed for matching (CidrSet parses), but keep it short: collapse the longest zero run.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/** Node reports IPv4 clients on dual-stack sockets as ::ffff:a.b.c.d; PROXY wants the IPv4 form. */
export function unmapIPv4(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

export function encodeProxyV1(source: TransportAddress, destination: TransportAddress): Buffer {
  const s = unmapIPv4(source.address);
  const d = unmapIPv4(destination.address);
  const fs = isIP(s);
  if (fs === 0 || fs !== isIP(d)) return Buffer.from("PROXY UNKNOWN\r\n", "latin1");
  return Buffer.from(`PROXY TCP${fs} ${s} ${d} ${source.port} ${destination.port}\r\n`, "latin1");
}

export interface Tlv {
  type: number;
  value: Buffer;
}

export function encodeProxyV2(source: TransportAddress, destination: TransportAddress, tlvs: Tlv[] = []): Buffer {
  const s = unmapIPv4(source.address);
  const d = unmapIPv4(destination.address);
  const fs = isIP(s);
  const family = fs !== 0 && fs === isIP(d) ? fs : 0;
  const addrLen = family === 4 ? 12 : family === 6 ? 36 : 0;
  const tlvLen = tlvs.reduce((n, t) => n + 3 + t.value.length, 0);
  const out = Buffer.alloc(16 + addrLen + tlvLen);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = family === 4 ? 0x11 : family === 6 ? 0x21 : 0x00;
  out.writeUInt16BE(addrLen + tlvLen, 14);
  let off = 16;
  if (family === 4) {
    for (const part of s.split(".")) out[off++] = Number(part);
    for (const part of d.split(".")) out[off++] = Number(part);
    out.writeUInt16BE(source.port, off);
    out.writeUInt16BE(destination.port, off + 2);
    off += 4;
  } else if (family === 6) {
    writeIPv6(out, off, s);
    writeIPv6(out, off + 16, d);
    out.writeUInt16BE(source.port, off + 32);
    out.writeUInt16BE(destination.port, off + 34);
    off += 36;
  }
  for (const t of tlvs) {
    out[off] = t.type;
    out.writeUInt16BE(t.value.length, off + 1);
    t.value.copy(out, off + 3);
    off += 3 + t.value.length;
  }
  return out;
}

function writeIPv6(out: Buffer, off: number, addr: string): void {
  let text = addr;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  // An embedded IPv4 tail (::ffff:1.2.3.4 after unmapping is rare, but legal).
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  let v4: number[] | null = null;
  if (tail.includes(".")) {
    v4 = tail.split(".").map(Number);
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const a = head ? head.split(":") : [];
  const b = rest !== undefined && rest !== "" ? rest.split(":") : [];
  const groups = rest === undefined ? a : [...a, ...Array<string>(8 - a.length - b.length).fill("0"), ...b];
  for (let i = 0; i < 8; i++) out.writeUInt16BE(parseInt(groups[i] ?? "0", 16), off + i * 2);
  if (v4) for (let i = 0; i < 4; i++) out[off + 12 + i] = v4[i]!;
}
