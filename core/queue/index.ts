// The one module that knows bee-queue. A job's id is its file's id, so enqueueing a file that already
// has a job is a no-op, and the files table (not Redis) is the source of truth.
//
// Each pool has its own queue (QUEUE_ROUTES; one queue, QUEUE_NAME, by default), hence its own keys.
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
import { singleQueue, type ConsumedQueue, type QueueRoutes } from './routes.js';

export { parseQueueRoutes, parseWorkerQueues, singleQueue, type ConsumedQueue, type QueueRoutes } from './routes.js';

/** What a job carries; the row holds everything else. */
export interface FileJobData {
  file_id: string;
  kind: FileKind;
  /** Epoch milliseconds when the file was enqueued (for queue-wait metrics). */
  enqueued_at: number;
  /** W3C trace context of the enqueue (present only while tracing is on), so the job's span joins its trace. */
  trace?: TraceCarrier;
  /** How many times the job waited for something not the file's (RetryLater). */
  waits?: number;
  /** Scans in a row that gave no verdict while the scanner answered PING (worker/scanning.ts). */
  scan_strikes?: number;
}

/**
 * Thrown by a handler whose job could not begin for a reason that is not the file's (the malware scanner is away):
 * the job runs again after a wait, as often as it must, never using one of its retries.
 */
export class RetryLater extends Error {
  override name = 'RetryLater';
}

/** A job's retry settings as bee-queue keeps them in its options (and saves with the job). */
interface JobRetryOptions {
  retries?: number;
  backoff?: { strategy: string; delay: number };
  /** The stack of each failed run, newest first: bee-queue adds one per run and never drops any. */
  stacktraces?: string[];
}

/** The longest a job waits between two RetryLater runs. */
const MAX_WAIT_MS = 60_000;

export interface FileJob {
  /** The job's own data: what a handler changes in it before throwing RetryLater is saved for the next run. */
  data: FileJobData;
  /** Retries left after this run; 0 means a transient failure now is final. */
  retriesLeft: number;
  /** The queue the job came from (its pool). */
  queue: string;
}

export type QueueState = 'waiting' | 'active' | 'delayed';
export type QueueCounts = Record<QueueState, number>;

interface CommonQueueOptions {
  redisUrl: string;
  prefix: string;
  /** Producers (the API) only enqueue; consumers (workers) also take jobs and run retries. */
  role: 'producer' | 'consumer';
  /**
   * The queues a consumer takes jobs from, each with its concurrency (WORKER_QUEUES). By default every routed
   * queue, at the concurrency given to `consume`. A consumer enqueues into every routed queue (the reconciler).
   */
  consumes?: readonly ConsumedQueue[];
  retries: number;
  backoffMs: number;
  /** Longest a job may run before the queue gives up on it (bee-queue's job timeout). */
  jobTimeoutMs?: number;
  /** How often a consumer looks for jobs whose worker died (bee-queue's stall interval). */
  stallIntervalMs?: number;
  /** Tracer of the producer and consumer spans (default: the global one, a no-op until the SDK starts). */
  tracer?: Tracer;
}

/** Either one queue for every kind (`name`), or pools (`routes`, QUEUE_ROUTES). */
export type QueueOptions = CommonQueueOptions & ({ name: string } | { routes: QueueRoutes });

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

/** One bee-queue queue: one pool's jobs, with its own Redis connections. */
class Lane {
  readonly queue: BeeQueue<FileJobData>;
  stallTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly name: string,
    options: CommonQueueOptions,
    /** Takes jobs (and runs its retries and stall checks) rather than only enqueueing. */
    readonly consumer: boolean,
    /** Its own concurrency (WORKER_QUEUES), if it has one. */
    readonly concurrency?: number,
  ) {
    this.queue = new BeeQueue<FileJobData>(name, {
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
  async withScripts<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
      await this.reloadScripts();
      return call();
    }
  }

  command<T>(run: (client: CommandClient, done: Callback<T>) => void): Promise<T> {
    const client = this.client();
    if (!client?.connected) return Promise.reject(new Error('The queue is not connected to Redis.'));
    return new Promise((resolve, reject) => run(client, (err, value) => (err ? reject(err) : resolve(value))));
  }

  /** bee-queue internal, used only here: its private client, since job lookups and pings need no second connection. */
  client(): CommandClient | null {
    return (this.queue as unknown as { client: CommandClient | null }).client;
  }
}

/**
 * The files' queues: one per pool (QUEUE_ROUTES), one in all by default. A job goes to its kind's queue;
 * a consumer takes jobs from the queues it is given, each at its own concurrency.
 */
export class FileQueue {
  private readonly lanes = new Map<string, Lane>();
  private readonly routes: QueueRoutes;
  private readonly tracer: Tracer;

  constructor(private readonly options: QueueOptions) {
    this.tracer = options.tracer ?? defaultTracer();
    this.routes = 'routes' in options ? options.routes : singleQueue(options.name);
    const consumer = options.role === 'consumer';
    const consumed = new Map(
      (options.consumes ?? this.routes.queues.map((name) => ({ name, concurrency: undefined }))).map((queue) => [
        queue.name,
        queue.concurrency,
      ]),
    );
    for (const name of new Set([...this.routes.queues, ...consumed.keys()])) {
      this.lanes.set(name, new Lane(name, options, consumer && consumed.has(name), consumed.get(name)));
    }
  }

  ready(): Promise<unknown> {
    return Promise.all([...this.lanes.values()].map((lane) => lane.queue.ready()));
  }

  /** Adds a job for the file to its kind's queue; false when it already had one (waiting, running or due for a retry). */
  enqueue(fileId: string, kind: FileKind): Promise<boolean> {
    const lane = this.laneOf(kind);
    return traceSend(this.tracer, lane.name, fileId, (trace) => this.addJob(lane, fileId, kind, trace));
  }

