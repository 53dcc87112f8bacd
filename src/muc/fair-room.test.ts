// The fair room limiter on its own, with a fake clock (plain numbers): the
// worked example of docs/muc-limits.md, newcomers funded from the open share,
// refusals charged to their sender, the window, reservations switched off
// when a share is smaller than the base cost; then the property test: for
// random arrival patterns, no sender within its fair share is ever refused,
// the invariant "bucket ≥ sum of reservations" holds after every step, and
// the room never admits more than rate × time + burst.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { applyAttempt, newRoom, shareDepth, type FairLimits, type RoomState } from "./fair-room.js";

const LIMITS: FairLimits = { rate: 1, burst: 6, baseCost: 1, windowMs: 60_000, maxSenders: 1000 };

function reservations(s: RoomState, l: FairLimits): number {
  const cap = shareDepth(l, s.senders.size);
  if (!(cap >= l.baseCost)) return 0;
  let sum = 0;
  for (const v of s.senders.values()) sum += Math.max(0, Math.min(v.m, cap));
  return sum;
}

describe("fair room", () => {
  it("the worked example: a flooder retrying every 200 ms never gets a person refused", () => {
    // rate 1/s, burst 6. Two people join at 0 (joins cost 1), then talk once
    // every 4 s each; a flooder arrives at 1 s and tries every 200 ms.
    const s = newRoom(LIMITS, 0);
    assert.equal(applyAttempt(s, LIMITS, "ann", 1, 0).admitted, true); // share 3, funded 3
    assert.equal(applyAttempt(s, LIMITS, "bob", 1, 0).admitted, true); // share 2, funded 2
    assert.equal(s.tokens, 4);
    let flood = 0;
    let floodTries = 0;
    const refusedPeople: number[] = [];
    for (let t = 1000; t <= 30_000; t += 200) {
      if (t % 4000 === 0 && !applyAttempt(s, LIMITS, "ann", 1, t).admitted) refusedPeople.push(t);
      if (t % 4000 === 2000 && !applyAttempt(s, LIMITS, "bob", 1, t).admitted) refusedPeople.push(t);
      floodTries++;
      if (applyAttempt(s, LIMITS, "bot", 1, t).admitted) flood++;
      assert.ok(s.tokens >= reservations(s, LIMITS) - 1e-9, `invariant at ${t}`);
    }
    assert.deepEqual(refusedPeople, []);
    // The bot got its first share (1.5) and a little more, then lives in debt.
    assert.ok(flood >= 1 && flood <= 6 + 30 - 14, `flood ${flood} of ${floodTries}`);
    // With three senders each share is 6/4 = 1.5 deep and refills at 0.25/s:
    // one message every 4 s per person fits.
    assert.equal(s.senders.size, 3);
    assert.equal(s.senders.get("bot")!.m, -66); // the floor: burst + rate × window
  });

  it("a lone sender gets the whole burst, like a single bucket", () => {
    const s = newRoom(LIMITS, 0);
    let ok = 0;
    for (let i = 0; i < 10; i++) if (applyAttempt(s, LIMITS, "solo", 1, 0).admitted) ok++;
    assert.equal(ok, 6);
  });

  it("a refusal takes nothing from the room but counts against its sender", () => {
    const s = newRoom(LIMITS, 0);
    for (let i = 0; i < 6; i++) applyAttempt(s, LIMITS, "a", 1, 0);
    assert.equal(s.tokens, 0);
    assert.equal(applyAttempt(s, LIMITS, "a", 1, 0).admitted, false);
    assert.equal(s.tokens, 0);
    assert.equal(s.senders.get("a")!.m, -4); // share 3, seven attempts; the floor is −6
    // One token later, someone who has not spoken gets it; the retrier would not.
    assert.equal(applyAttempt(s, LIMITS, "b", 1, 1000).admitted, true);
    assert.equal(applyAttempt(s, LIMITS, "a", 1, 2000).admitted, false);
  });

  it("senders idle for the window stop counting, and the shares grow back", () => {
    const s = newRoom(LIMITS, 0);
    for (const who of ["a", "b", "c"]) applyAttempt(s, LIMITS, who, 1, 0);
    assert.equal(s.senders.size, 3);
    applyAttempt(s, LIMITS, "a", 1, 59_999);
    assert.equal(s.senders.size, 3);
    applyAttempt(s, LIMITS, "a", 1, 60_000);
    assert.deepEqual([...s.senders.keys()], ["a"]);
  });

  it("with shares below the base cost, reservations are off and senders go by what they owe", () => {
    const l: FairLimits = { ...LIMITS, burst: 3 };
    const s = newRoom(l, 0);
    let ok = 0;
    for (let i = 0; i < 9; i++) if (applyAttempt(s, l, `u${i}`, 1, 0).admitted) ok++;
    assert.equal(ok, 3);
    assert.equal(s.senders.size, 9);
    assert.ok([...s.senders.values()].every((v) => v.m <= 0));
    // Everyone owes 1 (arrivals shrink every share): all equal, so u3 may use the whole bucket.
    assert.equal(applyAttempt(s, l, "u3", 1, 1200).admitted, true);
    // Now u3 owes more than all 8 others: it must leave 8/9 of the rest of
    // the burst (1.78) in the bucket; u4, who owes least, may use all of it.
    assert.equal(applyAttempt(s, l, "u3", 1, 2400).admitted, false); // 1.4 tokens
    assert.equal(applyAttempt(s, l, "u4", 1, 2400).admitted, true);
  });

  it("a replayed attempt takes the verdict it was given", () => {
    const s = newRoom(LIMITS, 0);
    for (let i = 0; i < 6; i++) applyAttempt(s, LIMITS, "a", 1, 0);
    assert.equal(applyAttempt(s, LIMITS, "b", 1, 0, true).admitted, true);
    assert.equal(s.tokens, -1); // a fleet's concurrent admissions leave the room in debt
    assert.equal(applyAttempt(s, LIMITS, "c", 1, 0, false).admitted, false);
  });
});

