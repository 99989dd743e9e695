// Removing one run's keys from a shared Redis. Importing this has no side effects (no connection, no run
// settings), so the image test can use it without test/setup.ts or support/env.ts.
import { Redis } from 'ioredis';

/** Removes the keys matching pattern at redisUrl only (SCAN, never FLUSHDB: the server is shared). */
export async function deleteKeys(redisUrl: string, pattern: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true });
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
