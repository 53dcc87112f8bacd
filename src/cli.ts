#!/usr/bin/env node
// The xmpp-guard command line: declares the commands and their flags, and
// hands each to its function in commands/, which returns what to print and
// the exit code. Exit codes: 0 ok, 1 invalid input (config, rules), 2 usage,
// 3 runtime failure (e.g. cannot bind a port).

import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { DEFAULT_CONFIG_PATH } from "./config/schema.js";
import { aboutCommand } from "./commands/about.js";
import { backupCommand, restoreCommand } from "./commands/backup.js";
import { checkRulesCommand } from "./commands/check-rules.js";
import { genCertCommand } from "./commands/gen-cert.js";
import { readStdin, type CommandOutput } from "./commands/output.js";
import { reloadCommand } from "./commands/reload.js";
import { runCommand } from "./commands/run.js";
import { kickCommand, sessionsCommand } from "./commands/sessions.js";
import { traceCommand } from "./commands/trace.js";
import { usersImportCommand } from "./commands/users-import.js";

function print(out: CommandOutput): void {
  if (out.stdout.length > 0) process.stdout.write(out.stdout.join("\n") + "\n");
  if (out.stderr.length > 0) process.stderr.write(out.stderr.join("\n") + "\n");
  process.exitCode = out.exitCode;
}

function packageVersion(): string {
  // src/cli.ts (tsx) and dist/cli.js (built) both sit one level below package.json.
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: string };
  return pkg.version ?? "0.0.0";
}