  private laneOf(kind: FileKind): Lane {
    return this.lanes.get(this.routes.queueOf(kind))!;
  }

  private async addJob(lane: Lane, fileId: string, kind: FileKind, trace: TraceCarrier | undefined): Promise<boolean> {
    // While Redis is away, fail at once instead of making every upload wait for the timeout.
    if (!lane.client()?.connected) throw new Error('The queue is not connected to Redis.');
    const save = () => {
      const job = lane.queue
        .createJob({ file_id: fileId, kind, enqueued_at: Date.now(), ...(trace && { trace }) })
        .setId(fileId)
        .retries(this.options.retries)
        .backoff('exponential', this.options.backoffMs);
      if (this.options.jobTimeoutMs) job.timeout(this.options.jobTimeoutMs);
      return job.save();
    };
    const saved = await withTimeout(lane.withScripts(save), ENQUEUE_TIMEOUT_MS, 'Enqueueing a job');
    // bee-queue's addJob script answers nil for an id that exists, which surfaces as a job without id.
    return Boolean(saved.id);
  }

  /**
   * Drops the file's job if it is still waiting, in whichever queue it is (routes may have changed since it was
   * enqueued); a running job finds its row gone and stops.
   */
  async remove(fileId: string): Promise<void> {
    await Promise.all([...this.lanes.values()].map((lane) => lane.withScripts(() => lane.queue.removeJob(fileId))));
  }

  /**
   * Starts taking jobs from every queue this consumer was given, each at its own concurrency or else at
   * `concurrency`. A handler that throws is retried with exponential backoff while retries last; one that throws
   * RetryLater runs again later, as often as it must, without using a retry.
   */
  consume(concurrency: number, handler: (job: FileJob) => Promise<void>): void {
    for (const lane of this.lanes.values()) {
      if (!lane.consumer) continue;
      lane.queue.process(lane.concurrency ?? concurrency, async (job) => {
        const options = job.options as JobRetryOptions;
        try {
          await traceProcess(this.tracer, lane.name, String(job.id), job.data.trace, () =>
            handler({ data: job.data, retriesLeft: Number(options.retries ?? 0), queue: lane.name }),
          );
        } catch (err) {
          if (err instanceof RetryLater) {
            // bee-queue retries while retries last, taking one each time: given back, with a wait of our own that
            // doubles up to a minute. The job's data and options are saved with it, so the count survives.
            const waits = job.data.waits ?? 0;
            job.data.waits = waits + 1;
            options.retries = Number(options.retries ?? 0) + 1;
            options.backoff = { strategy: 'fixed', delay: Math.min(MAX_WAIT_MS, this.options.backoffMs * 2 ** waits) };
            // Only this run's stack is kept: one per wait would grow the job in Redis for as long as the outage lasts.
            options.stacktraces = [];
          } else if (options.backoff?.strategy === 'fixed') {
            // a failure of the file's own after waits: retried with the usual exponential backoff, from its start
            options.backoff = { strategy: 'exponential', delay: this.options.backoffMs };
          }
          throw err;
        }
      });
      // A job whose worker died comes back only when someone runs the stall check.
      lane.stallTimer = setInterval(() => {
        lane.withScripts(() => lane.queue.checkStalledJobs()).catch(() => undefined);
      }, this.options.stallIntervalMs ?? 5_000);
      lane.stallTimer.unref();
    }
  }

  /** Job counts by state over every queue: one round trip of cheap reads per queue, fine at scrape time. */
  async counts(): Promise<QueueCounts> {
    const total: QueueCounts = { waiting: 0, active: 0, delayed: 0 };
    for (const counts of Object.values(await this.countsByQueue())) {
      for (const state of Object.keys(total) as QueueState[]) total[state] += counts[state];
    }
    return total;
  }

  /** Job counts by queue, then state. */
  async countsByQueue(): Promise<Record<string, QueueCounts>> {
    const lanes = [...this.lanes.values()];
    const healths = await Promise.all(lanes.map((lane) => lane.queue.checkHealth()));
    return Object.fromEntries(
      lanes.map((lane, n) => {
        const { waiting, active, delayed } = healths[n]!;
        return [lane.name, { waiting, active, delayed }];
      }),
    );
  }

  /** For each file, whether its job exists (waiting, running or due for a retry) in its kind's queue. */
  async jobsExist(files: ReadonlyArray<{ id: string; kind: FileKind }>): Promise<boolean[]> {
    const exists = new Array<boolean>(files.length).fill(false);
    const byLane = new Map<Lane, number[]>();
    files.forEach((file, n) => {
      const lane = this.laneOf(file.kind);
      const indexes = byLane.get(lane) ?? [];
      indexes.push(n);
      byLane.set(lane, indexes);
    });
    await Promise.all(
      [...byLane].map(async ([lane, indexes]) => {
        const ids = indexes.map((n) => files[n]!.id);
        const jobs = await lane.command<Array<string | null>>((client, done) =>
          client.hmget(queueKey(this.options.prefix, lane.name, 'jobs'), ids, done),
        );
        jobs.forEach((job, n) => (exists[indexes[n]!] = job !== null));
      }),
    );
    return exists;
  }

  async ping(): Promise<void> {
    await Promise.all(
      [...this.lanes.values()].map((lane) => lane.command<string>((client, done) => client.ping(done))),
    );
  }

  /** Stops taking jobs and waits up to `timeoutMs` for running ones. */
  async close(timeoutMs: number): Promise<void> {
    await Promise.all(
      [...this.lanes.values()].map((lane) => {
        clearInterval(lane.stallTimer);
        return lane.queue.close(timeoutMs);
      }),
    );
  }
}
