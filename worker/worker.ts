// Takes jobs and moves each file queued → processing → processed (or failed), through conditional
// updates: a duplicate or stale delivery can never overwrite a newer outcome.
import { trace } from '@opentelemetry/api';
import type { Database } from '../core/db/index.js';
import type { FileJob, FileQueue } from '../core/queue/index.js';
import { BLOB_VARIANTS, type BlobStore } from '../core/storage/index.js';
import type { Logger } from '../core/telemetry/logger.js';
import type { Metrics } from '../core/telemetry/metrics.js';
import { activeTraceParent } from '../core/telemetry/spans.js';
import { isDataRefused } from '../core/db/index.js';
import type { FileError, Scan } from '../core/fileRecord.js';
import { RetryLater } from '../core/queue/index.js';
import { ScannerUnavailableError } from '../core/scanner/index.js';
import {
  boundResult,
  boundString,
  MAX_ERROR_MESSAGE_BYTES,
  MAX_RESULT_ITEMS,
  MAX_RESULT_STRING_BYTES,
} from '../core/results/bounds.js';
import { ProcessingError, type ProcessingLimits, type ProcessorRegistry } from './processors/index.js';
import type { RunInParser } from './processors/types.js';
import { Exclusion } from './exclusion.js';
import { detectToolSandbox } from './externalTool.js';
import { ParserProcesses, removeDeadParserDirectories } from './parsers.js';
import { malwareDetected, NoVerdictWhileUp, scanStoredFile, unscannable, type Scanning } from './scanning.js';

export interface WorkerDeps {
  db: Database;
  queue: FileQueue;
  storage: BlobStore;
  logger: Logger;
  metrics: Metrics;
  processors: ProcessorRegistry;
  concurrency: number;
  /** Processing starts after which a file is failed rather than tried again. */
  maxAttempts: number;
  limits: ProcessingLimits;
  /** Longest one job may run (JOB_TIMEOUT_MS). */
  jobTimeoutMs: number;
  /** Largest result stored for one file, as JSON (MAX_RESULT_BYTES). */
  maxResultBytes: number;
  /** RSS ceiling of one parser process (PARSER_MAX_RSS_BYTES). */
  parserMaxRssBytes: number;
  /** Where parsing runs; by default one child process per concurrent job. */
  parsers?: ParserProcesses;
  /** Malware scanning, the first step of every job (SCAN_CLAMD); none when off. */
  scanning?: Scanning;
  /** Told when the worker goes from no running job to some and back (e.g. to set its pod's deletion cost). */
  onBusyChange?: (busy: boolean) => void;
}

export interface Worker {
  /** Starts the parser processes and loads the parsers in them, so that the first files do not wait. */
  warm(): Promise<void>;
  start(): void;
  /** Stops taking jobs and waits up to `timeoutMs` for the running ones. */
  close(timeoutMs: number): Promise<void>;
}

type Outcome = 'processed' | 'failed' | 'retried' | 'waiting' | 'skipped' | 'superseded';

