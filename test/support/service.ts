// The real service in-process: the Koa app on an ephemeral port with real PostgreSQL, Redis and disk,
// and optionally a real worker consuming the same queue.
import type { Tracer } from '@opentelemetry/api';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { composeApi } from '../../api/compose.js';
import { MemoryLocker } from '@tus/server';
import type { Waiters } from '../../api/waiting.js';
import { SharedRedis } from '../../core/redis.js';
import { loadConfig } from '../../core/config.js';
import { openDatabase, type Notifications, type Database } from '../../core/db/index.js';
import type { File, FileStatus } from '../../core/fileRecord.js';
import { FileQueue } from '../../core/queue/index.js';
import type { BlobStore } from '../../core/storage/index.js';
import { runStore } from './stores.js';
import { LocalDiskStore } from '../../core/storage/index.js';
import { createLogger, type Logger } from '../../core/telemetry/logger.js';
import { createMetrics, type Metrics } from '../../core/telemetry/metrics.js';
import { VERSION } from '../../core/runtime.js';
import { PROCESSORS, type Processor, type ProcessorRegistry } from '../../worker/processors/index.js';
import { otherProcessor } from '../../worker/processors/other.js';
import type { ParserProcesses } from '../../worker/parsers.js';
import { composeWorker } from '../../worker/compose.js';
import type { WorkerDeps } from '../../worker/worker.js';
import { TEST_ENV } from './env.js';

export interface ServiceOptions {
  /** Settings as the environment would give them (e.g. `{ API_TOKENS: '...' }`), over the defaults. */
  env?: Record<string, string>;
  /** Start a worker in this process (default true). */
  worker?: boolean;
  processors?: Partial<ProcessorRegistry>;
  jobRetries?: number;
  /** JOB_TIMEOUT_MS of the worker and of the jobs the API enqueues (default 30 s). */
  jobTimeoutMs?: number;
  /** IMAGE_MAX_PIXELS (default 50 megapixels). */
  maxImagePixels?: number;
  /** PDF_MAX_DECODED_BYTES (default 64 MiB). */
  pdfMaxDecodedBytes?: number;
  /** MAX_RESULT_BYTES (default 64 KiB). */
  maxResultBytes?: number;
  /** The worker's parser processes (default: one per concurrent job). */
  parsers?: ParserProcesses;
  /** Replace the database (e.g. one that cannot connect). */
  db?: Database;
  maxAttempts?: number;
  /** Point the API's queue elsewhere (e.g. at a Redis that does not answer). */
  redisUrl?: string;
  /** Tracer for the server, producer and consumer spans (default: the global no-op one). */
  tracer?: Tracer;
  /** Logger of the API and the worker (default: silent). */
  logger?: Logger;
  /** The rate limiter's Redis (default: the test Redis, when a rate is set). */
  rateLimitRedis?: SharedRedis;
  /** Blob directory (default: the run's). */
  storageDir?: string;
  /** The API's blob store (default: the run's, see stores.ts; or a LocalDiskStore on storageDir), e.g. one made slow. */
  storage?: BlobStore;
  /** How often API_TOKENS_FILE is re-read. */
  tokenReloadMs?: number;
}

export interface TestService {
  url: string;
  db: Database;
  queue: FileQueue;
  storage: BlobStore;
  metrics: Metrics;
  workerMetrics: Metrics;
  logger: Logger;
  queueName: string;
  /** The API's HTTP server (e.g. to watch its connections). */
  server: Server;
  /** GET /files/{id}/?wait=N's waiters and their LISTEN connection; none with MAX_WAITERS=0. */
  waiters?: Waiters;
  notifications?: Notifications;
  close(): Promise<void>;
}

/**
 * The test Redis for what talks to it outside the queue (rate limits, the reconciler's lock), in a namespace of the
 * service's queue: each service of a run is a deployment of its own, with its own leader.
 */
