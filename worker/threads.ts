// Parsing runs in worker threads, off the event loop that keeps bee-queue's stall heartbeats, the
// database writes and the admin server going. A thread that overruns its deadline is terminated; one
// that crashes or runs out of memory dies alone. Either way the file fails and a fresh thread replaces it.
import { Worker } from 'node:worker_threads';
import { ProcessingError } from './processors/types.js';

export interface ParsingThreadsOptions {
  /** Threads at most: one per job the worker runs at once. */
  size: number;
  /** Heap limit of one thread: a parser that needs more fails its file instead of the process. */
  maxHeapMb?: number;
  /** Modules every thread imports as it starts (the parsers), so no file waits for them. */
  preload?: string[];
}

/** What a thread is given at start. */
export interface ThreadData {
  preload: string[];
}

/** A function exported by a module, run in a thread with arguments and result copied across. */
export type Analysis<A extends unknown[], R> = (...args: A) => Promise<R>;

/** What a thread sends back: a value, or an error described well enough to rebuild it; `ready` once it has preloaded. */
export type ThreadReply = { ok: true; value: unknown } | { ok: false; error: { permanent: boolean; code: string | null; message: string } } | { ready: true };

/** What a thread is asked to do: call `name` from `module` with `args`. */
export interface ThreadRequest {
  module: string;
  name: string;
  args: unknown[];
}

interface Task extends ThreadRequest {
  deadline: number;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface Running {
  task: Task;
  timer: NodeJS.Timeout;
}

const DEFAULT_MAX_HEAP_MB = 512;
const THREAD_ENTRY = new URL('./parsingThread.js', import.meta.url);

export class ParsingThreads {
  private readonly threads = new Set<Worker>();
  private readonly idle: Worker[] = [];
  private readonly running = new Map<Worker, Running>();
  private readonly waiting: Task[] = [];
  private readonly ready = new Map<Worker, Promise<void>>();
  private closed = false;

  constructor(private readonly options: ParsingThreadsOptions) {}

  /**
   * Runs `analysis` (an export of `module`, found by its name) in a thread. Rejects with a
   * ProcessingError `timeout` at `deadline` (epoch ms), `parser_crashed` or `out_of_memory`.
   */
  run<A extends unknown[], R>(module: string, analysis: Analysis<A, R>, args: A, deadline: number): Promise<R> {
    if (this.closed) return Promise.reject(new Error('The parsing threads are closed.'));
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ module, name: analysis.name, args, deadline, resolve: resolve as (value: unknown) => void, reject });
      this.dispatch();
    });
  }

  /** Threads alive now (busy or idle). */
  get size(): number {
    return this.threads.size;
  }

  /** Starts every thread now and resolves once each has imported its preloaded modules. */
  async warm(): Promise<void> {
    while (this.threads.size < this.options.size) this.idle.push(this.spawn());
    await Promise.all(this.ready.values());
  }

  /** Stops every thread; tasks still waiting or running are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.waiting.splice(0)) task.reject(new Error('The parsing threads are closed.'));
    await Promise.all([...this.threads].map((thread) => thread.terminate()));
  }

  private dispatch(): void {
    while (this.waiting.length > 0 && !this.closed) {
      const thread = this.idle.pop() ?? (this.threads.size < this.options.size ? this.spawn() : undefined);
      if (!thread) return;
      this.start(thread, this.waiting.shift()!);
    }
  }

  private start(thread: Worker, task: Task): void {
    const budget = task.deadline - Date.now();
    const timer = setTimeout(() => {
      this.settle(thread, () => task.reject(new ProcessingError('timeout', `Parsing took longer than its time limit of ${Math.round(budget)} ms; it was stopped.`)));
      // The thread may be stuck in a loop: only terminating it frees it.
      void thread.terminate();
    }, Math.max(0, budget));
    this.running.set(thread, { task, timer });
    const request: ThreadRequest = { module: task.module, name: task.name, args: task.args };
    thread.postMessage(request);
  }

  private spawn(): Worker {
    const maxOldGenerationSizeMb = this.options.maxHeapMb ?? DEFAULT_MAX_HEAP_MB;
    const workerData: ThreadData = { preload: this.options.preload ?? [] };
    const thread = new Worker(THREAD_ENTRY, { workerData, resourceLimits: { maxOldGenerationSizeMb }, stdout: true, stderr: true });
    // Ready at its first message; a thread that dies first is no longer waited for.
    this.ready.set(thread, new Promise((resolve) => (thread.once('message', () => resolve()), thread.once('exit', () => resolve()))));
    // Parsers' console chatter is not ours to log; drain it so the pipes never fill.
    thread.stdout.resume();
    thread.stderr.resume();
    // Idle threads must not keep the process alive; a running task's deadline timer does.
    thread.unref();
    this.threads.add(thread);
    thread.on('message', (reply: ThreadReply) => {
      const running = this.running.get(thread);
      if (!running || 'ready' in reply) return;
      this.settle(thread, () => (reply.ok ? running.task.resolve(reply.value) : running.task.reject(rebuildError(reply.error))));
      this.idle.push(thread);
      this.dispatch();
    });
    thread.on('error', (err: Error & { code?: string }) => {
      const running = this.running.get(thread);
      if (!running) return;
      const error =
        err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new ProcessingError('out_of_memory', `The parser needed more than ${maxOldGenerationSizeMb} MiB of memory for this file; it was stopped.`)
          : new ProcessingError('parser_crashed', 'The parser crashed on this file.');
      this.settle(thread, () => running.task.reject(error));
    });
    thread.on('exit', () => {
      const running = this.running.get(thread);
      if (running) this.settle(thread, () => running.task.reject(new ProcessingError('parser_crashed', 'The parser stopped on this file.')));
      this.threads.delete(thread);
      this.ready.delete(thread);
      const idleAt = this.idle.indexOf(thread);
      if (idleAt >= 0) this.idle.splice(idleAt, 1);
      this.dispatch();
    });
    return thread;
  }

  /** Ends the thread's current task once, whichever of reply, error, exit or deadline comes first. */
  private settle(thread: Worker, outcome: () => void): void {
    const running = this.running.get(thread);
    if (!running) return;
    clearTimeout(running.timer);
    this.running.delete(thread);
    outcome();
  }
}

/** A ProcessingError stays permanent across the thread boundary; anything else is retried. */
function rebuildError(error: { permanent: boolean; code: string | null; message: string }): Error {
  if (error.permanent && error.code) return new ProcessingError(error.code, error.message);
  return Object.assign(new Error(error.message), error.code ? { code: error.code } : {});
}
