// The reconciler: makes the queue and the blob store agree with the files table again after whatever
// went wrong (Redis lost its jobs, a worker died, a pod crashed mid-upload). One worker runs it at a
// time: the leader, which holds a lock in Redis and renews it while it lives; every step is idempotent, so
// two running at once would only waste work.
import { randomUUID } from 'node:crypto';
import type { Config } from '../core/config.js';
import type { Database, StalePosition, StaleRow } from '../core/db/index.js';
import type { FileQueue } from '../core/queue/index.js';
import type { SharedRedis } from '../core/redis.js';
import type { BlobStore } from '../core/storage/index.js';
import type { ResumableStore } from '../core/tus/stores.js';
import type { Logger } from '../core/telemetry/logger.js';
import type { Metrics } from '../core/telemetry/metrics.js';

export type ReconcilerConfig = Pick<
  Config,
  'reconcileIntervalMs' | 'requeueAfterMs' | 'orphanAfterMs' | 'webhookRetentionMs' | 'tusExpireAfterMs'
>;

export interface ReconcilerDeps {
  db: Database;
  queue: FileQueue;
  /** Holds the lock that lets one reconciler run at a time. */
  redis: SharedRedis;
  storage: BlobStore;
  logger: Logger;
  metrics: Metrics;
  config: ReconcilerConfig;
  /** Where unfinished resumable uploads live, to remove the expired ones. */
  resumable?: ResumableStore;
  /** Keys the orphan sweep lists a run: SWEEP_KEYS_PER_RUN unless a test makes the store span several runs. */
  sweepKeysPerRun?: number;
}

/** What one run did, for logs and tests. */
export interface ReconcileReport {
  requeuedQueued: number;
  requeuedLost: number;
  failedBlobMissing: number;
  removedTemporary: number;
  removedOrphans: number;
  removedKeys: number;
  /**
   * Direct uploads forgotten once their presigned PUT was dead, with the object at their key when no File owns it
   * (never completed, or the placeholder of a deleted File).
   */
  removedUploads: number;
  /** Webhook deliveries, delivered or failed, older than WEBHOOK_RETENTION_MS. */
  removedDeliveries: number;
  /** Webhook events older than WEBHOOK_RETENTION_MS, fanned out, that no delivery refers to any more. */
  removedEvents: number;
  /** Resumable (tus) uploads left unfinished past TUS_EXPIRE_AFTER_MS. */
  removedResumable: number;
}

/** A run that has done nothing yet. */
export const emptyReport = (): ReconcileReport => ({
  requeuedQueued: 0,
  requeuedLost: 0,
  failedBlobMissing: 0,
  removedTemporary: 0,
  removedOrphans: 0,
  removedKeys: 0,
  removedUploads: 0,
  removedDeliveries: 0,
  removedEvents: 0,
  removedResumable: 0,
});

const BATCH = 500;

/** Keys the orphan sweep lists a run (ten ListObjectsV2 pages in a bucket): a store this size is swept every run. */
export const SWEEP_KEYS_PER_RUN = 10_000;

/** The leader lock's name in Redis (`<prefix>:<queue>:reconciler`). */
const LOCK = 'reconciler';

export class Reconciler {
  private readonly owner = randomUUID();
  private timer: NodeJS.Timeout | undefined;
  /** Renews the leader lock while this reconciler holds it, a run in progress or not. */
  private renewal: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private stopped = false;
  /** Where the walk over stale queued rows resumes: a long backlog is covered over several runs. */
  private queuedPosition: StalePosition | undefined;
  /** Where the orphan sweep resumes: a store of more than SWEEP_KEYS_PER_RUN keys is covered over several runs. */
  private sweepCursor: string | null = null;

  constructor(private readonly deps: ReconcilerDeps) {}

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

