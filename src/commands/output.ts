// What every command in this folder hands back to cli.ts: the lines for
// stdout and stderr and the exit code. Commands never write to the process
// streams nor exit; cli.ts prints. Exit codes: 0 ok, 1 invalid input
// (config, rules, a refused request), 2 usage (commander), 3 runtime failure.
import { ConfigError, loadConfigFile } from "../config/load.js";
import type { Config } from "../config/schema.js";

export interface CommandOutput {
  readonly stdout: string[];
  readonly stderr: string[];
  readonly exitCode: number;
}

export function output(stdout: string[], exitCode = 0, stderr: string[] = []): CommandOutput {
  return { stdout, stderr, exitCode };
}

export function failure(stderr: string[], exitCode = 1): CommandOutput {
  return { stdout: [], stderr, exitCode };
}

/** The config file, or its `file:line:col` errors as exit 1. */
export async function loadConfigOrFailure(path: string): Promise<Config | CommandOutput> {
  try {
    return await loadConfigFile(path);
  } catch (err) {
    if (err instanceof ConfigError) return failure([err.format()]);
    throw err;
  }
}

export function isOutput(x: Config | CommandOutput): x is CommandOutput {
  return "exitCode" in x;
}

/** All of stdin (trace's stanzas, `users import -`). */
export async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
