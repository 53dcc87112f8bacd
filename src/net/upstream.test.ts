import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { Upstream, type DialOptions } from "./upstream.js";

/** An upstream whose hooks record what it reports. */
class TestUpstream extends Upstream {
  readonly events: string[] = [];
  readonly received: Buffer[] = [];
  closing = false;
  #waiters: Array<{ event: string; resolve: () => void }> = [];

  protected isClosing(): boolean {
    return this.closing;
  }
  protected opened(seconds: number): void {
    assert.ok(seconds >= 0);
    this.#note("opened");
  }
  protected timedOut(connected: boolean): void {
    this.#note(`timeout(${connected ? "connected" : "not connected"})`);
  }
  protected data(chunk: Buffer): void {
    this.received.push(chunk);
    this.#note("data");
  }
  protected drained(): void {
    this.#note("drained");
  }
  protected ended(): void {
    this.#note("ended");
  }
  protected errored(err: Error): void {
    this.#note(`error(${(err as NodeJS.ErrnoException).code ?? err.message})`);
  }
  protected closed(): void {
    this.#note(`closed(${this.connected ? "connected" : "not connected"})`);
  }

  #note(event: string): void {
    this.events.push(event);
    for (const w of this.#waiters.filter((x) => event.startsWith(x.event))) w.resolve();
    this.#waiters = this.#waiters.filter((x) => !event.startsWith(x.event));
  }

  /** Resolves once an event starting with `event` was reported (now or before). */
  waitFor(event: string): Promise<void> {
    if (this.events.some((e) => e.startsWith(event))) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ event, resolve }));
  }
}

async function listen(onConnection: (socket: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

function options(port: number, over: Partial<DialOptions> = {}): DialOptions {
  return { host: "127.0.0.1", port, tls: false, timeoutMs: 5000, proxyHeader: null, ...over };
}

test("dial: the PROXY header goes first, then what the session queued; the server's bytes come back", async () => {
  const got: Buffer[] = [];
  let peer: Socket | undefined;
  const { server, port } = await listen((s) => {
    peer = s;
    s.on("data", (d) => got.push(d));
  });
  const up = new TestUpstream();
  assert.equal(up.dialled, false);
  up.add(Buffer.from("<stream:stream>"), 0, 15);
  assert.equal(up.send(), true, "nothing is written before the connect");
  up.dial(options(port, { proxyHeader: Buffer.from("PROXY TCP4 192.0.2.1 127.0.0.1 1234 5222\r\n") }));
  assert.equal(up.dialled, true);
  await up.waitFor("opened");
  assert.equal(up.connected, true);
  up.answered(); // the server's header: the connect timeout is over
  assert.equal(up.send(), true);
  peer!.write("<stream:stream id='s'>");
  await up.waitFor("data");
  assert.equal(Buffer.concat(up.received).toString(), "<stream:stream id='s'>");
  await new Promise<void>((resolve) => setTimeout(resolve, 50));
  assert.equal(Buffer.concat(got).toString(), "PROXY TCP4 192.0.2.1 127.0.0.1 1234 5222\r\n<stream:stream>");
  up.end("</stream:stream>");
  await up.waitFor("closed");
  assert.equal(up.done, true);
  assert.deepEqual(up.events.filter((e) => e !== "data"), ["opened", "ended", "closed(connected)"]);
  server.close();
});

test("a refused dial is reported by the close (the error only says why), never as connected", async () => {
  const { server, port } = await listen(() => {});
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const up = new TestUpstream();
  up.dial(options(port));
  await up.waitFor("closed");
  assert.deepEqual(up.events, ["error(ECONNREFUSED)", "closed(not connected)"]);
  assert.equal(up.connected, false);
});

test("timeouts.connect covers the server's answering header too", async () => {
  const { server, port } = await listen(() => {});
  const up = new TestUpstream();
  up.dial(options(port, { timeoutMs: 100 }));
  await up.waitFor("timeout");
  assert.equal(up.events[0], "opened");
  assert.equal(up.events[1], "timeout(connected)");
  await up.waitFor("closed");
  server.close();
});

test("no timeout once answered, nor while the session is closing; a late connect of a closing session is dropped", async () => {
  const { server, port } = await listen(() => {});
  const answered = new TestUpstream();
  answered.dial(options(port, { timeoutMs: 100 }));
  await answered.waitFor("opened");
  answered.answered();
  const closing = new TestUpstream();
  closing.closing = true;
  closing.dial(options(port, { timeoutMs: 100 }));
  await new Promise<void>((resolve) => setTimeout(resolve, 250));
  assert.deepEqual(answered.events, ["opened"]);
  assert.ok(!closing.events.includes("opened"), closing.events.join());
  assert.ok(!closing.events.some((e) => e.startsWith("timeout")));
  answered.destroy();
  await answered.waitFor("closed");
  await closing.waitFor("closed");
  server.close();
});

test("detach stops every report and closes the connection with the last words", async () => {
  let peer: Socket | undefined;
  const got: Buffer[] = [];
  const { server, port } = await listen((s) => {
    peer = s;
    s.on("data", (d) => got.push(d));
  });
  const up = new TestUpstream();
  up.dial(options(port));
  await up.waitFor("opened");
  up.answered();
  await new Promise<void>((resolve) => setTimeout(resolve, 20));
  const ended = new Promise<void>((resolve) => peer!.on("end", resolve));
  up.detach("</stream:stream>");
  assert.equal(up.done, true);
  await ended;
  assert.equal(Buffer.concat(got).toString(), "</stream:stream>");
  peer!.end();
  await new Promise<void>((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(up.events, ["opened"]);
  server.close();
});

test("destroy before any dial marks the upstream done", () => {
  const up = new TestUpstream();
  up.destroy();
  assert.equal(up.done, true);
  assert.equal(up.dialled, false);
});
