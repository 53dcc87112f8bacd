// The cluster primary's side of the session directory (workers without
// Redis): snapshots for starting workers, changes forwarded to the others,
// removals only by the current owner, a dead worker's sessions dropped.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Worker } from "node:cluster";
import { describe, it } from "node:test";
import { SessionHub } from "./replicate.js";

class FakeWorker extends EventEmitter {
  readonly sent: unknown[] = [];
  readonly id: number;
  constructor(id: number) {
    super();
    this.id = id;
  }
  send(m: unknown): boolean {
    this.sent.push(m);
    return true;
  }
  isConnected(): boolean {
    return true;
  }
  /** A message from this worker to the primary. */
  say(m: unknown): void {
    this.emit("message", m);
  }
}

const entry = (o: string, d: string[] = []) => ({ o, x: 0, d });

describe("SessionHub", () => {
  it("forwards each change to the other workers, answers a hello with the table, and drops a dead worker's sessions", () => {
    const hub = new SessionHub();
    const w1 = new FakeWorker(1);
    const w2 = new FakeWorker(2);
    hub.attach(w1 as unknown as Worker);
    hub.attach(w2 as unknown as Worker);
    w1.say({ xg: "kn", e: { k: "a@x/r", v: entry("W1:s1", ["t@y/z"]) } });
    assert.equal(w1.sent.length, 0, "not echoed to the writer");
    assert.deepEqual(w2.sent, [{ xg: "kn", e: { k: "a@x/r", v: entry("W1:s1", ["t@y/z"]) } }]);

    const w3 = new FakeWorker(3);
    hub.attach(w3 as unknown as Worker);
    w3.say({ xg: "kn-hello" });
    assert.deepEqual(w3.sent, [{ xg: "kn-snap", entries: [["a@x/r", entry("W1:s1", ["t@y/z"])]] }]);

    // A removal by someone who does not own the entry is ignored (and not forwarded).
    w2.say({ xg: "kn", e: { k: "a@x/r", v: null, o: "W2:s9" } });
    assert.equal(hub.size, 1);
    assert.equal(w3.sent.length, 1);
    // Malformed messages are ignored.
    w2.say({ xg: "kn", e: { k: 5 } });
    w2.say(null);
    assert.equal(hub.size, 1);

    w1.emit("exit", 1, null);
    assert.equal(hub.size, 0);
    assert.deepEqual(w3.sent.at(-1), { xg: "kn", e: { k: "a@x/r", v: null, o: "W1:s1" } });
    assert.deepEqual(w2.sent.at(-1), { xg: "kn", e: { k: "a@x/r", v: null, o: "W1:s1" } });
  });

  it("a JID taken over by another worker stays when the first worker dies", () => {
    const hub = new SessionHub();
    const w1 = new FakeWorker(1);
    const w2 = new FakeWorker(2);
    hub.attach(w1 as unknown as Worker);
    hub.attach(w2 as unknown as Worker);
    w1.say({ xg: "kn", e: { k: "a@x/r", v: entry("W1:s1") } });
    w2.say({ xg: "kn", e: { k: "a@x/r", v: entry("W2:s2") } });
    w1.emit("exit", 0, null);
    assert.equal(hub.size, 1);
  });
});
