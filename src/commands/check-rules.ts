// `xmpp-guard check-rules FILES`: compile mod_firewall rule files together
// and print `file:line:col: error|warning: message` lines and a summary per
// file; exit 1 when any does not compile. With a config, checked against what
// it gives the firewall (knowledge providers, `hosts`).
import { checkRules } from "../firewall/check.js";
import { knowledgeProviders } from "../knowledge/providers.js";
import { isOutput, loadConfigOrFailure, output, type CommandOutput } from "./output.js";

export interface CheckRulesOptions {
  /** Local domains ($local, deliver_remote); default: the config's `hosts`. */
  readonly host?: readonly string[];
  /** Config file; default: a config with every default. */
  readonly config?: string;
}

export async function checkRulesCommand(files: readonly string[], options: CheckRulesOptions): Promise<CommandOutput> {
  const config = options.config === undefined ? null : await loadConfigOrFailure(options.config);
  if (config !== null && isOutput(config)) return config;
  const result = await checkRules(files, {
    localHosts: options.host ?? config?.hosts,
    providers: knowledgeProviders(config ?? undefined),
  });
  return output([...result.lines], result.exitCode);
}
