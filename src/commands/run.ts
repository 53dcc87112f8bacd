// `xmpp-guard run`: start the proxy (one process, or with `workers: N` the
// cluster primary; a forked worker runs its side), reload on SIGHUP, drain
// and exit on SIGTERM/SIGINT. `run --check` is check-config. Exit 1 for an
// invalid config, 3 when the proxy cannot start (e.g. cannot bind a port).
import cluster from "node:cluster";
import { startProxy } from "../app.js";
import { runPrimary, runWorker } from "../cluster.js";
import type { Config } from "../config/schema.js";
import { createLogger, type Logger } from "../log.js";
import { checkAll } from "./check-config.js";
import { isOutput, loadConfigOrFailure, output, type CommandOutput } from "./output.js";

export interface RunOptions {
  readonly config: string;
  readonly check?: boolean;
  readonly pretty?: boolean;
}

/** What a running proxy (or cluster primary) offers the signal handlers. */
interface Running {
  reload(): Promise<unknown>;
  shutdown(): Promise<unknown>;
}

function onSignals(running: Running, logger: Logger, reloadMessage: string): void {
  process.on("SIGHUP", () => {
    logger.info(reloadMessage);
    void running.reload();
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    void running.shutdown().then(() => process.exit(0));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

async function start(config: Config, configPath: string, logger: Logger): Promise<Running | null> {
  try {
    return config.workers > 1 ? await runPrimary(config, configPath, logger) : await startProxy(config, { configPath, logger });
  } catch (err) {
    logger.fatal({ err: err instanceof Error ? err.message : String(err) }, "cannot start");
    logger.flush();
    return null;
  }
}

/**
 * Resolves once the proxy runs (it keeps the process alive); the output is
 * empty then, or says why it did not start.
 */
export async function runCommand(opts: RunOptions): Promise<CommandOutput> {
  if (opts.check) {
    const result = await checkAll(opts.config);
    return output([...result.lines], result.exitCode);
  }
  const config = await loadConfigOrFailure(opts.config);
  if (isOutput(config)) return config;
  const logger = createLogger(config.log.level, undefined, opts.pretty ? "pretty" : config.log.format);
  if (cluster.isWorker) {
    await runWorker(config, opts.config, logger.child({ worker: Number(process.env["XMPP_GUARD_WORKER"]) || cluster.worker?.id }));
    return output([]);
  }
  const running = await start(config, opts.config, logger);
  if (running === null) {
    // A primary that failed may still hold handles (its admin port): leave at once.
    if (config.workers > 1) process.exit(3);
    return output([], 3);
  }
  onSignals(running, logger, config.workers > 1 ? "SIGHUP: reloading every worker" : "SIGHUP: reloading");
  return output([]);
}
