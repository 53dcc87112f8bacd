// HAProxy as the native L4 anchor: `mode tcp`, one thread, default buffers,
// a config generated into a temp dir, run in the foreground (-db) as a child
// of the orchestrator and killed at the end. Where util-linux `setpriv` is
// available it starts HAProxy with a parent-death signal, so even a
// SIGKILLed orchestrator leaves no HAProxy behind (setpriv execs, so the
// child pid is HAProxy's own). HAProxy cannot listen on port 0 and report
// it, so we reserve a free loopback port first (a small race we retry on).

import { execFileSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { canConnect } from "../../test/helpers/prosody.js";
import { onCleanup, spawnTracked, stopChild } from "../lib/children.js";

const DIRS = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"];

function findExecutable(name: string): string | null {
  for (const dir of DIRS) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // try the next one
    }
  }
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

/** Path of the haproxy binary, or null when it is not installed. */
export function findHaproxy(): string | null {
  return findExecutable("haproxy");
}

export function haproxyVersion(bin: string): string {
  try {
    const out = execFileSync(bin, ["-v"], { encoding: "utf8" });
    return /version (\S+)/.exec(out)?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

export interface RunningHaproxy {
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function configText(port: number, upstreamPort: number, maxconn: number): string {
  return [
    "global",
    "  nbthread 1",
    `  maxconn ${maxconn}`,
    // Containers often forbid raising the hard fd limit; run with what we get.
    "  no strict-limits",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "frontend bench",
    `  bind 127.0.0.1:${port} backlog 1024`,
    "  default_backend sink",
    "backend sink",
    `  server sink 127.0.0.1:${upstreamPort}`,
    "",
  ].join("\n");
}

export async function startHaproxy(bin: string, upstreamPort: number, maxconn = 4096): Promise<RunningHaproxy> {
  const dir = mkdtempSync(join(tmpdir(), "xmpp-guard-bench-haproxy-"));
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  const forget = onCleanup(removeDir);
  const cleanupDir = (): void => {
    forget();
    removeDir();
  };
  try {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const port = await freePort();
      const cfg = join(dir, "haproxy.cfg");
      writeFileSync(cfg, configText(port, upstreamPort, maxconn));
      const setpriv = process.platform === "linux" ? findExecutable("setpriv") : null;
      const child = setpriv ? spawnTracked(setpriv, ["--pdeathsig", "KILL", bin, "-f", cfg, "-db"]) : spawnTracked(bin, ["-f", cfg, "-db"]);
      let stderr = "";
      child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
      // Ready when the frontend accepts; give up after 5 s.
      const deadline = Date.now() + 5000;
      let up = false;
      while (!up && Date.now() < deadline && child.exitCode === null) {
        up = await canConnect(port);
        if (!up) await new Promise((r) => setTimeout(r, 50));
      }
      if (up) {
        return {
          port,
          child,
          async stop() {
            await stopChild(child);
            cleanupDir();
          },
        };
      }
      await stopChild(child);
      if (attempt === 3) throw new Error(`haproxy did not start: ${stderr.trim() || "no output"}`);
    }
    throw new Error("unreachable");
  } catch (err) {
    cleanupDir();
    throw err;
  }
}
