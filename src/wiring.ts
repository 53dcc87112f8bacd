// Builds the policy pipeline from config: registration → firewall → MUC
// limits → contact info (shaping runs inside the session, before framing).
// Stateful pieces (the state store, MUC buckets, firewall LIMIT buckets)
// outlive reloads in PolicyState; a reload builds a new Pipeline around them.
// With state.redis, the registration state, the MUC room buckets and every
// limit keyed wider than one session (state/fleet-buckets.ts) are shared with
// the rest of the fleet through Redis. The SQLite store is
// watched: a state file lost under it is logged, counted and shown until a
// reload or restart opens the file again; only registration waits for that.
// Learned rosters (knowledge/, docs/knowledge.md) are the firewall's roster
// provider; their store is opened when a loaded rule file first uses a roster
// condition, and the stage that learns them runs last.
//
// What this file keeps is the one job of composing: which piece is opened
// when, and what survives a reload. The pieces it composes report and open
// themselves: the firewall's and the shadow rules' hooks are in
// firewall/report.ts, the roster store and its learner are opened by
// knowledge/roster-open.ts, the XEP-0157 stage is in
// registration/contact-info.ts.

import type { Config } from "./config/schema.js";
import type { Logger } from "./log.js";
import type { Metrics } from "./metrics/definitions.js";
import { MucLimitsStage, type LimitReason, type RateBucket } from "./muc/muc-limits.js";
import { LocalRoomBuckets } from "./muc/room-buckets.js";
import { loadRuleFiles } from "./firewall/load.js";
import type { CompiledRuleSet } from "./firewall/compile.js";
import { FirewallStage } from "./firewall/stage.js";
import { contactInfoStage } from "./registration/contact-info.js";
import { RegistrationStage, WALL_CLOCK } from "./registration/registration-stage.js";
import { RegistrationNotifier } from "./registration/notifier.js";
import { turnClock } from "./shaping/clock.js";
import type { RegistrationStore } from "./state/registration-store.js";
import { RUNNING_BUSY_TIMEOUT_MS } from "./state/sqlite-file.js";
import { SqliteStore } from "./state/sqlite-store.js";
import { RedisRoomBuckets } from "./muc/redis-room-buckets.js";
import { redactUrl } from "./state/redis-connect.js";
import { RedisStore } from "./state/redis-store.js";
import { FleetBuckets } from "./state/fleet-buckets.js";
import type { FirewallProviders, RemoteListFactory } from "./firewall/context.js";
import { LearnedRosters, type RosterLearner } from "./knowledge/roster-learner.js";
import { openRosters, rosterStoreError, type OpenedRosters } from "./knowledge/roster-open.js";
import { RosterStage } from "./knowledge/roster-stage.js";
import type { RosterStore } from "./knowledge/roster-store.js";
import { RemoteLists } from "./knowledge/remote-lists.js";
import { RedisListStore, SqliteListStore } from "./knowledge/list-store.js";
import { DEFAULTS } from "./config/schema.js";
import type { StateOptions } from "./state/state-options.js";
import { Pipeline, type PolicyStage } from "./policy/pipeline.js";
import { AuditLimiter } from "./policy/audit.js";
import { firewallHooks, shadowHooks } from "./firewall/report.js";
import { ShadowStage } from "./firewall/shadow.js";
import { KnowledgeStage, SessionDirectory } from "./knowledge/sessions.js";
import { IpcSessionReplicator, RedisSessionReplicator, inWorker } from "./knowledge/replicate.js";

/** How often the SQLite state file is compared with the one the store has open (one stat call). */
export const STATE_CHECK_INTERVAL_MS = 1000;

