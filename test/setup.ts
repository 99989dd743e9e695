// Mocha root hooks: create and migrate this run's database first, drop it and remove this run's
// Redis keys and blobs (and the S3 gateway, if a suite started it) last.
import { rmSync } from 'node:fs';
import { dropDatabase, ensureDatabaseExists, openDatabase } from '../core/db/index.js';
import { TEST_ENV } from './support/env.js';
import { deleteKeys } from './support/redisKeys.js';
import { stopSharedGateway } from './support/rgw.js';

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
    await deleteKeys(TEST_ENV.redisUrl, `${TEST_ENV.queuePrefix}*`);
    rmSync(TEST_ENV.storageDir, { recursive: true, force: true });
    await stopSharedGateway();
  },
};