  /** Runs every step if this reconciler leads (holds the lock, or finds it free); answers whether it ran. */
  async tick(): Promise<boolean> {
    if (this.running || this.stopped) return false;
    this.running = this.runIfLeader()
      .catch((err: unknown) => {
        this.deps.logger.warn({ err }, 'reconciler run failed; the next one retries');
        return false;
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async runIfLeader(): Promise<boolean> {
    if (!(await this.deps.redis.holdLock(LOCK, this.owner, this.lockTtlMs))) {
      this.stopRenewing();
      return false;
    }
    this.keepRenewing();
    const report = await this.runOnce();
    if (Object.values(report).some(Boolean)) this.deps.logger.info({ ...report }, 'reconciled');
    return true;
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

  /** One pass of every step. */
  async runOnce(): Promise<ReconcileReport> {
    const report = emptyReport();
    await this.requeueQueued(report);
    await this.requeueLost(report);
    await this.removeLeftovers(report);
    return report;
  }

  /** Queued rows whose job is missing (Redis was down at upload time, or lost its data) go back in the queue. */
  private async requeueQueued(report: ReconcileReport): Promise<void> {
    const rows = await this.deps.db.files.staleQueued(this.staleBefore(), BATCH, this.queuedPosition);
    // Resume after the last row next time; start over once the walk reached the end.
    this.queuedPosition = rows.length === BATCH ? rows.at(-1) : undefined;
    for (const row of await this.withoutJob(rows)) {
      if ((await this.deps.storage.writtenAt(row.id)) === null) {
        const failed = await this.deps.db.files.failQueued(row.id, {
          code: 'blob_missing',
          message: 'The stored bytes of this file are missing.',
        });
        if (failed) {
          report.failedBlobMissing++;
          this.deps.metrics.reconcilerFailed.inc({ reason: 'blob_missing' });
        }
      } else if (await this.deps.queue.enqueue(row.id, row.kind)) {
        report.requeuedQueued++;
        this.deps.metrics.reconcilerRequeued.inc({ reason: 'queued' });
      }
    }
  }

  /** Processing rows whose job is gone (their worker died and Redis lost the job) go back in the queue. */
  private async requeueLost(report: ReconcileReport): Promise<void> {
    const rows = await this.deps.db.files.staleProcessing(this.staleBefore(), BATCH);
    for (const row of await this.withoutJob(rows)) {
      if (await this.deps.queue.enqueue(row.id, row.kind)) {
        report.requeuedLost++;
        this.deps.metrics.reconcilerRequeued.inc({ reason: 'lost' });
      }
    }
  }

  /** Temporary files of dead uploads, blobs without a row, expired idempotency keys, uploads and deliveries. */
  private async removeLeftovers(report: ReconcileReport): Promise<void> {
    const { db, storage, metrics } = this.deps;
    const orphanBefore = new Date(Date.now() - this.deps.config.orphanAfterMs);
    report.removedTemporary = await storage.removeTemporaryBefore(orphanBefore);
    metrics.reconcilerRemoved.inc({ what: 'temporary' }, report.removedTemporary);

    report.removedOrphans = await this.removeOrphans(orphanBefore);
    metrics.reconcilerRemoved.inc({ what: 'blob' }, report.removedOrphans);

    report.removedKeys = await db.idempotencyKeys.removeExpired(BATCH * 10);
    metrics.reconcilerRemoved.inc({ what: 'idempotency_key' }, report.removedKeys);

    if (storage.direct) report.removedUploads = await this.forgetExpiredUploads();
    metrics.reconcilerRemoved.inc({ what: 'direct_upload' }, report.removedUploads);

    const retention = new Date(Date.now() - this.deps.config.webhookRetentionMs);
    const pruned = await db.webhooks.prune(retention, BATCH * 10);
    report.removedDeliveries = pruned.deliveries;
    report.removedEvents = pruned.events;
    metrics.reconcilerRemoved.inc({ what: 'webhook_delivery' }, report.removedDeliveries);
    metrics.reconcilerRemoved.inc({ what: 'webhook_event' }, report.removedEvents);

    if (this.deps.resumable) {
      const expiredBefore = new Date(Date.now() - this.deps.config.tusExpireAfterMs);
      report.removedResumable = await this.deps.resumable.removeExpired(expiredBefore);
      metrics.reconcilerRemoved.inc({ what: 'resumable_upload' }, report.removedResumable);
    }
  }

  /**
   * Blobs with neither a File nor a remembered direct upload, last written before `orphanBefore` (younger ones may
   * belong to an upload between its bytes and its INSERT). Lists SWEEP_KEYS_PER_RUN keys a run from where the last
   * run stopped, so a round over the whole store takes ceil(keys / SWEEP_KEYS_PER_RUN) runs.
   */
  private async removeOrphans(orphanBefore: Date): Promise<number> {
    const { db, storage } = this.deps;
    const page = await storage.listIds(this.sweepCursor, this.deps.sweepKeysPerRun ?? SWEEP_KEYS_PER_RUN);
    this.sweepCursor = page.cursor;
    let removed = 0;
    for (let start = 0; start < page.ids.length; start += BATCH) {
      const batch = page.ids.slice(start, start + BATCH);
      const known = await db.files.existing(batch);
      // An upload's object is its own until it is forgotten: bytes before their File, or a deleted File's placeholder.
      const uploads = storage.direct ? await db.uploads.remembered(batch) : new Set<string>();
      for (const id of batch.filter((candidate) => !known.has(candidate) && !uploads.has(candidate))) {
        const written = await storage.writtenAt(id);
        if (written && written < orphanBefore) {
          await storage.remove(id);
          removed++;
        }
      }
    }
    return removed;
  }

  /**
   * Direct uploads are remembered until their presigned PUT is dead (expired, plus the bucket's clock skew); then
   * they are forgotten, and the object at their key goes unless a File owns it: an upload never completed, or the
   * placeholder left by the DELETE of its File. A removal that fails leaves an orphan, which the sweep takes.
   */
  private async forgetExpiredUploads(): Promise<number> {
    const { db, storage } = this.deps;
    const unowned = await db.uploads.forgetExpired(BATCH * 10);
    for (const id of unowned) await storage.remove(id);
    return unowned.length;
  }

  private staleBefore(): Date {
    return new Date(Date.now() - this.deps.config.requeueAfterMs);
  }

  private async withoutJob(rows: StaleRow[]): Promise<StaleRow[]> {
    const exists = await this.deps.queue.jobsExist(rows);
    return rows.filter((_, index) => !exists[index]);
  }
}
