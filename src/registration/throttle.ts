// The per-IP registration throttle of mod_register_limits, which is Prosody's
// util.throttle (docs/shaping.md, "Prosody's token bucket: util.throttle"):
// capacity `max`, refilled at max/period per second, starting full; the poll
// itself is pollThrottleState in src/shaping/token-bucket.ts. Pure: the state
// comes from and goes back to the RegistrationStore, time from a clock. This
// module adds the bucket key of a client address.
import { addressKey } from "../util/ip.js";
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

/**
 * The bucket key for a client address: the IPv4 address itself (also when it
 * arrives IPv4-mapped), or the IPv6 network of `ipv6Prefix` bits, since one
 * IPv6 client usually owns a whole /64. Null when `ip` is not an IP literal
 * (Prosody lets such sessions through unthrottled, and so do we).
 */
export function throttleKey(ip: string, ipv6Prefix: number): string | null {
  return addressKey(ip, ipv6Prefix);
}
