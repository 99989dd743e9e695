import { expect } from 'chai';
import { rmSync } from 'node:fs';
import type { File } from '../../core/fileRecord.js';
import { bigBinaryFile, uploadFromDisk } from '../support/fixtures.js';
import { uploadFile } from '../support/service.js';
import { usePrivateStack, waitFor, waitUntilSettled } from '../support/stack.js';

const MAX_ATTEMPTS = 3;

describe('fault: a poison file that kills the worker every time', function () {
  this.timeout(180_000);
  // Two jobs at a time: an innocent file picked along with the poison dies with it at the first kill (the kill
  // comes the instant the poison starts), but is re-delivered to run alone, so no later kill charges it again.
  const servers = usePrivateStack({
    MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    MAX_UPLOAD_BYTES: '1GiB',
    WORKER_CONCURRENCY: '2',
  });

  it(`ends failed with too_many_attempts after ${MAX_ATTEMPTS} attempts, and other files are unaffected`, async () => {
    const big = await bigBinaryFile(300);
    const response = await uploadFromDisk(servers.stack.url, big);
    rmSync(big);
    const poison = (await response.json()) as File;
    const others = await Promise.all(
      Array.from({ length: 20 }, (_, n) => uploadFile(servers.stack.url, { content: `innocent ${n}` })),
    );

    // The "poison" is whatever kills the process: here, the test does, each time the file starts processing.
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const worker = await servers.stack.startWorker();
      await waitFor(
        async () =>
          (
            await servers.stack.sql("SELECT 1 FROM files WHERE id = $1 AND status = 'processing' AND attempts = $2", [
              poison.id,
              attempt,
            ])
          ).length,
        `attempt ${attempt}`,
      );
      worker.child.kill('SIGKILL');
      await worker.exited;
    }
    // The next delivery finds the attempts used up.
    await servers.stack.startWorker();
    expect(await waitUntilSettled(servers.stack, [poison.id, ...others.map((file) => file.id)])).to.deep.equal([]);
    const [row] = await servers.stack.sql<{ status: string; attempts: number; error: { code: string } }>(
      'SELECT status, attempts, error FROM files WHERE id = $1',
      [poison.id],
    );
    expect(row).to.deep.include({ status: 'failed', attempts: MAX_ATTEMPTS });
    expect(row!.error.code).to.equal('too_many_attempts');
    const harmed = await servers.stack.sql(
      "SELECT name, status, attempts, error FROM files WHERE id = ANY($1::uuid[]) AND status <> 'processed'",
      [others.map((file) => file.id)],
    );
    expect(harmed, 'innocent files not processed').to.deep.equal([]);
    expect(await servers.stack.leftovers()).to.deep.equal({ orphanBlobs: 0, temporaryFiles: 0 });
  });
});
