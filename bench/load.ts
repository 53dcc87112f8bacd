// The load process: the sink server (a stand-in XMPP server) and the load
// generator (XMPP clients) share this one process, so that the proxy under
// test is alone in its own. Driven by the orchestrator over IPC:
//
//   → {type: "throughput", port, conns, warmupMs, durationMs, ratePerConn?}
//   ← {type: "mark", phase: "start" | "end"}      window edges, for proxy CPU
//   ← {type: "throughput:done", bytes, seconds, loadCpuMicros, sent, received, verified}
//   → {type: "latency", port, rate, warmupMs, durationMs}
//   ← {type: "latency:done", count, rate, p50, p90, p99, p999, max}   (µs)
//   → {type: "hold", port, conns, concurrency}     open and keep idle sessions
//   ← {type: "hold:done", opened, ms}
//   → {type: "release"}                            close the held sessions
//   ← {type: "release:done"}
//
// Requests may carry `tls: true`: clients then speak TLS from the first byte
// (direct TLS, XEP-0368; any certificate is accepted, loopback only). With
// `ws: true` (throughput only) clients speak XMPP over WebSocket (RFC 7395)
// to ws://127.0.0.1:port/xmpp-websocket: the same opening as messages, then
// one message per stanza.
//
// Each client opens a c2s stream, authenticates (SASL PLAIN) and binds a
// resource, so the proxy's session is in its normal post-bind state. Then it
// writes message stanzas either flat out (64-stanza blocks, as fast as TCP
// takes them) or paced (one write() per stanza at a fixed rate). The sink answers the handshake once and then
// counts bytes (throughput) or echoes them back (latency). Stanzas are all
// STANZA_BYTES long, so bytes / STANZA_BYTES is the stanza count. After each
// run, every byte sent must have reached the sink ("verified").

import { EventEmitter } from "node:events";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { performance } from "node:perf_hooks";
import type { Message } from "./lib/children.js";
import { exitWithParent } from "./lib/children.js";
import { WebSocket } from "ws";
import { CLIENT_HEADER, CLIENT_STEPS, Handshake, SERVER_STEPS, STANZA_BYTES, WS_CLIENT_STEPS, WS_CLOSE, WS_OPEN, messageStanza, stanzaBlock } from "./lib/fixture.js";
import { percentile } from "./lib/stats.js";

const BLOCK_STANZAS = 64;
const BLOCK = stanzaBlock(0, BLOCK_STANZAS);
const WRITES_PER_TURN = 64; // then yield to the event loop, so timers and the sink run
const HANDSHAKE_TIMEOUT_MS = 10_000;
const SETTLE_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 5_000;
const MAX_HANDSHAKE_BYTES = 65_536;

// ---- sink ----------------------------------------------------------------

let sinkMode: "count" | "echo" = "count";
let sinkBytes = 0; // stanza bytes received after handshakes, all connections
const sinkSockets = new Set<Socket>();

const sink = createServer((sock) => {
  sock.setNoDelay(true);
  sinkSockets.add(sock);
  const mode = sinkMode;
  const handshake = new Handshake(SERVER_STEPS);
  let bound = false;
  sock.on("data", (chunk: Buffer) => {
    if (bound) {
      if (mode === "echo") sock.write(chunk);
      else sinkBytes += chunk.length;
      return;
    }
    const reply = handshake.feed(chunk);
    if (reply) sock.write(reply);
    if (!handshake.done) {
      if (handshake.buffered > MAX_HANDSHAKE_BYTES) sock.destroy();
      return;
    }
    bound = true;
    if (mode === "count") sinkBytes += handshake.leftover;
  });
  sock.on("end", () => sock.end("</stream:stream>"));
  sock.on("error", () => sock.destroy());
  sock.on("close", () => sinkSockets.delete(sock));
});

// ---- clients -------------------------------------------------------------

/** What the load needs of a client's connection: a socket, or WsConn. */
type Conn = Pick<Socket, "write" | "end" | "destroy" | "destroyed" | "on" | "once">;

interface Client {
  sock: Conn;
  sent: number;
  closed: Promise<void>;
}

const WS_HIGH_WATER = 1024 * 1024;
const WS_TEXT = { binary: false } as const;

