// Malware scanning against a real clamd (Debian's clamav-daemon, with a signature database the test writes): every
// file is scanned first, whichever way it came in; an infected one fails and is never served; nothing is served
// before its verdict; a file past clamd's limits is not called clean; and clamd being away never fails a file.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import * as tus from 'tus-js-client';
import type { S3BlobStore } from '../core/storage/index.js';
import type { File } from '../core/fileRecord.js';
import {
  EICAR,
  EICAR_SIGNATURE,
  reportedName,
  requireClamd,
  startClamd,
  TEST_SIGNATURES,
  ZIP_MARKER,
  ZIP_MARKER_SIGNATURE,
  type Clamd,
} from './support/clamd.js';
import { eventually } from './support/eventually.js';
import { png, zip } from './support/fixtures.js';
import { seriesValue } from './support/metrics.js';
import { expectProblem } from './support/problems.js';
import { s3StoreOn, sharedGateway, type Gateway } from './support/rgw.js';
import { overwriteBlob } from './support/stores.js';
import { flakyOnce, startService, uploadFile, waitForStatus, type TestService } from './support/service.js';

const KIB = 1024;
const settled = (service: TestService, id: string, timeoutMs = 20_000) =>
  waitForStatus(service.url, id, ['processed', 'failed'], timeoutMs);
const get = (service: TestService, id: string, what: 'content' | 'thumbnail' | 'preview') =>
  fetch(`${service.url}/files/${id}/${what}`);

