import { expect } from 'chai';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OtherResultSchema } from '../core/results/index.js';
import { analyzeImage } from '../worker/processors/image.js';
import { ProcessingError, type Processor } from '../worker/processors/index.js';
import { ParsingThreads } from '../worker/threads.js';
import { ANALYZERS_MODULE, echoAfter, exhaustMemory, failTransiently, spinForever, throwUncaught } from './support/analyzers.js';
import { rejection } from './support/eventually.js';
import { pngDeclaring, zip } from './support/fixtures.js';
import { startService, uploadFile, waitForStatus, type TestService } from './support/service.js';

const IMAGE_MODULE = new URL('../worker/processors/image.js', import.meta.url).href;
const soon = (ms: number) => Date.now() + ms;

describe('parsing threads', function () {
  this.timeout(30_000);
  let threads: ParsingThreads;
  beforeEach(() => {
    threads = new ParsingThreads({ size: 2 });
  });
  afterEach(() => threads.close());

  it('runs an exported function in a thread and answers with its value', async () => {
    expect(await threads.run(ANALYZERS_MODULE, echoAfter, [5, { found: [1, 'two'] }], soon(10_000))).to.deep.equal({ found: [1, 'two'] });
    expect(threads.size).to.equal(1);
  });

  it('starts every thread and loads the preloaded parsers when warmed', async () => {
    const warmed = new ParsingThreads({ size: 2, preload: [IMAGE_MODULE, ANALYZERS_MODULE, 'file:///no/such/module.js'] });
    try {
      await warmed.warm();
      expect(warmed.size).to.equal(2);
      expect(await warmed.run(ANALYZERS_MODULE, echoAfter, [1, 'warm'], soon(10_000))).to.equal('warm');
    } finally {
      await warmed.close();
    }
  });

  it('queues work beyond its size and runs it as threads free up', async () => {
    const started = Date.now();
    const answers = await Promise.all([1, 2, 3].map((n) => threads.run(ANALYZERS_MODULE, echoAfter, [200, n], soon(10_000))));
    expect(answers).to.deep.equal([1, 2, 3]);
    expect(Date.now() - started).to.be.at.least(400);
    expect(threads.size).to.equal(2);
  });

  it('terminates a parser that outlasts its deadline, fails it with timeout, and carries on with a fresh thread', async () => {
    const err = await rejection(threads.run(ANALYZERS_MODULE, spinForever, [], soon(300)));
    expect(err).to.be.instanceOf(ProcessingError);
    expect(err.code).to.equal('timeout');
    expect(await threads.run(ANALYZERS_MODULE, echoAfter, [1, 'still here'], soon(10_000))).to.equal('still here');
  });

  it('fails with parser_crashed when an uncaught exception kills the thread', async () => {
    const err = await rejection(threads.run(ANALYZERS_MODULE, throwUncaught, [], soon(10_000)));
    expect(err).to.include({ code: 'parser_crashed' });
    expect(await threads.run(ANALYZERS_MODULE, echoAfter, [1, 'recovered'], soon(10_000))).to.equal('recovered');
  });

  it('fails with out_of_memory when a parser outgrows the heap of its thread', async () => {
    const small = new ParsingThreads({ size: 1, maxHeapMb: 32 });
    try {
      const err = await rejection(small.run(ANALYZERS_MODULE, exhaustMemory, [], soon(20_000)));
      expect(err).to.include({ code: 'out_of_memory' });
      expect(err.message).to.contain('32 MiB');
    } finally {
      await small.close();
    }
  });

  it('keeps a ProcessingError permanent across the thread boundary, and any other error retryable', async () => {
    const file = path.join(os.tmpdir(), `fp-bomb-${process.pid}.png`);
    await writeFile(file, pngDeclaring(100_000, 100_000));
    const permanent = await rejection(threads.run(IMAGE_MODULE, analyzeImage, [{ path: file, contentType: 'image/png', size: 1, limits: { maxImagePixels: 1e6, pdfMaxDecodedBytes: 1 } }], soon(10_000)));
    expect(permanent).to.be.instanceOf(ProcessingError);
    expect(permanent.code).to.equal('image_too_large');
    const transient = await rejection(threads.run(ANALYZERS_MODULE, failTransiently, [], soon(10_000)));
    expect(transient).to.not.be.instanceOf(ProcessingError);
    expect(transient).to.include({ code: 'ECONNRESET', message: 'connection reset' });
    const missing = await rejection(threads.run(ANALYZERS_MODULE, Object.defineProperty(async () => 1, 'name', { value: 'noSuchExport' }), [], soon(10_000)));
    expect(missing.message).to.contain('exports no function noSuchExport');
  });

  it('rejects work once closed', async () => {
    await threads.close();
    expect((await rejection(threads.run(ANALYZERS_MODULE, echoAfter, [1, 1], soon(1_000)))).message).to.contain('closed');
  });
});

