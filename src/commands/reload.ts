// `xmpp-guard reload`: POST /reload to the running proxy; a refused reload
// prints the errors and exits 1 (usable as systemd ExecReload).
import { readFileSync } from "node:fs";
import { adminSectionOf } from "../admin/client.js";
import { askAdmin, isAnswer, refused } from "./admin-request.js";
import { failure, output, type CommandOutput } from "./output.js";

export async function reloadCommand(configPath: string): Promise<CommandOutput> {
  // Not the whole config: a file with errors is what a refused reload reports.
  let text: string;
  try {
    text = readFileSync(configPath, "utf8");
  } catch (err) {
    return failure([`xmpp-guard reload: cannot read ${configPath}: ${err instanceof Error ? err.message : String(err)}`]);
  }
  const answer = await askAdmin(adminSectionOf(text), "POST", "/reload");
  if (!isAnswer(answer)) return answer;
  if (answer.status === 200) return output(["reloaded: configuration, rules and certificates"]);
  if (answer.status === 422) {
    const errors = Array.isArray(answer.body["errors"]) ? (answer.body["errors"] as unknown[]).map(String) : [];
    return failure([...errors, `reload refused (${errors.length} error${errors.length === 1 ? "" : "s"}): the previous configuration stays in force`]);
  }
  return refused(answer);
}
