import { expect } from 'chai';
import { rmSync } from 'node:fs';
import type { File } from '../../core/fileRecord.js';
import { bigBinaryFile, uploadFromDisk } from '../support/fixtures.js';
import { logFileVersions } from '../support/rowVersions.js';
import { usePrivateStack, waitFor, waitUntilSettled } from '../support/stack.js';
import { uploadFile } from '../support/service.js';

describe('fault: a worker killed mid-job', function () {
  this.timeout(120_000);
  const servers = usePrivateStack({ MAX_UPLOAD_BYTES: '1GiB', WORKER_CONCURRENCY: '1' });

  it('is re-delivered to another worker; the file ends processed, its result recorded once', async () => {
    const versions = await logFileVersions((text, values) => servers.stack.sql(text, values));
    const big = await bigBinaryFile(400);
    const response = await uploadFromDisk(servers.stack.url, big);
    rmSync(big);
    expect(response.status).to.equal(201);
    const file = (await response.json()) as File;

    const doomed = await servers.stack.startWorker();
    await waitFor(
      async () =>
        (await servers.stack.sql("SELECT 1 FROM files WHERE id = $1 AND status = 'processing'", [file.id])).length,
      'the job to start',
    );
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    expect(
      (await servers.stack.sql<{ status: string }>('SELECT status FROM files WHERE id = $1', [file.id]))[0]!.status,
    ).to.equal('processing');

    await servers.stack.startWorker();
    expect(await waitUntilSettled(servers.stack, [file.id])).to.deep.equal([]);
    const [row] = await servers.stack.sql<{ status: string; attempts: number; result: { bytes_read: number } }>(
      'SELECT status, attempts, result FROM files WHERE id = $1',
      [file.id],
    );
    expect(row).to.deep.include({ status: 'processed', attempts: 2 });
    expect(row!.result.bytes_read).to.equal(400 * 1024 * 1024);
    // Every write of the row, in order: inserted, started by the killed worker, started again by the second (a
    // new attempt), and finished once. A second write of the finished row would be a second recording.
    const writes = (await versions.writes([file.id])).map(({ op, status, attempts }) => `${op} ${status} ${attempts}`);
    expect(writes).to.deep.equal([
      'INSERT queued 0',
      'UPDATE processing 1',
      'UPDATE processing 2',
      'UPDATE processed 2',
    ]);
    // Other files keep flowing through the new worker.
    const small = await uploadFile(servers.stack.url, { content: 'after the crash' });
    expect(await waitUntilSettled(servers.stack, [small.id])).to.deep.equal([]);
    expect(await servers.stack.leftovers()).to.deep.equal({ orphanBlobs: 0, temporaryFiles: 0 });
  });
});
