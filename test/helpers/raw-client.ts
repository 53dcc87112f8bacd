// A raw socket client for tests: write exact bytes, collect everything the
// proxy sends back, wait for text or for the close. Bounded waits only.

import { connect, type Socket } from "node:net";

export const CLIENT_HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

export interface RawClient {
  socket: Socket;
  text(): string;
  bytes(): Buffer;
  write(data: string | Buffer): void;
  waitFor(pred: (text: string) => boolean, timeoutMs?: number): Promise<string>;
  closed(timeoutMs?: number): Promise<void>;
  destroy(): void;
}

export async function rawClient(port: number, host = "127.0.0.1"): Promise<RawClient> {
  const socket = connect({ port, host });
  const chunks: Buffer[] = [];
  let isClosed = false;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of listeners) l();
  };
  socket.on("data", (d: Buffer) => {
    chunks.push(d);
    notify();
  });
  socket.on("close", () => {
    isClosed = true;
    notify();
  });
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const text = (): string => Buffer.concat(chunks).toString("utf8");
  const until = (cond: () => boolean, timeoutMs: number, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      if (cond()) return resolve();
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got: ${text().slice(-500)}`));
      }, timeoutMs);
      const check = (): void => {
        if (cond()) {
          clearTimeout(timer);
          listeners.delete(check);
          resolve();
        }
      };
      listeners.add(check);
    });
  return {
    socket,
    text,
    bytes: () => Buffer.concat(chunks),
    write: (data) => void socket.write(data),
    waitFor: async (pred, timeoutMs = 5000) => {
      await until(() => pred(text()), timeoutMs, "expected data");
      return text();
    },
    closed: (timeoutMs = 5000) => until(() => isClosed, timeoutMs, "close"),
    destroy: () => socket.destroy(),
  };
}

/** Poll a condition (for server-side effects such as metrics), bounded. */
/** Polls `probe` every 100 ms until it gives a value (bounded); for probes that ask another process. */
export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function eventually(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}
