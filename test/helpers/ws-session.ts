// An XMPP over WebSocket (RFC 7395) session for tests that must write exact
// messages: the WebSocket counterpart of raw-session.ts. It opens a
// WebSocket (subprotocol `xmpp`), logs in with SASL PLAIN, restarts with a
// new <open/>, binds, and keeps every element the server sends (one per
// message, parsed with ltx) in an inbox. It also records every message as
// text, the close code and reason, and lets a test send anything (binary
// frames, several elements in one message). Every wait is bounded.

import { parse, type Element } from "ltx";
import { WebSocket, type ClientOptions } from "ws";
import { prefixPayload, type Form } from "./stanza-forms.js";

export const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

export interface WsStream {
  ws: WebSocket;
  form: Form;
  /** Every message received, as text, in order. */
  readonly messages: string[];
  /** Send one text message as it is. */
  send(data: string): void;
  /** Send bytes as one binary message. */
  sendBinary(data: Buffer): void;
  waitFor(pred: (el: Element) => boolean, timeoutMs?: number): Promise<Element>;
  collect(pred: (el: Element) => boolean, count: number, timeoutMs?: number): Promise<Element[]>;
  take(pred: (el: Element) => boolean): Element[];
  /** Resolves with the close code and reason once the WebSocket has closed. */
  closed(timeoutMs?: number): Promise<{ code: number; reason: string }>;
  stop(): void;
}

export interface WsSession extends WsStream {
  jid: string;
  /** An XEP-0199 ping round trip: everything sent to this session before it has arrived once it resolves. */
  sync(timeoutMs?: number): Promise<void>;
}

export function openMessage(domain: string, extra = ""): string {
  return `<open xmlns='${NS_FRAMING}' to='${domain}' version='1.0'${extra}/>`;
}

/** A WebSocket to `url` offering `protocols`; resolves once open (rejects with the HTTP status on a refused handshake). */
export function connectWs(url: string, protocols: string[] = ["xmpp"], options: ClientOptions & { servername?: string } = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`WebSocket ${url}: not open within 5 s`));
    }, 5000);
    ws.once("open", () => {
      clearTimeout(timer);
      resolve(ws);
    });
    ws.once("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body.trim()}`), { status: res.statusCode, body })));
    });
    ws.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * A WebSocket to `url` with a stream on it from the start (a server may send
 * in the same read as its handshake answer); resolves once open.
 */
export async function connectStream(url: string, protocols: string[] = ["xmpp"], options: ClientOptions & { servername?: string } = {}, form: Form = "plain"): Promise<WsStream> {
  const ws = new WebSocket(url, protocols, options);
  const s = wsStream(ws, form);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`WebSocket ${url}: not open within 5 s`));
    }, 5000);
    ws.once("open", () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode }));
    });
    ws.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  return s;
}

