import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDatabase, type Database } from '../core/db/index.js';
import { newId } from '../core/ids.js';
import { FileQueue } from '../core/queue/index.js';
import type { SharedRedis } from '../core/redis.js';
import { LocalDiskStore } from '../core/storage/index.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { emptyReport, Reconciler, type ReconcilerConfig } from '../worker/reconciler.js';
import { sql, truncateFiles } from './support/db.js';
import { eventually } from './support/eventually.js';
import { TEST_ENV } from './support/env.js';
import {
  sharedRedisFor,
  startService,
  startWorker,
  testLogger,
  uploadFile,
  waitForStatus,
  type TestService,
} from './support/service.js';

const HOUR = 3_600_000;

/** Rows untouched for 200 ms count as stale, so the tests need not wait. */
const config: ReconcilerConfig = {
  reconcileIntervalMs: 60_000,
  requeueAfterMs: 200,
  orphanAfterMs: HOUR,
  webhookRetentionMs: 7 * 24 * HOUR,
  tusExpireAfterMs: 24 * HOUR,
};

describe('the reconciler', () => {
  let service: TestService;
  let db: Database;
  let storage: LocalDiskStore;
  let reconciler: Reconciler;
  let redis: SharedRedis;
  const metrics = createMetrics();

  before(async () => {
    await truncateFiles();
    service = await startService();
    db = openDatabase({ url: TEST_ENV.databaseUrl, poolMax: 2 });
    storage = new LocalDiskStore(TEST_ENV.storageDir);
    redis = sharedRedisFor(service.queueName);
    reconciler = new Reconciler({ db, queue: service.queue, redis, storage, logger: testLogger(), metrics, config });
  });
  after(async () => {
    await service.close();
    redis.close();
    await db.close();
  });

  const ageRow = (id: string) => sql("UPDATE files SET updated_at = now() - interval '1 minute' WHERE id = $1", [id]);

  it('re-enqueues a queued file whose job was lost, and the worker processes it', async () => {
    const redisDown = await startService({ worker: false, redisUrl: 'redis://127.0.0.1:9' });
    let id: string;
    try {
      id = (await uploadFile(redisDown.url, { content: 'uploaded while Redis was away' })).id;
    } finally {
      await redisDown.close();
    }
    await ageRow(id);
    const report = await reconciler.runOnce();
    expect(report.requeuedQueued).to.equal(1);
    expect((await waitForStatus(service.url, id)).status).to.equal('processed');
    expect((await metrics.reconcilerRequeued.get()).values).to.deep.include({ labels: { reason: 'queued' }, value: 1 });
  });

  it('leaves alone a queued file whose job is waiting', async () => {
    const idle = await startService({ worker: false });
    try {
      const file = await uploadFile(idle.url, { content: 'waiting its turn' });
      await ageRow(file.id);
      const idleReconciler = new Reconciler({
        db,
        queue: idle.queue,
        redis,
        storage,
        logger: testLogger(),
        metrics: createMetrics(),
        config,
      });
      expect((await idleReconciler.runOnce()).requeuedQueued).to.equal(0);
      expect((await idle.queue.counts()).waiting).to.equal(1);
    } finally {
      await idle.close();
    }
  });

  it('re-enqueues a processing file whose job is gone (its worker died, Redis lost the job)', async () => {
    const file = await uploadFile(service.url, { content: 'orphaned mid-processing' });
    await waitForStatus(service.url, file.id);
    await sql(
      "UPDATE files SET status = 'processing', attempts = 1, updated_at = now() - interval '1 minute' WHERE id = $1",
      [file.id],
    );
    const report = await reconciler.runOnce();
    expect(report.requeuedLost).to.equal(1);
    const done = await waitForStatus(service.url, file.id);
    expect(done).to.include({ status: 'processed', attempts: 2 });
  });

  it('fails a queued file whose bytes are gone with blob_missing', async () => {
    const idle = await startService({ worker: false, redisUrl: 'redis://127.0.0.1:9' });
    try {
      const file = await uploadFile(idle.url, { content: 'bytes about to vanish' });
      await storage.remove(file.id);
      await ageRow(file.id);
      expect((await reconciler.runOnce()).failedBlobMissing).to.equal(1);
      const row = await db.files.findById(file.id);
      expect(row).to.include({ status: 'failed' });
      expect(row!.error!.code).to.equal('blob_missing');
    } finally {
      await idle.close();
    }
  });

  it('removes temporary files and blobs without a row once they are old, and nothing younger, in one run', async () => {
    const staleTemp = path.join(storage.tmpDir, `${newId()}.part`);
    const freshTemp = path.join(storage.tmpDir, `${newId()}.part`);
    const oldOrphan = newId();
    const youngOrphan = newId();
    const kept = await uploadFile(service.url, { content: 'has a row' });
    const old = new Date(Date.now() - 2 * HOUR);
    await writeFile(staleTemp, 'dead upload');
    await writeFile(freshTemp, 'live upload');
    await utimes(staleTemp, old, old);
    for (const id of [oldOrphan, youngOrphan]) {
      await writeFile(storage.pathOf(id), 'no row');
      await writeFile(storage.pathOf(id, 'thumbnail'), 'no row either');
    }
    await utimes(storage.pathOf(oldOrphan), old, old);
    await utimes(storage.pathOf(oldOrphan, 'thumbnail'), old, old);
    await utimes(storage.pathOf(kept.id), old, old);

    expect((await reconciler.runOnce()).removedOrphans).to.equal(1);
    expect(existsSync(staleTemp)).to.equal(false);
    expect(existsSync(freshTemp)).to.equal(true);
    expect(existsSync(storage.pathOf(oldOrphan))).to.equal(false);
    expect(existsSync(storage.pathOf(oldOrphan, 'thumbnail'))).to.equal(false);
    expect(existsSync(storage.pathOf(youngOrphan))).to.equal(true);
    expect(existsSync(storage.pathOf(kept.id))).to.equal(true);
  });

  it('forgets idempotency keys older than 24 hours', async () => {
    await sql(
      "INSERT INTO idempotency_keys (scope, key, created_at) VALUES ('ip:x', 'ancient', now() - interval '25 hours'), ('ip:x', 'recent', now())",
    );
    expect((await reconciler.runOnce()).removedKeys).to.equal(1);
    expect((await sql("SELECT key FROM idempotency_keys WHERE scope = 'ip:x'")).map((row) => row.key)).to.deep.equal([
      'recent',
    ]);
  });

  it('removes webhook deliveries and events past WEBHOOK_RETENTION_MS, but never an event a pending delivery needs', async () => {
    const [endpoint] = await sql<{ id: string }>(
      `INSERT INTO webhook_endpoints (id, url, events, secret, base_url)
       VALUES (gen_random_uuid(), 'https://hooks.example/', '{file.processed}', 'whsec_x', 'https://api.example')
       RETURNING id`,
    );
    const event = async (name: string, age: string, fannedOut = true) =>
      (
        await sql<{ id: string }>(
          `INSERT INTO webhook_events (type, file_id, file, created_at, fanned_out_at)
           VALUES ('file.processed', gen_random_uuid(), jsonb_build_object('name', $1::text), now() - $2::interval,
                   CASE WHEN $3 THEN now() - $2::interval END)
           RETURNING id::text`,
          [name, age, fannedOut],
        )
      )[0]!.id;
    const delivery = async (eventId: string | null, age: string, status: string) =>
      (
        await sql<{ id: string }>(
          `INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, file_id, file, created_at, status)
           VALUES ($1, $2, 'file.processed', gen_random_uuid(), CASE WHEN $2::bigint IS NULL THEN '{}'::jsonb END,
                   now() - $3::interval, $4)
           RETURNING id`,
          [endpoint!.id, eventId, age, status],
        )
      )[0]!.id;
    const sent = await event('sent', '8 days');
    const sentDelivery = await delivery(sent, '8 days', 'delivered');
    // Pending for a week (its endpoint disabled, say): it will need its event's File whenever it is sent.
    const waiting = await event('waiting', '8 days');
    const waitingDelivery = await delivery(waiting, '8 days', 'pending');
    const unfanned = await event('not fanned out yet', '8 days', false);
    const young = await event('young, for no endpoint', '1 hour');
    const orphaned = await event('old, its endpoint deleted', '8 days');
    // Written before migration 0008, with its own File.
    const carried = await delivery(null, '8 days', 'failed');

    const report = await reconciler.runOnce();
    expect(report).to.include({ removedDeliveries: 2, removedEvents: 2 });
    const deliveries = await sql<{ id: string }>('SELECT id FROM webhook_deliveries WHERE id = ANY ($1)', [
      [sentDelivery, waitingDelivery, carried],
    ]);
    expect(deliveries.map((row) => row.id)).to.deep.equal([waitingDelivery]);
    const events = await sql<{ id: string }>('SELECT id::text FROM webhook_events WHERE id = ANY ($1::bigint[])', [
      [sent, waiting, unfanned, young, orphaned],
    ]);
    expect(events.map((row) => row.id)).to.have.members([waiting, unfanned, young]);
    await sql('DELETE FROM webhook_endpoints WHERE id = $1', [endpoint!.id]);
    await sql('DELETE FROM webhook_events WHERE id = ANY ($1::bigint[])', [[waiting, unfanned, young]]);
  });

  it('sweeps a store larger than one run lists over the next runs, resuming where the last one stopped', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'fp-sweep-'));
    const store = new LocalDiskStore(root);
    try {
      await store.init();
      const orphans = Array.from({ length: 6 }, () => newId());
      const old = new Date(Date.now() - 2 * HOUR);
      for (const id of orphans) {
        await writeFile(store.pathOf(id), 'no row');
        await utimes(store.pathOf(id), old, old);
      }
      const sweeper = new Reconciler({
        db,
        queue: service.queue,
        redis,
        storage: store,
        logger: testLogger(),
        metrics: createMetrics(),
        config,
        sweepKeysPerRun: 2,
      });
      const removed = [];
      for (let run = 0; run < 3; run++) removed.push((await sweeper.runOnce()).removedOrphans);
      expect(removed).to.deep.equal([2, 2, 2]);
      expect(orphans.filter((id) => existsSync(store.pathOf(id)))).to.deep.equal([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("the reconciler's leader lock", () => {
  let service: TestService;
  let db: Database;
  /** Everything a reconciler opened, closed after each test. */
  let opened: Array<{ reconciler: Reconciler; redis: SharedRedis }>;

  before(async () => {
    service = await startService({ worker: false });
    db = openDatabase({ url: TEST_ENV.databaseUrl, poolMax: 2 });
  });
  beforeEach(() => (opened = []));
  afterEach(async () => {
    for (const { reconciler, redis } of opened) {
      await reconciler.stop();
      redis.close();
    }
  });
  after(async () => {
    await service.close();
    await db.close();
  });

  /** A reconciler with its own Redis connection (closing it is the process dying), whose runs are written to `runs`. */
  function competitor(name: string, runs: string[], reconcileIntervalMs = 60_000, run?: () => Promise<void>) {
    const redis = sharedRedisFor(service.queueName);
    const reconciler = new Reconciler({
      db,
      queue: service.queue,
      redis,
      storage: new LocalDiskStore(TEST_ENV.storageDir),
      logger: testLogger(),
      metrics: createMetrics(),
      config: { ...config, reconcileIntervalMs },
    });
    // What a run does is the other tests' business: here, who ran, and for how long.
    reconciler.runOnce = async () => {
      runs.push(name);
      await run?.();
      return emptyReport();
    };
    opened.push({ reconciler, redis });
    return { reconciler, redis };
  }

  it('runs in exactly one reconciler on each round of ticks, the same one every time, until it stops', async () => {
    const runs: string[] = [];
    const [first, second] = [competitor('a', runs), competitor('b', runs)];
    await Promise.all([first.redis.ready(), second.redis.ready()]);
    const [a, b] = [first.reconciler, second.reconciler];
    const rounds: string[][] = [];
    for (let round = 0; round < 5; round++) {
      const before = runs.length;
      await Promise.all([a.tick(), b.tick()]);
      rounds.push(runs.slice(before));
    }
    const leader = rounds[0]![0]!;
    expect(rounds).to.deep.equal(Array.from({ length: 5 }, () => [leader]));

    // A leader that stops hands the lock over: the other runs at its next tick.
    const [stopping, other] = leader === 'a' ? [a, b] : [b, a];
    await stopping.stop();
    await other.tick();
    expect(runs.slice(5)).to.deep.equal([leader === 'a' ? 'b' : 'a']);
  });

  it('runs on every tick of the leader when both tick on their own', async () => {
    const runs: string[] = [];
    const ticks: Array<{ name: string; ran: boolean }> = [];
    const both = ['a', 'b'].map((name) => {
      const { reconciler, redis } = competitor(name, runs, 200);
      const tick = reconciler.tick.bind(reconciler);
      reconciler.tick = async () => {
        const ran = await tick();
        ticks.push({ name, ran });
        return ran;
      };
      return { reconciler, redis };
    });
    await Promise.all(both.map(({ redis }) => redis.ready()));
    both.forEach(({ reconciler }) => reconciler.start());
    await eventually(() => runs.length >= 10, 'ten runs');
    await Promise.all(opened.map(({ reconciler }) => reconciler.stop()));
    const leader = runs[0]!;
    expect(new Set(runs)).to.deep.equal(new Set([leader]));
    expect(ticks.filter((tick) => tick.name === leader).map((tick) => tick.ran)).to.not.include(false);
    expect(ticks.filter((tick) => tick.name !== leader).map((tick) => tick.ran)).to.not.include(true);
  });

  it('keeps the lock through a run longer than the lock lives, and loses it once its process dies', async () => {
    const runs: string[] = [];
    const interval = 1_000;
    let finishRun = () => undefined as void;
    const longRun = () => new Promise<void>((resolve) => (finishRun = resolve));
    const a = competitor('a', runs, interval, longRun);
    const other = competitor('b', runs, interval);
    await Promise.all([a.redis.ready(), other.redis.ready()]);
    const b = other.reconciler;

    const leading = a.reconciler.tick();
    try {
      await eventually(() => runs.length === 1, 'a starts its run');
      // Three lifetimes of the lock go by while the run goes on: the leader renews it all along.
      for (const end = Date.now() + 3 * interval; Date.now() < end; await sleep(100)) {
        await b.tick();
        expect(runs, 'b ran while a was still in its run').to.deep.equal(['a']);
      }
    } finally {
      finishRun();
    }
    await leading;

    // The leader's process dies: nothing renews its lock, which expires, and b takes over.
    a.redis.close();
    await b.tick();
    expect(runs, 'b ran before the lock of the dead leader expired').to.deep.equal(['a']);
    await eventually(async () => {
      await b.tick();
      return runs.includes('b');
    }, 'b takes over');
    expect(runs).to.deep.equal(['a', 'b']);
  });
});

describe('the attempts cap', () => {
  it('fails a file with too_many_attempts instead of delivering it forever', async () => {
    const service = await startService({ worker: false, maxAttempts: 2 });
    try {
      const file = await uploadFile(service.url, { content: 'crashes every worker' });
      // Two workers died while processing it: two attempts used up, the job still in the queue.
      await sql("UPDATE files SET status = 'processing', attempts = 2 WHERE id = $1", [file.id]);
      const worker = await startWorker(service.queueName, { maxAttempts: 2 });
      try {
        const done = await waitForStatus(service.url, file.id);
        expect(done).to.include({ status: 'failed', attempts: 2 });
        expect(done.error!.code).to.equal('too_many_attempts');
      } finally {
        await worker.close();
      }
    } finally {
      await service.close();
    }
  });
});

describe('FileQueue', () => {
  it('tells which files still have a job', async () => {
    const queue = new FileQueue({
      redisUrl: TEST_ENV.redisUrl,
      prefix: TEST_ENV.queuePrefix,
      name: 'jobs-exist',
      role: 'producer',
      retries: 0,
      backoffMs: 10,
    });
    await queue.ready();
    try {
      const [a, b] = [newId(), newId()];
      expect(await queue.enqueue(a, 'text')).to.equal(true);
      expect(await queue.enqueue(a, 'text'), 'a second enqueue is a no-op').to.equal(false);
      expect(
        await queue.jobsExist([
          { id: a, kind: 'text' },
          { id: b, kind: 'text' },
        ]),
      ).to.deep.equal([true, false]);
      expect(await queue.jobsExist([])).to.deep.equal([]);
    } finally {
      await queue.close(100);
    }
  });
});
