// GET /files/{id}/?wait=N: a request that waits for its File to settle, woken by the `file_settled` notification
// (migration 0005) rather than by polling. Waiting holds no database connection: only each read borrows one.
import type { Notifications } from '../core/db/index.js';
import type { FileRow } from '../core/fileRecord.js';
import { AppError, type FieldError } from './errors.js';

export const MAX_WAIT_SECONDS = 60;

type Query = Record<string, string | string[] | undefined>;

/** The `wait` query parameter in milliseconds, or null when absent; 400 `invalid_query` unless a whole 1..60. */
export function parseWait(query: Query): number | null {
  const value = query.wait;
  if (value === undefined) return null;
  const errors: FieldError[] = [];
  if (Array.isArray(value)) errors.push({ field: 'wait', message: 'Give this parameter once.' });
  else if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_WAIT_SECONDS)
    errors.push({ field: 'wait', message: `Must be a whole number of seconds from 1 to ${MAX_WAIT_SECONDS}.` });
  if (errors.length)
    throw new AppError('invalid_query', 'Some query parameters are invalid; see `errors`.', { errors });
  return Number(value) * 1_000;
}

const isSettled = (row: FileRow | null): boolean =>
  row === null || row.status === 'processed' || row.status === 'failed';

type Outcome = 'woken' | 'timeout' | 'aborted';

/** One waiting request. A wake that comes while it is not waiting (e.g. during a read) is kept for the next wait. */
class Waiter {
  private woken = false;
  private resolve: ((outcome: Outcome) => void) | undefined;

  constructor(readonly id: string) {}

  wake(): void {
    this.woken = true;
    this.resolve?.('woken');
  }

  /** Forgets the wakes so far: the read that follows sees what caused them. */
  reset(): void {
    this.woken = false;
  }

  next(ms: number, signal: AbortSignal): Promise<Outcome> {
    if (this.woken) return Promise.resolve('woken');
    if (signal.aborted) return Promise.resolve('aborted');
    return new Promise((resolve) => {
      const finish = (outcome: Outcome) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.resolve = undefined;
        resolve(outcome);
      };
      const onAbort = () => finish('aborted');
      const timer = setTimeout(() => finish('timeout'), ms);
      signal.addEventListener('abort', onAbort, { once: true });
      this.resolve = finish;
    });
  }
}

/** The waiting requests of one API process, indexed by File id: a notification costs O(waiters of that File). */
export class Waiters {
  private readonly byFile = new Map<string, Set<Waiter>>();
  private count = 0;
  private closed = false;
  private readonly unsubscribe: Array<() => void>;

  constructor(
    notifications: Notifications,
    /** MAX_WAITERS: beyond it, 429. */
    readonly max: number,
  ) {
    this.unsubscribe = [
      notifications.on('file_settled', (id) => this.byFile.get(id)?.forEach((waiter) => waiter.wake())),
      // Notifications sent while the LISTEN connection was down are lost: every waiter reads once more.
      notifications.onListening(() => this.wakeAll()),
    ];
  }

  /** Requests waiting right now. */
  get size(): number {
    return this.count;
  }

  /**
   * Reads the File with `read` until it is settled (processed, failed or gone), `ms` have passed, or `signal` aborts,
   * and answers the last read. The waiter is registered before the first read, so a File that settles between that
   * read and the wait still wakes it; a wake that finds it unsettled (a reconnection) waits on for the time left.
   */
  async waitFor(
    id: string,
    ms: number,
    signal: AbortSignal,
    read: () => Promise<FileRow | null>,
  ): Promise<FileRow | null> {
    if (this.count >= this.max) {
      throw new AppError('rate_limited', 'Too many requests are waiting on this server; retry in a second.', {
        headers: { 'Retry-After': '1' },
      });
    }
    const waiter = this.add(id);
    const deadline = Date.now() + ms;
    try {
      for (;;) {
        waiter.reset();
        const row = await read();
        const left = deadline - Date.now();
        if (isSettled(row) || left <= 0 || signal.aborted || this.closed) return row;
        // Nobody reads the answer of an aborted wait: it is not worth another read.
        if ((await waiter.next(left, signal)) === 'aborted') return row;
      }
    } finally {
      this.remove(waiter);
    }
  }

  /** At shutdown: every waiter answers now with what it reads, and new waits read once without waiting. */
  close(): void {
    this.closed = true;
    for (const unsubscribe of this.unsubscribe) unsubscribe();
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const waiters of this.byFile.values()) for (const waiter of waiters) waiter.wake();
  }

  private add(id: string): Waiter {
    const waiter = new Waiter(id);
    const waiters = this.byFile.get(id);
    if (waiters) waiters.add(waiter);
    else this.byFile.set(id, new Set([waiter]));
    this.count++;
    return waiter;
  }

  private remove(waiter: Waiter): void {
    const waiters = this.byFile.get(waiter.id);
    if (!waiters?.delete(waiter)) return;
    if (!waiters.size) this.byFile.delete(waiter.id);
    this.count--;
  }
}
