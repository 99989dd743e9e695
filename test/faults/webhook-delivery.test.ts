import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { File } from '../../core/fileRecord.js';
import { newSigningSecret } from '../../core/webhooks/signing.js';
import { eventually } from '../support/eventually.js';
import { startReceiver, type Receiver } from '../support/receiver.js';
import { upload } from '../support/service.js';
import { statusCounts, usePrivateStack, waitUntilSettled } from '../support/stack.js';

interface Event {
  type: string;
  data: File;
}

describe('fault: Redis restarts and a worker is killed while files are processed, with two webhook endpoints', function () {
  this.timeout(240_000);
  const servers = usePrivateStack(
    {
      WORKER_CONCURRENCY: '4',
      WEBHOOK_ALLOW_HTTP: 'true',
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_RETRY_BASE_MS: '200',
      WEBHOOK_TIMEOUT_MS: '2000',
    },
    1,
  );
  const receivers: Receiver[] = [];
  after(() => Promise.all(receivers.map((receiver) => receiver.close())));

  it("delivers every file's event to both receivers at least once, and invents none", async () => {
    // One receiver answers every tenth request with a 503 first: retries are part of the run.
    const steady = await startReceiver();
    const flaky = await startReceiver((n) => (n % 10 === 3 ? 503 : 200));
    receivers.push(steady, flaky);
    const endpoints = new Map<string, Receiver>();
    for (const receiver of [steady, flaky]) {
      const id = randomUUID();
      await servers.stack.sql(
        `INSERT INTO webhook_endpoints (id, url, events, secret, base_url) VALUES ($1, $2, '{file.processed,file.failed}', $3, $4)`,
        [id, receiver.url, newSigningSecret(), servers.stack.url],
      );
      endpoints.set(id, receiver);
    }

    const total = 500;
    const accepted: string[] = [];
    let sent = 0;
    const client = async () => {
      while (sent < total) {
        const n = sent++;
        const response = await upload(servers.stack.url, { name: `event-${n}.txt`, content: `file ${n}\n` });
        expect(response.status, `upload ${n}`).to.equal(201);
        accepted.push(((await response.json()) as File).id);
      }
    };
    const faults = (async () => {
      while (sent < total * 0.3) await sleep(10);
      // Killed with its jobs and its deliveries in flight: the jobs come back through the stall check, the
      // deliveries when their lease ends.
      const [doomed] = servers.stack.workers;
      doomed!.child.kill('SIGKILL');
      await doomed!.exited;
      await servers.stack.startWorker();
      while (sent < total * 0.6) await sleep(10);
      await servers.redis.stop();
      await sleep(1_500);
      await servers.redis.start();
    })();
    await Promise.all([client(), client(), client(), client(), faults]);
    expect(accepted).to.have.length(total);
    expect(await waitUntilSettled(servers.stack, accepted, 120_000), 'files never settled').to.deep.equal([]);
    expect(await statusCounts(servers.stack)).to.deep.equal({ processed: total });

    await eventually(
      () => steady.ids().size === total && flaky.ids().size === total,
      'every event at both receivers',
      90_000,
      200,
    );
    // A delivery sent when its worker was killed, before the answer was recorded, is sent again when its lease ends.
    await eventually(
      async () =>
        (await servers.stack.sql("SELECT 1 FROM webhook_deliveries WHERE status <> 'delivered'")).length === 0,
      'every delivery recorded as delivered',
      90_000,
      500,
    );
    const deliveries = await servers.stack.sql<{ id: string; endpoint_id: string; file_id: string; status: string }>(
      'SELECT id, endpoint_id, file_id, status FROM webhook_deliveries',
    );
    expect(deliveries, 'one delivery per file and endpoint').to.have.length(2 * total);
    expect(new Set(deliveries.map((delivery) => delivery.status))).to.deep.equal(new Set(['delivered']));
    const byId = new Map(deliveries.map((delivery) => [delivery.id, delivery]));
    const acceptedIds = new Set(accepted);
    let duplicates = 0;
    for (const [endpointId, receiver] of endpoints) {
      const files = new Set<string>();
      for (const received of receiver.received) {
        const delivery = byId.get(String(received.headers['webhook-id']));
        // Nothing invented: every request is a recorded delivery of this endpoint, about an accepted file.
        expect(delivery?.endpoint_id, 'a delivery of this endpoint').to.equal(endpointId);
        const event = JSON.parse(received.body) as Event;
        expect(event.type).to.equal('file.processed');
        expect(event.data.id).to.equal(delivery!.file_id);
        expect(acceptedIds.has(event.data.id)).to.equal(true);
        files.add(event.data.id);
      }
      expect(files.size).to.equal(total);
      duplicates += receiver.duplicates();
    }
    expect(steady.ids().size + flaky.ids().size, 'distinct webhook-ids').to.equal(2 * total);
    // Duplicates are allowed (at least once): a delivery cut by the kill, or answered after its worker died.
    const retried = [steady, flaky].reduce(
      (sum, receiver) => sum + receiver.received.filter((one) => one.answered === 503).length,
      0,
    );
    console.log(
      `      events: ${2 * total} expected, ${steady.ids().size + flaky.ids().size} delivered, ${duplicates} duplicated, ` +
        `0 lost; ${retried} attempts answered 503 and retried`,
    );
  });
});
