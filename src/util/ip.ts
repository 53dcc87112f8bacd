// IP addresses and CIDRs, in one place for the whole proxy: the config's
// address lists (CidrSet: registration allowlist, accept_proxy_from, admin
// filters), registration throttle keys (canonicalIp) and the firewall's
// FROM IP / FROM SUBNET (parseCidr, parseIp). Pure: no sockets, no DNS, no
// `node:net`. IPv4 and IPv6 share one representation, four 32-bit words in
// IPv4-mapped IPv6 space (RFC 4291 §2.5.5.2), so `::ffff:192.0.2.1`, which Node
// reports for IPv4 peers on dual-stack sockets, matches `192.0.2.0/24`. The
// scanner accepts what inet_pton accepts (no leading zeros in IPv4, no
// brackets), as Prosody's util.ip does.

/** Thrown by the parsers in this module; the message never repeats the input's position. */
export class AddressError extends Error {
  override name = "AddressError";
}

// ---------------------------------------------------------------------------
// IP parsing. Hand-written scanners over char codes: `CidrSet.has` runs per
// accepted connection, so it parses once into a reusable word buffer.

const SCRATCH = new Int32Array(4);
const GROUPS = new Uint16Array(8);

/** Returns the IPv4 address in [start, end) as an unsigned 32-bit number, or -1. */
function parseIPv4(s: string, start: number, end: number): number {
  let value = 0;
  let octets = 0;
  let i = start;
  while (octets < 4) {
    const first = i;
    let octet = 0;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break; // '0'..'9'
      octet = octet * 10 + (c - 48);
      i++;
    }
    const digits = i - first;
    // No leading zeros: inet_aton would read "010" as octal 8.
    if (digits === 0 || digits > 3 || octet > 255 || (digits > 1 && s.charCodeAt(first) === 48)) return -1;
    value = value * 256 + octet;
    octets++;
    if (octets < 4) {
      if (s.charCodeAt(i) !== 46) return -1; // '.'
      i++;
    }
  }
  return i === end ? value : -1;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

/** Parses an IPv6 address (RFC 4291 §2.2 text forms) in [start, end) into GROUPS. */
function parseIPv6(s: string, start: number, end: number): boolean {
  let count = 0; // groups written to GROUPS
  let gap = -1; // index in GROUPS where "::" stands
  let i = start;
  if (s.charCodeAt(i) === 58 && s.charCodeAt(i + 1) === 58) {
    gap = 0;
    i += 2;
    if (i === end) {
      GROUPS.fill(0);
      return true;
    }
  }
  for (;;) {
    const first = i;
    let group = 0;
    while (i < end && i - first < 5) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      group = group * 16 + h;
      i++;
    }
    if (i < end && s.charCodeAt(i) === 46) {
      // Dotted IPv4 tail, e.g. ::ffff:192.0.2.1: it must be the last two groups.
      const v4 = parseIPv4(s, first, end);
      if (v4 < 0 || count > 6) return false;
      GROUPS[count++] = v4 >>> 16;
      GROUPS[count++] = v4 & 0xffff;
      break;
    }
    if (i === first || i - first > 4 || count === 8) return false;
    GROUPS[count++] = group;
    if (i === end) break;
    if (s.charCodeAt(i) !== 58) return false; // ':'
    i++;
    if (s.charCodeAt(i) === 58) {
      if (gap >= 0) return false; // a second "::"
      gap = count;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // trailing single ':'
    }
  }
  if (gap < 0) return count === 8;
  if (count > 7) return false;
  const tail = count - gap;
  GROUPS.copyWithin(8 - tail, gap, count);
  GROUPS.fill(0, gap, 8 - tail);
  return true;
}

/**
 * Parses an IPv4 or IPv6 address into four words in mapped space (IPv4 becomes
 * ::ffff:a.b.c.d). With `allowZone`, an IPv6 zone suffix ("%eth0") is accepted and ignored.
 */
function parseIpInto(s: string, out: Int32Array, allowZone: boolean): boolean {
  let end = s.length;
  if (s.indexOf(":") < 0) {
    const v4 = parseIPv4(s, 0, end);
    if (v4 < 0) return false;
    out[0] = 0;
    out[1] = 0;
    out[2] = 0xffff;
    out[3] = v4 | 0;
    return true;
  }
  const zone = s.indexOf("%");
  if (zone >= 0) {
    if (!allowZone || zone === end - 1 || !/^[A-Za-z0-9_.-]+$/.test(s.slice(zone + 1))) return false;
    end = zone;
  }
  if (!parseIPv6(s, 0, end)) return false;
  for (let w = 0; w < 4; w++) out[w] = ((GROUPS[2 * w]! << 16) | GROUPS[2 * w + 1]!) | 0;
  return true;
}

