// Each test run gets its own database, queue prefix and blob directory on the shared servers,
// and removes them when it ends. Nothing here stops or flushes a shared server.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const run = `${process.pid}_${randomBytes(3).toString('hex')}`;
const server = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
server.pathname = `/fp_test_${run}`;

export const TEST_ENV = {
  databaseUrl: server.toString(),
  redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  queuePrefix: `fp-test-${run}`,
  storageDir: mkdtempSync(path.join(os.tmpdir(), 'fp-test-blobs-')),
};

/** Environment for a child process (the real API or worker) bound to this run's database and queue. */
export function childEnv(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    NODE_V8_COVERAGE: process.env.NODE_V8_COVERAGE,
    DATABASE_URL: TEST_ENV.databaseUrl,
    REDIS_URL: TEST_ENV.redisUrl,
    QUEUE_PREFIX: TEST_ENV.queuePrefix,
    STORAGE_DIR: TEST_ENV.storageDir,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ...overrides,
  };
}
