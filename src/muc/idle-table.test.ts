// IdleTable on stepped time: idle expiry on lookup, lazy and full sweeps,
// least-recently-touched eviction at the cap, and reconfigure.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IdleTable } from "./idle-table.js";

interface E {
  last: number;
  v: string;
}

const e = (v: string): E => ({ last: 0, v });

describe("IdleTable", () => {
  it("returns live entries and forgets one idle for idleMs on lookup", () => {
    const t = new IdleTable<E>(1000, 10);
    t.insert("a", e("A"), 0);
    assert.equal(t.get("a", 999)?.v, "A");
    assert.equal(t.get("a", 1000), undefined);
    assert.equal(t.size, 0);
  });

  it("touch postpones expiry", () => {
    const t = new IdleTable<E>(1000, 10);
    const a = e("A");
    t.insert("a", a, 0);
    t.touch("a", a, 900);
    assert.equal(a.last, 900);
    assert.equal(t.get("a", 1800)?.v, "A");
  });

  it("sweep forgets idle entries, oldest first, and stops at the first live one", () => {
    const t = new IdleTable<E>(1000, 10);
    t.insert("a", e("A"), 0);
    t.insert("b", e("B"), 100);
    t.insert("c", e("C"), 900);
    assert.equal(t.sweep(1100), 2);
    assert.equal(t.size, 1);
    assert.equal(t.sweep(1100), 0);
  });

  it("sweeps a few idle heads lazily on every insert and touch", () => {
    const t = new IdleTable<E>(1000, 100);
    for (let i = 0; i < 10; i++) t.insert(`k${i}`, e(String(i)), 0);
    const live = e("live");
    t.insert("live", live, 5000);
    assert.equal(t.size, 11 - 4);
    t.touch("live", live, 5000);
    assert.equal(t.size, 11 - 8);
  });

  it("at the cap, forgets the least recently touched entry, idle or not", () => {
    const t = new IdleTable<E>(60_000, 3);
    const a = e("A");
    t.insert("a", a, 0);
    t.insert("b", e("B"), 1);
    t.insert("c", e("C"), 2);
    t.touch("a", a, 3); // b is now the oldest
    t.insert("d", e("D"), 4);
    assert.equal(t.size, 3);
    assert.equal(t.get("b", 4), undefined);
    assert.equal(t.get("a", 4)?.v, "A");
    assert.equal(t.capEvictions, 1);
  });

  it("prefers idle entries to live ones when making room", () => {
    const t = new IdleTable<E>(1000, 2);
    t.insert("a", e("A"), 0);
    t.insert("b", e("B"), 500);
    t.insert("c", e("C"), 1200); // a is idle: swept, no cap eviction
    assert.equal(t.capEvictions, 0);
    assert.equal(t.get("b", 1200)?.v, "B");
  });

  it("reconfigure applies a shorter idle time and a smaller cap at once", () => {
    const t = new IdleTable<E>(10_000, 10);
    for (let i = 0; i < 6; i++) t.insert(`k${i}`, e(String(i)), i * 1000);
    t.reconfigure(3000, 2, 6000); // k0..k3 idle at 6000
    assert.equal(t.size, 2);
    assert.deepEqual([...t.entries()].map(([k]) => k), ["k4", "k5"]);
  });

  it("lets entries() callers delete as they go", () => {
    const t = new IdleTable<E>(1000, 10);
    for (const k of ["a", "b", "c"]) t.insert(k, e(k), 0);
    for (const [k] of t.entries()) if (k !== "b") t.delete(k);
    assert.deepEqual([...t.entries()].map(([k]) => k), ["b"]);
  });
});
