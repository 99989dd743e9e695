// Mocha root hooks: create and migrate this run's database first, drop it and remove this run's
// Redis keys and blobs last.
import { Redis } from 'ioredis';
import { rmSync } from 'node:fs';
import { dropDatabase, ensureDatabaseExists, openDatabase } from '../core/db/index.js';
import { TEST_ENV } from './support/env.js';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60_000);
    await ensureDatabaseExists(TEST_ENV.databaseUrl);
    const db = openDatabase({ url: TEST_ENV.databaseUrl, poolMax: 2 });
    await db.migrate();
    await db.close();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await dropDatabase(TEST_ENV.databaseUrl);
    await deleteKeys(`${TEST_ENV.queuePrefix}*`);
    rmSync(TEST_ENV.storageDir, { recursive: true, force: true });
  },
};

/** Removes this run's keys only (SCAN, never FLUSHDB: the server is shared). */
export async function deleteKeys(pattern: string): Promise<void> {
  const redis = new Redis(TEST_ENV.redisUrl, { lazyConnect: true });
  await redis.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
