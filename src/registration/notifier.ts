// Delivers mod_watchregistrations notifications (docs/registration.md, "Watcher notifications") for each
// registration the server accepted: one <message/> per registration_watchers
// entry, sent from the component JID over the XEP-0114 connection
// (component.ts), and optionally a JSON POST to registration_webhook. Lives as
// long as the process (PolicyState holds it); a reload reconfigures it, and a
// changed `component:` replaces the connection. Every outcome is a log line
// and a count in xmpp_guard_registration_notifications_total{result}.
import type { Logger } from "../log.js";
import type { RegistrationOptions } from "./options.js";
import type { RegisteredEvent } from "./registration-stage.js";
import { ComponentClient, type ComponentOptions } from "./component.js";
import { watcherMessages } from "./watchers.js";

/**
 * Results counted: `sent` (written to the authenticated component stream),
 * `dropped` (queue full or shutting down), `no-component` (watchers are
 * configured but no `component:`), `webhook-ok`, `webhook-failed`.
 */
export type NotificationResult = "sent" | "dropped" | "no-component" | "webhook-ok" | "webhook-failed";

export interface NotifierInit {
  readonly logger: Logger;
  readonly count: (result: NotificationResult) => void;
  /** For tests: queue bound and backoff of the component client. */
  readonly maxQueue?: number;
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Webhook request timeout. Default 5 s. */
  readonly webhookTimeoutMs?: number;
}

function sameComponent(a: ComponentOptions | null, b: ComponentOptions | null): boolean {
  if (a === null || b === null) return a === b;
  return a.jid === b.jid && a.secret === b.secret && a.upstream.text === b.upstream.text;
}

/** The URL without credentials, query or fragment, for logs. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return u.origin + u.pathname;
  } catch {
    return "(invalid URL)";
  }
}

export class RegistrationNotifier {
  readonly #init: NotifierInit;
  #component: ComponentOptions | null = null;
  #client: ComponentClient | null = null;
  #options: RegistrationOptions | null = null;
  readonly #webhooks = new Set<Promise<void>>();

  constructor(init: NotifierInit) {
    this.#init = init;
  }

  get client(): ComponentClient | null {
    return this.#client;
  }

  /** Apply (possibly new) config. Starts, replaces or stops the component connection. */
  configure(component: ComponentOptions | null, options: RegistrationOptions | null): void {
    this.#options = options;
    if (sameComponent(component, this.#component)) return;
    const old = this.#client;
    this.#client = null;
    this.#component = component;
    if (old !== null) void old.close();
    if (component === null) return;
    const log = this.#init.logger.child({ component: component.jid, upstream: component.upstream.text });
    const client = new ComponentClient({
      options: component,
      maxQueue: this.#init.maxQueue,
      minBackoffMs: this.#init.minBackoffMs,
      maxBackoffMs: this.#init.maxBackoffMs,
      events: {
        onOnline: () => log.info("component connected (XEP-0114 handshake accepted)"),
        onOffline: (reason, retryInMs) => log.warn({ reason, retryInMs, queued: client.queued }, "component connection down; will retry"),
        onSent: () => this.#init.count("sent"),
        onDropped: (stanza) => {
          this.#init.count("dropped");
          log.warn({ stanza: stanza.slice(0, 200) }, "registration notification dropped (queue full or shutting down)");
        },
      },
    });
    this.#client = client;
    client.start();
  }

  /** Called for each registration the server accepted. Never throws. */
  notify(event: RegisteredEvent): void {
    const options = this.#options;
    if (options === null) return;
    const watchers = options.registration_watchers;
    if (watchers.length > 0) {
      const client = this.#client;
      if (client === null) {
        for (let i = 0; i < watchers.length; i++) this.#init.count("no-component");
        this.#init.logger.warn({ watchers }, "registration_watchers set but no component: configured; notification not sent");
      } else {
        for (const stanza of watcherMessages(options, event, client.jid)) client.send(stanza);
        this.#init.logger.info({ watchers, username: event.username, state: client.state }, "registration notification queued for watchers");
      }
    }
    if (options.registration_webhook !== null) this.#post(options.registration_webhook, event);
  }

  #post(url: string, event: RegisteredEvent): void {
    const body = JSON.stringify({
      event: "registration",
      username: event.username,
      host: event.host,
      ip: event.ip,
      at: new Date(event.at).toISOString(),
      text: event.text,
    });
    const p = fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(this.#init.webhookTimeoutMs ?? 5000),
    })
      .then(async (res) => {
        await res.arrayBuffer().catch(() => undefined);
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        this.#init.count("webhook-ok");
      })
      .catch((err: unknown) => {
        this.#init.count("webhook-failed");
        this.#init.logger.warn({ url: safeUrl(url), err: err instanceof Error ? err.message : String(err) }, "registration webhook failed");
      })
      .finally(() => this.#webhooks.delete(p));
    this.#webhooks.add(p);
  }

  /** Stop the component connection; wait (bounded by their timeout) for webhook posts in flight. */
  async close(): Promise<void> {
    const client = this.#client;
    this.#client = null;
    this.#component = null;
    await Promise.all([client?.close(), ...this.#webhooks]);
  }
}
