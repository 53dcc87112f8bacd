import { test } from "node:test";
import assert from "node:assert/strict";
import type { SessionLimit } from "../config/schema.js";
import type { ProxyError } from "../errors.js";
import type { ThrottleReason } from "../shaping/pacer.js";
import { FRAME_HEADER, FRAME_STANZA, Framer, type FrameKind } from "../xml/framer.js";
import { kindOf, StreamContext } from "../xml/stanza.js";
import type { StanzaKind } from "../xml/stanza-view.js";
import { performance } from "node:perf_hooks";
import { inTurn } from "../shaping/clock.js";
import { FakeClock } from "../../test/helpers/fake-clock.js";
import { InboundGate, PAUSE_BACKPRESSURE, PAUSE_DIAL, PAUSE_SHAPING } from "./inbound-gate.js";

const CTX = StreamContext.plain("jabber:client", true);
const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.net' version='1.0'>";

/** A gate in front of a real framer, recording what it lets through and what it asks of its session. */
class TestGate extends InboundGate {
  readonly framer = new Framer(this);
  readonly fed: string[] = [];
  readonly passed: string[] = [];
  readonly peer: string[] = [];
  readonly throttles: Array<[ThrottleReason, number | null]> = [];
  flushes = 0;
  closing = false;

  protected feed(data: Buffer): void {
    this.fed.push(data.toString());
    this.framer.write(data);
  }
  protected pass(kind: FrameKind, data: Buffer, start: number, end: number): void {
    if (kind === FRAME_STANZA) this.passed.push(data.toString("utf8", start, end));
    else if (kind === FRAME_HEADER) this.passed.push("(header)");
  }
  protected stanzaKind(data: Buffer, start: number, end: number): StanzaKind {
    return kindOf(data, start, end, CTX);
  }
  protected isClosing(): boolean {
    return this.closing;
  }
  protected pausePeer(): void {
    this.peer.push("pause");
  }
  protected resumePeer(): void {
    this.peer.push("resume");
  }
  protected flush(): void {
    this.flushes++;
  }
  protected throttled(reason: ThrottleReason, ms: number | null): void {
    this.throttles.push([reason, ms]);
  }
  onError(error: ProxyError): void {
    throw new Error(`framing error ${error.code}`);
  }
}

function limit(bytes: { rate: number; capacity: number } | null, message?: { rate: number; capacity: number }): SessionLimit {
  return { bytes: bytes === null ? null : { ...bytes, burst: bytes.capacity / bytes.rate }, stanzas: message ? { message } : {} };
}

test("without limits every read is fed at once and every frame passes", () => {
  const g = new TestGate();
  g.reconfigure(null);
  assert.equal(g.shaped, false);
  g.write(Buffer.from(HEADER + "<message to='a@b'/>"));
  assert.equal(g.fed.length, 1);
  assert.deepEqual(g.passed, ["(header)", "<message to='a@b'/>"]);
  assert.equal(g.heldBack, false);
});

test("pause reasons are a mask: the peer reads again only when every reason has cleared", () => {
  const g = new TestGate();
  g.pause(PAUSE_DIAL);
  g.pause(PAUSE_BACKPRESSURE);
  assert.deepEqual(g.peer, ["pause"]);
  assert.equal(g.paused, true);
  g.resume(PAUSE_DIAL);
  assert.deepEqual(g.peer, ["pause"]);
  g.resume(PAUSE_BACKPRESSURE);
  assert.deepEqual(g.peer, ["pause", "resume"]);
  assert.equal(g.paused, false);
  // A closing session's peer is left alone.
  g.closing = true;
  g.pause(PAUSE_DIAL);
  g.resume(PAUSE_DIAL);
  assert.deepEqual(g.peer, ["pause", "resume"]);
});

test("bytes: fed in slices the bucket covers; the rest waits, paid, until the pacer resumes", () => {
  const clock = new FakeClock(0);
  const g = new TestGate();
  // 1000 B/s, capacity 2048: slices of 256 B (an eighth of the bucket, at least 256).
  g.reconfigure(limit({ rate: 1000, capacity: 2048 }), clock, clock);
  assert.equal(g.shaped, true);
  g.write(Buffer.from(HEADER));
  const body = "<message to='a@b'><body>" + "x".repeat(3000) + "</body></message>";
  g.write(Buffer.from(body));
  const fedNow = g.fed.join("").length;
  assert.ok(fedNow < HEADER.length + body.length, "not everything is fed at once");
  assert.equal(g.heldBack, true);
  assert.deepEqual(g.peer, ["pause"], "the peer's reads pause while in debt");
  assert.deepEqual(g.throttles[0], ["bytes", null]);
  // Time repays the debt: everything arrives, in order, and reading resumes.
  for (let i = 0; i < 20 && g.heldBack; i++) clock.advance(1000);
  assert.equal(g.fed.join(""), HEADER + body);
  assert.deepEqual(g.passed, ["(header)", body]);
  assert.equal(g.heldBack, false);
  assert.deepEqual(g.peer, ["pause", "resume"]);
  assert.ok(g.flushes > 0, "what released data produced is flushed");
  assert.equal(g.throttles.at(-1)![0], "bytes");
  assert.ok(typeof g.throttles.at(-1)![1] === "number");
});

