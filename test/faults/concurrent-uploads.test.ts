import { expect } from 'chai';
import type { File } from '../../core/fileRecord.js';
import { logFileVersions } from '../support/rowVersions.js';
import { statusCounts, usePrivateStack, waitUntilSettled } from '../support/stack.js';

describe('fault: 1,000 concurrent uploads while workers are killed and restarted', function () {
  this.timeout(300_000);
  const servers = usePrivateStack({ WORKER_CONCURRENCY: '8', DATABASE_POOL_MAX: '20' }, 2);

  it('processes exactly the files it answered 201 for, once each, with clients that retry as the contract says', async () => {
    const versions = await logFileVersions((text, values) => servers.stack.sql(text, values));
    const total = 1_000;
    let answered = 0;
    const retriedFor: string[] = [];
    const answeredAtKills: number[] = [];
    const uploads = Array.from({ length: total }, async (_, n) => {
      const form = new FormData();
      form.append('file', new Blob([`concurrent upload ${n}\n`.repeat(20)]), `c-${n}.txt`);
      // A well-behaved client: one Idempotency-Key per file, and a retry after Retry-After when the service
      // says it is out of capacity (503, say the database pool ran dry) or the key's first request still runs.
      const headers = { 'Idempotency-Key': `concurrent-${n}` };
      for (;;) {
        // fetch's default dispatcher opens as many connections as there are requests: all 1,000 at once.
        const response = await fetch(`${servers.stack.url}/upload/`, { method: 'POST', body: form, headers });
        const retryAfter = Number(response.headers.get('retry-after'));
        if ((response.status === 503 || response.status === 409) && retryAfter > 0 && retriedFor.length < total) {
          retriedFor.push(`${response.status} ${((await response.json()) as { code: string }).code}`);
          await new Promise((resolve) => setTimeout(resolve, retryAfter * 1_000));
          continue;
        }
        answered++;
        return { status: response.status, file: response.status === 201 ? ((await response.json()) as File) : null };
      }
    });
    const chaos = (async () => {
      for (let round = 0; round < 3; round++) {
        await new Promise((resolve) => setTimeout(resolve, 700));
        const victim = servers.stack.workers.find(
          (worker) => worker.child.exitCode === null && worker.child.signalCode === null,
        )!;
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
    // Counted in the database's own log of writes: one row inserted per file answered 201 and none besides (a
    // retried request that inserted a row of its own would show, even had the row gone since), and one write of
    // each as processed, however many workers started it.
    const writes = await versions.writes();
    const times = (op: string, status?: string) => {
      const counts = new Map<string, number>();
      for (const write of writes)
        if (write.op === op && (!status || write.status === status))
          counts.set(write.id, (counts.get(write.id) ?? 0) + 1);
      return counts;
    };
    const acceptedIds = new Set(accepted);
    const expectOnceEach = (counts: Map<string, number>, what: string) => {
      const notAnswered = [...counts.keys()].filter((id) => !acceptedIds.has(id));
      const notOnce = [...counts].filter(([, count]) => count !== 1).map(([id, count]) => `${id} ×${count}`);
      expect(
        { files: counts.size, notAnswered: notAnswered.length, notOnce: notOnce.length },
        `${what}; not answered 201: ${notAnswered.slice(0, 3).join(', ')}; not once: ${notOnce.slice(0, 3).join(', ')}`,
      ).to.deep.equal({ files: total, notAnswered: 0, notOnce: 0 });
    };
    expectOnceEach(times('INSERT'), 'rows inserted');
    expectOnceEach(times('UPDATE', 'processed'), 'results recorded');
    // Retries are rare on an idle machine; the answers that caused them are worth seeing when they happen.
    if (retriedFor.length > 0)
      console.log(`      (${retriedFor.length} retries, for: ${[...new Set(retriedFor)].join(', ')})`);
    expect(await servers.stack.leftovers()).to.deep.equal({ orphanBlobs: 0, temporaryFiles: 0 });
  });
});
