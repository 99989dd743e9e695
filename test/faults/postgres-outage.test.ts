import { expect } from 'chai';
import type { File } from '../../core/fileRecord.js';
import { killStartedProcesses } from '../support/processes.js';
import { expectProblem } from '../support/problems.js';
import { startPostgres, startRedis, type PrivateServer } from '../support/servers.js';
import { upload, uploadFile } from '../support/service.js';
import { startStack, statusCounts, waitUntilSettled, type Stack } from '../support/stack.js';

describe('fault: PostgreSQL stops', function () {
  this.timeout(120_000);
  let postgres: PrivateServer;
  let redis: PrivateServer;
  let stack: Stack;
  before(async () => {
    [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
    stack = await startStack({ databaseUrl: postgres.url, redisUrl: redis.url });
    await stack.startWorker();
  });
  after(async () => {
    killStartedProcesses();
    await stack?.stop();
    await Promise.all([postgres?.destroy(), redis?.destroy()]);
  });

  it('answers 503 with Retry-After and keeps nothing while it is down, and recovers when it returns', async () => {
    const before = await uploadFile(stack.url, { content: 'before the outage' });
    expect(await waitUntilSettled(stack, [before.id])).to.deep.equal([]);

    // Files still queued or in processing when the database goes: their jobs fail, and are retried or reconciled.
    const inFlight = await Promise.all(Array.from({ length: 5 }, (_, n) => uploadFile(stack.url, { content: `in flight ${n}` })));
    await postgres.stop();
    const refused = await Promise.all(Array.from({ length: 10 }, (_, n) => upload(stack.url, { content: `during the outage ${n}` })));
    for (const response of refused) {
      await expectProblem(response, 503, 'service_unavailable');
      expect(response.headers.get('retry-after')).to.equal('5');
    }
    await expectProblem(await fetch(`${stack.url}/files/`), 503, 'service_unavailable');
    expect((await fetch(`${stack.adminUrl}/readyz`)).status).to.equal(503);

    await postgres.start();
    const accepted: string[] = [];
    const deadline = Date.now() + 30_000;
    while (accepted.length < 10 && Date.now() < deadline) {
      const response = await upload(stack.url, { content: `after the outage ${accepted.length}` });
      if (response.status === 201) accepted.push(((await response.json()) as File).id);
    }
    expect(accepted).to.have.length(10);
    expect(await waitUntilSettled(stack, [...accepted, ...inFlight.map((file) => file.id)])).to.deep.equal([]);
    expect(await statusCounts(stack)).to.deep.equal({ processed: 16 });
    expect(await stack.leftovers()).to.deep.equal({ orphanBlobs: 0, temporaryFiles: 0 });
    expect((await fetch(`${stack.adminUrl}/readyz`)).status).to.equal(200);
  });
});
