// A scripted upstream XMPP server for session tests: records every byte each
// connection sends, answers a stream header with its own header and features,
// and lets a test push bytes or drop connections. Unit-level only: the
// integration suites use a real Prosody.

import { createServer, type Server, type Socket, type AddressInfo } from "node:net";

export const SERVER_HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>";
export const FEATURES = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";

export interface UpstreamConn {
  socket: Socket;
  received: Buffer[];
  bytes(): Buffer;
  text(): string;
  ended: boolean;
}

export interface FakeUpstream {
  port: number;
  conns: UpstreamConn[];
  /** Resolves with the next accepted connection. */
  nextConn(timeoutMs?: number): Promise<UpstreamConn>;
  close(): Promise<void>;
}

export interface FakeUpstreamOptions {
  /** Reply to the first bytes containing "<stream:stream" with header + features (default true). */
  autoHeader?: boolean;
  /** Listen on this port (e.g. to restart an upstream where it was); default a free one. */
  port?: number;
}

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const conns: UpstreamConn[] = [];
  const waiters: Array<(c: UpstreamConn) => void> = [];
  let served = 0; // connections already handed out by nextConn()
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    const conn: UpstreamConn = {
      socket,
      received: [],
      bytes: () => Buffer.concat(conn.received),
      text: () => Buffer.concat(conn.received).toString("utf8"),
      ended: false,
    };
    let answered = false;
    socket.on("data", (d: Buffer) => {
      conn.received.push(d);
      if (options.autoHeader !== false && !answered && conn.text().includes("<stream:stream")) {
        answered = true;
        socket.write(SERVER_HEADER + FEATURES);
      }
    });
    socket.on("end", () => {
      conn.ended = true;
      socket.end();
    });
    socket.on("error", () => {});
    conns.push(conn);
    const w = waiters.shift();
    if (w) {
      served++;
      w(conn);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    conns,
    nextConn: (timeoutMs = 5000) => new Promise((resolve, reject) => {
      const ready = conns[served];
      if (ready) {
        served++;
        resolve(ready);
        return;
      }
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(take), 1);
        reject(new Error(`no upstream connection within ${timeoutMs} ms`));
      }, timeoutMs);
      const take = (c: UpstreamConn): void => {
        clearTimeout(timer);
        resolve(c);
      };
      waiters.push(take);
    }),
    close: () => new Promise((r) => {
      for (const c of conns) c.socket.destroy();
      server.close(() => r());
    }),
  };
}