/** A stream over a WebSocket (open or not yet): everything received is kept; nothing is sent yet. */
export function wsStream(ws: WebSocket, form: Form = "plain"): WsStream {
  const inbox: Element[] = [];
  const messages: string[] = [];
  const waiters = new Set<() => void>();
  let closeInfo: { code: number; reason: string } | null = null;
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    const text = data.toString("utf8");
    messages.push(isBinary ? `(binary) ${text}` : text);
    try {
      inbox.push(parse(text) as Element);
    } catch {
      // kept in `messages`; a test that cares looks there
    }
    for (const w of waiters) w();
  });
  ws.on("close", (code: number, reason: Buffer) => {
    closeInfo = { code, reason: reason.toString() };
    for (const w of waiters) w();
  });
  ws.on("error", () => {});
  const waitFor = (pred: (el: Element) => boolean, timeoutMs = 5000): Promise<Element> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const k = inbox.findIndex(pred);
        if (k < 0) return false;
        clearTimeout(timer);
        waiters.delete(wake);
        resolve(inbox.splice(k, 1)[0]!);
        return true;
      };
      const wake = (): void => void check();
      const timer = setTimeout(() => {
        waiters.delete(wake);
        reject(new Error(`ws session: no matching element within ${timeoutMs} ms; last messages: ${messages.slice(-5).join(" | ").slice(-800)}${closeInfo ? `; closed ${closeInfo.code}` : ""}`));
      }, timeoutMs);
      if (!check()) waiters.add(wake);
    });
  return {
    ws,
    form,
    messages,
    send: (data) => ws.send(data),
    sendBinary: (data) => ws.send(data, { binary: true }),
    waitFor,
    async collect(pred, count, timeoutMs = 10_000) {
      const got: Element[] = [];
      const deadline = Date.now() + timeoutMs;
      while (got.length < count) {
        try {
          got.push(await waitFor(pred, Math.max(1, deadline - Date.now())));
        } catch {
          throw new Error(`ws session: got ${got.length} of ${count} matching elements within ${timeoutMs} ms`);
        }
      }
      return got;
    },
    take(pred) {
      const out = inbox.filter(pred);
      for (const el of out) inbox.splice(inbox.indexOf(el), 1);
      return out;
    },
    closed(timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          if (closeInfo === null) return false;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve(closeInfo);
          return true;
        };
        const wake = (): void => void check();
        const timer = setTimeout(() => {
          waiters.delete(wake);
          reject(new Error(`ws session: still open after ${timeoutMs} ms; last messages: ${messages.slice(-5).join(" | ").slice(-800)}`));
        }, timeoutMs);
        if (!check()) waiters.add(wake);
      });
    },
    stop: () => ws.terminate(),
  };
}

let pings = 0;

/**
 * Log in over XMPP-over-WebSocket: <open/>, SASL PLAIN, a new <open/>, bind
 * (the payload prefixed with `prefixedBind`), initial presence with
 * `presence`. `openExtra` is written into both <open/> elements as is.
 */
export async function wsLogin(url: string, opts: { domain: string; username: string; password: string; resource?: string; form?: Form; presence?: boolean; prefixedBind?: boolean; openExtra?: string; wsOptions?: ClientOptions }): Promise<WsSession> {
  const s = await connectStream(url, ["xmpp"], opts.wsOptions, opts.form ?? "plain");
  try {
    const isFeatures = (el: Element): boolean => el.name === "stream:features";
    s.send(openMessage(opts.domain, opts.openExtra));
    await s.waitFor(isFeatures);
    const plain = Buffer.from(`\0${opts.username}\0${opts.password}`).toString("base64");
    s.send(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${plain}</auth>`);
    const outcome = await s.waitFor((el) => el.attrs.xmlns === NS_SASL && (el.name === "success" || el.name === "failure"));
    if (outcome.name !== "success") throw new Error(`SASL failed: ${outcome.toString()}`);
    s.send(openMessage(opts.domain, opts.openExtra));
    await s.waitFor(isFeatures);
    const bind = `<iq xmlns='jabber:client' type='set' id='bind-1'><bind xmlns='${NS_BIND}'><resource>${opts.resource ?? "ws"}</resource></bind></iq>`;
    s.send(opts.prefixedBind === true ? prefixPayload(bind, NS_BIND, "b") : bind);
    const bound = await s.waitFor((el) => el.name === "iq" && el.attrs.id === "bind-1");
    const jid = bound.getChild("bind", NS_BIND)?.getChildText("jid");
    if (bound.attrs.type !== "result" || !jid) throw new Error(`bind failed: ${bound.toString()}`);
    if (opts.presence === true) s.send("<presence xmlns='jabber:client'/>");
    return {
      ...s,
      jid,
      async sync(timeoutMs = 5000) {
        const id = `sync-${++pings}`;
        s.send(`<iq xmlns='jabber:client' type='get' id='${id}' to='${opts.domain}'><ping xmlns='urn:xmpp:ping'/></iq>`);
        await s.waitFor((el) => el.name === "iq" && el.attrs.id === id, timeoutMs);
      },
    };
  } catch (err) {
    s.stop();
    throw new Error(`wsLogin ${opts.username}@${opts.domain}: ${(err as Error).message}`, { cause: err });
  }
}
