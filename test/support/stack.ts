// The whole service as real processes (migration, API, workers) on servers of the test's own.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { eventually, type NotYet } from './eventually.js';
import {
  freePort,
  killStartedProcesses,
  READY_TIMEOUT_MS,
  runProcess,
  startProcess,
  startWorkerProcess,
  waitUntilReady,
  type Started,
} from './processes.js';
import { startPostgres, startRedis, type PrivateServer } from './servers.js';

export interface Stack {
  url: string;
  adminUrl: string;
  databaseUrl: string;
  storageDir: string;
  api: Started;
  workers: Started[];
  /** The admin servers' base URLs (/metrics, /readyz) of `workers`, in the same order. */
  workerAdmins: string[];
  startApi(): Promise<Started>;
  startWorker(): Promise<Started>;
  sql<T = Record<string, unknown>>(text: string, values?: unknown[]): Promise<T[]>;
  /** Blobs without a row and temporary files: what a failure may not leave behind. */
  leftovers(): Promise<{ orphanBlobs: number; temporaryFiles: number }>;
  stop(): Promise<void>;
}

/** Settings that make recovery quick enough to watch in a test. */
export const FAST_RECOVERY = {
  QUEUE_STALL_INTERVAL_MS: '1000',
  RECONCILE_INTERVAL_MS: '500',
  REQUEUE_AFTER_MS: '1500',
  JOB_BACKOFF_MS: '200',
  SHUTDOWN_TIMEOUT_MS: '10000',
};

export async function startStack(options: {
  databaseUrl: string;
  redisUrl: string;
  env?: Record<string, string>;
}): Promise<Stack> {
  const storageDir = mkdtempSync(path.join(os.tmpdir(), 'fp-stack-blobs-'));
  const [port, adminPort] = [await freePort(), await freePort()];
  const env: Record<string, string> = {
    DATABASE_URL: options.databaseUrl,
    REDIS_URL: options.redisUrl,
    QUEUE_PREFIX: `fault-${randomBytes(3).toString('hex')}`,
    STORAGE_DIR: storageDir,
    LOG_LEVEL: 'warn',
    ...FAST_RECOVERY,
    ...options.env,
  };
  const migrated = await runProcess('dist/core/db/migrate.js', env);
  if (migrated.code !== 0) throw new Error(`migration failed: ${migrated.output}`);

  const url = `http://127.0.0.1:${port}`;
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 2 });
  pool.on('error', () => undefined);

  const stack: Stack = {
    url,
    adminUrl,
    databaseUrl: options.databaseUrl,
    storageDir,
    api: undefined as unknown as Started,
    workers: [],
    workerAdmins: [],
    async startApi() {
      stack.api = startProcess('dist/api/main.js', { ...env, PORT: String(port), ADMIN_PORT: String(adminPort) });
      await waitUntilReady(stack.api, `${adminUrl}/readyz`);
      return stack.api;
    },
    async startWorker() {
      const { worker, admin } = await startWorkerProcess(env);
      stack.workers.push(worker);
      stack.workerAdmins.push(admin);
      return worker;
    },
    async sql<T>(text: string, values: unknown[] = []) {
      return (await pool.query(text, values)).rows as T[];
    },
    async leftovers() {
      const ids = new Set((await stack.sql<{ id: string }>('SELECT id FROM files')).map((row) => row.id));
      let orphanBlobs = 0;
      for (const shard of await readdir(path.join(storageDir, 'blobs'))) {
        for (const name of await readdir(path.join(storageDir, 'blobs', shard)))
          if (!ids.has(name.split('.')[0]!)) orphanBlobs++;
      }
      return { orphanBlobs, temporaryFiles: (await readdir(path.join(storageDir, 'tmp'))).length };
    },
    async stop() {
      for (const child of [stack.api, ...stack.workers]) {
        if (child && child.child.exitCode === null && child.child.signalCode === null) {
          child.child.kill('SIGKILL');
          await child.exited;
        }
      }
      await pool.end();
      rmSync(storageDir, { recursive: true, force: true });
    },
  };
  await stack.startApi();
  return stack;
}

/** Counts of files by status. */
export async function statusCounts(stack: Stack): Promise<Record<string, number>> {
  const rows = await stack.sql<{ status: string; count: string }>('SELECT status, count(*) FROM files GROUP BY status');
  return Object.fromEntries(rows.map((row) => [row.status, Number(row.count)]));
}

/** Waits until every listed file is processed or failed; returns the ones that are not. */
export async function waitUntilSettled(stack: Stack, ids: string[], timeoutMs = 60_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await stack.sql<{ id: string }>(
      "SELECT id FROM files WHERE id = ANY($1::uuid[]) AND status IN ('processed', 'failed')",
      [ids],
    );
    const settled = new Set(rows.map((row) => row.id));
    const pending = ids.filter((id) => !settled.has(id));
    if (pending.length === 0 || Date.now() > deadline) return pending;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits for a condition on the database, polling often (fault tests race against processes). */
export function waitFor<T>(probe: () => Promise<T | NotYet>, what: string, timeoutMs = 30_000): Promise<T> {
  return eventually(() => probe().catch(() => undefined), what, timeoutMs, 10);
}

/**
 * Mocha hooks for a fault suite: private PostgreSQL and Redis, the API on them and `workers` workers;
 * everything is killed and removed after the suite. Returns the servers and the stack, set once `before` ran.
 */
export function usePrivateStack(
  env: Record<string, string> = {},
  workers = 0,
): { postgres: PrivateServer; redis: PrivateServer; stack: Stack } {
  const context = {} as { postgres: PrivateServer; redis: PrivateServer; stack: Stack };
  before(async function () {
    this.timeout(60_000 + (workers + 1) * READY_TIMEOUT_MS);
    [context.postgres, context.redis] = await Promise.all([startPostgres(), startRedis()]);
    context.stack = await startStack({ databaseUrl: context.postgres.url, redisUrl: context.redis.url, env });
    for (let n = 0; n < workers; n++) await context.stack.startWorker();
  });
  after(async function () {
    this.timeout(60_000);
    killStartedProcesses();
    await context.stack?.stop();
    await Promise.all([context.postgres?.destroy(), context.redis?.destroy()]);
  });
  return context;
}
