// A real clamd (Debian's clamav-daemon) for tests: started in the foreground on a free port of 127.0.0.1 (and a
// unix socket) in a temporary directory, with a signature database the test writes (no official signatures: a start
// takes seconds, not the minute and 1 GiB of the real ones), stopped, killed and started again at will.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './net.js';
import { inCI } from './tools.js';

export const CLAMD = '/usr/sbin/clamd';

/** A signature of our own: any file holding `bytes` (a member of an archive included) is reported as `name`. */
export interface Signature {
  name: string;
  bytes: string | Buffer;
}

/** EICAR's anti-malware test file, put together here so that no file of the repository holds it whole. */
export const EICAR = ['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS', '-TEST-FILE!$H+H*'].join('');
export const EICAR_SIGNATURE: Signature = { name: 'FileProcessor.Test.EICAR', bytes: EICAR };
/** Bytes a test hides in a file inside a zip (deflated there: only clamd's unpacking can find them). */
export const ZIP_MARKER = 'file-processor test marker, found by clamd inside archives';
export const ZIP_MARKER_SIGNATURE: Signature = { name: 'FileProcessor.Test.ZipMarker', bytes: ZIP_MARKER };
export const TEST_SIGNATURES: Signature[] = [EICAR_SIGNATURE, ZIP_MARKER_SIGNATURE];

/** The name clamd gives a signature of a database nobody signed (ours): `<name>.UNOFFICIAL`. */
export const reportedName = (signature: Signature): string => `${signature.name}.UNOFFICIAL`;

export interface ClamdOptions {
  /** clamd's StreamMaxLength, in bytes: a longer INSTREAM is refused (clamd's default: 100 MiB). */
  streamMaxLength?: number;
  /** MaxFileSize and MaxScanSize, in bytes: past them clamd alerts Heuristics.Limits.Exceeded.* (AlertExceedsMax). */
  maxFileSize?: number;
  maxScanSize?: number;
  /** The database at start (TEST_SIGNATURES unless given). */
  signatures?: Signature[];
}

export interface Clamd {
  /** `tcp://127.0.0.1:<port>`, the same after every start. */
  address: string;
  port: number;
  /** The unix socket clamd also listens on. */
  socketPath: string;
  /** The temporary directory: clamd.conf, db/, tmp/, clamd.log. */
  dir: string;
  /** How long the last start took, until clamd answered PING (ms). */
  readonly lastStartMs: number;
  /** Whether clamd's process is alive (frozen by SIGSTOP included). */
  readonly running: boolean;
  /** Starts clamd again (same port, configuration and database); resolves once it answers PING. */
  start(): Promise<void>;
  /** Sends clamd `signal` (SIGKILL by default: a crash); SIGSTOP and SIGCONT freeze and thaw it. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once clamd has exited (at once when it is not running). */
  exited(): Promise<void>;
  /** Stops clamd (SIGTERM, its clean exit; SIGKILL after 10 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Rewrites the database with `signatures`, has clamd RELOAD it, and resolves once a scan sees the new one. */
  setSignatures(signatures: Signature[]): Promise<void>;
  /** Stops clamd and removes its directory. */
  destroy(): Promise<void>;
}

const running = new Set<ChildProcess>();
const directories = new Set<string>();
let exitHookInstalled = false;

/** Skips the calling test or suite when clamd is not installed, unless in CI (test/support/tools.ts's rule). */
export function requireClamd(context: Mocha.Context): void {
  if (existsSync(CLAMD)) return;
  const hint = 'apt-get install -y --no-install-recommends clamav-daemon';
  if (inCI()) throw new Error(`${CLAMD} is not installed, and CI must run this test: ${hint} (see .ci/run).`);
  process.stderr.write(`      skipped: ${CLAMD} is not installed (${hint})\n`);
  context.skip();
}

/**
 * Starts a clamd of the test's own and resolves once it answers PING (about 1-2 s with this tiny database; much
 * longer on a machine that is busy). The test must destroy it; one still running when the test process exits is
 * killed then, and clamd dies with its parent anyway (setpriv --pdeathsig), so a killed test run leaves none.
 */
