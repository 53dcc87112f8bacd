// Shadow rules (`firewall.shadow`): rule files run on live traffic in
// log-only mode, to try a new rule set before it decides anything. The stage
// runs its own FirewallStage, so it keeps its own session marks and its own
// LIMIT buckets (its rule set is compiled apart from the real one), and it
// reports what that stage would have done: a verdict, a changed stanza, a
// stanza sent. It always answers "no verdict": nothing is dropped, bounced,
// rewritten or sent, and the real rules never see its marks.
import type { CompiledRuleSet } from "./compile.js";
import type { RuleRef } from "./context.js";
import { FirewallStage } from "./stage.js";
import type { StanzaView } from "../xml/stanza-view.js";
import type { Flow, PolicyStage, SessionInfo, Verdict } from "../policy/pipeline.js";

export type ShadowVerdict = "drop" | "bounce" | "disconnect" | "rewrite" | "emit";

export interface ShadowHooks {
  /** What the shadow rules would have done with this stanza. */
  onWould(verdict: ShadowVerdict, reason: string, stanza: StanzaView, session: SessionInfo, flow: Flow): void;
  /** One call per action the shadow rules ran (metrics: rule × action). */
  onHit?(rule: RuleRef, action: string): void;
  /** LOG actions of the shadow rules. */
  onLog?(level: string, message: string, rule: RuleRef, session: SessionInfo): void;
  onError?(error: unknown, session: SessionInfo): void;
}

function shadowVerdict(v: Verdict): ShadowVerdict | undefined {
  switch (v.action) {
    case "drop":
    case "bounce":
    case "rewrite":
      return v.action;
    case "close":
      return "disconnect";
    default:
      return undefined;
  }
}

export class ShadowStage implements PolicyStage {
  readonly name = "firewall_shadow";
  /** The firewall stage's: nonzas never reach a chain. */
  readonly only = { flow: "both", kinds: ["message", "presence", "iq"] } as const;
  readonly #inner: FirewallStage;
  readonly #hooks: ShadowHooks;
  /** Stanzas the shadow rules wanted to send while judging the current one. */
  #emitted: string | undefined;

  constructor(hooks: ShadowHooks) {
    this.#hooks = hooks;
    this.#inner = new FirewallStage({
      rewrites: true,
      hooks: {
        onHit: (rule, action) => hooks.onHit?.(rule, action),
        onLog: (level, message, rule, session) => hooks.onLog?.(level, message, rule, session),
        // Never written anywhere: only noted.
        onEmit: (emitted) => {
          this.#emitted ??= `${emitted.rule.id} ${emitted.kind.toUpperCase()}${emitted.to === undefined ? "" : ` to ${emitted.to}`}`;
        },
        onError: (err, session) => hooks.onError?.(err, session),
      },
    });
  }

  get ruleset(): CompiledRuleSet | undefined {
    return this.#inner.ruleset;
  }

  swap(ruleset: CompiledRuleSet | undefined): void {
    this.#inner.swap(ruleset);
  }

  judge(stanza: StanzaView, session: SessionInfo, flow: Flow): Verdict | undefined {
    this.#emitted = undefined;
    const v = this.#inner.judge(stanza, session, flow);
    const would = v === undefined ? undefined : shadowVerdict(v);
    if (would !== undefined) this.#hooks.onWould(would, v!.action === "forward" ? "" : v!.reason, stanza, session, flow);
    else if (this.#emitted !== undefined) this.#hooks.onWould("emit", this.#emitted, stanza, session, flow);
    this.#emitted = undefined;
    return undefined;
  }
}
