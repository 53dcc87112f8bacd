// HTTP(S) block lists (docs/knowledge.md, "HTTP(S) lists"): one bounded GET
// per poll with ETag / If-Modified-Since, the body read as mod_firewall reads
// it (string.gmatch over the line pattern), the last good copy kept and saved.
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { compileLuaPattern, type LuaPattern } from "../firewall/lua-pattern.js";
import type { RemoteListOutcome } from "../metrics/definitions.js";
import { FAILURE_WARN_EVERY_MS, ListBase, safeUrl, type ListOwner } from "./list-base.js";

export const DEFAULT_TTL_SECONDS = 3600;
/** mod_firewall's default: one entry per line, CR LF or LF; a last line without its line end is not an entry. */
export const DEFAULT_LINE_PATTERN = "([^\r\n]+)\r?\n";

const PATTERNS = new Map<string, LuaPattern>();
function linePattern(source: string): LuaPattern {
  let p = PATTERNS.get(source);
  if (p === undefined) {
    p = compileLuaPattern(source, { mode: "gmatch" });
    PATTERNS.set(source, p);
  }
  return p;
}

/**
 * The entries of a list body, as mod_firewall reads it: every value
 * string.gmatch(body, pattern) yields (its first capture, or the whole match).
 * With a hash option the entries are hex digests, compared in lower case.
 */
export function parseListBody(body: string, pattern: string = DEFAULT_LINE_PATTERN, hash?: string): Set<string> {
  const entries = linePattern(pattern).tokens(body);
  return new Set(hash === undefined ? entries : entries.map((e) => e.toLowerCase()));
}


export type FetchResult =
  | { readonly kind: "response"; readonly status: number; readonly headers: IncomingHttpHeaders; readonly body: string }
  | { readonly kind: "timeout" | "too_large" | "network_error"; readonly message: string };

/**
 * One GET, bounded: the whole exchange within `timeoutMs`, a body of at most
 * `maxBytes` (announced or received). Redirects are not followed (Prosody's
 * net.http does not either). The body is read as UTF-8.
 */
