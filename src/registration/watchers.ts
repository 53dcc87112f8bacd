// mod_watchregistrations (docs/registration.md, "Watcher notifications"): the notification text with Prosody's
// `$word` substitution, the <message/> stanzas to each watcher, and the XEP-0114
// handshake digest the app needs to send them through a component connection.
// Pure: building stanzas here, delivering them is the app's job.
import { createHash } from "node:crypto";
import { serializeAttrs } from "../firewall/xml.js";
import { escapeXml } from "../xml/stream-error.js";
import type { RegistrationOptions } from "./options.js";

export interface RegisteredAccount {
  readonly username: string;
  readonly host: string;
  readonly ip: string;
}

/**
 * Prosody's `text:gsub("%$(%w+)", …)`: `$` followed by ASCII letters and
 * digits names a variable; a known one is replaced by its value, an unknown
 * one is left as written. Values are inserted as they are (no re-scanning).
 */
export function formatNotification(template: string, vars: Readonly<Record<string, string>>): string {
  return template.replace(/\$([A-Za-z0-9]+)/g, (whole, name: string) => (Object.hasOwn(vars, name) ? vars[name]! : whole));
}

/** The notification text for one new account (`$username`, `$host`, `$ip`). */
export function notificationText(options: RegistrationOptions, account: RegisteredAccount): string {
  return formatNotification(options.registration_notification, {
    username: account.username,
    host: account.host,
    ip: account.ip,
  });
}

/**
 * One `<message type=… from=… to=watcher><body>text</body></message>` per
 * watcher, as mod_watchregistrations sends them. `from` is `registration_from`
 * or, by default, the component JID the app sends through.
 */
export function watcherMessages(options: RegistrationOptions, account: RegisteredAccount, componentJid: string): string[] {
  const body = escapeXml(notificationText(options, account));
  const from = options.registration_from ?? componentJid;
  return options.registration_watchers.map(
    (to) => `<message${serializeAttrs({ type: options.registration_notification_type, from, to })}><body>${body}</body></message>`,
  );
}

/**
 * XEP-0114 §3: the component proves it knows the secret by sending
 * `<handshake>` with the lower-case hex SHA-1 of the server's stream id
 * concatenated with the secret.
 */
export function componentHandshake(streamId: string, secret: string): string {
  return createHash("sha1").update(streamId + secret, "utf8").digest("hex");
}
