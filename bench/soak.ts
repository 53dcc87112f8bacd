// Soak: many long-lived sessions with mixed traffic, churn and periodic
// reloads through one xmpp-guard process, for a bounded time; samples the
// proxy's memory over time and says whether it is flat.
//
//   npx tsx bench/soak.ts [--minutes 10] [--sessions 2000] [--reload-every 30]
//                         [--sample-every 10] [--warmup 30] [--rate 1]
//
// Self-contained (imports only src/): three roles in two processes.
//   driver (this process): a scripted XMPP server (the upstream; SASL PLAIN,
//     bind, echoes messages, answers pings) and N raw clients that log in
//     through the proxy and then each send `--rate` stanzas per second
//     (messages of 40-4000 bytes, presence, iq pings); 1 % of the sessions
//     per reload period close cleanly and log in again (churn), and a few
//     hostile ones per period send garbage and must get a stream error.
//   proxy child (`--role proxy`, started with --expose-gc): startProxy() on a
//     config file the driver rewrites before each reload (limits and rules
//     change every time), reports memory after a forced GC over IPC.
// Verdict: the heap (after GC) and RSS at each sample after the warm-up are
// fitted with a least-squares line; memory is "flat" when the fitted growth
// over the measured window stays under 5 % of the first sample plus 2 MB for
// heap (plus 8 MB for RSS, which moves in allocator-sized steps).
// All traffic on 127.0.0.1; every child is killed on the way out.

import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SELF = fileURLToPath(import.meta.url);

interface MemorySample {
  t: number;
  heapUsed: number;
  rss: number;
  external: number;
  arrayBuffers: number;
  sessions: number;
}

