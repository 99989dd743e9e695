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
import { createMetrics, type Metrics } from '../core/telemetry/metrics.js';
import { Reconciler } from '../worker/reconciler.js';
import { sweepsFor, type Sweep, type SweepConfig, type SweepDeps } from '../worker/sweeps/index.js';
import { sql, truncateFiles } from './support/db.js';
import { eventually } from './support/eventually.js';
import { TEST_ENV } from './support/env.js';
import { captureLogs } from './support/logs.js';
import { seriesValue } from './support/metrics.js';
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
const config: SweepConfig = {
  reconcileIntervalMs: 60_000,
  requeueAfterMs: 200,
  orphanAfterMs: HOUR,
  webhookRetentionMs: 7 * 24 * HOUR,
  tusExpireAfterMs: 24 * HOUR,
};

describe("the reconciler's sweeps", () => {
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
    reconciler = reconcilerWith({}, metrics);
  });
  after(async () => {
    await service.close();
    redis.close();
    await db.close();
  });

  /** A reconciler of the worker's sweeps over this service's database, queue and store, unless `deps` says otherwise. */
  function reconcilerWith(deps: Partial<SweepDeps>, registry: Metrics = createMetrics()): Reconciler {
    const sweeps = sweepsFor({ db, queue: service.queue, storage, config, ...deps });
    return new Reconciler({ redis, logger: testLogger(), metrics: registry, config, sweeps });
  }

  const ageRow = (id: string) => sql("UPDATE files SET updated_at = now() - interval '1 minute' WHERE id = $1", [id]);

  it('has a sweep for each repair and each housekeeping task, those of the store it has only', () => {
    const names = (deps: Partial<SweepDeps>) =>
      sweepsFor({ db, queue: service.queue, storage, config, ...deps }).map((sweep) => sweep.name);
    expect(names({})).to.deep.equal([
      'requeue_queued',
      'requeue_lost',
      'orphan_blobs',
      'temporary_files',
      'idempotency_keys',
      'webhook_retention',
    ]);
    // Direct uploads need a bucket; resumable uploads their store.
    expect(names({ resumable: storage.resumable(HOUR) })).to.include('resumable_uploads');
  });

  it('repairs at every tick and keeps house every tenth, at most an hour apart', () => {
    const intervals = (reconcileIntervalMs: number) =>
      Object.fromEntries(
        sweepsFor({ db, queue: service.queue, storage, config: { ...config, reconcileIntervalMs } }).map((sweep) => [
          sweep.name,
          sweep.intervalMs,
        ]),
      );
    expect(intervals(30_000)).to.deep.equal({
      requeue_queued: 30_000,
      requeue_lost: 30_000,
      orphan_blobs: 30_000,
      temporary_files: 300_000,
      idempotency_keys: 300_000,
      webhook_retention: 300_000,
    });
    expect(intervals(HOUR / 2)).to.include({ requeue_queued: HOUR / 2, temporary_files: HOUR });
    expect(intervals(HOUR)).to.include({ requeue_queued: HOUR, temporary_files: HOUR });
  });

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
    expect(report.swept.requeue_queued).to.deep.equal({ requeued: 1, failed: 0 });
    expect((await waitForStatus(service.url, id)).status).to.equal('processed');
    const items = (outcome: string) =>
      seriesValue(metrics.registry, 'reconciler_items_total', { sweep: 'requeue_queued', outcome });
    expect([await items('requeued'), await items('failed')]).to.deep.equal([1, 0]);
    expect(await seriesValue(metrics.registry, 'reconciler_sweep_duration_seconds_count')).to.equal(
      Object.keys(report.swept).length,
    );
  });

  it('leaves alone a queued file whose job is waiting', async () => {
    const idle = await startService({ worker: false });
    try {
      const file = await uploadFile(idle.url, { content: 'waiting its turn' });
      await ageRow(file.id);
      const idleReconciler = reconcilerWith({ queue: idle.queue });
      expect((await idleReconciler.runOnce()).swept.requeue_queued).to.include({ requeued: 0 });
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
    expect(report.swept.requeue_lost).to.deep.equal({ requeued: 1 });
    const done = await waitForStatus(service.url, file.id);
    expect(done).to.include({ status: 'processed', attempts: 2 });
  });

  it('fails a queued file whose bytes are gone with blob_missing', async () => {
    const idle = await startService({ worker: false, redisUrl: 'redis://127.0.0.1:9' });
    try {
      const file = await uploadFile(idle.url, { content: 'bytes about to vanish' });
      await storage.remove(file.id);
      await ageRow(file.id);
      expect((await reconciler.runOnce()).swept.requeue_queued).to.deep.equal({ requeued: 0, failed: 1 });
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

    const report = await reconciler.runOnce();
    expect(report.swept.orphan_blobs).to.deep.equal({ removed: 1 });
    expect(report.swept.temporary_files!.removed).to.be.at.least(1);
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
    expect((await reconciler.runOnce()).swept.idempotency_keys).to.deep.equal({ removed: 1 });
    expect((await sql("SELECT key FROM idempotency_keys WHERE scope = 'ip:x'")).map((row) => row.key)).to.deep.equal([
      'recent',
    ]);
  });

  it('forgets more idempotency keys than one statement removes, in one run of statements one after the other', async () => {
    // Three statements' worth with batches of 5,000: a housekeeping run of ten statements takes them all.
    await sql(
      "INSERT INTO idempotency_keys (scope, key, created_at) SELECT 'ip:y', 'k' || n, now() - interval '25 hours' FROM generate_series(1, 12000) AS n",
    );
    expect((await reconciler.runOnce()).swept.idempotency_keys).to.deep.equal({ removed: 12_000 });
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
    expect(report.swept.webhook_retention).to.deep.equal({ deliveries_removed: 2, events_removed: 2 });
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

  it('walks a store larger than one run lists over the next runs, past what it keeps, and starts over after the last key', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'fp-sweep-'));
    const store = new LocalDiskStore(root);
    try {
      await store.init();
      // The store lists its keys by shard (an id's last two hex digits): two young blobs first, then the orphans.
      const inShard = (shard: string) => `${newId().slice(0, -2)}${shard}`;
      const young = [inShard('00'), inShard('00')];
      const orphans = [inShard('80'), inShard('80'), inShard('ff'), inShard('ff')];
      const old = new Date(Date.now() - 2 * HOUR);
      const writeOrphans = async () => {
        for (const id of orphans) {
          await writeFile(store.pathOf(id), 'no row');
          await utimes(store.pathOf(id), old, old);
        }
      };
      for (const id of young) await writeFile(store.pathOf(id), 'no row yet');
      await writeOrphans();
      const sweeper = reconcilerWith({ storage: store, orphanKeysPerRun: 2 });
      const removed = async () => (await sweeper.runOnce()).swept.orphan_blobs!.removed;

      const firstRound = [await removed(), await removed(), await removed()];
      expect(firstRound).to.deep.equal([0, 2, 2]);
      expect(orphans.filter((id) => existsSync(store.pathOf(id)))).to.deep.equal([]);

      // Orphans again, every one behind where the first round ended: the next round takes them.
      await writeOrphans();
      let secondRound = 0;
      for (let run = 0; run < 4; run++) secondRound += (await removed()) ?? 0;
      expect(secondRound).to.equal(orphans.length);
      expect(orphans.filter((id) => existsSync(store.pathOf(id)))).to.deep.equal([]);
      expect(young.filter((id) => existsSync(store.pathOf(id)))).to.deep.equal(young);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('removes resumable uploads past TUS_EXPIRE_AFTER_MS', async () => {
    const created = await fetch(`${service.url}/uploads/tus/`, {
      method: 'POST',
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '1024' },
    });
    expect(created.status).to.equal(201);
    const upload = created.headers.get('location')!;
    await sleep(10);
    // An upload expires TUS_EXPIRE_AFTER_MS after it was made: 1 ms here.
    const report = await reconcilerWith({
      resumable: service.storage.resumable(1),
      config: { ...config, tusExpireAfterMs: 1 },
    }).runOnce();
    expect(report.swept.resumable_uploads!.removed).to.be.at.least(1);
    expect((await fetch(upload, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } })).status).to.be.oneOf([
      404, 410,
    ]);
  });
});

