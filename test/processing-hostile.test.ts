import { expect } from 'chai';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import type { File } from '../core/fileRecord.js';
import { mp4, pdf, png, tar, truncated, wav, zip } from './support/fixtures.js';
import { killStartedProcesses, startWorkerProcess, type Started } from './support/processes.js';
import { startService, uploadFile, waitForStatus, type TestService, type UploadPart } from './support/service.js';

type Outcome = { failed: string } | { warning: RegExp } | 'processed';

/** Damaged and deceptive files, all made here, and how each must end (bombs and floods: test/faults/hostile-files.test.ts). */
async function hostileFiles(): Promise<Array<[string, UploadPart, Outcome]>> {
  const jpeg = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#808080' } })
    .jpeg()
    .toBuffer();
  const report = pdf(['Hello', 'World'], { title: 'Report' });
  return [
    [
      'a "PDF" that is not one',
      { name: 'fake.pdf', content: '%PDF-1.7\nthis is no PDF at all\n%%EOF\n' },
      { failed: 'corrupt_file' },
    ],
    ['a truncated PNG', { name: 'cut.png', content: truncated(png(300, 200, 1)) }, { failed: 'corrupt_file' }],
    ['a truncated JPEG', { name: 'cut.jpg', content: truncated(jpeg) }, { failed: 'corrupt_file' }],
    ['a truncated PDF', { name: 'cut.pdf', content: truncated(report) }, { failed: 'corrupt_file' }],
    [
      'a truncated zip',
      { name: 'cut.zip', content: truncated(zip([{ name: 'a.txt', content: 'hello' }])) },
      { failed: 'corrupt_file' },
    ],
    [
      'a truncated tar',
      { name: 'cut.tar', content: truncated(tar([{ name: 'a.bin', content: Buffer.alloc(5000, 1) }])) },
      { failed: 'corrupt_file' },
    ],
    [
      'a truncated gzip stream',
      { name: 'cut.gz', content: truncated(gzipSync(Buffer.from('text '.repeat(10_000)))) },
      { failed: 'corrupt_file' },
    ],
    ['a truncated MP4', { name: 'cut.mp4', content: truncated(mp4(), 0.3) }, { failed: 'corrupt_file' }],
    [
      'a truncated WAV',
      { name: 'cut.wav', content: truncated(wav(1), 0.1) },
      { warning: /RIFF header declares 16044 bytes but the file has 1604/ },
    ],
    [
      'UTF-8 text cut inside a character',
      { name: 'cut.txt', content: Buffer.from('déjà vu, voilà', 'utf8').subarray(0, -1) },
      { warning: /middle of a UTF-8 character/ },
    ],
    [
      'a CSV cut inside a quoted field',
      { name: 'cut.csv', content: 'a,b\n1,"unfinished' },
      { warning: /inside a quoted field/ },
    ],
    [
      'invalid UTF-8',
      { name: 'bad.txt', content: Buffer.from([0x68, 0x69, 0x20, 0xc3, 0x28, 0xa0, 0xa1, 0x0a]) },
      { warning: /read as windows-1252/ },
    ],
    [
      'UTF-16 text (file-type reads it as audio)',
      { name: 'wide.txt', content: Buffer.from('some UTF-16 text without a BOM\n', 'utf16le') },
      'processed',
    ],
    [
      'a password-protected PDF',
      { name: 'locked.pdf', content: pdf(['x'], {}, { encrypt: true }) },
      { warning: /needs a password/ },
    ],
    [
      'a zip with encrypted entries',
      { name: 'secret.zip', content: zip([{ name: 'a', content: 'x', encrypted: true }]) },
      { warning: /1 entries are encrypted/ },
    ],
  ];
}

describe('hostile files through a real worker process', function () {
  this.timeout(120_000);
  let service: TestService;
  let worker: Started;
  let admin: string;
  const outcomes = new Map<string, File>();
  let normal: File;

  before(async () => {
    service = await startService({ worker: false, jobTimeoutMs: 30_000 });
    ({ worker, admin } = await startWorkerProcess({
      QUEUE_NAME: service.queueName,
      WORKER_CONCURRENCY: '2',
      JOB_TIMEOUT_MS: '30000',
    }));

    const files = await hostileFiles();
    const uploads = await Promise.all(files.map(([, part]) => uploadFile(service.url, part)));
    // A normal file uploaded after all of them still gets through.
    normal = await uploadFile(service.url, { name: 'normal.txt', content: 'nothing to see here\n' });
    const done = await Promise.all(
      uploads.map((file) => waitForStatus(service.url, file.id, ['processed', 'failed'], 60_000)),
    );
    files.forEach(([what], i) => outcomes.set(what, done[i]!));
  });

  after(async () => {
    worker?.child.kill('SIGTERM');
    await worker?.exited;
    await service?.close();
    killStartedProcesses();
  });

  it('processes a normal file uploaded alongside them', async () => {
    expect((await waitForStatus(service.url, normal.id, ['processed', 'failed'], 30_000)).status).to.equal('processed');
  });

  it('ends each hostile file failed with a clear code, or processed with a warning', async () => {
    for (const [what, , expected] of await hostileFiles()) {
      const file = outcomes.get(what)!;
      if (typeof expected === 'object' && 'failed' in expected) {
        expect([file.status, file.error?.code], what).to.deep.equal(['failed', expected.failed]);
        expect(file.attempts, `${what}: no retry`).to.equal(1);
      } else {
        expect(file.status, what).to.equal('processed');
        const warnings = file.result!.warnings as string[];
        if (expected === 'processed') expect(warnings, what).to.deep.equal([]);
        else expect(warnings.join(' '), what).to.match(expected.warning);
      }
    }
  });

  it('reads UTF-16 without a BOM as text, not as the MPEG audio file-type sees in it', () => {
    const file = outcomes.get('UTF-16 text (file-type reads it as audio)')!;
    expect(file).to.include({ kind: 'text', content_type: 'text/plain; charset=utf-16le' });
    expect(file.result).to.deep.include({ encoding: 'utf-16le', words: 6 });
  });

  it('leaves the worker process running and healthy', async () => {
    expect(worker.child.exitCode).to.equal(null);
    expect((await fetch(`${admin}/healthz`)).status).to.equal(200);
    expect((await fetch(`${admin}/readyz`)).status).to.equal(200);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).to.match(/jobs_processed_total\{queue="[^"]+",kind="image",outcome="failed"\} [1-9]/);
  });
});
