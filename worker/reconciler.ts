// The reconciler: makes the queue and the blob store agree with the files table again after whatever
// went wrong (Redis lost its jobs, a worker died, a pod crashed mid-upload). One worker runs it at a
// time (a lock in Redis); every step is idempotent, so two running at once would only waste work.
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
}

/** What one run did, for logs and tests. */
export interface ReconcileReport {
  requeuedQueued: number;
  requeuedLost: number;
  failedBlobMissing: number;
  removedTemporary: number;
  removedOrphans: number;
  removedKeys: number;
  /** Direct uploads that expired unfinished, with their bytes. */
  removedUploads: number;
  /** Webhook deliveries, delivered or failed, older than WEBHOOK_RETENTION_MS. */
  removedDeliveries: number;
  /** Webhook events older than WEBHOOK_RETENTION_MS, fanned out, that no delivery refers to any more. */
  removedEvents: number;
  /** Resumable (tus) uploads left unfinished past TUS_EXPIRE_AFTER_MS. */
  removedResumable: number;
}

const BATCH = 500;

export class Reconciler {
  private readonly owner = randomUUID();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  /** Where the walk over stale queued rows resumes: a long backlog is covered over several runs. */
  private queuedPosition: StalePosition | undefined;
  private nextShard = 0;

  constructor(private readonly deps: ReconcilerDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.deps.config.reconcileIntervalMs);
    this.timer.unref();
  }

  /** Stops scheduling runs and waits for the one in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = this.runIfLeader()
      .catch((err: unknown) => this.deps.logger.warn({ err }, 'reconciler run failed; the next one retries'))
      .finally(() => (this.running = undefined));
    await this.running;
  }

  private async runIfLeader(): Promise<void> {
    // The lock outlives the interval a little, so runs do not overlap across workers.
    if (!(await this.deps.redis.tryLock('reconciler', this.owner, this.deps.config.reconcileIntervalMs))) return;
    const report = await this.runOnce();
    if (Object.values(report).some(Boolean)) this.deps.logger.info({ ...report }, 'reconciled');
  }

  /** One pass of every step. */
  async runOnce(): Promise<ReconcileReport> {
    const report: ReconcileReport = {
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
    };
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

  /** Temporary files of dead uploads, blobs without a row (one shard per run), expired idempotency keys. */
  private async removeLeftovers(report: ReconcileReport): Promise<void> {
    const { db, storage, metrics } = this.deps;
    const orphanBefore = new Date(Date.now() - this.deps.config.orphanAfterMs);
    report.removedTemporary = await storage.removeTemporaryBefore(orphanBefore);
    metrics.reconcilerRemoved.inc({ what: 'temporary' }, report.removedTemporary);

    const shard = this.nextShard;
    this.nextShard = (shard + 1) % storage.shardCount;
    const ids = await storage.idsInShard(shard);
    for (let start = 0; start < ids.length; start += BATCH) {
      const batch = ids.slice(start, start + BATCH);
      const known = await db.files.existing(batch);
      // A direct upload's bytes arrive before its File: they are not orphans while the upload lives.
      const completing = storage.direct ? await db.uploads.pending(batch) : new Set<string>();
      for (const id of batch.filter((candidate) => !known.has(candidate) && !completing.has(candidate))) {
        // Young blobs may belong to an upload between its rename and its INSERT.
        const written = await storage.writtenAt(id);
        if (written && written < orphanBefore) {
          await storage.remove(id);
          report.removedOrphans++;
        }
      }
    }
    metrics.reconcilerRemoved.inc({ what: 'blob' }, report.removedOrphans);

    report.removedKeys = await db.idempotencyKeys.removeExpired(BATCH * 10);
    metrics.reconcilerRemoved.inc({ what: 'idempotency_key' }, report.removedKeys);

    if (storage.direct) report.removedUploads = await this.removeExpiredUploads();
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
   * Expired direct uploads are forgotten, then lose their bytes: once the row is gone no File can be made from
   * them. A removal that fails leaves an orphan, and so does a PUT replayed after its File was deleted: the
   * sweep over the shards takes those.
   */
  private async removeExpiredUploads(): Promise<number> {
    const { db, storage } = this.deps;
    let removed = 0;
    for (const id of await db.uploads.expired(BATCH)) {
      if (!(await db.uploads.removeExpired(id))) continue;
      await storage.remove(id);
      removed++;
    }
    return removed;
  }

  private staleBefore(): Date {
    return new Date(Date.now() - this.deps.config.requeueAfterMs);
  }

  private async withoutJob(rows: StaleRow[]): Promise<StaleRow[]> {
    const exists = await this.deps.queue.jobsExist(rows);
    return rows.filter((_, index) => !exists[index]);
  }
}
