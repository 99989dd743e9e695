// Misbehaving parsers, run in the worker's real parser processes to show what a hostile file can do to one.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProcessingError } from '../../worker/processors/types.js';

export const ANALYZERS_MODULE = import.meta.url;

/** Never returns: a parser stuck in a loop on the event loop of its thread. */
export async function spinForever(): Promise<never> {
  for (;;) {
    // Busy, like a parser caught in a cycle of its input.
  }
}

/** Throws from a callback, where no promise can catch it: the thread dies of an uncaught exception. */
export async function throwUncaught(): Promise<never> {
  setImmediate(() => {
    throw new Error('parser bug');
  });
  return sleep<never>(60_000);
}

/** Keeps the CPU busy for `cpuMs` of this process's CPU time (not of the clock, which a busy machine stretches). */
export async function spinFor(cpuMs: number): Promise<number> {
  const start = process.cpuUsage();
  let used = 0;
  while (used < cpuMs) {
    const { user, system } = process.cpuUsage(start);
    used = (user + system) / 1000;
  }
  return process.pid;
}

/** Allocates until the thread's heap limit stops it. */
export async function exhaustMemory(): Promise<never> {
  const hoard: number[][] = [];
  for (;;) hoard.push(Array.from({ length: 100_000 }, (_, i) => i));
}

/** Answers after `ms` with what it was given. */
export async function echoAfter(ms: number, value: unknown): Promise<unknown> {
  await sleep(ms);
  return value;
}

/** Fails the way a storage error would: a plain error with an errno code. */
export async function failTransiently(): Promise<never> {
  throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
}

/** Fails the way a file that can never be processed does. */
export async function failPermanently(): Promise<never> {
  throw new ProcessingError('corrupt_file', 'The file is not readable.');
}

/** The temporary directory it is given. */
export async function temporaryDirectory(): Promise<string> {
  return os.tmpdir();
}

/** Leaves a file in its temporary directory, as a copy of a blob, then spins until it is killed. */
export async function spinOverTemporaryFile(): Promise<never> {
  writeFileSync(path.join(os.tmpdir(), 'blob'), Buffer.alloc(1024));
  for (;;) {
    // Busy, like a parser caught in a cycle of its input.
  }
}

/** Grows memory outside the V8 heap (touched Buffers), where no heap limit sees it. */
export async function exhaustNativeMemory(): Promise<never> {
  const hoard: Buffer[] = [];
  for (;;) {
    hoard.push(Buffer.alloc(16 * 1024 * 1024, 1));
    await sleep(1);
  }
}

/** Holds `mib` MiB outside the heap for `ms`, then answers how much it held. */
export async function holdNativeMemory(mib: number, ms: number): Promise<number> {
  const held = Array.from({ length: mib }, () => Buffer.alloc(1024 * 1024, 1));
  await sleep(ms);
  return held.length;
}

/** Dies at once, as a native parser that crashes would. */
export async function abortProcess(): Promise<never> {
  process.abort();
}

/** Dies as V8 does when its heap is full: the message on stderr, then an abort (a real one needs a GiB of heap). */
export async function abortLikeV8OutOfHeap(): Promise<never> {
  process.stderr.write('FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n', () =>
    process.abort(),
  );
  return sleep<never>(60_000);
}

/** What the kernel's OOM killer thinks of this process, and its pid. */
export async function oomScoreAdjustment(): Promise<{ pid: number; score: string }> {
  const { readFile } = await import('node:fs/promises');
  return { pid: process.pid, score: (await readFile('/proc/self/oom_score_adj', 'utf8')).trim() };
}