export async function startClamd(options: ClamdOptions = {}): Promise<Clamd> {
  if (!existsSync(CLAMD)) throw new Error(`${CLAMD} is not installed (apt-get install clamav-daemon).`);
  installExitHook();
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-clamd-'));
  directories.add(dir);
  const database = path.join(dir, 'db');
  const socketPath = path.join(dir, 'clamd.sock');
  const logFile = path.join(dir, 'clamd.log');
  mkdirSync(database);
  mkdirSync(path.join(dir, 'tmp'));
  const config = path.join(dir, 'clamd.conf');
  writeFileSync(config, clamdConf({ dir, port, socketPath, logFile, options }));
  writeDatabase(dir, options.signatures ?? TEST_SIGNATURES);

  let child: ChildProcess | undefined;
  let output = '';
  let lastStartMs = 0;
  let generation = 0;
  const isRunning = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const exited = async () => {
    if (!child || !isRunning()) return;
    const exiting = child;
    await new Promise((resolve) => exiting.once('exit', resolve));
  };
  const log = () => `${output}${existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''}`.slice(-4_000);

  const handle: Clamd = {
    address: `tcp://127.0.0.1:${port}`,
    port,
    socketPath,
    dir,
    get lastStartMs() {
      return lastStartMs;
    },
    get running() {
      return isRunning();
    },
    async start() {
      if (isRunning()) throw new Error('clamd is already running');
      const began = Date.now();
      // setpriv: clamd gets SIGKILL when this process dies, however it dies
      const started = spawn('setpriv', ['--pdeathsig', 'KILL', '--', CLAMD, '--foreground', '-c', config], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = started;
      running.add(started);
      started.once('exit', () => running.delete(started));
      output = '';
      const keep = (data: Buffer) => (output = (output + data.toString()).slice(-4_000));
      started.stdout.on('data', keep);
      started.stderr.on('data', keep);
      for (;;) {
        if (started.exitCode !== null || started.signalCode !== null)
          throw new Error(`clamd exited (${started.exitCode ?? started.signalCode}) while starting:\n${log()}`);
        if ((await clamdSays(port, 'zPING\0', 1_000).catch(() => '')) === 'PONG') break;
        if (Date.now() - began > 60_000) {
          started.kill('SIGKILL');
          throw new Error(`clamd did not answer PING on port ${port} within 60 s:\n${log()}`);
        }
        await sleep(25);
      }
      lastStartMs = Date.now() - began;
    },
    kill(signal = 'SIGKILL') {
      if (isRunning()) child!.kill(signal);
    },
    exited,
    async stop() {
      if (!isRunning()) return;
      const stopping = child!;
      stopping.kill('SIGCONT'); // a frozen clamd cannot exit
      stopping.kill('SIGTERM');
      const killer = setTimeout(() => stopping.kill('SIGKILL'), 10_000);
      await exited();
      clearTimeout(killer);
    },
    async setSignatures(signatures) {
      generation += 1;
      // a signature that only this generation of the database has: once a scan finds it, clamd uses the new one
      const probe: Signature = {
        name: `FileProcessor.Test.Reload${generation}`,
        bytes: `file-processor reload probe ${randomBytes(8).toString('hex')}`,
      };
      writeDatabase(dir, [...signatures, probe]);
      const answer = await clamdSays(port, 'zRELOAD\0', 10_000);
      if (answer !== 'RELOADING') throw new Error(`clamd answered "${answer}" to RELOAD`);
      const expected = `stream: ${reportedName(probe)} FOUND`;
      const deadline = Date.now() + 30_000;
      while ((await clamdSays(port, instreamOf(Buffer.from(probe.bytes)), 10_000)) !== expected) {
        if (Date.now() > deadline) throw new Error(`clamd did not load its new signatures within 30 s:\n${log()}`);
        await sleep(25);
      }
    },
    async destroy() {
      await handle.stop();
      rmSync(dir, { recursive: true, force: true });
      directories.delete(dir);
    },
  };
  try {
    await handle.start();
  } catch (err) {
    await handle.destroy();
    throw err;
  }
  return handle;
}

function clamdConf({
  dir,
  port,
  socketPath,
  logFile,
  options,
}: {
  dir: string;
  port: number;
  socketPath: string;
  logFile: string;
  options: ClamdOptions;
}): string {
  const lines = [
    'Foreground yes',
    `TCPSocket ${port}`,
    'TCPAddr 127.0.0.1',
    `LocalSocket ${socketPath}`,
    `DatabaseDirectory ${path.join(dir, 'db')}`,
    `TemporaryDirectory ${path.join(dir, 'tmp')}`,
    `LogFile ${logFile}`,
    'LogTime yes',
    // as production should: a file past a limit is alerted (Heuristics.Limits.Exceeded.*), never called clean
    'AlertExceedsMax yes',
    'MaxThreads 4',
    // no bytecode database here, and no need for clamd's hourly check of the database: tests RELOAD it
    'Bytecode no',
    'SelfCheck 3600',
  ];
  if (options.streamMaxLength !== undefined) lines.push(`StreamMaxLength ${options.streamMaxLength}`);
  if (options.maxFileSize !== undefined) lines.push(`MaxFileSize ${options.maxFileSize}`);
  if (options.maxScanSize !== undefined) lines.push(`MaxScanSize ${options.maxScanSize}`);
  return `${lines.join('\n')}\n`;
}

/** Writes the database (an .ndb: name, any target, any offset, the bytes in hex), replacing it in one step. */
function writeDatabase(dir: string, signatures: Signature[]): void {
  for (const { name } of signatures)
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`"${name}" is not a name clamd takes for a signature`);
  const lines = signatures.map(({ name, bytes }) => `${name}:0:*:${Buffer.from(bytes).toString('hex')}`);
  const staged = path.join(dir, 'test.ndb.new');
  writeFileSync(staged, `${lines.join('\n')}\n`);
  renameSync(staged, path.join(dir, 'db', 'test.ndb'));
}

/** `bytes` as one INSTREAM command: the command, one chunk, the end. */
function instreamOf(bytes: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([Buffer.from('zINSTREAM\0'), length, bytes, Buffer.alloc(4)]);
}

/** Sends `request` to clamd on `port` and resolves with its answer (up to its NUL); independent of core/scanner. */
export function clamdSays(port: number, request: string | Buffer, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: '127.0.0.1', port });
    let answer = '';
    const done = (err?: Error) => {
      socket.destroy();
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(answer);
    };
    const timer = setTimeout(() => done(new Error(`clamd did not answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (data: Buffer) => {
      answer += data.toString('latin1');
      const end = answer.indexOf('\0');
      if (end !== -1) {
        answer = answer.slice(0, end);
        done();
      }
    });
    socket.on('error', done);
    socket.on('close', () => done(new Error(`clamd closed the connection (after "${answer}")`)));
    socket.write(request);
  });
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
    for (const dir of directories) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });
}
