// The one module that knows bee-queue. A job's id is its file's id, so enqueueing a file that already
// has a job is a no-op, and the files table (not Redis) is the source of truth.
//
// Redis keys, for queue name `files` and prefix `bq` (QUEUE_NAME, QUEUE_PREFIX):
//   bq:files:waiting      list   job ids not yet taken          (KEDA reads its length)
//   bq:files:active       list   job ids a worker is running    (KEDA adds its length: see the chart)
//   bq:files:delayed      zset   job ids waiting for a retry, scored by the time they are due
//   bq:files:jobs         hash   job id -> JSON (data, options, status); removed when a job ends
//   bq:files:stalling     set    active ids not yet confirmed alive in this stall interval
//   bq:files:stallBlock   string lock so one worker per interval runs the stall check
//   bq:files:id           string counter bee-queue keeps for generated ids (unused: ids are file ids)
//   bq:files:earlierDelayed  pub/sub channel announcing delayed jobs due sooner than planned
// Succeeded and failed jobs are removed at once (removeOnSuccess/removeOnFailure): the row keeps the outcome.
import type { Tracer } from '@opentelemetry/api';
import BeeQueue from 'bee-queue';
// bee-queue internal, used only here: its script loader, since it loads the scripts once and Redis forgets them on restart.
import beeQueueScripts from 'bee-queue/lib/lua/index.js';
import { withTimeout } from '../async.js';
import type { FileKind } from '../fileRecord.js';
import { defaultTracer, traceProcess, traceSend, type TraceCarrier } from '../telemetry/spans.js';

/** What a job carries; the row holds everything else. */
export interface FileJobData {
  file_id: string;
  kind: FileKind;
  /** Epoch milliseconds when the file was enqueued (for queue-wait metrics). */
  enqueued_at: number;
  /** W3C trace context of the enqueue (present only while tracing is on), so the job's span joins its trace. */
  trace?: TraceCarrier;
}

export interface FileJob {
  data: FileJobData;
  /** Retries left after this run; 0 means a transient failure now is final. */
  retriesLeft: number;
}

export type QueueState = 'waiting' | 'active' | 'delayed';
export type QueueCounts = Record<QueueState, number>;

export interface QueueOptions {
  redisUrl: string;
  prefix: string;
  name: string;
  /** Producers (the API) only enqueue; consumers (workers) also take jobs and run retries. */
  role: 'producer' | 'consumer';
  retries: number;
  backoffMs: number;
  /** Longest a job may run before the queue gives up on it (bee-queue's job timeout). */
  jobTimeoutMs?: number;
  /** How often a consumer looks for jobs whose worker died (bee-queue's stall interval). */
  stallIntervalMs?: number;
  /** Tracer of the producer and consumer spans (default: the global one, a no-op until the SDK starts). */
  tracer?: Tracer;
}

const ENQUEUE_TIMEOUT_MS = 2_000;

export const queueKey = (prefix: string, name: string, key: string): string => `${prefix}:${name}:${key}`;

type Callback<T> = (err: Error | null, value: T) => void;
interface CommandClient {
  connected: boolean;
  on(event: 'ready', listener: () => void): void;
  ping(callback: Callback<string>): void;
  hmget(key: string, fields: string[], callback: Callback<Array<string | null>>): void;
  set(key: string, value: string, mode: 'NX', unit: 'PX', ttl: number, callback: Callback<string | null>): void;
}

export class FileQueue {
  private readonly queue: BeeQueue<FileJobData>;
  private stallTimer: NodeJS.Timeout | undefined;
  private readonly tracer: Tracer;

  constructor(private readonly options: QueueOptions) {
    const consumer = options.role === 'consumer';
    this.tracer = options.tracer ?? defaultTracer();
    this.queue = new BeeQueue<FileJobData>(options.name, {
      prefix: options.prefix,
      // A producer must fail fast while Redis is away (the upload still succeeds), not queue commands.
      redis: { url: options.redisUrl, enable_offline_queue: consumer } as BeeQueue.QueueSettings['redis'],
      isWorker: consumer,
      getEvents: false,
      sendEvents: false,
      storeJobs: false,
      activateDelayedJobs: consumer,
      removeOnSuccess: true,
      removeOnFailure: true,
      stallInterval: options.stallIntervalMs ?? 5_000,
    });
    // Connection errors surface through ping() and the failing call; the queue reconnects by itself.
    this.queue.on('error', () => undefined);
    // A failed first connection is reported by ready() to whoever waits on it, not as an unhandled rejection.
    this.queue.ready().then(
      () => this.client()?.on('ready', () => void this.reloadScripts().catch(() => undefined)),
      () => undefined,
    );
  }

