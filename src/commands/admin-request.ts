// One request to the running proxy's admin endpoint for a command (`reload`,
// `sessions`, `kick`): the answer, or what to print when the endpoint cannot
// be reached (exit 3) or refuses the request (exit 1 for a token problem).
import { adminRequest, AdminUnreachable, type AdminAnswer } from "../admin/client.js";
import type { AdminConfig } from "../config/schema.js";
import { failure, type CommandOutput } from "./output.js";

export async function askAdmin(admin: AdminConfig, method: "GET" | "POST", path: string): Promise<AdminAnswer | CommandOutput> {
  try {
    return await adminRequest(admin, method, path);
  } catch (err) {
    if (err instanceof AdminUnreachable) return failure([`xmpp-guard: ${err.message}`], 3);
    throw err;
  }
}

export function isAnswer(x: AdminAnswer | CommandOutput): x is AdminAnswer {
  return "status" in x;
}

/** An answer other than the ones the command expects. */
export function refused(answer: AdminAnswer): CommandOutput {
  const { status, body } = answer;
  return failure([`xmpp-guard: the admin endpoint answered ${status}: ${String(body["error"] ?? JSON.stringify(body))}`], status === 401 || status === 403 ? 1 : 3);
}
