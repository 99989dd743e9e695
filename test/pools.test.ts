// Worker pools: QUEUE_ROUTES sends each kind to its pool's queue, WORKER_QUEUES says which queues a worker
// takes; the reconciler puts a lost job back in its kind's queue. Real API and worker processes.
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { ConfigError, loadConfig } from '../core/config.js';
import { parseQueueRoutes, parseWorkerQueues, RouteError } from '../core/queue/routes.js';
import { truncateFiles } from './support/db.js';
import { TEST_ENV } from './support/env.js';
import { eventually } from './support/eventually.js';
import { png } from './support/fixtures.js';
import { startApiAndWorker, startWorkerProcess, type ApiAndWorker, type Started } from './support/processes.js';
import { uploadFile, waitForStatus } from './support/service.js';
import { runStoreEnv } from './support/stores.js';

describe('worker pools', () => {
  describe('QUEUE_ROUTES', () => {
    it('routes each kind to its rule, and the rest to *', () => {
      const routes = parseQueueRoutes('image, pdf,video,audio=heavy; *=light', 'files');
      expect(routes.queues).to.deep.equal(['heavy', 'light']);
      expect(['image', 'pdf', 'video', 'audio'].map((kind) => routes.queueOf(kind as 'image'))).to.deep.equal(
        Array(4).fill('heavy'),
      );
      expect(['text', 'archive', 'other'].map((kind) => routes.queueOf(kind as 'text'))).to.deep.equal(
        Array(3).fill('light'),
      );
    });

    it('is one queue, QUEUE_NAME, when empty', () => {
      const routes = parseQueueRoutes('', 'files');
      expect(routes.queues).to.deep.equal(['files']);
      expect(routes.queueOf('video')).to.equal('files');
      expect(loadConfig('api', {}).queueRoutes.queues).to.deep.equal(['files']);
    });

    for (const [spec, message] of [
      ['image=a;image=b', /the kind image is routed twice \(to a and b\)/],
      ['*=a;*=b', /"\*" is routed twice/],
      ['image=a', /no queue for the kinds .*: name them, or add a rule "\*=queue"/],
      ['photo=a;*=b', /"photo" is not a kind/],
      ['image;*=b', /"image" is not a rule/],
      ['image=a b;*=c', /is not a rule/],
    ] as const) {
      it(`refuses ${spec}`, () => {
        expect(() => parseQueueRoutes(spec, 'files')).to.throw(RouteError, message);
      });
    }

    it('stops the process with a sentence naming the variable', () => {
      expect(() => loadConfig('api', { QUEUE_ROUTES: 'image=a' })).to.throw(
        ConfigError,
        /^QUEUE_ROUTES: no queue for the kinds/,
      );
      expect(() => loadConfig('worker', { QUEUE_ROUTES: '*=a', WORKER_QUEUES: 'a=0' })).to.throw(
        ConfigError,
        /^WORKER_QUEUES: "a=0" is not "queue" or "queue=concurrency"/,
      );
    });
  });

  describe('WORKER_QUEUES', () => {
    const routes = parseQueueRoutes('image=heavy;*=light', 'files');

    it('takes every routed queue at WORKER_CONCURRENCY when empty', () => {
      expect(parseWorkerQueues('', routes, 4)).to.deep.equal([
        { name: 'heavy', concurrency: 4 },
        { name: 'light', concurrency: 4 },
      ]);
    });

    it('gives each named queue its own concurrency, or WORKER_CONCURRENCY', () => {
      expect(parseWorkerQueues('heavy=2, old', routes, 4)).to.deep.equal([
        { name: 'heavy', concurrency: 2 },
        { name: 'old', concurrency: 4 },
      ]);
      expect(
        loadConfig('worker', { QUEUE_ROUTES: 'image=heavy;*=light', WORKER_QUEUES: 'light=8' }).workerQueues,
      ).to.deep.equal([{ name: 'light', concurrency: 8 }]);
    });

    it('refuses a queue named twice, a bad concurrency, or nothing', () => {
      expect(() => parseWorkerQueues('heavy,heavy=2', routes, 4)).to.throw(RouteError, /named twice/);
      expect(() => parseWorkerQueues('heavy=257', routes, 4)).to.throw(RouteError, /1 to 256/);
      expect(() => parseWorkerQueues(' , ', routes, 4)).to.throw(RouteError, /names no queue/);
    });
  });

  describe('an API and a worker of one pool', function () {
    this.timeout(120_000);
    const suffix = randomBytes(3).toString('hex');
    const [heavy, light] = [`heavy-${suffix}`, `light-${suffix}`];
    const env = {
      QUEUE_ROUTES: `image,pdf,video,audio=${heavy};*=${light}`,
      RECONCILE_INTERVAL_MS: '300',
      REQUEUE_AFTER_MS: '500',
    };
    let processes: ApiAndWorker;
    let heavyWorker: { worker: Started; admin: string } | undefined;
    let redis: Redis;
    const key = (queue: string, suffix: string) => `${TEST_ENV.queuePrefix}:${queue}:${suffix}`;

    before(async () => {
      // The reconciler takes every stale queued row of the database, so the rows earlier suites left queued would
      // land in these queues too.
      await truncateFiles();
      redis = new Redis(TEST_ENV.redisUrl);
      processes = await startApiAndWorker({ ...env, WORKER_QUEUES: `${light}=2` });
    });
    after(async () => {
      heavyWorker?.worker.child.kill('SIGKILL');
      await processes?.terminate();
      redis.disconnect();
    });

    it('processes the light kinds while the heavy ones wait for their own pool', async () => {
      const text = await uploadFile(processes.url, { name: 'notes.txt', content: 'hello\n' });
      const image = await uploadFile(processes.url, { name: 'dot.png', content: png(2, 2), type: 'image/png' });
      expect((await waitForStatus(processes.url, text.id, ['processed', 'failed'], 10_000)).status).to.equal(
        'processed',
      );
      expect(await redis.lrange(key(heavy, 'waiting'), 0, -1)).to.deep.equal([image.id]);
      expect(await redis.llen(key(light, 'waiting'))).to.equal(0);

      const workerMetrics = await (await fetch(`${processes.workerAdmin}/metrics`)).text();
      expect(workerMetrics).to.contain(`jobs_processed_total{queue="${light}",kind="text",outcome="processed"} 1`);
      const apiMetrics = await (await fetch(`${processes.apiAdmin}/metrics`)).text();
      expect(apiMetrics).to.contain(`queue_jobs{queue="${heavy}",state="waiting"} 1`);
      expect(apiMetrics).to.contain(`queue_jobs{queue="${light}",state="waiting"} 0`);

      // Redis loses the image's job: the light pool's reconciler puts it back in the heavy queue, not its own.
      await redis.multi().lrem(key(heavy, 'waiting'), 0, image.id).hdel(key(heavy, 'jobs'), image.id).exec();
      await eventually(
        async () => (await redis.lrange(key(heavy, 'waiting'), 0, -1)).includes(image.id),
        "the reconciler's re-enqueue into the heavy queue",
        10_000,
      );
      expect(await redis.lrange(key(heavy, 'waiting'), 0, -1)).to.deep.equal([image.id]);
      expect(await redis.llen(key(light, 'waiting'))).to.equal(0);
      const stillQueued = await (await fetch(`${processes.url}/files/${image.id}/`)).json();
      expect(stillQueued).to.include({ status: 'queued' });

      heavyWorker = await startWorkerProcess({ ...(await runStoreEnv()), ...env, WORKER_QUEUES: heavy });
      const done = await waitForStatus(processes.url, image.id, ['processed', 'failed'], 20_000);
      expect(done.status).to.equal('processed');
      const heavyMetrics = await (await fetch(`${heavyWorker.admin}/metrics`)).text();
      expect(heavyMetrics).to.contain(`jobs_processed_total{queue="${heavy}",kind="image",outcome="processed"} 1`);
    });
  });
});
