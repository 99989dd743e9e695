// The reconciler: makes the queue, the blob store and the tables agree again after whatever went wrong (Redis lost
// its jobs, a worker died, a pod crashed mid-upload), and removes what has outlived its use. It ticks every
// RECONCILE_INTERVAL_MS in every worker but runs only in the leader, which holds a lock in Redis and renews it while
// it lives; at each tick the leader runs the sweeps that are due (worker/sweeps/), each logged and counted under its
// name. Every sweep is idempotent, so two leaders at once would only waste work.
import { randomUUID } from 'node:crypto';
import type { Config } from '../core/config.js';
import type { SharedRedis } from '../core/redis.js';
import type { Logger } from '../core/telemetry/logger.js';
import type { Metrics } from '../core/telemetry/metrics.js';
import type { Sweep, SweepCounts } from './sweeps/index.js';

export interface ReconcilerDeps {
  /** Holds the lock that lets one reconciler run at a time. */
  redis: SharedRedis;
  logger: Logger;
  metrics: Metrics;
  config: Pick<Config, 'reconcileIntervalMs'>;
  /** What it runs, in this order: sweepsFor(...) in a worker. */
  sweeps: Sweep[];
}

/** What one run did, for tests. */
export interface ReconcileReport {
  /** The counts of each sweep that ran and finished, by its name. */
  swept: Record<string, SweepCounts>;
  /** The error of each sweep that threw, by its name. */
  failed: Record<string, unknown>;
}

/** The leader lock's name in Redis (`<prefix>:lock:reconciler`). */
const LOCK = 'reconciler';

export class Reconciler {
  private readonly owner = randomUUID();
  private timer: NodeJS.Timeout | undefined;
  /** Renews the leader lock while this reconciler holds it, a run in progress or not. */
  private renewal: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private stopped = false;
  /** When each sweep last started here (Date.now()); a sweep that never ran here is due. */
  private readonly started = new Map<Sweep, number>();

  constructor(private readonly deps: ReconcilerDeps) {
    const names = deps.sweeps.map((sweep) => sweep.name);
    const twice = names.find((name, index) => names.indexOf(name) !== index);
    if (twice) throw new Error(`Two reconciler sweeps are named ${twice}: their logs and metrics would mix.`);
    // Every sweep has its error series from the start, so that an increase counts the first error.
    for (const name of names) deps.metrics.reconcilerSweepErrors.inc({ sweep: name }, 0);
  }

  /** The leader lock lives one interval past its last renewal: a leader that died is replaced within two. */
  private get lockTtlMs(): number {
    return this.deps.config.reconcileIntervalMs;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.deps.config.reconcileIntervalMs);
    this.timer.unref();
  }

  /** Stops scheduling runs, waits for the one in progress and hands the lock over to whichever worker ticks next. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
    this.stopRenewing();
    // Redis away: the lock expires by itself.
    await this.deps.redis.releaseLock(LOCK, this.owner).catch(() => undefined);
  }

  /** Runs the sweeps that are due if this reconciler leads (holds the lock, or finds it free); answers whether it led. */
  async tick(): Promise<boolean> {
    if (this.running || this.stopped) return false;
    this.running = this.runIfLeader()
      .catch((err: unknown) => {
        this.deps.logger.warn({ err }, 'reconciler tick failed; the next one retries');
        return false;
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /** Runs every sweep now, due or not, lock or not. */
  runOnce(): Promise<ReconcileReport> {
    return this.runSweeps(this.deps.sweeps);
  }

  private async runIfLeader(): Promise<boolean> {
    if (!(await this.deps.redis.holdLock(LOCK, this.owner, this.lockTtlMs))) {
      this.stopRenewing();
      return false;
    }
    this.keepRenewing();
    await this.runSweeps(this.deps.sweeps.filter((sweep) => this.isDue(sweep)));
    return true;
  }

  /**
   * Due once its interval has gone by since it last started here, less half a tick: ticks come a little early or
   * late (timers are not exact), and a sweep of ten ticks must not wait for the eleventh.
   */
  private isDue(sweep: Sweep): boolean {
    const last = this.started.get(sweep);
    return last === undefined || Date.now() - last >= sweep.intervalMs - this.deps.config.reconcileIntervalMs / 2;
  }

  /** Runs the sweeps one after the other; one that throws is logged and counted, and the next one runs. */
  private async runSweeps(sweeps: Sweep[]): Promise<ReconcileReport> {
    const { logger, metrics } = this.deps;
    const report: ReconcileReport = { swept: {}, failed: {} };
    for (const sweep of sweeps) {
      this.started.set(sweep, Date.now());
      const labels = { sweep: sweep.name };
      const endTimer = metrics.reconcilerSweepDuration.startTimer(labels);
      try {
        const counts = await sweep.run();
        const seconds = endTimer();
        report.swept[sweep.name] = counts;
        for (const [outcome, count] of Object.entries(counts))
          metrics.reconcilerItems.inc({ ...labels, outcome }, count);
        if (Object.values(counts).some(Boolean)) {
          logger.info({ ...labels, ...counts, duration_ms: Math.round(seconds * 1000) }, 'swept');
        }
      } catch (err) {
        endTimer();
        report.failed[sweep.name] = err;
        metrics.reconcilerSweepErrors.inc(labels);
        logger.warn({ err, ...labels }, 'reconciler sweep failed; its next run retries');
      }
    }
    return report;
  }

  /** Renews at a third of the lock's life, so one late or failed renewal does not lose it. */
  private keepRenewing(): void {
    if (this.renewal) return;
    this.renewal = setInterval(() => void this.renew(), Math.max(1, Math.floor(this.lockTtlMs / 3)));
    this.renewal.unref();
  }

  private async renew(): Promise<void> {
    // Redis away: the lock may expire meanwhile, and the next tick takes it again or finds another leader.
    const held = await this.deps.redis.renewLock(LOCK, this.owner, this.lockTtlMs).catch(() => true);
    if (!held) this.stopRenewing();
  }

  private stopRenewing(): void {
    clearInterval(this.renewal);
    this.renewal = undefined;
  }
}
