// Misbehaving parsers, run in the worker's real parsing threads to show what a hostile file can do to one.
import { setTimeout as sleep } from 'node:timers/promises';

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
  return sleep(60_000) as Promise<never>;
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
