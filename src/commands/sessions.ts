// `xmpp-guard sessions` (GET /sessions) and `xmpp-guard kick` (POST
// /sessions/{sid}/close, by id or every session matching a filter). Exit
// codes: 0 done, 1 nothing matched or refused, 3 the admin endpoint cannot be
// reached.
import { formatSessions, type SessionFilter, type SessionSummary } from "../admin/sessions.js";
import type { Config } from "../config/schema.js";
import { askAdmin, isAnswer, refused } from "./admin-request.js";
import { failure, isOutput, loadConfigOrFailure, output, type CommandOutput } from "./output.js";

function query(filter: SessionFilter): string {
  const q = new URLSearchParams();
  if (filter.jid !== undefined) q.set("jid", filter.jid);
  if (filter.ip !== undefined) q.set("ip", filter.ip);
  if (filter.listener !== undefined) q.set("listener", filter.listener);
  const s = q.toString();
  return s === "" ? "" : `?${s}`;
}

async function listSessions(config: Config, filter: SessionFilter): Promise<SessionSummary[] | CommandOutput> {
  const answer = await askAdmin(config.admin, "GET", `/sessions${query(filter)}`);
  if (!isAnswer(answer)) return answer;
  if (answer.status !== 200) return refused(answer);
  return answer.body["sessions"] as SessionSummary[];
}

/** The live sessions, as a table or one JSON object per line. */
export async function sessionsCommand(configPath: string, filter: SessionFilter, json: boolean): Promise<CommandOutput> {
  const config = await loadConfigOrFailure(configPath);
  if (isOutput(config)) return config;
  const list = await listSessions(config, filter);
  if (!Array.isArray(list)) return list;
  return output(json ? list.map((s) => JSON.stringify(s)) : [formatSessions(list)]);
}

/**
 * Close the sessions named by id, or every session matching a filter, with
 * <policy-violation/>. Exit 1 when none was found.
 */
export async function kickCommand(configPath: string, sids: readonly string[], filter: SessionFilter): Promise<CommandOutput> {
  const config = await loadConfigOrFailure(configPath);
  if (isOutput(config)) return config;
  const targets = [...sids];
  if (filter.jid !== undefined || filter.ip !== undefined || filter.listener !== undefined) {
    const list = await listSessions(config, filter);
    if (!Array.isArray(list)) return list;
    targets.push(...list.map((s) => s.sid));
  }
  if (targets.length === 0) return failure(["xmpp-guard kick: no session matched"]);
  const stdout: string[] = [];
  const stderr: string[] = [];
  for (const sid of targets) {
    const answer = await askAdmin(config.admin, "POST", `/sessions/${encodeURIComponent(sid)}/close`);
    if (!isAnswer(answer)) return answer;
    if (answer.status === 200) {
      const s = answer.body["closed"] as SessionSummary;
      stdout.push(`closed ${s.sid} ${s.jid ?? s.domain ?? "-"} ${s.ip} (${s.listener})`);
    } else if (answer.status === 404) {
      stderr.push(`xmpp-guard kick: no session ${sid}`);
    } else {
      return refused(answer);
    }
  }
  return output(stdout, stdout.length > 0 ? 0 : 1, stderr);
}
