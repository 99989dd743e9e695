// The tus upload lock: one contract run against every locker @tus/server may be given (MemoryLocker, which a single
// process may use, and our RedisLocker, shared by every API pod), then what only a lock in Redis does. A "pod" here
// is a holder that sees the others' locks: the one MemoryLocker of a process, or a RedisLocker with connections of
// its own, on the shared test Redis under this run's prefix.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryLocker } from '@tus/server';
import { ERRORS, type Locker } from '@tus/utils';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { lockKey } from '../core/redis.js';
import { RedisLocker, type RedisLockerOptions } from '../core/tus/redisLocker.js';
import { TEST_ENV } from './support/env.js';
import { eventually, rejection } from './support/eventually.js';
import { startRedis } from './support/servers.js';

const namespace = lockKey(TEST_ENV.queuePrefix, 'tus');
const noAbort = new AbortController().signal;
const nothingToRelease = () => undefined;

interface LockerBackend {
  /** `count` pods that see each other's locks, each waiting `acquireTimeoutMs` at most for one. */
  pods(count: number, acquireTimeoutMs?: number): Promise<Locker[]>;
  close(): Promise<void>;
}

const BACKENDS: Record<string, () => LockerBackend> = {
  MemoryLocker: () => ({
    // One process, one locker: its requests all share it.
    pods: (count, acquireTimeoutMs = 10_000) =>
      Promise.resolve(Array<Locker>(count).fill(new MemoryLocker({ acquireLockTimeout: acquireTimeoutMs }))),
    close: () => Promise.resolve(),
  }),
  RedisLocker: () => {
    const opened: RedisLocker[] = [];
    return {
      async pods(count, acquireTimeoutMs) {
        const pods = Array.from({ length: count }, () => {
          const locker = new RedisLocker({ url: TEST_ENV.redisUrl, namespace, acquireTimeoutMs });
          opened.push(locker);
          return locker;
        });
        await Promise.all(pods.map((locker) => locker.ready()));
        return pods;
      },
      close: async () => void (await Promise.all(opened.map((locker) => locker.close()))),
    };
  },
};

/** Whether a promise has settled yet, without waiting for it. */
function settled(promise: Promise<unknown>): () => boolean {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  return () => done;
}

for (const [name, make] of Object.entries(BACKENDS)) {
  describe(`Locker contract: ${name}`, () => {
    let backend: LockerBackend;
    let id: string;
    beforeEach(() => {
      backend = make();
      id = `upload-${randomBytes(4).toString('hex')}`;
    });
    afterEach(() => backend.close());

    it('holds an upload for one request at a time: the next waits until it is unlocked, then has it', async () => {
      const [first, second] = await backend.pods(2);
      const held = first!.newLock(id);
      await held.lock(noAbort, nothingToRelease);

      const waiting = second!.newLock(id).lock(noAbort, nothingToRelease);
      const acquired = settled(waiting);
      await sleep(500);
      expect(acquired(), 'a held lock was taken').to.equal(false);

      await held.unlock();
      await waiting;
    });

    it('holds different uploads at once', async () => {
      const [first, second] = await backend.pods(2);
      await first!.newLock(id).lock(noAbort, nothingToRelease);
      await second!.newLock(`${id}-other`).lock(noAbort, nothingToRelease);
    });

    it('asks the holder to release the upload for another request, which has it as soon as the holder lets go', async () => {
      const [holder, other] = await backend.pods(2);
      const held = holder!.newLock(id);
      let unlockedAt = 0;
      let asked = 0;
      // As @tus/server's holder does: asked, its request stops and unlocks.
      await held.lock(noAbort, async () => {
        if (asked++ > 0) return;
        await sleep(100);
        unlockedAt = Date.now();
        await held.unlock();
      });
      expect(asked, 'asked before anyone wanted the upload').to.equal(0);

      await other!.newLock(id).lock(noAbort, nothingToRelease);
      expect(asked).to.be.above(0);
      expect(unlockedAt).to.be.above(0);
      expect(Date.now() - unlockedAt).to.be.below(500);
    });

    it('gives an upload again once its holder unlocked it', async () => {
      const [pod] = await backend.pods(1);
      for (let round = 0; round < 3; round++) {
        const lock = pod!.newLock(id);
        await lock.lock(noAbort, nothingToRelease);
        await lock.unlock();
      }
    });

    it("throws tus's lock-timeout error when the upload stays held past the acquire timeout", async () => {
      const [holder, other] = await backend.pods(2, 400);
      await holder!.newLock(id).lock(noAbort, nothingToRelease);
      const startedAt = Date.now();
      expect(await rejection(other!.newLock(id).lock(noAbort, nothingToRelease))).to.equal(ERRORS.ERR_LOCK_TIMEOUT);
      expect(Date.now() - startedAt).to.be.within(350, 1_500);
    });

    it("stops waiting when the waiting request is cancelled, with tus's lock-timeout error", async () => {
      const [holder, other] = await backend.pods(2, 20_000);
      await holder!.newLock(id).lock(noAbort, nothingToRelease);
      const request = new AbortController();
      const waiting = other!.newLock(id).lock(request.signal, nothingToRelease);
      await sleep(200);
      const abortedAt = Date.now();
      request.abort();
      expect(await rejection(waiting)).to.equal(ERRORS.ERR_LOCK_TIMEOUT);
      expect(Date.now() - abortedAt).to.be.below(300);
    });
  });
}

describe('RedisLocker across pods', () => {
  let pods: RedisLocker[] = [];
  let redis: Redis;
  let id: string;

  async function pod(options: Partial<RedisLockerOptions> = {}): Promise<RedisLocker> {
    const locker = new RedisLocker({ url: TEST_ENV.redisUrl, namespace, ...options });
    pods.push(locker);
    await locker.ready();
    return locker;
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

  it('keeps a lock in a namespace of locks, not of a queue: <QUEUE_PREFIX>:lock:tus:<id>, expiring', async () => {
    await (await pod()).newLock(id).lock(noAbort, nothingToRelease);
    expect(await redis.pttl(`${TEST_ENV.queuePrefix}:lock:tus:${id}`)).to.be.within(1, 30_000);
  });

  it("keeps a live holder's lock past its ttl by renewing it", async () => {
    const holder = await pod({ ttlMs: 300 });
    await holder.newLock(id).lock(noAbort, nothingToRelease);
    const other = await pod({ ttlMs: 300, acquireTimeoutMs: 1_200 });
    expect(await rejection(other.newLock(id).lock(noAbort, nothingToRelease))).to.equal(ERRORS.ERR_LOCK_TIMEOUT);
  });

  it('gives the upload of a pod that died holding it to another pod after about the ttl', async () => {
    const dying = await pod({ ttlMs: 500 });
    await dying.newLock(id).lock(noAbort, nothingToRelease);
    await dying.close();

    const other = await pod({ ttlMs: 500, acquireTimeoutMs: 5_000 });
    const startedAt = Date.now();
    await other.newLock(id).lock(noAbort, nothingToRelease);
    expect(Date.now() - startedAt).to.be.within(250, 1_500);
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
    await current.newLock(id).lock(noAbort, nothingToRelease);
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
      const err = await rejection(other.newLock(`${id}-other`).lock(noAbort, nothingToRelease));
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
