// The webhook outbox as events and a fan-out: settling a File writes one event in its own transaction, whatever the
// number of endpoints; the dispatchers make one delivery per endpoint of it apart, whole or not at all; deliveries
// written before the events existed (migration 0008) are still sent.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  dropDatabase,
  ensureDatabaseExists,
  Notifications,
  openDatabase,
  type Database,
  type WebhookEvent,
} from '../core/db/index.js';
import { MIGRATIONS, type RunSql } from '../core/db/migrations/index.js';
import type { File } from '../core/fileRecord.js';
import { newId } from '../core/ids.js';
import { defaultTracer } from '../core/telemetry/spans.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { newSigningSecret } from '../core/webhooks/signing.js';
import { WebhookDispatcher, type DispatcherSettings } from '../worker/dispatcher.js';
import { sql, truncateFiles } from './support/db.js';
import { TEST_ENV } from './support/env.js';
import { eventually, rejection } from './support/eventually.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { startService, testLogger, uploadFile, waitForStatus, type TestService } from './support/service.js';

/** Where migration 0008, which brought the events, sits in the list. */
const EVENTS_MIGRATION = MIGRATIONS.findIndex((migration) => migration.name === '0008-webhook-events');

const SETTINGS: DispatcherSettings = {
  timeoutMs: 5_000,
  maxAttempts: 3,
  retryBaseMs: 50,
  disableAfterMs: 86_400_000,
  concurrency: 64,
  endpointConcurrency: 1,
  allowPrivate: true,
  pollMs: 100,
};

/** `count` endpoints written straight into the table, each its own URL at `url`, subscribed to `events`. */
const insertEndpoints = (count: number, url: string, events: WebhookEvent[] = ['file.processed']) =>
  sql<{ id: string }>(
    `INSERT INTO webhook_endpoints (id, url, events, secret, base_url)
     SELECT gen_random_uuid(), $2::text || '?endpoint=' || g, $3, $4, 'http://api.example' FROM generate_series(1, $1) AS g
     RETURNING id`,
    [count, url, events, newSigningSecret()],
  );

/** A dispatcher of the worker's, on `db`, woken by the notifications of the database at `url`. */
async function startDispatcher(db: Database, url = TEST_ENV.databaseUrl) {
  const notifications = new Notifications(url, ['webhook_deliveries']);
  await notifications.start();
  const dispatcher = new WebhookDispatcher({
    db,
    notifications,
    logger: testLogger(),
    metrics: createMetrics(),
    tracer: defaultTracer(),
    userAgent: 'file-processor/test',
    settings: SETTINGS,
  });
  dispatcher.start();
  return {
    async stop() {
      await dispatcher.stop(1_000);
      await notifications.close();
    },
  };
}

