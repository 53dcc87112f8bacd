#!/usr/bin/env node
// The xmpp-guard command line: parse flags, call into app.ts, map outcomes to
// exit codes. No protocol logic here. Exit codes: 0 ok, 1 invalid input
// (config, rules), 2 usage, 3 runtime failure (e.g. cannot bind a port).

import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { loadConfigFile, ConfigError } from "./config/load.js";
import { DEFAULTS, DEFAULT_CONFIG_PATH } from "./config/schema.js";
import cluster from "node:cluster";
import { startProxy } from "./app.js";
import { runPrimary, runWorker } from "./cluster.js";
import { createLogger } from "./log.js";
import { checkRules } from "./firewall/check.js";
import { knowledgeProviders } from "./knowledge/providers.js";
import { traceStanzas } from "./firewall/trace.js";
import { StateError } from "./state/sqlite-file.js";
import { backup, restore } from "./state/sqlite-backup.js";
import { importUsersCommand } from "./registration/import-command.js";
import { writeSelfSigned } from "./net/gen-cert.js";
import { checkAll } from "./commands/check-config.js";
import { adminSectionOf } from "./admin/client.js";
import { aboutCommand, kickCommand, reloadCommand, sessionsCommand, type CommandOutput } from "./ops-commands.js";

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

async function loadOrExit(path: string): Promise<Awaited<ReturnType<typeof loadConfigFile>>> {
  try {
    return await loadConfigFile(path);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(err.format() + "\n");
      process.exit(1);
    }
    throw err;
  }
}

