// Thin test wrapper around @xmpp/client 0.14: plain-TCP login (xmpp://host:port)
// with username/password, an inbox that keeps every stanza received once online
// so a reply can never slip past a waitFor(), and a bounded stop(). It turns off
// the library's auto-reconnect: a test client that dies must stay dead.

export interface XmlElement {
  name: string;
  attrs: Record<string, string | undefined>;
  children: Array<XmlElement | string>;
  is(name: string, xmlns?: string): boolean;
  getChild(name: string, xmlns?: string): XmlElement | undefined;
  getChildText(name: string, xmlns?: string): string | null;
  getChildren(name: string, xmlns?: string): XmlElement[];
  text(): string;
  toString(): string;
}

interface XmppJid {
  toString(): string;
  bare(): XmppJid;
}

/** The part of @xmpp/client's entity these helpers and the tests use. */
export interface XmppClient {
  status: string;
  jid: XmppJid | null;
  options: { service?: string; domain?: string };
  socket: { destroy?: () => void } | null;
  reconnect: { stop(): void };
  start(): Promise<XmppJid>;
  stop(): Promise<unknown>;
  send(el: XmlElement): Promise<void>;
  isSecure(): boolean;
  on(event: 'stanza', fn: (el: XmlElement) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  on(event: string, fn: (...args: never[]) => void): void;
  removeListener(event: string, fn: (...args: never[]) => void): void;
}

type SaslAuthenticate = (credentials: { username: string; password: string }, mechanism: string) => Promise<void>;

interface XmppClientModule {
  client(options: {
    service: string;
    domain: string;
    resource?: string;
    username?: string;
    password?: string;
    timeout?: number;
    credentials?: (authenticate: SaslAuthenticate, mechanisms: string[]) => Promise<void>;
  }): XmppClient;
  xml(name: string, attrs?: Record<string, string | number | undefined> | null, ...children: Array<XmlElement | string>): XmlElement;
}

// @xmpp/websocket opens a global WebSocket, which Node 20 has only behind a
// flag: lend it the ws library's (same API, including addEventListener).
(globalThis as { WebSocket?: unknown }).WebSocket ??= (await import('ws')).WebSocket;

// @xmpp/client ships no type declarations; importing through a variable
// specifier makes TypeScript treat it as `any`, which we narrow right here.
const XMPP_CLIENT = '@xmpp/client';
const lib = (await import(XMPP_CLIENT)) as XmppClientModule;

/** Build an element: `xml('message', { to, type: 'chat' }, xml('body', {}, 'hi'))`. */
export const xml = lib.xml;

export interface ConnectOptions {
  host: string;
  port: number;
  domain: string;
  username: string;
  password: string;
  resource?: string;
  /**
   * SASL mechanism to use, e.g. 'PLAIN'. Default: the library's choice, which on
   * a non-TLS socket is the first offered mechanism other than PLAIN (SCRAM-SHA-1).
   */
  mechanism?: string;
  /**
   * Direct TLS (XEP-0368, `xmpps://`). The certificate is verified as Node
   * does by default; tests with self-signed certificates must arrange trust.
   */
  directTls?: boolean;
  /** Send initial `<presence/>` after login (needed for messages to the bare JID). Default true. */
  presence?: boolean;
  /** Bound on the whole login. Default 10000 ms. */
  timeoutMs?: number;
  /**
   * Connect to this service URL instead of xmpp://host:port, e.g.
   * ws://127.0.0.1:5281/xmpp-websocket for XMPP over WebSocket (RFC 7395).
   */
  service?: string;
}

export interface TestClient {
  xmpp: XmppClient;
  /** Full JID bound by the server. */
  jid: string;
  /** Every error the entity emitted after login (stream errors, socket errors). */
  errors: Error[];
  send(el: XmlElement): Promise<void>;
  /** First stanza in the inbox (oldest first) or arriving later that matches; it is removed from the inbox. */
  waitFor(predicate: (el: XmlElement) => boolean, timeoutMs?: number): Promise<XmlElement>;
  /** Wait until `count` matching stanzas have been taken from the inbox. */
  collect(predicate: (el: XmlElement) => boolean, count: number, timeoutMs?: number): Promise<XmlElement[]>;
  /** Close the stream and socket; bounded (about 5 s), never rejects, idempotent. */
  stop(): Promise<void>;
}

/** Cap on unclaimed inbox stanzas, so a chatty test cannot grow memory without bound. */
const INBOX_MAX = 50_000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Log in over plain TCP and return once the session is online (resource bound). */
export async function connectClient(opts: ConnectOptions): Promise<TestClient> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const { mechanism } = opts;
  const xmpp = lib.client({
    service: opts.service ?? `${opts.directTls === true ? 'xmpps' : 'xmpp'}://${opts.host}:${opts.port}`,
    domain: opts.domain,
    resource: opts.resource,
    username: opts.username,
    password: opts.password,
    // Per-step timeout inside the library (stream open/close); default is 2 s.
    timeout: Math.min(timeoutMs, 5000),
    ...(mechanism !== undefined && {
      credentials: async (authenticate: SaslAuthenticate, offered: string[]) => {
        if (!offered.includes(mechanism)) {
          throw new Error(`SASL mechanism ${mechanism} not offered (offered: ${offered.join(', ')})`);
        }
        await authenticate({ username: opts.username, password: opts.password }, mechanism);
      },
    }),
  });
  // The reconnect module re-dials 1 s after any disconnect, which would keep a
  // finished test alive or resurrect a client the server just kicked.
  xmpp.reconnect.stop();

