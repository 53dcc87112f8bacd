// @xmpp/client over TLS for test/integration/tls.test.ts, run as a child
// process so NODE_EXTRA_CA_CERTS (read once, at process start) can make it
// trust a gen-cert certificate: @xmpp/client has no option for a CA, and the
// certificate is verified for real (name included). Two accounts log in,
// the first sends N chat messages to the second, which counts them.
// Prints `RESULT {"received": N, ...}`; exit 0 only if all N arrived.
//
//   NODE_EXTRA_CA_CERTS=ca.pem node --import tsx test/harness/xmppjs_tls.ts \
//     SERVICE DOMAIN USER1 PASS1 USER2 PASS2 N
// SERVICE: xmpp://localhost:PORT (STARTTLS) or xmpps://localhost:PORT (direct TLS).

import { client, xml } from "@xmpp/client";

interface Element {
  is(name: string): boolean;
  attrs: Record<string, string>;
  getChildText(name: string): string | null;
}

const [service, domain, user1, pass1, user2, pass2, nText] = process.argv.slice(2);
const n = Number(nText ?? "10");

async function login(username: string, password: string, resource: string): Promise<{ xmpp: ReturnType<typeof client>; jid: string; secure: boolean }> {
  const xmpp = client({ service, domain, username, password, resource, timeout: 5000 });
  xmpp.reconnect.stop();
  xmpp.on("error", () => {});
  const address = await xmpp.start();
  const secure = Boolean((xmpp as unknown as { socket?: { secure?: boolean } }).socket?.secure);
  return { xmpp, jid: String(address), secure };
}

async function main(): Promise<Record<string, unknown>> {
  const receiver = await login(user2!, pass2!, "js-recv");
  const sender = await login(user1!, pass1!, "js-send");
  const tag = `js-${process.pid}`;
  let received = 0;
  const done = new Promise<void>((resolve) => {
    receiver.xmpp.on("stanza", (el: Element) => {
      if (el.is("message") && (el.getChildText("body") ?? "").startsWith(tag) && ++received === n) resolve();
    });
  });
  for (let i = 0; i < n; i++) await sender.xmpp.send(xml("message", { to: receiver.jid, type: "chat" }, xml("body", {}, `${tag} ${i}`)));
  await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))]);
  await Promise.all([sender.xmpp.stop(), receiver.xmpp.stop()]).catch(() => {});
  return { received, secure: sender.secure && receiver.secure, jid: sender.jid };
}

main().then(
  (result) => {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    process.exit(result.received === n ? 0 : 1);
  },
  (err: unknown) => {
    process.stdout.write(`RESULT ${JSON.stringify({ received: 0, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) })}\n`);
    process.exit(1);
  },
);
