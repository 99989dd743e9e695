import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { openDatabase } from '../core/db/index.js';
import type { File } from '../core/fileRecord.js';
import { PROCESSORS, type Processor } from '../worker/processors/index.js';
import { eventually } from './support/eventually.js';
import { TEST_ENV } from './support/env.js';
import { seriesValue } from './support/metrics.js';
import { expectProblem } from './support/problems.js';
import { freePort, killStartedProcesses, startProcess, waitUntilReady } from './support/processes.js';
import { startService, uploadFile, type TestService } from './support/service.js';
import { runStoreEnv } from './support/stores.js';

const SETTLE = "UPDATE files SET status = 'processed', processed_at = now() WHERE id = $1";
/** Cuts off the service's LISTEN connection (it reconnects after 100 ms). */
const TERMINATE_LISTENER = `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
  WHERE application_name = 'file-processor-listen' AND datname = current_database()`;

/** A queued File: nothing consumes the queue of a service started with `worker: false`. */
const queuedFile = (service: TestService) => uploadFile(service.url, { name: 'a.bin', content: 'some bytes' });

/** GET /files/{id}/?wait=…, with the time it took. */
async function getWaiting(service: TestService, id: string, wait: string, signal?: AbortSignal) {
  const started = performance.now();
  const response = await fetch(`${service.url}/files/${id}/?wait=${wait}`, { signal });
  const body = (await response.json()) as File;
  return { response, body, answeredAt: performance.now(), ms: performance.now() - started };
}

const waitingCount = (service: TestService) => service.waiters!.size;

