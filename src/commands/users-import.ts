// `xmpp-guard users import FILE --config CONFIG` (docs/registration.md, "`users import`"): read an account
// list, report each refused line as `file:line: message`, store the rest as
// known accounts (source `import`) and summarise. Exit codes: 0 all lines
// taken, 1 some line refused, the file unreadable or the config invalid, 3 the
// state database could not be opened or written.
import { readFile } from "node:fs/promises";
import { importAccounts, parseUserList, type ImportSummary, type UserListEntry } from "../registration/user-import.js";
import { StateError } from "../state/sqlite-file.js";
import { SqliteStore } from "../state/sqlite-store.js";
import { isOutput, loadConfigOrFailure, output, readStdin, type CommandOutput } from "./output.js";

export interface ImportCommandResult {
  /** `file:line: message: "text"` lines (stderr). */
  readonly errors: readonly string[];
  /** One line for stdout. */
  readonly summary: string;
  readonly exitCode: 0 | 1 | 3;
  readonly imported: number;
  readonly alreadyKnown: number;
  readonly refused: number;
}

async function readInput(file: string): Promise<string> {
  return file === "-" ? (await readStdin()).toString("utf8") : readFile(file, "utf8");
}

const MAX_SHOWN = 60;

/**
 * Accounts per transaction. Every commit costs a few fsyncs, so one per
 * account made a large import slow; a batch keeps each lock short for a
 * proxy writing beside it.
 */
const IMPORT_BATCH = 500;

function importInBatches(store: SqliteStore, entries: readonly UserListEntry[], now: number): ImportSummary {
  let added = 0;
  let alreadyKnown = 0;
  for (let i = 0; i < entries.length; i += IMPORT_BATCH) {
    const batch = entries.slice(i, i + IMPORT_BATCH);
    const r = store.transaction(() => importAccounts(store, batch, now));
    added += r.added;
    alreadyKnown += r.alreadyKnown;
  }
  return { added, alreadyKnown };
}

export async function importUsersCommand(file: string, statePath: string, host?: string, now: number = Date.now()): Promise<ImportCommandResult> {
  const name = file === "-" ? "(stdin)" : file;
  let text: string;
  try {
    text = await readInput(file);
  } catch (err) {
    const why = err instanceof Error && "code" in err ? String((err as NodeJS.ErrnoException).code) : String(err);
    return { errors: [`${name}: cannot read the account list: ${why}`], summary: "nothing imported", exitCode: 1, imported: 0, alreadyKnown: 0, refused: 0 };
  }
  const parsed = parseUserList(text, host?.toLowerCase());
  const errors = parsed.problems
    .slice(0, MAX_SHOWN)
    .map((p) => `${name}:${p.line}: ${p.message}: ${JSON.stringify(p.text.length > 80 ? p.text.slice(0, 80) + "…" : p.text)}`);
  if (parsed.problems.length > MAX_SHOWN) errors.push(`${name}: … and ${parsed.problems.length - MAX_SHOWN} more refused lines`);
  let store: SqliteStore;
  try {
    store = SqliteStore.open(statePath);
  } catch (err) {
    const message = err instanceof StateError ? err.message : String(err);
    return { errors: [...errors, `${statePath}: ${message}`], summary: "nothing imported", exitCode: 3, imported: 0, alreadyKnown: 0, refused: parsed.problems.length };
  }
  try {
    const { added, alreadyKnown } = importInBatches(store, parsed.entries, now);
    const refused = parsed.problems.length;
    return {
      errors,
      summary: `${name} → ${statePath}: ${added} imported, ${alreadyKnown} already known, ${refused} refused`,
      exitCode: refused > 0 ? 1 : 0,
      imported: added,
      alreadyKnown,
      refused,
    };
  } catch (err) {
    return { errors: [...errors, `${statePath}: ${err instanceof Error ? err.message : String(err)}`], summary: "import failed", exitCode: 3, imported: 0, alreadyKnown: 0, refused: parsed.problems.length };
  } finally {
    store.close();
  }
}

/** The command: the config gives state.path; refused lines go to stderr. */
export async function usersImportCommand(file: string, options: { config: string; host?: string }): Promise<CommandOutput> {
  const config = await loadConfigOrFailure(options.config);
  if (isOutput(config)) return config;
  const result = await importUsersCommand(file, config.state.path, options.host);
  return output([result.summary], result.exitCode, [...result.errors]);
}
