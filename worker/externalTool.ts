// Programs we did not write (ffmpeg, pdftoppm) run on untrusted bytes under the parsers' own limits, enforced by
// the kernel rather than by us: `prlimit` caps the address space and CPU time, coreutils' `timeout` kills at the
// job's deadline even if the parser process that started it is killed first, and `unshare --net` (where we may)
// leaves the tool no network. Each run gets a fresh directory inside the parser's temporary directory, removed
// after, and any failure of the tool is a ProcessingError: the file fails, never the worker.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cpuMsOf } from '../core/procfs.js';
import { ProcessingError } from './processors/types.js';

/** What a tool may use: the parser's RSS ceiling (and its code, see TOOL_CODE_BYTES), its CPU budget, the job's deadline. */
export interface ToolLimits {
  /** Epoch ms; the tool is killed then. */
  deadline: number;
  cpuMs: number;
  maxMemoryBytes: number;
  /** Run in a network namespace of its own (`unshare --net`), where the worker found it may. */
  isolateNetwork: boolean;
  /** LibreOffice's `soffice` is installed (the documents image): office documents get renderings too. */
  office: boolean;
}

/** What this machine offers to confine a tool, and the optional tools it has, found once as the worker starts. */
export interface ToolSandbox {
  prlimit: boolean;
  isolateNetwork: boolean;
  office: boolean;
}

/**
 * Address space a tool may map beyond the parsers' memory ceiling for its code: ffmpeg maps its hundred-odd libraries
 * into 280 to 300 MiB of address space before it reads a byte (measured: it cannot start under 280 MiB), while its RSS
 * is 60 MiB. Mapped code is shared and read-only; what a file makes it allocate is what the rest of the limit is for.
 */
export const TOOL_CODE_BYTES = 384 * 1024 * 1024;

/** The end of a tool's stderr is kept to tell a memory failure from a corrupt file; more is chatter. */
const STDERR_KEPT = 4 * 1024;
/** A tool writes its output to a file in its directory; what it prints on stdout is never needed in bulk. */
const STDOUT_KEPT = 64 * 1024;
/** What a tool prints when an allocation failed under its address-space limit. */
const ALLOCATION_FAILED = /cannot allocate|out of memory|bad_alloc|ENOMEM|failed to allocate|memory exhausted/i;
/**
 * A tool is stopped this long before the parser's own deadline, so that the parser reports it (naming the tool) and
 * lives on, rather than being killed with it and replaced.
 */
const DEADLINE_MARGIN_MS = 250;
/** `timeout` exits 124 when it stopped the tool, 137 when it had to SIGKILL it. */
const TIMEOUT_EXIT_CODES = new Set([124, 137]);
/** `timeout` exits 127 when the tool is not installed, 126 when it cannot be run. */
const NOT_RUNNABLE_EXIT_CODES = new Set([126, 127]);

/** Whether `prlimit` is installed and `unshare --net` works here (as root it does; in an unprivileged pod it does not). */
export function detectToolSandbox(): ToolSandbox {
  const works = (command: string, args: string[]) => spawnSync(command, args, { stdio: 'ignore' }).status === 0;
  return {
    prlimit: works('prlimit', ['--cpu=1', '--', 'true']),
    isolateNetwork: works('unshare', ['--net', '--', 'true']),
    office: onPath('soffice'),
  };
}

