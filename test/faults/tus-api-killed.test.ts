import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import * as tus from 'tus-js-client';
import type { File } from '../../core/fileRecord.js';
import { sql } from '../support/db.js';
import { freePort, startProcess, startWorkerProcess, waitUntilReady, type Started } from '../support/processes.js';
import { waitForStatus } from '../support/service.js';
import { runStoreEnv } from '../support/stores.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('fault: the API process is SIGKILLed in the middle of a resumable upload', function () {
  this.timeout(120_000);
  const started: Started[] = [];
  // The survivors stop as pods do, letting go of their locks: the worker's reconciler lock is the whole run's.
  after(async () => {
    for (const process of started) process.child.kill('SIGTERM');
    const stopped = Promise.all(started.map((process) => process.exited));
    const late = setTimeout(() => started.forEach((process) => process.child.kill('SIGKILL')), 15_000);
    await stopped;
    clearTimeout(late);
  });

  async function startApi(env: Record<string, string>): Promise<string> {
    const [port, adminPort] = [await freePort(), await freePort()];
    const api = startProcess('dist/api/main.js', { ...env, PORT: String(port), ADMIN_PORT: String(adminPort) });
    started.push(api);
    await waitUntilReady(api, `http://127.0.0.1:${adminPort}/readyz`);
    return `http://127.0.0.1:${port}`;
  }

  it('is finished through another API process, from the offset that one reports, and makes one File', async () => {
    // The killed pod's lock on the upload expires after a second (TUS_LOCK_TTL_MS), as it would after 30 s.
    const env = { ...(await runStoreEnv()), MAX_UPLOAD_BYTES: '64MiB', TUS_LOCK_TTL_MS: '1000' };
    const [first, second] = [await startApi(env), await startApi(env)];
    const { worker } = await startWorkerProcess(env);
    started.push(worker);
    const doomed = started[0]!;

    const bytes = randomBytes(30 * 1024 * 1024);
    let url = '';
    const cut = await new Promise<Error>((resolve) => {
      const upload = new tus.Upload(bytes, {
        endpoint: `${first}/uploads/tus/`,
        chunkSize: 5 * 1024 * 1024,
        metadata: { filename: 'interrupted.bin' },
        retryDelays: [],
        onProgress: (sent) => {
          url = upload.url ?? url;
          // Killed while its request holds the upload's lock, part of a chunk written.
          if (sent > 12 * 1024 * 1024 && doomed.child.exitCode === null) doomed.child.kill('SIGKILL');
        },
        onSuccess: () => resolve(new Error('the upload finished before the process was killed')),
        onError: resolve,
      });
      upload.start();
    });
    expect(cut.message).to.not.contain('finished before');
    await doomed.exited;
    expect(url).to.match(/\/uploads\/tus\/[0-9a-f-]{36}$/);
    const id = url.split('/').pop()!;

    const resumed = url.replace(first, second);
    const offset = Number(
      (await fetch(resumed, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } })).headers.get('upload-offset'),
    );
    expect(offset).to.be.above(0).and.below(bytes.length);
    await new Promise<void>((resolve, reject) => {
      const upload = new tus.Upload(bytes, {
        uploadUrl: resumed,
        chunkSize: 5 * 1024 * 1024,
        retryDelays: [0, 500, 1000],
        onSuccess: () => resolve(),
        onError: reject,
      });
      upload.start();
    });
    const file: File = await waitForStatus(second, id, ['processed', 'failed'], 30_000);
    const made = await sql<{ count: string }>('SELECT count(*) FROM files WHERE sha256 = $1', [sha256(bytes)]);
    expect(Number(made[0]!.count), 'Files made of the upload').to.equal(1);
    expect(file).to.include({
      id,
      size: bytes.length,
      sha256: sha256(bytes),
      status: 'processed',
      name: 'interrupted.bin',
    });
  });
});