test("stanzas: the one that overdraws its bucket is held with every frame after it, then replayed in order", () => {
  const clock = new FakeClock(0);
  const g = new TestGate();
  g.reconfigure(limit(null, { rate: 1, capacity: 2 }), clock, clock);
  g.write(Buffer.from(HEADER + "<message id='1'/><message id='2'/><message id='3'/><presence/><message id='4'/>"));
  // Two tokens: 1 and 2 pass; 3 overdraws and is held, and so is everything after it.
  assert.deepEqual(g.passed, ["(header)", "<message id='1'/>", "<message id='2'/>"]);
  assert.equal(g.heldBack, true);
  assert.deepEqual(g.throttles[0], ["message", null]);
  clock.advance(1000);
  assert.deepEqual(g.passed.slice(3), ["<message id='3'/>", "<presence/>"], "3 is paid; 4 waits for its own token");
  clock.advance(1000);
  assert.deepEqual(g.passed.slice(5), ["<message id='4'/>"]);
  clock.advance(1000);
  assert.equal(g.heldBack, false);
  assert.deepEqual(g.peer, ["pause", "resume"]);
});

test("unlimited: an exempt session is not charged; setUnlimited reports a change only", () => {
  const clock = new FakeClock(0);
  const g = new TestGate();
  g.reconfigure(limit(null, { rate: 1, capacity: 1 }), clock, clock);
  assert.equal(g.setUnlimited(true), true);
  assert.equal(g.setUnlimited(true), false);
  g.write(Buffer.from(HEADER + "<message/><message/><message/>"));
  assert.equal(g.passed.length, 4);
  assert.equal(g.heldBack, false);
  const plain = new TestGate();
  plain.reconfigure(null);
  assert.equal(plain.setUnlimited(true), false, "nothing to exempt without limits");
});

test("reconfigure keeps a bucket's tokens; close drops what waits and reports an open throttle", () => {
  const clock = new FakeClock(0);
  const g = new TestGate();
  g.reconfigure(limit(null, { rate: 1, capacity: 1 }), clock, clock);
  g.write(Buffer.from(HEADER + "<message id='1'/>"));
  // Same limit again (a reload): the spent token stays spent.
  g.reconfigure(limit(null, { rate: 1, capacity: 1 }), clock, clock);
  g.write(Buffer.from("<message id='2'/>"));
  assert.deepEqual(g.passed, ["(header)", "<message id='1'/>"]);
  assert.equal(g.heldBack, true);
  g.close();
  assert.equal(g.throttles.at(-1)![0], "message");
  assert.notEqual(g.throttles.at(-1)![1], null);
  clock.advance(5000);
  assert.deepEqual(g.passed, ["(header)", "<message id='1'/>"], "nothing is released after close");
});

test("takePending hands over the bytes not framed yet (STARTTLS)", () => {
  const clock = new FakeClock(0);
  const g = new TestGate();
  g.reconfigure(limit({ rate: 100, capacity: 256 }), clock, clock);
  g.write(Buffer.alloc(300, 0x20));
  const rest = g.takePending();
  assert.ok(rest !== null && rest.length > 0);
  assert.equal(g.takePending(), null);
  assert.ok(g.peer.includes("pause"));
  g.resume(PAUSE_SHAPING);
});

test("partial stanza: markPartial remembers the frame; a new frame makes it another partial", () => {
  const g = new TestGate();
  g.reconfigure(null);
  g.write(Buffer.from(HEADER + "<message>"));
  g.markPartial();
  assert.equal(g.samePartial, true);
  g.write(Buffer.from("more"));
  assert.equal(g.samePartial, true, "still the same frame, dripping");
  g.write(Buffer.from("</message><iq"));
  assert.equal(g.samePartial, false, "a frame completed since");
});

test("by default a chunk read in a turn is charged (its bytes, each stanza) at one reading of the clock", () => {
  const g = new TestGate();
  g.reconfigure(limit({ rate: 1e6, capacity: 1e6 }, { rate: 1000, capacity: 1000 }));
  const chunk = Buffer.from(HEADER + "<message id='1'/><message id='2'/><message id='3'/>");
  const real = performance.now;
  let readings = 0;
  performance.now = () => {
    readings++;
    return real.call(performance);
  };
  let inOneTurn: number;
  let outside: number;
  try {
    inTurn(() => g.write(chunk));
    inOneTurn = readings;
    readings = 0;
    // The same outside a turn (the pacer's timers) reads the real clock at every charge.
    g.write(Buffer.from("<message id='4'/><message id='5'/>"));
    outside = readings;
  } finally {
    performance.now = real;
  }
  assert.deepEqual(g.passed, ["(header)", "<message id='1'/>", "<message id='2'/>", "<message id='3'/>", "<message id='4'/>", "<message id='5'/>"]);
  assert.equal(inOneTurn, 1, "one reading for the bytes and three stanzas");
  assert.ok(outside >= 3, `outside a turn: ${outside} readings`);
});
