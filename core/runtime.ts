// What both processes do at start and stop: start tracing, read the config, connect to PostgreSQL, Redis and the
// blob store (or stop with one sentence saying which and what to do), and shut down cleanly on SIGTERM.
import type { Server } from 'node:http';
import { readFileSync } from 'node:fs';
import type { ReadinessCheck } from './admin.js';
import { TimeoutError, withTimeout } from './async.js';
import { addressOf, ConfigError, loadConfig, type Config, type Role } from './config.js';
import { databaseErrorCode, isMissingDatabase, openDatabase, type Database } from './db/index.js';
import { FileQueue } from './queue/index.js';
import { LocalDiskStore, S3BlobStore, type BlobStore } from './storage/index.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import { startTracing, type Tracing } from './telemetry/tracing.js';

export interface Runtime {
  config: Config;
  logger: Logger;
  db: Database;
  queue: FileQueue;
  storage: BlobStore;
  version: string;
  /** Shut it down last, after everything that may still end a span. */
  tracing: Tracing;
}

/** What a process is composed of (api/compose.ts, worker/compose.ts): the runtime less its tracing, which main owns. */
export type ProcessParts = Omit<Runtime, 'tracing'>;

/** What /readyz checks in every process; the API adds its blob store. */
export const dependencyChecks = ({ db, queue }: Pick<Runtime, 'db' | 'queue'>): ReadinessCheck[] => [
  { name: 'postgres', check: () => db.ping() },
  { name: 'redis', check: () => queue.ping() },
];

/** A start-up failure: its message is the one sentence the operator reads. */
export class StartupError extends Error {
  override name = 'StartupError';
}

const CONNECT_TIMEOUT_MS = 5_000;

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export async function startRuntime(role: Exclude<Role, 'migrate'>): Promise<Runtime> {
  const name = `file-processor-${role}`;
  // First, so that every span of this process is recorded (a no-op unless OTEL_* variables ask for it).
  const tracing = await startTracing({ name, version: VERSION });
  const config = loadConfig(role);
  const logger = createLogger({ level: config.logLevel, name });
  const db = openDatabase({
    url: config.databaseUrl,
    poolMax: config.databasePoolMax,
    insertBatchMax: config.databaseInsertBatchMax,
  });
  await checkDatabase(db, config.databaseUrl);

  const queue = new FileQueue({
    redisUrl: config.redisUrl,
    prefix: config.queuePrefix,
    routes: config.queueRoutes,
    role: role === 'worker' ? 'consumer' : 'producer',
    consumes: role === 'worker' ? config.workerQueues : undefined,
    retries: config.jobRetries,
    backoffMs: config.jobBackoffMs,
    stallIntervalMs: config.queueStallIntervalMs,
    jobTimeoutMs: config.jobTimeoutMs,
  });
  try {
    await withTimeout(queue.ready(), CONNECT_TIMEOUT_MS, 'Connecting to Redis');
  } catch (err) {
    await db.close();
    await queue.close(0).catch(() => undefined);
    throw new StartupError(
      `Redis at ${addressOf(config.redisUrl)} does not answer (${reason(err)}): start it, or set REDIS_URL.`,
    );
  }

  let storage: BlobStore;
  try {
    storage = await openStorage(config);
  } catch (err) {
    await db.close();
    await queue.close(0).catch(() => undefined);
    throw err;
  }
  return { config, logger, db, queue, storage, version: VERSION, tracing };
}

async function openStorage(config: Config): Promise<BlobStore> {
  if (config.blobStore === 's3') return openBucket(config);
  const storage = new LocalDiskStore(config.storageDir);
  try {
    // A hung mount (or a path such as /proc, where Node's recursive mkdir never returns) must not hang start-up.
    await withTimeout(
      storage.init().then(() => storage.ping()),
      CONNECT_TIMEOUT_MS,
      'Preparing STORAGE_DIR',
    );
  } catch (err) {
    throw new StartupError(
      `STORAGE_DIR ${config.storageDir} is not writable (${reason(err)}): create it with write access, or set STORAGE_DIR.`,
    );
  }
  return storage;
}

async function openBucket(config: Config): Promise<S3BlobStore> {
  const bucket = config.s3Bucket!;
  const storage = new S3BlobStore({
    bucket,
    prefix: config.s3Prefix,
    endpoint: config.s3Endpoint,
    region: config.s3Region,
    forcePathStyle: config.s3ForcePathStyle,
  });
  const where = config.s3Endpoint ?? `AWS S3 (${config.s3Region})`;
  try {
    await withTimeout(storage.ping(), CONNECT_TIMEOUT_MS, 'Reaching the bucket');
    return storage;
  } catch (err) {
    storage.close();
    const { name, $metadata } = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    const status = $metadata?.httpStatusCode;
    if (status === 404) {
      throw new StartupError(`S3_BUCKET ${bucket} does not exist at ${where}: create it, or set S3_BUCKET.`);
    }
    if (status === 403 || status === 401) {
      throw new StartupError(
        `${where} refused the credentials for bucket ${bucket} (${status}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give the pod an identity with access to it.`,
      );
    }
    if (name === 'CredentialsProviderError') {
      throw new StartupError(
        `No AWS credentials were found for bucket ${bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give the pod an identity (IRSA, workload identity).`,
      );
    }
    throw new StartupError(
      `The S3 endpoint ${where} does not answer for bucket ${bucket} (${status ?? reason(err)}): start it, or set S3_ENDPOINT.`,
    );
  }
}

async function checkDatabase(db: Database, url: string): Promise<void> {
  try {
    await withTimeout(db.ping(), CONNECT_TIMEOUT_MS, 'Connecting to PostgreSQL');
  } catch (err) {
    await db.close();
    if (isMissingDatabase(err)) {
      throw new StartupError(
        `The database in DATABASE_URL does not exist at ${addressOf(url)}: run \`npm run migrate\`, which creates it.`,
      );
    }
    throw new StartupError(
      `PostgreSQL at ${addressOf(url)} does not answer (${databaseErrorCode(err) ?? reason(err)}): start it, or set DATABASE_URL.`,
    );
  }
  if (!(await db.isMigrated())) {
    await db.close();
    throw new StartupError(`The database at ${addressOf(url)} has pending migrations: run \`npm run migrate\`.`);
  }
}

function reason(err: unknown): string {
  if (err instanceof TimeoutError) return `no answer within ${CONNECT_TIMEOUT_MS / 1000} s`;
  const error = err as { code?: string; message?: string };
  return error.code ?? error.message ?? String(err);
}

/** Runs `main`; a ConfigError or StartupError prints its one sentence and exits 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError || err instanceof StartupError) {
      process.stderr.write(`${err.message}\n`);
    } else {
      process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exit(1);
  });
}

/**
 * On SIGTERM or SIGINT: run `stop` (which must finish in-flight work), then exit 0; exit 1 if it
 * throws or outlasts `graceMs`. A second signal exits at once.
 */
export function stopOnSignals(logger: Logger, graceMs: number, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, grace_ms: graceMs }, 'shutting down');
    withTimeout(stop(), graceMs + 1_000, 'Shutting down').then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown did not finish cleanly');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Listens and resolves once the port is bound; rejects with a sentence naming the variable. */
export function listen(server: Server, port: number, host: string, variable: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new StartupError(
          `Cannot listen on ${host}:${port} (${err.code ?? err.message}): free the port, or set ${variable}.`,
        ),
      );
    });
    server.listen(port, host, () => resolve());
  });
}

/** Stops accepting connections and resolves when in-flight requests are done (or after `graceMs`). */
export function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
