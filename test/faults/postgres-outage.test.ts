import { expect } from 'chai';
import type { File } from '../../core/fileRecord.js';
import { expectProblem } from '../support/problems.js';
import { upload, uploadFile } from '../support/service.js';
import { statusCounts, usePrivateStack, waitUntilSettled } from '../support/stack.js';

describe('fault: PostgreSQL stops', function () {
  this.timeout(120_000);
  const servers = usePrivateStack({}, 1);

  it('answers 503 with Retry-After and keeps nothing while it is down, and recovers when it returns', async () => {
    const before = await uploadFile(servers.stack.url, { content: 'before the outage' });
    expect(await waitUntilSettled(servers.stack, [before.id])).to.deep.equal([]);

    // Files still queued or in processing when the database goes: their jobs fail, and are retried or reconciled.
    const inFlight = await Promise.all(
      Array.from({ length: 5 }, (_, n) => uploadFile(servers.stack.url, { content: `in flight ${n}` })),
    );
    await servers.postgres.stop();
    const refused = await Promise.all(
      Array.from({ length: 10 }, (_, n) => upload(servers.stack.url, { content: `during the outage ${n}` })),
    );
    for (const response of refused) {
      await expectProblem(response, 503, 'service_unavailable');
      expect(response.headers.get('retry-after')).to.equal('5');
    }
    await expectProblem(await fetch(`${servers.stack.url}/files/`), 503, 'service_unavailable');
    expect((await fetch(`${servers.stack.adminUrl}/readyz`)).status).to.equal(503);

    await servers.postgres.start();
    const accepted: string[] = [];
    const deadline = Date.now() + 30_000;
    while (accepted.length < 10 && Date.now() < deadline) {
      const response = await upload(servers.stack.url, { content: `after the outage ${accepted.length}` });
      if (response.status === 201) accepted.push(((await response.json()) as File).id);
    }
    expect(accepted).to.have.length(10);
    expect(await waitUntilSettled(servers.stack, [...accepted, ...inFlight.map((file) => file.id)])).to.deep.equal([]);
    expect(await statusCounts(servers.stack)).to.deep.equal({ processed: 16 });
    expect(await servers.stack.leftovers()).to.deep.equal({ orphanBlobs: 0, temporaryFiles: 0 });
    expect((await fetch(`${servers.stack.adminUrl}/readyz`)).status).to.equal(200);
  });
});