describe('webhook events and their fan-out', function () {
  this.timeout(60_000);
  let service: TestService;
  const receivers: Receiver[] = [];
  const stops: Array<() => Promise<void>> = [];

  before(async () => {
    service = await startService();
  });
  after(() => service.close());
  beforeEach(async () => {
    await truncateFiles();
    await sql('TRUNCATE webhook_endpoints, webhook_events CASCADE');
  });
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
    await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
  });
  after(() => sql('TRUNCATE webhook_endpoints, webhook_events CASCADE'));

  async function receiver(): Promise<Receiver> {
    const started = await startReceiver();
    receivers.push(started);
    return started;
  }

  it('writes one event and no delivery where a File settles, with 2,000 endpoints, and delivers it to each of them', async () => {
    const hook = await receiver();
    const endpoints = await insertEndpoints(2_000, hook.url);
    const file = await uploadFile(service.url, { name: 'note.txt', content: 'heard by 2,000 endpoints' });
    await waitForStatus(service.url, file.id);
    // A row's xmin is the transaction that wrote it: what the worker's finishing transaction wrote beside the File.
    const [finish] = await sql<{ events: number; deliveries: number }>(
      `SELECT (SELECT count(*) FROM webhook_events AS ev WHERE ev.xmin = f.xmin)::int AS events,
              (SELECT count(*) FROM webhook_deliveries AS d WHERE d.xmin = f.xmin)::int AS deliveries
       FROM files AS f WHERE f.id = $1`,
      [file.id],
    );
    expect(finish).to.deep.equal({ events: 1, deliveries: 0 });

    const dispatcher = await startDispatcher(service.db);
    stops.push(() => dispatcher.stop());

    await eventually(() => hook.ids().size === 2_000, 'a delivery at each endpoint', 45_000, 100);
    const deliveries = await sql<{ id: string; endpoint_id: string }>(
      'SELECT d.id, d.endpoint_id FROM webhook_deliveries AS d JOIN webhook_events AS ev ON ev.id = d.event_id WHERE ev.file_id = $1',
      [file.id],
    );
    expect(new Set(deliveries.map((delivery) => delivery.endpoint_id))).to.deep.equal(
      new Set(endpoints.map((endpoint) => endpoint.id)),
    );
    expect(hook.ids()).to.deep.equal(new Set(deliveries.map((delivery) => delivery.id)));
    for (const one of hook.received) {
      const event = JSON.parse(one.body) as { type: string; data: File };
      expect(event.type).to.equal('file.processed');
      expect(event.data).to.include({ id: file.id, status: 'processed' });
    }
    expect(hook.duplicates()).to.equal(0);
  });

  it('gives an event to the endpoints enabled when it happened, not to those made or enabled again after it', async () => {
    const hook = await receiver();
    const [always, enabledAfter, disabledAfter] = await insertEndpoints(3, hook.url, ['file.processed']);
    await service.db.webhooks.updateEndpoint(enabledAfter!.id, { enabled: false });
    // Timestamps are stored to the millisecond: what follows happens strictly later.
    await sleep(10);
    const file = await uploadFile(service.url, { name: 'note.txt', content: 'who hears of this?' });
    await waitForStatus(service.url, file.id);
    await sleep(10);
    const [madeAfter] = await insertEndpoints(1, hook.url, ['file.processed']);
    await service.db.webhooks.updateEndpoint(enabledAfter!.id, { enabled: true });
    await service.db.webhooks.updateEndpoint(disabledAfter!.id, { enabled: false });

    expect(await service.db.webhooks.fanOut(100, 5_000)).to.deep.equal({ events: 1, deliveries: 2 });
    const deliveries = await sql<{ endpoint_id: string; status: string }>(
      'SELECT endpoint_id, status FROM webhook_deliveries ORDER BY endpoint_id',
    );
    expect(deliveries).to.have.deep.members([
      { endpoint_id: always!.id, status: 'pending' },
      // Disabled since: it waits, as what it had pending when it was disabled does, to be sent once enabled.
      { endpoint_id: disabledAfter!.id, status: 'pending' },
    ]);
    expect(deliveries.map((delivery) => delivery.endpoint_id))
      .to.not.include(madeAfter!.id)
      .and.not.include(enabledAfter!.id);
  });

  it('fans an event out whole or not at all, and each event once however many dispatchers fan out at once', async () => {
    const endpoints = await insertEndpoints(20, 'https://hooks.example/');
    await sql(
      `INSERT INTO webhook_events (type, file_id, file)
       SELECT 'file.processed', gen_random_uuid(), '{}' FROM generate_series(1, 40)`,
    );
    // A delivery that cannot be written (here, to the last endpoint) fails the fan-out of its event: nothing is kept.
    const refuse = `test_refuse_${randomBytes(4).toString('hex')}`;
    await sql(`CREATE FUNCTION ${refuse}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.endpoint_id = '${endpoints.at(-1)!.id}' THEN RAISE EXCEPTION 'no room'; END IF;
        RETURN NEW;
      END $$`);
    await sql(`CREATE TRIGGER ${refuse} BEFORE INSERT ON webhook_deliveries FOR EACH ROW EXECUTE FUNCTION ${refuse}()`);
    try {
      expect((await rejection(service.db.webhooks.fanOut(100, 5_000))).message).to.contain('no room');
      const [left] = await sql<{ unfanned: number; deliveries: number }>(
        `SELECT (SELECT count(*) FROM webhook_events WHERE fanned_out_at IS NULL)::int AS unfanned,
                (SELECT count(*) FROM webhook_deliveries)::int AS deliveries`,
      );
      expect(left).to.deep.equal({ unfanned: 40, deliveries: 0 });
    } finally {
      await sql(`DROP TRIGGER ${refuse} ON webhook_deliveries`);
      await sql(`DROP FUNCTION ${refuse}()`);
    }

    // Eight workers' dispatchers, three events at a time each.
    const totals = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const total = { events: 0, deliveries: 0 };
        for (;;) {
          const fanned = await service.db.webhooks.fanOut(3, 5_000);
          if (fanned.events === 0) return total;
          total.events += fanned.events;
          total.deliveries += fanned.deliveries;
        }
      }),
    );
    expect(totals.reduce((sum, total) => sum + total.events, 0)).to.equal(40);
    expect(totals.reduce((sum, total) => sum + total.deliveries, 0)).to.equal(800);
    const [made] = await sql<{ deliveries: number; pairs: number; unfanned: number }>(
      `SELECT count(*)::int AS deliveries, count(DISTINCT (event_id, endpoint_id))::int AS pairs,
              (SELECT count(*) FROM webhook_events WHERE fanned_out_at IS NULL)::int AS unfanned
       FROM webhook_deliveries`,
    );
    expect(made).to.deep.equal({ deliveries: 800, pairs: 800, unfanned: 0 });
  });

  it('makes fewer events at once into deliveries when there are many endpoints', async () => {
    await insertEndpoints(300, 'https://hooks.example/');
    await sql(
      `INSERT INTO webhook_events (type, file_id, file)
       SELECT 'file.processed', gen_random_uuid(), '{}' FROM generate_series(1, 10)`,
    );
    // About 1,000 deliveries a statement: 3 events of 300 endpoints.
    expect(await service.db.webhooks.fanOut(100, 1_000)).to.deep.equal({ events: 3, deliveries: 900 });
    expect(await service.db.webhooks.fanOut(100, 100)).to.deep.equal({ events: 1, deliveries: 300 });
  });

  it('counts the events not fanned out yet in the outbox backlog, with their age', async () => {
    await insertEndpoints(2, 'https://hooks.example/');
    await sql(
      "UPDATE webhook_endpoints SET created_at = now() - interval '1 hour', enabled_changed_at = now() - interval '1 hour'",
    );
    await sql(
      `INSERT INTO webhook_events (type, file_id, file, created_at)
       SELECT 'file.processed', gen_random_uuid(), '{}', now() - interval '1 minute' FROM generate_series(1, 3)`,
    );
    const waiting = await service.db.webhooks.backlog();
    expect(waiting.pending).to.equal(3);
    expect(waiting.oldestSeconds).to.be.within(59, 70);
    await service.db.webhooks.fanOut(100, 5_000);
    expect((await service.db.webhooks.backlog()).pending).to.equal(6);
  });
});