/** Long-lived policy state shared by successive pipelines. */
export class PolicyState {
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  #store: RegistrationStore | null = null;
  #storePath: string | null = null;
  #storeRedis: string | null = null;
  #muc: MucLimitsStage | null = null;
  /** The MUC room buckets in Redis, opened by openState until the stage takes them. */
  #mucRooms: RedisRoomBuckets | null = null;
  /** state.redis when the MUC stage was made (null: its room buckets are local). */
  #mucRedis: string | null = null;
  #sweep: NodeJS.Timeout | undefined;
  /** The periodic check of the SQLite state file. */
  #stateCheck: NodeJS.Timeout | undefined;
  /** Fleet-wide limits (state.redis): LIMIT, per-occupant and per-IP buckets and counts; null without Redis. */
  #fleet: FleetBuckets | null = null;
  /** Watcher notifications over the XEP-0114 component connection (and the webhook). */
  readonly notifier: RegistrationNotifier;
  /** One firewall stage for the process: reloads swap its rule set, so marks survive. */
  readonly firewall: FirewallStage;
  /** firewall.shadow: rules that only log what they would do (firewall/shadow.ts). */
  readonly shadow: ShadowStage;
  /** The firewall's roster provider: answers from the roster store once one is open, else "unknown" (empty). */
  readonly rosters: LearnedRosters;
  /** Learns rosters into the store (null until a rule file needs rosters). */
  #rosterLearner: RosterLearner | null = null;
  #rosterStore: RosterStore | null = null;
  /** Where the roster store lives (state.redis URL or state.path), to warn about changes that need a restart. */
  #rosterWhere: string | null = null;
  /** The periodic check of the roster store's SQLite file. */
  #rosterCheck: NodeJS.Timeout | undefined;
  /** The stage that feeds the learner; stays in every pipeline built while knowledge.rosters is on. */
  readonly #rosterStage: RosterStage;
  /** knowledge.sessions: the session directory and the stage that learns it (null: off). */
  #knowledge: { directory: SessionDirectory; stage: KnowledgeStage } | null = null;
  /** knowledge.sessions as the process started (changing it takes a restart). */
  #knowledgeOn: boolean | null = null;
  /** Remote block lists (%LIST over http(s), pubsubitemid), shared by the rules and the shadow rules across reloads. */
  readonly lists: RemoteLists;
  /** The lists each compiled rule set opened: retainLists() keeps those of the live ones. */
  readonly #listKeys = new WeakMap<CompiledRuleSet, ReadonlySet<string>>();
  /** state: of the config the lists' copy store is opened with (the first one that needed it). */
  #listState: StateOptions | null = null;

