import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import os from 'node:os';
import path from 'node:path';
import { analyzeImage } from '../worker/processors/image.js';
import { ProcessingError, type Processor } from '../worker/processors/index.js';
import { ParserProcesses, removeDeadParserDirectories, v8Flags } from '../worker/parsers.js';
import {
  abortLikeV8OutOfHeap,
  abortProcess,
  ANALYZERS_MODULE,
  echoAfter,
  exhaustMemory,
  exhaustNativeMemory,
  failPermanently,
  failTransiently,
  holdNativeMemory,
  oomScoreAdjustment,
  spinForever,
  spinOverTemporaryFile,
  spinFor,
  temporaryDirectory,
  throwUncaught,
} from './support/analyzers.js';
import { eventually, rejection } from './support/eventually.js';
import { mp4, pngDeclaring, zip } from './support/fixtures.js';
import { startProcess } from './support/processes.js';
import { startService, uploadFile, waitForStatus, type TestService } from './support/service.js';

const IMAGE_MODULE = new URL('../worker/processors/image.js', import.meta.url).href;

const MIB = 1024 * 1024;
const limits = (ms: number, cpuMs = ms) => ({ deadline: Date.now() + ms, cpuMs });
const gone = (pid: number) =>
  !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.startsWith('Z');

describe('parser processes', function () {
  this.timeout(30_000);
  let parsers: ParserProcesses;
  beforeEach(() => {
    parsers = new ParserProcesses({ size: 2, maxRssBytes: 256 * MIB });
  });
  afterEach(() => parsers.close());

  it('runs an exported function in a child process and answers with its value', async () => {
    expect(
      await parsers.run(
        ANALYZERS_MODULE,
        echoAfter,
        [5, { found: [1, 'two'], bytes: new Uint8Array([1, 2]) }],
        limits(10_000),
      ),
    ).to.deep.equal({
      found: [1, 'two'],
      bytes: new Uint8Array([1, 2]),
    });
    expect(parsers.size).to.equal(1);
    expect(parsers.pids()[0]).to.not.equal(process.pid);
  });

  it('starts every child and loads the preloaded parsers when warmed', async () => {
    const warmed = new ParserProcesses({
      size: 2,
      maxRssBytes: 256 * MIB,
      preload: [IMAGE_MODULE, ANALYZERS_MODULE, 'file:///no/such/module.js'],
    });
    try {
      await warmed.warm();
      expect(warmed.size).to.equal(2);
      expect(await warmed.run(ANALYZERS_MODULE, echoAfter, [1, 'warm'], limits(10_000))).to.equal('warm');
    } finally {
      await warmed.close();
    }
  });

  it('queues work beyond its size and runs it as children free up', async () => {
    const started = Date.now();
    const answers = await Promise.all(
      [1, 2, 3].map((n) => parsers.run(ANALYZERS_MODULE, echoAfter, [200, n], limits(10_000))),
    );
    expect(answers).to.deep.equal([1, 2, 3]);
    expect(Date.now() - started).to.be.at.least(400);
    expect(parsers.size).to.equal(2);
  });

  it('offers its children to the kernel OOM killer first', async () => {
    const { pid, score } = await parsers.run(ANALYZERS_MODULE, oomScoreAdjustment, [], limits(10_000));
    expect(pid).to.not.equal(process.pid);
    expect(score).to.equal('1000');
  });

  it('kills a parser that outlasts its deadline, fails it with timeout, and carries on with a fresh child', async () => {
    const err = await rejection(parsers.run(ANALYZERS_MODULE, spinForever, [], limits(300, 60_000)));
    expect(err).to.be.instanceOf(ProcessingError);
    expect(err).to.include({ code: 'timeout' });
    expect(err.message).to.contain('time limit');
    expect(await parsers.run(ANALYZERS_MODULE, echoAfter, [1, 'still here'], limits(10_000))).to.equal('still here');
  });

  it('kills a parser that uses up its CPU time before its deadline', async () => {
    const started = Date.now();
    const err = await rejection(parsers.run(ANALYZERS_MODULE, spinForever, [], limits(20_000, 300)));
    expect(err).to.include({ code: 'timeout' });
    expect(err.message).to.contain('300 ms of CPU time');
    expect(Date.now() - started).to.be.below(10_000);
  });

  it("counts each parse's CPU time from its own start, so a warm child that parsed before gets its whole budget", async () => {
    // Four parses of 250 ms of CPU each, on one child, within 600 ms each: the child's lifetime CPU passes it.
    const pids = [];
    for (let parse = 0; parse < 4; parse++)
      pids.push(await parsers.run(ANALYZERS_MODULE, spinFor, [250], limits(60_000, 600)));
    expect(new Set(pids).size).to.equal(1);
  });

  it('fails with parser_crashed when an uncaught exception or an abort kills the child', async () => {
    expect(await rejection(parsers.run(ANALYZERS_MODULE, throwUncaught, [], limits(10_000)))).to.include({
      code: 'parser_crashed',
    });
    const aborted = await rejection(parsers.run(ANALYZERS_MODULE, abortProcess, [], limits(10_000)));
    expect(aborted).to.include({ code: 'parser_crashed' });
    expect(aborted.message).to.contain('SIGABRT');
    expect(await parsers.run(ANALYZERS_MODULE, echoAfter, [1, 'recovered'], limits(10_000))).to.equal('recovered');
  });

  it('fails with out_of_memory when a parser grows its JavaScript heap past the ceiling', async () => {
    const small = new ParserProcesses({ size: 1, maxRssBytes: 192 * MIB });
    try {
      expect(await rejection(small.run(ANALYZERS_MODULE, exhaustMemory, [], limits(20_000)))).to.include({
        code: 'out_of_memory',
      });
    } finally {
      await small.close();
    }
  });

  it("sizes V8's old generation from the ceiling, never into V8's slower low-memory mode", () => {
    expect(v8Flags(256 * MIB)).to.deep.equal(['--max-old-space-size=1024', '--expose-gc']);
    expect(v8Flags(4096 * MIB)).to.deep.equal(['--max-old-space-size=3968', '--expose-gc']);
  });

  it('reads a child that V8 aborted for want of heap as out_of_memory', async () => {
    const err = await rejection(parsers.run(ANALYZERS_MODULE, abortLikeV8OutOfHeap, [], limits(10_000)));
    expect(err).to.include({ code: 'out_of_memory' });
  });

  it('kills a parser whose memory outside the heap passes the RSS ceiling, and fails it with out_of_memory', async () => {
    const small = new ParserProcesses({ size: 1, maxRssBytes: 200 * MIB });
    try {
      const err = await rejection(small.run(ANALYZERS_MODULE, exhaustNativeMemory, [], limits(20_000)));
      expect(err).to.include({ code: 'out_of_memory' });
      expect(err.message).to.contain('more than 200 MiB');
      // Below the ceiling, the same kind of memory is fine.
      expect(await small.run(ANALYZERS_MODULE, holdNativeMemory, [32, 10], limits(20_000))).to.equal(32);
    } finally {
      await small.close();
    }
  });

  it('replaces a child that still holds more than a quarter of its headroom (its ceiling less what it held when ready) after a parse, and keeps one that does not', async () => {
    expect(await parsers.run(ANALYZERS_MODULE, holdNativeMemory, [16, 1], limits(10_000))).to.equal(16);
    const [first] = parsers.pids();
    expect(await parsers.run(ANALYZERS_MODULE, holdNativeMemory, [16, 1], limits(10_000))).to.equal(16);
    expect(parsers.pids()).to.deep.equal([first]);
    expect(await parsers.run(ANALYZERS_MODULE, holdNativeMemory, [160, 1], limits(10_000))).to.equal(160);
    // Its memory is gone with it, and a fresh child stands in its place.
    await eventually(() => parsers.size === 1 && parsers.pids()[0] !== first, 'the bloated child is replaced');
  });

  it('fails with out_of_memory when the kernel kills a child mid-parse, and replaces it', async () => {
    await parsers.warm();
    const running = parsers.run(ANALYZERS_MODULE, echoAfter, [5_000, 'never'], limits(10_000));
    await sleep(200);
    const victim = parsers.pids()[0]!;
    // What the OOM killer does: SIGKILL, from outside.
    for (const pid of parsers.pids()) process.kill(pid, 'SIGKILL');
    expect(await rejection(running)).to.include({ code: 'out_of_memory' });
    await eventually(() => parsers.size === 2 && !parsers.pids().includes(victim), 'the pool is full again');
  });

  it('keeps a ProcessingError permanent across the process boundary, and any other error retryable', async () => {
    const file = path.join(os.tmpdir(), `fp-bomb-${process.pid}.png`);
    await writeFile(file, pngDeclaring(100_000, 100_000));
    const permanent = await rejection(
      parsers.run(
        IMAGE_MODULE,
        analyzeImage,
        [
          {
            source: { path: file },
            contentType: 'image/png',
            size: 1,
            limits: { maxImagePixels: 1e6, pdfMaxDecodedBytes: 1 },
          },
        ],
        limits(10_000),
      ),
    );
    expect(permanent).to.be.instanceOf(ProcessingError);
    expect(permanent.code).to.equal('image_too_large');
    const transient = await rejection(parsers.run(ANALYZERS_MODULE, failTransiently, [], limits(10_000)));
    expect(transient).to.not.be.instanceOf(ProcessingError);
    expect(transient).to.include({ code: 'ECONNRESET', message: 'connection reset' });
    const missing = await rejection(
      parsers.run(
        ANALYZERS_MODULE,
        Object.defineProperty(async () => 1, 'name', { value: 'noSuchExport' }),
        [],
        limits(10_000),
      ),
    );
    expect(missing.message).to.contain('exports no function noSuchExport');
  });

  it('replaces a child after a failure worth a retry (a parser cut off by a failed read may keep what it held), not after a permanent one', async () => {
    await parsers.run(ANALYZERS_MODULE, echoAfter, [1, 'ready'], limits(10_000));
    const [first] = parsers.pids();
    expect(await rejection(parsers.run(ANALYZERS_MODULE, failPermanently, [], limits(10_000)))).to.be.instanceOf(
      ProcessingError,
    );
    expect(parsers.pids()).to.deep.equal([first]);
    await rejection(parsers.run(ANALYZERS_MODULE, failTransiently, [], limits(10_000)));
    await eventually(() => gone(first!) && parsers.size === 1, 'the child is replaced');
  });

  it('gives each child a temporary directory of its own, removed when the child dies, killed or not', async () => {
    const dir = await parsers.run(ANALYZERS_MODULE, temporaryDirectory, [], limits(10_000));
    expect(path.dirname(dir)).to.equal(os.tmpdir());
    expect(await rejection(parsers.run(ANALYZERS_MODULE, spinOverTemporaryFile, [], limits(500)))).to.include({
      code: 'timeout',
    });
    await eventually(() => !existsSync(dir), 'the temporary directory is removed');
  });

  it('rejects work once closed, and leaves no child behind', async () => {
    await parsers.warm();
    const pids = parsers.pids();
    await parsers.close();
    expect(pids.filter((pid) => !gone(pid))).to.deep.equal([]);
    expect((await rejection(parsers.run(ANALYZERS_MODULE, echoAfter, [1, 1], limits(1_000)))).message).to.contain(
      'closed',
    );
  });

  it("removes every child's temporary directory when it closes", async () => {
    const dirs = await Promise.all(
      [1, 2].map(() => parsers.run(ANALYZERS_MODULE, temporaryDirectory, [], limits(10_000))),
    );
    expect(dirs.every((dir) => existsSync(dir))).to.equal(true);
    await parsers.close();
    expect(dirs.filter((dir) => existsSync(dir))).to.deep.equal([]);
  });

  it("dies with its parent, even while a parser spins, and the next worker's start removes what it left", async () => {
    const parent = startProcess('dist/test/support/spinningParent.js');
    const pid = Number(await eventually(() => /^child (\d+)$/m.exec(parent.output())?.[1], 'the spinning child'));
    parent.child.kill('SIGKILL');
    await parent.exited;
    await eventually(() => gone(pid), 'the orphaned child is gone', 5_000);
    const ownedBy = (owner: number) =>
      readdirSync(os.tmpdir()).filter((name) => name.startsWith(`fp-parser-${owner}-`));
    // Nobody was left to remove the killed parent's child's directory; a live worker's stays.
    expect(ownedBy(parent.child.pid!)).to.have.length(1);
    await parsers.warm();
    expect(ownedBy(process.pid).length).to.be.at.least(2);
    expect(removeDeadParserDirectories()).to.be.at.least(1);
    expect(ownedBy(parent.child.pid!)).to.deep.equal([]);
    expect(ownedBy(process.pid).length).to.be.at.least(2);
  });
});