/** A processor whose parser misbehaves in a real parsing thread. */
const misbehaving = (analysis: () => Promise<never>): Processor => ({
  resultSchema: OtherResultSchema,
  async process(input) {
    await input.inThread(ANALYZERS_MODULE, analysis);
    return { result: {}, thumbnail: false };
  },
});

describe('the worker with misbehaving parsers', function () {
  this.timeout(60_000);
  let service: TestService;
  before(async () => {
    service = await startService({
      jobTimeoutMs: 4_000,
      processors: { other: misbehaving(spinForever), archive: misbehaving(throwUncaught), audio: misbehaving(exhaustMemory) },
      threads: new ParsingThreads({ size: 4, maxHeapMb: 48 }),
    });
  });
  after(() => service.close());

  it('fails a parse that hangs with timeout, while other files keep being processed and heartbeats keep flowing', async () => {
    const hung = await uploadFile(service.url, { name: 'loop.bin', content: Buffer.from([0, 1, 2, 3, 0xff]) });
    await waitForStatus(service.url, hung.id, ['processing']);
    const started = Date.now();
    const normal = await uploadFile(service.url, { name: 'normal.txt', content: 'an ordinary file' });
    const normalDone = await waitForStatus(service.url, normal.id, ['processed', 'failed']);
    expect(normalDone.status).to.equal('processed');
    expect(Date.now() - started).to.be.below(2_000);
    expect((await fetch(`${service.url}/files/${hung.id}/`).then((r) => r.json())) as { status: string }).to.include({ status: 'processing' });

    const done = await waitForStatus(service.url, hung.id, ['processed', 'failed'], 15_000);
    // One attempt: the stall check (every second here) never took the job back, so the event loop stayed free.
    expect(done).to.include({ status: 'failed', attempts: 1 });
    expect(done.error!.code).to.equal('timeout');
  });

  it('fails files whose parser crashes or runs out of memory, alone', async () => {
    const [crashing, hungry, normal] = await Promise.all([
      uploadFile(service.url, { name: 'crash.zip', content: zip([{ name: 'a', content: 'b' }]) }),
      uploadFile(service.url, { name: 'hungry.wav', content: Buffer.concat([Buffer.from('RIFF\x24\x00\x00\x00WAVEfmt ', 'latin1'), Buffer.alloc(64)]) }),
      uploadFile(service.url, { name: 'normal.csv', content: 'a,b\n1,2\n' }),
    ]);
    expect([crashing.kind, hungry.kind]).to.deep.equal(['archive', 'audio']);
    const outcomes = await Promise.all([crashing, hungry, normal].map((file) => waitForStatus(service.url, file.id, ['processed', 'failed'], 20_000)));
    expect(outcomes.map((file) => [file.status, file.error?.code ?? null])).to.deep.equal([
      ['failed', 'parser_crashed'],
      ['failed', 'out_of_memory'],
      ['processed', null],
    ]);
  });
});