  const errors: Error[] = [];
  const inbox: XmlElement[] = [];
  const waiters = new Set<(el: XmlElement) => boolean>();
  // Without an 'error' listener an emitted error would throw out of the emitter.
  xmpp.on('error', (err: Error) => {
    errors.push(err);
  });
  xmpp.on('stanza', (el: XmlElement) => {
    for (const claim of waiters) if (claim(el)) return;
    inbox.push(el);
    if (inbox.length > INBOX_MAX) inbox.shift();
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      xmpp.reconnect.stop();
      try {
        if (xmpp.status !== 'offline') await withTimeout(xmpp.stop(), 5000, 'xmpp stop');
      } catch {
        xmpp.socket?.destroy?.();
      }
    })();
    return stopping;
  };

  try {
    const bound = await withTimeout(xmpp.start(), timeoutMs, `login of ${opts.username}@${opts.domain} via ${opts.host}:${opts.port}`);
    inbox.length = 0; // drop the login exchange (bind result); the inbox starts at "online"
    if (opts.presence ?? true) await xmpp.send(lib.xml('presence'));
    const jid = bound.toString();

    const waitFor = (predicate: (el: XmlElement) => boolean, ms = 5000): Promise<XmlElement> => {
      let i: number;
      try {
        i = inbox.findIndex(predicate);
      } catch (err) {
        return Promise.reject(err);
      }
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0] as XmlElement);
      return new Promise((resolve, reject) => {
        const claim = (el: XmlElement): boolean => {
          let match: boolean;
          try {
            match = predicate(el);
          } catch (err) {
            // A throwing predicate must not throw out of the socket's event handler.
            clearTimeout(timer);
            waiters.delete(claim);
            reject(err);
            return false;
          }
          if (!match) return false;
          clearTimeout(timer);
          waiters.delete(claim);
          resolve(el);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(claim);
          reject(new Error(`${jid}: no matching stanza within ${ms} ms (inbox holds ${inbox.length})`));
        }, ms);
        waiters.add(claim);
      });
    };

    const collect = async (predicate: (el: XmlElement) => boolean, count: number, ms = 10_000): Promise<XmlElement[]> => {
      const got: XmlElement[] = [];
      const deadline = Date.now() + ms;
      while (got.length < count) {
        const left = deadline - Date.now();
        try {
          got.push(await waitFor(predicate, Math.max(1, left)));
        } catch (err) {
          if (!(err instanceof Error && err.message.includes('no matching stanza'))) throw err;
          throw new Error(`${jid}: got ${got.length} of ${count} matching stanzas within ${ms} ms`);
        }
      }
      return got;
    };

    return {
      xmpp,
      jid,
      errors,
      send: (el) => xmpp.send(el),
      waitFor,
      collect,
      stop,
    };
  } catch (err) {
    await stop();
    const cause = err instanceof Error ? err : new Error(String(err));
    const others = errors.filter((e) => e !== err && e.message !== cause.message);
    const extra = others.length > 0 ? ` (also: ${others.map((e) => e.message).join('; ')})` : '';
    // @xmpp/client always takes STARTTLS when offered and verifies the
    // certificate against the system CAs; it has no per-connection TLS options.
    const hint = /certificate/i.test(cause.message)
      ? ' (the server offered STARTTLS: connectClient is for plain-TCP streams, e.g. Prosody in backend mode)'
      : '';
    throw new Error(`connectClient ${opts.username}@${opts.domain}: ${cause.message}${extra}${hint}`, { cause });
  }
}