/**
 * An RFC 7395 client's connection with a socket's face, so the throughput
 * loops run unchanged: write() takes whole stanzas (STANZA_BYTES each, one or
 * a block of them) and sends each as one text message; it returns false past
 * a high-water mark and emits 'drain' once the library has written it out;
 * end() closes the stream (<close/>) and the WebSocket.
 */
class WsConn extends EventEmitter {
  readonly #ws: WebSocket;
  #needDrain = false;

  constructor(ws: WebSocket) {
    super();
    this.#ws = ws;
  }

  get destroyed(): boolean {
    return this.#ws.readyState !== WebSocket.OPEN;
  }

  write(data: Buffer | string): boolean {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN) return false;
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    for (let at = 0; at < buf.length; at += STANZA_BYTES) {
      const last = at + STANZA_BYTES >= buf.length;
      ws.send(buf.subarray(at, Math.min(buf.length, at + STANZA_BYTES)), WS_TEXT, last ? this.#sent : undefined);
    }
    if (ws.bufferedAmount < WS_HIGH_WATER) return true;
    this.#needDrain = true;
    return false;
  }

  readonly #sent = (): void => {
    if (this.#needDrain && this.#ws.bufferedAmount < WS_HIGH_WATER) {
      this.#needDrain = false;
      this.emit("drain");
    }
  };

  end(): this {
    if (this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(WS_CLOSE);
      this.#ws.close();
    }
    return this;
  }

  destroy(): this {
    this.#ws.terminate();
    return this;
  }
}

