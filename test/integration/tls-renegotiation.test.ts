// TLS 1.2 renegotiation against both TLS paths (STARTTLS answered by the
// proxy, and a direct-TLS listener), with a scripted upstream: the proxy
// refuses it (no second handshake's worth of CPU), counts and logs the
// attempt, and when the client gives up on the connection, as OpenSSL clients
// do after a refusal, the session ends at once on the proxy side, upstream
// included, without waiting for TCP to close. Sessions that never ask
// (TLS 1.3, TLS 1.2) are untouched.

import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { after, before, describe, it } from "node:test";
import { startProxy, type RunningProxy } from "../../src/app.js";
import { configFromObject } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { writeSelfSigned } from "../../src/net/gen-cert.js";
import { startFakeUpstream, type FakeUpstream, type UpstreamConn } from "../helpers/fake-upstream.js";
import { CLIENT_HEADER, eventually } from "../helpers/raw-client.js";

const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  return (m?.values ?? []).filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((n, x) => n + x.value, 0);
}

/** Everything a socket delivers, as text. */
function collect(socket: TLSSocket | import("node:net").Socket): { text(): string; closed(): boolean } {
  let text = "";
  let closed = false;
  socket.on("data", (d: Buffer) => void (text += d.toString("utf8")));
  socket.on("close", () => void (closed = true));
  return { text: () => text, closed: () => closed };
}

describe("TLS renegotiation is refused on every TLS path", () => {
  const dir = mkdtempSync(join(tmpdir(), "xg-reneg-"));
  const logLines: Array<Record<string, unknown>> = [];
  let upstream: FakeUpstream;
  let proxy: RunningProxy;
  const open: Array<{ destroy(): void }> = [];

  before(async () => {
    const pair = await writeSelfSigned(dir, ["localhost"]);
    upstream = await startFakeUpstream();
    proxy = await startProxy(configFromObject({
      listeners: [
        { name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstream.port}` },
        { name: "c2s-tls", type: "c2s-tls", listen: "127.0.0.1:0", upstream: `127.0.0.1:${upstream.port}` },
      ],
      tls: { certificates: [{ cert: pair.certFile, key: pair.keyFile }] },
      admin: { listen: null },
    }), { logger: createLogger("info", { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) }) });
  });

  after(async () => {
    for (const s of open) s.destroy();
    await proxy?.shutdown(0);
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A TLS session through `listener`, its stream open and answered by the upstream. */
  async function session(listener: "c2s" | "c2s-tls", maxVersion: "TLSv1.2" | "TLSv1.3"): Promise<{ tls: TLSSocket; conn: UpstreamConn; seen: ReturnType<typeof collect> }> {
    const port = proxy.listenerAddress(listener)!.port;
    let tls: TLSSocket;
    if (listener === "c2s") {
      const raw = netConnect({ host: "127.0.0.1", port });
      open.push(raw);
      raw.on("error", () => {});
      let pre = "";
      const onPre = (d: Buffer): void => void (pre += d.toString("utf8"));
      raw.on("data", onPre);
      raw.write(CLIENT_HEADER);
      await eventually(() => pre.includes("</stream:features>"), 5000, "STARTTLS features");
      raw.write(`<starttls xmlns='${NS_TLS}'/>`);
      await eventually(() => pre.includes("<proceed "), 5000, "<proceed/>");
      raw.off("data", onPre);
      tls = tlsConnect({ socket: raw, servername: "localhost", rejectUnauthorized: false, maxVersion });
    } else {
      tls = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false, maxVersion, ALPNProtocols: ["xmpp-client"] });
    }
    open.push(tls);
    tls.on("error", () => {}); // the refusal below, and writes after it
    await once(tls, "secureConnect");
    assert.equal(tls.getProtocol(), maxVersion);
    const seen = collect(tls);
    tls.write(CLIENT_HEADER);
    const conn = await upstream.nextConn();
    await eventually(() => seen.text().includes("</stream:features>"), 5000, "the upstream's features through TLS");
    return { tls, conn, seen };
  }

  for (const listener of ["c2s", "c2s-tls"] as const) {
    it(`${listener === "c2s" ? "STARTTLS" : "direct TLS"}: refused, counted, logged; the session ends with the client's alert`, async () => {
      const before = await metric(proxy, "xmpp_guard_tls_handshake_failures_total", { listener, reason: "renegotiation" });
      const loggedBefore = logLines.filter((l) => l.code === "XPX_ERR_TLS_RENEGOTIATION" && l.listener === listener).length;
      const { tls, conn, seen } = await session(listener, "TLSv1.2");
      tls.write("<presence/>");
      await eventually(() => conn.text().endsWith("<presence/>"), 5000, "traffic before the attempt");

      const outcome = await new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve("no answer within 3 s"), 3000);
        tls.once("error", (err: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          resolve(`error ${err.code}`);
        });
        const started = tls.renegotiate({ rejectUnauthorized: false }, (err) => {
          clearTimeout(timer);
          resolve(err ? `callback error ${(err as NodeJS.ErrnoException).code}` : "renegotiated");
        });
        if (!started) resolve("renegotiate() refused locally");
      });
      assert.equal(outcome, "error ERR_SSL_NO_RENEGOTIATION");

      await eventually(async () => (await metric(proxy, "xmpp_guard_tls_handshake_failures_total", { listener, reason: "renegotiation" })) - before === 1, 5000, "the attempt counted");
      assert.equal(logLines.filter((l) => l.code === "XPX_ERR_TLS_RENEGOTIATION" && l.listener === listener).length - loggedBefore, 1);
      // The client is left with a failed TLS layer and sent a fatal alert, but
      // keeps its TCP connection open: the proxy closes, both sides.
      await eventually(() => seen.closed(), 3000, "the proxy closed the client connection");
      await eventually(() => conn.ended || conn.socket.destroyed, 3000, "the upstream connection closed");
      await eventually(() => proxy.sessionCount() === 0, 3000, "no session left");
    });
  }

  it("sessions that never renegotiate (TLS 1.3 and TLS 1.2, both paths) are not counted and keep working", async () => {
    const count = async (): Promise<number> =>
      (await metric(proxy, "xmpp_guard_tls_handshake_failures_total", { listener: "c2s", reason: "renegotiation" })) +
      (await metric(proxy, "xmpp_guard_tls_handshake_failures_total", { listener: "c2s-tls", reason: "renegotiation" }));
    const before = await count();
    for (const listener of ["c2s", "c2s-tls"] as const) {
      for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
        const { tls, conn, seen } = await session(listener, version);
        for (let i = 0; i < 3; i++) {
          tls.write(`<message id='${i}'/>`);
          await eventually(() => conn.text().endsWith(`<message id='${i}'/>`), 5000, `message ${i} upstream`);
        }
        conn.socket.write("<message id='back'/>");
        await eventually(() => seen.text().endsWith("<message id='back'/>"), 5000, "a message back");
        assert.equal(seen.closed(), false);
        tls.destroy();
      }
    }
    assert.equal(await count(), before);
  });
});
