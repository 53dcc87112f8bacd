// The firewall as a policy stage: maps a stanza's flow to a mod_firewall chain
// (docs/firewall.md, "Chains"), runs the live CompiledRuleSet and turns its
// FirewallResult into a pipeline Verdict. It holds the rule set by reference
// (swap() on reload; read once per stanza), keeps each session's marks for as
// long as the session lives, and reports hits, logs and stanzas to send
// through hooks. It never touches sockets, loggers or metrics itself.
import { ERRORS, type ErrorCode } from "../errors.js";
import type { Flow, PolicyStage, SessionInfo, Verdict } from "../policy/pipeline.js";
import type { StanzaView } from "../xml/stanza-view.js";
import { Stanza } from "../xml/stanza.js";
import type { ActionName, LogActionLevel } from "./ast.js";
import type { CompiledRuleSet } from "./compile.js";
import type { EmittedStanza, FirewallResult, OriginSession, RuleRef, RunChain } from "./context.js";
import { hostOf, prepJid } from "../xmpp/jid.js";
import { RunMemory } from "./run-memory.js";
import type { HandlerRun } from "./runtime.js";

/**
 * Catalogue code for DISCONNECT (stream error policy-violation). Not in
 * src/errors.ts yet: until it is, DISCONNECT degrades to a drop and an error
 * log, because the session cannot close with a code the catalogue lacks.
 */
export const FIREWALL_DISCONNECT = "XPX_ERR_FIREWALL_DISCONNECT" as ErrorCode;

/**
 * Proposed addition to the Verdict union: forward `bytes` (a complete stanza)
 * instead of the original. The firewall produces it for STRIP and INJECT. Only
 * returned when the stage is built with `rewrites: true`.
 */
export interface RewriteVerdict {
  readonly action: "rewrite";
  readonly bytes: Buffer;
  readonly reason: string;
}

/** Where an emitted stanza must be written, seen from the session that judged it. */
export type EmitTarget = "peer" | "upstream";

export interface FirewallHooks {
  /** One call per action run (metrics: rule id × action). */
  onHit?(rule: RuleRef, action: ActionName): void;
  /** LOG actions and the core's own notes. */
  onLog?(level: LogActionLevel, message: string, rule: RuleRef, session: SessionInfo): void;
  /**
   * A stanza the rules send (REPLY, REDIRECT, COPY, FORWARD, REPORT TO). The
   * stage works out the side: replies go back toward the origin (the peer for
   * inbound stanzas, the server for outbound ones); routed stanzas always go
   * to the server, on this session's stream.
   */
  onEmit?(emitted: EmittedStanza, target: EmitTarget, session: SessionInfo): void;
  /** The core threw (a bug): the stanza was let through. */
  onError?(error: unknown, session: SessionInfo): void;
}

export interface FirewallStageInit {
  /** The live rule set; undefined means no firewall (every stanza passes). */
  readonly ruleset?: CompiledRuleSet | undefined;
  readonly hooks?: FirewallHooks | undefined;
  /**
   * Whether the session can forward a RewriteVerdict. Until Verdict has one,
   * leave it false: STRIP/INJECT results are then reported through onLog and
   * the original stanza is forwarded.
   */
  readonly rewrites?: boolean | undefined;
}

/** The chain a stanza runs through, the origin the rules see, and what the session's runs remember. */
interface Route {
  readonly chain: RunChain;
  readonly origin: OriginSession | undefined;
  /** Toward a client (deliver on a c2s link): the stanza is the server's own serialisation. */
  readonly fromServer: boolean;
  /** The session's memory for the stanzas of this flow (each flow names its addresses in its own roles). */
  readonly memory: RunMemory;
}

/** What the stage keeps per session: the route its stanzas took last, per flow. */
interface SessionRoutes {
  inbound: Route | undefined;
  outbound: Route | undefined;
  /** deliver_remote after preroute: its own memory, so that the two runs of one stanza keep a memo each. */
  remote: Route | undefined;
}