  /**
   * bee-queue calls its scripts by SHA and loads them only when it first connects; a Redis that restarted
   * without persistence answers NOSCRIPT to every call after. Load them again on each reconnection.
   */
  private async reloadScripts(): Promise<void> {
    const client = this.client();
    if (client) await beeQueueScripts.buildCache(client);
  }

  /** Runs a script-backed call, loading the scripts once more if Redis forgot them. */
  private async withScripts<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
      await this.reloadScripts();
      return call();
    }
  }

  ready(): Promise<unknown> {
    return this.queue.ready();
  }

  /** Adds a job for the file; false when it already had one (waiting, running or due for a retry). */
  enqueue(fileId: string, kind: FileKind): Promise<boolean> {
    return traceSend(this.tracer, this.options.name, fileId, (trace) => this.addJob(fileId, kind, trace));
  }

  private async addJob(fileId: string, kind: FileKind, trace: TraceCarrier | undefined): Promise<boolean> {
    // While Redis is away, fail at once instead of making every upload wait for the timeout.
    if (!this.client()?.connected) throw new Error('The queue is not connected to Redis.');
    const save = () => {
      const job = this.queue
        .createJob({ file_id: fileId, kind, enqueued_at: Date.now(), ...(trace && { trace }) })
        .setId(fileId)
        .retries(this.options.retries)
        .backoff('exponential', this.options.backoffMs);
      if (this.options.jobTimeoutMs) job.timeout(this.options.jobTimeoutMs);
      return job.save();
    };
    const saved = await withTimeout(this.withScripts(save), ENQUEUE_TIMEOUT_MS, 'Enqueueing a job');
    // bee-queue's addJob script answers nil for an id that exists, which surfaces as a job without id.
    return Boolean(saved.id);
  }

  /** Drops the file's job if it is still waiting; a running job finds its row gone and stops. */
  async remove(fileId: string): Promise<void> {
    await this.withScripts(() => this.queue.removeJob(fileId));
  }

  /** Starts taking jobs. A handler that throws is retried with exponential backoff while retries last. */
  consume(concurrency: number, handler: (job: FileJob) => Promise<void>): void {
    this.queue.process(concurrency, async (job) => {
      await traceProcess(this.tracer, this.options.name, String(job.id), job.data.trace, () =>
        handler({ data: job.data, retriesLeft: Number((job.options as { retries?: number }).retries ?? 0) }),
      );
    });
    // A job whose worker died comes back only when someone runs the stall check.
    const interval = this.options.stallIntervalMs ?? 5_000;
    this.stallTimer = setInterval(() => {
      this.withScripts(() => this.queue.checkStalledJobs()).catch(() => undefined);
    }, interval);
    this.stallTimer.unref();
  }

  /** Job counts by state: one round trip of cheap reads, fine at scrape time. */
  async counts(): Promise<QueueCounts> {
    const health = await this.queue.checkHealth();
    return { waiting: health.waiting, active: health.active, delayed: health.delayed };
  }

  /** For each file id, whether its job still exists (waiting, running or due for a retry). */
  async jobsExist(fileIds: string[]): Promise<boolean[]> {
    if (fileIds.length === 0) return [];
    const jobs = await this.command<Array<string | null>>((client, done) =>
      client.hmget(this.key('jobs'), fileIds, done),
    );
    return jobs.map((job) => job !== null);
  }

  private key(suffix: string): string {
    return queueKey(this.options.prefix, this.options.name, suffix);
  }

  private command<T>(run: (client: CommandClient, done: Callback<T>) => void): Promise<T> {
    const client = this.client();
    if (!client?.connected) return Promise.reject(new Error('The queue is not connected to Redis.'));
    return new Promise((resolve, reject) => run(client, (err, value) => (err ? reject(err) : resolve(value))));
  }

  async ping(): Promise<void> {
    await this.command<string>((client, done) => client.ping(done));
  }

  /** bee-queue internal, used only here: its private client, since job lookups and pings need no second connection. */
  private client(): CommandClient | null {
    return (this.queue as unknown as { client: CommandClient | null }).client;
  }

  /** Stops taking jobs and waits up to `timeoutMs` for running ones. */
  async close(timeoutMs: number): Promise<void> {
    clearInterval(this.stallTimer);
    await this.queue.close(timeoutMs);
  }
}