export const sharedRedisFor = (queueName: string): SharedRedis =>
  SharedRedis.connect({ url: TEST_ENV.redisUrl, prefix: `${TEST_ENV.queuePrefix}:${queueName}` });

/** Silent unless TEST_LOG_LEVEL says otherwise (captureLogs in logs.ts keeps what is logged). */
export const testLogger = (): Logger => createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', name: 'test' });

export async function startService(options: ServiceOptions = {}): Promise<TestService> {
  const logger = options.logger ?? testLogger();
  const queueName = `files-${randomBytes(4).toString('hex')}`;
  const db = options.db ?? openDatabase({ url: TEST_ENV.databaseUrl, poolMax: 5 });
  const queue = new FileQueue({
    ...queueOptionsFor(queueName, options),
    role: 'producer',
    tracer: options.tracer,
    ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}),
  });
  if (!options.redisUrl) await queue.ready();
  const storage = await apiStore(options);
  const config = loadConfig('api', {
    DATABASE_URL: TEST_ENV.databaseUrl,
    REDIS_URL: options.redisUrl ?? TEST_ENV.redisUrl,
    MAX_UPLOAD_BYTES: '10MiB',
    QUEUE_PREFIX: TEST_ENV.queuePrefix,
    ...options.env,
  });
  // Rate-limit buckets of this service's own, beside its queue.
  const ownRedis = config.rateLimitPerSecond > 0 && !options.rateLimitRedis ? sharedRedisFor(queueName) : undefined;
  if (ownRedis) await ownRedis.ready();
  const api = composeApi({
    config,
    logger,
    db,
    queue,
    storage,
    version: VERSION,
    tracer: options.tracer,
    // One process: its uploads' locks may live in memory (RedisLocker has its own suite).
    tusLocker: new MemoryLocker(),
    rateLimitRedis: options.rateLimitRedis ?? ownRedis,
    tokenReloadMs: options.tokenReloadMs,
    backlogRefreshMs: 100,
  });
  await api.start();
  const { server, metrics, waiters, notifications } = api;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const worker = options.worker === false ? undefined : await startWorker(queueName, options);

  return {
    url,
    db,
    queue,
    storage,
    metrics,
    workerMetrics: worker?.metrics ?? createMetrics(),
    logger,
    queueName,
    server,
    waiters,
    notifications,
    async close() {
      await api.stop(0);
      ownRedis?.close();
      await worker?.close();
      await queue.close(1_000).catch(() => undefined);
      await db.close();
    },
  };
}

async function apiStore(options: Pick<ServiceOptions, 'storage' | 'storageDir'>): Promise<BlobStore> {
  if (!options.storage && !options.storageDir) return runStore();
  const storage = options.storage ?? new LocalDiskStore(options.storageDir!);
  if (storage instanceof LocalDiskStore) await storage.init();
  return storage;
}

export interface TestWorker {
  metrics: Metrics;
  close(): Promise<void>;
}

const DEFAULT_JOB_TIMEOUT_MS = 30_000;

const queueOptionsFor = (name: string, options: Pick<ServiceOptions, 'jobRetries' | 'jobTimeoutMs'>) => ({
  redisUrl: TEST_ENV.redisUrl,
  prefix: TEST_ENV.queuePrefix,
  name,
  retries: options.jobRetries ?? 2,
  backoffMs: 50,
  stallIntervalMs: 1_000,
  jobTimeoutMs: options.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS,
});