export function createWorker(deps: WorkerDeps): Worker {
  const { db, queue, storage, logger, metrics, processors } = deps;
  const preload = [
    ...new Set(Object.values(processors).flatMap((processor) => (processor.module ? [processor.module] : []))),
  ];
  const parsers =
    deps.parsers ?? new ParserProcesses({ size: deps.concurrency, maxRssBytes: deps.parserMaxRssBytes, preload });
  // Parsing gets what is left of the job's time, less a reserve to record the outcome before the queue gives up.
  const parsingBudgetMs = deps.jobTimeoutMs - Math.min(5_000, deps.jobTimeoutMs / 10);
  const sandbox = detectToolSandbox();
  if (!sandbox.prlimit)
    logger.error('prlimit (util-linux) is not installed: renderings that need an external tool fail');
  if (sandbox.office) logger.info('LibreOffice (soffice) is installed: office documents get a thumbnail and a preview');
  if (!sandbox.isolateNetwork)
    logger.info('unshare --net is not permitted here: external tools run without a network namespace of their own');
  const resultBounds = {
    maxBytes: deps.maxResultBytes,
    maxStringBytes: MAX_RESULT_STRING_BYTES,
    maxItems: MAX_RESULT_ITEMS,
  };

  // A re-delivered job runs alone: if it is what kills this worker, the crash charges nobody else an attempt.
  // Waiting for that (either way) takes at most a quarter of the job's time, which runs from when it was taken.
  const exclusion = new Exclusion(deps.jobTimeoutMs / 4);

  async function handle(job: FileJob): Promise<void> {
    const takenAt = Date.now();
    const outcome = await exclusion.run('beside', () => attempt(job, takenAt, /* countRedelivery */ false));
    if (outcome === 'redelivered')
      await exclusion.run('alone', () => attempt(job, takenAt, /* countRedelivery */ true));
  }

  /** One delivery of a job: `countRedelivery` counts a new attempt for a file already processing (a re-delivery). */
  async function attempt(job: FileJob, takenAt: number, countRedelivery: boolean): Promise<'redelivered' | void> {
    const fileId = job.data.file_id;
    const row = await db.files.startProcessing(fileId, deps.maxAttempts, { countRedelivery });
    if (row === 'redelivered') return row;
    if (!row) {
      // Deleted, or already finished by an earlier delivery: nothing to do.
      metrics.jobsProcessed.inc({ queue: job.queue, kind: job.data.kind, outcome: 'skipped' });
      logger.info({ file_id: fileId, queue: job.queue, kind: job.data.kind, outcome: 'skipped' }, 'job');
      return;
    }
    if (row.status === 'failed') {
      // Its earlier attempts died with their workers (or kept failing): stop re-delivering it.
      metrics.jobsProcessed.inc({ queue: job.queue, kind: row.kind, outcome: 'failed' });
      logger.warn(
        {
          file_id: row.id,
          queue: job.queue,
          kind: row.kind,
          outcome: 'failed',
          attempts: row.attempts,
          error_code: row.error?.code,
        },
        'job',
      );
      return;
    }
    if (row.attempts === 1)
      metrics.jobWait.observe({ queue: job.queue }, Math.max(0, Date.now() - job.data.enqueued_at) / 1000);
    metrics.jobAttempts.observe({ queue: job.queue, kind: row.kind }, row.attempts);

    const started = process.hrtime.bigint();
    const finish = (outcome: Outcome, extra: Record<string, unknown> = {}) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.jobDuration.observe({ queue: job.queue, kind: row.kind }, seconds);
      metrics.jobsProcessed.inc({ queue: job.queue, kind: row.kind, outcome });
      trace.getActiveSpan()?.setAttributes({
        'file_processor.file.kind': row.kind,
        'file_processor.job.outcome': outcome,
        'file_processor.job.attempt': row.attempts,
      });
      // An error beside the outcome (a retry, a refusal) is logged at this attempt, where it happened.
      logger[extra.err ? 'warn' : 'info'](
        {
          file_id: row.id,
          queue: job.queue,
          kind: row.kind,
          outcome,
          attempts: row.attempts,
          duration_ms: Math.round(seconds * 1e4) / 10,
          ...extra,
        },
        'job',
      );
    };

    // The CPU time a parse may use is its share of the job's time too; the deadline bounds the waiting.
    const limits = { deadline: takenAt + parsingBudgetMs, cpuMs: parsingBudgetMs };
    const inParser: RunInParser = (module, analysis, ...args) => parsers.run(module, analysis, args, limits);
    let scan: Scan | null = null;
    /** The scan read the whole file and found it as uploaded: the processors need not check it again. */
    let intact = false;
    const fail = async (error: FileError, extra: Record<string, unknown> = {}) => {
      const bounded = { code: error.code, message: boundString(error.message, MAX_ERROR_MESSAGE_BYTES) };
      const recorded = await db.files.failProcessing(row.id, row.attempts, bounded, activeTraceParent(), scan);
      finish(recorded ? 'failed' : 'superseded', { ...extra, error_code: error.code });
    };
    try {
      if (deps.scanning) {
        ({ scan, intact } = await scanStoredFile(row, deps.scanning, storage, metrics, job.data.scan_strikes ?? 0));
        // An infected file is never analysed, rendered or served; nor, by default, one the scanner could not read.
        if (scan.status === 'infected') return await fail(malwareDetected(scan), { scan: scan.signature });
        if (scan.status === 'unscannable' && deps.scanning.unscannable === 'fail')
          return await fail(unscannable(scan), { scan: scan.signature });
      }
      const output = await processors[row.kind].process({
        file: row,
        storage,
        limits: deps.limits,
        inParser,
        deadline: limits.deadline,
        verified: intact,
        // The parsers' limits, for the tools that render.
        tools: {
          ...limits,
          maxMemoryBytes: deps.parserMaxRssBytes,
          isolateNetwork: sandbox.isolateNetwork,
          office: sandbox.office,
        },
      });
      const renderings = { thumbnail: output.thumbnail, preview: output.preview ?? false };
      const result = boundResult(output.result, resultBounds);
      const recorded = await db.files.finishProcessing(
        row.id,
        row.attempts,
        result,
        renderings,
        activeTraceParent(),
        scan,
      );
      // Deleted while it was processed: the DELETE may have removed the blobs before the renderings were written. The
      // renderings alone go: the original's key may hold the placeholder that bars a direct upload's replayed PUT.
      const stored = BLOB_VARIANTS.filter((variant) => renderings[variant]);
      if (!recorded && stored.length > 0 && !(await db.files.existing([row.id])).has(row.id)) {
        for (const variant of stored) await storage.remove(row.id, { variant });
      }
      finish(recorded ? 'processed' : 'superseded', { result_bytes: Buffer.byteLength(JSON.stringify(result)) });
    } catch (err) {
      if (err instanceof ScannerUnavailableError) {
        // Not the file's doing: the attempt is given back and the job waits, as long as the scanner is away.
        await db.files.releaseProcessing(row.id, row.attempts);
        job.data.scan_strikes = err instanceof NoVerdictWhileUp ? (job.data.scan_strikes ?? 0) + 1 : 0;
        finish('waiting', { err });
        throw new RetryLater(err.message, { cause: err });
      }
      if (err instanceof ProcessingError) return fail({ code: err.code, message: err.message });
      if (isDataRefused(err)) {
        // The same result would be refused again: the file fails once, with why, instead of crashing its attempts away.
        return fail(
          {
            code: 'result_unstorable',
            message: `The database refused what processing found (${String((err as Error).message)}); reprocess the file to try again.`,
          },
          { err },
        );
      }
      if (job.retriesLeft > 0) {
        finish('retried', { err });
        throw err;
      }
      const message = 'Processing kept failing on a transient error; reprocess the file to try again.';
      return fail({ code: 'processing_failed', message }, { err });
    }
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
    warm: () => {
      // What parsers of a worker killed before it could clean up left in the temporary directory.
      removeDeadParserDirectories();
      return parsers.warm();
    },
    start: () => queue.consume(deps.concurrency, deps.onBusyChange ? handleCountingRunning : handle),
    close: async (timeoutMs) => {
      await queue.close(timeoutMs);
      await parsers.close();
    },
  };
}
