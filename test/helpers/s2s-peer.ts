// Server-to-server test parts for dialback (XEP-0220) against a real Prosody:
//
// - startDialbackAuthority(): a scripted "authoritative server" for made-up
//   domains. Prosody reaches it through test/harness/plugins/
//   mod_s2s_test_routes.lua (s2s_test_routes = { [domain] = port }). It
//   accepts Prosody's own dialback on that connection and answers Prosody's
//   <db:verify/> requests: valid for the keys it issued, invalid otherwise.
// - s2sPeer(): a raw originating server that opens a stream to Prosody (or to
//   the proxy in front of it), writes whatever `from` it likes in its stream
//   header, and asks to be verified by dialback as some domain with a key from
//   the authority. Then it writes raw stanzas.
//
// Every wait is bounded.

import { randomBytes } from "node:crypto";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { rawClient, type RawClient } from "./raw-client.js";
import { NS_SERVER, streamHeader, type Form } from "./stanza-forms.js";

const NS_DIALBACK = "jabber:server:dialback";
const DB_FEATURE = "<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>";

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}=(?:'([^']*)'|"([^"]*)")`).exec(tag);
  return m === null ? undefined : (m[1] ?? m[2]);
}

export interface DialbackAuthority {
  port: number;
  /** A fresh key this authority will vouch for. */
  issueKey(): string;
  /** The <db:verify/> requests answered so far: domain and verdict. */
  verified: Array<{ domain: string; valid: boolean }>;
  close(): Promise<void>;
}

export async function startDialbackAuthority(): Promise<DialbackAuthority> {
  const keys = new Set<string>();
  const verified: Array<{ domain: string; valid: boolean }> = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let text = "";
    let used = 0;
    socket.on("data", (d: Buffer) => {
      text += d.toString("utf8");
      for (;;) {
        const rest = text.slice(used);
        const header = /^\s*(?:<\?xml[^>]*\?>\s*)?(<stream:stream\b[^>]*>)/.exec(rest);
        if (header !== null) {
          // Prosody opens its outgoing stream: answer as the domain it asked for.
          const domain = attr(header[1]!, "to");
          socket.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='${NS_DIALBACK}' ` +
            `id='auth-${randomBytes(4).toString("hex")}' from='${domain}' to='${attr(header[1]!, "from")}' version='1.0'>${DB_FEATURE}`);
          used += header[0].length;
          continue;
        }
        const result = /^\s*(<db:result\b[^>]*>)[^<]*<\/db:result>/.exec(rest);
        if (result !== null) {
          // Prosody's own dialback on this connection: accept it, we play the other side.
          socket.write(`<db:result from='${attr(result[1]!, "to")}' to='${attr(result[1]!, "from")}' type='valid'/>`);
          used += result[0].length;
          continue;
        }
        const verify = /^\s*(<db:verify\b[^>]*>)([^<]*)<\/db:verify>/.exec(rest);
        if (verify !== null) {
          const tag = verify[1]!;
          const valid = keys.has(verify[2]!);
          verified.push({ domain: attr(tag, "to") ?? "", valid });
          socket.write(`<db:verify from='${attr(tag, "to")}' to='${attr(tag, "from")}' id='${attr(tag, "id")}' type='${valid ? "valid" : "invalid"}'>${verify[2]}</db:verify>`);
          used += verify[0].length;
          continue;
        }
        const other = /^\s*(<\/stream:stream>|<[^>]*\/>|<([\w:]+)\b[^>]*>[\s\S]*?<\/\2>)/.exec(rest);
        if (other !== null) {
          // Anything else Prosody sends this way (a stream close, a stanza) is not our business.
          if (other[1] === "</stream:stream>") socket.end("</stream:stream>");
          used += other[0].length;
          continue;
        }
        break;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    issueKey() {
      const key = randomBytes(16).toString("hex");
      keys.add(key);
      return key;
    },
    verified,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface S2sPeer {
  raw: RawClient;
  /** The stream id the receiving server gave. */
  streamId: string;
  send(data: string): void;
  /** Resolves with everything received once the other side closed the socket. */
  closed(timeoutMs?: number): Promise<string>;
  stop(): void;
}

/**
 * Open an s2s stream to `port` claiming `headerFrom` in the stream header,
 * then be verified by dialback as `dialbackAs` with a key `authority` vouches
 * for. Resolves once the receiving server said the key is valid. `form`
 * prefixed-on-header declares xmlns:c on the header.
 */
export async function s2sPeer(port: number, opts: { headerFrom: string; dialbackAs: string; to?: string; authority: DialbackAuthority; form?: Form }): Promise<S2sPeer> {
  const to = opts.to ?? "localhost";
  const raw = await rawClient(port);
  try {
    raw.write(streamHeader(opts.form ?? "plain", { ns: NS_SERVER, from: opts.headerFrom, to, extra: `xmlns:db='${NS_DIALBACK}'` }));
    const opened = await raw.waitFor((t) => /<stream:stream\b[^>]*>[\s\S]*<\/stream:features>/.test(t));
    const streamId = attr(/<stream:stream\b[^>]*>/.exec(opened)![0], "id") ?? "";
    raw.write(`<db:result from='${opts.dialbackAs}' to='${to}'>${opts.authority.issueKey()}</db:result>`);
    const answered = await raw.waitFor((t) => /<db:result\b[^>]*type=['"](valid|invalid)['"]/.test(t) || t.includes("</stream:stream>"), 10_000);
    if (!/<db:result\b[^>]*type=['"]valid['"]/.test(answered)) throw new Error(`dialback as ${opts.dialbackAs} failed: ${answered.slice(-400)}`);
    return {
      raw,
      streamId,
      send: (data) => raw.write(data),
      async closed(timeoutMs = 5000) {
        await raw.closed(timeoutMs);
        return raw.text();
      },
      stop: () => raw.destroy(),
    };
  } catch (err) {
    raw.destroy();
    throw new Error(`s2sPeer (header from ${opts.headerFrom}, dialback as ${opts.dialbackAs}): ${(err as Error).message}`, { cause: err });
  }
}
