// LIMIT and %RATE with a fake clock (util.throttle in docs/shaping.md, %RATE in docs/firewall.md): bucket
// size R×B, refill R/s, failed polls take nothing, per-key LRU tables with
// deny-when-full and allow overflow, sharing per (file, chain, rate), and
// carry-over of bucket state across reloads.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileRuleSources, type CompiledRuleSet } from "./compile.js";
import { MultiThrottle, POLL_LIMITED, POLL_OK, POLL_TABLE_FULL, type LimitBucket } from "./limits.js";
import { Throttle } from "../shaping/token-bucket.js";
import { testStanza } from "../../test/helpers/test-stanza.js";

class FakeClock {
  t = 1_000;
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

function compile(text: string, clock: FakeClock, previous?: CompiledRuleSet, file = "t.pfw"): CompiledRuleSet {
  const r = compileRuleSources([{ file, text }], { clock, previous });
  assert.deepEqual(r.errors.map((e) => e.format()), []);
  return r.ruleset!;
}

function verdicts(rs: CompiledRuleSet, xml: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(rs.run("deliver", { stanza: testStanza(xml) }).verdict);
  return out;
}

const MSG = "<message from='a@x.example/r' to='b@y.example' id='1'/>";
const RULE = "%RATE normal: 2 (burst 1)\n\nKIND: message\nLIMIT: normal\nBOUNCE=policy-violation (Sending too fast!)";

describe("Throttle", () => {
  it("starts full, refills R per second, never above R×B", () => {
    const t = new Throttle(2, 3, 0);
    for (let i = 0; i < 6; i++) assert.ok(t.poll(0));
    assert.ok(!t.poll(0));
    assert.ok(!t.poll(499));
    assert.ok(t.poll(500));
    assert.equal(t.balance(100_000), 6);
  });

  it("a failed poll deducts nothing", () => {
    const t = new Throttle(1, 1, 0);
    assert.ok(t.poll(0));
    assert.ok(!t.poll(600));
    assert.ok(t.poll(1000));
  });

  it("refreshes lazily, like util.throttle (only when the balance is short)", () => {
    const t = new Throttle(2, 1.5, 0); // capacity 3
    assert.ok(t.poll(0)); // 2 left, no refresh
    assert.ok(t.poll(10_000)); // 1 left, still no refresh
    assert.ok(t.poll(10_000)); // 0 left
    assert.ok(t.poll(10_000)); // refresh credits 10 s (capped at 3)
    assert.ok(t.poll(10_000));
    assert.ok(t.poll(10_000));
    assert.ok(!t.poll(10_000));
  });

  it("capacity below 1 never passes", () => {
    const t = new Throttle(0.1, 1, 0);
    assert.ok(!t.poll(0));
    assert.ok(!t.poll(1_000_000));
  });
});

describe("MultiThrottle", () => {
  it("keeps one bucket per key", () => {
    const m = new MultiThrottle(1, 1, 10, false);
    assert.equal(m.poll("a", 0), POLL_OK);
    assert.equal(m.poll("a", 0), POLL_LIMITED);
    assert.equal(m.poll("b", 0), POLL_OK);
  });

  it("when full, evicts the LRU bucket only if it is idle; otherwise denies", () => {
    const m = new MultiThrottle(1, 1, 2, false);
    m.poll("a", 0);
    m.poll("b", 0);
    assert.equal(m.poll("c", 0), POLL_TABLE_FULL);
    assert.equal(m.size, 2);
    assert.equal(m.poll("c", 1000), POLL_OK, "a refilled, so it may be evicted");
    assert.equal(m.poll("a", 1000), POLL_OK, "a starts again with a full bucket");
  });

  it("allow overflow always evicts (fail-open)", () => {
    const m = new MultiThrottle(1, 1, 1, true);
    m.poll("a", 0);
    assert.equal(m.poll("b", 0), POLL_OK);
    assert.equal(m.poll("a", 0), POLL_OK);
  });

  it("a hit makes its key the most recently used: the idle older key is the one evicted", () => {
    const m = new MultiThrottle(1, 2, 2, false);
    m.poll("a", 0);
    m.poll("b", 0);
    m.poll("a", 0);
    m.poll("a", 1900); // a is newer than b now, and short of full at 2000
    assert.equal(m.poll("c", 2000), POLL_OK, "b, the least recently used and idle, made room");
    assert.equal(m.size, 2);
    assert.equal(m.poll("b", 2000), POLL_TABLE_FULL, "a (not idle) is now the oldest: no room for b");
  });

  it("agrees with a reference table under interleaved keys, hits, evictions and refusals", () => {
    // Reference: Map insertion order as the LRU order (the obvious model).
    const reference = (entries: number, allowOverflow: boolean) => {
      const buckets = new Map<string, Throttle>();
      const poll = (key: string, now: number): number => {
        let b = buckets.get(key);
        if (b) {
          buckets.delete(key);
          buckets.set(key, b);
        } else {
          if (buckets.size >= entries) {
            const [k, old] = buckets.entries().next().value as [string, Throttle];
            if (!allowOverflow && !old.isIdle(now)) return POLL_TABLE_FULL;
            buckets.delete(k);
          }
          b = new Throttle(1, 2, now);
          buckets.set(key, b);
        }
        return b.poll(now) ? POLL_OK : POLL_LIMITED;
      };
      return { buckets, poll };
    };
    let seed = 7;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (const allowOverflow of [false, true]) {
      const m = new MultiThrottle(1, 2, 4, allowOverflow);
      const ref = reference(4, allowOverflow);
      let now = 0;
      const outcomes = new Set<number>();
      for (let i = 0; i < 5000; i++) {
        now += next(700);
        const key = `k${next(7)}`;
        const r = m.poll(key, now);
        assert.equal(r, ref.poll(key, now), `step ${i}, ${key} at ${now}`);
        assert.equal(m.size, ref.buckets.size);
        outcomes.add(r);
      }
      // Every outcome came up (a table that may not overflow also refused).
      assert.deepEqual([...outcomes].sort(), allowOverflow ? [POLL_OK, POLL_LIMITED] : [POLL_OK, POLL_LIMITED, POLL_TABLE_FULL]);
    }
  });

  it("hints (the bucket a key had, as sessions remember it) change no answer and no LRU order, even stale or wrong ones", () => {
    // The same reference walk, each key polled with the bucket it had last time
    // (evicted meanwhile or not), or now and then another key's bucket: the
    // answers and the table must be exactly the lookup's. A hinted bucket not
    // moved to the new end would be evicted while busy, and start full again.
    for (const allowOverflow of [false, true]) {
      const plain = new MultiThrottle(1, 2, 4, allowOverflow);
      const hinted = new MultiThrottle(1, 2, 4, allowOverflow);
      const other = new MultiThrottle(1, 2, 4, allowOverflow);
      const hints = new Map<string, LimitBucket | null>();
      let seed = 11;
      const next = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      let now = 0;
      let used = 0;
      for (let i = 0; i < 5000; i++) {
        now += next(700);
        const key = `k${next(7)}`;
        other.poll(key, now);
        const wrong = next(5);
        const hint = wrong === 0 ? other.newest : wrong === 1 ? (hints.get(`k${next(7)}`) ?? null) : (hints.get(key) ?? null);
        if (hint !== null && hint === hints.get(key)) used++;
        const r = hinted.poll(key, now, hint);
        assert.equal(r, plain.poll(key, now), `step ${i}, ${key} at ${now}`);
        assert.equal(hinted.size, plain.size);
        if (r !== POLL_TABLE_FULL) hints.set(key, hinted.newest);
      }
      assert.ok(used > 1000, `${used} polls with the key's own hint`);
    }
  });
});

describe("LIMIT in rules", () => {
  it("the verified vector: rate 2 burst 1 passes two messages and bounces the third", () => {
    const rs = compile(RULE, new FakeClock());
    assert.deepEqual(verdicts(rs, MSG, 3), ["pass", "pass", "bounce"]);
  });

  it("rate 2 burst 3 allows six at once, then two per second", () => {
    const clock = new FakeClock();
    const rs = compile(RULE.replace("(burst 1)", "(burst 3)"), clock);
    assert.deepEqual(verdicts(rs, MSG, 7), ["pass", "pass", "pass", "pass", "pass", "pass", "bounce"]);
    clock.advance(1000);
    assert.deepEqual(verdicts(rs, MSG, 3), ["pass", "pass", "bounce"]);
  });

  it("NOT LIMIT matches while under the limit", () => {
    const rs = compile("%RATE r: 1\n\nNOT LIMIT: r\nLOG=ok", new FakeClock());
    const logs = [0, 1].map(() => rs.run("deliver", { stanza: testStanza(MSG) }).logs.length);
    assert.deepEqual(logs, [1, 0]);
  });

  it("LIMIT … on EXPR keeps a bucket per value", () => {
    const rs = compile("%RATE perdomain: 1 (burst 2) (entries 10)\n\nLIMIT: perdomain on $<@from|host>\nDROP.", new FakeClock());
    assert.deepEqual(verdicts(rs, "<message from='a@x.example'/>", 3), ["pass", "pass", "drop"]);
    assert.deepEqual(verdicts(rs, "<message from='a@other.example'/>", 1), ["pass"]);
  });

  it("a full table denies new keys and logs Prosody's warning", () => {
    const rs = compile("%RATE r: 1 (entries 1)\n\nLIMIT: r on $<@from>\nDROP.", new FakeClock());
    rs.run("deliver", { stanza: testStanza("<message from='a@x'/>") });
    const r = rs.run("deliver", { stanza: testStanza("<message from='b@x'/>") });
    assert.equal(r.verdict, "drop");
    assert.deepEqual(r.logs.map((l) => [l.level, l.message, l.rule.id]), [
      ["warn", "Multirate 'r' has hit its maximum number of active throttles (1), denying new events", "t.pfw:3"],
    ]);
  });

  it("LIMIT rules in one chain of one file share the rate's bucket", () => {
    const rs = compile("%RATE r: 1 (burst 2)\n\nKIND: message\nLIMIT: r\nDROP.\n\nKIND: presence\nLIMIT: r\nDROP.", new FakeClock());
    assert.equal(rs.run("deliver", { stanza: testStanza("<message/>") }).verdict, "pass");
    assert.equal(rs.run("deliver", { stanza: testStanza("<presence/>") }).verdict, "pass");
    assert.equal(rs.run("deliver", { stanza: testStanza("<presence/>") }).verdict, "drop");
  });

  it("the same %RATE in another chain or file gets its own bucket", () => {
    const clock = new FakeClock();
    const r = compileRuleSources(
      [
        { file: "a.pfw", text: "%RATE r: 1\n\nLIMIT: r\nDROP.\n\n::preroute\nLIMIT: r\nDROP." },
        { file: "b.pfw", text: "LIMIT: r\nLOG=limited in b" },
      ],
      { clock },
    );
    const rs = r.ruleset!;
    assert.equal(rs.run("deliver", { stanza: testStanza(MSG) }).verdict, "pass");
    assert.equal(rs.run("preroute", { stanza: testStanza(MSG) }).verdict, "pass");
    const second = rs.run("deliver", { stanza: testStanza(MSG) });
    assert.equal(second.verdict, "drop");
    assert.equal(second.logs.length, 0, "b.pfw's bucket is still full and b never ran");
  });
});

describe("reload carries bucket state over", () => {
  it("an unchanged rate keeps its bucket, even when other rules change", () => {
    const clock = new FakeClock();
    const v1 = compile(RULE, clock);
    assert.deepEqual(verdicts(v1, MSG, 2), ["pass", "pass"]);
    const v2 = compile(`${RULE}\n\nKIND: iq\nDROP.`, clock, v1);
    assert.deepEqual(verdicts(v2, MSG, 1), ["bounce"], "no free burst after a reload");
  });

  it("changed rate parameters start a fresh bucket", () => {
    const clock = new FakeClock();
    const v1 = compile(RULE, clock);
    verdicts(v1, MSG, 2);
    const v2 = compile(RULE.replace("(burst 1)", "(burst 2)"), clock, v1);
    assert.deepEqual(verdicts(v2, MSG, 5), ["pass", "pass", "pass", "pass", "bounce"]);
  });

  it("keyed tables and memory lists carry over too", () => {
    const clock = new FakeClock();
    const text = "%RATE r: 1 (entries 5)\n%LIST seen: memory\n\nADD TO=seen $<@from>\n\nLIMIT: r on $<@from>\nDROP.\n\nCHECK LIST: seen contains x@y\nLOG=seen";
    const v1 = compile(text, clock);
    verdicts(v1, "<message from='x@y'/>", 1);
    const v2 = compile(text, clock, v1);
    const r = v2.run("deliver", { stanza: testStanza("<message from='x@y'/>") });
    assert.equal(r.verdict, "drop");
    const v3 = compile(text.replace("LIMIT: r on $<@from>\nDROP.", "LOG=no limit"), clock, v2);
    assert.deepEqual(v3.run("deliver", { stanza: testStanza("<message from='z@y'/>") }).logs.map((l) => l.message), ["no limit", "seen"]);
  });
});