/** Whether `origin` is what #origin would make of `session` now (same JID, domain, address, state). */
function describes(origin: OriginSession, session: SessionInfo): boolean {
  const c2s = session.type === "c2s";
  return origin.jid === (c2s ? session.jid : undefined) && origin.domain === (c2s ? undefined : session.domain) && origin.ip === session.ip &&
    origin.authenticated === session.authenticated;
}

/**
 * The chain a stanza runs (docs/firewall.md): a bound client's stanzas run
 * `preroute`; stanzas from an authenticated s2s peer run `deliver`; stanzas
 * toward a bound client run `deliver` with no origin (the sender's session
 * is not visible). Traffic before binding or authentication never reaches a
 * chain (undefined), as in Prosody.
 */
function chainOf(session: SessionInfo, flow: Flow): RunChain | undefined {
  if (session.type === "c2s") return session.jid === undefined ? undefined : flow === "inbound" ? "preroute" : "deliver";
  return flow === "inbound" && session.authenticated ? "deliver" : undefined;
}

function describeDecision(r: FirewallResult): string {
  const last = r.hits.at(-1);
  return last ? `${last.rule.id} ${last.action.replace(/_/g, " ")}` : "firewall";
}

export class FirewallStage implements PolicyStage {
  readonly name = "firewall";
  /** Nonzas never reach a chain, as in Prosody. */
  readonly only = { flow: "both", kinds: ["message", "presence", "iq"] } as const;
  #ruleset: CompiledRuleSet | undefined;
  readonly #hooks: FirewallHooks;
  readonly #rewrites: boolean;
  /** Per session, the routes its stanzas take: the origin's marks and the run memory live exactly as long as the session. */
  readonly #routes = new WeakMap<SessionInfo, SessionRoutes>();

  constructor(init: FirewallStageInit = {}) {
    this.#ruleset = init.ruleset;
    this.#hooks = init.hooks ?? {};
    this.#rewrites = init.rewrites ?? false;
  }

  get ruleset(): CompiledRuleSet | undefined {
    return this.#ruleset;
  }

  /** Hot reload: stanzas judged from now on use `ruleset`; one in flight keeps the one it read. */
  swap(ruleset: CompiledRuleSet | undefined): void {
    this.#ruleset = ruleset;
  }

  /** The session's origin marks (name → time set, rule-set clock ms), if it has any state yet. */
  marks(session: SessionInfo): ReadonlyMap<string, number> | undefined {
    return this.#routes.get(session)?.inbound?.origin?.marks;
  }

  judge(stanza: StanzaView, session: SessionInfo, flow: Flow): Verdict | undefined {
    const ruleset = this.#ruleset;
    if (ruleset === undefined || stanza.kind === "other") return undefined;
    const chain = chainOf(session, flow);
    if (chain === undefined) return undefined;
    try {
      // A stanza no rule of its chain can see (its kind and type rule them all
      // out) costs this pick, unless it may still leave for deliver_remote.
      const entry = ruleset.entry(chain, stanza);
      const remote = chain === "preroute" && ruleset.runsRemote;
      if (entry === null && !remote) return undefined;
      const route = this.#route(session, chain, flow);
      const result = entry === null ? undefined : this.#run(ruleset, route, entry, stanza, session);
      const final = remote ? this.#thenRemote(ruleset, route, stanza, session, result) : result;
      return final === undefined ? undefined : this.#verdict(final, session);
    } catch (err) {
      this.#hooks.onError?.(err, session);
      return undefined;
    }
  }