describe("the reconciler's leader loop", () => {
  let service: TestService;
  /** Everything a reconciler opened, closed after each test. */
  let opened: Array<{ reconciler: Reconciler; redis: SharedRedis }>;

  before(async () => {
    service = await startService({ worker: false });
  });
  beforeEach(() => (opened = []));
  afterEach(async () => {
    for (const { reconciler, redis } of opened) {
      await reconciler.stop();
      redis.close();
    }
  });
  after(() => service.close());

  /** A sweep that writes `name` into `runs` at each of its runs, and takes as long as `run`. */
  const probe = (name: string, runs: string[], intervalMs = 0, run?: () => Promise<void>): Sweep => ({
    name,
    intervalMs,
    async run() {
      runs.push(name);
      await run?.();
      return { probed: 1 };
    },
  });

  /** A reconciler with its own Redis connection (closing it is the process dying), running `sweeps`. */
  function reconcilerOf(sweeps: Sweep[], reconcileIntervalMs = 60_000, metrics = createMetrics(), logs = testLogger()) {
    const redis = sharedRedisFor(service.queueName);
    const reconciler = new Reconciler({ redis, logger: logs, metrics, config: { reconcileIntervalMs }, sweeps });
    opened.push({ reconciler, redis });
    return { reconciler, redis };
  }

  /** A reconciler whose one sweep writes `name` into `runs` at every tick it leads. */
  const competitor = (name: string, runs: string[], reconcileIntervalMs = 60_000, run?: () => Promise<void>) =>
    reconcilerOf([probe(name, runs, 0, run)], reconcileIntervalMs);

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

  it('runs each sweep when its interval has gone by since it last started, and not before', async () => {
    const runs: string[] = [];
    const { reconciler, redis } = reconcilerOf([probe('each tick', runs, 100), probe('slow', runs, 1_000)], 100);
    await redis.ready();
    await reconciler.tick();
    await sleep(150);
    await reconciler.tick();
    expect(runs).to.deep.equal(['each tick', 'slow', 'each tick']);
    await sleep(1_000);
    await reconciler.tick();
    expect(runs.slice(3)).to.deep.equal(['each tick', 'slow']);
  });

  it('runs the other sweeps when one throws, and logs and counts the failure under its name', async () => {
    const runs: string[] = [];
    const metrics = createMetrics();
    const logs = captureLogs();
    const broken: Sweep = {
      name: 'broken',
      intervalMs: 0,
      run: () => Promise.reject(new Error('the store refused the listing')),
    };
    const { reconciler } = reconcilerOf(
      [probe('before', runs), broken, probe('after', runs)],
      60_000,
      metrics,
      logs.logger,
    );
    const report = await reconciler.runOnce();
    expect(runs).to.deep.equal(['before', 'after']);
    expect(Object.keys(report.swept)).to.deep.equal(['before', 'after']);
    expect((report.failed.broken as Error).message).to.equal('the store refused the listing');
    const failure = logs.lines().find((line) => line.msg === 'reconciler sweep failed; its next run retries');
    expect(failure).to.deep.include({ sweep: 'broken', level: 'warn' });
    expect(JSON.stringify(failure)).to.contain('the store refused the listing');
    expect(
      logs
        .lines()
        .filter((line) => line.msg === 'swept')
        .map((line) => line.sweep),
    ).to.deep.equal(['before', 'after']);
    const errors = (sweep: string) => seriesValue(metrics.registry, 'reconciler_sweep_errors_total', { sweep });
    expect([await errors('broken'), await errors('before')]).to.deep.equal([1, 0]);
    const timed = (sweep: string) =>
      seriesValue(metrics.registry, 'reconciler_sweep_duration_seconds_count', { sweep });
    expect([await timed('before'), await timed('broken'), await timed('after')]).to.deep.equal([1, 1, 1]);
    expect(
      await seriesValue(metrics.registry, 'reconciler_items_total', { sweep: 'after', outcome: 'probed' }),
    ).to.equal(1);
  });

  it('refuses two sweeps of one name, whose logs and metrics would mix', () => {
    const redis = sharedRedisFor(service.queueName);
    try {
      const twins = [probe('twin', []), probe('twin', [])];
      const make = () =>
        new Reconciler({ redis, logger: testLogger(), metrics: createMetrics(), config, sweeps: twins });
      expect(make).to.throw(/twin/);
    } finally {
      redis.close();
    }
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
