import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { detectToolSandbox, runTool, withToolDirectory, type ToolLimits } from '../worker/externalTool.js';
import { ProcessingError } from '../worker/processors/types.js';
import { rejection } from './support/eventually.js';
import { requireProgram } from './support/tools.js';

const MIB = 1024 * 1024;
const sandbox = detectToolSandbox();
const limits = (overrides: Partial<ToolLimits> = {}): ToolLimits => ({
  deadline: Date.now() + 20_000,
  cpuMs: 10_000,
  maxMemoryBytes: 256 * MIB,
  isolateNetwork: sandbox.isolateNetwork,
  office: sandbox.office,
  ...overrides,
});

/** Processes whose command line holds `marker`, anywhere on the machine: a tool that outlived its run. */
function processesWith(marker: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(marker);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('external tools (worker/externalTool.ts)', function () {
  this.timeout(30_000);
  let tmpdir: string;
  let savedTmpdir: string | undefined;
  before(function () {
    for (const program of ['prlimit', 'timeout', 'sh', 'ffmpeg']) requireProgram(this, program);
  });
  // As in a parser process: the tools' directories go under its own temporary directory.
  beforeEach(() => {
    savedTmpdir = process.env.TMPDIR;
    tmpdir = mkdtempSync(path.join(os.tmpdir(), 'fp-tool-test-'));
    process.env.TMPDIR = tmpdir;
  });
  afterEach(() => {
    if (savedTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpdir;
    rmSync(tmpdir, { recursive: true, force: true });
  });

  const run = (args: string[], runLimits: ToolLimits, tool = 'sh') =>
    withToolDirectory((dir) => runTool({ tool, args, dir, limits: runLimits, purpose: 'do the test work' }));

  it('finds prlimit, and says whether tools may have a network namespace of their own', () => {
    expect(sandbox.prlimit).to.equal(true);
    // Without root it may not (a pod's user), and tools run all the same; root may, where it has CAP_SYS_ADMIN.
    if (process.getuid?.() !== 0) expect(sandbox.isolateNetwork).to.equal(false);
  });

  it('runs a tool in a fresh directory of its own, with a minimal environment, and leaves nothing behind', async () => {
    const out = await run(['-c', 'pwd; echo "$HOME $LANG"; env | wc -l; touch left-here'], limits());
    const [cwd, env, variables] = out.toString().trim().split('\n');
    expect(path.dirname(cwd!)).to.equal(tmpdir);
    expect(env).to.equal(`${cwd} C`);
    // PATH, HOME, LANG, and what sh itself sets (PWD, SHLVL, _).
    expect(Number(variables)).to.be.at.most(6);
    expect(readdirSync(tmpdir)).to.deep.equal([]);
  });

  it('runs a tool all the same where no network namespace is permitted (an unprivileged pod)', async () => {
    const out = await run(['-c', 'echo ran'], limits({ isolateNetwork: false }));
    expect(out.toString()).to.equal('ran\n');
  });

  it('gives a tool no network where a namespace of its own is permitted', async function () {
    if (!sandbox.isolateNetwork) this.skip();
    const out = await run(['-c', 'cat /proc/net/dev | tail -n +3 | cut -d: -f1'], limits());
    expect(out.toString().trim().split(/\s+/)).to.deep.equal(['lo']);
  });

  it("fails a tool that exits non-zero with render_failed, in our words, not the tool's", async () => {
    const err = await rejection(run(['-c', 'echo "secret /internal/path: bad thing" >&2; exit 3'], limits()));
    expect(err).to.be.instanceOf(ProcessingError);
    expect((err as ProcessingError).code).to.equal('render_failed');
    expect(err.message).to.equal(
      'Could not do the test work: the file is damaged or in a form the tool cannot read (exit code 3).',
    );
    expect(readdirSync(tmpdir)).to.deep.equal([]);
  });

  it("fails a tool that is not installed with an error worth a retry, not as the file's fault", async () => {
    const err = await rejection(run([], limits(), 'no-such-renderer'));
    expect(err).not.to.be.instanceOf(ProcessingError);
    expect(err.message).to.equal('no-such-renderer cannot be run on this worker.');
  });

  it('stops a tool past its CPU time with timeout', async () => {
    const started = Date.now();
    const err = await rejection(run(['-c', 'while :; do :; done # cpu-spinner'], limits({ cpuMs: 1_000 })));
    expect((err as ProcessingError).code).to.equal('timeout');
    expect(err.message).to.contain('used more than its 1 s of CPU time');
    expect(Date.now() - started).to.be.below(5_000);
    expect(processesWith('cpu-spinner')).to.deep.equal([]);
    expect(readdirSync(tmpdir)).to.deep.equal([]);
  });

  it('stops ffmpeg past its CPU time with timeout, though it exits on its own at SIGXCPU', async () => {
    const err = await rejection(
      run(
        [
          '-nostdin',
          '-v',
          'error',
          '-threads',
          '1',
          '-f',
          'lavfi',
          '-i',
          'testsrc=size=1920x1080:rate=25',
          '-f',
          'null',
          '-',
        ],
        limits({ cpuMs: 1_000 }),
        'ffmpeg',
      ),
    );
    expect((err as ProcessingError).code).to.equal('timeout');
    expect(err.message).to.contain('used more than its 1 s of CPU time');
    expect(readdirSync(tmpdir)).to.deep.equal([]);
  });

  it('stops a tool past its memory with out_of_memory', async () => {
    // Reversing a video holds every frame: 1,500 frames of 1024 × 1024 are 4.5 GB; the tool may have 256 MiB beyond its code.
    const err = await rejection(
      run(
        [
          ...['-nostdin', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=1024x1024:duration=60:rate=25'],
          ...['-vf', 'reverse', '-f', 'null', '-'],
        ],
        limits(),
        'ffmpeg',
      ),
    );
    expect((err as ProcessingError).code).to.equal('out_of_memory');
    expect(err.message).to.contain('needed more than 256 MiB of memory');
    expect(readdirSync(tmpdir)).to.deep.equal([]);
  });

  it('kills a tool that hangs, with everything it started, at the deadline', async () => {
    const started = Date.now();
    const err = await rejection(
      run(['-c', 'sleep 31.4159 & sleep 31.4159; wait'], limits({ deadline: Date.now() + 1_000 })),
    );
    expect((err as ProcessingError).code).to.equal('timeout');
    expect(err.message).to.contain('took longer than the time left for this file');
    // Stopped a little before the deadline, so that the parser process can report it.
    expect(Date.now() - started).to.be.within(700, 4_000);
    expect(processesWith('31.4159')).to.deep.equal([]);
    expect(readdirSync(tmpdir)).to.deep.equal([]);
  });

  it('kills ffmpeg reading an endless source at the deadline', async () => {
    const err = await rejection(
      run(
        ['-nostdin', '-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=64x64:rate=25', '-f', 'null', '-'],
        limits({ deadline: Date.now() + 1_500 }),
        'ffmpeg',
      ),
    );
    expect((err as ProcessingError).code).to.equal('timeout');
    expect(processesWith('testsrc=size=64x64:rate=25')).to.deep.equal([]);
    expect(readdirSync(tmpdir)).to.deep.equal([]);
  });
});
