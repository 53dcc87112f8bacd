// `xmpp-guard trace`: stanzas (bare, or a whole stream) through one chain of
// the rules, each verdict explained, human-readable or as JSON lines.
// Warnings and rule errors go to stderr.
import { traceStanzas } from "../firewall/trace.js";
import { knowledgeProviders } from "../knowledge/providers.js";
import { output, type CommandOutput } from "./output.js";

export interface TraceCommandOptions {
  readonly rules: readonly string[];
  readonly chain: "preroute" | "deliver" | "deliver_remote";
  /** Origin: a bound c2s session with this full JID. */
  readonly jid?: string;
  /** Origin: an incoming s2s session from this domain. */
  readonly domain?: string;
  /** Stamped on stanzas that have none. */
  readonly from?: string;
  readonly json?: boolean;
  readonly host?: readonly string[];
}

export async function traceCommand(input: Buffer, opts: TraceCommandOptions): Promise<CommandOutput> {
  const session = opts.jid ? { type: "c2s" as const, jid: opts.jid } : opts.domain ? { type: "s2sin" as const, domain: opts.domain } : undefined;
  const result = await traceStanzas(opts.rules, input, {
    chain: opts.chain,
    session,
    from: opts.from,
    format: opts.json ? "json" : "human",
    localHosts: opts.host,
    // Roster rules load; with no learned rosters every roster reads as empty.
    providers: knowledgeProviders(),
  });
  return output([...result.lines], result.exitCode, [...result.warnings, ...result.errors]);
}