type ToChild = { type: "reload" } | { type: "sample" } | { type: "stop" };
type FromChild =
  | { type: "ready"; port: number }
  | { type: "reloaded"; ok: boolean; errors: string[] }
  | { type: "sample"; sample: MemorySample }
  | { type: "error"; message: string };

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} wants a positive number`);
  return v;
}

function strArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

// ---------------------------------------------------------------------------
// proxy child

async function proxyRole(): Promise<void> {
  const configPath = strArg("config");
  if (!configPath) throw new Error("--config missing");
  const { startProxy } = await import("../src/app.js");
  const { loadConfigFile } = await import("../src/config/load.js");
  const { createLogger } = await import("../src/log.js");
  const send = (m: FromChild): void => void process.send!(m);
  const proxy = await startProxy(await loadConfigFile(configPath), { configPath, logger: createLogger("error") });
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on("message", (m: ToChild) => {
    if (m.type === "reload") {
      void proxy.reload().then((r) => send({ type: "reloaded", ok: r.ok, errors: r.errors }));
    } else if (m.type === "sample") {
      gc?.();
      gc?.();
      const mem = process.memoryUsage();
      send({ type: "sample", sample: { t: Date.now(), heapUsed: mem.heapUsed, rss: mem.rss, external: mem.external, arrayBuffers: mem.arrayBuffers, sessions: proxy.sessionCount() } });
    } else if (m.type === "stop") {
      void proxy.shutdown(0).then(() => process.exit(0));
    }
  });
  process.on("disconnect", () => process.exit(0));
  send({ type: "ready", port: proxy.listenerAddress("c2s")!.port });
}

// ---------------------------------------------------------------------------
// driver: the upstream server

const SERVER_HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='soak' from='soak.example' version='1.0'>";
const FEATURES_AUTH = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const FEATURES_BIND = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";
const CLIENT_HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='soak.example' version='1.0'>";

/**
 * A scripted server. It scans for a few markers rather than parsing XML: the
 * proxy in front of it only passes whole, well-formed stanzas anyway.
 */
function startUpstream(): Promise<{ server: Server; port: number }> {
  const server = createServer((sock) => {
    let phase = 0; // 0 header, 1 auth, 2 restarted header, 3 bind, 4 online
    let buf = "";
    let user = "u";
    sock.setNoDelay(true);
    sock.on("error", () => {});
    sock.on("data", (d: Buffer) => {
      buf += d.toString("utf8");
      for (;;) {
        if (phase === 0 || phase === 2) {
          const i = buf.indexOf("<stream:stream");
          const j = i < 0 ? -1 : buf.indexOf(">", i);
          if (j < 0) return;
          buf = buf.slice(j + 1);
          sock.write(SERVER_HEADER + (phase === 0 ? FEATURES_AUTH : FEATURES_BIND));
          phase++;
        } else if (phase === 1) {
          const j = buf.indexOf("</auth>");
          if (j < 0) return;
          const b64 = /<auth[^>]*>([^<]*)<\/auth>/.exec(buf.slice(0, j + 7))?.[1] ?? "";
          user = Buffer.from(b64, "base64").toString("utf8").split("\0")[1] ?? "u";
          buf = buf.slice(j + 7);
          sock.write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
          phase = 2;
        } else if (phase === 3) {
          const j = buf.indexOf("</iq>");
          if (j < 0) return;
          const id = /id='([^']*)'/.exec(buf.slice(0, j))?.[1] ?? "b";
          buf = buf.slice(j + 5);
          sock.write(`<iq type='result' id='${id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>${user}@soak.example/r</jid></bind></iq>`);
          phase = 4;
        } else {
          // Online: echo messages, answer pings, swallow presence; close on </stream:stream>.
          if (buf.startsWith("</stream:stream>")) {
            sock.end("</stream:stream>");
            return;
          }
          const m = /^\s*<(message|presence|iq)\b/.exec(buf);
          if (!m) {
            if (/^\s*$/.test(buf)) {
              buf = "";
              return;
            }
            const lt = buf.indexOf("<");
            if (lt > 0) buf = buf.slice(lt);
            if (!/^<(message|presence|iq|\/stream)/.test(buf) && buf.length > 16) {
              sock.destroy(); // not expected from a proxied session
              return;
            }
            return;
          }
          const kind = m[1]!;
          const selfClosing = new RegExp(`^\\s*<${kind}\\b[^>]*/>`).exec(buf);
          let stanza: string;
          if (selfClosing) stanza = selfClosing[0];
          else {
            const end = buf.indexOf(`</${kind}>`);
            if (end < 0) return;
            stanza = buf.slice(0, end + kind.length + 3);
          }
          buf = buf.slice(stanza.length);
          if (kind === "message") sock.write(stanza);
          else if (kind === "iq") {
            const id = /id='([^']*)'/.exec(stanza)?.[1] ?? "p";
            sock.write(`<iq type='result' id='${id}'/>`);
          }
        }
      }
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

// ---------------------------------------------------------------------------
// driver: clients

interface Counters {
  logins: number;
  loginFailures: number;
  sent: number;
  echoed: number;
  pongs: number;
  unexpectedCloses: number;
  churned: number;
  hostileRefused: number;
  hostileNotRefused: number;
}

class SoakClient {
  sock: Socket | null = null;
  online = false;
  closingOnPurpose = false;
  #buf = "";
  #timer: NodeJS.Timeout | null = null;
  #seq = 0;

  readonly n: number;
  readonly port: number;
  readonly rate: number;
  readonly c: Counters;

  constructor(n: number, port: number, rate: number, c: Counters) {
    this.n = n;
    this.port = port;
    this.rate = rate;
    this.c = c;
  }

