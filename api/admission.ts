// Who may start an upload right now: a per-client rate limit (a token bucket in Redis, shared by all API
// pods) and a backlog limit (the queue's waiting jobs, read once a second, never on the request path).
import type Koa from 'koa';
import type { FileQueue } from '../core/queue/index.js';
import type { SharedRedis } from '../core/redis.js';
import type { Logger } from '../core/telemetry/logger.js';
import { callerOf } from './auth.js';
import { AppError } from './errors.js';

export interface RateLimitOptions {
  redis: SharedRedis;
  perSecond: number;
  burst: number;
  logger: Logger;
}

/** 429 rate_limited once a caller (`callerOf`) is over its rate. Fails open while Redis is away. */
export function limitRate(options: RateLimitOptions): Koa.Middleware {
  const { redis, perSecond, burst, logger } = options;
  return async (ctx, next) => {
    let verdict: { allowed: boolean; waitMs: number };
    try {
      verdict = await redis.takeToken(callerOf(ctx), perSecond, burst);
    } catch (err) {
      logger.warn({ err }, 'rate limit unavailable; letting the request through');
      await next();
      return;
    }
    const { allowed, waitMs } = verdict;
    if (!allowed) {
      throw new AppError(
        'rate_limited',
        `This client is over its limit of ${perSecond} uploads per second; retry after the Retry-After delay.`,
        {
          headers: { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) },
        },
      );
    }
    await next();
  };
}

/** Keeps the queue's waiting count fresh in the background, so the upload path never asks Redis. */
export class BacklogMonitor {
  private waiting = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly queue: Pick<FileQueue, 'counts'>,
    private readonly intervalMs = 1_000,
  ) {}

  start(): void {
    const refresh = () =>
      this.queue.counts().then(
        (counts) => (this.waiting = counts.waiting),
        // Redis away: uploads must still succeed, so an unknown backlog counts as none.
        () => (this.waiting = 0),
      );
    void refresh();
    this.timer = setInterval(() => void refresh(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get waitingJobs(): number {
    return this.waiting;
  }
}

/** 503 overloaded while more than `maxBacklog` jobs wait (0 turns the check off). */
export function refuseWhenOverloaded(backlog: BacklogMonitor, maxBacklog: number): Koa.Middleware {
  return async (ctx, next) => {
    if (maxBacklog > 0 && backlog.waitingJobs > maxBacklog) {
      throw new AppError('overloaded', 'Too many files are waiting to be processed; retry the upload later.', {
        headers: { 'Retry-After': '10' },
      });
    }
    await next();
  };
}
