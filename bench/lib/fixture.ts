// The XMPP traffic every suite replays: the c2s opening (header, SASL PLAIN,
// restart, bind) as a script both ends follow, then <message/> stanzas of exactly STANZA_BYTES bytes each, so a byte count
// converts to a stanza count without parsing. The stanzas look like what a
// chat client sends (to/type/id, a body with an entity and non-ASCII text,
// a chat-state child); the ids differ so nothing is trivially repetitive.

export const STANZA_BYTES = 250;

export const CLIENT_HEADER =
  "<?xml version='1.0'?><stream:stream to='example.org' xmlns='jabber:client' " +
  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>";

export const SERVER_HEADER =
  "<?xml version='1.0'?><stream:stream from='example.org' id='bench-stream' xmlns='jabber:client' " +
  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>";

/** The end of every client stream header here, the TCP one and what a WebSocket <open/> becomes. */
const HEADER_END = "version='1.0' xml:lang='en'>";

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

const SASL_FEATURES = `<stream:features><mechanisms xmlns='${NS_SASL}'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`;
const BIND_FEATURES = `<stream:features><bind xmlns='${NS_BIND}'/></stream:features>`;
const AUTH = `<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${Buffer.from("\0bench\0bench").toString("base64")}</auth>`;
const SUCCESS = `<success xmlns='${NS_SASL}'/>`;
const BIND_REQUEST = `<iq type='set' id='bind_1'><bind xmlns='${NS_BIND}'><resource>load</resource></bind></iq>`;
const BIND_RESULT = `<iq type='result' id='bind_1'><bind xmlns='${NS_BIND}'><jid>bench@example.org/load</jid></bind></iq>`;

/** One step of a scripted handshake: once `expect` has arrived, send `reply`. */
export interface Step {
  expect: string;
  reply: string;
}

/**
 * The RFC 6120 c2s opening, minus TLS: stream header, SASL PLAIN, stream
 * restart, resource binding. Afterwards a proxy that tracks sessions sees an
 * authenticated, bound session, the state real traffic flows in.
 * The client sends CLIENT_HEADER first, then follows CLIENT_STEPS.
 */
export const CLIENT_STEPS: readonly Step[] = [
  { expect: "</stream:features>", reply: AUTH },
  { expect: SUCCESS, reply: CLIENT_HEADER },
  { expect: "</stream:features>", reply: BIND_REQUEST },
  { expect: "</iq>", reply: "" },
];

export const SERVER_STEPS: readonly Step[] = [
  { expect: HEADER_END, reply: SERVER_HEADER + SASL_FEATURES },
  { expect: "</auth>", reply: SUCCESS },
  { expect: HEADER_END, reply: SERVER_HEADER + BIND_FEATURES },
  { expect: "</iq>", reply: BIND_RESULT },
];

// ---- the same opening over WebSocket (RFC 7395): one element per message ----

export const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";

/** The client's stream header as an RFC 7395 <open/>. */
export const WS_OPEN = `<open xmlns='${NS_FRAMING}' to='example.org' version='1.0' xml:lang='en'/>`;
export const WS_CLOSE = `<close xmlns='${NS_FRAMING}'/>`;

/**
 * The c2s stream header a WebSocket relay turns WS_OPEN into: the one
 * xmpp-guard's websocket listener builds from it, so the sink sees the same
 * bytes from both.
 */
export const WS_STREAM_HEADER =
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' xml:lang='en'>";

/** The client's side over WebSocket: sends WS_OPEN first, then each reply as one message. */
export const WS_CLIENT_STEPS: readonly Step[] = [
  { expect: "</stream:features>", reply: AUTH },
  { expect: SUCCESS, reply: WS_OPEN },
  { expect: "</stream:features>", reply: BIND_REQUEST },
  { expect: "</iq>", reply: "" },
];

/** Runs one side of a handshake script over the bytes as they arrive. */
export class Handshake {
  readonly #steps: readonly Step[];
  #text = "";
  #pos = 0;
  #step = 0;
  /** Bytes received after the last expected marker (0 in practice). */
  leftover = 0;

  constructor(steps: readonly Step[]) {
    this.#steps = steps;
  }

  get done(): boolean {
    return this.#step === this.#steps.length;
  }

  /** Bytes buffered so far; callers cap it. */
  get buffered(): number {
    return this.#text.length;
  }

  /** Take received bytes; returns what to send now ("" for nothing). */
  feed(chunk: Buffer): string {
    this.#text += chunk.toString("latin1");
    let out = "";
    while (!this.done) {
      const step = this.#steps[this.#step]!;
      const at = this.#text.indexOf(step.expect, this.#pos);
      if (at < 0) break;
      this.#pos = at + step.expect.length;
      this.#step++;
      out += step.reply;
    }
    if (this.done) this.leftover = this.#text.length - this.#pos;
    return out;
  }
}

const FILLER = "Tomorrow at ten works &amp; I will bring the café notes, see you there! ";

/** Message number `i`, padded to exactly STANZA_BYTES bytes of UTF-8. */
export function messageStanza(i: number): Buffer {
  const n = String(i % 100_000_000).padStart(8, "0");
  const head = `<message to='user${n.slice(-4)}@example.org/phone' type='chat' id='m-${n}' xml:lang='en'><body>`;
  const tail = "</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>";
  const room = STANZA_BYTES - Buffer.byteLength(head + tail);
  let body = "";
  while (Buffer.byteLength(body) < room) body += FILLER;
  // Trim on whole characters, then pad with ASCII to the exact size.
  while (Buffer.byteLength(body) > room) body = body.slice(0, -1);
  body = body.replace(/&[a-z]*$/, "");
  body = body.padEnd(body.length + room - Buffer.byteLength(body), ".");
  const out = Buffer.from(head + body + tail);
  if (out.length !== STANZA_BYTES) throw new Error(`fixture: stanza is ${out.length} bytes, wanted ${STANZA_BYTES}`);
  return out;
}

/** `count` consecutive stanzas starting at number `first`, back to back. */
export function stanzaBlock(first: number, count: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) parts.push(messageStanza(first + i));
  return Buffer.concat(parts);
}

/** A whole stream as one Buffer: prolog + header, then `stanzas` messages. */
export function clientStream(stanzas: number): Buffer {
  const header = Buffer.from(CLIENT_HEADER);
  const body = Buffer.allocUnsafe(stanzas * STANZA_BYTES);
  const blockSize = 1000;
  for (let i = 0; i < stanzas; i += blockSize) {
    stanzaBlock(i, Math.min(blockSize, stanzas - i)).copy(body, i * STANZA_BYTES);
  }
  return Buffer.concat([header, body]);
}

/**
 * The flood's message as a client sends it and as the server delivers it
 * (from stamped, xml:lang), with one body for all: what the framer benches
 * scan (framer-wasm.ts, framer-asm-ab.ts). Recipients and senders cycle over
 * four pairs, ids count up.
 */
const FLOOD_BODY = "<body>Message 1: tomorrow at ten works &amp; I will bring the caf\u00e9 notes.</body>";
export const floodClientMessage = (i: number): string => `<message to='user${i % 4}@example.org/phone' type='chat' id='m${i}'>${FLOOD_BODY}</message>`;
export const floodServerDelivery = (i: number): string =>
  `<message xml:lang='en' type='chat' id='m${i}' to='user${i % 4}@example.org/phone' from='sender${i % 4}@example.org/laptop'>${FLOOD_BODY}</message>`;