  login(): Promise<void> {
    return new Promise((resolve) => {
      const sock = connect({ host: "127.0.0.1", port: this.port });
      this.sock = sock;
      this.#buf = "";
      let phase = 0;
      const done = (ok: boolean): void => {
        if (phase === 99) return;
        phase = 99;
        if (ok) this.c.logins++;
        else this.c.loginFailures++;
        resolve();
      };
      const loginTimer = setTimeout(() => {
        done(false);
        sock.destroy();
      }, 30_000);
      sock.setNoDelay(true);
      sock.on("error", () => {});
      sock.on("close", () => {
        clearTimeout(loginTimer);
        if (this.#timer) clearInterval(this.#timer);
        this.#timer = null;
        if (this.online && !this.closingOnPurpose) this.c.unexpectedCloses++;
        this.online = false;
        done(false);
      });
      sock.on("connect", () => sock.write(CLIENT_HEADER));
      sock.on("data", (d: Buffer) => {
        this.#buf += d.toString("utf8");
        if (phase === 0 && this.#buf.includes("</mechanisms></stream:features>")) {
          phase = 1;
          this.#buf = "";
          sock.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0u${this.n}\0pw`).toString("base64")}</auth>`);
        } else if (phase === 1 && this.#buf.includes("<success")) {
          phase = 2;
          this.#buf = "";
          sock.write(CLIENT_HEADER);
        } else if (phase === 2 && this.#buf.includes("</stream:features>")) {
          phase = 3;
          this.#buf = "";
          sock.write("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>");
        } else if (phase === 3 && this.#buf.includes("</jid></bind></iq>")) {
          this.#buf = "";
          clearTimeout(loginTimer);
          this.online = true;
          this.#startTraffic();
          done(true);
        } else if (phase === 99 && this.online) {
          this.#count();
        }
      });
    });
  }

  #count(): void {
    // Count whole replies; keep a possible partial tail.
    let i: number;
    while ((i = this.#buf.indexOf("</message>")) >= 0) {
      this.c.echoed++;
      this.#buf = this.#buf.slice(i + 10);
    }
    const pongs = this.#buf.match(/<iq type='result' id='p\d+'\/>/g);
    if (pongs) {
      this.c.pongs += pongs.length;
      this.#buf = this.#buf.replace(/<iq type='result' id='p\d+'\/>/g, "");
    }
  }

