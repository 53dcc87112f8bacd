// The room bucket store behind the MUC limits: LocalRoomBuckets (util.throttle
// polls, idle expiry, cap, reload semantics) and SharedBucket, the fleet
// member's copy (own debits in flight, adopting newer committed states,
// failures kept locally, reconfigure like TokenBucket's).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TokenBucket } from "../shaping/token-bucket.js";
import { LocalRoomBuckets, type RoomLimits } from "./room-buckets.js";
import { SharedBucket } from "./shared-bucket.js";

const LIMITS: RoomLimits = { rate: 1, burst: 3, idleMs: 60_000, maxRooms: 2 };

function local(limits: RoomLimits = LIMITS): LocalRoomBuckets {
  const s = new LocalRoomBuckets();
  s.configure(limits, 0);
  return s;
}

describe("LocalRoomBuckets", () => {
  it("polls like util.throttle: a room starts full, a refusal takes nothing", () => {
    const s = local();
    assert.equal(s.take("r", 1, 0), true);
    assert.equal(s.take("r", 1.5, 0), true);
    assert.equal(s.take("r", 1, 0), false); // 0.5 left
    assert.equal(s.take("r", 0.5, 0), true); // the refusal took nothing
    assert.equal(s.take("r", 0.1, 0), false);
    assert.equal(s.take("r", 1, 999), false);
    assert.equal(s.take("r", 1, 1_000), true);
    assert.equal(s.take("other", 3, 1_000), true); // rooms are independent
    assert.equal(s.size, 2);
  });

  it("a zero rate passes only what costs nothing", () => {
    const s = local({ ...LIMITS, rate: 0 });
    assert.equal(s.take("r", 1, 0), false);
    assert.equal(s.take("r", 0, 0), true);
  });

  it("forgets idle rooms (they start full again) and the least recent past the cap", () => {
    const s = local();
    s.take("a", 3, 0);
    s.take("b", 3, 10);
    s.take("c", 3, 20); // cap 2: "a" goes
    assert.equal(s.size, 2);
    assert.equal(s.capEvictions, 1);
    assert.equal(s.take("a", 3, 30), true); // forgotten, so full; "b" goes
    assert.equal(s.sweep(60_020), 1); // "c" idle since 20
    assert.equal(s.size, 1);
  });

  it("reload keeps each balance (capped), applies the new rate from now, drops rooms not kept", () => {
    const s = local();
    s.take("keep", 3, 0); // empty
    s.take("drop", 1, 0);
    s.configure({ ...LIMITS, rate: 2, burst: 1 }, 500, (room) => room === "keep");
    assert.equal(s.size, 1);
    // 0.5 tokens by 500 ms at the old rate, then 2 per second: 1.5 at 1000 ms.
    assert.equal(s.take("keep", 1.5, 999), false);
    assert.equal(s.take("keep", 1.5, 1_000), true);
    // The new capacity is 2.
    assert.equal(s.take("fresh", 2.5, 1_000), false);
    assert.equal(s.take("fresh", 2, 1_000), true);
    // A room that had rate 0 starts empty when a rate comes back.
    const z = local({ ...LIMITS, rate: 0 });
    z.take("r", 1, 0);
    z.configure(LIMITS, 0);
    assert.equal(z.take("r", 1, 999), false);
    assert.equal(z.take("r", 1, 1_000), true);
  });
});

describe("SharedBucket", () => {
  it("without other members it answers exactly like a TokenBucket", () => {
    const shared = new SharedBucket(0.5, 3, 0);
    const token = new TokenBucket(0.5, 3, 0);
    let op = 0;
    let seq = 0;
    for (const [t, cost] of [[0, 1], [0, 1.9], [700, 1], [2_000, 0.3], [2_100, 1], [9_000, 2.5]] as const) {
      assert.equal(shared.balance(t), token.balance(t));
      if (token.balance(t) < cost) continue;
      token.take(cost, t);
      shared.debit(++op, cost);
      assert.equal(shared.balance(t), token.balance(t), "pending debits count at once");
      // The store commits it: same arithmetic, now in the committed state.
      shared.apply({ tokens: token.balance(t), at: t, seq: ++seq }, op);
      assert.equal(shared.balance(t), token.balance(t));
      assert.equal(shared.pendingCount, 0);
    }
  });

  it("adopts newer states from other members and ignores older ones", () => {
    const b = new SharedBucket(1, 3, 0);
    b.apply({ tokens: 1, at: 0, seq: 5 });
    assert.equal(b.balance(0), 1);
    b.apply({ tokens: 2, at: 0, seq: 4 }); // an older commit
    assert.equal(b.balance(0), 1);
    assert.equal(b.balance(1_500), 2.5);
    b.apply({ tokens: 0, at: 1_000, seq: 6 });
    assert.equal(b.balance(1_500), 0.5);
    b.apply({ tokens: 9, at: 2_000, seq: 7 }); // more than the capacity
    assert.equal(b.balance(2_000), 3);
  });

  it("keeps an own debit until its commit, counts it once, whichever answer comes first", () => {
    const b = new SharedBucket(1, 3, 0);
    b.debit(1, 1);
    b.debit(2, 1);
    assert.equal(b.balance(0), 1);
    // Another member's debit committed first (seq 7): ours still count.
    b.apply({ tokens: 2, at: 0, seq: 7 });
    assert.equal(b.balance(0), 0);
    // Our first commit (seq 8) includes the other's and ours.
    b.apply({ tokens: 1, at: 0, seq: 8 }, 1);
    assert.equal(b.balance(0), 0);
    assert.equal(b.pendingCount, 1);
    // Its echo after the reply changes nothing.
    b.apply({ tokens: 1, at: 0, seq: 8 }, 1);
    assert.equal(b.balance(0), 0);
    b.apply({ tokens: 0, at: 0, seq: 9 }, 2);
    assert.equal(b.balance(0), 0);
    assert.equal(b.pendingCount, 0);
  });

  it("a failed or unnumbered commit stays a local debit", () => {
    const b = new SharedBucket(1, 3, 0);
    b.apply({ tokens: 3, at: 0, seq: 10 });
    b.debit(1, 2);
    b.fail(1, 0);
    assert.equal(b.balance(0), 1);
    assert.equal(b.pendingCount, 0);
    // Redis lost its counter: our commit comes back numbered 1.
    b.debit(2, 1);
    b.apply({ tokens: 2, at: 0, seq: 1 }, 2);
    assert.equal(b.balance(0), 0);
    b.fail(3, 0); // unknown op: nothing
    assert.equal(b.balance(1_000), 1);
  });

  it("reconfigure credits the old rate up to now, then caps; committed() leaves out what is in flight", () => {
    const b = new SharedBucket(1, 3, 0, 0);
    b.reconfigure(2, 1.5, 1_000); // 1 token at the old rate
    assert.equal(b.balance(1_000), 1);
    assert.equal(b.balance(1_250), 1.5); // new rate, new cap
    b.debit(1, 1);
    assert.equal(b.balance(1_250), 0.5);
    assert.equal(b.committed(1_250), 1.5);
  });
});