/** `workers: N` with N > 1: this process is the cluster primary. */
async function runCluster(config: Awaited<ReturnType<typeof loadConfigFile>>, configPath: string, logger: ReturnType<typeof createLogger>): Promise<void> {
  let primary: Awaited<ReturnType<typeof runPrimary>>;
  try {
    primary = await runPrimary(config, configPath, logger);
  } catch (err) {
    logger.fatal({ err: err instanceof Error ? err.message : String(err) }, "cannot start");
    logger.flush();
    process.exit(3);
  }
  process.on("SIGHUP", () => {
    logger.info("SIGHUP: reloading every worker");
    void primary.reload();
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    void primary.shutdown().then(() => process.exit(0));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
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
    .action(async (opts: { config: string; check?: boolean; pretty?: boolean }) => {
      if (opts.check) {
        const result = await checkAll(opts.config);
        process.stdout.write(result.lines.join("\n") + "\n");
        process.exitCode = result.exitCode;
        return;
      }
      const config = await loadOrExit(opts.config);
      const logger = createLogger(config.log.level, undefined, opts.pretty ? "pretty" : config.log.format);
      if (cluster.isWorker) {
        await runWorker(config, opts.config, logger.child({ worker: Number(process.env["XMPP_GUARD_WORKER"]) || cluster.worker?.id }));
        return;
      }
      if (config.workers > 1) {
        await runCluster(config, opts.config, logger);
        return;
      }
      let proxy: Awaited<ReturnType<typeof startProxy>>;
      try {
        proxy = await startProxy(config, { configPath: opts.config, logger });
      } catch (err) {
        logger.fatal({ err: err instanceof Error ? err.message : String(err) }, "cannot start");
        logger.flush();
        process.exitCode = 3;
        return;
      }
      process.on("SIGHUP", () => {
        logger.info("SIGHUP: reloading");
        void proxy.reload();
      });
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, "stopping");
        void proxy.shutdown().then(() => process.exit(0));
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
    });

  program
    .command("reload")
    .description("reload the running proxy (POST /reload): config, rules and certificates; prints why a reload is refused, exit 1 then (use as systemd ExecReload)")
    .addOption(new Option("-c, --config <file>", "config file (for admin.listen and admin.token)").default(DEFAULT_CONFIG_PATH))
    .action(async (opts: { config: string }) => {
      // Not loadOrExit: a file with errors is what a refused reload reports.
      let admin;
      try {
        admin = adminSectionOf(readFileSync(opts.config, "utf8"));
      } catch (err) {
        process.stderr.write(`xmpp-guard reload: cannot read ${opts.config}: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
        return;
      }
      print(await reloadCommand(admin));
    });

  program
    .command("sessions")
    .description("list live sessions (GET /sessions): id, listener, address, JID or domain, state, TLS, age")
    .addOption(new Option("-c, --config <file>", "config file (for admin.listen and admin.token)").default(DEFAULT_CONFIG_PATH))
    .option("--jid <jid>", "only this JID (a bare JID matches every resource; a domain, every JID of it)")
    .option("--ip <address>", "only this address or CIDR")
    .option("--listener <name>", "only this listener")
    .option("--json", "one JSON object per session")
    .action(async (opts: { config: string; jid?: string; ip?: string; listener?: string; json?: boolean }) => {
      print(await sessionsCommand(await loadOrExit(opts.config), { jid: opts.jid, ip: opts.ip, listener: opts.listener }, opts.json === true));
    });

  program
    .command("kick")
    .description("close sessions with <policy-violation/> (POST /sessions/{sid}/close): by id, or every session matching --jid/--ip/--listener; exit 1 if none")
    .argument("[sid...]", "session ids (see xmpp-guard sessions)")
    .addOption(new Option("-c, --config <file>", "config file (for admin.listen and admin.token)").default(DEFAULT_CONFIG_PATH))
    .option("--jid <jid>", "every session of this JID (bare: every resource)")
    .option("--ip <address>", "every session from this address or CIDR")
    .option("--listener <name>", "every session of this listener (with --jid or --ip: both must match)")
    .action(async (sids: string[], opts: { config: string; jid?: string; ip?: string; listener?: string }) => {
      print(await kickCommand(await loadOrExit(opts.config), sids, { jid: opts.jid, ip: opts.ip, listener: opts.listener }));
    });

  program
    .command("about")
    .description("versions, config file, listeners, rules loaded, state backend, workers, and the running proxy if it answers (like prosodyctl about)")
    .addOption(new Option("-c, --config <file>", "config file").default(DEFAULT_CONFIG_PATH))
    .option("--json", "one JSON object")
    .action(async (opts: { config: string; json?: boolean }) => {
      print(await aboutCommand(opts.config, packageVersion(), opts.json === true));
    });

  program
    .command("check-config")
    .description("validate a config file with its rule files and certificates; prints file:line:col: message for each problem, exit 0/1")
    .argument("[file]", "config file", DEFAULT_CONFIG_PATH)
    .action(async (file: string) => {
      const result = await checkAll(file);
      process.stdout.write(result.lines.join("\n") + "\n");
      process.exitCode = result.exitCode;
    });

  program
    .command("check-rules")
    .description("compile mod_firewall rule files together; print file:line:col: error|warning: message")
    .argument("<files...>", "rule files")
    .option("--host <domain>", "a local domain of the server, as in the config's `hosts` ($local, deliver_remote); repeat for more", collect)
    .option("-c, --config <file>", "check against what this config gives the firewall (knowledge providers, and `hosts` unless --host); default: a config with every default")
    .action(async (files: string[], opts: { host?: string[]; config?: string }) => {
      const config = opts.config === undefined ? null : await loadOrExit(opts.config);
      const result = await checkRules(files, {
        localHosts: opts.host ?? config?.hosts,
        providers: knowledgeProviders(config ?? undefined),
      });
      process.stdout.write(result.lines.join("\n") + "\n");
      process.exitCode = result.exitCode;
    });

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
    .action(async (opts: { rules: string[]; chain: "preroute" | "deliver" | "deliver_remote"; jid?: string; domain?: string; from?: string; json?: boolean; host?: string[] }) => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      const session = opts.jid ? { type: "c2s" as const, jid: opts.jid } : opts.domain ? { type: "s2sin" as const, domain: opts.domain } : undefined;
      const result = await traceStanzas(opts.rules, Buffer.concat(chunks), {
        chain: opts.chain,
        session,
        from: opts.from,
        format: opts.json ? "json" : "human",
        localHosts: opts.host,
        // Roster rules load; with no learned rosters every roster reads as empty.
        providers: knowledgeProviders(),
      });
      for (const line of [...result.warnings, ...result.errors]) process.stderr.write(line + "\n");
      if (result.lines.length > 0) process.stdout.write(result.lines.join("\n") + "\n");
      process.exitCode = result.exitCode;
    });

  program
    .command("backup")
    .description("copy the state database (registrations, tombstones) to FILE, online")
    .argument("<file>", "backup file to write")
    .addOption(new Option("-c, --config <file>", "config file (for state.path)").default(DEFAULT_CONFIG_PATH))
    .action(async (file: string, opts: { config: string }) => {
      const config = await loadOrExit(opts.config);
      if (config.state.redis !== null) {
        process.stderr.write(`xmpp-guard backup: the state lives in Redis (state.redis), not in a file: back up Redis itself (redis-cli --rdb FILE): see docs/deploy.md, "Backing up the Redis state".\n`);
        process.exitCode = 1;
        return;
      }
      const summary = await backup(config.state.path, file);
      process.stdout.write(`${config.state.path} → ${file}: ${summary.accounts} accounts, ${summary.tombstones} tombstones, ${summary.throttles} throttles\n`);
    });

  program
    .command("restore")
    .description("replace the state database with a backup; refused while a proxy has the database open (stop it first)")
    .argument("<file>", "backup file to read")
    .addOption(new Option("-c, --config <file>", "config file (for state.path)").default(DEFAULT_CONFIG_PATH))
    .action(async (file: string, opts: { config: string }) => {
      const config = await loadOrExit(opts.config);
      if (config.state.redis !== null) {
        process.stderr.write(`xmpp-guard restore: the state lives in Redis (state.redis), not in a file: there is nothing to restore here. Back up and restore Redis itself (redis-cli --rdb, its RDB or AOF file): see docs/deploy.md, "Backing up the Redis state".\n`);
        process.exitCode = 1;
        return;
      }
      try {
        const summary = await restore(config.state.path, file);
        process.stdout.write(`${file} → ${config.state.path}: ${summary.accounts} accounts, ${summary.tombstones} tombstones, ${summary.throttles} throttles\n`);
      } catch (err) {
        if (!(err instanceof StateError)) throw err;
        process.stderr.write(`xmpp-guard restore: ${err.message}\n`);
        if (err.code === "XPX_ERR_STATE_BUSY") {
          process.stderr.write(
            "Nothing was changed. To restore:\n" +
              "  1. stop the proxy (systemctl stop xmpp-guard, docker stop, or SIGTERM to its main pid)\n" +
              `  2. xmpp-guard restore ${file} -c ${opts.config}\n` +
              "  3. start it again\n" +
              "A running proxy that reports the database lost (xmpp_guard_state_faulted 1) has let go of it: restore then works while it runs, and a reload opens the restored file.\n",
          );
        }
        process.exitCode = 1;
      }
    });

  program
    .command("users")
    .description("known accounts (for look-alike checks)")
    .command("import")
    .description("seed known accounts from FILE: one user@host per line (prosodyctl shell user:list output works); exit 1 if any line is refused")
    .argument("<file>", "account list ('-' for stdin)")
    .addOption(new Option("-c, --config <file>", "config file (for state.path)").default(DEFAULT_CONFIG_PATH))
    .option("--host <domain>", "host for lines that hold a bare username")
    .action(async (file: string, opts: { config: string; host?: string }) => {
      const config = await loadOrExit(opts.config);
      const result = await importUsersCommand(file, config.state.path, opts.host);
      for (const line of result.errors) process.stderr.write(line + "\n");
      process.stdout.write(result.summary + "\n");
      process.exitCode = result.exitCode;
    });

  program
    .command("gen-cert")
    .description("write a self-signed development certificate and key (<domain>.crt, <domain>.key) for tls.certificates")
    .requiredOption("-d, --domain <domain>", "DNS name the certificate serves; repeat for more (first = file name)", (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option("-o, --out <dir>", "output directory", "certs")
    .option("--days <n>", "validity in days", "365")
    .action(async (opts: { domain: string[]; out: string; days: string }) => {
      const days = Number(opts.days);
      try {
        const { certFile, keyFile } = await writeSelfSigned(opts.out, opts.domain, { days });
        process.stdout.write(`${certFile}\n${keyFile}\n` +
          `tls:\n  certificates:\n    - { cert: ${JSON.stringify(certFile)}, key: ${JSON.stringify(keyFile)} }\n` +
          `Clients must be told to trust ${certFile} (it is self-signed): development only.\n`);
      } catch (err) {
        process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });

  return program;
}

buildProgram().parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`xmpp-guard: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(3);
});