  #startTraffic(): void {
    const period = 1000 / this.rate;
    // Spread sessions over the period so load is smooth.
    setTimeout(() => {
      if (!this.online) return;
      this.#timer = setInterval(() => this.#send(), period);
    }, Math.random() * period);
  }

  #send(): void {
    if (!this.online || !this.sock) return;
    const r = Math.random();
    const id = ++this.#seq;
    if (r < 0.7) {
      const size = 40 + Math.floor(Math.random() ** 3 * 3960);
      this.sock.write(`<message type='chat' to='u${(this.n + 1) % 100000}@soak.example' id='m${id}'><body>${"x".repeat(size)}</body></message>`);
    } else if (r < 0.85) {
      this.sock.write(`<presence><show>${r < 0.8 ? "away" : "chat"}</show></presence>`);
    } else {
      this.sock.write(`<iq type='get' id='p${id}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    }
    this.c.sent++;
  }

  async reconnect(): Promise<void> {
    this.closingOnPurpose = true;
    const sock = this.sock;
    if (sock) {
      const closed = new Promise<void>((r) => sock.once("close", () => r()));
      sock.end("</stream:stream>");
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
      sock.destroy();
    }
    this.closingOnPurpose = false;
    this.c.churned++;
    await this.login();
  }

  stop(): void {
    this.closingOnPurpose = true;
    if (this.#timer) clearInterval(this.#timer);
    this.sock?.destroy();
  }
}

function hostile(port: number, c: Counters): Promise<void> {
  const garbage = ["<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x/>", CLIENT_HEADER + "<message><!-- c --></message>", "GET / HTTP/1.1\r\n\r\n", CLIENT_HEADER + "<a>".repeat(200)];
  return new Promise((resolve) => {
    const sock = connect({ host: "127.0.0.1", port });
    let text = "";
    const t = setTimeout(() => sock.destroy(), 10_000);
    sock.on("error", () => {});
    sock.on("data", (d: Buffer) => (text += d.toString()));
    sock.on("connect", () => sock.write(garbage[Math.floor(Math.random() * garbage.length)]!));
    sock.on("close", () => {
      clearTimeout(t);
      if (text.includes("<stream:error>")) c.hostileRefused++;
      else c.hostileNotRefused++;
      resolve();
    });
  });
}

// ---------------------------------------------------------------------------
// driver: main

function writeConfig(file: string, rules: string, upstreamPort: number, generation: number): void {
  writeFileSync(rules, `# generation ${generation}\nKIND: message\nINSPECT: body#=never-sent-${generation}\nDROP.\n`);
  writeFileSync(file, [
    "listeners:",
    "  - name: c2s",
    "    type: c2s",
    '    listen: "127.0.0.1:0"',
    `    upstream: "127.0.0.1:${upstreamPort}"`,
    "firewall:",
    `  scripts: [${JSON.stringify(rules)}]`,
    "  watch: false",
    "limits:",
    `  c2s: { rate: "${500 + (generation % 5) * 100}kb/s", burst: "2s" }`,
    "  pre_auth: { max_bytes: 65536, max_stanzas: 64 }",
    `max_stanza_size: ${65536 + (generation % 3) * 4096}`,
    "admin:",
    "  listen: null",
    "log:",
    "  level: error",
    "",
  ].join("\n"));
}

function fit(xs: number[], ys: number[]): { slope: number; intercept: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  const slope = den === 0 ? 0 : num / den;
  return { slope, intercept: my - slope * mx };
}

const MB = 1024 * 1024;
const mb = (b: number): string => (b / MB).toFixed(1);

async function driver(): Promise<void> {
  const minutes = arg("minutes", 10);
  const sessions = Math.floor(arg("sessions", 2000));
  const reloadEvery = arg("reload-every", 30);
  const sampleEvery = arg("sample-every", 10);
  const warmup = arg("warmup", 30);
  const rate = arg("rate", 1);
  const dir = mkdtempSync(path.join(os.tmpdir(), "xmpp-guard-soak-"));
  const configPath = path.join(dir, "guard.yaml");
  const rulesPath = path.join(dir, "rules.pfw");
  const upstream = await startUpstream();
  let generation = 0;
  writeConfig(configPath, rulesPath, upstream.port, generation);

  const child: ChildProcess = fork(SELF, ["--role", "proxy", "--config", configPath], {
    execArgv: ["--import", "tsx", "--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const kill = (): void => {
    if (child.exitCode === null) child.kill("SIGKILL");
  };
  process.once("exit", kill);
  process.once("SIGINT", () => {
    kill();
    process.exit(130);
  });
  const waiters: Array<(m: FromChild) => boolean> = [];
  child.on("message", (m: FromChild) => {
    const i = waiters.findIndex((w) => w(m));
    if (i >= 0) waiters.splice(i, 1);
  });
  const request = <T extends FromChild["type"]>(msg: ToChild | null, type: T, timeoutMs = 30_000): Promise<Extract<FromChild, { type: T }>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} from the proxy within ${timeoutMs} ms`)), timeoutMs);
      waiters.push((m) => {
        if (m.type !== type) return false;
        clearTimeout(timer);
        resolve(m as Extract<FromChild, { type: T }>);
        return true;
      });
      if (msg) child.send(msg);
    });
  const { port } = await request(null, "ready");

  const c: Counters = { logins: 0, loginFailures: 0, sent: 0, echoed: 0, pongs: 0, unexpectedCloses: 0, churned: 0, hostileRefused: 0, hostileNotRefused: 0 };
  const clients = Array.from({ length: sessions }, (_, i) => new SoakClient(i, port, rate, c));
  const t0 = Date.now();
  process.stdout.write(`soak: ${sessions} sessions, ${minutes} min, ${rate} stanza/s each, reload every ${reloadEvery} s, sample every ${sampleEvery} s, warm-up ${warmup} s\n`);
  for (let i = 0; i < clients.length; i += 100) await Promise.all(clients.slice(i, i + 100).map((cl) => cl.login()));
  process.stdout.write(`logged in: ${c.logins}/${sessions} in ${((Date.now() - t0) / 1000).toFixed(1)} s (${c.loginFailures} failed)\n`);

  const end = t0 + minutes * 60_000;
  const samples: MemorySample[] = [];
  let reloads = 0;
  let reloadFailures = 0;
  let nextReload = Date.now() + reloadEvery * 1000;
  let nextSample = Date.now();
  process.stdout.write("   t(s)  sessions  heap(MB)  rss(MB)  ext(MB)  arrbuf(MB)  sent      echoed    reloads\n");
  while (Date.now() < end) {
    const now = Date.now();
    if (now >= nextReload) {
      nextReload += reloadEvery * 1000;
      generation++;
      writeConfig(configPath, rulesPath, upstream.port, generation);
      const r = await request({ type: "reload" }, "reloaded");
      reloads++;
      if (!r.ok) reloadFailures++;
      // Churn 1 % of the sessions and send a few hostile connections.
      const start = Math.floor(Math.random() * clients.length);
      const churn = Array.from({ length: Math.max(1, Math.round(clients.length / 100)) }, (_, k) => clients[(start + k) % clients.length]!);
      void Promise.all(churn.map((cl) => cl.reconnect()));
      void Promise.all(Array.from({ length: 5 }, () => hostile(port, c)));
    }
    if (now >= nextSample) {
      nextSample += sampleEvery * 1000;
      const { sample } = await request({ type: "sample" }, "sample");
      samples.push(sample);
      const t = (sample.t - t0) / 1000;
      process.stdout.write(`${t.toFixed(0).padStart(7)}  ${String(sample.sessions).padStart(8)}  ${mb(sample.heapUsed).padStart(8)}  ${mb(sample.rss).padStart(7)}  ${mb(sample.external).padStart(7)}  ${mb(sample.arrayBuffers).padStart(10)}  ${String(c.sent).padEnd(8)}  ${String(c.echoed).padEnd(8)}  ${reloads}\n`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const cl of clients) cl.stop();
  await request({ type: "stop" }, "sample", 5000).catch(() => undefined);
  kill();
  upstream.server.close();
  rmSync(dir, { recursive: true, force: true });

  const measured = samples.filter((s) => (s.t - t0) / 1000 >= warmup);
  process.stdout.write(`\ntraffic: ${c.sent} stanzas sent, ${c.echoed} messages echoed, ${c.pongs} pings answered; ${c.churned} reconnects; ${reloads} reloads (${reloadFailures} failed); hostile: ${c.hostileRefused} refused with a stream error, ${c.hostileNotRefused} not; unexpected session closes: ${c.unexpectedCloses}\n`);
  if (measured.length < 3) {
    process.stdout.write(`memory: only ${measured.length} samples after the warm-up; run longer for a verdict\n`);
    return;
  }
  const xs = measured.map((s) => (s.t - measured[0]!.t) / 60_000);
  const span = xs.at(-1)!;
  const verdict = (label: string, ys: number[], slackMb: number): boolean => {
    const { slope } = fit(xs, ys);
    const growth = slope * span;
    const allowed = ys[0]! * 0.05 + slackMb * MB;
    const flat = growth < allowed;
    process.stdout.write(`${label}: first ${mb(ys[0]!)} MB, last ${mb(ys.at(-1)!)} MB, min ${mb(Math.min(...ys))}, max ${mb(Math.max(...ys))}; fitted ${(slope / MB).toFixed(2)} MB/min = ${mb(growth)} MB over ${span.toFixed(1)} min (allowed ${mb(allowed)}) → ${flat ? "flat" : "GROWING"}\n`);
    return flat;
  };
  const heapFlat = verdict("heap after GC", measured.map((s) => s.heapUsed), 2);
  const rssFlat = verdict("rss", measured.map((s) => s.rss), 8);
  process.stdout.write(`verdict: memory is ${heapFlat && rssFlat ? "flat" : "NOT flat"} over ${span.toFixed(1)} min with ${sessions} sessions\n`);
  if (c.unexpectedCloses > 0 || c.hostileNotRefused > 0 || reloadFailures > 0) process.exitCode = 1;
  if (!heapFlat) process.exitCode = 1;
}

if (strArg("role") === "proxy") {
  proxyRole().catch((err: unknown) => {
    process.send?.({ type: "error", message: String(err) } satisfies FromChild);
    process.exit(1);
  });
} else {
  driver().catch((err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}
