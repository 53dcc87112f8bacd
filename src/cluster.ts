// All cores (docs/deploy.md, "All cores: `workers`"): `workers: N` (N > 1) runs N worker processes through
// node:cluster. The primary owns the admin port, validates reloads once and
// fans them out, aggregates metrics from every worker, restarts crashed
// workers with backoff, and drains them all on SIGTERM. Workers run the
// ordinary proxy (startProxy) without an admin port; their listeners share
// the primary's sockets (round-robin accept, Node's default on Linux).
//
// Not coordinated across workers unless state.redis is set: per-IP connection
// caps and rates, MUC buckets and firewall LIMITs (see docs/deploy.md). The
// registration state is shared through SQLite or Redis; the primary opens the
// SQLite file once before the workers do (see prepareState). The session
// directory (knowledge.sessions) is shared through Redis, or else through
// the primary (knowledge/replicate.ts SessionHub).

import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry, Gauge, type MetricObjectWithValues, type MetricValue } from "prom-client";
import type { Config } from "./config/schema.js";
import { checkOnlyRules, prepare } from "./prepare.js";
import { SessionHub } from "./knowledge/replicate.js";
import type { Logger } from "./log.js";
import { startAdminServer, type AdminServer } from "./admin/server.js";
import { startProxy, type ReloadResult, type RunningProxy } from "./app.js";
import { PREFIX, createPrimaryMetrics } from "./metrics/definitions.js";
import { SqliteStore } from "./state/sqlite-store.js";
import type { SessionFilter, SessionSummary } from "./admin/sessions.js";
import { UpstreamChecker } from "./admin/upstream-check.js";
import { readAdminToken } from "./admin/client.js";
import { checkOnlyRemoteLists } from "./knowledge/remote-lists.js";

/** Messages between primary and workers; `xg` keeps them apart from prom-client's. */
type ToWorker =
  | { xg: "reload"; id: number }
  | { xg: "stats"; id: number }
  | { xg: "metrics"; id: number }
  | { xg: "sessions"; id: number; filter: SessionFilter }
  | { xg: "kick"; id: number; sid: string }
  | { xg: "shutdown" };
type ToPrimary =
  | { xg: "ready" }
  | { xg: "failed"; error: string }
  | { xg: "reloaded"; id: number; ok: boolean; errors: string[] }
  | { xg: "stats"; id: number; sessions: number; degraded: string[]; about: Record<string, unknown>; upstreams: Record<string, { ok: boolean; ageMs: number }> }
  | { xg: "metrics"; id: number; metrics: Metric[] }
  | { xg: "sessions"; id: number; sessions: SessionSummary[] }
  | { xg: "kicked"; id: number; closed: SessionSummary | null };

type Metric = MetricObjectWithValues<MetricValue<string>>;

/** Restart delay after the n-th consecutive crash of a slot: 0.5 s doubling to 30 s. */
export function restartDelayMs(crashes: number): number {
  return Math.min(30_000, 500 * 2 ** Math.max(0, crashes - 1));
}

/** A worker that stayed up this long resets its slot's crash count. */
const STABLE_MS = 60_000;
const START_TIMEOUT_MS = 60_000;
const IPC_TIMEOUT_MS = 10_000;

function isToPrimary(m: unknown): m is ToPrimary {
  return typeof m === "object" && m !== null && typeof (m as { xg?: unknown }).xg === "string";
}

// ---------------------------------------------------------------------------
// Worker side