  constructor(logger: Logger, metrics: Metrics, audit: AuditLimiter = new AuditLimiter()) {
    this.#logger = logger;
    this.#metrics = metrics;
    this.shadow = new ShadowStage(shadowHooks(logger, metrics, audit));
    this.lists = new RemoteLists({
      logger: logger.child({ part: "remote-lists" }),
      metrics,
      options: DEFAULTS.knowledge.lists,
      store: () => {
        const state = this.#listState;
        if (state === null) return null;
        return state.redis !== null ? new RedisListStore(state.redis, state.prefix) : SqliteListStore.open(state.path);
      },
    });
    const rosterError = (err: unknown, op: string): void => rosterStoreError(metrics, logger, this.#rosterStore, err, op);
    this.rosters = new LearnedRosters(null, { onUnknown: () => metrics.rosterUnknownLookups.inc(), onStoreError: rosterError });
    this.#rosterStage = new RosterStage({
      observe: (stanza, session, flow) => this.#rosterLearner?.observe(stanza, session, flow),
      sessionEnded: (id) => this.#rosterLearner?.sessionEnded(id),
    });
    this.notifier = new RegistrationNotifier({ logger, count: (result) => metrics.registrationNotifications.inc({ result }) });
    this.firewall = new FirewallStage({ rewrites: true, hooks: firewallHooks(logger, metrics) });
  }

  /**
   * Compile config.firewall.scripts (all-or-nothing), carrying LIMIT state
   * over from the live rule set. Nothing is swapped here.
   */
  async loadRules(config: Config): Promise<{ ruleset: CompiledRuleSet | undefined; errors: string[] }> {
    if (config.firewall.scripts.length === 0) return { ruleset: undefined, errors: [] };
    const used = { roster: false };
    const lists = this.#listScope(config);
    const fleet = this.#fleet;
    const sharedLimits = fleet === null ? undefined : { poll: (name: string, rate: number, burst: number) => fleet.poll("firewall", name, { rate, capacity: rate * burst }) };
    const result = await loadRuleFiles(config.firewall.scripts, undefined, {
      clock: turnClock, previous: this.firewall.ruleset, localHosts: config.hosts, providers: this.#providers(config, used, lists.factory), sharedLimits,
    });
    if (result.ruleset) this.#listKeys.set(result.ruleset, lists.keys);
    // Warnings never stop a load (lines Prosody loads that are not what they
    // look like, portability notes): logged at every load and reload.
    for (const w of result.warnings) this.#logger.warn({ file: w.file, line: w.line, column: w.column }, `firewall rule warning: ${w.format()}`);
    if (!result.ruleset) return { ruleset: undefined, errors: result.errors.map((e) => e.format()) };
    const opened = await this.#openRosters(config, used.roster);
    if (opened !== null) return { ruleset: undefined, errors: [opened] };
    return { ruleset: result.ruleset, errors: [] };
  }

  /**
   * What the rules may look up. `used.roster` becomes true when a rule
   * compiled against the roster provider (then its store must be open).
   */
  #providers(config: Config, used: { roster: boolean }, remoteLists: RemoteListFactory): FirewallProviders {
    const rosters = this.rosters;
    const sessions = this.#knowledge?.directory;
    const providers: { roster?: LearnedRosters; sessions?: SessionDirectory; directedPresence?: SessionDirectory; remoteLists: RemoteListFactory } = { remoteLists };
    if (config.knowledge.rosters) {
      Object.defineProperty(providers, "roster", {
        enumerable: true,
        get() {
          used.roster = true;
          return rosters;
        },
      });
    }
    if (sessions !== undefined) {
      providers.sessions = sessions;
      providers.directedPresence = sessions;
    }
    return providers;
  }


  /**
   * Opens the roster store when rules first need it: Redis with state.redis,
   * else the SQLite file at state.path (a connection of its own). Returns an
   * error message when it cannot be opened (the rules are then refused).
   */
  async #openRosters(config: Config, needed: boolean): Promise<string | null> {
    if (!needed) return null;
    const where = config.state.redis ?? config.state.path;
    if (this.#rosterStore !== null) {
      if (where !== this.#rosterWhere) this.#logger.warn({ using: config.state.redis !== null ? redactUrl(this.#rosterWhere!) : this.#rosterWhere }, "state changed: learned rosters follow after a restart");
      return null;
    }
    let opened: OpenedRosters;
    try {
      opened = await openRosters(config.state, this.#metrics, this.#logger, STATE_CHECK_INTERVAL_MS);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#logger.error({ code: "XPX_ERR_STATE_OPEN", err: message }, "cannot open the roster store");
      return `knowledge.rosters: cannot open the roster store (${message})`;
    }
    const { store, learner, check } = opened;
    this.#rosterStore = store;
    this.#rosterCheck = check;
    this.#rosterWhere = where;
    this.rosters.use(store);
    this.#rosterLearner = learner;
    this.#metrics.trackRosters(() => store.countKnown());
    return null;
  }

  /**
   * Compile config.firewall.shadow the same way, apart from the real rules:
   * LIMIT state carries over from the live shadow rule set only.
   */
  async loadShadowRules(config: Config): Promise<{ ruleset: CompiledRuleSet | undefined; errors: string[] }> {
    if (config.firewall.shadow.length === 0) return { ruleset: undefined, errors: [] };
    const used = { roster: false };
    const lists = this.#listScope(config);
    const result = await loadRuleFiles(config.firewall.shadow, undefined, { clock: turnClock, previous: this.shadow.ruleset, providers: this.#providers(config, used, lists.factory) });
    if (result.ruleset) this.#listKeys.set(result.ruleset, lists.keys);
    for (const w of result.warnings) this.#logger.warn({ code: "XPX_ERR_RULES_INVALID", shadow: true }, w.format());
    if (!result.ruleset) return { ruleset: undefined, errors: result.errors.map((e) => `firewall.shadow: ${e.format()}`) };
    const opened = await this.#openRosters(config, used.roster);
    if (opened !== null) return { ruleset: undefined, errors: [`firewall.shadow: ${opened}`] };
    return { ruleset: result.ruleset, errors: [] };
  }

  #listScope(config: Config): ReturnType<RemoteLists["scope"]> {
    // A reload's knowledge.lists applies once it is built (build()); at
    // start-up, before the first fetches.
    if (this.firewall.ruleset === undefined && this.shadow.ruleset === undefined) this.lists.configure(config.knowledge.lists);
    // Like the registration store, the copy store follows state: at restart only.
    this.#listState ??= config.state;
    return this.lists.scope(config.component);
  }

  /**
   * Close the remote lists the live rule sets (rules and shadow rules) do not
   * use: call after every swap, and after a refused load (whose new lists
   * nothing uses). A list kept by a reload keeps its content and its timer.
   */
  retainLists(): void {
    const keys = new Set<string>();
    for (const rs of [this.firewall.ruleset, this.shadow.ruleset]) {
      if (rs !== undefined) for (const k of this.#listKeys.get(rs) ?? []) keys.add(k);
    }
    this.lists.retain(keys);
  }

  /**
   * Opens the Redis state when `state.redis` is set: the registration store
   * when registration is on, the MUC room buckets when muc_limits is on
   * (connecting is asynchronous, so start and reload call this before build).
   * A no-op otherwise, and for what is already open.
   */
  async openState(config: Config): Promise<void> {
    await this.#openKnowledge(config);
    const url = config.state.redis;
    if (url === null) return;
    const log = this.#logger;
    const m = this.#metrics;
    const onError = (err: unknown, op: string): void => {
      m.stateErrors.inc({ op });
      log.error({ op, err: err instanceof Error ? err.message : String(err) }, "redis state error");
    };
    if (this.#fleet === null) {
      // Starts even while Redis is down (each instance on its own limits until it answers).
      this.#fleet = await FleetBuckets.open({
        url,
        prefix: config.state.prefix,
        hooks: {
          onState: (up, why) => {
            m.fleetRedisDown.set(up ? 0 : 1);
            if (up) log.info({ redis: redactUrl(url) }, "redis answers again: limits are fleet-wide again");
            else log.error({ code: "XPX_ERR_STATE_FAULT", redis: redactUrl(url), err: why }, "redis unreachable: each instance applies its own limits until it answers");
          },
          onLocal: (kind) => m.fleetLocalDecisions.inc({ kind }),
          onError: (_err, op) => m.stateErrors.inc({ op }),
        },
      });
      // Unreachable at start was logged by onState already.
      m.fleetRedisDown.set(this.#fleet.up ? 0 : 1);
      if (this.#fleet.up) log.info({ redis: redactUrl(url), prefix: config.state.prefix }, "fleet-wide limits in redis");
    }
    if (config.registration !== null && this.#store === null) {
      this.#store = await RedisStore.open({ url, prefix: config.state.prefix, onError });
      this.#storeRedis = url;
      log.info({ redis: redactUrl(url), prefix: config.state.prefix }, "state in redis");
    }
    if (config.muc_limits !== null && this.#muc === null && this.#mucRooms === null) {
      // The stage that takes these buckets runs on the wall clock: stored times are shared.
      this.#mucRooms = await RedisRoomBuckets.open({ url, prefix: config.state.prefix, clock: WALL_CLOCK, onError });
      log.info({ redis: redactUrl(url), prefix: config.state.prefix }, "MUC room buckets in redis");
    }
  }

  /** The session directory (knowledge.sessions), when on. */
  get sessionDirectory(): SessionDirectory | null {
    return this.#knowledge?.directory ?? null;
  }

  /**
   * knowledge.sessions: opens the session directory once, shared with the
   * other processes (Redis with state.redis; else the cluster primary in a
   * worker; else this process only). Changing the option takes a restart.
   */
  async #openKnowledge(config: Config): Promise<void> {
    const on = config.knowledge.sessions;
    if (this.#knowledgeOn !== null) {
      if (this.#knowledgeOn !== on) this.#logger.warn({ sessions: on, running: this.#knowledgeOn }, "knowledge.sessions changed: takes effect after a restart");
      return;
    }
    if (!on) {
      this.#knowledgeOn = false;
      return;
    }
    const m = this.#metrics;
    const log = this.#logger;
    const onError = (err: unknown, op: string): void => {
      m.stateErrors.inc({ op });
      log.error({ op, err: err instanceof Error ? err.message : String(err) }, "session directory sharing error; lookups go on from what this process knows");
    };
    const directory = new SessionDirectory();
    const url = config.state.redis;
    if (url !== null) {
      await RedisSessionReplicator.open({ url, prefix: config.state.prefix, directory, onError });
      log.info({ redis: redactUrl(url), prefix: config.state.prefix }, "session directory shared in redis");
    } else if (inWorker()) {
      await IpcSessionReplicator.open(directory, 5000, onError);
    }
    this.#knowledge = { directory, stage: new KnowledgeStage({ directory, roster: config.knowledge.rosters ? this.rosters : undefined }) };
    this.#knowledgeOn = true;
    m.trackKnowledge(() => directory.stats());
  }

  /**
   * Build a pipeline for `config`. Throws (before anything is swapped) when
   * durable state cannot be opened; the caller keeps the old pipeline then.
   */
  build(config: Config, firewallOn: boolean, shadowOn = false): Pipeline {
    const stages: PolicyStage[] = [];
    if (config.registration !== null) {
      if (this.#store === null) {
        if (config.state.redis !== null) throw new Error("state.redis: the store is not open (call openState first)");
        this.#store = this.#openSqlite(config.state.path, 5000);
        this.#storePath = config.state.path;
      } else if (this.#store instanceof SqliteStore && this.#store.fault !== null) {
        this.#reopenSqlite(config.state.path);
      } else if (this.#storeRedis !== config.state.redis) {
        this.#logger.warn({ using: this.#storeRedis === null ? this.#storePath : redactUrl(this.#storeRedis) }, "state.redis changed: takes effect after a restart");
      } else if (this.#storeRedis === null && this.#storePath !== config.state.path) {
        this.#logger.warn({ path: config.state.path, using: this.#storePath }, "state.path changed: takes effect after a restart");
      }
      const m = this.#metrics;
      const log = this.#logger;
      const store = this.#store;
      stages.push(new RegistrationStage({
        options: config.registration,
        store: this.#store,
        hooks: {
          onRefused: (e) => {
            m.registrationRefusals.inc({ reason: e.reason });
            log.warn({ reason: e.reason, ip: e.ip, username: e.username?.slice(0, 64), host: e.host, sid: e.sessionId }, "registration refused");
          },
          onRegistered: (e) => {
            m.registrations.inc();
            log.info({ username: e.username, host: e.host, ip: e.ip, sid: e.sessionId }, e.text);
            this.notifier.notify(e);
          },
          onDeleted: (e) => {
            m.accountDeletions.inc();
            log.info({ username: e.username, host: e.host }, "account deleted; tombstone recorded");
          },
          onGone: (e) => {
            log.debug({ username: e.username, host: e.host, sid: e.sessionId }, "presence to a deleted account answered with gone");
          },
          onStoreError: (err, op) => {
            m.stateErrors.inc({ op });
            // A faulted store throws its fault on every operation; it was
            // logged as an error once, when it happened.
            const known = store instanceof SqliteStore && err === store.fault;
            log[known ? "debug" : "error"]({ code: "XPX_ERR_STATE_FAULT", op, err: err instanceof Error ? err.message : String(err) }, "state store error");
          },
        },
      }));
    }
    // Before the real rules, so it sees every stanza they see (it never decides).
    if (shadowOn) stages.push(this.shadow);
    if (firewallOn) stages.push(this.firewall);
    if (config.muc_limits !== null) {
      if (this.#muc === null) {
        const hooks = { onLimited: (reason: LimitReason, bucket: RateBucket | undefined) => this.#metrics.mucLimited.inc({ reason, bucket: bucket ?? "none" }) };
        if (config.state.redis !== null) {
          if (this.#mucRooms === null) throw new Error("state.redis: the MUC room buckets are not open (call openState first)");
          const fleet = this.#fleet;
          const occupants = fleet === null ? undefined : {
            covers: (name: string, rate: number, capacity: number, cost: number) => fleet.covers("occupant", name, { rate, capacity }, cost),
            spend: (name: string, cost: number) => fleet.spend(name, cost),
          };
          this.#muc = new MucLimitsStage(config.muc_limits, WALL_CLOCK, hooks, this.#mucRooms, occupants);
          this.#mucRooms = null;
        } else {
          this.#muc = new MucLimitsStage(config.muc_limits, turnClock, hooks, new LocalRoomBuckets());
        }
        this.#mucRedis = config.state.redis;
        this.#sweep = setInterval(() => this.#muc?.sweep(), 60_000).unref();
        this.#metrics.trackMuc(() => this.#muc?.stats() ?? { rooms: 0, occupants: 0 });
      } else {
        if (this.#mucRedis !== config.state.redis) {
          this.#logger.warn({ using: this.#mucRedis === null ? "local" : redactUrl(this.#mucRedis) }, "state.redis changed: MUC room buckets follow after a restart");
        }
        this.#muc.reconfigure(config.muc_limits);
      }
      stages.push(this.#muc);
    }
    if (config.contact_info !== null) stages.push(contactInfoStage(config.contact_info));
    // Last: it learns only from what every other stage let through. It idles
    // until a rule file needs rosters (a rule file reload may come without a
    // new pipeline, so it is in place whenever rules are).
    if (config.knowledge.rosters && (firewallOn || shadowOn)) stages.push(this.#rosterStage);
    if (this.#knowledge !== null) stages.push(this.#knowledge.stage);
    // Last: only a pipeline that was built in full changes the component connection.
    this.notifier.configure(config.component, config.registration);
    // pubsubitemid lists read their node over the same component connection.
    this.lists.setComponent(this.notifier.client);
    this.lists.configure(config.knowledge.lists);
    return new Pipeline(stages);
  }

  /** The store learned rosters live in, once a rule file needed one (null before). */
  get rosterStore(): RosterStore | null {
    return this.#rosterStore;
  }

  /** The fleet-wide limits (state.redis), or null. */
  get fleet(): FleetBuckets | null {
    return this.#fleet;
  }

  /** Why the state database is unusable (the SQLite file was lost under the store), or null. */
  stateFault(): string | null {
    return this.#store instanceof SqliteStore ? (this.#store.fault?.message ?? null) : null;
  }

  /**
   * Opens the SQLite store for the running proxy: a short lock wait (a wait
   * blocks every session), a fault logged and shown in the gauge, and the
   * file compared with the open one every STATE_CHECK_INTERVAL_MS.
   */
  #openSqlite(path: string, lockWaitMs: number): SqliteStore {
    const store = SqliteStore.open(path, {
      busyTimeoutMs: RUNNING_BUSY_TIMEOUT_MS,
      // restore refuses while this lock is held (state/state-lock.ts).
      holdLock: true,
      lockWaitMs,
      onFault: (fault) => {
        this.#metrics.stateFaulted.set(1);
        this.#logger.error({ code: fault.code, path: fault.path, err: fault.message }, "state database lost; registration is refused until a reload or restart");
      },
    });
    clearInterval(this.#stateCheck);
    this.#stateCheck = setInterval(() => {
      if (store.check()) this.#metrics.stateErrors.inc({ op: "check" });
    }, STATE_CHECK_INTERVAL_MS).unref();
    this.#metrics.stateFaulted.set(0);
    return store;
  }

  /**
   * A reload opens a faulted store's file again, with start-up's checks (a
   * missing file is created empty, as at a restart). Not done without the
   * operator: an empty file would silently forget every tombstone and known
   * account, and a replaced one may be anything. A file that still cannot be
   * opened leaves the faulted store in place; the rest of the reload applies.
   */
  #reopenSqlite(path: string): void {
    const old = this.#store!;
    try {
      // A reload runs among live sessions: never wait for a restore in progress.
      this.#store = this.#openSqlite(path, 0);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#logger.error({ code: "XPX_ERR_STATE_FAULT", path, err: message }, "cannot reopen the state database; registration stays refused");
      return;
    }
    this.#storePath = path;
    // Its every operation throws its fault before touching the file, so a
    // pipeline still holding it until the swap refuses as before.
    old.close();
    this.#logger.warn({ path }, "state database reopened; registration resumes");
  }

  close(): void {
    clearInterval(this.#sweep);
    clearInterval(this.#stateCheck);
    void this.lists.close();
    void this.notifier.close();
    this.#store?.close();
    this.#store = null;
    this.#muc?.close();
    this.#mucRooms?.close();
    this.#mucRooms = null;
    clearInterval(this.#rosterCheck);
    this.rosters.use(null);
    this.#rosterLearner = null;
    this.#rosterStore?.close();
    this.#rosterStore = null;
    this.#knowledge?.directory.close();
    this.#fleet?.close();
    this.#fleet = null;
  }
}