  /**
   * A bound client's stanza after preroute (`result`; undefined: no rule of
   * preroute could see it), when the rule set also has deliver_remote rules:
   * if preroute let it through and it leaves for a remote server, what
   * deliver_remote makes of it.
   */
  #thenRemote(ruleset: CompiledRuleSet, route: Route, stanza: StanzaView, session: SessionInfo, result: FirewallResult | undefined): FirewallResult | undefined {
    if (result !== undefined && result.verdict !== "pass") return result;
    // Only a c2s client's own stanzas (preroute) take the session's JID as `from`.
    const view = result?.rewrite === undefined ? stanza : new Stanza(Buffer.from(result.rewrite, "utf8"), stanza.xmlns, session.jid);
    if (!this.#leavesServer(ruleset, view)) return result;
    const entry = ruleset.entry("deliver_remote", view);
    if (entry === null) return result;
    const remote = this.#run(ruleset, this.#remoteRoute(session, route), entry, view, session);
    // A rewrite by preroute is kept unless deliver_remote rewrites again.
    return remote.verdict === "pass" && remote.rewrite === undefined && result?.rewrite !== undefined ? { ...remote, rewrite: result.rewrite } : remote;
  }

  /** The route of `session`'s stanza in `chain` (chainOf's pick for `flow`): the chain, the origin the rules see, the memory. */
  #route(session: SessionInfo, chain: RunChain, flow: Flow): Route {
    const routes = this.#routesOf(session);
    const known = flow === "inbound" ? routes.inbound : routes.outbound;
    // Reused while its origin still describes the session (a c2s client's deliver route has none).
    if (known !== undefined && known.chain === chain && (known.origin === undefined ? known.fromServer : describes(known.origin, session))) return known;
    const fromServer = chain === "deliver" && session.type === "c2s";
    const route: Route = Object.freeze({
      chain,
      origin: fromServer ? undefined : this.#origin(session, known?.origin),
      fromServer,
      memory: known?.memory ?? new RunMemory(),
    });
    if (flow === "inbound") routes.inbound = route;
    else routes.outbound = route;
    return route;
  }

  /** The route of deliver_remote after preroute's `route` for `session`: the same origin, a memory of its own. */
  #remoteRoute(session: SessionInfo, route: Route): Route {
    const routes = this.#routesOf(session);
    const known = routes.remote;
    if (known !== undefined && known.origin === route.origin) return known;
    return (routes.remote = Object.freeze({ chain: "deliver_remote", origin: route.origin, fromServer: false, memory: known?.memory ?? new RunMemory() }));
  }

  /** `session`'s routes, made on its first stanza. */
  #routesOf(session: SessionInfo): SessionRoutes {
    // The stanzas of one read come from one session: its routes are at hand (no lookup).
    if (this.#lastSession === session) return this.#lastRoutes!;
    let routes = this.#routes.get(session);
    if (routes === undefined) {
      routes = { inbound: undefined, outbound: undefined, remote: undefined };
      this.#routes.set(session, routes);
    }
    this.#lastSession = session;
    this.#lastRoutes = routes;
    return routes;
  }

  /** The session whose routes #route found last (dropped when the session ends), and those routes. */
  #lastSession: SessionInfo | undefined;
  #lastRoutes: SessionRoutes | undefined;

  sessionEnded(session: SessionInfo): void {
    if (this.#lastSession === session) {
      this.#lastSession = undefined;
      this.#lastRoutes = undefined;
    }
  }

  /** The origin the rules see for `session`: `known` while it still describes the session, else a new one that keeps its marks. */
  #origin(session: SessionInfo, known: OriginSession | undefined): OriginSession {
    if (known !== undefined && describes(known, session)) return known;
    // First stanza, or the session learned more (bound JID, peer domain): keep its marks.
    const type = session.type === "c2s" ? "c2s" : "s2sin";
    const jid = type === "c2s" ? session.jid : undefined;
    const domain = type === "s2sin" ? session.domain : undefined;
    return { type, jid, domain, ip: session.ip, authenticated: session.authenticated, marks: known?.marks ?? new Map() };
  }

  /**
   * A bound client's stanza that preroute let through leaves for a remote
   * server when it is addressed to a domain that is not one of the server's
   * (the rule set's local domains, config `hosts`): Prosody routes it to
   * route/remote, where deliver_remote runs. Without the local domains
   * nothing counts as remote. A stanza with no `to` stays on the server.
   */
  #leavesServer(ruleset: CompiledRuleSet, stanza: StanzaView): boolean {
    const host = hostOf(prepJid(stanza.to));
    return host !== undefined && ruleset.localHosts?.has(host) === false;
  }

  #run(ruleset: CompiledRuleSet, route: Route, entry: HandlerRun, stanza: StanzaView, session: SessionInfo): FirewallResult {
    // Toward a client, the stanza is the server's own serialisation (read as written).
    // One context object per stage, refilled per stanza (a nested run gets its own).
    let ctx = this.#ctx;
    if (ctx === undefined) ctx = { stanza, origin: undefined, fromServer: false, memory: undefined };
    else this.#ctx = undefined;
    ctx.stanza = stanza;
    ctx.origin = route.origin;
    ctx.fromServer = route.fromServer;
    ctx.memory = route.memory;
    let result: FirewallResult;
    try {
      result = ruleset.runEntry(route.chain, entry, ctx);
    } finally {
      this.#ctx = ctx;
    }
    const hooks = this.#hooks;
    // Indexed loops: the result lists are often the shared frozen empty array (no iterator per stanza).
    const hits = result.hits;
    if (hooks.onHit) for (let k = 0; k < hits.length; k++) hooks.onHit(hits[k]!.rule, hits[k]!.action);
    const logs = result.logs;
    if (hooks.onLog) for (let k = 0; k < logs.length; k++) hooks.onLog(logs[k]!.level, logs[k]!.message, logs[k]!.rule, session);
    const emitted = result.emitted;
    if (hooks.onEmit) {
      for (let k = 0; k < emitted.length; k++) {
        const e = emitted[k]!;
        const target: EmitTarget = e.via === "route" || route.origin === undefined ? "upstream" : "peer";
        hooks.onEmit(e, target, session);
      }
    }
    return result;
  }

  #ctx: { stanza: StanzaView; origin: OriginSession | undefined; fromServer: boolean; memory: RunMemory | undefined } | undefined;

  #verdict(r: FirewallResult, session: SessionInfo): Verdict | undefined {
    const changed = r.rewrite;
    // A plain pass needs no reason: most stanzas end here, so the text is made below it.
    if (r.verdict === "pass" && changed === undefined) return undefined;
    const reason = describeDecision(r);
    switch (r.verdict) {
      case "pass": {
        if (this.#rewrites) {
          const rewrite: RewriteVerdict = { action: "rewrite", bytes: Buffer.from(changed!, "utf8"), reason };
          return rewrite as unknown as Verdict;
        }
        const rule = [...r.hits].reverse().find((h) => h.action === "STRIP" || h.action === "INJECT")?.rule;
        if (rule) this.#hooks.onLog?.("warn", `${reason}: this proxy cannot forward a changed stanza yet; the original was forwarded`, rule, session);
        return undefined;
      }
      case "drop":
        return { action: "drop", reason };
      case "bounce":
        return { action: "bounce", reply: r.bounce!.stanza, reason };
      case "disconnect": {
        const d = r.disconnect!;
        const why = `${reason}: ${d.condition}${d.text === undefined ? "" : ` (${d.text})`}`;
        if (FIREWALL_DISCONNECT in ERRORS) return { action: "close", code: FIREWALL_DISCONNECT, reason: why };
        const rule = r.hits.at(-1)?.rule;
        if (rule) this.#hooks.onLog?.("error", `${why}: ${FIREWALL_DISCONNECT} is not in the error catalogue yet; stanza dropped instead`, rule, session);
        return { action: "drop", reason: why };
      }
    }
  }
}
