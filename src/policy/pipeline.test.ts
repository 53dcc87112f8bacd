// The pipeline calls each stage only for the stanzas its `only` names (flow
// and kind, in pipeline order), and every stage that declares one tells the
// truth: for any stanza outside it, judge() answers nothing. A declaration
// that is too narrow would hide stanzas from a stage silently, so the second
// test runs every real stage, built as the proxy builds them, over stanzas of
// every kind, written the usual way and the other ways an attacker would.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { testStanza } from "../../test/helpers/test-stanza.js";
import { configFromObject } from "../config/load.js";
import { createLogger } from "../log.js";
import { createMetrics } from "../metrics/definitions.js";
import { PolicyState } from "../wiring.js";
import type { StanzaKind } from "../xml/stanza-view.js";
import { Pipeline, type Flow, type PolicyStage, type SessionInfo } from "./pipeline.js";

const C2S: SessionInfo = { id: "c1", listener: "c2s", type: "c2s", ip: "192.0.2.1", port: 1, jid: "alice@example.org/r", domain: "example.org", authenticated: true };
const C2S_UNBOUND: SessionInfo = { id: "c2", listener: "c2s", type: "c2s", ip: "192.0.2.2", port: 2, jid: undefined, domain: "example.org", authenticated: false };
const S2S: SessionInfo = { id: "s1", listener: "s2s", type: "s2s", ip: "192.0.2.3", port: 3, jid: undefined, domain: "remote.example", authenticated: true };
const SESSIONS = [C2S, C2S_UNBOUND, S2S];
const FLOWS: readonly Flow[] = ["inbound", "outbound"];

/** Stanzas of each kind, each written several ways (prefixes, explicit namespaces, other namespaces). */
const STANZAS: readonly string[] = [
  "<message to='room@conference.example.org' type='groupchat' id='m1'><body>hi</body></message>",
  "<message from='bob@example.org/x' to='alice@example.org/r' type='chat'><body>hi</body></message>",
  "<c:message xmlns:c='jabber:client' to='bob@example.org' type='chat'><c:body>hi</c:body></c:message>",
  "<presence to='room@conference.example.org/nick'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
  "<presence to='gone@example.org' type='subscribe'/>",
  "<presence type='unavailable'/>",
  "<presence xmlns='jabber:client' from='bob@example.org/x' to='alice@example.org/r'/>",
  "<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>admin</username><password>x</password></query></iq>",
  "<iq type='result' id='r1'/>",
  "<iq type='get' id='g1'><query xmlns='jabber:iq:roster' ver='1'/></iq>",
  "<iq type='result' id='d1' from='example.org' to='alice@example.org/r'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
  "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.org/r</jid></bind></iq>",
  "<r xmlns='urn:xmpp:sm:3'/>",
  "<message xmlns='urn:example:not-a-stanza' to='bob@example.org'><body>hi</body></message>",
  "<x:presence xmlns:x='urn:example:not-a-stanza'/>",
];

test("judge() calls a stage only for the flows and kinds its `only` names, in pipeline order; wants() follows", () => {
  const calls: string[] = [];
  const stage = (name: string, only?: PolicyStage["only"]): PolicyStage => ({
    name,
    only,
    judge(stanza, _session, flow) {
      calls.push(`${name} ${flow} ${stanza.kind}`);
      return undefined;
    },
  });
  const pipeline = new Pipeline([
    stage("all"),
    stage("presence-in", { flow: "inbound", kinds: ["presence"] }),
    stage("stanzas", { flow: "both", kinds: ["message", "presence", "iq"] }),
    stage("iq-out", { flow: "outbound", kinds: ["iq"] }),
  ]);
  const xml: Record<StanzaKind, string> = { message: "<message/>", presence: "<presence/>", iq: "<iq type='get' id='1'/>", other: "<r xmlns='urn:xmpp:sm:3'/>" };
  for (const flow of FLOWS) {
    for (const kind of ["message", "presence", "iq", "other"] as const) {
      calls.length = 0;
      assert.equal(pipeline.judge(testStanza(xml[kind]), C2S, flow), null);
      const expected = ["all"];
      if (flow === "inbound" && kind === "presence") expected.push("presence-in");
      if (kind !== "other") expected.push("stanzas");
      if (flow === "outbound" && kind === "iq") expected.push("iq-out");
      assert.deepEqual(calls, expected.map((n) => `${n} ${flow} ${kind}`));
      assert.equal(pipeline.wants(flow, kind), true);
    }
  }
  const declared = new Pipeline([stage("presence-in", { flow: "inbound", kinds: ["presence"] }), stage("iq-out", { flow: "outbound", kinds: ["iq"] })]);
  assert.deepEqual(
    FLOWS.flatMap((flow) => (["message", "presence", "iq", "other"] as const).filter((k) => declared.wants(flow, k)).map((k) => `${flow} ${k}`)),
    ["inbound presence", "outbound iq"],
  );
});

test("every real stage that declares `only` answers nothing for a stanza outside it, whatever the session", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "xg-pipeline-only-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Rules that answer every stanza of every chain, so that a stage which
  // should have looked at a stanza would show it.
  const rules = join(dir, "all.pfw");
  writeFileSync(rules, "::preroute\nDROP.\n\n::deliver\nDROP.\n\n::deliver_remote\nDROP.\n");
  const config = configFromObject({
    listeners: [{ name: "c2s", type: "c2s", listen: "127.0.0.1:0", upstream: "127.0.0.1:1" }],
    hosts: ["example.org", "conference.example.org"],
    firewall: { scripts: [rules], watch: false, shadow: [rules] },
    state: { path: join(dir, "state.sqlite") },
    registration: {},
    muc_limits: { hosts: ["conference.example.org"], event_rate: 0.001, burst_factor: 1 },
    contact_info: { abuse: ["mailto:abuse@example.org"] },
  });
  const policy = new PolicyState(createLogger("error"), createMetrics({ defaultMetrics: false }));
  t.after(() => policy.close());
  await policy.openState(config);
  const loaded = await policy.loadRules(config);
  assert.deepEqual(loaded.errors, []);
  policy.firewall.swap(loaded.ruleset);
  const shadow = await policy.loadShadowRules(config);
  assert.deepEqual(shadow.errors, []);
  policy.shadow.swap(shadow.ruleset);
  const pipeline = policy.build(config, true, true);
  const declaring = pipeline.stages.filter((s) => s.only !== undefined).map((s) => s.name);
  assert.deepEqual(declaring, ["registration", "firewall_shadow", "firewall", "muc_limits", "contact_info", "roster_knowledge", "knowledge"]);

  let outside = 0;
  for (const stage of pipeline.stages) {
    const only = stage.only;
    if (only === undefined) continue;
    for (const xml of STANZAS) {
      for (const session of SESSIONS) {
        for (const flow of FLOWS) {
          const view = testStanza(xml, { sessionJid: flow === "inbound" ? session.jid : undefined });
          if ((only.flow === "both" || only.flow === flow) && only.kinds.includes(view.kind)) continue;
          outside++;
          assert.equal(stage.judge(view, session, flow), undefined, `${stage.name} answered ${flow} ${view.kind} ${xml} from ${session.id}`);
        }
      }
    }
  }
  assert.ok(outside > 100, `${outside} stanzas outside the declarations`);
});