function isMapped(words: ArrayLike<number>): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

function formatIPv4(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** RFC 5952 text: lowercase, no leading zeros, longest run (≥ 2) of zero groups as "::". */
function formatIPv6(words: ArrayLike<number>): string {
  if (isMapped(words)) return `::ffff:${formatIPv4(words[3]!)}`;
  const groups: number[] = [];
  for (let w = 0; w < 4; w++) groups.push((words[w]! >>> 16) & 0xffff, words[w]! & 0xffff);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/**
 * Canonical text of an IP literal (dotted quad, or RFC 5952 IPv6 with any zone
 * dropped), or null when `s` is not an IP literal. Used to compare addresses.
 */
export function canonicalIp(s: string): string | null {
  if (!parseIpInto(s, SCRATCH, true)) return null;
  return s.includes(":") ? formatIPv6(SCRATCH) : formatIPv4(SCRATCH[3]! >>> 0);
}

// ---------------------------------------------------------------------------
// CIDR

export interface Cidr {
  /** Canonical text, e.g. "10.0.0.0/8", "2001:db8::/32" (bare addresses get /32 or /128). */
  readonly text: string;
  readonly family: 4 | 6;
  /** Prefix length in the family's own terms: 0..32 or 0..128. */
  readonly prefix: number;
  /** Network and mask as four signed 32-bit words in IPv4-mapped IPv6 space. */
  readonly network: readonly [number, number, number, number];
  readonly mask: readonly [number, number, number, number];
}

export interface CidrOptions {
  /**
   * Read it as Prosody's util.ip.parse_cidr does (FROM SUBNET): host bits
   * below the prefix are ignored rather than refused, the prefix may have
   * leading zeros, and an IPv6 zone ("%eth0") or brackets around the address
   * are accepted.
   */
  readonly lenient?: boolean;
}

/**
 * Parses "a.b.c.d/n", "v6/n", or a bare address (a single host). Host bits below
 * the prefix must be zero: "10.0.0.1/8" is rejected rather than guessed at
 * (unless `lenient`).
 */
export function parseCidr(s: string, options: CidrOptions = {}): Cidr {
  const lenient = options.lenient === true;
  const slash = s.indexOf("/");
  let addr = slash < 0 ? s : s.slice(0, slash);
  if (lenient && addr.startsWith("[") && addr.endsWith("]")) addr = addr.slice(1, -1);
  const words = new Int32Array(4);
  if (!parseIpInto(addr, words, lenient)) throw new AddressError(`"${addr}" is not a valid IPv4 or IPv6 address`);
  const family = addr.includes(":") ? 6 : 4;
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const text = lenient ? s.slice(slash + 1).trim() : s.slice(slash + 1);
    if (!(lenient ? /^[0-9]{1,3}$/ : /^(0|[1-9][0-9]{0,2})$/).test(text) || Number(text) > max) {
      throw new AddressError(`invalid prefix length "/${text}" (expected 0..${max})`);
    }
    prefix = Number(text);
  }
  const mappedPrefix = family === 4 ? prefix + 96 : prefix;
  const mask: [number, number, number, number] = [0, 0, 0, 0];
  const network: [number, number, number, number] = [0, 0, 0, 0];
  let hostBits = false;
  for (let w = 0; w < 4; w++) {
    const bits = Math.min(32, Math.max(0, mappedPrefix - 32 * w));
    const m = bits === 0 ? 0 : (~0 << (32 - bits)) | 0;
    mask[w] = m;
    network[w] = words[w]! & m;
    if (network[w] !== words[w]) hostBits = true;
  }
  const networkText = family === 4 ? formatIPv4(network[3] >>> 0) : formatIPv6(network);
  const text = `${networkText}/${prefix}`;
  if (hostBits && !lenient) throw new AddressError(`"${s}" has host bits set (did you mean ${text}?)`);
  return { text, family, prefix, network, mask };
}

/**
 * An immutable set of CIDRs. `has()` parses the candidate once and compares word
 * by word against precomputed network/mask pairs; IPv4, IPv4-mapped IPv6 and
 * IPv6 all live in one space, so each family's CIDRs match either spelling.
 */
export class CidrSet {
  /** Canonical texts, in the order given (duplicates kept). */
  readonly entries: readonly string[];
  /** [network0..3, mask0..3] per CIDR. */
  readonly #table: Int32Array;
  readonly #probe = new Int32Array(4);

  /** Throws AddressError on the first invalid entry. */
  constructor(list: readonly string[]) {
    const cidrs = list.map((s) => parseCidr(s));
    this.entries = Object.freeze(cidrs.map((c) => c.text));
    this.#table = new Int32Array(cidrs.length * 8);
    cidrs.forEach((c, i) => {
      this.#table.set(c.network, i * 8);
      this.#table.set(c.mask, i * 8 + 4);
    });
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * True when `ip` lies in any CIDR. Input that is not an IP literal (including
   * the undefined-ish "" a destroyed socket reports) is simply not a member.
   */
  has(ip: string): boolean {
    const p = this.#probe;
    if (this.#table.length === 0 || !parseIpInto(ip, p, true)) return false;
    const t = this.#table;
    const p0 = p[0]!;
    const p1 = p[1]!;
    const p2 = p[2]!;
    const p3 = p[3]!;
    for (let i = 0; i < t.length; i += 8) {
      if (
        (p3 & t[i + 7]!) === t[i + 3] &&
        (p2 & t[i + 6]!) === t[i + 2] &&
        (p1 & t[i + 5]!) === t[i + 1] &&
        (p0 & t[i + 4]!) === t[i]
      ) {
        return true;
      }
    }
    return false;
  }

  /** Serialises as its list, so a logged or diffed Config shows the CIDR texts. */
  toJSON(): readonly string[] {
    return this.entries;
  }
}

/**
 * A stable key for a client address: the IPv4 address itself (also when it
 * arrives IPv4-mapped), or the IPv6 network of `ipv6Prefix` bits as eight
 * uncompressed hextets and the prefix ("2001:db8:0:0:0:0:0:0/64"; with 128 the
 * RFC 5952 address). Null when `ip` is not an IP literal.
 */
export function addressKey(ip: string, ipv6Prefix: number): string | null {
  if (!parseIpInto(ip, SCRATCH, true)) return null;
  if (isMapped(SCRATCH)) return formatIPv4(SCRATCH[3]! >>> 0);
  if (ipv6Prefix >= 128) return formatIPv6(SCRATCH);
  const out: string[] = [];
  for (let i = 0; i < 8; i++) {
    const w = SCRATCH[i >> 1]!;
    const group = i % 2 === 0 ? (w >>> 16) & 0xffff : w & 0xffff;
    const bits = Math.max(0, Math.min(16, ipv6Prefix - 16 * i));
    const mask = bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
    out.push((group & mask).toString(16));
  }
  return `${out.join(":")}/${ipv6Prefix}`;
}

/** True when `s` is an IP literal (IPv4, or IPv6 with a zone when `allowZone`). */
export function isIpLiteral(s: string, allowZone: boolean): boolean {
  return parseIpInto(s, SCRATCH, allowZone);
}

/** True when `s` is an IPv4 dotted quad (no leading zeros). */
export function isIPv4(s: string): boolean {
  return parseIPv4(s, 0, s.length) >= 0;
}

// ---------------------------------------------------------------------------
// Addresses as bytes, for the firewall's FROM IP / FROM SUBNET: 4 bytes for
// IPv4 (also when written IPv4-mapped), 16 for IPv6.

export type IpBytes = readonly number[];

/** Parse an address (surrounding blanks, brackets and a zone allowed) into 4 or 16 bytes; v4-mapped v6 becomes 4 bytes. */
export function parseIp(s: string): IpBytes | undefined {
  let str = s.trim();
  if (str.startsWith("[") && str.endsWith("]")) str = str.slice(1, -1);
  if (!parseIpInto(str, SCRATCH, true)) return undefined;
  return wordsToBytes(SCRATCH, isMapped(SCRATCH));
}

function wordsToBytes(words: ArrayLike<number>, v4: boolean): number[] {
  const out: number[] = [];
  for (let w = v4 ? 3 : 0; w < 4; w++) {
    const v = words[w]!;
    out.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  }
  return out;
}

/**
 * A CIDR as the network bytes and prefix ipInNetwork takes: an IPv4 network,
 * or an IPv6 one that lies in IPv4-mapped space, as 4 bytes; undefined for an
 * IPv4-mapped network written with a prefix shorter than /96.
 */
export function cidrBytes(c: Cidr): { network: IpBytes; bits: number } | undefined {
  if (c.family === 4) return { network: wordsToBytes(c.network, true), bits: c.prefix };
  if (isMapped(c.network)) return c.prefix >= 96 ? { network: wordsToBytes(c.network, true), bits: c.prefix - 96 } : undefined;
  return { network: wordsToBytes(c.network, false), bits: c.prefix };
}

/** Canonical text: dotted quad, or eight lower-case hextets without compression. */
export function formatIp(bytes: IpBytes): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(":");
}

export function ipInNetwork(ip: IpBytes, network: IpBytes, bits: number): boolean {
  if (ip.length !== network.length) return false;
  let i = 0;
  for (; bits >= 8; bits -= 8, i++) if (ip[i] !== network[i]) return false;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (ip[i]! & mask) === (network[i]! & mask);
}
