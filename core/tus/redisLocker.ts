// The tus upload lock, shared by every API pod through Redis: a PATCH that lands on any pod waits for the
// request holding the upload (on whichever pod) and asks it to stop, as @tus/server's MemoryLocker does
// within one process. Keys: `<namespace>:<id>` = a random token per holder, expiring after ttlMs
// unless renewed, so the lock of a pod that dies frees itself. Channels: `<namespace>:release`
// (message: an id; its holder is asked to stop) and `<namespace>:released` (an id was unlocked).
// While Redis is away, lock() rejects with Redis' error: the tus request fails with 500 and the client retries.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/utils';
import { Redis } from 'ioredis';

// Both scripts act only while the key still holds our token: after a pause longer than the ttl, the key
// may have expired and been taken by another holder, whose lock must survive.
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0`;

/** A waiter retries this often even without a 'released' message (missed while subscribing, or expiry). */
const POLL_MS = 100;

export interface RedisLockerOptions {
  url: string;
  /** What the keys and channels start with (`lockKey(QUEUE_PREFIX, 'tus')` in core/redis.ts). */
  namespace: string;
  /** How long a lock outlives a pod that died holding it; renewed every third of it while held. */
  ttlMs?: number;
  /** How long lock() waits before ERR_LOCK_TIMEOUT; above @tus/server's lockDrainTimeout (3 s by default),
   * the time a holder asked to release is given before its request is aborted. */
  acquireTimeoutMs?: number;
}

export class RedisLocker implements Locker {
  readonly ttlMs: number;
  readonly acquireTimeoutMs: number;
  private readonly client: Redis;
  private readonly subscriber: Redis;
  private readonly subscribed: Promise<unknown>;
  private readonly channels: { release: string; released: string };
  /** For RedisLock: `release:<id>` asks this pod's holder of id to stop, `released:<id>` wakes its waiters. */
  readonly events = new EventEmitter().setMaxListeners(0);
  /** For RedisLock: the renewal timers of the locks held here, stopped by close(). */
  readonly renewals = new Set<NodeJS.Timeout>();

  constructor(private readonly options: RedisLockerOptions) {
    this.ttlMs = options.ttlMs ?? 30_000;
    this.acquireTimeoutMs = options.acquireTimeoutMs ?? 10_000;
    this.channels = { release: `${options.namespace}:release`, released: `${options.namespace}:released` };
    // Commands fail fast while Redis is away, as in core/redis.ts.
    this.client = new Redis(options.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    this.client.on('error', () => undefined);
    // The subscription waits for Redis however long it takes, and ioredis renews it after a reconnection.
    this.subscriber = new Redis(options.url, { maxRetriesPerRequest: null });
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('message', (channel: string, id: string) => {
      this.events.emit(`${channel === this.channels.release ? 'release' : 'released'}:${id}`);
    });
    this.subscribed = this.subscriber.subscribe(this.channels.release, this.channels.released).catch(() => undefined);
  }

  /** Resolves once both connections are up (until then lock() fails, as it does while Redis is away). */
  async ready(): Promise<void> {
    // Not events.once(): it would reject on the first connection error instead of waiting.
    if (this.client.status !== 'ready') await new Promise((resolve) => this.client.once('ready', resolve));
    await this.subscribed;
  }

  newLock(id: string): Lock {
    return new RedisLock(this, id);
  }

  key(id: string): string {
    return `${this.options.namespace}:${id}`;
  }

  async tryAcquire(id: string, token: string): Promise<boolean> {
    return (await this.client.set(this.key(id), token, 'PX', this.ttlMs, 'NX')) === 'OK';
  }

  async renew(id: string, token: string): Promise<boolean> {
    return (await this.client.eval(RENEW, 1, this.key(id), token, this.ttlMs)) === 1;
  }

  async release(id: string, token: string): Promise<void> {
    await this.client.eval(UNLOCK, 1, this.key(id), token, this.channels.released, id);
  }

  async askToRelease(id: string): Promise<void> {
    await this.client.publish(this.channels.release, id);
  }

  /** Resolves after `ms`, or sooner when id is unlocked or `signal` aborts. */
  waitForRelease(id: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.events.off(`released:${id}`, done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.events.once(`released:${id}`, done);
      signal.addEventListener('abort', done, { once: true });
      if (signal.aborted) done();
    });
  }

  /** Stops renewing (held keys then expire after ttlMs, as a dead pod's do) and closes both connections. */
  async close(): Promise<void> {
    for (const timer of this.renewals) clearInterval(timer);
    this.renewals.clear();
    await Promise.all([this.client, this.subscriber].map((c) => c.quit().catch(() => c.disconnect())));
  }
}

class RedisLock implements Lock {
  private token: string | undefined;
  /** Stops renewing and listening for release requests; set while held. */
  private stopHolding: () => void = () => undefined;

  constructor(
    private readonly locker: RedisLocker,
    private readonly id: string,
  ) {}

  /** Throws ERR_LOCK_TIMEOUT on timeout and on abort, as MemoryLocker does. */
  async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const { locker, id } = this;
    const token = randomUUID();
    const deadline = Date.now() + locker.acquireTimeoutMs;
    for (;;) {
      const sentAt = Date.now();
      if (await locker.tryAcquire(id, token)) return this.hold(token, sentAt + locker.ttlMs, requestRelease);
      // Asked again on every attempt: the holder may have changed since, or missed the first message.
      await locker.askToRelease(id);
      await locker.waitForRelease(id, Math.max(0, Math.min(POLL_MS, deadline - Date.now())), signal);
      // @tus/server answers errors shaped { status_code, body } with that status: here 500, as MemoryLocker.
      // eslint-disable-next-line @typescript-eslint/only-throw-error
      if (signal.aborted || Date.now() >= deadline) throw ERRORS.ERR_LOCK_TIMEOUT;
    }
  }

  /** A no-op when the lock was lost meanwhile; a Redis error here is left to the key's expiry. */
  async unlock(): Promise<void> {
    const token = this.token;
    if (!token) return;
    this.token = undefined;
    this.stopHolding();
    // The upload's bytes are stored either way: a Redis outage only delays the next request by up to ttlMs.
    await this.locker.release(this.id, token).catch(() => undefined);
  }

  private hold(token: string, expiresAt: number, requestRelease: RequestRelease): void {
    const { locker, id } = this;
    this.token = token;
    // Called from the subscriber's message handler, which a throwing or rejecting requestRelease must not break.
    const cancel = () =>
      void Promise.resolve()
        .then(requestRelease)
        .catch(() => undefined);
    locker.events.on(`release:${id}`, cancel);
    const renew = async () => {
      const renewedAt = Date.now();
      const renewed = await locker.renew(id, token).catch(() => undefined);
      if (this.token !== token) return;
      if (renewed) expiresAt = renewedAt + locker.ttlMs;
      // Lost (expired, or Redis restarted empty), or may expire before the next try: stop the holder.
      else if (renewed === false || Date.now() + locker.ttlMs / 3 >= expiresAt) {
        this.stopHolding();
        cancel();
      }
    };
    const timer = setInterval(() => void renew(), locker.ttlMs / 3).unref();
    locker.renewals.add(timer);
    this.stopHolding = () => {
      clearInterval(timer);
      locker.renewals.delete(timer);
      locker.events.off(`release:${id}`, cancel);
    };
  }
}
