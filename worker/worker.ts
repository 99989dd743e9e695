// Takes jobs and moves each file queued → processing → processed (or failed), through conditional
// updates: a duplicate or stale delivery can never overwrite a newer outcome.
import type { Database } from '../core/db/index.js';
import type { FileJob, FileQueue } from '../core/queue/index.js';
import type { BlobStore } from '../core/storage/index.js';
import type { Logger } from '../core/telemetry/logger.js';
import type { Metrics } from '../core/telemetry/metrics.js';
import { ProcessingError, type ProcessorRegistry } from './processors/index.js';

export interface WorkerDeps {
  db: Database;
  queue: FileQueue;
  storage: BlobStore;
  logger: Logger;
  metrics: Metrics;
  processors: ProcessorRegistry;
  concurrency: number;
  /** Told when the worker goes from no running job to some and back (e.g. to set its pod's deletion cost). */
  onBusyChange?: (busy: boolean) => void;
}

export interface Worker {
  start(): void;
  /** Stops taking jobs and waits up to `timeoutMs` for the running ones. */
  close(timeoutMs: number): Promise<void>;
}

type Outcome = 'processed' | 'failed' | 'retried' | 'skipped' | 'superseded';

export function createWorker(deps: WorkerDeps): Worker {
  const { db, queue, storage, logger, metrics, processors } = deps;

  async function handle(job: FileJob): Promise<void> {
    const fileId = job.data.file_id;
    const row = await db.files.startProcessing(fileId);
    if (!row) {
      // Deleted, or already finished by an earlier delivery: nothing to do.
      metrics.jobsProcessed.inc({ kind: job.data.kind, outcome: 'skipped' });
      logger.info({ file_id: fileId, outcome: 'skipped' }, 'job');
      return;
    }
    if (row.attempts === 1) metrics.jobWait.observe(Math.max(0, Date.now() - job.data.enqueued_at) / 1000);

    const started = process.hrtime.bigint();
    const finish = (outcome: Outcome, extra: Record<string, unknown> = {}) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.jobDuration.observe({ kind: row.kind }, seconds);
      metrics.jobsProcessed.inc({ kind: row.kind, outcome });
      logger.info({ file_id: row.id, kind: row.kind, outcome, attempts: row.attempts, duration_ms: Math.round(seconds * 1e4) / 10, ...extra }, 'job');
    };

    let result;
    try {
      result = await processors[row.kind].process({ file: row, storage });
    } catch (err) {
      if (err instanceof ProcessingError) {
        const recorded = await db.files.failProcessing(row.id, row.attempts, { code: err.code, message: err.message });
        return finish(recorded ? 'failed' : 'superseded', { error_code: err.code });
      }
      if (job.retriesLeft > 0) {
        finish('retried', { err });
        throw err;
      }
      const message = 'Processing kept failing on a transient error; reprocess the file to try again.';
      const recorded = await db.files.failProcessing(row.id, row.attempts, { code: 'processing_failed', message });
      return finish(recorded ? 'failed' : 'superseded', { err, error_code: 'processing_failed' });
    }
    const recorded = await db.files.finishProcessing(row.id, row.attempts, result);
    finish(recorded ? 'processed' : 'superseded');
  }

  let running = 0;
  async function handleCountingRunning(job: FileJob): Promise<void> {
    if (running++ === 0) deps.onBusyChange?.(true);
    try {
      await handle(job);
    } finally {
      if (--running === 0) deps.onBusyChange?.(false);
    }
  }

  return {
    start: () => queue.consume(deps.concurrency, deps.onBusyChange ? handleCountingRunning : handle),
    close: (timeoutMs) => queue.close(timeoutMs),
  };
}
