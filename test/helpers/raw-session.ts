// A c2s session over a raw socket, for tests that must write exact bytes
// after logging in (stanzas in another form, a stream header that declares
// a prefix). It logs in with SASL PLAIN in clear (Prosody in backend mode
// counts loopback as secure), binds a resource, and then reads what the
// server sends as parsed elements, kept in an inbox like the @xmpp/client
// wrapper's, so a reply cannot slip past a waitFor(). Every wait is bounded.

import { parse, type Element } from "ltx";
import { rawClient, type RawClient } from "./raw-client.js";
import { prefixPayload, streamHeader, type Form } from "./stanza-forms.js";

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

export interface RawStream {
  raw: RawClient;
  /** The form the stream header was written for (prefixed-on-header declares xmlns:c on it). */
  form: Form;
  /** Write bytes as they are. */
  send(data: string): void;
  /** First element (oldest first) in the inbox or arriving later that matches; removed from the inbox. */
  waitFor(pred: (el: Element) => boolean, timeoutMs?: number): Promise<Element>;
  /** Wait until `count` matching elements have been taken from the inbox. */
  collect(pred: (el: Element) => boolean, count: number, timeoutMs?: number): Promise<Element[]>;
  /** Take every matching element already in the inbox. */
  take(pred: (el: Element) => boolean): Element[];
  /** Resolves with the stream's closing text once the peer has closed the socket. */
  closed(timeoutMs?: number): Promise<string>;
  stop(): void;
}

export interface RawSession extends RawStream {
  /** The full JID the server bound. */
  jid: string;
  /**
   * A round trip to the server (an XEP-0199 ping): whatever the proxy or the
   * server wrote to this session before the answer has been read once it resolves.
   */
  sync(timeoutMs?: number): Promise<void>;
}

/**
 * Split the top-level elements out of a stream's text: stream headers,
 * prologs and the stream close are skipped, each complete element is parsed
 * with ltx. Returns the elements and the offset up to which text was used.
 */
function splitElements(text: string, from: number): { elements: Element[]; next: number } {
  const elements: Element[] = [];
  let i = from;
  for (;;) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length || text[i] !== "<") return { elements, next: i };
    if (text.startsWith("<?", i) || text.startsWith("<stream:stream", i) || text.startsWith("</stream:stream", i)) {
      const gt = text.indexOf(">", i);
      if (gt < 0) return { elements, next: i };
      i = gt + 1;
      continue;
    }
    // One element: count depth over start and end tags, skipping quoted attribute values.
    let depth = 0;
    let j = i;
    let end = -1;
    while (j < text.length) {
      const lt = text.indexOf("<", j);
      if (lt < 0) break;
      let k = lt + 1;
      let quote: string | null = null;
      while (k < text.length && (quote !== null || text[k] !== ">")) {
        if (quote === null && (text[k] === "'" || text[k] === '"')) quote = text[k]!;
        else if (quote !== null && text[k] === quote) quote = null;
        k++;
      }
      if (k >= text.length) break;
      if (text[lt + 1] === "/") depth--;
      else if (text[k - 1] !== "/") depth++;
      j = k + 1;
      if (depth === 0) {
        end = j;
        break;
      }
    }
    if (end < 0) return { elements, next: i };
    elements.push(parse(text.slice(i, end)) as Element);
    i = end;
  }
}

/** Open a raw c2s stream whose header is written for `form`, and read elements from it. */
export async function openRawStream(port: number, opts: { domain: string; form?: Form }): Promise<RawStream> {
  const form = opts.form ?? "plain";
  const raw = await rawClient(port);
  const inbox: Element[] = [];
  const waiters = new Set<() => void>();
  let offset = 0;
  const pump = (): void => {
    const r = splitElements(raw.text(), offset);
    offset = r.next;
    if (r.elements.length === 0) return;
    inbox.push(...r.elements);
    for (const w of waiters) w();
  };
  raw.socket.on("data", pump);
  raw.socket.on("close", () => {
    for (const w of waiters) w();
  });

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
        reject(new Error(`raw session: no matching element within ${timeoutMs} ms; inbox: ${inbox.map(String).join(" ").slice(-600)}; tail: ${raw.text().slice(-300)}`));
      }, timeoutMs);
      if (!check()) waiters.add(wake);
    });

  raw.write(streamHeader(form, { to: opts.domain }));
  return {
    raw,
    form,
    send: (data) => raw.write(data),
    waitFor,
    async collect(pred, count, timeoutMs = 10_000) {
      const got: Element[] = [];
      const deadline = Date.now() + timeoutMs;
      while (got.length < count) {
        try {
          got.push(await waitFor(pred, Math.max(1, deadline - Date.now())));
        } catch {
          throw new Error(`raw session: got ${got.length} of ${count} matching elements within ${timeoutMs} ms`);
        }
      }
      return got;
    },
    take(pred) {
      const out = inbox.filter(pred);
      for (const el of out) inbox.splice(inbox.indexOf(el), 1);
      return out;
    },
    async closed(timeoutMs = 5000) {
      await raw.closed(timeoutMs);
      return raw.text();
    },
    stop: () => raw.destroy(),
  };
}

let pings = 0;

/**
 * Log in over a raw socket: header (written for `form`), SASL PLAIN, restart
 * (same header), bind. With `presence`, also send initial presence. With
 * `prefixedBind`, the bind request's payload is written with a prefix
 * (<b:bind xmlns:b='urn:ietf:params:xml:ns:xmpp-bind'>): the same request to
 * the server.
 */
export async function rawLogin(port: number, opts: { domain: string; username: string; password: string; resource?: string; form?: Form; presence?: boolean; prefixedBind?: boolean }): Promise<RawSession> {
  const s = await openRawStream(port, { domain: opts.domain, form: opts.form });
  try {
    const isFeatures = (el: Element): boolean => el.name === "stream:features";
    await s.waitFor(isFeatures);
    const plain = Buffer.from(`\0${opts.username}\0${opts.password}`).toString("base64");
    s.send(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${plain}</auth>`);
    const outcome = await s.waitFor((el) => el.attrs.xmlns === NS_SASL && (el.name === "success" || el.name === "failure"));
    if (outcome.name !== "success") throw new Error(`SASL failed: ${outcome.toString()}`);
    s.send(streamHeader(s.form, { to: opts.domain }));
    await s.waitFor(isFeatures);
    const bind = `<iq type='set' id='bind-1'><bind xmlns='${NS_BIND}'><resource>${opts.resource ?? "raw"}</resource></bind></iq>`;
    s.send(opts.prefixedBind === true ? prefixPayload(bind, NS_BIND, "b") : bind);
    const bound = await s.waitFor((el) => el.name === "iq" && el.attrs.id === "bind-1");
    const jid = bound.getChild("bind", NS_BIND)?.getChildText("jid");
    if (bound.attrs.type !== "result" || !jid) throw new Error(`bind failed: ${bound.toString()}`);
    if (opts.presence === true) s.send("<presence/>");
    return {
      ...s,
      jid,
      async sync(timeoutMs = 5000) {
        const id = `sync-${++pings}`;
        s.send(`<iq type='get' id='${id}' to='${opts.domain}'><ping xmlns='urn:xmpp:ping'/></iq>`);
        await s.waitFor((el) => el.name === "iq" && el.attrs.id === id, timeoutMs);
      },
    };
  } catch (err) {
    s.stop();
    throw new Error(`rawLogin ${opts.username}@${opts.domain} (${s.form}): ${(err as Error).message}`, { cause: err });
  }
}
