// Child-process half of the connection-scale test (run under `ulimit -n`):
//   session-load.ts upstream          a minimal upstream: answers every stream
//                                     header with header + features, holds the
//                                     connection; prints {"port":N}
//   session-load.ts clients PORT N    opens N plaintext c2s streams to PORT (at
//                                     most 256 handshakes in flight), waits for
//                                     each one's features; prints {"open","errors"};
//                                     on "close" from stdin closes them all and
//                                     prints {"closed"}
import { connect, createServer, type Socket } from "node:net";
import { createInterface } from "node:readline";

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
const SERVER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const out = (o: unknown): void => void process.stdout.write(JSON.stringify(o) + "\n");
const [mode, portArg, countArg] = process.argv.slice(2);

if (mode === "upstream") {
  let conns = 0;
  const server = createServer((s) => {
    conns++;
    let answered = false;
    s.on("data", (d: Buffer) => {
      if (!answered && d.toString("latin1").includes("<stream:stream")) {
        answered = true;
        s.write(SERVER);
      }
    });
    s.on("error", () => {});
    s.on("close", () => conns--);
  });
  server.on("error", (e) => out({ error: e.message }));
  server.listen(0, "127.0.0.1", () => out({ port: (server.address() as { port: number }).port }));
  createInterface({ input: process.stdin }).on("line", () => out({ upstream: conns }));
} else if (mode === "clients") {
  const port = Number(portArg);
  const total = Number(countArg);
  const sockets: Socket[] = [];
  let errors = 0;
  let firstError = "";
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = connect({ host: "127.0.0.1", port });
      let got = "";
      let done = false;
      const finish = (err?: string): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err !== undefined) {
          errors++;
          firstError ||= err;
          s.destroy();
        } else sockets.push(s);
        resolve();
      };
      const timer = setTimeout(() => finish("no features within 30 s"), 30_000);
      s.on("error", (e) => finish(e.message));
      s.on("close", () => finish("closed early"));
      s.on("connect", () => s.write(HEADER));
      s.on("data", (d: Buffer) => {
        got += d.toString("latin1");
        if (got.includes("</stream:features>")) finish();
      });
    });
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < total) {
      next++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: 256 }, lane));
  // Sockets that close later (the proxy erroring after features) count too.
  let lateErrors = 0;
  for (const s of sockets) s.on("close", () => lateErrors++);
  out({ open: sockets.length, errors, firstError });
  createInterface({ input: process.stdin }).on("line", (line) => {
    if (line === "close") {
      out({ lateErrors });
      for (const s of sockets) s.destroy();
      out({ closed: sockets.length });
    }
  });
} else {
  process.stderr.write("usage: session-load.ts upstream | clients PORT N\n");
  process.exit(2);
}