/** Whether an executable `name` is in a directory of PATH (without starting it: soffice takes a second to). */
function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Runs `use` with a fresh directory for a tool's files, inside the parser's own temporary directory, removed after. */
export async function withToolDirectory<T>(use: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fp-tool-'));
  try {
    return await use(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface ToolRun {
  /** The program, found on PATH. */
  tool: string;
  args: string[];
  /** Its working directory and HOME (see withToolDirectory). */
  dir: string;
  limits: ToolLimits;
  /** What it does, in our words, for the error: "render the PDF's first page". */
  purpose: string;
  /** A failure whose stderr says this means the input had nothing for the tool to work on: it resolves, with no output. */
  nothingToDo?: RegExp;
}

/**
 * Runs a tool under the limits; resolves with its stdout (bounded) when it exits 0 with no failed allocation.
 * Rejects with ProcessingError `timeout` past the deadline or the CPU time, `out_of_memory` when an allocation
 * failed, `render_failed` otherwise; with a plain Error (worth a retry) when the tool cannot be run here.
 */
export function runTool({ tool, args, dir, limits, purpose, nothingToDo }: ToolRun): Promise<Buffer> {
  const cpuSeconds = Math.max(1, Math.ceil(limits.cpuMs / 1000));
  const stopAt = limits.deadline - DEADLINE_MARGIN_MS;
  const wallSeconds = Math.max(0.1, (stopAt - Date.now()) / 1000);
  const confined = [
    'prlimit',
    `--as=${limits.maxMemoryBytes + TOOL_CODE_BYTES}`,
    // SIGXCPU at the budget (the soft limit), so that it is told from the deadline's SIGKILL; SIGKILL a second later.
    `--cpu=${cpuSeconds}:${cpuSeconds + 1}`,
    '--',
    'timeout',
    '--signal=KILL',
    `${wallSeconds.toFixed(3)}s`,
    tool,
    ...args,
  ];
  const [command, ...rest] = limits.isolateNetwork ? ['unshare', '--net', '--', ...confined] : confined;
  const cpuBefore = reapedCpuMs();
  // The worker watches a parser's RSS while it parses (worker/parsers.ts); while it waits for its tool, which has limits
  // of its own, what it holds does not grow, and is not watched.
  process.send?.({ tool: true });
  return new Promise<Buffer>((resolve, reject) => {
    const child = spawn(command!, rest, {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LANG: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so that everything it started goes with it.
      detached: true,
    });
    let stdout = Buffer.alloc(0);
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < STDOUT_KEPT) stdout = Buffer.concat([stdout, chunk]).subarray(0, STDOUT_KEPT);
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-STDERR_KEPT)));
    let late = false;
    const timer = setTimeout(
      () => {
        late = true;
        killGroup(child.pid);
      },
      Math.max(0, stopAt - Date.now()),
    );
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Whatever the tool left running in its group goes with it.
      killGroup(child.pid);
      // ffmpeg takes a failed allocation in an input for its end, and exits 0 with what it had.
      if (code === 0 && !ALLOCATION_FAILED.test(stderr)) return resolve(stdout);
      // The worker's fault, not the file's: an error worth a retry, and the alert on failed jobs.
      if (NOT_RUNNABLE_EXIT_CODES.has(code ?? 0)) return reject(new Error(`${tool} cannot be run on this worker.`));
      if (code !== null && !TIMEOUT_EXIT_CODES.has(code) && nothingToDo?.test(stderr)) return resolve(stdout);
      const overCpu = reapedCpuMs() - cpuBefore >= cpuSeconds * 1000 - CPU_TICKS_SLACK_MS;
      reject(toolFailure({ code, signal, stderr, late: late || Date.now() >= stopAt, overCpu, limits, purpose }));
    });
  }).finally(() => process.send?.({ tool: false }));
}

/**
 * CPU time of this process's children that have been waited for (with theirs): what a tool used, read before and
 * after it. Its signal cannot say: ffmpeg catches SIGXCPU and exits 255 without a word.
 */
function reapedCpuMs(): number {
  return (cpuMsOf(process.pid, { reaped: true }) ?? 0) - (cpuMsOf(process.pid) ?? 0);
}

/** CPU time is counted in ticks of 10 ms: a tool stopped at its budget may show a tick or two less. */
const CPU_TICKS_SLACK_MS = 20;

function killGroup(pid: number | undefined): void {
  try {
    if (pid) process.kill(-pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  late: boolean;
  overCpu: boolean;
  limits: ToolLimits;
  purpose: string;
}

/** Why a tool failed, in our words: its own wording names our paths and is not the API's to show. */
function toolFailure({ code, signal, stderr, late, overCpu, limits, purpose }: Exit): ProcessingError {
  if (overCpu || signal === 'SIGXCPU') {
    return new ProcessingError(
      'timeout',
      `The tool that had to ${purpose} used more than its ${Math.ceil(limits.cpuMs / 1000)} s of CPU time; it was stopped.`,
    );
  }
  if (late || TIMEOUT_EXIT_CODES.has(code ?? 0)) {
    return new ProcessingError(
      'timeout',
      `The tool that had to ${purpose} took longer than the time left for this file; it was stopped.`,
    );
  }
  // A SIGKILL that neither we nor its limits sent is the kernel's OOM killer (a tool inherits its parser's score).
  if (ALLOCATION_FAILED.test(stderr) || signal === 'SIGKILL') {
    return new ProcessingError(
      'out_of_memory',
      `The tool that had to ${purpose} needed more than ${Math.round(limits.maxMemoryBytes / 2 ** 20)} MiB of memory for this file; it was stopped.`,
    );
  }
  return new ProcessingError(
    'render_failed',
    `Could not ${purpose}: the file is damaged or in a form the tool cannot read (${signal ?? `exit code ${code}`}).`,
  );
}