/** Runs the proxy in a cluster worker: no admin port, reload and shutdown on the primary's word. */
export async function runWorker(config: Config, configPath: string, logger: Logger): Promise<void> {
  const send = (m: ToPrimary): void => {
    if (process.connected) process.send!(m);
  };
  let proxy: RunningProxy;
  try {
    proxy = await startProxy(config, { configPath, logger, admin: false });
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    logger.fatal({ err: error }, "worker cannot start");
    logger.flush();
    send({ xg: "failed", error });
    process.exitCode = 3;
    setTimeout(() => process.exit(3), 100).unref();
    return;
  }
  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, "worker stopping");
    void proxy.shutdown().then(() => process.exit(0));
  };
  process.on("message", (m: unknown) => {
    const msg = m as ToWorker;
    if (typeof msg !== "object" || msg === null) return;
    if (msg.xg === "reload") void proxy.reload().then((r) => send({ xg: "reloaded", id: msg.id, ok: r.ok, errors: r.errors }));
    else if (msg.xg === "stats") send({ xg: "stats", id: msg.id, sessions: proxy.sessionCount(), degraded: proxy.degraded(), about: proxy.about(), upstreams: proxy.upstreamStatus() });
    else if (msg.xg === "metrics") void proxy.metrics.registry.getMetricsAsJSON().then((metrics) => send({ xg: "metrics", id: msg.id, metrics: metrics as Metric[] }));
    else if (msg.xg === "sessions") send({ xg: "sessions", id: msg.id, sessions: proxy.sessions(msg.filter) });
    else if (msg.xg === "kick") send({ xg: "kicked", id: msg.id, closed: proxy.closeSession(msg.sid) });
    else if (msg.xg === "shutdown") stop("primary");
  });
  // The primary coordinates reloads; a HUP sent to the whole group must not kill us.
  process.on("SIGHUP", () => logger.debug("SIGHUP ignored by a worker: the primary reloads"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // The primary is gone: finish what we have and leave.
  process.on("disconnect", () => stop("primary gone"));
  send({ xg: "ready" });
}

// ---------------------------------------------------------------------------
// Primary side

/**
 * Opens the SQLite state file once, in the primary, before the workers open it
 * together: it creates and migrates a new file, and converts one an older
 * version left in WAL mode, which SQLite allows only while no other
 * connection has it open. Throws StateError, failing the start (or the
 * reload) as a single process would.
 */
function prepareState(config: Config): void {
  if (config.registration === null || config.state.redis !== null) return;
  SqliteStore.open(config.state.path).close();
}

/**
 * The cumulative series (counters, histograms) of a worker that is gone, to
 * keep adding them to the sum: without them a worker's restart would make
 * every summed counter drop, which Prometheus reads as a counter reset.
 * Gauges are a worker's present state and go with it.
 */
export function addCarried(carried: readonly Metric[], gone: readonly Metric[]): Metric[] {
  const byName = new Map<string, Metric>();
  for (const m of carried) byName.set(m.name, { ...m, values: m.values.map((v) => ({ ...v })) });
  for (const m of gone) {
    const t = String(m.type);
    if ((t !== "counter" && t !== "histogram") || (m.aggregator !== undefined && m.aggregator !== "sum")) continue;
    let into = byName.get(m.name);
    if (into === undefined) byName.set(m.name, (into = { ...m, values: [] }));
    for (const v of m.values) {
      const key = seriesKey(v);
      const same = into.values.find((x) => seriesKey(x) === key);
      if (same !== undefined) (same as { value: number }).value += v.value;
      else into.values.push({ ...v });
    }
  }
  return [...byName.values()];
}

function seriesKey(v: MetricValue<string> & { metricName?: string }): string {
  const labels = Object.entries(v.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${v.metricName ?? ""}|${JSON.stringify(labels)}`;
}

interface Slot {
  readonly index: number;
  worker: Worker | null;
  startedAt: number;
  crashes: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Runs the primary: forks `config.workers` workers, serves the admin port,
 * coordinates reload and shutdown. Resolves when it is running; returns the
 * process exit code through `onExit`.
 */
export async function runPrimary(initial: Config, configPath: string, logger: Logger): Promise<{ reload(): Promise<ReloadResult>; shutdown(): Promise<void> }> {
  const count = initial.workers;
  prepareState(initial);
  const primaryMetrics = createPrimaryMetrics();
  const { registry, restarts, reloads, workerSessions } = primaryMetrics;
  const workersGauge = primaryMetrics.workers;
  /** Each slot's last metrics scrape; a slot's moves into `carried` when its worker exits. */
  const lastSeen = new Map<number, Metric[]>();
  let carried: Metric[] = [];
  let current = initial;
  const checker = new UpstreamChecker();
  /** The latest upstream outcome any worker's sessions saw, per listener (performance.now() here). */
  const passive = new Map<string, { ok: boolean; at: number }>();
  const notePassive = (r: Extract<ToPrimary, { xg: "stats" }> | null): void => {
    const now = performance.now();
    for (const [name, u] of Object.entries(r?.upstreams ?? {})) {
      const at = now - u.ageMs;
      const known = passive.get(name);
      if (known === undefined || known.at < at) passive.set(name, { ok: u.ok, at });
    }
  };
  const upstreamReports = async (): Promise<Awaited<ReturnType<UpstreamChecker["check"]>>> => {
    const id = ++seq;
    await Promise.all(live().map(async (w) => notePassive(await ask<Extract<ToPrimary, { xg: "stats" }>>(w, { xg: "stats", id }, "stats"))));
    return checker.check(current.listeners.map((l) => ({ name: l.name, upstream: l.upstream, passive: passive.get(l.name) ?? null })));
  };
  const upstreamUp = new Gauge({
    name: `${PREFIX}upstream_up`, help: "1 when the listener's upstream server accepts connections (what /readyz checks), else 0.",
    labelNames: ["listener"] as const, registers: [registry],
    async collect() {
      this.reset();
      for (const u of await upstreamReports()) this.set({ listener: u.listener }, u.ok ? 1 : 0);
    },
  });
  void upstreamUp;
  let stopping = false;
  let seq = 0;
  // knowledge.sessions without state.redis: the workers share their session directory through here.
  const sessionHub = new SessionHub();
  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({ index, worker: null, startedAt: 0, crashes: 0, timer: undefined }));
  const live = (): Worker[] => slots.flatMap((s) => (s.worker !== null && s.worker.isConnected() ? [s.worker] : []));

  /** Sends `m` and resolves with the first matching answer, or null after the timeout or an exit. */
  const ask = <T extends ToPrimary>(w: Worker, m: ToWorker & { id: number }, kind: T["xg"]): Promise<T | null> =>
    new Promise((resolve) => {
      const done = (v: T | null): void => {
        clearTimeout(timer);
        w.off("message", onMessage);
        w.off("exit", onExit);
        resolve(v);
      };
      const onMessage = (r: unknown): void => {
        if (isToPrimary(r) && r.xg === kind && (r as { id?: number }).id === m.id) done(r as T);
      };
      const onExit = (): void => done(null);
      const timer = setTimeout(() => done(null), IPC_TIMEOUT_MS);
      w.on("message", onMessage);
      w.on("exit", onExit);
      w.send(m);
    });

  const fork = (slot: Slot): Worker => {
    const w = cluster.fork({ XMPP_GUARD_WORKER: String(slot.index + 1) });
    sessionHub.attach(w);
    slot.worker = w;
    slot.startedAt = Date.now();
    workersGauge.set(live().length);
    w.on("exit", (code, signal) => {
      if (slot.worker === w) slot.worker = null;
      workersGauge.set(live().length);
      const last = lastSeen.get(slot.index);
      if (last !== undefined) {
        carried = addCarried(carried, last);
        lastSeen.delete(slot.index);
      }
      if (stopping) return;
      if (Date.now() - slot.startedAt > STABLE_MS) slot.crashes = 0;
      slot.crashes++;
      const delay = restartDelayMs(slot.crashes);
      restarts.inc();
      logger.error({ code: "XPX_ERR_WORKER_EXIT", worker: slot.index + 1, pid: w.process.pid, exit: code, signal, restartInMs: delay }, "worker exited unexpectedly; restarting");
      slot.timer = setTimeout(() => {
        slot.timer = undefined;
        if (!stopping) fork(slot);
      }, delay);
    });
    return w;
  };

  // Start every worker; any one failing to start fails the whole start.
  const started = await Promise.all(
    slots.map(
      (slot) =>
        new Promise<string | null>((resolve) => {
          const w = fork(slot);
          const timer = setTimeout(() => resolve(`worker ${slot.index + 1}: not ready within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
          const onMessage = (m: unknown): void => {
            if (!isToPrimary(m)) return;
            if (m.xg === "ready") finish(null);
            else if (m.xg === "failed") finish(m.error);
          };
          const onExit = (code: number): void => finish(`worker ${slot.index + 1} exited with ${code} while starting`);
          const finish = (err: string | null): void => {
            clearTimeout(timer);
            w.off("message", onMessage);
            w.off("exit", onExit);
            resolve(err);
          };
          w.on("message", onMessage);
          w.on("exit", onExit);
        }),
    ),
  );
  const failure = started.find((e) => e !== null);
  if (failure) {
    stopping = true;
    for (const w of live()) w.process.kill("SIGKILL");
    throw new Error(failure);
  }

  const reload = async (): Promise<ReloadResult> => {
    // Check once, here (prepare.ts): config, certificates, rule files, the
    // state file. Nothing is sent on failure.
    const ready = await prepare({ file: configPath }, { ...checkOnlyRules(current.knowledge), openState: async (c) => prepareState(c) });
    if (!ready.ok) {
      reloads.inc({ result: "error" });
      for (const p of ready.problems) logger.error({ code: p.code }, `reload refused, previous config stays in every worker: ${p.message}`);
      return { ok: false, errors: ready.problems.map((p) => p.message) };
    }
    const candidate = ready.prepared.config;
    if (candidate.workers !== count) logger.warn({ workers: candidate.workers, running: count }, "workers changed: takes effect after a restart");
    if (candidate.admin.listen?.text !== initial.admin.listen?.text) logger.warn("admin.listen changed: takes effect after a restart");
    const id = ++seq;
    const answers = await Promise.all(live().map((w) => ask<Extract<ToPrimary, { xg: "reloaded" }>>(w, { xg: "reload", id }, "reloaded")));
    const errors: string[] = [];
    answers.forEach((a, i) => {
      if (a === null) errors.push(`worker ${i + 1}: no answer`);
      else for (const e of a.errors) errors.push(`worker ${i + 1}: ${e}`);
    });
    reloads.inc({ result: errors.length === 0 ? "ok" : "error" });
    if (errors.length === 0) current = candidate;
    logger.info({ workers: answers.length, errors }, "reload fanned out to workers");
    return { ok: errors.length === 0, errors };
  };

  const scrape = async (): Promise<{ contentType: string; body: string }> => {
    const id = ++seq;
    workerSessions.reset();
    await Promise.all(
      slots.map(async (slot) => {
        const w = slot.worker;
        if (w === null || !w.isConnected()) return;
        const [stats, m] = await Promise.all([
          ask<Extract<ToPrimary, { xg: "stats" }>>(w, { xg: "stats", id }, "stats"),
          ask<Extract<ToPrimary, { xg: "metrics" }>>(w, { xg: "metrics", id }, "metrics"),
        ]);
        if (stats !== null) workerSessions.set({ worker: String(slot.index + 1) }, stats.sessions);
        // A worker that did not answer still counts with what it said last.
        if (m !== null && slot.worker === w) lastSeen.set(slot.index, m.metrics);
      }),
    );
    // upstream_up is the primary's own (it probes); the workers' copies are empty.
    const summed = AggregatorRegistry.aggregate([carried, ...lastSeen.values()].map((list) => list.filter((m) => m.name !== `${PREFIX}upstream_up`)));
    const [workers, own] = await Promise.all([summed.metrics(), registry.metrics()]);
    return { contentType: registry.contentType, body: workers + "\n" + own };
  };

  const sessions = async (filter: SessionFilter): Promise<SessionSummary[]> => {
    const id = ++seq;
    const lists = await Promise.all(
      slots.map(async (slot) => {
        const w = slot.worker;
        if (w === null || !w.isConnected()) return [];
        const r = await ask<Extract<ToPrimary, { xg: "sessions" }>>(w, { xg: "sessions", id, filter }, "sessions");
        return (r?.sessions ?? []).map((s) => ({ ...s, worker: slot.index + 1 }));
      }),
    );
    return lists.flat().sort((a, b) => a.started.localeCompare(b.started));
  };

  const closeSession = async (sid: string): Promise<SessionSummary | null> => {
    const id = ++seq;
    const answers = await Promise.all(
      slots.map(async (slot) => {
        const w = slot.worker;
        if (w === null || !w.isConnected()) return null;
        const r = await ask<Extract<ToPrimary, { xg: "kicked" }>>(w, { xg: "kick", id, sid }, "kicked");
        return r?.closed ? { ...r.closed, worker: slot.index + 1 } : null;
      }),
    );
    return answers.find((a) => a !== null) ?? null;
  };

  const about = async (): Promise<Record<string, unknown>> => {
    const id = ++seq;
    const workers = await Promise.all(
      slots.map(async (slot) => {
        const w = slot.worker;
        if (w === null || !w.isConnected()) return { worker: slot.index + 1, running: false };
        const r = await ask<Extract<ToPrimary, { xg: "stats" }>>(w, { xg: "stats", id }, "stats");
        return { worker: slot.index + 1, running: true, ...(r?.about ?? {}) };
      }),
    );
    return { pid: process.pid, uptime_seconds: Math.round(process.uptime()), workers };
  };

  /** What works only in part in any worker (a lost state database), for /readyz. */
  const degraded = async (): Promise<string[]> => {
    const id = ++seq;
    const answers = await Promise.all(
      slots.map(async (slot) => {
        const w = slot.worker;
        if (w === null || !w.isConnected()) return [];
        const r = await ask<Extract<ToPrimary, { xg: "stats" }>>(w, { xg: "stats", id }, "stats");
        return (r?.degraded ?? []).map((d) => `worker ${slot.index + 1}: ${d}`);
      }),
    );
    return answers.flat();
  };

  let admin: AdminServer | null = null;
  if (initial.admin.listen) {
    const token = readAdminToken(initial.admin);
    admin = await startAdminServer(initial.admin.listen, {
      logger,
      scrape,
      ready: () => !stopping && live().length === count,
      degraded,
      upstreams: upstreamReports,
      reload,
      sessions,
      closeSession,
      about,
      token: () => token,
    });
  }

  // Once the admin port answers too, so that whoever waits for this line can use it.
  logger.info({ workers: count, pids: live().map((w) => w.process.pid) }, "workers running");

  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    for (const s of slots) clearTimeout(s.timer);
    const all = live();
    logger.info({ workers: all.length }, "shutting down: draining every worker");
    const exited = all.map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once("exit", () => r()))));
    for (const w of all) w.send({ xg: "shutdown" } satisfies ToWorker);
    // Workers drain for drain_seconds, then close the rest; bound the wait.
    const hard = setTimeout(() => {
      for (const w of all) if (!w.isDead()) w.process.kill("SIGKILL");
    }, (initial.shutdown.drain_seconds + 10) * 1000);
    await Promise.all(exited);
    clearTimeout(hard);
    await admin?.close();
    logger.info("shutdown complete");
    logger.flush();
  };

  return { reload, shutdown };
}