export function fetchBounded(
  url: string,
  o: { readonly headers: Record<string, string>; readonly timeoutMs: number; readonly maxBytes: number; readonly insecure: boolean; readonly signal?: AbortSignal },
): Promise<FetchResult> {
  return new Promise((resolve) => {
    let done = false;
    let res: IncomingMessage | undefined;
    const finish = (r: FetchResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (r.kind !== "response") {
        req.destroy();
        res?.destroy();
      }
      resolve(r);
    };
    const u = new URL(url);
    const request = u.protocol === "https:" ? httpsRequest : httpRequest;
    const req = request(u, {
      method: "GET",
      headers: { "user-agent": "xmpp-guard", "accept-encoding": "identity", ...o.headers },
      agent: false,
      ...(u.protocol === "https:" ? { rejectUnauthorized: !o.insecure } : {}),
    });
    const timer = setTimeout(() => finish({ kind: "timeout", message: `no complete answer within ${o.timeoutMs} ms` }), o.timeoutMs);
    timer.unref();
    if (o.signal?.aborted === true) finish({ kind: "network_error", message: "closed" });
    else o.signal?.addEventListener("abort", () => finish({ kind: "network_error", message: "closed" }), { once: true });
    req.on("error", (err) => finish({ kind: "network_error", message: err.message }));
    req.on("response", (r) => {
      res = r;
      const status = r.statusCode ?? 0;
      if (status !== 200) {
        r.resume();
        r.on("end", () => finish({ kind: "response", status, headers: r.headers, body: "" }));
        r.on("error", (err) => finish({ kind: "network_error", message: err.message }));
        return;
      }
      const announced = Number(r.headers["content-length"]);
      if (Number.isFinite(announced) && announced > o.maxBytes) {
        finish({ kind: "too_large", message: `Content-Length ${announced} is over ${o.maxBytes} bytes` });
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      r.on("data", (c: Buffer) => {
        size += c.length;
        if (size > o.maxBytes) finish({ kind: "too_large", message: `body over ${o.maxBytes} bytes` });
        else chunks.push(c);
      });
      r.on("end", () => finish({ kind: "response", status, headers: r.headers, body: Buffer.concat(chunks).toString("utf8") }));
      r.on("error", (err) => finish({ kind: "network_error", message: err.message }));
      r.on("aborted", () => finish({ kind: "network_error", message: "response aborted" }));
    });
    req.end();
  });
}

/** An HTTP(S) list: polled every `ttl` seconds, kept on failure, saved on change. */
export class HttpList extends ListBase {
  readonly url: string;
  readonly ttlSeconds: number;
  readonly #pattern: string;
  readonly #hashName: string | undefined;
  readonly #insecure: boolean;
  #etag: string | null = null;
  #lastModified: string | null = null;
  #failures = 0;
  /** The last fetch failed (network, timeout, size, 4xx/5xx): the next try follows the retry steps. */
  #lastFailed = false;
  #lastWarnAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<RemoteListOutcome> | null = null;
  /** True once a fetch (or the saved copy) gave content. */
  #haveContent = false;
  #started: Promise<void> | null = null;
  /** Aborts the fetch in flight when the list is closed. */
  readonly #abort = new AbortController();

  constructor(owner: ListOwner, key: string, name: string, url: string, options: Readonly<Record<string, string>>) {
    super(owner, key, name, options.hash);
    this.url = url;
    this.ttlSeconds = options.ttl === undefined ? DEFAULT_TTL_SECONDS : Number(options.ttl);
    this.#pattern = options.pattern ?? DEFAULT_LINE_PATTERN;
    this.#hashName = options.hash;
    this.#insecure = options.checkcert === "never";
  }

  /** Load the saved copy, then fetch and keep polling. Resolves after the first fetch. */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    const store = this.owner.copyStore();
    if (store !== null) {
      try {
        const copy = await store.load(this.url);
        if (copy !== undefined && !this.#haveContent && !this.closed) {
          this.#apply(copy.body);
          this.#etag = copy.etag;
          this.#lastModified = copy.last_modified;
          this.owner.log.info({ list: this.name, url: safeUrl(this.url), entries: this.size, fetched_at: new Date(copy.fetched_at).toISOString() }, "remote list: saved copy loaded");
        }
      } catch (err) {
        this.owner.log.warn({ list: this.name, url: safeUrl(this.url), err: err instanceof Error ? err.message : String(err) }, "remote list: cannot read the saved copy");
      }
    }
    if (this.closed) return;
    await this.refresh();
  }

  /** Fetch now (one at a time) and schedule the next poll from the outcome. */
  refresh(): Promise<RemoteListOutcome> {
    if (this.#inflight !== null) return this.#inflight;
    clearTimeout(this.#timer);
    const p = this.#fetch().then((outcome) => {
      this.#inflight = null;
      this.#schedule();
      return outcome;
    });
    this.#inflight = p;
    return p;
  }

  #apply(body: string): void {
    this.setItems(parseListBody(body, this.#pattern, this.#hashName));
    this.#haveContent = true;
  }

  async #fetch(): Promise<RemoteListOutcome> {
    const opts = this.owner.options;
    const headers: Record<string, string> = {};
    if (this.#etag !== null) headers["if-none-match"] = this.#etag;
    if (this.#lastModified !== null) headers["if-modified-since"] = this.#lastModified;
    let r: FetchResult;
    try {
      r = await fetchBounded(this.url, { headers, timeoutMs: opts.timeout * 1000, maxBytes: opts.max_bytes, insecure: this.#insecure, signal: this.#abort.signal });
    } catch (err) {
      r = { kind: "network_error", message: err instanceof Error ? err.message : String(err) };
    }
    if (this.closed) return "network_error";
    this.#lastFailed = false;
    let outcome: RemoteListOutcome;
    if (r.kind !== "response") {
      outcome = r.kind;
      this.#failed(outcome, r.message);
    } else if (r.status === 200) {
      outcome = "ok";
      const etag = r.headers.etag;
      const lastModified = r.headers["last-modified"];
      this.#etag = typeof etag === "string" ? etag : null;
      this.#lastModified = typeof lastModified === "string" ? lastModified : null;
      this.#apply(r.body);
      this.#recovered();
      this.owner.log.debug({ list: this.name, url: safeUrl(this.url), entries: this.size }, "remote list: fetched");
      const store = this.owner.copyStore();
      if (store !== null) {
        store.save(this.url, { body: r.body, etag: this.#etag, last_modified: this.#lastModified, fetched_at: Date.now() }).catch((err: unknown) => {
          this.owner.log.warn({ list: this.name, url: safeUrl(this.url), err: err instanceof Error ? err.message : String(err) }, "remote list: cannot save the copy");
        });
      }
    } else if (r.status === 304) {
      outcome = "not_modified";
      this.#recovered();
      this.owner.log.debug({ list: this.name, url: safeUrl(this.url) }, "remote list: unchanged");
    } else {
      outcome = "http_error";
      if (r.status >= 400 && r.status <= 599) this.#failed(outcome, `HTTP ${r.status}`);
      else this.owner.log.warn({ list: this.name, url: safeUrl(this.url), status: r.status }, "remote list: unexpected status, list kept (redirects are not followed)");
    }
    this.count(outcome);
    return outcome;
  }

  #failed(outcome: RemoteListOutcome, message: string): void {
    this.#failures++;
    this.#lastFailed = true;
    const now = Date.now();
    const fields = { list: this.name, url: safeUrl(this.url), outcome, err: message, failures: this.#failures, entries: this.size };
    if (this.#failures === 1 || now - this.#lastWarnAt >= FAILURE_WARN_EVERY_MS) {
      this.#lastWarnAt = now;
      this.owner.log.warn(fields, "remote list: fetch failed, last good copy kept");
    } else {
      this.owner.log.debug(fields, "remote list: fetch failed again");
    }
  }

  #recovered(): void {
    if (this.#failures > 0) this.owner.log.info({ list: this.name, url: safeUrl(this.url), after: this.#failures }, "remote list: fetched again after failures");
    this.#failures = 0;
  }

  /** Seconds until the next poll for an outcome, before jitter. */
  #delaySeconds(): number {
    if (!this.#lastFailed) return this.ttlSeconds;
    const retry = this.owner.retrySeconds;
    return retry[Math.min(this.#failures, retry.length) - 1] ?? this.ttlSeconds;
  }

  /** Seconds until the next poll (before jitter), from the last outcome. */
  get nextDelaySeconds(): number {
    return this.#delaySeconds();
  }

  #schedule(): void {
    if (this.closed) return;
    const seconds = this.#delaySeconds() + Math.random() * this.owner.jitterSeconds;
    // setTimeout fires at once past 2^31-1 ms (about 24.8 days): a longer ttl polls that often.
    this.#timer = setTimeout(() => void this.refresh(), Math.min(2_147_483_647, Math.max(0, seconds * 1000)));
    this.#timer.unref();
  }

  override close(): void {
    clearTimeout(this.#timer);
    super.close();
    this.#abort.abort();
  }
}
