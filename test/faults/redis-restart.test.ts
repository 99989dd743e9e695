import { expect } from 'chai';
import type { File } from '../../core/fileRecord.js';
import { upload } from '../support/service.js';
import { statusCounts, usePrivateStack, waitUntilSettled } from '../support/stack.js';

describe('fault: Redis restarts (losing every job) during a stream of uploads', function () {
  this.timeout(180_000);
  const servers = usePrivateStack({ WORKER_CONCURRENCY: '4' }, 1);

  it('still answers 201, and every file answered 201 ends processed', async () => {
    const accepted: string[] = [];
    const statuses: number[] = [];
    let sent = 0;
    let redisDown = false;
    let acceptedWhileDown = 0;
    const total = 300;
    const client = async () => {
      while (sent < total) {
        const n = sent++;
        const response = await upload(servers.stack.url, {
          name: `stream-${n}.txt`,
          content: `file number ${n}\n`.repeat(50),
        });
        statuses.push(response.status);
        if (response.status === 201) accepted.push(((await response.json()) as File).id);
        if (response.status === 201 && redisDown) acceptedWhileDown++;
      }
    };
    const outage = (async () => {
      while (sent < total / 3) await new Promise((resolve) => setTimeout(resolve, 10));
      await servers.redis.stop();
      redisDown = true;
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      redisDown = false;
      await servers.redis.start();
    })();
    await Promise.all([client(), client(), client(), client(), outage]);

    expect(
      statuses.filter((status) => status !== 201),
      'uploads refused',
    ).to.deep.equal([]);
    expect(acceptedWhileDown, 'uploads accepted while Redis was down').to.be.greaterThan(10);
    expect(accepted).to.have.length(total);
    const pending = await waitUntilSettled(servers.stack, accepted, 90_000);
    expect(pending, 'files never processed').to.deep.equal([]);
    expect(await statusCounts(servers.stack)).to.deep.equal({ processed: total });
    expect(await servers.stack.leftovers()).to.deep.equal({ orphanBlobs: 0, temporaryFiles: 0 });
  });
});
