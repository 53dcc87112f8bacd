// Opening the learned-roster store a config names (docs/knowledge.md):
// Redis with state.redis, else the SQLite state file on a connection of its
// own, with the periodic check that notices the file lost under it; and the
// learner that writes to it. Their events and errors are logged and counted
// here, so the composition root (wiring.ts) only decides when to open.

import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/definitions.js";
import { redactUrl } from "../state/redis-connect.js";
import { RUNNING_BUSY_TIMEOUT_MS } from "../state/sqlite-file.js";
import type { StateOptions } from "../state/state-options.js";
import { RosterLearner } from "./roster-learner.js";
import { RedisRosterStore } from "./roster-redis.js";
import { SqliteRosterStore } from "./roster-sqlite.js";
import type { RosterStore } from "./roster-store.js";

export interface OpenedRosters {
  readonly store: RosterStore;
  readonly learner: RosterLearner;
  /** The SQLite file's periodic check (undefined with Redis); clear it at close. */
  readonly check: NodeJS.Timeout | undefined;
}

/** A roster store's error, counted; logged quietly when it is the SQLite fault already reported. */
export function rosterStoreError(metrics: Metrics, log: Logger, store: RosterStore | null, err: unknown, op: string): void {
  metrics.stateErrors.inc({ op });
  const known = store instanceof SqliteRosterStore && err === store.state.fault;
  log[known ? "debug" : "error"]({ code: "XPX_ERR_STATE_FAULT", op, err: err instanceof Error ? err.message : String(err) }, "roster store error");
}

/** Open the store `state` names and a learner over it; throws when the store cannot be opened. */
export async function openRosters(state: StateOptions, m: Metrics, log: Logger, checkEveryMs: number): Promise<OpenedRosters> {
  let store: RosterStore;
  let check: NodeJS.Timeout | undefined;
  if (state.redis !== null) {
    store = await RedisRosterStore.open({
      url: state.redis,
      prefix: state.prefix,
      onError: (err, op) => {
        m.stateErrors.inc({ op });
        log.error({ op, err: err instanceof Error ? err.message : String(err) }, "redis state error");
      },
    });
    log.info({ redis: redactUrl(state.redis), prefix: state.prefix }, "learned rosters in redis");
  } else {
    const sqlite = SqliteRosterStore.open(state.path, {
      busyTimeoutMs: RUNNING_BUSY_TIMEOUT_MS,
      holdLock: true,
      lockWaitMs: 5000,
      onFault: (fault) => {
        m.stateFaulted.set(1);
        log.error({ code: fault.code, path: fault.path, err: fault.message }, "state database lost; learned rosters read as unknown until a restart");
      },
    });
    store = sqlite;
    check = setInterval(() => {
      if (sqlite.state.check()) m.stateErrors.inc({ op: "check" });
    }, checkEveryMs).unref();
    log.info({ path: state.path }, "learned rosters in the state file");
  }
  const learner = new RosterLearner(store, {
    onLearned: (owner, items) => {
      m.rostersLearned.inc();
      log.debug({ jid: owner, items }, "roster learned");
    },
    onIgnored: (reason, owner, from) => {
      m.rosterIgnored.inc({ reason });
      log.info({ reason, jid: owner, from: from?.slice(0, 256) }, "roster stanza not learned: not from the user's server");
    },
    onStoreError: (err, op) => rosterStoreError(m, log, store, err, op),
  });
  return { store, learner, check };
}
