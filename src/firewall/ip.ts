// IP address parsing for FROM IP and FROM SUBNET: IPv4 dotted quads and IPv6
// (with `::` and an embedded IPv4 tail), normalised to bytes. IPv4-mapped IPv6
// addresses (::ffff:a.b.c.d, as Node reports v4 peers on dual-stack sockets)
// are treated as the IPv4 address. Pure: no node:net.

export type IpBytes = readonly number[];

function parseV4(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

function parseV6(s: string): number[] | undefined {
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  let tail: number[] = [];
  if (s.includes(".")) {
    // An embedded IPv4 address fills the last two hextets.
    const lastColon = s.lastIndexOf(":");
    const v4 = parseV4(s.slice(lastColon + 1));
    if (!v4) return undefined;
    tail = v4;
    s = s.slice(0, lastColon + 1);
    if (!s.endsWith("::")) s = s.slice(0, -1);
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const toHextets = (h: string): number[] | undefined => {
    if (h === "") return [];
    const out: number[] = [];
    for (const g of h.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = toHextets(halves[0]!);
  const rest = toHextets(halves[1] ?? "");
  if (!head || !rest) return undefined;
  const want = 8 - tail.length / 2;
  let hextets = head;
  if (halves.length === 2) {
    const fill = want - head.length - rest.length;
    if (fill < 1) return undefined;
    hextets = [...head, ...new Array<number>(fill).fill(0), ...rest];
  }
  if (hextets.length !== want) return undefined;
  const bytes: number[] = [];
  for (const h of hextets) bytes.push(h >> 8, h & 0xff);
  return [...bytes, ...tail];
}

/** Parse an address into 4 or 16 bytes; v4-mapped v6 becomes 4 bytes. */
export function parseIp(s: string): IpBytes | undefined {
  const str = s.trim().replace(/^\[|\]$/g, "");
  if (!str.includes(":")) return parseV4(str);
  const v6 = parseV6(str);
  if (!v6) return undefined;
  const mapped = v6.slice(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? v6.slice(12) : v6;
}

/** Canonical text: dotted quad, or eight lower-case hextets without compression. */
export function formatIp(bytes: IpBytes): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(":");
}

/** Parse `addr/bits`; bits defaults to the full length. */
export function parseCidr(s: string): { network: IpBytes; bits: number } | undefined {
  const slash = s.indexOf("/");
  const addr = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (!addr) return undefined;
  const max = addr.length * 8;
  let bits = max;
  if (slash >= 0) {
    const b = s.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(b)) return undefined;
    bits = Number(b);
    // A v4-mapped network written in v6 form counts its prefix over 128 bits.
    if (addr.length === 4 && s.includes(":")) bits -= 96;
    if (bits < 0 || bits > max) return undefined;
  }
  return { network: addr, bits };
}

export function ipInNetwork(ip: IpBytes, network: IpBytes, bits: number): boolean {
  if (ip.length !== network.length) return false;
  let i = 0;
  for (; bits >= 8; bits -= 8, i++) if (ip[i] !== network[i]) return false;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (ip[i]! & mask) === (network[i]! & mask);
}