describe('malware scanning', function () {
  this.timeout(120_000);
  let clamd: Clamd;
  let service: TestService;

  before(async function () {
    requireClamd(this);
    // A stream of more than 256 KiB is past clamd's limit here: unscannable.
    clamd = await startClamd({ streamMaxLength: 256 * KIB });
    service = await startService({ env: { SCAN_CLAMD: clamd.address, MAX_UPLOAD_BYTES: '64MiB' } });
  });
  after(async () => {
    await service?.close();
    await clamd?.destroy();
  });

  it('scans a clean file first and records the verdict, then serves it', async () => {
    const file = await uploadFile(service.url, { name: 'notes.txt', content: 'nothing to see here\n' });
    const done = await settled(service, file.id);
    expect([done.status, done.attempts]).to.deep.equal(['processed', 1]);
    expect(done.scan).to.include({ status: 'clean', signature: null });
    expect(done.scan!.engine).to.match(/^ClamAV \d+\.\d+/);
    expect(Date.parse(done.scan!.scanned_at)).to.be.closeTo(Date.now(), 60_000);
    expect((await get(service, file.id, 'content')).status).to.equal(200);
  });

  it('fails an infected file with malware_detected, renders nothing of it, and never serves its bytes', async () => {
    // An image with EICAR appended: a valid PNG, which would have a thumbnail if it were clean.
    const content = Buffer.concat([png(64, 64, 3), Buffer.from(EICAR)]);
    const file = await uploadFile(service.url, { name: 'infected.png', content });
    const done = await settled(service, file.id);
    expect([done.status, done.error?.code, done.attempts, done.thumbnail, done.preview]).to.deep.equal([
      'failed',
      'malware_detected',
      1,
      null,
      null,
    ]);
    expect(done.error!.message).to.contain(reportedName(EICAR_SIGNATURE));
    expect(done.scan).to.include({ status: 'infected', signature: reportedName(EICAR_SIGNATURE) });
    for (const what of ['content', 'thumbnail', 'preview'] as const) {
      const problem = await expectProblem(await get(service, file.id, what), 403, 'file_infected');
      expect(problem.detail).to.contain(reportedName(EICAR_SIGNATURE));
    }
  });

  it('finds what hides in a file inside a zip', async () => {
    const content = zip([{ name: 'inner/readme.txt', content: ZIP_MARKER, deflate: true }]);
    const file = await uploadFile(service.url, { name: 'nested.zip', content });
    const done = await settled(service, file.id);
    expect([done.status, done.error?.code]).to.deep.equal(['failed', 'malware_detected']);
    expect(done.scan!.signature).to.equal(reportedName(ZIP_MARKER_SIGNATURE));
  });

  it("fails a file past clamd's limits as unscannable, never calling it clean, and does not serve it", async () => {
    const file = await uploadFile(service.url, { name: 'large.bin', content: Buffer.alloc(300 * KIB, 7) });
    const done = await settled(service, file.id);
    expect([done.status, done.error?.code, done.scan?.status]).to.deep.equal(['failed', 'unscannable', 'unscannable']);
    await expectProblem(await get(service, file.id, 'content'), 403, 'file_unscannable');
  });

  it('scans an upload that came over tus the same way', async () => {
    const bytes = Buffer.concat([Buffer.from('resumed '), Buffer.from(EICAR)]);
    const url = await new Promise<string>((resolve, reject) => {
      const upload = new tus.Upload(bytes, {
        endpoint: `${service.url}/uploads/tus/`,
        metadata: { filename: 'resumed.bin' },
        retryDelays: [],
        onSuccess: () => resolve(upload.url!),
        onError: reject,
      });
      upload.start();
    });
    const done = await settled(service, url.split('/').pop()!);
    expect([done.status, done.error?.code]).to.deep.equal(['failed', 'malware_detected']);
  });

  it('scans again on reprocess, with the signatures of the moment', async () => {
    const threat = 'a threat nobody had a signature for yesterday';
    const file = await uploadFile(service.url, { name: 'sleeper.txt', content: `hello ${threat}\n` });
    expect((await settled(service, file.id)).scan?.status).to.equal('clean');
    const newer = { name: 'FileProcessor.Test.Sleeper', bytes: threat };
    await clamd.setSignatures([...TEST_SIGNATURES, newer]);
    try {
      expect((await fetch(`${service.url}/files/${file.id}/reprocess`, { method: 'POST' })).status).to.equal(202);
      const again = await settled(service, file.id);
      expect([again.status, again.error?.code, again.scan?.signature]).to.deep.equal([
        'failed',
        'malware_detected',
        reportedName(newer),
      ]);
    } finally {
      await clamd.setSignatures(TEST_SIGNATURES);
    }
  });

  it('checks the bytes once, in the scan, and still fails a file whose stored bytes changed since the upload', async () => {
    const intact = await uploadFile(service.url, { name: 'intact.bin', content: randomBytes(100 * KIB) });
    expect((await settled(service, intact.id)).result).to.include({ sha256_verified: true, bytes_read: 100 * KIB });
    // Same size, other bytes: the scan reads them clean, and the check it made fails them
    const changed = await uploadFile(service.url, { name: 'changed.bin', content: randomBytes(100 * KIB) });
    await settled(service, changed.id);
    await overwriteBlob(service.storage, changed.id, 'y'.repeat(100 * KIB));
    expect((await fetch(`${service.url}/files/${changed.id}/reprocess`, { method: 'POST' })).status).to.equal(202);
    const done = await settled(service, changed.id);
    expect([done.status, done.error?.code, done.scan?.status]).to.deep.equal(['failed', 'checksum_mismatch', 'clean']);
  });

  it('waits while clamd is away, without counting an attempt, and processes the file once it is back', async () => {
    await clamd.stop();
    try {
      const file = await uploadFile(service.url, { name: 'patient.txt', content: 'waiting for the scanner\n' });
      await eventually(
        async () => (await seriesValue(service.workerMetrics.registry, 'scans_total', { verdict: 'error' })) > 0,
        'a scan that found no scanner',
      );
      expect(await seriesValue(service.workerMetrics.registry, 'scanner_up')).to.equal(0);
      const waiting = (await (await fetch(`${service.url}/files/${file.id}/`)).json()) as File;
      // between two waits, or in the middle of the next try: never further, never with a verdict
      expect(waiting.status).to.be.oneOf(['queued', 'processing']);
      expect(waiting.scan).to.equal(null);
      expect(waiting.attempts).to.be.at.most(1);
      await expectProblem(await get(service, file.id, 'content'), 409, 'scan_pending');
      await clamd.start();
      const done = await settled(service, file.id, 90_000);
      expect([done.status, done.attempts, done.scan?.status]).to.deep.equal(['processed', 1, 'clean']);
      expect(await seriesValue(service.workerMetrics.registry, 'scanner_up')).to.equal(1);
    } finally {
      if (!clamd.running) await clamd.start();
    }
  });

  it('waits, and then processes the file, when clamd dies in the middle of its stream', async () => {
    // Frozen, clamd takes the connection and lets the stream fill its buffers: then it dies mid-stream.
    clamd.kill('SIGSTOP');
    const file = await uploadFile(service.url, { name: 'cut.bin', content: Buffer.alloc(200 * KIB, 1) });
    await waitForStatus(service.url, file.id, ['processing']);
    await new Promise((resolve) => setTimeout(resolve, 500));
    clamd.kill('SIGKILL');
    await clamd.exited();
    await eventually(
      async () => ((await (await fetch(`${service.url}/files/${file.id}/`)).json()) as File).status === 'queued',
      'the attempt given back',
    );
    await clamd.start();
    const done = await settled(service, file.id, 90_000);
    expect([done.status, done.attempts, done.scan?.status]).to.deep.equal(['processed', 1, 'clean']);
  });
});

