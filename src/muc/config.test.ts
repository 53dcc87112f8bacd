// parseMucLimits: Prosody's defaults, normalisation, and one refusal per
// option with the path-relative `at` the config schema turns into file:line.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MUC_LIMITS_DEFAULTS, normaliseDomain, parseMucLimits, type MucLimitsOptions } from "./config.js";

function ok(raw: unknown): MucLimitsOptions {
  const r = parseMucLimits(raw);
  if (!r.ok) assert.fail(`expected ok, got ${r.at ?? ""}: ${r.message}`);
  return r.value;
}

function refused(raw: unknown): { at: string | undefined; message: string } {
  const r = parseMucLimits(raw);
  if (r.ok) assert.fail("expected a refusal");
  return { at: r.at, message: r.message };
}

describe("parseMucLimits", () => {
  it("fills Prosody's defaults for absent keys", () => {
    const v = ok({});
    assert.deepEqual(v, MUC_LIMITS_DEFAULTS);
    assert.equal(v.event_rate, 0.5);
    assert.equal(v.burst_factor, 6);
    assert.equal(v.max_nick_length, 23);
    assert.equal(v.max_char_count, 5664);
    assert.equal(v.max_line_count, 23);
    assert.equal(v.limit_base_cost, 1);
    assert.equal(v.line_count_multiplier, 0.1);
    // Prosody exempts any affiliation at all, outcast included.
    assert.deepEqual(v.exempt_affiliations, ["owner", "admin", "member", "outcast"]);
    assert.equal(v.per_occupant, null);
    assert.ok(Object.isFrozen(v));
  });

  it("accepts the issue's example section", () => {
    const v = ok({
      hosts: ["conference.example.org"],
      event_rate: 0.5,
      burst_factor: 6,
      max_nick_length: 23,
      max_char_count: 5664,
      max_line_count: 23,
      limit_base_cost: 1,
      line_count_multiplier: 0.1,
      exempt_affiliations: ["owner", "admin", "member"],
      per_occupant: { event_rate: 0.2, burst_factor: 5 },
    });
    assert.deepEqual(v.hosts, ["conference.example.org"]);
    assert.deepEqual(v.per_occupant, { event_rate: 0.2, burst_factor: 5 });
    assert.ok(Object.isFrozen(v.per_occupant));
    assert.ok(Object.isFrozen(v.hosts));
  });

  it("normalises hosts like nameprep (case, NFKC, trailing dot) and drops duplicates", () => {
    assert.deepEqual(ok({ hosts: ["Conference.Example.ORG.", "conference.example.org", "ｍｕｃ.example"] }).hosts, [
      "conference.example.org",
      "muc.example",
    ]);
    assert.equal(normaliseDomain("."), ".");
  });

  it("allows zero rates and costs, as Prosody's clamps do", () => {
    const v = ok({ event_rate: 0, limit_base_cost: 0, line_count_multiplier: 0, per_occupant: { event_rate: 0, burst_factor: 1 } });
    assert.equal(v.event_rate, 0);
  });

  it("refuses what Prosody would silently clamp, naming the key", () => {
    assert.equal(refused({ event_rate: -1 }).at, "event_rate");
    assert.equal(refused({ burst_factor: 0.5 }).at, "burst_factor");
    assert.equal(refused({ limit_base_cost: -0.1 }).at, "limit_base_cost");
    assert.equal(refused({ line_count_multiplier: -1 }).at, "line_count_multiplier");
    assert.match(refused({ burst_factor: 0.5 }).message, /below 1/);
  });

  it("refuses non-numbers and non-integers", () => {
    assert.equal(refused({ event_rate: "0.5" }).at, "event_rate");
    assert.equal(refused({ event_rate: Infinity }).at, "event_rate");
    assert.equal(refused({ max_nick_length: 2.5 }).at, "max_nick_length");
    assert.equal(refused({ max_char_count: -1 }).at, "max_char_count");
    assert.equal(refused({ max_line_count: null }).at, "max_line_count");
    assert.equal(refused({ max_tracked_rooms: 0 }).at, "max_tracked_rooms");
    assert.equal(refused({ max_tracked_occupants: 0 }).at, "max_tracked_occupants");
  });

  it("points into lists", () => {
    assert.equal(refused({ hosts: "conference.example.org" }).at, "hosts");
    assert.equal(refused({ hosts: ["ok.example", "bad host"] }).at, "hosts.1");
    assert.equal(refused({ hosts: ["room@muc.example"] }).at, "hosts.0");
    assert.equal(refused({ hosts: [""] }).at, "hosts.0");
    assert.equal(refused({ exempt_affiliations: ["owner", "moderator"] }).at, "exempt_affiliations.1");
    assert.match(refused({ exempt_affiliations: ["none"] }).message, /unaffiliated/);
  });

  it("checks per_occupant's shape", () => {
    assert.equal(ok({ per_occupant: null }).per_occupant, null);
    assert.equal(refused({ per_occupant: 3 }).at, "per_occupant");
    assert.equal(refused({ per_occupant: { event_rate: 1 } }).at, "per_occupant.burst_factor");
    assert.equal(refused({ per_occupant: { burst_factor: 2 } }).at, "per_occupant.event_rate");
    assert.equal(refused({ per_occupant: { event_rate: 1, burst_factor: 2, extra: 1 } }).at, "per_occupant.extra");
    assert.equal(refused({ per_occupant: { event_rate: -1, burst_factor: 2 } }).at, "per_occupant.event_rate");
    assert.equal(refused({ per_occupant: { event_rate: 1, burst_factor: 0 } }).at, "per_occupant.burst_factor");
  });

  it("requires idle_seconds to cover a full refill of every bucket", () => {
    assert.equal(refused({ idle_seconds: 0 }).at, "idle_seconds");
    assert.equal(refused({ idle_seconds: 5, active_seconds: 5 }).at, "idle_seconds"); // burst_factor 6
    assert.equal(ok({ idle_seconds: 6, active_seconds: 6 }).idle_seconds, 6);
    assert.equal(refused({ idle_seconds: 30 }).at, "active_seconds"); // 60 by default
    assert.equal(refused({ active_seconds: 0 }).at, "active_seconds");
    assert.equal(refused({ idle_seconds: 8, active_seconds: 8, per_occupant: { event_rate: 0.1, burst_factor: 10 } }).at, "idle_seconds");
  });

  it("refuses unknown keys, with a hint for Prosody's names", () => {
    assert.deepEqual(refused({ muc_event_rate: 1 }), { at: "muc_event_rate", message: `Prosody's muc_event_rate is spelled "event_rate" here` });
    assert.equal(refused({ evnt_rate: 1 }).at, "evnt_rate");
    assert.match(refused({ evnt_rate: 1 }).message, /unknown key/);
  });

  it("refuses a section that is not an object, without `at`", () => {
    for (const raw of [null, [], "on", 1]) assert.equal(refused(raw).at, undefined);
  });
});
