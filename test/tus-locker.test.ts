// The tus upload lock shared through Redis: each RedisLocker here stands for one API pod, with its own
// connections, on the shared test Redis under this run's prefix.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ERRORS } from '@tus/utils';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { lockKey } from '../core/redis.js';
import { RedisLocker, type RedisLockerOptions } from '../core/tus/redisLocker.js';
import { TEST_ENV } from './support/env.js';
import { eventually, rejection } from './support/eventually.js';
import { startRedis } from './support/servers.js';

const namespace = lockKey(TEST_ENV.queuePrefix, 'tus');
const noAbort = new AbortController().signal;

describe('RedisLocker', () => {
  let pods: RedisLocker[] = [];
  let redis: Redis;
  let id: string;

  async function pod(options: Partial<RedisLockerOptions> = {}): Promise<RedisLocker> {
    const locker = new RedisLocker({ url: TEST_ENV.redisUrl, namespace, ...options });
    pods.push(locker);
    await locker.ready();
    return locker;
  }

  /** A promise's outcome so far, without waiting for it. */
  function settled(promise: Promise<unknown>): () => boolean {
    let done = false;
    promise.then(
      () => (done = true),
      () => (done = true),
    );
    return () => done;
  }

  before(() => {
    redis = new Redis(TEST_ENV.redisUrl);
  });
  after(() => redis.disconnect());
  beforeEach(() => {
    id = `upload-${randomBytes(4).toString('hex')}`;
  });
  afterEach(async () => {
    await Promise.all(pods.map((locker) => locker.close()));
    pods = [];
  });

  it('makes a second pod wait until the first unlocks, then gives it the lock', async () => {
    const [first, second] = [await pod(), await pod()];
    const held = first.newLock(id);
    await held.lock(noAbort, () => undefined);

    const waiting = second.newLock(id).lock(noAbort, () => undefined);
    const acquired = settled(waiting);
    await sleep(500);
    expect(acquired(), 'the second pod took a held lock').to.equal(false);

    await held.unlock();
    await waiting;
    expect(await redis.pttl(`${TEST_ENV.queuePrefix}:lock:tus:${id}`)).to.be.above(0);
  });

  it('asks the holder on another pod to release, and hands over soon after it unlocks', async () => {
    const [holder, other] = [await pod(), await pod()];
    const held = holder.newLock(id);
    let asked = 0;
    await held.lock(noAbort, () => void asked++);
    expect(asked).to.equal(0);

    const waiting = other.newLock(id).lock(noAbort, () => undefined);
    await eventually(() => asked > 0, "the holder's requestRelease being called", 2_000);
    const unlockedAt = Date.now();
    await held.unlock();
    await waiting;
    expect(Date.now() - unlockedAt).to.be.below(500);
  });

  it("keeps a live holder's lock past its ttl by renewing it", async () => {
    const holder = await pod({ ttlMs: 300 });
    await holder.newLock(id).lock(noAbort, () => undefined);
    const other = await pod({ ttlMs: 300, acquireTimeoutMs: 1_200 });
    const err = await rejection(other.newLock(id).lock(noAbort, () => undefined));
    expect(err).to.equal(ERRORS.ERR_LOCK_TIMEOUT);
  });

  it('gives the upload of a pod that died holding it to another pod after about the ttl', async () => {
    const dying = await pod({ ttlMs: 500 });
    await dying.newLock(id).lock(noAbort, () => undefined);
    await dying.close();

    const other = await pod({ ttlMs: 500, acquireTimeoutMs: 5_000 });
    const startedAt = Date.now();
    await other.newLock(id).lock(noAbort, () => undefined);
    const waited = Date.now() - startedAt;
    expect(waited).to.be.within(250, 1_500);
  });

  it('throws the tus lock-timeout error when the lock stays held past acquireTimeoutMs', async () => {
    const holder = await pod();
    await holder.newLock(id).lock(noAbort, () => undefined);
    const other = await pod({ acquireTimeoutMs: 400 });

    const startedAt = Date.now();
    const err = await rejection(other.newLock(id).lock(noAbort, () => undefined));
    expect(err).to.equal(ERRORS.ERR_LOCK_TIMEOUT);
    expect(Date.now() - startedAt).to.be.within(350, 1_500);
  });

  it('stops waiting when the request aborts', async () => {
    const holder = await pod();
    await holder.newLock(id).lock(noAbort, () => undefined);
    const other = await pod({ acquireTimeoutMs: 20_000 });

    const request = new AbortController();
    const waiting = other.newLock(id).lock(request.signal, () => undefined);
    await sleep(200);
    const abortedAt = Date.now();
    request.abort();
    const err = await rejection(waiting);
    expect(err).to.equal(ERRORS.ERR_LOCK_TIMEOUT);
    expect(Date.now() - abortedAt).to.be.below(300);
  });

  it("tells a holder whose lock expired to stop, and its late unlock leaves the new holder's lock", async () => {
    const key = `${namespace}:${id}`;
    const stale = await pod({ ttlMs: 600 });
    const staleLock = stale.newLock(id);
    let asked = 0;
    await staleLock.lock(noAbort, () => void asked++);
    // As if the stale holder's pod had paused longer than the ttl: its key is gone.
    await redis.del(key);

    const current = await pod();
    await current.newLock(id).lock(noAbort, () => undefined);
    const token = await redis.get(key);
    expect(token).to.be.a('string');
    await eventually(() => asked > 0, 'the stale holder being asked to stop', 2_000);

    await staleLock.unlock();
    expect(await redis.get(key)).to.equal(token);
  });

  it('fails to lock while Redis is away, and stops a holder whose lock a Redis restart lost', async () => {
    const server = await startRedis();
    try {
      const holder = await pod({ url: server.url, ttlMs: 1_500 });
      let asked = 0;
      await holder.newLock(id).lock(noAbort, () => void asked++);
      const other = await pod({ url: server.url });

      await server.stop();
      const err = await rejection(other.newLock(`${id}-other`).lock(noAbort, () => undefined));
      expect(err).to.not.equal(ERRORS.ERR_LOCK_TIMEOUT);
      expect(err).to.be.instanceOf(Error);
      expect(asked).to.equal(0);

      // This server keeps nothing: restarted, it has lost the holder's key.
      await server.start();
      await eventually(() => asked > 0, 'the holder being asked to stop', 5_000);
    } finally {
      await server.destroy();
    }
  });
});