/** Open an RFC 7395 stream over a WebSocket, authenticate, bind; resolves once bound. */
function openWsClient(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/xmpp-websocket`, ["xmpp"], { perMessageDeflate: false });
    const conn = new WsConn(ws);
    const closed = new Promise<void>((r) => ws.once("close", () => r()));
    const handshake = new Handshake(WS_CLIENT_STEPS);
    const timer = setTimeout(() => fail(new Error("handshake timed out")), HANDSHAKE_TIMEOUT_MS);
    const onMessage = (data: Buffer): void => {
      const reply = handshake.feed(data);
      if (reply) ws.send(reply);
      if (!handshake.done) {
        if (handshake.buffered > MAX_HANDSHAKE_BYTES) fail(new Error("handshake: too much data"));
        return;
      }
      clearTimeout(timer);
      ws.off("message", onMessage);
      ws.off("error", fail);
      ws.on("error", () => ws.terminate());
      resolve({ sock: conn as unknown as Conn, sent: 0, closed });
    };
    function fail(err: Error): void {
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    }
    ws.on("message", onMessage);
    ws.once("error", fail);
    ws.once("open", () => ws.send(WS_OPEN));
  });
}

/** Connect, open the stream, authenticate, bind; resolves once bound. */
function openClient(port: number, tls = false): Promise<Client> {
  return new Promise((resolve, reject) => {
    const sock: Socket = tls
      ? tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false, servername: "example.org", ALPNProtocols: ["xmpp-client"] })
      : connect({ host: "127.0.0.1", port });
    sock.setNoDelay(true);
    const closed = new Promise<void>((r) => sock.once("close", () => r()));
    const client: Client = { sock, sent: 0, closed };
    const handshake = new Handshake(CLIENT_STEPS);
    const timer = setTimeout(() => fail(new Error("handshake timed out")), HANDSHAKE_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      const reply = handshake.feed(chunk);
      if (reply) sock.write(reply);
      if (!handshake.done) {
        if (handshake.buffered > MAX_HANDSHAKE_BYTES) fail(new Error("handshake: too much data"));
        return;
      }
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("error", fail);
      sock.on("error", () => sock.destroy());
      resolve(client);
    };
    function fail(err: Error): void {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    }
    sock.on("data", onData);
    sock.once("error", fail);
    sock.once(tls ? "secureConnect" : "connect", () => sock.write(CLIENT_HEADER));
  });
}

/** Open `n` sessions, at most `concurrency` handshakes at a time. */
async function openClients(port: number, n: number, tls = false, concurrency = 256, ws = false): Promise<Client[]> {
  const settled: PromiseSettledResult<Client>[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      try {
        settled.push({ status: "fulfilled", value: await (ws ? openWsClient(port) : openClient(port, tls)) });
      } catch (reason) {
        settled.push({ status: "rejected", reason });
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
  const ok = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) {
    await closeClients(ok);
    throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
  }
  return ok;
}

/** Close the streams politely, then give up and destroy after CLOSE_TIMEOUT_MS. */
async function closeClients(clients: Client[]): Promise<void> {
  for (const c of clients) c.sock.end("</stream:stream>");
  const timer = sleep(CLOSE_TIMEOUT_MS).then(() => "timeout" as const);
  const result = await Promise.race([Promise.all(clients.map((c) => c.closed)), timer]);
  if (result === "timeout") for (const c of clients) c.sock.destroy();
  await Promise.all(clients.map((c) => c.closed));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- throughput ----------------------------------------------------------

interface ThroughputRequest extends Message {
  port: number;
  tls?: boolean;
  /** Clients speak XMPP over WebSocket. */
  ws?: boolean;
  conns: number;
  warmupMs: number;
  durationMs: number;
  /** Paced mode: stanzas per second per connection, one write() per stanza. Absent: flat out. */
  ratePerConn?: number;
}

const PACE_TICK_MS = 10;
const SINGLE_STANZAS = Array.from({ length: BLOCK_STANZAS }, (_, i) => messageStanza(i));

async function throughput(req: ThroughputRequest, send: (m: Message) => void): Promise<Message> {
  sinkMode = "count";
  const base = sinkBytes;
  const clients = await openClients(req.port, req.conns, req.tls, 256, req.ws);
  let running = true;
  const timers: NodeJS.Timeout[] = [];
  if (req.ratePerConn === undefined) {
    const pump = (c: Client): void => {
      for (let n = 0; n < WRITES_PER_TURN; n++) {
        if (!running || c.sock.destroyed) return;
        c.sent += BLOCK.length;
        if (!c.sock.write(BLOCK)) return; // "drain" calls pump again
      }
      setImmediate(pump, c);
    };
    for (const c of clients) {
      c.sock.on("drain", () => pump(c));
      pump(c);
    }
  } else {
    // Every PACE_TICK_MS, each client catches up to its schedule with one
    // write() per stanza, as chat clients do. Clients start staggered over a
    // tick so their writes do not arrive in lockstep. A client more than two
    // ticks behind (a stalled event loop) drops the backlog rather than
    // bursting; the sink measures the rate actually achieved.
    const perMs = req.ratePerConn / 1000;
    clients.forEach((c, k) => {
      let t0 = 0;
      let seq = 0;
      const tick = (): void => {
        if (!running || c.sock.destroyed) return;
        const due = Math.floor((performance.now() - t0) * perMs);
        if (due - seq > 2 * PACE_TICK_MS * perMs) seq = due - Math.ceil(PACE_TICK_MS * perMs);
        for (; seq < due; seq++) {
          c.sock.write(SINGLE_STANZAS[seq % SINGLE_STANZAS.length]!);
          c.sent += STANZA_BYTES;
        }
      };
      const start = setTimeout(() => {
        t0 = performance.now();
        timers.push(setInterval(tick, PACE_TICK_MS));
      }, (k * PACE_TICK_MS) / clients.length);
      timers.push(start);
    });
  }
  try {
    await sleep(req.warmupMs);
    const bytes0 = sinkBytes;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    send({ type: "mark", id: req.id, phase: "start" });
    await sleep(req.durationMs);
    const bytes1 = sinkBytes;
    const cpu = process.cpuUsage(cpu0);
    const t1 = performance.now();
    send({ type: "mark", id: req.id, phase: "end" });
    running = false;
    for (const t of timers) clearTimeout(t);

    // Everything written must arrive, no more and no less.
    const sent = clients.reduce((s, c) => s + c.sent, 0);
    const deadline = performance.now() + SETTLE_TIMEOUT_MS;
    while (sinkBytes - base < sent && performance.now() < deadline) await sleep(10);
    const received = sinkBytes - base;
    return {
      type: "throughput:done",
      id: req.id,
      bytes: bytes1 - bytes0,
      seconds: (t1 - t0) / 1000,
      loadCpuMicros: cpu.user + cpu.system,
      sent,
      received,
      verified: received === sent,
    };
  } finally {
    running = false;
    for (const t of timers) clearTimeout(t);
    await closeClients(clients);
  }
}

// ---- latency -------------------------------------------------------------

interface LatencyRequest extends Message {
  port: number;
  tls?: boolean;
  rate: number;
  warmupMs: number;
  durationMs: number;
}

const LATENCY_STANZAS = Array.from({ length: 64 }, (_, i) => messageStanza(i));

/**
 * One connection, one stanza in flight: send, wait for the echo, record the
 * round trip, send the next at the fixed schedule (or at once if late).
 */
async function latency(req: LatencyRequest): Promise<Message> {
  sinkMode = "echo";
  const [client] = await openClients(req.port, 1, req.tls);
  const sock = client!.sock;
  const interval = 1000 / req.rate;
  const capacity = Math.ceil((req.rate * req.durationMs) / 1000) + 1000;
  const samples = new Float64Array(capacity);
  let count = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      const measureFrom = t0 + req.warmupMs;
      const endAt = measureFrom + req.durationMs;
      let seq = 0;
      let sentAt = 0;
      let pending = 0;
      const sendOne = (): void => {
        const now = performance.now();
        if (now >= endAt || count >= capacity) {
          resolve();
          return;
        }
        sentAt = now;
        sock.write(LATENCY_STANZAS[seq % LATENCY_STANZAS.length]!);
        seq++;
      };
      sock.on("data", (chunk: Buffer) => {
        pending += chunk.length;
        if (pending < STANZA_BYTES) return;
        pending -= STANZA_BYTES;
        const now = performance.now();
        if (sentAt >= measureFrom) samples[count++] = (now - sentAt) * 1000;
        const wait = t0 + seq * interval - now;
        if (wait <= 0) setImmediate(sendOne);
        else setTimeout(sendOne, wait);
      });
      sock.once("close", () => reject(new Error("connection closed during the latency run")));
      sendOne();
    });
  } finally {
    await closeClients([client!]);
    sinkMode = "count";
  }
  const sorted = samples.subarray(0, count).sort();
  return {
    type: "latency:done",
    id: req.id,
    count,
    rate: count / (req.durationMs / 1000),
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    max: sorted[count - 1] ?? 0,
  };
}

// ---- idle sessions (memory suite) ----------------------------------------

interface HoldRequest extends Message {
  port: number;
  conns: number;
  concurrency: number;
  tls?: boolean;
}

let held: Client[] = [];

async function hold(req: HoldRequest): Promise<Message> {
  if (held.length > 0) throw new Error("hold: sessions are already held");
  const t0 = performance.now();
  held = await openClients(req.port, req.conns, req.tls, req.concurrency);
  return { type: "hold:done", id: req.id, opened: held.length, ms: performance.now() - t0 };
}

async function release(req: Message): Promise<Message> {
  const clients = held;
  held = [];
  await closeClients(clients);
  return { type: "release:done", id: req.id, closed: clients.length };
}

// ---- IPC -----------------------------------------------------------------

function send(m: Message): void {
  process.send?.(m);
}

function shutdown(): void {
  for (const c of held) c.sock.destroy();
  for (const s of sinkSockets) s.destroy();
  sink.close();
}

process.on("message", (m: Message) => {
  const job =
    m.type === "throughput"
      ? throughput(m as ThroughputRequest, send)
      : m.type === "latency"
        ? latency(m as LatencyRequest)
        : m.type === "hold"
          ? hold(m as HoldRequest)
          : m.type === "release"
            ? release(m)
            : null;
  if (!job) {
    send({ type: "error", id: m.id, message: `unknown request ${m.type}` });
    return;
  }
  job.then(send, (err: unknown) => send({ type: "error", id: m.id, message: err instanceof Error ? err.message : String(err) }));
});
process.on("SIGTERM", () => {
  shutdown();
  process.exit(0);
});
exitWithParent(shutdown);

sink.listen({ host: "127.0.0.1", port: 0, backlog: 1024 }, () => {
  const { port } = sink.address() as AddressInfo;
  send({ type: "ready", port, pid: process.pid });
});
