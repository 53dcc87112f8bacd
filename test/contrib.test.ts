// contrib/grafana/xmpp-guard.json and contrib/prometheus/alerts.yml may use
// only metrics the code really exports: every series name in every PromQL
// expression they contain must resolve to a metric in the registry that
// createMetrics() builds (histogram _bucket/_sum/_count and counter _total
// suffixes accounted for). A renamed metric fails here, not on a dashboard.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { createMetrics, createPrimaryMetrics } from "../src/metrics/definitions.js";

const ROOT = new URL("../", import.meta.url);
const DASHBOARD = new URL("contrib/grafana/xmpp-guard.json", ROOT);
const ALERTS = new URL("contrib/prometheus/alerts.yml", ROOT);

/** Series Prometheus itself records for every scrape target. */
const SCRAPE_SERIES = new Set(["up"]);

/** PromQL words that are not series names: aggregators, set operators and modifiers. */
const KEYWORDS = new Set([
  "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
  "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "atan2",
  "inf", "nan",
]);

/**
 * Series names referenced by a PromQL expression. Strings, label matchers
 * `{…}`, ranges `[…]` and grouping label lists are removed first; what is left
 * is function names (followed by `(`), keywords, numbers, and series names.
 */
export function seriesNames(expr: string): string[] {
  let e = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, " ")
    .replace(/\{[^{}]*\}/g, " ")
    .replace(/\[[^\][]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/g, " ");
  e = e.replace(/\$\{?\w+\}?/g, " "); // Grafana variables outside matchers
  const names = new Set<string>();
  for (const m of e.matchAll(/(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    if (m[2] !== undefined) continue; // a function call
    if (KEYWORDS.has(m[1]!.toLowerCase())) continue;
    names.add(m[1]!);
  }
  return [...names];
}

function dashboardExpressions(): Array<{ where: string; expr: string }> {
  const dash = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }>; panels?: unknown[] }>;
    templating: { list: Array<{ name: string; query?: unknown }> };
  };
  const out: Array<{ where: string; expr: string }> = [];
  for (const p of dash.panels) {
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  }
  for (const v of dash.templating.list) {
    const q = typeof v.query === "string" ? v.query : (v.query as { query?: string } | undefined)?.query;
    const lv = q && /^label_values\((.*),\s*\w+\)$/.exec(q);
    if (lv) out.push({ where: `variable $${v.name}`, expr: lv[1]! });
  }
  return out;
}

function alertExpressions(): Array<{ where: string; expr: string }> {
  const doc = parseYaml(readFileSync(ALERTS, "utf8")) as { groups: Array<{ rules: Array<{ alert?: string; record?: string; expr: string }> }> };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: String(r.expr) })));
}

async function registryTypes(): Promise<Map<string, string>> {
  const metrics = createMetrics();
  const types = new Map<string, string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) types.set(m.name, String(m.type));
  // Workers mode adds the primary's own.
  for (const m of await createPrimaryMetrics().registry.getMetricsAsJSON()) types.set(m.name, String(m.type));
  return types;
}

/** Does a scraped series name belong to an exported metric? */
function resolves(name: string, types: Map<string, string>): boolean {
  if (SCRAPE_SERIES.has(name)) return true;
  // A histogram is scraped only as _bucket, _sum and _count series.
  if (types.has(name)) return types.get(name) !== "histogram";
  const hist = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (hist) {
    const t = types.get(hist[1]!);
    if (t === "histogram" || (t === "summary" && hist[2] !== "bucket")) return true;
  }
  // A counter registered without the suffix is exposed as name_total.
  const base = name.endsWith("_total") ? name.slice(0, -"_total".length) : "";
  if (base !== "" && !base.endsWith("_total") && types.get(base) === "counter") return true;
  return false;
}

test("seriesNames reads names, not functions, labels, ranges or keywords", () => {
  assert.deepEqual(
    seriesNames(`sum by (le, kind) (rate(a_bucket{x=~"y|z", q='b'}[5m] offset 1h)) / on(i) group_left(j) clamp_min(b_total, 0.01) > 1e3 and up{job="j"}`).sort(),
    ["a_bucket", "b_total", "up"],
  );
  assert.deepEqual(seriesNames(`time() - max(c{instance=~"$instance"})`), ["c"]);
  assert.deepEqual(seriesNames(`histogram_quantile(0.99, sum by (le) (rate(d_bucket[$__rate_interval])))`), ["d_bucket"]);
});

test("resolves: histogram and counter suffixes, and nothing else", async () => {
  const types = new Map([["h", "histogram"], ["c_total", "counter"], ["bare", "counter"], ["g", "gauge"]]);
  for (const ok of ["h_bucket", "h_sum", "h_count", "c_total", "bare_total", "g", "up"]) assert.ok(resolves(ok, types), ok);
  for (const bad of ["h", "g_bucket", "g_total", "c", "c_total_total", "nope"]) assert.ok(!resolves(bad, types), bad);
});

test("every metric the Grafana dashboard and the alert rules use is exported", async () => {
  const types = await registryTypes();
  const all = [...dashboardExpressions(), ...alertExpressions()];
  assert.ok(all.length >= 30, `expected many expressions, found ${all.length}`);
  const used = new Set<string>();
  const missing: string[] = [];
  for (const { where, expr } of all) {
    const names = seriesNames(expr);
    assert.ok(names.length > 0, `${where}: no series in ${expr}`);
    for (const n of names) {
      used.add(n);
      if (!resolves(n, types)) missing.push(`${where}: ${n}`);
    }
  }
  assert.deepEqual(missing, [], `unknown metrics:\n${missing.join("\n")}`);
  // The dashboard covers what the issue asks for.
  for (const must of [
    "xmpp_guard_sessions", "xmpp_guard_bytes_total", "xmpp_guard_stanzas_total", "xmpp_guard_throttled_seconds_total",
    "xmpp_guard_firewall_rule_hits_total", "xmpp_guard_firewall_reloads_total", "xmpp_guard_muc_limited_total",
    "xmpp_guard_registration_refusals_total", "xmpp_guard_stream_errors_total", "process_resident_memory_bytes", "xmpp_guard_auth_failures_total", "xmpp_guard_session_duration_seconds_bucket",
    "xmpp_guard_upstream_failures_total", "xmpp_guard_config_reloads_total", "xmpp_guard_worker_restarts_total",
    "xmpp_guard_firewall_shadow_verdicts_total", "xmpp_guard_upstream_connect_seconds_bucket",
  ]) assert.ok(used.has(must), `nothing uses ${must}`);
});

test("the dashboard's panels have unique ids and sane grid positions", () => {
  const dash = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { uid: string; panels: Array<{ id: number; gridPos: { x: number; w: number } }> };
  assert.equal(dash.uid, "xmpp-guard");
  const ids = dash.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const p of dash.panels) assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `panel ${p.id} off the grid`);
});
