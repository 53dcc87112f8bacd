// Whether each listener's upstream server answers, for /readyz. A session's
// recent successful dial is proof enough; otherwise (no traffic, or the last
// dial failed) the check opens a TCP connection itself and closes it at once,
// like a load balancer's health check. Results are kept briefly so that a
// probe every few seconds costs the server one connection per upstream.
import { connect } from "node:net";
import type { Endpoint } from "../config/schema.js";

export interface UpstreamReport {
  readonly listener: string;
  readonly upstream: string;
  readonly ok: boolean;
  /** Why not (ECONNREFUSED, timeout…); absent when ok. */
  readonly error?: string;
}

/** A dial by a real session this recent counts as proof. */
const FRESH_MS = 10_000;
/** Probe results are reused this long. */
const CACHE_MS = 2000;
const PROBE_TIMEOUT_MS = 2000;

export interface PassiveStatus {
  readonly ok: boolean;
  /** performance.now() of the outcome. */
  readonly at: number;
}

export class UpstreamChecker {
  readonly #cache = new Map<string, { at: number; result: Promise<string | null> }>();

  /** `listeners`: name, upstream and (single process) what its sessions last saw. */
  async check(listeners: ReadonlyArray<{ name: string; upstream: Endpoint; passive?: PassiveStatus | null }>): Promise<UpstreamReport[]> {
    const now = performance.now();
    return Promise.all(
      listeners.map(async (l) => {
        if (l.passive?.ok === true && now - l.passive.at < FRESH_MS) return { listener: l.name, upstream: l.upstream.text, ok: true };
        const error = await this.#probe(l.upstream, now);
        return error === null ? { listener: l.name, upstream: l.upstream.text, ok: true } : { listener: l.name, upstream: l.upstream.text, ok: false, error };
      }),
    );
  }

  #probe(up: Endpoint, now: number): Promise<string | null> {
    const key = `${up.host}|${up.port}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined && now - cached.at < CACHE_MS) return cached.result;
    const result = new Promise<string | null>((resolve) => {
      const sock = connect({ host: up.host, port: up.port });
      const done = (err: string | null): void => {
        clearTimeout(timer);
        sock.destroy();
        resolve(err);
      };
      const timer = setTimeout(() => done(`no answer within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS);
      sock.once("connect", () => done(null));
      sock.once("error", (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
    });
    this.#cache.set(key, { at: now, result });
    return result;
  }
}
