// XEP-0198 counts across drops and injections: AckMap against a model that
// replays every event, and the cases that matter for Prosody's mod_smacks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AckMap, SmLedger } from "./sm-ledger.js";

type Event = "pass" | "drop" | "inject";

/** The sender's count when the receiver had exactly `h`: the last state with that receiver count. */
function model(events: readonly Event[], h: number): number {
  let r = 0;
  let s = 0;
  let answer = h === 0 ? 0 : -1;
  for (const e of events) {
    if (e === "pass") {
      r += 1;
      s += 1;
    } else if (e === "drop") s += 1;
    else r += 1;
    if (r === h) answer = s;
  }
  return answer;
}

describe("AckMap", () => {
  it("passes counts through while nothing differs", () => {
    const m = new AckMap();
    for (let i = 0; i < 5; i++) m.passed();
    assert.equal(m.aligned, true);
    assert.equal(m.toSender(3), 3);
    assert.equal(m.toSender(5), 5);
  });

  it("a bounce the proxy sent to the client is not counted for the server", () => {
    const m = new AckMap();
    m.passed();
    m.passed();
    m.injected();
    m.passed();
    assert.equal(m.aligned, false);
    assert.equal(m.toSender(2), 2);
    assert.equal(m.toSender(3), 2);
    assert.equal(m.toSender(4), 3);
  });

  it("a stanza the proxy dropped counts as handled once the receiver acknowledges past it", () => {
    const m = new AckMap();
    m.passed();
    m.dropped();
    m.passed();
    assert.equal(m.toSender(1), 2);
    assert.equal(m.toSender(2), 3);
  });

  it("agrees with the model for any sequence of events and acknowledgements", () => {
    const event = fc.constantFrom<Event>("pass", "pass", "pass", "drop", "inject");
    fc.assert(
      fc.property(fc.array(fc.tuple(event, fc.boolean()), { maxLength: 200 }), (steps) => {
        const m = new AckMap();
        const seen: Event[] = [];
        let received = 0;
        let acked = 0;
        for (const [e, ack] of steps) {
          seen.push(e);
          if (e === "pass") m.passed();
          else if (e === "drop") m.dropped();
          else m.injected();
          if (e !== "drop") received += 1;
          if (ack) {
            // Acknowledgements only grow; any value up to what was delivered.
            const h = acked + Math.floor((received - acked) / 2);
            assert.equal(m.toSender(h), model(seen, h), `h=${h} after ${seen.join(",")}`);
            m.acknowledged(h);
            acked = h;
          }
        }
        for (let h = acked; h <= received; h++) assert.equal(m.toSender(h), model(seen, h));
      }),
      { numRuns: 300 },
    );
  });

  it("keeps bounded memory when the receiver never acknowledges", () => {
    const m = new AckMap();
    for (let i = 0; i < 20_000; i++) {
      m.passed();
      m.injected();
    }
    // Recent acknowledgements stay exact.
    assert.equal(m.toSender(40_000), 20_000);
    assert.equal(m.toSender(39_999), 20_000);
  });

  it("wraps at 2^32 as h does on the wire", () => {
    const m = new AckMap();
    m.resumeAt(2 ** 32 - 2);
    m.passed();
    m.injected();
    m.passed();
    assert.equal(m.toSender(2 ** 32 - 1), 2 ** 32 - 1);
    assert.equal(m.toSender(0), 2 ** 32 - 1);
    assert.equal(m.toSender(1), 0);
  });

  it("resumption: injections after the receiver's h are gone; drops after it are sent again", () => {
    const m = new AckMap();
    m.passed(); // 1/1
    m.injected(); // 2/1
    m.passed(); // 3/2
    m.dropped(); // 3/3
    m.injected(); // 4/3
    // The connection goes; the client had 2. The server resends from its 1.
    m.resumeAt(2);
    assert.equal(m.toSender(2), 1);
    m.passed(); // the server's 2nd again, the client's 3rd
    assert.equal(m.toSender(3), 2);
  });
});

describe("SmLedger", () => {
  it("maps each side's acknowledgement through its own direction", () => {
    const l = new SmLedger();
    l.toClient.passed();
    l.toClient.injected();
    l.toServer.passed();
    l.toServer.dropped();
    l.toServer.passed();
    assert.equal(l.clientAck(2), 1);
    assert.equal(l.serverAck(2), 3);
  });
});