/**
 * The reference "within its share" test: a token bucket of the smallest
 * share (rate / (A + 1), burst / (A + 1) for the most senders A the room will
 * count) that starts empty when the sender arrives and is debited with every
 * attempt, the arrival's included.
 */
class Reference {
  #tokens = 0;
  #at = -1;
  readonly wishes: number[] = [];
  readonly rate: number;
  readonly depth: number;
  constructor(rate: number, depth: number) {
    this.rate = rate;
    this.depth = depth;
  }
  start(tokens: number, now: number): void {
    this.#tokens = tokens;
    this.#at = now;
  }
  covers(cost: number, now: number): boolean {
    if (this.#at >= 0) this.#tokens = Math.min(this.depth, this.#tokens + ((now - this.#at) * this.rate) / 1000);
    this.#at = now;
    // A margin keeps clear of rounding at the exact edge.
    return this.#tokens >= cost + 1e-6;
  }
  take(cost: number): void {
    this.#tokens -= cost;
  }
}

interface Attempt {
  t: number;
  readonly who: string;
  readonly cost: number;
  polite: boolean;
  /** On an arrival: the reference to start once the room has counted the sender. */
  readonly ref?: Reference;
}

describe("fair room: property", () => {
  it("no sender within its fair share is ever refused, and the room admits at most rate × time + burst", () => {
    const arb = fc.record({
      rate: fc.constantFrom(0.5, 1, 2, 5),
      polite: fc.integer({ min: 1, max: 4 }),
      flooders: fc.integer({ min: 0, max: 20 }),
      extraBurst: fc.integer({ min: 0, max: 6 }),
      // When each polite sender arrives (ms): before, during or after a flood.
      arrivals: fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 4, maxLength: 4 }),
      // Per polite sender: wished-for send times (ms), filtered by its share.
      politeWishes: fc.array(fc.array(fc.integer({ min: 0, max: 40_000 }), { maxLength: 40 }), { minLength: 4, maxLength: 4 }),
      // Flooders: arrival, gap between tries, cost (tenths), count.
      floods: fc.array(
        fc.record({ start: fc.integer({ min: 0, max: 40_000 }), gap: fc.integer({ min: 0, max: 3000 }), cost: fc.integer({ min: 10, max: 33 }), n: fc.integer({ min: 1, max: 200 }) }),
        { minLength: 20, maxLength: 20 },
      ),
    });
    let politeSeen = 0;
    let floodRefused = 0;
    fc.assert(
      fc.property(arb, (p) => {
        const aMax = p.polite + p.flooders;
        // Every share must cover a message: burst / (A + 1) ≥ 1.
        const burst = aMax + 1 + p.extraBurst;
        const l: FairLimits = { rate: p.rate, burst, baseCost: 1, windowMs: 60_000, maxSenders: 1000 };
        const rhoMin = p.rate / (aMax + 1);
        const bMin = burst / (aMax + 1);
        const attempts: Attempt[] = [];
        for (let i = 0; i < p.polite; i++) {
          const ref = new Reference(rhoMin, bMin);
          // Each polite sender arrives with a first stanza (its join: not
          // covered by the guarantee). The reference starts from what the
          // sender holds of its share once arrived (read from the room then).
          const arrival = p.arrivals[i]!;
          attempts.push({ t: arrival, who: `p${i}`, cost: 1, polite: false, ref });
          for (const t of [...p.politeWishes[i]!].sort((x, y) => x - y)) if (t > arrival) ref.wishes.push(t);
        }
        for (let f = 0; f < p.flooders; f++) {
          const fl = p.floods[f]!;
          for (let k = 0; k < fl.n; k++) attempts.push({ t: fl.start + k * fl.gap, who: `f${f}`, cost: fl.cost / 10, polite: false });
        }
        // Time order (stable: a sender's own attempts stay in order). A
        // polite sender's wishes join the queue once it has arrived, those
        // its reference covers.
        const queue = attempts.sort((x, y) => x.t - y.t);
        const s = newRoom(l, 0);
        let admitted = 0;
        while (queue.length > 0) {
          const a = queue.shift()!;
          const r = applyAttempt(s, l, a.who, a.cost, a.t);
          if (a.ref !== undefined) {
            // Usage so far against the smallest share: the share it arrived with minus its meter.
            const used = shareDepth(l, s.senders.size) - s.senders.get(a.who)!.m;
            a.ref.start(bMin - used, a.t);
            for (const t of a.ref.wishes) {
              if (!a.ref.covers(1, t)) continue;
              a.ref.take(1);
              queue.push({ t, who: a.who, cost: 1, polite: true });
            }
            queue.sort((x, y) => x.t - y.t);
          }
          if (a.polite) {
            politeSeen++;
            assert.ok(r.admitted, `polite ${a.who} refused at ${a.t} (${r.how})`);
          } else if (a.who.startsWith("f") && !r.admitted) floodRefused++;
          if (r.admitted) admitted += a.cost;
          assert.ok(admitted <= (p.rate * a.t) / 1000 + burst + 1e-9, `room admitted ${admitted} by ${a.t}`);
          assert.ok(s.tokens >= reservations(s, l) - 1e-9, `invariant broken at ${a.t}`);
        }
      }),
      { numRuns: 300 },
    );
    // Not vacuous: polite senders spoke, and floods were refused, over the runs.
    assert.ok(politeSeen > 300 && floodRefused > 1000, `polite ${politeSeen}, flood refused ${floodRefused}`);
  });
});
