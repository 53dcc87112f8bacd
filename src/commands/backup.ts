// `xmpp-guard backup FILE` (online copy of the SQLite state: registrations,
// tombstones, throttles) and `xmpp-guard restore FILE` (refused while a proxy
// holds the database). A Redis state is backed up with Redis's own tools.
import type { Config } from "../config/schema.js";
import { backup, restore, type StateSummary } from "../state/sqlite-backup.js";
import { StateError } from "../state/sqlite-file.js";
import { failure, isOutput, loadConfigOrFailure, output, type CommandOutput } from "./output.js";

const REDIS_BACKUP = `see docs/deploy.md, "Backing up the Redis state".`;

function counts(s: StateSummary): string {
  return `${s.accounts} accounts, ${s.tombstones} tombstones, ${s.throttles} throttles`;
}

/** The config with a file state, or what to print instead. */
async function sqliteConfig(command: "backup" | "restore", configPath: string): Promise<Config | CommandOutput> {
  const config = await loadConfigOrFailure(configPath);
  if (isOutput(config) || config.state.redis === null) return config;
  const what = command === "backup"
    ? `back up Redis itself (redis-cli --rdb FILE): ${REDIS_BACKUP}`
    : `there is nothing to restore here. Back up and restore Redis itself (redis-cli --rdb, its RDB or AOF file): ${REDIS_BACKUP}`;
  return failure([`xmpp-guard ${command}: the state lives in Redis (state.redis), not in a file: ${what}`]);
}

export async function backupCommand(file: string, configPath: string): Promise<CommandOutput> {
  const config = await sqliteConfig("backup", configPath);
  if (isOutput(config)) return config;
  const summary = await backup(config.state.path, file);
  return output([`${config.state.path} → ${file}: ${counts(summary)}`]);
}

export async function restoreCommand(file: string, configPath: string): Promise<CommandOutput> {
  const config = await sqliteConfig("restore", configPath);
  if (isOutput(config)) return config;
  try {
    const summary = await restore(config.state.path, file);
    return output([`${file} → ${config.state.path}: ${counts(summary)}`]);
  } catch (err) {
    if (!(err instanceof StateError)) throw err;
    const stderr = [`xmpp-guard restore: ${err.message}`];
    if (err.code === "XPX_ERR_STATE_BUSY") {
      stderr.push(
        "Nothing was changed. To restore:",
        "  1. stop the proxy (systemctl stop xmpp-guard, docker stop, or SIGTERM to its main pid)",
        `  2. xmpp-guard restore ${file} -c ${configPath}`,
        "  3. start it again",
        "A running proxy that reports the database lost (xmpp_guard_state_faulted 1) has let go of it: restore then works while it runs, and a reload opens the restored file.",
      );
    }
    return failure(stderr);
  }
}
