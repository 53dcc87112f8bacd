// The room store behind the MUC limits: LocalRoomBuckets (fair rooms, idle
// expiry, cap, reload semantics) and SharedRoom, the fleet member's copy (own
// attempts in flight replayed with their verdicts, adopting newer committed
// states, failures kept locally).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyAttempt, newRoom, type FairLimits } from "./fair-room.js";
import { fairLimits, LocalRoomBuckets, type RoomLimits } from "./room-buckets.js";
import { fromWire, SharedRoom, toWire } from "./shared-room.js";

const LIMITS: RoomLimits = { rate: 1, burst: 3, idleMs: 60_000, maxRooms: 2, baseCost: 1, activeMs: 60_000, maxSenders: 1000 };
const FAIR: FairLimits = fairLimits(LIMITS);

function local(limits: RoomLimits = LIMITS): LocalRoomBuckets {
  const s = new LocalRoomBuckets();
  s.configure(limits, 0);
  return s;
}

const ok = (s: LocalRoomBuckets, room: string, who: string, cost: number, now: number): boolean => s.attempt(room, who, cost, now).admitted;

describe("LocalRoomBuckets", () => {
  it("a room starts full; a refusal takes nothing from it", () => {
    const s = local();
    assert.equal(ok(s, "r", "a", 1, 0), true);
    assert.equal(ok(s, "r", "b", 1.5, 0), true);
    assert.equal(ok(s, "r", "c", 1, 0), false); // 0.5 left
    assert.equal(ok(s, "r", "d", 0.5, 0), true); // the refusal took nothing
    assert.equal(ok(s, "r", "e", 0.1, 0), false);
    assert.equal(ok(s, "r", "f", 1, 999), false);
    assert.equal(ok(s, "r", "g", 1, 1_000), true);
    assert.equal(ok(s, "other", "a", 3, 1_000), true); // rooms are independent
    assert.equal(s.size, 2);
  });

  it("a zero rate passes only what costs nothing", () => {
    const s = local({ ...LIMITS, rate: 0 });
    assert.equal(ok(s, "r", "a", 1, 0), false);
    assert.equal(ok(s, "r", "a", 0, 0), true);
  });

  it("forgets idle rooms (they start full again) and the least recent past the cap", () => {
    const s = local();
    ok(s, "a", "x", 3, 0);
    ok(s, "b", "x", 3, 10);
    ok(s, "c", "x", 3, 20); // cap 2: "a" goes
    assert.equal(s.size, 2);
    assert.equal(s.capEvictions, 1);
    assert.equal(ok(s, "a", "x", 3, 30), true); // forgotten, so full; "b" goes
    assert.equal(s.sweep(60_020), 1); // "c" idle since 20
    assert.equal(s.size, 1);
  });

  it("reload keeps each balance (capped), applies the new rate from now, drops rooms not kept", () => {
    const s = local();
    ok(s, "keep", "x", 3, 0); // empty
    ok(s, "drop", "x", 1, 0);
    s.configure({ ...LIMITS, rate: 2, burst: 1 }, 500, (room) => room === "keep");
    assert.equal(s.size, 1);
    // 0.5 tokens by 500 ms at the old rate, then 2 per second: 1.5 at 1000 ms.
    assert.equal(ok(s, "keep", "y", 1.5, 999), false);
    assert.equal(ok(s, "keep", "z", 1.5, 1_000), true);
    // The new capacity is 2.
    assert.equal(ok(s, "fresh", "x", 2.5, 1_000), false);
    assert.equal(ok(s, "fresh", "y", 2, 1_000), true);
    // A room that had rate 0 starts empty when a rate comes back.
    const z = local({ ...LIMITS, rate: 0 });
    ok(z, "r", "x", 1, 0);
    z.configure(LIMITS, 0);
    assert.equal(ok(z, "r", "y", 1, 999), false);
    assert.equal(ok(z, "r", "w", 1, 1_000), true);
  });
});

describe("SharedRoom", () => {
  it("without other members it answers exactly like a local room", () => {
    const shared = new SharedRoom(FAIR, 0);
    const plain = newRoom(FAIR, 0);
    let op = 0;
    let seq = 0;
    for (const [t, who, cost] of [[0, "a", 1], [0, "b", 1.9], [700, "a", 1], [2_000, "c", 0.3], [2_100, "a", 1], [9_000, "b", 2.5]] as const) {
      const want = applyAttempt(plain, FAIR, who, cost, t);
      const got = shared.attempt(FAIR, ++op, who, cost, t);
      assert.deepEqual(got, want);
      // The store commits it: the same arithmetic, now in the committed state.
      shared.apply(FAIR, fromWire(JSON.parse(JSON.stringify(toWire(plain)))), ++seq, op);
      assert.deepEqual(toWire(shared.view), toWire(plain));
      assert.equal(shared.pendingCount, 0);
    }
  });

  it("adopts newer states from other members, ignores older ones, and replays its own attempts in flight", () => {
    const b = new SharedRoom(FAIR, 0);
    const other = newRoom(FAIR, 0);
    applyAttempt(other, FAIR, "x", 2, 0);
    b.apply(FAIR, fromWire(toWire(other)), 5);
    assert.equal(b.view.tokens, 1);
    b.apply(FAIR, fromWire(toWire(newRoom(FAIR, 0))), 4); // an older commit
    assert.equal(b.view.tokens, 1);
    // Our own attempt in flight counts at once, and after a newer foreign state.
    assert.equal(b.attempt(FAIR, 1, "y", 1, 0).admitted, true);
    assert.equal(b.view.tokens, 0);
    applyAttempt(other, FAIR, "z", 0.5, 0, true);
    b.apply(FAIR, fromWire(toWire(other)), 6);
    assert.equal(b.view.tokens, -0.5);
    assert.equal(b.pendingCount, 1);
    // Our commit (seq 7) includes both: counted once.
    applyAttempt(other, FAIR, "y", 1, 0, true);
    b.apply(FAIR, fromWire(toWire(other)), 7, 1);
    assert.equal(b.view.tokens, -0.5);
    assert.equal(b.pendingCount, 0);
    b.apply(FAIR, fromWire(toWire(other)), 7, 1); // its echo: nothing
    assert.equal(b.view.tokens, -0.5);
  });

  it("a failed or unnumbered commit stays a local attempt", () => {
    const b = new SharedRoom(FAIR, 0);
    b.attempt(FAIR, 1, "a", 2, 0);
    b.fail(FAIR, 1);
    assert.equal(b.view.tokens, 1);
    assert.equal(b.pendingCount, 0);
    assert.equal(b.committedTokens(FAIR, 0), 1);
    // The store lost its counter: our commit comes back numbered 0.
    b.attempt(FAIR, 2, "b", 1, 0);
    b.apply(FAIR, fromWire(toWire(newRoom(FAIR, 0))), 0, 2);
    assert.equal(b.view.tokens, 0);
    b.fail(FAIR, 3); // unknown op: nothing
    assert.equal(b.committedTokens(FAIR, 1_000), 1);
  });
});
