// Polling for something that happens asynchronously (a span exported, a series scraped, a job done),
// and waiting for a promise that must fail.
import { expect } from 'chai';

/**
 * Calls `read` until it returns something other than undefined, and returns that; fails naming
 * `what` after `timeoutMs`.
 */
export async function eventually<T>(read: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 15_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The error `promise` rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  return promise.then(
    () => expect.fail('expected a rejection'),
    (err: Error) => err,
  );
}
