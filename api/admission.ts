// Who may start an upload right now: a per-client rate limit (a token bucket in Redis, shared by all API
// pods) and a backlog limit (the queue's waiting jobs, read once a second, never on the request path).
import type Koa from 'koa';
import type { Redis } from 'ioredis';
import type { FileQueue } from '../core/queue/index.js';
import type { Logger } from '../core/telemetry/logger.js';
import { callerOf } from './auth.js';
import { AppError } from './errors.js';

// Refill by elapsed time on Redis' own clock (pods' clocks may disagree), take one token if there is one,
// else say how long until there will be. Returns {allowed, wait_ms}.
const TOKEN_BUCKET = `
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
`;

export interface RateLimitOptions {
  redis: Redis;
  keyPrefix: string;
  perSecond: number;
  burst: number;
  logger: Logger;
}

/** 429 rate_limited once a caller (`callerOf`) is over its rate. Fails open while Redis is away. */
export function limitRate(options: RateLimitOptions): Koa.Middleware {
  const { redis, keyPrefix, perSecond, burst, logger } = options;
  return async (ctx, next) => {
    let verdict: [number, number];
    try {
      verdict = (await redis.eval(TOKEN_BUCKET, 1, `${keyPrefix}:ratelimit:${callerOf(ctx)}`, perSecond, burst)) as [
        number,
        number,
      ];
    } catch (err) {
      logger.warn({ err }, 'rate limit unavailable; letting the request through');
      await next();
      return;
    }
    const [allowed, waitMs] = verdict;
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