describe('GET /files/{id}/?wait=N', () => {
  // The test's own connection settles rows, so the time measured from its UPDATE is the service's alone.
  const client = new pg.Client({ connectionString: TEST_ENV.databaseUrl });
  before(() => client.connect());
  after(() => client.end());

  describe('with a worker', () => {
    let service: TestService;
    before(async () => {
      // Slow enough that an answer without waiting would still say queued or processing.
      const slowText: Processor = {
        ...PROCESSORS.text,
        process: async (input) => {
          await sleep(300);
          return PROCESSORS.text.process(input);
        },
      };
      service = await startService({ processors: { text: slowText } });
    });
    after(() => service.close());

    it('answers a file just uploaded once the worker has processed it', async () => {
      const file = await queuedFile(service);
      const { response, body, ms } = await getWaiting(service, file.id, '10');
      expect(response.status).to.equal(200);
      expect(body).to.include({ id: file.id, status: 'processed', processed: true });
      expect(ms).to.be.above(200);
    });
  });

  describe('without a worker', () => {
    let service: TestService;
    before(async () => {
      service = await startService({ worker: false });
    });
    after(() => service.close());

    it('answers within 100 ms of the file settling, woken by its notification', async () => {
      const file = await queuedFile(service);
      const waiting = getWaiting(service, file.id, '10');
      await eventually(() => waitingCount(service) === 1, 'the request waiting');
      await client.query(SETTLE, [file.id]);
      const settledAt = performance.now();
      const { response, body, answeredAt } = await waiting;
      expect(response.status).to.equal(200);
      expect(body).to.include({ status: 'processed', processed: true });
      expect(answeredAt - settledAt).to.be.below(100);
      expect(waitingCount(service)).to.equal(0);
    });

    it('answers 200 with the current state after N seconds when the file has not settled', async () => {
      const file = await queuedFile(service);
      const { response, body, ms } = await getWaiting(service, file.id, '1');
      expect(response.status).to.equal(200);
      expect(body).to.include({ id: file.id, status: 'queued' });
      expect(ms).to.be.at.least(950).and.below(3_000);
    });

    it('answers at once when the file has already settled', async () => {
      const file = await queuedFile(service);
      await client.query("UPDATE files SET status = 'failed', processed_at = now() WHERE id = $1", [file.id]);
      const { response, body, ms } = await getWaiting(service, file.id, '30');
      expect(response.status).to.equal(200);
      expect(body.status).to.equal('failed');
      expect(ms).to.be.below(500);
    });

    it('answers 404 at once for an unknown id', async () => {
      const started = performance.now();
      const response = await fetch(`${service.url}/files/0193a9c2-5b7e-7c1d-9f3a-8d2e4b6a1c0f/?wait=30`);
      await expectProblem(response, 404, 'not_found');
      expect(performance.now() - started).to.be.below(500);
    });

    it('answers 400 invalid_query for a wait that is not a whole number of seconds from 1 to 60', async () => {
      const file = await queuedFile(service);
      for (const wait of ['0', '61', 'abc', '1.5', '-1', '1e1', '', '5&wait=6']) {
        const response = await fetch(`${service.url}/files/${file.id}/?wait=${wait}`);
        const problem = await expectProblem(response, 400, 'invalid_query');
        expect(
          problem.errors?.map((error) => error.field),
          `wait=${wait}`,
        ).to.deep.equal(['wait']);
      }
      expect(waitingCount(service)).to.equal(0);
    });

    it('drops the waiter as soon as the client goes away', async () => {
      const file = await queuedFile(service);
      const caller = new AbortController();
      const waiting = getWaiting(service, file.id, '30', caller.signal).catch((err: Error) => err);
      await eventually(() => waitingCount(service) === 1, 'the request waiting');
      expect(await seriesValue(service.metrics.registry, 'http_waiters')).to.equal(1);
      caller.abort();
      expect(await waiting).to.be.instanceOf(Error);
      await eventually(() => waitingCount(service) === 0, 'the waiter dropped', 500, 5);
      expect(await seriesValue(service.metrics.registry, 'http_waiters')).to.equal(0);
    });

    it('answers 404 when the file is deleted while it waits', async () => {
      const file = await queuedFile(service);
      const waiting = fetch(`${service.url}/files/${file.id}/?wait=10`);
      await eventually(() => waitingCount(service) === 1, 'the request waiting');
      const started = performance.now();
      expect((await fetch(`${service.url}/files/${file.id}/`, { method: 'DELETE' })).status).to.equal(204);
      await expectProblem(await waiting, 404, 'not_found');
      expect(performance.now() - started).to.be.below(1_000);
    });

    it('waits on for the time left when a reconnection wakes it and the file has not settled', async () => {
      const file = await queuedFile(service);
      const waiting = getWaiting(service, file.id, '2');
      await eventually(() => waitingCount(service) === 1, 'the request waiting');
      let reconnected = false;
      const stopWatching = service.notifications!.onListening(() => (reconnected = true));
      try {
        await client.query(TERMINATE_LISTENER);
        const { response, body, ms } = await waiting;
        expect(reconnected, 'reconnected while it waited').to.equal(true);
        expect(response.status).to.equal(200);
        expect(body.status).to.equal('queued');
        expect(ms).to.be.at.least(1_950);
      } finally {
        stopWatching();
      }
    });

    it('still answers when the notification was lost with the LISTEN connection, once it is back', async () => {
      const file = await queuedFile(service);
      const waiting = getWaiting(service, file.id, '10');
      await eventually(() => waitingCount(service) === 1, 'the request waiting');
      let reconnectedAt = 0;
      const stopWatching = service.notifications!.onListening(() => (reconnectedAt = performance.now()));
      try {
        // The listener is cut off before the UPDATE commits, so the notification reaches no one.
        await client.query('BEGIN');
        await client.query(SETTLE, [file.id]);
        const terminated = await client.query<{ terminated: boolean }>(TERMINATE_LISTENER);
        await client.query('COMMIT');
        const settledAt = performance.now();
        expect(terminated.rows.map((row) => row.terminated)).to.deep.equal([true]);
        const { response, body, answeredAt } = await waiting;
        expect(response.status).to.equal(200);
        expect(body.status).to.equal('processed');
        expect(reconnectedAt, 'answered after the reconnection').to.be.above(0).and.at.most(answeredAt);
        expect(answeredAt - settledAt).to.be.below(3_000);
      } finally {
        stopWatching();
      }
    });
  });

  describe('with MAX_WAITERS=2', () => {
    let service: TestService;
    before(async () => {
      service = await startService({ worker: false, env: { MAX_WAITERS: '2' } });
    });
    after(() => service.close());

    it('answers 429 rate_limited with Retry-After to a third request waiting at once', async () => {
      const file = await queuedFile(service);
      const first = getWaiting(service, file.id, '10');
      const second = getWaiting(service, file.id, '10');
      await eventually(() => waitingCount(service) === 2, 'two requests waiting');
      const third = await fetch(`${service.url}/files/${file.id}/?wait=10`);
      await expectProblem(third, 429, 'rate_limited');
      expect(third.headers.get('retry-after')).to.equal('1');
      // Without wait, nothing is counted.
      expect((await fetch(`${service.url}/files/${file.id}/`)).status).to.equal(200);
      await client.query(SETTLE, [file.id]);
      for (const { response, body } of await Promise.all([first, second])) {
        expect(response.status).to.equal(200);
        expect(body.status).to.equal('processed');
      }
      expect(waitingCount(service)).to.equal(0);
    });
  });

  describe('with MAX_WAITERS=0', () => {
    let service: TestService;
    before(async () => {
      service = await startService({ worker: false, env: { MAX_WAITERS: '0' } });
    });
    after(() => service.close());

    it('ignores wait, valid or not', async () => {
      const file = await queuedFile(service);
      for (const wait of ['5', 'abc']) {
        const { response, body, ms } = await getWaiting(service, file.id, wait);
        expect(response.status).to.equal(200);
        expect(body.status).to.equal('queued');
        expect(ms).to.be.below(500);
      }
    });
  });

  describe('with a pool of two database connections', () => {
    let service: TestService;
    before(async () => {
      service = await startService({ worker: false, db: openDatabase({ url: TEST_ENV.databaseUrl, poolMax: 2 }) });
    });
    after(() => service.close());

    it('lets 20 requests wait without holding a connection, so other requests still answer promptly', async () => {
      const file = await queuedFile(service);
      const waiting = Array.from({ length: 20 }, () => getWaiting(service, file.id, '10'));
      await eventually(() => waitingCount(service) === 20, '20 requests waiting');
      // Each registers before its first read: once those are done, only the waiting remains.
      await sleep(100);
      const started = performance.now();
      const list = await fetch(`${service.url}/files/?limit=1`);
      expect(list.status).to.equal(200);
      expect(performance.now() - started).to.be.below(1_000);
      await client.query(SETTLE, [file.id]);
      for (const { body } of await Promise.all(waiting)) expect(body.status).to.equal('processed');
    });
  });

  describe('with an idle timeout shorter than the wait', () => {
    let service: TestService;
    before(async () => {
      service = await startService({ worker: false, env: { HTTP_IDLE_TIMEOUT_MS: '1000' } });
    });
    after(() => service.close());

    it('keeps the connection of a waiting request open for the whole wait', async () => {
      const file = await queuedFile(service);
      const { response, body, ms } = await getWaiting(service, file.id, '2');
      expect(response.status).to.equal(200);
      expect(body.status).to.equal('queued');
      expect(ms).to.be.at.least(1_950);
    });
  });

  describe('the API process', () => {
    after(killStartedProcesses);

    it('wakes waiters on its LISTEN connection, counts them, and lets them answer at once on SIGTERM', async () => {
      const [port, adminPort] = [await freePort(), await freePort()];
      const api = startProcess('dist/api/main.js', {
        ...(await runStoreEnv()),
        PORT: String(port),
        ADMIN_PORT: String(adminPort),
        QUEUE_NAME: `wait-${randomBytes(3).toString('hex')}`,
        // Long enough that a drain held by the waiting request would show.
        SHUTDOWN_TIMEOUT_MS: '20000',
      });
      const url = `http://127.0.0.1:${port}`;
      const waiters = async () => {
        const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
        return Number(/^http_waiters (\d+)$/m.exec(metrics)?.[1]);
      };
      await waitUntilReady(api, `http://127.0.0.1:${adminPort}/readyz`);

      const settling = await uploadFile(url, { name: 'a.bin', content: 'some bytes' });
      const woken = fetch(`${url}/files/${settling.id}/?wait=30`);
      await eventually(async () => (await waiters()) === 1, 'http_waiters 1');
      await client.query(SETTLE, [settling.id]);
      expect(((await (await woken).json()) as File).status).to.equal('processed');

      const queued = await uploadFile(url, { name: 'b.bin', content: 'other bytes' });
      const waiting = fetch(`${url}/files/${queued.id}/?wait=30`);
      await eventually(async () => (await waiters()) === 1, 'http_waiters 1');
      const stopping = performance.now();
      api.child.kill('SIGTERM');
      const answer = await waiting;
      expect(answer.status).to.equal(200);
      expect(((await answer.json()) as File).status).to.equal('queued');
      expect(await api.exited).to.equal(0);
      expect(performance.now() - stopping).to.be.below(5_000);
    });
  });
});