/** Commander: a repeatable option's values, in order. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("xmpp-guard")
    .description("Stream-level XMPP proxy and traffic shaper for public XMPP servers.")
    .version(packageVersion(), "-V, --version")
    .showHelpAfterError()
    .addHelpText("after", `
Examples:
  $ xmpp-guard run -c ${DEFAULT_CONFIG_PATH}        run the proxy
  $ xmpp-guard check-config ${DEFAULT_CONFIG_PATH}  validate a config file (exit 0/1)
  $ xmpp-guard check-rules rules/default.pfw        compile rule files, print file:line:col diagnostics (-c CONFIG: with its providers)
  $ xmpp-guard trace --rules rules/default.pfw --chain preroute --jid a@example.org/r < stanzas.xml
  $ curl -s localhost:9470/metrics                  scrape metrics
  $ xmpp-guard reload                               reload config without dropping sessions (errors shown, exit 1 if refused)
  $ xmpp-guard sessions --jid alice@example.org     live sessions; xmpp-guard kick SID closes one
  $ xmpp-guard about                                versions, config, rules, state, workers
  $ xmpp-guard gen-cert --domain example.org --out certs   self-signed development certificate`);

  program
    .command("run")
    .description("run the proxy")
    .addOption(new Option("-c, --config <file>", "config file").default(DEFAULT_CONFIG_PATH))
    .option("--check", "validate config, rules and certificates together and exit 0/1 (like haproxy -c)")
    .option("--pretty", "log for a terminal (like log.format: pretty) instead of JSON lines")
    .action(async (opts: { config: string; check?: boolean; pretty?: boolean }) => print(await runCommand(opts)));

  program
    .command("reload")
    .description("reload the running proxy (POST /reload): config, rules and certificates; prints why a reload is refused, exit 1 then (use as systemd ExecReload)")
    .addOption(new Option("-c, --config <file>", "config file (for admin.listen and admin.token)").default(DEFAULT_CONFIG_PATH))
    .action(async (opts: { config: string }) => print(await reloadCommand(opts.config)));

  program
    .command("sessions")
    .description("list live sessions (GET /sessions): id, listener, address, JID or domain, state, TLS, age")
    .addOption(new Option("-c, --config <file>", "config file (for admin.listen and admin.token)").default(DEFAULT_CONFIG_PATH))
    .option("--jid <jid>", "only this JID (a bare JID matches every resource; a domain, every JID of it)")
    .option("--ip <address>", "only this address or CIDR")
    .option("--listener <name>", "only this listener")
    .option("--json", "one JSON object per session")
    .action(async (opts: { config: string; jid?: string; ip?: string; listener?: string; json?: boolean }) =>
      print(await sessionsCommand(opts.config, { jid: opts.jid, ip: opts.ip, listener: opts.listener }, opts.json === true)));

  program
    .command("kick")
    .description("close sessions with <policy-violation/> (POST /sessions/{sid}/close): by id, or every session matching --jid/--ip/--listener; exit 1 if none")
    .argument("[sid...]", "session ids (see xmpp-guard sessions)")
    .addOption(new Option("-c, --config <file>", "config file (for admin.listen and admin.token)").default(DEFAULT_CONFIG_PATH))
    .option("--jid <jid>", "every session of this JID (bare: every resource)")
    .option("--ip <address>", "every session from this address or CIDR")
    .option("--listener <name>", "every session of this listener (with --jid or --ip: both must match)")
    .action(async (sids: string[], opts: { config: string; jid?: string; ip?: string; listener?: string }) =>
      print(await kickCommand(opts.config, sids, { jid: opts.jid, ip: opts.ip, listener: opts.listener })));

  program
    .command("about")
    .description("versions, config file, listeners, rules loaded, state backend, workers, and the running proxy if it answers (like prosodyctl about)")
    .addOption(new Option("-c, --config <file>", "config file").default(DEFAULT_CONFIG_PATH))
    .option("--json", "one JSON object")
    .action(async (opts: { config: string; json?: boolean }) => print(await aboutCommand(opts.config, packageVersion(), opts.json === true)));

  program
    .command("check-config")
    .description("validate a config file with its rule files and certificates; prints file:line:col: message for each problem, exit 0/1")
    .argument("[file]", "config file", DEFAULT_CONFIG_PATH)
    .action(async (file: string) => print(await runCommand({ config: file, check: true })));

  program
    .command("check-rules")
    .description("compile mod_firewall rule files together; print file:line:col: error|warning: message")
    .argument("<files...>", "rule files")
    .option("--host <domain>", "a local domain of the server, as in the config's `hosts` ($local, deliver_remote); repeat for more", collect)
    .option("-c, --config <file>", "check against what this config gives the firewall (knowledge providers, and `hosts` unless --host); default: a config with every default")
    .action(async (files: string[], opts: { host?: string[]; config?: string }) => print(await checkRulesCommand(files, opts)));

  program
    .command("trace")
    .description("run stanzas from stdin (bare stanzas or a whole stream) through the rules and explain each verdict")
    .requiredOption("-r, --rules <files...>", "rule files")
    .addOption(new Option("--chain <chain>", "chain to run").choices(["preroute", "deliver", "deliver_remote"]).default("deliver"))
    .option("--jid <jid>", "origin: a bound c2s session with this full JID (its stanzas' from in preroute, as Prosody's router sets it)")
    .option("--domain <domain>", "origin: an incoming s2s session from this domain")
    .option("--from <jid>", "stamp this from on stanzas that have none")
    .option("--json", "one JSON object per stanza")
    .option("--host <domain>", "a local domain of the server, as in the config's `hosts` ($local); repeat for more", collect)
    .action(async (opts: { rules: string[]; chain: "preroute" | "deliver" | "deliver_remote"; jid?: string; domain?: string; from?: string; json?: boolean; host?: string[] }) =>
      print(await traceCommand(await readStdin(), opts)));

  program
    .command("backup")
    .description("copy the state database (registrations, tombstones) to FILE, online")
    .argument("<file>", "backup file to write")
    .addOption(new Option("-c, --config <file>", "config file (for state.path)").default(DEFAULT_CONFIG_PATH))
    .action(async (file: string, opts: { config: string }) => print(await backupCommand(file, opts.config)));

  program
    .command("restore")
    .description("replace the state database with a backup; refused while a proxy has the database open (stop it first)")
    .argument("<file>", "backup file to read")
    .addOption(new Option("-c, --config <file>", "config file (for state.path)").default(DEFAULT_CONFIG_PATH))
    .action(async (file: string, opts: { config: string }) => print(await restoreCommand(file, opts.config)));

  program
    .command("users")
    .description("known accounts (for look-alike checks)")
    .command("import")
    .description("seed known accounts from FILE: one user@host per line (prosodyctl shell user:list output works); exit 1 if any line is refused")
    .argument("<file>", "account list ('-' for stdin)")
    .addOption(new Option("-c, --config <file>", "config file (for state.path)").default(DEFAULT_CONFIG_PATH))
    .option("--host <domain>", "host for lines that hold a bare username")
    .action(async (file: string, opts: { config: string; host?: string }) => print(await usersImportCommand(file, opts)));

  program
    .command("gen-cert")
    .description("write a self-signed development certificate and key (<domain>.crt, <domain>.key) for tls.certificates")
    .requiredOption("-d, --domain <domain>", "DNS name the certificate serves; repeat for more (first = file name)", collect)
    .option("-o, --out <dir>", "output directory", "certs")
    .option("--days <n>", "validity in days", "365")
    .action(async (opts: { domain: string[]; out: string; days: string }) => print(await genCertCommand(opts)));

  return program;
}

buildProgram().parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`xmpp-guard: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(3);
});
