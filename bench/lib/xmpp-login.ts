// A minimal raw XMPP c2s client for the shaping suite against a real
// Prosody: stream header, SASL PLAIN, restart, bind, initial presence, on a
// plain socket, with bounded waits. After login the socket is the caller's.

import { connect, type Socket } from "node:net";

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

export interface LoggedIn {
  sock: Socket;
  jid: string;
}

function header(domain: string): string {
  return `<?xml version='1.0'?><stream:stream to='${domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
}

export function login(port: number, user: string, password: string, domain: string, resource: string, timeoutMs = 10_000): Promise<LoggedIn> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: "127.0.0.1", port });
    sock.setNoDelay(true);
    let text = "";
    let pos = 0;
    let waiting: { marker: string; then: () => void } | null = null;
    const timer = setTimeout(() => fail(new Error(`login of ${user}: timed out; got ${text.slice(-300)}`)), timeoutMs);
    function fail(err: Error): void {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    }
    const check = (): void => {
      if (!waiting) return;
      if (/<failure|<stream:error/.test(text.slice(pos))) return fail(new Error(`login of ${user} refused: ${text.slice(pos, pos + 300)}`));
      const at = text.indexOf(waiting.marker, pos);
      if (at < 0) return;
      pos = at + waiting.marker.length;
      const next = waiting.then;
      waiting = null;
      next();
    };
    const expect = (marker: string, then: () => void): void => {
      waiting = { marker, then };
      check();
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString("utf8");
      check();
    };
    sock.on("data", onData);
    sock.once("error", fail);
    sock.once("connect", () => {
      sock.write(header(domain));
      expect("</stream:features>", () => {
        sock.write(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString("base64")}</auth>`);
        expect("<success", () => {
          sock.write(header(domain));
          expect("</stream:features>", () => {
            sock.write(`<iq type='set' id='bind1'><bind xmlns='${NS_BIND}'><resource>${resource}</resource></bind></iq>`);
            expect("</jid>", () => {
              sock.write("<presence/>");
              clearTimeout(timer);
              sock.off("data", onData);
              sock.off("error", fail);
              sock.on("error", () => sock.destroy());
              resolve({ sock, jid: `${user}@${domain}/${resource}` });
            });
          });
        });
      });
    });
  });
}
