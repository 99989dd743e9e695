import { expect } from 'chai';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { openDatabase } from '../core/db/index.js';
import { TEST_ENV } from './support/env.js';
import { expectProblem } from './support/problems.js';
import { startService, upload, waitForStatus, type TestService } from './support/service.js';
import type { File } from '../core/fileRecord.js';

// A port nothing listens on: connections are refused at once.
const DEAD = '127.0.0.1:9';

async function blobCount(): Promise<number> {
  let count = 0;
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) await walk(path.join(dir, entry.name));
      else count++;
    }
  };
  await walk(TEST_ENV.storageDir);
  return count;
}

describe('when a dependency is down', () => {
  describe('PostgreSQL', () => {
    let service: TestService;
    before(async () => {
      service = await startService({
        worker: false,
        db: openDatabase({ url: `postgres://postgres@${DEAD}/nothing`, poolMax: 2 }),
      });
    });
    after(() => service.close());

    it('answers uploads 503 service_unavailable with Retry-After, and keeps no bytes', async () => {
      const before = await blobCount();
      const response = await upload(service.url, { content: 'important bytes' });
      await expectProblem(response, 503, 'service_unavailable');
      expect(response.headers.get('retry-after')).to.equal('5');
      expect(await blobCount()).to.equal(before);
    });

    it('answers reads 503 too, not 500', async () => {
      await expectProblem(await fetch(`${service.url}/files/`), 503, 'service_unavailable');
      await expectProblem(
        await fetch(`${service.url}/files/01890000-0000-7000-8000-000000000000/`),
        503,
        'service_unavailable',
      );
    });
  });

  describe('Redis', () => {
    it('still answers uploads 201 at once; the file stays queued for the reconciler', async () => {
      const service = await startService({ worker: false, redisUrl: `redis://${DEAD}` });
      try {
        const started = Date.now();
        const response = await upload(service.url, { content: 'queued without a queue' });
        expect(response.status).to.equal(201);
        expect(Date.now() - started).to.be.below(1_500);
        const file = (await response.json()) as File;
        expect((await service.db.files.findById(file.id))!.status).to.equal('queued');
        // Once a queue answers again, re-enqueueing the row (as the reconciler will) gets it done.
        const healthy = await startService();
        try {
          expect((await fetch(`${healthy.url}/files/${file.id}/reprocess`, { method: 'POST' })).status).to.equal(202);
          expect((await waitForStatus(healthy.url, file.id)).status).to.equal('processed');
        } finally {
          await healthy.close();
        }
      } finally {
        await service.close();
      }
    });
  });
});