describe("waiting for the scanner, then a failure of the file's own", function () {
  this.timeout(120_000);
  let clamd: Clamd;
  let service: TestService;
  before(async function () {
    requireClamd(this);
    clamd = await startClamd();
    // Two retries, each processing fails once: the waits must not use them up.
    service = await startService({
      env: { SCAN_CLAMD: clamd.address },
      jobRetries: 2,
      processors: { text: flakyOnce() },
    });
  });
  after(async () => {
    await service?.close();
    await clamd?.destroy();
  });

  it('waits more times than the job has retries, and still retries a transient failure after, as an attempt', async () => {
    await clamd.stop();
    const file = await uploadFile(service.url, { name: 'late.txt', content: 'scanned late, then flaky\n' });
    await eventually(
      async () => (await seriesValue(service.workerMetrics.registry, 'scans_total', { verdict: 'error' })) >= 4,
      'four waits, more than the two retries',
    );
    await clamd.start();
    const done = await settled(service, file.id, 90_000);
    // attempt 1 failed in the processor (transient), attempt 2 processed: the waits counted for nothing
    expect([done.status, done.attempts, done.scan?.status]).to.deep.equal(['processed', 2, 'clean']);
  });
});

describe('a clamd that answers PING but never gives this file a verdict', function () {
  this.timeout(120_000);
  let clamd: Clamd;
  let proxy: net.Server;
  let service: TestService;
  before(async function () {
    requireClamd(this);
    clamd = await startClamd();
    // In front of the real clamd: PING and VERSION pass through, an INSTREAM is read and never answered (a scan
    // that hangs), which no configuration of a real clamd does on demand.
    proxy = net.createServer((client) => {
      client.once('data', (first: Buffer) => {
        if (first.subarray(0, 10).toString('latin1') === 'zINSTREAM\0') {
          client.on('data', () => undefined);
          return;
        }
        const upstream = net.createConnection({ host: '127.0.0.1', port: clamd.port });
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        upstream.write(first);
        client.pipe(upstream).pipe(client);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const { port } = proxy.address() as net.AddressInfo;
    service = await startService({ env: { SCAN_CLAMD: `tcp://127.0.0.1:${port}`, SCAN_TIMEOUT_MS: '1000' } });
  });
  after(async () => {
    await service?.close();
    proxy?.close();
    await clamd?.destroy();
  });

  it('calls the file unscannable after three tries, in one attempt, instead of waiting for ever', async () => {
    const file = await uploadFile(service.url, { name: 'endless.txt', content: 'a scan that never ends\n' });
    const done = await settled(service, file.id, 90_000);
    expect([done.status, done.error?.code, done.attempts, done.scan?.status]).to.deep.equal([
      'failed',
      'unscannable',
      1,
      'unscannable',
    ]);
    expect(done.scan!.signature).to.match(/^No verdict in 3 tries while the scanner answered: /);
    expect(done.scan!.engine).to.match(/^ClamAV \d/);
    const scans = (verdict: string) => seriesValue(service.workerMetrics.registry, 'scans_total', { verdict });
    expect([await scans('error'), await scans('unscannable')]).to.deep.equal([3, 1]);
  });
});

describe('content before the scanner has spoken', function () {
  let service: TestService;
  before(async () => {
    // No worker: the file stays queued, never scanned.
    service = await startService({ worker: false, env: { SCAN_CLAMD: 'tcp://127.0.0.1:9' } });
  });
  after(() => service.close());

  it('answers 409 scan_pending with Retry-After, for the content and the renderings, and serves the record', async () => {
    const file = await uploadFile(service.url, { name: 'fresh.png', content: png(8, 8) });
    for (const what of ['content', 'thumbnail', 'preview'] as const) {
      const response = await get(service, file.id, what);
      await expectProblem(response, 409, 'scan_pending');
      expect(response.headers.get('retry-after')).to.equal('5');
    }
    expect(((await (await fetch(`${service.url}/files/${file.id}/`)).json()) as File).scan).to.equal(null);
  });
});

describe('unscannable files with SCAN_UNSCANNABLE=allow', function () {
  this.timeout(60_000);
  let clamd: Clamd;
  let service: TestService;
  before(async function () {
    requireClamd(this);
    clamd = await startClamd({ streamMaxLength: 64 * KIB });
    service = await startService({ env: { SCAN_CLAMD: clamd.address, SCAN_UNSCANNABLE: 'allow' } });
  });
  after(async () => {
    await service?.close();
    await clamd?.destroy();
  });

  it('processes and serves them, the verdict saying unscannable', async () => {
    const file = await uploadFile(service.url, { name: 'large.bin', content: Buffer.alloc(100 * KIB, 9) });
    const done = await settled(service, file.id);
    expect([done.status, done.scan?.status]).to.deep.equal(['processed', 'unscannable']);
    expect((await get(service, file.id, 'content')).status).to.equal(200);
  });
});

describe('malware scanning of a direct upload to the bucket', function () {
  this.timeout(120_000);
  let clamd: Clamd;
  let gateway: Gateway;
  let store: S3BlobStore;
  let service: TestService;
  before(async function () {
    requireClamd(this);
    gateway = await sharedGateway(this);
    store = await s3StoreOn(gateway);
    clamd = await startClamd();
    service = await startService({ storage: store, env: { SCAN_CLAMD: clamd.address } });
  });
  after(async () => {
    await service?.close();
    store?.close();
    await clamd?.destroy();
  });

  it('scans the bytes the client sent straight to the bucket, which never passed through the API', async () => {
    const bytes = Buffer.concat([Buffer.from('straight to the bucket: '), Buffer.from(EICAR)]);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const offer = (await (
      await fetch(`${service.url}/uploads/`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'direct.bin', size: bytes.length, sha256 }),
      })
    ).json()) as { id: string; url: string; headers: Record<string, string>; complete_url: string };
    expect((await fetch(offer.url, { method: 'PUT', headers: offer.headers, body: bytes })).status).to.equal(200);
    expect((await fetch(offer.complete_url, { method: 'POST' })).status).to.equal(201);
    const done = await settled(service, offer.id);
    expect([done.status, done.error?.code, done.scan?.status]).to.deep.equal([
      'failed',
      'malware_detected',
      'infected',
    ]);
    await expectProblem(await get(service, offer.id, 'content'), 403, 'file_infected');
  });
});
