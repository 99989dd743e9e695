// Every Redis command outside the queue goes through here, on an ioredis client: the rate limiter's token
// buckets and the reconciler's leader lock. bee-queue keeps its own client (the `redis` v3 package, which
// ioredis cannot share), and what depends on its internals stays in core/queue.
import { Redis } from 'ioredis';

/**
 * Where the lock `name` lives: `<prefix>:lock:<name>`, beside the queues rather than inside one, since a lock is the
 * service's (every pool's workers, every API pod), and a queue's name is only one pool's.
 */
export const lockKey = (prefix: string, name: string): string => `${prefix}:lock:${name}`;

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

// A lock is taken when free and renewed when ours, in one step; and only ever renewed or released while it
// still holds our owner value (after a pause longer than its ttl another owner may hold it, and keeps it).
const HOLD_LOCK = `
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if owner then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;
const RENEW_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface SharedRedisOptions {
  url: string;
  /** QUEUE_PREFIX: the keys live beside the queues' (`<prefix>:ratelimit:...`, `<prefix>:lock:...`). */
  prefix: string;
}

export class SharedRedis {
  private constructor(
    private readonly client: Redis,
    private readonly options: Omit<SharedRedisOptions, 'url'>,
  ) {}

  /** Commands fail fast while Redis is away (no offline queue, one retry): callers decide what that means. */
  static connect({ url, ...options }: SharedRedisOptions): SharedRedis {
    const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    return new SharedRedis(client, options);
  }

  /** Resolves once connected (commands sent before fail, as they do while Redis is away). */
  async ready(): Promise<void> {
    if (this.client.status !== 'ready') await new Promise((resolve) => this.client.once('ready', resolve));
  }

  /** Takes a token from `bucket`, refilled at `perSecond` up to `burst`; else how long until there is one. */
  async takeToken(bucket: string, perSecond: number, burst: number): Promise<{ allowed: boolean; waitMs: number }> {
    const [allowed, waitMs] = (await this.client.eval(
      TOKEN_BUCKET,
      1,
      `${this.options.prefix}:ratelimit:${bucket}`,
      perSecond,
      burst,
    )) as [number, number];
    return { allowed: allowed === 1, waitMs };
  }

  /**
   * Takes the lock `name` for `owner` when it is free, or renews it when `owner` holds it already; either way it
   * expires by itself `ttlMs` later unless renewed. False while another owner holds it.
   */
  async holdLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.client.eval(HOLD_LOCK, 1, this.lockKey(name), owner, ttlMs)) === 1;
  }

  /** Pushes the expiry of a lock `owner` holds to `ttlMs` from now; false when it is not (or no longer) theirs. */
  async renewLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.client.eval(RENEW_LOCK, 1, this.lockKey(name), owner, ttlMs)) === 1;
  }

  /** Frees a lock `owner` holds, for another to take at once; a lock held by someone else stays. */
  async releaseLock(name: string, owner: string): Promise<void> {
    await this.client.eval(RELEASE_LOCK, 1, this.lockKey(name), owner);
  }

  private lockKey(name: string): string {
    return lockKey(this.options.prefix, name);
  }

  close(): void {
    this.client.disconnect();
  }
}