describe('migration 0008 on a database whose deliveries carry their File (0005)', function () {
  this.timeout(60_000);
  const url = (() => {
    const named = new URL(TEST_ENV.databaseUrl);
    named.pathname = `/fp_test_events_${randomBytes(3).toString('hex')}`;
    return named.toString();
  })();
  let client: pg.Client;
  const receivers: Receiver[] = [];
  const migrate = async (index: number, direction: 'up' | 'down') => {
    const run: RunSql = (text) => client.query(text);
    const migration = MIGRATIONS[index]!;
    await migration[direction]({ name: migration.name, context: run });
  };
  /** A File row, settled by an UPDATE as the worker's is: the trigger of the schema of the moment records it. */
  const settledFile = async (name: string): Promise<string> => {
    const id = newId();
    await client.query(
      `INSERT INTO files (id, name, size, content_type, kind, sha256, status) VALUES ($1, $2, 5, 'text/plain', 'text', repeat('a', 64), 'processing')`,
      [id, name],
    );
    await client.query("UPDATE files SET status = 'processed', result = '{}', processed_at = now() WHERE id = $1", [
      id,
    ]);
    return id;
  };

  before(async () => {
    await ensureDatabaseExists(url);
    client = new pg.Client({ connectionString: url });
    await client.connect();
    for (let index = 0; index < EVENTS_MIGRATION; index++) await migrate(index, 'up');
  });
  after(async () => {
    await client.end();
    await Promise.all(receivers.map((receiver) => receiver.close()));
    await dropDatabase(url);
  });

  it('sends the deliveries written before it, and the events after it, each with the File as it was', async () => {
    const hook = await startReceiver();
    receivers.push(hook);
    await client.query(
      `INSERT INTO webhook_endpoints (id, url, events, secret, base_url) VALUES ($1, $2, '{file.processed}', $3, 'http://api.example')`,
      [newId(), hook.url, newSigningSecret()],
    );
    const before = await settledFile('before.txt');
    const { rows } = await client.query<{ file_id: string }>(
      'SELECT file_id FROM webhook_deliveries WHERE file IS NOT NULL',
    );
    expect(rows).to.deep.equal([{ file_id: before }]);

    await migrate(EVENTS_MIGRATION, 'up');
    const after = await settledFile('after.txt');
    const db = openDatabase({ url, poolMax: 2 });
    const dispatcher = await startDispatcher(db, url);
    try {
      await eventually(() => hook.received.length === 2, 'both deliveries');
      const sent = hook.received.map((one) => (JSON.parse(one.body) as { data: File }).data);
      expect(sent.map(({ id, name, status }) => ({ id, name, status }))).to.have.deep.members([
        { id: before, name: 'before.txt', status: 'processed' },
        { id: after, name: 'after.txt', status: 'processed' },
      ]);
      await eventually(
        async () => (await client.query("SELECT 1 FROM webhook_deliveries WHERE status = 'delivered'")).rowCount === 2,
        'both recorded as delivered',
      );
    } finally {
      await dispatcher.stop();
      await db.close();
    }

    // And back: every delivery carries its File again, and the trigger writes deliveries.
    await migrate(EVENTS_MIGRATION, 'down');
    const reverted = await settledFile('reverted.txt');
    const carried = await client.query<{ file_id: string }>(
      "SELECT file_id FROM webhook_deliveries WHERE file->>'id' = file_id::text ORDER BY created_at",
    );
    expect(carried.rows.map((row) => row.file_id)).to.deep.equal([before, after, reverted]);
  });
});
