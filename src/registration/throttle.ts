// The per-IP registration throttle of mod_register_limits, which is Prosody's
// util.throttle (docs/shaping.md, "Prosody's token bucket: util.throttle"):
// capacity `max`, refilled at max/period per second, starting full; the poll
// itself is pollThrottleState in src/shaping/token-bucket.ts. Pure: the state
// comes from and goes back to the RegistrationStore, time from a clock. This
// module adds the bucket key of a client address.
import { canonicalIp } from "../util/ip.js";
import { pollThrottleState, type ThrottlePoll, type ThrottleState } from "../shaping/token-bucket.js";

export interface ThrottleSpec {
  readonly capacity: number;
  /** Tokens added per millisecond. */
  readonly perMs: number;
}

/** Poll `state` (undefined = a full bucket) for one token at `now` (epoch ms). */
export function pollThrottle(state: ThrottleState | undefined, spec: ThrottleSpec, now: number): ThrottlePoll {
  return pollThrottleState(state, spec.capacity, spec.perMs, now);
}

function expandIPv6(canonical: string): number[] {
  const [head, tail] = canonical.includes("::") ? canonical.split("::") as [string, string] : [canonical, undefined];
  const left = head === "" ? [] : head.split(":").map((g) => parseInt(g, 16));
  if (tail === undefined) return left;
  const right = tail === "" ? [] : tail.split(":").map((g) => parseInt(g, 16));
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * The bucket key for a client address: the IPv4 address itself (also when it
 * arrives IPv4-mapped), or the IPv6 network of `ipv6Prefix` bits, since one
 * IPv6 client usually owns a whole /64. Null when `ip` is not an IP literal
 * (Prosody lets such sessions through unthrottled, and so do we).
 */
export function throttleKey(ip: string, ipv6Prefix: number): string | null {
  const c = canonicalIp(ip);
  if (c === null) return null;
  if (!c.includes(":")) return c;
  const mapped = /^::ffff:([0-9.]+)$/.exec(c);
  if (mapped !== null) return mapped[1]!;
  if (ipv6Prefix >= 128) return c;
  const groups = expandIPv6(c);
  const out: string[] = [];
  for (let i = 0; i < 8; i++) {
    const bits = Math.max(0, Math.min(16, ipv6Prefix - 16 * i));
    const mask = bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
    out.push((groups[i]! & mask).toString(16));
  }
  // Not RFC 5952 compressed, but stable and unambiguous, which is all a key needs.
  return `${out.join(":")}/${ipv6Prefix}`;
}
