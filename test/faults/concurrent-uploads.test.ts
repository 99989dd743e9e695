import { expect } from 'chai';
import type { File } from '../../core/fileRecord.js';
import { statusCounts, usePrivateStack, waitUntilSettled } from '../support/stack.js';

describe('fault: 1,000 concurrent uploads while workers are killed and restarted', function () {
  this.timeout(300_000);
  const servers = usePrivateStack({ WORKER_CONCURRENCY: '8', DATABASE_POOL_MAX: '20' }, 2);

  it('processes exactly the files it answered 201 for', async () => {
    const total = 1_000;
    let answered = 0;
    const answeredAtKills: number[] = [];
    const uploads = Array.from({ length: total }, async (_, n) => {
      const form = new FormData();
      form.append('file', new Blob([`concurrent upload ${n}\n`.repeat(20)]), `c-${n}.txt`);
      // fetch's default dispatcher opens as many connections as there are requests: all 1,000 at once.
      const response = await fetch(`${servers.stack.url}/upload/`, { method: 'POST', body: form });
      answered++;
      return { status: response.status, file: response.status === 201 ? ((await response.json()) as File) : null };
    });
    const chaos = (async () => {
      for (let round = 0; round < 3; round++) {
        await new Promise((resolve) => setTimeout(resolve, 700));
        const victim = servers.stack.workers.find((worker) => worker.child.exitCode === null && worker.child.signalCode === null)!;
        answeredAtKills.push(answered);
        victim.child.kill('SIGKILL');
        await victim.exited;
        await servers.stack.startWorker();
      }
    })();
    const results = await Promise.all(uploads);
    await chaos;

    expect(answeredAtKills[0], 'a worker was killed while uploads were still arriving').to.be.below(total);
    const accepted = results.filter((result) => result.file).map((result) => result.file!.id);
    const refused = results.filter((result) => !result.file).map((result) => result.status);
    expect(refused, 'uploads not answered 201').to.deep.equal([]);
    expect(new Set(accepted).size).to.equal(total);
    expect(await waitUntilSettled(servers.stack, accepted, 120_000)).to.deep.equal([]);
    expect(await statusCounts(servers.stack)).to.deep.equal({ processed: total });
    expect(await servers.stack.leftovers()).to.deep.equal({ orphanBlobs: 0, temporaryFiles: 0 });
  });
});
