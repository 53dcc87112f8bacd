// Watch rule files for hot reload. Editors and deploy tools replace files
// rather than write them in place (vim and sed -i rename a new file over the
// old one; Kubernetes swaps a `..data` symlink), so a watch on the file itself
// goes deaf after the first save. We watch each file's directory instead,
// debounce bursts of events, and call onChange once per burst when a watched
// file was named in an event or its stat signature (inode, size, times)
// changed. Loading is the caller's job; this module only says "look again".
import { watch, type FSWatcher } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";

export interface WatchOptions {
  /** Quiet time after the last event before onChange runs (default 200 ms). */
  readonly debounceMs?: number | undefined;
  /** Keep the process alive while watching (default false: the server's sockets do that). */
  readonly persistent?: boolean | undefined;
  /** A watcher failed (e.g. its directory was removed), or onChange threw. */
  readonly onError?: ((error: unknown) => void) | undefined;
}

export interface RuleFileWatcher {
  /** Stop watching; no onChange runs after this returns. Idempotent. */
  close(): void;
}

/** What identifies a file's content cheaply: changes when it is rewritten or replaced. */
async function signature(path: string): Promise<string> {
  try {
    const s = await stat(path, { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch {
    return "missing";
  }
}

/**
 * Call `onChange` after any of `paths` changes, is replaced, appears or
 * disappears. Throws if a directory cannot be watched (it does not exist).
 */
export function watchRuleFiles(paths: readonly string[], onChange: () => void, options: WatchOptions = {}): RuleFileWatcher {
  const debounceMs = options.debounceMs ?? 200;
  const files = [...new Set(paths.map((p) => resolve(p)))];
  const byDir = new Map<string, Set<string>>();
  for (const f of files) {
    const dir = dirname(f);
    let names = byDir.get(dir);
    if (!names) byDir.set(dir, (names = new Set()));
    names.add(basename(f));
  }

  const signatures = new Map<string, string>();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let named = false; // a watched file was named in this burst
  let checking: Promise<void> | undefined;
  const watchers: FSWatcher[] = [];

  const report = (err: unknown): void => {
    if (options.onError) options.onError(err);
  };

  // Signatures before any event, so the first burst has something to compare with.
  const ready = Promise.all(files.map(async (f) => signatures.set(f, await signature(f)))).catch(report);

  const settle = async (): Promise<void> => {
    await ready;
    const wasNamed = named;
    named = false;
    let changed = false;
    for (const f of files) {
      const now = await signature(f);
      if (signatures.get(f) !== now) changed = true;
      signatures.set(f, now);
    }
    if (closed || !(changed || wasNamed)) return;
    try {
      onChange();
    } catch (err) {
      report(err);
    }
  };

  const schedule = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      // One check at a time; events during a check schedule the next one.
      checking = (checking ?? Promise.resolve()).then(settle, settle);
    }, debounceMs);
    timer.unref();
  };

  try {
    for (const [dir, names] of byDir) {
      const w = watch(dir, { persistent: options.persistent ?? false }, (_event, filename) => {
        // Some platforms give no name: treat that as possibly ours.
        if (filename === null || names.has(filename.toString())) named = true;
        schedule();
      });
      w.on("error", report);
      watchers.push(w);
    }
  } catch (err) {
    for (const w of watchers) w.close();
    throw err;
  }

  return {
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
