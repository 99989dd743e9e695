// The S3 endpoint goes away (radosgw stopped; the cluster keeps its objects) during an upload stream and
// during a job: nothing accepted is lost, nothing refused is kept, and both recover when it returns.
import { expect } from 'chai';
import { PassThrough, Readable } from 'node:stream';
import type { File } from '../../core/fileRecord.js';
import type { BlobStore, S3BlobStore } from '../../core/storage/index.js';
import { archiveProcessor } from '../../worker/processors/archive.js';
import type { Processor } from '../../worker/processors/index.js';
import { expectProblem } from '../support/problems.js';
import { eventually } from '../support/eventually.js';
import { zip } from '../support/fixtures.js';
import { bucketContents, rowCount } from '../support/leftovers.js';
import { startGateway, s3StoreOn, type Gateway } from '../support/rgw.js';
import { startService, startWorker, upload, uploadFile, waitForStatus, type TestService } from '../support/service.js';

describe('fault: the S3 endpoint stops', function () {
  this.timeout(120_000);
  let gateway: Gateway;
  let store: S3BlobStore;
  let service: TestService;
  before(async function () {
    gateway = await startGateway(this);
    store = await s3StoreOn(gateway);
    service = await startService({ storage: store, env: { MAX_UPLOAD_BYTES: '64MiB' }, jobRetries: 5 });
  });
  after(async () => {
    await service?.close();
    store?.close();
    await gateway?.destroy();
  });

  it('answers 503 storage_unavailable with Retry-After while it is down, keeps nothing, and accepts again after', async () => {
    const rows = await rowCount();
    await gateway.stopGateway();
    try {
      const refused = await upload(service.url, { name: 'while-down.txt', content: 'no bucket to put me in' });
      expect(refused.headers.get('retry-after')).to.equal('5');
      await expectProblem(refused, 503, 'storage_unavailable');
      expect(await rowCount()).to.equal(rows);
    } finally {
      await gateway.startGateway();
    }
    const file = await uploadFile(service.url, { name: 'after.txt', content: 'the bucket is back' });
    expect((await waitForStatus(service.url, file.id, ['processed', 'failed'], 20_000)).status).to.equal('processed');
  });

  it('cuts an upload whose parts can no longer be written, with 503, and leaves no object behind', async () => {
    const rows = await rowCount();
    // A 40 MiB file sent slowly enough that the endpoint stops after its first parts went in.
    const before = await bucketContents(store);
    const body = new PassThrough();
    const started = fetch(`${service.url}/upload/`, {
      method: 'POST',
      body: multipartStream(body),
      headers: { 'Content-Type': 'multipart/form-data; boundary=CutBoundary' },
      duplex: 'half',
    });
    body.write('--CutBoundary\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n');
    for (let mib = 0; mib < 20; mib++) body.write(Buffer.alloc(1024 * 1024, mib));
    await gateway.stopGateway();
    for (let mib = 20; mib < 40; mib++) body.write(Buffer.alloc(1024 * 1024, mib));
    body.end('\r\n--CutBoundary--\r\n');
    const answer = await started;
    await gateway.startGateway();
    await expectProblem(answer, 503, 'storage_unavailable');
    expect(await rowCount()).to.equal(rows);
    // A multipart upload that could not be aborted while the endpoint was down is the reconciler's to remove.
    const unfinished = (await bucketContents(store)).filter((key) => !before.includes(key));
    expect(unfinished.every((key) => key.startsWith('unfinished upload'))).to.equal(true);
    expect(await store.removeTemporaryBefore(new Date(Date.now() + 60_000))).to.equal(unfinished.length);
    expect(await bucketContents(store)).to.deep.equal(before);
  });

  it('retries a job that could not read its object, and processes it once the endpoint is back', async () => {
    const api = await startService({ storage: store, worker: false });
    try {
      const file: File = await uploadFile(api.url, { name: 'during-job.txt', content: 'read me later' });
      await gateway.stopGateway();
      const worker = await startWorker(api.queueName, { storage: store, jobRetries: 20, maxAttempts: 30 });
      try {
        await eventually(
          async () => ((await api.db.files.findById(file.id))?.attempts ?? 0) >= 2,
          'a failed attempt',
          20_000,
        );
        await gateway.startGateway();
        const done = await waitForStatus(api.url, file.id, ['processed', 'failed'], 60_000);
        expect(done.status).to.equal('processed');
      } finally {
        await worker.close();
      }
    } finally {
      await api.close();
    }
  });

  it('retries a job whose parser could not reach the endpoint to read its ranges, and processes it once it is back', async () => {
    const api = await startService({ storage: store, worker: false });
    try {
      const content = zip([{ name: 'a.txt', content: 'read by ranges' }]);
      const file: File = await uploadFile(api.url, { name: 'ranges.zip', content });
      // The endpoint goes away once the bytes were checked, before the parser process reads them.
      let stopped = false;
      const archive: Processor = {
        ...archiveProcessor,
        process: (input) => {
          const storage: BlobStore = Object.assign(Object.create(input.storage) as BlobStore, {
            source: async (id: string, validForMs: number) => {
              const source = await input.storage.source(id, validForMs);
              if (!stopped) await gateway.stopGateway();
              stopped = true;
              return source;
            },
          });
          return archiveProcessor.process({ ...input, storage });
        },
      };
      const worker = await startWorker(api.queueName, {
        storage: store,
        processors: { archive },
        jobRetries: 20,
        maxAttempts: 30,
      });
      try {
        await eventually(
          async () => ((await api.db.files.findById(file.id))?.attempts ?? 0) >= 2,
          'a failed attempt',
          20_000,
        );
        await gateway.startGateway();
        const done = await waitForStatus(api.url, file.id, ['processed', 'failed'], 60_000);
        expect(done).to.include({ status: 'processed', kind: 'archive' });
        expect(done.result).to.deep.include({ format: 'zip', entries: 1, names: ['a.txt'] });
      } finally {
        await worker.close();
      }
    } finally {
      await api.close();
    }
  });
});

/** The request body as a web stream, for fetch's streaming upload. */
function multipartStream(body: PassThrough): ReadableStream<Uint8Array> {
  return Readable.toWeb(body) as ReadableStream<Uint8Array>;
}
