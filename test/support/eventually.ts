// Polling for something that happens asynchronously (a span exported, a series scraped, a job done),
// and waiting for a promise that must fail.
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';

/** What `read` returns while the awaited thing has not happened yet. */
export type NotYet = undefined | null | false | 0 | '';

/**
 * Calls `read` every `intervalMs` until it returns a truthy value, and returns that; fails naming
 * `what` after `timeoutMs`. An error thrown by `read` fails at once (wrap it to retry on errors).
 */
export async function eventually<T>(
  read: () => T | NotYet | Promise<T | NotYet>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

/** The error `promise` rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  return promise.then(
    () => expect.fail('expected a rejection'),
    (err: Error) => err,
  );
}