/** A real worker (own database pool and Redis connections) consuming the named queue. */
export async function startWorker(
  queueName: string,
  options: Pick<
    ServiceOptions,
    | 'processors'
    | 'jobRetries'
    | 'env'
    | 'db'
    | 'maxAttempts'
    | 'jobTimeoutMs'
    | 'maxImagePixels'
    | 'pdfMaxDecodedBytes'
    | 'maxResultBytes'
    | 'parsers'
    | 'tracer'
    | 'logger'
    | 'storage'
  > &
    Pick<WorkerDeps, 'onBusyChange'> = {},
): Promise<TestWorker> {
  const consumer = new FileQueue({ ...queueOptionsFor(queueName, options), role: 'consumer', tracer: options.tracer });
  await consumer.ready();
  const db = options.db ?? openDatabase({ url: TEST_ENV.databaseUrl, poolMax: 5 });
  const storage = options.storage ?? (await runStore());
  const config = loadConfig('worker', {
    // The service's settings reach its worker too (scanning, say); those below are the worker's own in tests.
    ...options.env,
    DATABASE_URL: TEST_ENV.databaseUrl,
    REDIS_URL: TEST_ENV.redisUrl,
    QUEUE_PREFIX: TEST_ENV.queuePrefix,
    QUEUE_NAME: queueName,
    WORKER_CONCURRENCY: '4',
    MAX_ATTEMPTS: String(options.maxAttempts ?? 5),
    JOB_TIMEOUT_MS: String(options.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS),
    IMAGE_MAX_PIXELS: String(options.maxImagePixels ?? 50_000_000),
    PDF_MAX_DECODED_BYTES: String(options.pdfMaxDecodedBytes ?? 64 * 1024 * 1024),
    MAX_RESULT_BYTES: String(options.maxResultBytes ?? 64 * 1024),
    PARSER_MAX_RSS_BYTES: '256MiB',
  });
  const composed = composeWorker({
    config,
    logger: options.logger ?? testLogger(),
    db,
    queue: consumer,
    storage,
    version: VERSION,
    tracer: options.tracer,
    processors: { ...PROCESSORS, ...options.processors },
    parsers: options.parsers,
    onBusyChange: options.onBusyChange,
  });
  // Jobs only: the tests that need the reconciler or the dispatcher run theirs.
  await composed.start(['jobs']);
  return {
    metrics: composed.metrics,
    async close() {
      await composed.stop(5_000);
      if (!options.db) await db.close();
    },
  };
}

/** A processor that fails once per file with a transient error (ECONNRESET), then works: one retry per file. */
export function flakyOnce(): Processor {
  const failed = new Set<string>();
  return {
    async process(input) {
      if (!failed.has(input.file.id)) {
        failed.add(input.file.id);
        throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
      }
      return otherProcessor.process(input);
    },
  };
}

export interface UploadPart {
  name?: string;
  content: Buffer | string;
  type?: string;
  field?: string;
}

/** POSTs a multipart form with the given file parts (and text fields). */
export async function upload(
  url: string,
  parts: UploadPart | UploadPart[],
  init: { fields?: Record<string, string>; headers?: Record<string, string>; path?: string } = {},
): Promise<Response> {
  const form = new FormData();
  for (const [key, value] of Object.entries(init.fields ?? {})) form.append(key, value);
  for (const part of Array.isArray(parts) ? parts : [parts]) {
    const blob = new Blob([typeof part.content === 'string' ? Buffer.from(part.content) : part.content], {
      type: part.type ?? 'application/octet-stream',
    });
    form.append(part.field ?? 'file', blob, part.name ?? 'upload.bin');
  }
  return fetch(`${url}${init.path ?? '/upload/'}`, { method: 'POST', body: form, headers: init.headers ?? {} });
}

/** Uploads one file and returns its record, failing the test unless the answer is 201. */
export async function uploadFile(url: string, part: UploadPart): Promise<File> {
  const response = await upload(url, part);
  if (response.status !== 201) throw new Error(`upload answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as File;
}

/** Polls the file until its status is one of `statuses`. */
export async function waitForStatus(
  url: string,
  id: string,
  statuses: FileStatus[] = ['processed', 'failed'],
  timeoutMs = 10_000,
): Promise<File> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await fetch(`${url}/files/${id}/`);
    const file = (await response.json()) as File;
    if (statuses.includes(file.status)) return file;
    if (Date.now() > deadline) throw new Error(`file ${id} is still ${file.status} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
