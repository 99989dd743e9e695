// Untrusted bytes are parsed in child processes, where a crash or a runaway allocation can only hurt the
// file being parsed. A thread's heap limit is best effort (a large allocation aborts the whole process, and
// ArrayBuffers are not counted); a process's memory is the kernel's to measure and to take back. Each child
// is watched while it parses: past its RSS ceiling, its CPU time or its deadline it is killed, its file fails
// at once (`out_of_memory`, `timeout`, `parser_crashed`), and a fresh child, warm again, takes its place.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuMsOf, rssBytesOf } from '../core/procfs.js';
import { ProcessingError } from './processors/types.js';

export interface ParserProcessesOptions {
  /** Children at most: one per job the worker runs at once. */
  size: number;
  /** RSS above which a child is killed and its file fails with `out_of_memory` (PARSER_MAX_RSS_BYTES). */
  maxRssBytes: number;
  /** Modules every child imports as it starts (the parsers), so no file waits for them. */
  preload?: string[];
  /** How often a busy child's memory and CPU time are read. */
  watchIntervalMs?: number;
}

/** What a child is given at start, in its environment. */
export const PRELOAD_ENV = 'FILE_PROCESSOR_PARSER_PRELOAD';

/** A function exported by a module, run in a child with arguments and result copied across. */
export type Analysis<A extends unknown[], R> = (...args: A) => Promise<R>;

/** What a child sends back: a value, or an error described well enough to rebuild it; `ready` once it has preloaded. */
export type ParserReply =
  | { ok: true; value: unknown }
  | { ok: false; error: { permanent: boolean; code: string | null; message: string } }
  | { ready: true }
  /** A tool (worker/externalTool.ts) started or ended: while one runs, the child waits, and its RSS is not its doing. */
  | { tool: boolean };

/** What a child is asked to do: call `name` from `module` with `args`. */
export interface ParserRequest {
  module: string;
  name: string;
  args: unknown[];
}

/** When a parse must stop: a wall-clock deadline (epoch ms) and a CPU-time budget. */
export interface ParseLimits {
  deadline: number;
  cpuMs: number;
}

