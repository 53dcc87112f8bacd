// xmpp-guard as a child process (`node --import tsx src/cli.ts run`), for
// tests of what only a real process shows: signals, exit codes, cluster
// workers, file-descriptor limits. Optionally under `ulimit -n`.
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface ProxyProcess {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly configPath: string;
  /** pino JSON lines seen so far on stdout. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the first log line matching `pred` (past or future). */
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
  kill(signal: NodeJS.Signals): void;
  cleanup(): void;
}

/** The largest `ulimit -n` a child shell can set (raises the hard limit when allowed). */
export function maxNofile(want: number): number {
  const r = spawnSync("sh", ["-c", `ulimit -n ${want} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ulimit -n`], { encoding: "utf8" });
  const n = Number(r.stdout.trim());
  return Number.isFinite(n) ? n : 1024; // "unlimited" cannot happen for nofile
}

export function startProxyProcess(yaml: string, options: { nofile?: number } = {}): ProxyProcess {
  const dir = mkdtempSync(join(tmpdir(), "xg-proc-"));
  const configPath = join(dir, "xmpp-guard.yaml");
  writeFileSync(configPath, yaml);
  const node = [process.execPath, "--import", "tsx", CLI, "run", "-c", configPath].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const script = options.nofile === undefined ? `exec ${node}` : `ulimit -n ${options.nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${node}`;
  const child = spawn("sh", ["-c", script], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const logs: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString("utf8");
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let l: Record<string, unknown>;
      try {
        l = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      logs.push(l);
      for (const w of [...waiters]) {
        if (w.pred(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    }
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    child,
    dir,
    configPath,
    logs,
    exited,
    waitForLog(pred, timeoutMs = 30_000) {
      const seen = logs.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (l: Record<string, unknown>) => (clearTimeout(timer), resolve(l)) };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`log line not seen within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`));
        }, timeoutMs);
        waiters.push(w);
        void exited.then((c) => {
          if (waiters.includes(w)) {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(w), 1);
            reject(new Error(`proxy exited (${c}) before the log line; stderr: ${stderr.slice(-2000)}`));
          }
        });
      });
    },
    kill(signal) {
      child.kill(signal);
    },
    cleanup() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function httpRequest(port: number, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, timeout: 20_000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("admin request timed out")));
    req.on("error", reject);
    req.end();
  });
}

/** Sum of a metric's samples whose labels include every `labels` pair. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    const m = /^(?:\{(.*)\})?\s+(\S+)/.exec(rest);
    if (!m) continue;
    const set = m[1] ?? "";
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(m[2]);
  }
  return sum;
}

/** The real CLI (`xmpp-guard ARGS`) from the repository root: exit code and output. */
export function runCli(args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", CLI, ...args], { cwd: ROOT, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
    });
  });
}
