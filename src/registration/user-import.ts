// Seeding the known accounts (docs/registration.md, "Known accounts"; `xmpp-guard users import FILE`) so
// look-alike checks work from day one: parse a list of accounts, such as the
// output of `prosodyctl shell user:list example.org`, and store each one with
// its skeleton. Accounts already known are left as they are.
import type { AccountSource, KnownAccount, RegistrationStore } from "../state/registration-store.js";
import { nodeprep } from "../xmpp/stringprep.js";
import { skeleton } from "./skeleton.js";

export interface UserListEntry {
  readonly host: string;
  readonly username: string;
}

export interface UserListProblem {
  /** 1-based line number. */
  readonly line: number;
  readonly text: string;
  readonly message: string;
}

export interface ParsedUserList {
  readonly entries: readonly UserListEntry[];
  readonly problems: readonly UserListProblem[];
}

/** The KnownAccount for a name, nodeprepped and with its skeleton; null when nodeprep fails. */
export function knownAccount(host: string, username: string, source: AccountSource, at: number, ip: string | null): KnownAccount | null {
  const name = nodeprep(username);
  if (name === null) return null;
  return { host: host.toLowerCase(), username: name, skeleton: skeleton(name) ?? name, source, created_at: at, ip };
}

// prosodyctl shell decorations: "| " output prefixes and the closing status line.
const DECORATION = /^(?:\|\s?)/;
const STATUS_LINE = /^(?:OK|Error|Result|Showing)\b/i;
/**
 * prosodyctl frames its start-up warnings in lines of asterisks, on stdout,
 * before the command's output (Debian's 0.12 without lua-unbound prints one
 * on every call): a line of asterisks opens a banner and the next one closes it.
 */
const BANNER_EDGE = /^\*{5,}$/;

/**
 * One account per line: `user@host`, or a bare `user` when `defaultHost` is
 * given. Blank lines, `#` comments and prosodyctl's status lines are skipped;
 * anything else that is not a valid account is reported, not guessed at.
 */
export function parseUserList(text: string, defaultHost?: string): ParsedUserList {
  const entries: UserListEntry[] = [];
  const problems: UserListProblem[] = [];
  let banner = false;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(DECORATION, "").trim();
    if (BANNER_EDGE.test(line)) {
      banner = !banner;
      return;
    }
    if (banner || line === "" || line.startsWith("#") || STATUS_LINE.test(line)) return;
    const problem = (message: string): void => void problems.push({ line: i + 1, text: raw, message });
    if (/\s/.test(line)) return problem("expected one account per line");
    const at = line.lastIndexOf("@");
    const local = at < 0 ? line : line.slice(0, at);
    const host = at < 0 ? defaultHost : line.slice(at + 1);
    if (host === undefined || host === "") return problem("no host (write user@host, or pass the host)");
    if (host.includes("/")) return problem("expected a bare JID");
    if (nodeprep(local) === null) return problem("not a valid username (nodeprep fails)");
    entries.push({ host: host.toLowerCase(), username: local });
  });
  return { entries, problems };
}

export interface ImportSummary {
  readonly added: number;
  readonly alreadyKnown: number;
}

/** Store every entry as an imported account (in one pass; the store's own transactions apply). */
export function importAccounts(store: RegistrationStore, entries: readonly UserListEntry[], now: number): ImportSummary {
  let added = 0;
  let alreadyKnown = 0;
  for (const e of entries) {
    const account = knownAccount(e.host, e.username, "import", now, null);
    if (account === null) continue;
    if (store.addAccount(account)) added++;
    else alreadyKnown++;
  }
  return { added, alreadyKnown };
}