/** A processor whose parser misbehaves in a real parser process. */
const misbehaving = (analysis: () => Promise<never>): Processor => ({
  async process(input) {
    await input.inParser(ANALYZERS_MODULE, analysis);
    return { result: {}, thumbnail: false };
  },
});

/** A worker whose parsers misbehave as each kind says, with `jobTimeoutMs` to do it in. */
function misbehavingService(jobTimeoutMs: number): Promise<TestService> {
  return startService({
    jobTimeoutMs,
    processors: {
      other: misbehaving(spinForever),
      archive: misbehaving(throwUncaught),
      audio: misbehaving(exhaustMemory),
      video: misbehaving(exhaustNativeMemory),
    },
    parsers: new ParserProcesses({ size: 4, maxRssBytes: 200 * MIB }),
  });
}

describe('the worker with misbehaving parsers', function () {
  this.timeout(60_000);

  describe('that hang', () => {
    let service: TestService;
    before(async () => {
      service = await misbehavingService(4_000);
    });
    after(() => service.close());

    it('fails a parse that hangs with timeout, while other files keep being processed and heartbeats keep flowing', async () => {
      const hung = await uploadFile(service.url, { name: 'loop.bin', content: Buffer.from([0, 1, 2, 3, 0xff]) });
      await waitForStatus(service.url, hung.id, ['processing']);
      const normal = await uploadFile(service.url, { name: 'normal.txt', content: 'an ordinary file' });
      const normalDone = await waitForStatus(service.url, normal.id, ['processed', 'failed']);
      expect(normalDone.status).to.equal('processed');
      // Still spinning when the other file is done: that file never waited for it.
      expect(await fetch(`${service.url}/files/${hung.id}/`).then((r) => r.json())).to.include({
        status: 'processing',
      });

      const done = await waitForStatus(service.url, hung.id, ['processed', 'failed'], 15_000);
      // One attempt: the stall check (every second here) never took the job back, so the event loop stayed free.
      expect(done).to.include({ status: 'failed', attempts: 1 });
      expect(done.error!.code).to.equal('timeout');
    });
  });

  describe('that crash or outgrow their memory', () => {
    let service: TestService;
    before(async () => {
      // Time enough, on any machine, to reach the ceiling: the verdict must be the memory's, never the clock's.
      service = await misbehavingService(60_000);
    });
    after(() => service.close());

    it('fails files whose parser crashes or runs out of memory at the first attempt, alone', async () => {
      const [crashing, hungry, bloated, normal] = await Promise.all([
        uploadFile(service.url, { name: 'crash.zip', content: zip([{ name: 'a', content: 'b' }]) }),
        uploadFile(service.url, {
          name: 'hungry.wav',
          content: Buffer.concat([Buffer.from('RIFF\x24\x00\x00\x00WAVEfmt ', 'latin1'), Buffer.alloc(64)]),
        }),
        uploadFile(service.url, { name: 'bloated.mp4', content: mp4() }),
        uploadFile(service.url, { name: 'normal.csv', content: 'a,b\n1,2\n' }),
      ]);
      expect([crashing.kind, hungry.kind, bloated.kind]).to.deep.equal(['archive', 'audio', 'video']);
      const outcomes = await Promise.all(
        [crashing, hungry, bloated, normal].map((file) =>
          waitForStatus(service.url, file.id, ['processed', 'failed'], 50_000),
        ),
      );
      expect(outcomes.map((file) => [file.status, file.error?.code ?? null, file.attempts])).to.deep.equal([
        ['failed', 'parser_crashed', 1],
        ['failed', 'out_of_memory', 1],
        ['failed', 'out_of_memory', 1],
        ['processed', null, 1],
      ]);
    });
  });
});
