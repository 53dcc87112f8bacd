// The command line's side of the admin endpoint (`reload`, `sessions`,
// `kick`, `about`): where to reach it from the config, with which token, and
// one JSON request. Requests carry no Origin and no form content type, so
// they pass the endpoint's browser checks.
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { parse as parseYaml } from "yaml";
import { checkConfig, type AdminConfig } from "../config/schema.js";

/**
 * The admin section of a config file that may be invalid elsewhere: `reload`
 * must still reach the running proxy to hear (and count) why it refuses the
 * file. Falls back to the defaults when the section itself cannot be read.
 */
export function adminSectionOf(text: string): AdminConfig {
  let admin: unknown;
  try {
    admin = (parseYaml(text) as { admin?: unknown } | null)?.admin;
  } catch {
    admin = undefined;
  }
  const listener = { name: "x", type: "c2s", listen: "127.0.0.1:0", upstream: "127.0.0.1:1" };
  const r = checkConfig({ listeners: [listener], admin: admin ?? null });
  if (r.ok) return r.config.admin;
  const d = checkConfig({ listeners: [listener] });
  if (!d.ok) throw new Error("the default admin section does not validate");
  return d.config.admin;
}

/** admin.token, or the first line of admin.token_file; null when neither is set. Throws when the file cannot be read. */
export function readAdminToken(admin: AdminConfig): string | null {
  if (admin.token !== null) return admin.token;
  if (admin.token_file === null) return null;
  const token = readFileSync(admin.token_file, "utf8").split("\n")[0]!.trim();
  if (token.length < 16) throw new Error(`admin.token_file ${admin.token_file}: the token must be at least 16 characters`);
  return token;
}

/** Where a local command reaches the admin listener (a wildcard address means this machine). */
export function adminTarget(admin: AdminConfig): { host: string; port: number } | null {
  if (admin.listen === null) return null;
  const host = admin.listen.host === "0.0.0.0" ? "127.0.0.1" : admin.listen.host === "::" ? "::1" : admin.listen.host;
  return { host, port: admin.listen.port };
}

export interface AdminAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

export class AdminUnreachable extends Error {}

export function adminRequest(admin: AdminConfig, method: "GET" | "POST", path: string, timeoutMs = 60_000): Promise<AdminAnswer> {
  const target = adminTarget(admin);
  if (target === null) return Promise.reject(new AdminUnreachable("admin.listen is null: the admin endpoint is off"));
  const token = readAdminToken(admin);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.host,
        port: target.port,
        method,
        path,
        timeout: timeoutMs,
        headers: { accept: "application/json", ...(token !== null ? { authorization: `Bearer ${token}` } : {}) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => {
          let body: Record<string, unknown>;
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            body = { text };
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on("timeout", () => req.destroy(new AdminUnreachable(`no answer from the admin endpoint within ${timeoutMs} ms`)));
    req.on("error", (err: NodeJS.ErrnoException) => {
      reject(err instanceof AdminUnreachable ? err : new AdminUnreachable(`cannot reach the admin endpoint at ${admin.listen!.text}: ${err.code ?? err.message} (is xmpp-guard running with this config?)`));
    });
    req.end();
  });
}