interface Task extends ParserRequest, ParseLimits {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface Child {
  process: ChildProcess;
  ready: Promise<void>;
  /** It said it was ready: it can start, so replacing it when it dies cannot loop. */
  started: boolean;
  /** Its RSS once ready, before any file. */
  readyRss: number;
  task?: Task;
  /** CPU time the child had used when its task started. */
  cpuAtStart: number;
  timer?: NodeJS.Timeout;
  /** Why we killed it, when we did. */
  killedFor?: ProcessingError;
  /** The end of its stderr: V8 says there why it aborted. */
  stderr: string;
  /** A tool of its task is running (under limits of its own): the child only waits for it. */
  toolRunning?: boolean;
}

const CHILD_ENTRY = new URL('./parserProcess.js', import.meta.url);
/** A child's temporary directory is `fp-parser-<worker pid>-<random>`: whose it was outlives the worker. */
const TMPDIR_PREFIX = 'fp-parser-';
const STDERR_KEPT = 8 * 1024;
/** How long closing waits for idle children to exit on their own before killing them. */
const CLOSE_GRACE_MS = 2_000;
const MIB = 1024 * 1024;
/** What a child holds before it parses anything (Node, libvips, pdf.js and its worker code): measured at about 130 MiB. */
const CHILD_BASELINE_BYTES = 128 * MIB;
const V8_HEAP_ABORT = /heap out of memory|heap limit|process out of memory|invalid array length|invalid size error/i;

/**
 * A smaller old generation than this puts V8 in its low-memory mode, whose frequent full collections cost pdf.js
 * 40 to 70% more CPU time per PDF (measured in a parser process: 600 MiB as slow as 128, 1 GiB as fast as none).
 */
const MIN_OLD_SPACE_BYTES = 1024 * MIB;

/**
 * V8's old generation, sized from the ceiling: what the baseline leaves, so that with a large ceiling V8 stops a
 * parser that grows its JavaScript heap inside the child. Never below MIN_OLD_SPACE_BYTES: under that, the RSS
 * watch is what stops it, at no cost to every normal file. `gc` exposed for the renderers (worker/renderers), which
 * collect an analysis's garbage before a tool's run keeps the child busy, and watched, for longer.
 */
export function v8Flags(maxRssBytes: number): string[] {
  return [
    `--max-old-space-size=${Math.floor(Math.max(MIN_OLD_SPACE_BYTES, maxRssBytes - CHILD_BASELINE_BYTES) / MIB)}`,
    '--expose-gc',
  ];
}

/**
 * Removes the temporary directories of parsers whose worker is gone (killed before it could remove them), leaving
 * those of live workers alone; answers how many went. A worker runs it as it starts.
 */
export function removeDeadParserDirectories(root = os.tmpdir()): number {
  let removed = 0;
  for (const name of readdirSync(root)) {
    const owner = new RegExp(`^${TMPDIR_PREFIX}(\\d+)-`).exec(name)?.[1];
    if (owner === undefined || isAlive(Number(owner))) continue;
    rmSync(path.join(root, name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/** Whether a process with this pid exists (EPERM: it does, and is someone else's). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class ParserProcesses {
  private readonly children = new Set<Child>();
  private readonly idle: Child[] = [];
  private readonly waiting: Task[] = [];
  private watch: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: ParserProcessesOptions) {}

  /**
   * Runs `analysis` (an export of `module`, found by its name) in a child. Rejects with a ProcessingError
   * `timeout` past the deadline or the CPU budget, `out_of_memory` past the RSS ceiling, `parser_crashed`
   * when the child dies otherwise.
   */
  run<A extends unknown[], R>(module: string, analysis: Analysis<A, R>, args: A, limits: ParseLimits): Promise<R> {
    if (this.closed) return Promise.reject(new Error('The parser processes are closed.'));
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({
        module,
        name: analysis.name,
        args,
        ...limits,
        resolve,
        reject,
      });
      this.dispatch();
    });
  }

  /** Children alive now (busy or idle). */
  get size(): number {
    return this.children.size;
  }

  /** Process ids of the children alive now. */
  pids(): number[] {
    return [...this.children].map((child) => child.process.pid!).filter(Boolean);
  }

  /** Starts every child now and resolves once each has imported its preloaded modules. */
  async warm(): Promise<void> {
    while (this.children.size < this.options.size) this.idle.push(this.spawn());
    await Promise.all([...this.children].map((child) => child.ready));
  }

  /** Stops every child; tasks still waiting or running are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watch);
    for (const task of this.waiting.splice(0)) task.reject(new Error('The parser processes are closed.'));
    const exits = [...this.children].map(
      (child) =>
        new Promise((resolve) =>
          child.process.exitCode !== null || child.process.signalCode !== null
            ? resolve(null)
            : child.process.once('exit', resolve),
        ),
    );
    for (const child of this.children) this.retire(child);
    const late = setTimeout(() => this.children.forEach((child) => this.kill(child)), CLOSE_GRACE_MS);
    await Promise.all(exits);
    clearTimeout(late);
  }

  /** An idle child is let go (it exits when its channel closes, as a normal exit); a busy one is killed. */
  private retire(child: Child): void {
    if (child.task || !child.process.connected) return this.kill(child);
    child.process.disconnect();
  }

  private dispatch(): void {
    while (this.waiting.length > 0 && !this.closed) {
      const child = this.idle.pop() ?? (this.children.size < this.options.size ? this.spawn() : undefined);
      if (!child) return;
      this.start(child, this.waiting.shift()!);
    }
  }

  private start(child: Child, task: Task): void {
    child.task = task;
    const budget = Math.round(task.deadline - Date.now());
    child.timer = setTimeout(
      () =>
        this.kill(
          child,
          new ProcessingError('timeout', `Parsing took longer than its time limit of ${budget} ms; it was stopped.`),
        ),
      Math.max(0, budget),
    );
    this.watch ??= setInterval(() => this.measure(), this.options.watchIntervalMs ?? 25);
    const request: ParserRequest = { module: task.module, name: task.name, args: task.args };
    // A child that dies before reading it fails the task through its exit.
    void child.ready.then(() => {
      if (child.task !== task || !child.process.connected) return;
      child.cpuAtStart = cpuMsOf(child.process.pid!) ?? 0;
      child.process.send(request, (err) => err && this.kill(child));
    });
  }

  /** Reads every busy child's RSS and CPU time; kills the ones past their limits. */
  private measure(): void {
    let busy = 0;
    for (const child of this.children) {
      const task = child.task;
      if (!task || child.killedFor) continue;
      busy++;
      const pid = child.process.pid!;
      const rss = rssBytesOf(pid);
      // While it waits for a tool it allocates nothing: what it holds then, its parse held, and was watched.
      if (rss !== null && rss > this.options.maxRssBytes && !child.toolRunning) {
        this.kill(
          child,
          new ProcessingError(
            'out_of_memory',
            `The parser needed more than ${Math.round(this.options.maxRssBytes / MIB)} MiB of memory for this file; it was stopped.`,
          ),
        );
        continue;
      }
      const cpu = cpuMsOf(pid);
      if (cpu !== null && cpu - child.cpuAtStart > task.cpuMs) {
        this.kill(
          child,
          new ProcessingError('timeout', `Parsing used more than its ${task.cpuMs} ms of CPU time; it was stopped.`),
        );
      }
    }
    if (busy === 0) {
      clearInterval(this.watch);
      this.watch = undefined;
    }
  }

  /** SIGKILL: a parser stuck in a loop or a native call hears nothing else. Its exit settles the task. */
  private kill(child: Child, reason?: ProcessingError): void {
    child.killedFor ??= reason ?? new ProcessingError('parser_crashed', 'The parser stopped on this file.');
    child.process.kill('SIGKILL');
  }

  private spawn(): Child {
    // The child's own os.tmpdir(), removed when it exits: a parser killed while it held a copy of a blob leaves nothing.
    const tmpdir = mkdtempSync(path.join(os.tmpdir(), `${TMPDIR_PREFIX}${process.pid}-`));
    const subprocess = fork(CHILD_ENTRY, [], {
      execArgv: v8Flags(this.options.maxRssBytes),
      env: {
        ...process.env,
        [PRELOAD_ENV]: JSON.stringify(this.options.preload ?? []),
        TMPDIR: tmpdir,
        // glibc gives each thread that allocates (libvips', libuv's) an arena of its own and keeps what it freed there:
        // a child decoding 12-megapixel JPEGs grew from 136 to 184 MiB and was replaced every fifth file, each
        // replacement a fresh start with every parser preloaded. Two arenas hold it at 137 MiB, for one file at a time.
        MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
      },
      serialization: 'advanced',
      // Parsers' console chatter is not ours to log; stderr is kept (its end) to tell why a child aborted.
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    const child: Child = {
      process: subprocess,
      ready: Promise.resolve(),
      started: false,
      readyRss: 0,
      cpuAtStart: 0,
      stderr: '',
    };
    // Ready at its first message; a child that dies first is no longer waited for.
    child.ready = new Promise((resolve) => {
      subprocess.once('message', () => {
        child.started = true;
        child.readyRss = rssBytesOf(subprocess.pid!) ?? 0;
        resolve();
      });
      subprocess.once('exit', () => resolve());
    });
    subprocess
      .stderr!.setEncoding('utf8')
      .on('data', (text: string) => (child.stderr = (child.stderr + text).slice(-STDERR_KEPT)));
    // Idle children must not keep the worker alive; a running task's deadline timer does.
    subprocess.unref();
    subprocess.channel?.unref();
    // Sends to a child that just died fail here and in send's callback; its exit tells the rest.
    subprocess.on('error', () => undefined);
    this.children.add(child);
    subprocess.on('message', (reply: ParserReply) => {
      const task = child.task;
      if ('tool' in reply) {
        child.toolRunning = reply.tool;
        return;
      }
      if (!task || 'ready' in reply || child.killedFor) return;
      child.toolRunning = false;
      this.settle(child);
      if (reply.ok) task.resolve(reply.value);
      else task.reject(rebuildError(reply.error));
      // A parser cut off by a failed read may keep what it held (pdf.js keeps a document waiting for its range).
      if (!reply.ok && !reply.error.permanent) return this.retire(child);
      // V8 and malloc keep what a big file made them take, and the next file would have that much less room:
      // a child left holding a quarter of its headroom is replaced.
      if ((rssBytesOf(subprocess.pid!) ?? 0) > child.readyRss + (this.options.maxRssBytes - child.readyRss) / 4)
        return this.retire(child);
      this.idle.push(child);
      this.dispatch();
    });
    subprocess.once('exit', (code, signal) => {
      // At once: the worker may be exiting too.
      rmSync(tmpdir, { recursive: true, force: true });
      const task = child.task;
      this.children.delete(child);
      const idleAt = this.idle.indexOf(child);
      if (idleAt >= 0) this.idle.splice(idleAt, 1);
      if (task) {
        this.settle(child);
        task.reject(child.killedFor ?? causeOfDeath(code, signal, child.stderr));
      }
      // Keep the pool warm for the next file, as it was before this one.
      if (!this.closed && child.started && this.children.size < this.options.size) this.idle.push(this.spawn());
      this.dispatch();
    });
    return child;
  }

  private settle(child: Child): void {
    clearTimeout(child.timer);
    child.task = undefined;
  }
}

/**
 * Why a child died on its own. SIGKILL that we did not send is the kernel's OOM killer (the child's
 * oom_score_adj makes it the first choice); V8 aborts with a message on stderr when its heap is full.
 */
function causeOfDeath(code: number | null, signal: NodeJS.Signals | null, stderr: string): ProcessingError {
  if (signal === 'SIGKILL' || V8_HEAP_ABORT.test(stderr)) {
    return new ProcessingError('out_of_memory', 'The parser ran out of memory on this file; it was stopped.');
  }
  return new ProcessingError('parser_crashed', `The parser crashed on this file (${signal ?? `exit code ${code}`}).`);
}

/** A ProcessingError stays permanent across the process boundary; anything else is retried. */
function rebuildError(error: { permanent: boolean; code: string | null; message: string }): Error {
  if (error.permanent && error.code) return new ProcessingError(error.code, error.message);
  return Object.assign(new Error(error.message), error.code ? { code: error.code } : {});
}
