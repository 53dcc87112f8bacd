// The roster stage in the pipeline PolicyState builds: the store opens only
// when a loaded rule file uses a roster condition; the stage is last, learns
// through the session's flows, and turns a roster get's ver into a rewrite.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { configFromObject } from "../config/load.js";
import { testStanza } from "../../test/helpers/test-stanza.js";
import { createLogger } from "../log.js";
import { createMetrics } from "../metrics/definitions.js";
import { PolicyState } from "../wiring.js";
import type { SessionInfo } from "../policy/pipeline.js";

function setup(t: { after(fn: () => void): void }, rules: string, knowledge?: { rosters: boolean }) {
  const dir = mkdtempSync(join(tmpdir(), "xg-roster-stage-"));
  const rulesPath = join(dir, "r.pfw");
  writeFileSync(rulesPath, rules);
  const statePath = join(dir, "state.sqlite");
  const config = configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: "127.0.0.1:1" }],
    firewall: { scripts: [rulesPath], watch: false },
    state: { path: statePath },
    ...(knowledge === undefined ? {} : { knowledge }),
  });
  const metrics = createMetrics({ defaultMetrics: false });
  const policy = new PolicyState(createLogger("error"), metrics);
  t.after(() => {
    policy.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { config, policy, statePath, metrics };
}

const SESSION: SessionInfo = { id: "s1", listener: "c2s", type: "c2s", ip: "127.0.0.1", port: 1, jid: "alice@example.org/r", domain: "example.org", authenticated: true };

test("a rule file using SUBSCRIBED? opens the roster store; the stage runs last and learns", async (t) => {
  const { config, policy, statePath, metrics } = setup(t, "::deliver\nSUBSCRIBED?\nPASS.\n\nKIND: message\nDROP.\n");
  const loaded = await policy.loadRules(config);
  assert.deepEqual(loaded.errors, []);
  assert.ok(existsSync(statePath));
  policy.firewall.swap(loaded.ruleset);
  const pipeline = policy.build(config, true);
  assert.equal(pipeline.stages.at(-1)?.name, "roster_knowledge");

  const inbound = (xml: string) => pipeline.judge(testStanza(xml, { sessionJid: SESSION.jid }), SESSION, "inbound");
  const outbound = (xml: string) => pipeline.judge(testStanza(xml), SESSION, "outbound");
  // Unknown roster: a stranger's message is dropped, and the lookup counted.
  assert.equal(outbound("<message from='bob@example.org/x' to='alice@example.org/r'><body>hi</body></message>")?.verdict.action, "drop");
  assert.equal((await metrics.rosterUnknownLookups.get()).values[0]?.value, 1);
  // The get with a ver the proxy has no copy of is rewritten without it.
  const v = inbound("<iq type='get' id='g1'><query xmlns='jabber:iq:roster' ver='3'/></iq>");
  assert.equal(v?.stage, "roster_knowledge");
  assert.equal(v?.verdict.action, "rewrite");
  assert.equal(outbound("<iq type='result' id='g1'><query xmlns='jabber:iq:roster' ver='4'><item jid='bob@example.org' subscription='both'/></query></iq>"), null);
  assert.equal(outbound("<message from='bob@example.org/x' to='alice@example.org/r'><body>hi</body></message>"), null);
  assert.equal((await metrics.rostersLearned.get()).values[0]?.value, 1);
  assert.equal(policy.rosters.entry("alice@example.org", "bob@example.org")?.subscription, "both");
  // Now the proxy has version 4: that get goes through untouched.
  assert.equal(inbound("<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='4'/></iq>"), null);
});

test("rules without roster conditions open no store; knowledge.rosters: false refuses roster rules", async (t) => {
  const plain = setup(t, "KIND: message\nDROP.\n");
  assert.deepEqual((await plain.policy.loadRules(plain.config)).errors, []);
  assert.equal(existsSync(plain.statePath), false);

  const off = setup(t, "::deliver\nIN ROSTER?\nPASS.\n", { rosters: false });
  const r = await off.policy.loadRules(off.config);
  assert.equal(r.ruleset, undefined);
  assert.match(r.errors.join("\n"), /IN ROSTER.*roster/);
  assert.equal(off.policy.build(off.config, true).stages.some((s) => s.name === "roster_knowledge"), false);
});
