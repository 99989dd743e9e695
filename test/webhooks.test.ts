// Webhook deliveries end to end: the trigger writes them as Files settle, the dispatcher sends them to real HTTP
// receivers, signed as Standard Webhooks, and records what became of each.
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { Webhook } from 'standardwebhooks';
import { Notifications, type WebhookEndpoint, type WebhookEvent } from '../core/db/index.js';
import type { File } from '../core/fileRecord.js';
import { newId } from '../core/ids.js';
import { defaultTracer } from '../core/telemetry/spans.js';
import { createMetrics, type Metrics } from '../core/telemetry/metrics.js';
import { newSigningSecret } from '../core/webhooks/signing.js';
import { retryDelayMs, WebhookDispatcher, type DispatcherSettings } from '../worker/dispatcher.js';
import { sql, truncateFiles } from './support/db.js';
import { TEST_ENV } from './support/env.js';
import { eventually } from './support/eventually.js';
import { seriesValue } from './support/metrics.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { startService, testLogger, uploadFile, waitForStatus, type TestService } from './support/service.js';

const ALL_EVENTS: WebhookEvent[] = ['file.processed', 'file.failed', 'file.deleted'];

const SETTINGS: DispatcherSettings = {
  timeoutMs: 400,
  maxAttempts: 4,
  retryBaseMs: 50,
  disableAfterMs: 86_400_000,
  concurrency: 8,
  endpointConcurrency: 2,
  allowPrivate: true,
  pollMs: 100,
};

interface Delivery {
  id: string;
  status: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  event_type: string;
}

const deliveriesOf = (endpointId: string) =>
  sql<Delivery>(
    'SELECT id, status, attempts, last_status, last_error, event_type FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY created_at',
    [endpointId],
  );

describe('webhook deliveries', function () {
  this.timeout(30_000);
  let service: TestService;
  let notifications: Notifications;
  let dispatcher: WebhookDispatcher | undefined;
  let metrics: Metrics;
  const receivers: Receiver[] = [];

  before(async () => {
    service = await startService();
  });
  after(() => service.close());

  beforeEach(async () => {
    await truncateFiles();
    await sql('TRUNCATE webhook_endpoints, webhook_events CASCADE');
    metrics = createMetrics();
  });
  afterEach(async () => {
    await dispatcher?.stop(1_000);
    dispatcher = undefined;
    await notifications?.close();
    await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
  });

  async function startDispatcher(settings: Partial<DispatcherSettings> = {}): Promise<void> {
    notifications = new Notifications(TEST_ENV.databaseUrl, ['webhook_deliveries']);
    await notifications.start();
    dispatcher = new WebhookDispatcher({
      db: service.db,
      notifications,
      logger: testLogger(),
      metrics,
      tracer: defaultTracer(),
      userAgent: 'file-processor/test',
      settings: { ...SETTINGS, ...settings },
    });
    dispatcher.start();
  }

  async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
    const started = await startReceiver(...args);
    receivers.push(started);
    return started;
  }

  async function register(url: string, events = ALL_EVENTS): Promise<WebhookEndpoint & { secret: string }> {
    const secret = newSigningSecret();
    const endpoint = await service.db.webhooks.createEndpoint(
      { id: newId(), url, events, description: '', secret, baseUrl: service.url },
      Number.MAX_SAFE_INTEGER,
    );
    return { ...endpoint!, secret };
  }

  const processedFile = async (content = 'hello webhooks'): Promise<File> => {
    const file = await uploadFile(service.url, { name: 'note.txt', content });
    return waitForStatus(service.url, file.id);
  };

  it('signs each event so that a Standard Webhooks library verifies it, with the File as GET answers it', async () => {
    const hook = await receiver();
    const endpoint = await register(hook.url);
    await startDispatcher();
    const file = await processedFile();
    await eventually(() => hook.received.length === 1, 'the delivery');
    const [one] = hook.received;
    const payload = new Webhook(endpoint.secret).verify(one!.body, one!.headers as Record<string, string>) as {
      type: string;
      timestamp: string;
      data: File;
    };
    expect(payload.type).to.equal('file.processed');
    expect(payload.data).to.deep.equal(await (await fetch(`${service.url}/files/${file.id}/`)).json());
    expect(Date.parse(payload.timestamp)).to.be.closeTo(Date.now(), 10_000);
    expect(one!.headers['content-type']).to.equal('application/json');
    // Signed with another secret, or altered, it does not verify.
    expect(() => new Webhook(newSigningSecret()).verify(one!.body, one!.headers as Record<string, string>)).to.throw();
    expect(() =>
      new Webhook(endpoint.secret).verify(
        one!.body.replace('processed', 'failed'),
        one!.headers as Record<string, string>,
      ),
    ).to.throw();
    const [delivery] = await deliveriesOf(endpoint.id);
    expect(delivery).to.include({ status: 'delivered', attempts: 1, last_status: 204, last_error: null });
  });

  it('retries a failing receiver with the same webhook-id until it answers 2xx', async () => {
    const hook = await receiver((n) => (n < 2 ? 500 : 200));
    const endpoint = await register(hook.url);
    await startDispatcher();
    await processedFile();
    await eventually(() => hook.received.length === 3, 'three attempts');
    await sleep(300);
    expect(hook.received).to.have.length(3);
    expect(hook.ids().size).to.equal(1);
    const [delivery] = await deliveriesOf(endpoint.id);
    expect(delivery).to.include({ status: 'delivered', attempts: 3, last_status: 200 });
    const attempts = (outcome: string) => seriesValue(metrics.registry, 'webhook_deliveries_total', { outcome });
    expect(await attempts('retried')).to.equal(2);
    expect(await attempts('delivered')).to.equal(1);
    expect(await seriesValue(metrics.registry, 'webhook_delivery_duration_seconds_count')).to.equal(3);
  });

  it('cuts a receiver that does not answer at the timeout, and tries again', async () => {
    const hook = await receiver((n) => (n === 0 ? 'hang' : 204));
    const endpoint = await register(hook.url);
    await startDispatcher({ timeoutMs: 300 });
    await processedFile();
    await eventually(() => hook.received.length === 2, 'the retry after the timeout');
    expect(hook.received[1]!.at - hook.received[0]!.at).to.be.at.least(300);
    await eventually(async () => (await deliveriesOf(endpoint.id))[0]?.status === 'delivered', 'the delivery');
    expect((await deliveriesOf(endpoint.id))[0]).to.include({ attempts: 2 });
  });

  it('gives up after WEBHOOK_MAX_ATTEMPTS, recording the last answer', async () => {
    const hook = await receiver(() => ({ status: 503, body: 'down for maintenance' }));
    const endpoint = await register(hook.url);
    await startDispatcher({ maxAttempts: 3 });
    await processedFile();
    await eventually(async () => (await deliveriesOf(endpoint.id))[0]?.status === 'failed', 'the delivery failing');
    expect(hook.received).to.have.length(3);
    const [delivery] = await deliveriesOf(endpoint.id);
    expect(delivery).to.include({ attempts: 3, last_status: 503 });
    expect(delivery!.last_error).to.contain('down for maintenance');
    expect((await service.db.webhooks.findEndpoint(endpoint.id))!.enabled).to.equal(true);
  });

  it('holds a retry scheduled before its endpoint was disabled, and sends it once the endpoint is enabled again', async () => {
    const hook = await receiver((n) => (n === 0 ? 500 : 204));
    const endpoint = await register(hook.url);
    // The retry is due 1.6 to 2.4 s after the first attempt: time enough to disable the endpoint before.
    await startDispatcher({ retryBaseMs: 2_000 });
    await processedFile();
    await eventually(
      async () => (await deliveriesOf(endpoint.id))[0]?.last_status === 500,
      'the first attempt failing',
    );
    const patch = (enabled: boolean) =>
      fetch(`${service.url}/webhooks/${endpoint.id}/`, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ enabled }),
      });
    expect((await patch(false)).status).to.equal(200);

    // Past the retry's time, the dispatcher's own timer for it and several polls.
    await sleep(3_000);
    expect(hook.received).to.have.length(1);
    expect((await deliveriesOf(endpoint.id))[0]).to.include({ status: 'pending', attempts: 1 });

    expect((await patch(true)).status).to.equal(200);
    await eventually(async () => (await deliveriesOf(endpoint.id))[0]?.status === 'delivered', 'the retry');
    expect(hook.received).to.have.length(2);
    expect(hook.ids().size).to.equal(1);
  });

  it('disables an endpoint that answers 410 Gone, and records no more events for it', async () => {
    const hook = await receiver(() => 410);
    const endpoint = await register(hook.url);
    await startDispatcher();
    await processedFile();
    await eventually(
      async () => !(await service.db.webhooks.findEndpoint(endpoint.id))!.enabled,
      'the endpoint disabled',
    );
    expect(await service.db.webhooks.findEndpoint(endpoint.id)).to.include({ disabled_reason: 'gone' });
    expect(await deliveriesOf(endpoint.id)).to.have.length(1);
    expect((await deliveriesOf(endpoint.id))[0]).to.include({ status: 'failed', attempts: 1, last_status: 410 });
    await processedFile('another');
    await sleep(300);
    expect(hook.received).to.have.length(1);
    expect(await deliveriesOf(endpoint.id)).to.have.length(1);
  });

  it('disables an endpoint whose deliveries have failed for longer than WEBHOOK_DISABLE_AFTER_MS', async () => {
    const hook = await receiver(() => 500);
    const endpoint = await register(hook.url);
    await sql("UPDATE webhook_endpoints SET failing_since = now() - interval '2 seconds' WHERE id = $1", [endpoint.id]);
    await startDispatcher({ disableAfterMs: 1_000 });
    await processedFile();
    await eventually(
      async () => !(await service.db.webhooks.findEndpoint(endpoint.id))!.enabled,
      'the endpoint disabled',
    );
    expect(await service.db.webhooks.findEndpoint(endpoint.id)).to.include({ disabled_reason: 'failing' });
  });

  it('ends a failing streak with a success', async () => {
    const hook = await receiver((n) => (n === 0 ? 500 : 204));
    const endpoint = await register(hook.url);
    await startDispatcher();
    await processedFile();
    await eventually(() => hook.received.length === 1, 'the first attempt');
    await eventually(
      async () => (await service.db.webhooks.findEndpoint(endpoint.id))!.failing_since !== null,
      'the streak',
    );
    await eventually(async () => (await deliveriesOf(endpoint.id))[0]?.status === 'delivered', 'the delivery');
    expect((await service.db.webhooks.findEndpoint(endpoint.id))!.failing_since).to.equal(null);
  });

  it('does not follow redirects', async () => {
    const elsewhere = await receiver();
    const hook = await receiver(() => ({ status: 307, headers: { location: elsewhere.url } }));
    const endpoint = await register(hook.url);
    await startDispatcher({ maxAttempts: 1 });
    await processedFile();
    await eventually(async () => (await deliveriesOf(endpoint.id))[0]?.status === 'failed', 'the delivery failing');
    expect(elsewhere.received).to.have.length(0);
    expect((await deliveriesOf(endpoint.id))[0]!.last_error).to.contain('redirects are not followed');
  });

  it('reads no more of an answer than a small cap', async () => {
    const hook = await receiver(() => ({ status: 200, body: 'x'.repeat(8 * 1024 * 1024) }));
    const endpoint = await register(hook.url);
    await startDispatcher();
    await processedFile();
    await eventually(async () => (await deliveriesOf(endpoint.id))[0]?.status === 'delivered', 'the delivery');
  });

  it('refuses, at send time, an endpoint whose address is private unless WEBHOOK_ALLOW_PRIVATE', async () => {
    const hook = await receiver();
    // Registered while allowed (or before its name pointed here): the send checks again.
    const byAddress = await register(hook.url);
    const byName = await register(hook.url.replace('127.0.0.1', 'localhost'));
    await startDispatcher({ allowPrivate: false, maxAttempts: 1 });
    await processedFile();
    for (const endpoint of [byAddress, byName]) {
      await eventually(async () => (await deliveriesOf(endpoint.id))[0]?.status === 'failed', 'the refusal');
      expect((await deliveriesOf(endpoint.id))[0]!.last_error).to.match(/may not reach/);
    }
    expect(hook.received).to.have.length(0);
  });

  it('sends file.failed and file.deleted, each to the endpoints that subscribe to it', async () => {
    const everything = await receiver();
    const deletions = await receiver();
    await register(everything.url);
    await register(deletions.url, ['file.deleted']);
    await startDispatcher();
    const processed = await processedFile();
    const broken = await uploadFile(service.url, { name: 'broken.pdf', content: '%PDF-1.7\nnot really a pdf' });
    await waitForStatus(service.url, broken.id);
    expect((await fetch(`${service.url}/files/${processed.id}/`, { method: 'DELETE' })).status).to.equal(204);
    await eventually(() => everything.received.length === 3 && deletions.received.length === 1, 'the events');
    const events = everything.received.map((one) => JSON.parse(one.body) as { type: string; data: File });
    expect(events.map((event) => `${event.type} ${event.data.id}`)).to.have.members([
      `file.processed ${processed.id}`,
      `file.failed ${broken.id}`,
      `file.deleted ${processed.id}`,
    ]);
    const deleted = JSON.parse(deletions.received[0]!.body) as { type: string; data: File };
    expect(deleted.type).to.equal('file.deleted');
    // The File as it was when it was deleted.
    expect(deleted.data).to.include({ id: processed.id, status: 'processed' });
  });

  it('writes an event only when its change commits', async () => {
    await register('http://127.0.0.1:9/never');
    const file = await uploadFile(service.url, { name: 'a.txt', content: 'text' });
    await waitForStatus(service.url, file.id);
    const eventsOf = async (id: string) =>
      (await sql<{ type: string }>('SELECT type FROM webhook_events WHERE file_id = $1 ORDER BY id', [id])).map(
        (event) => event.type,
      );
    expect(await eventsOf(file.id)).to.deep.equal(['file.processed']);
    const rolledBack = await sql(
      `DO $$ BEGIN
         DELETE FROM files WHERE id = '${file.id}';
         RAISE EXCEPTION 'changed my mind';
       END $$`,
    ).catch((err: Error) => err);
    expect(rolledBack).to.be.an('error');
    expect(await eventsOf(file.id)).to.deep.equal(['file.processed']);
    await sql('DELETE FROM files WHERE id = $1', [file.id]);
    expect(await eventsOf(file.id)).to.deep.equal(['file.processed', 'file.deleted']);
  });

  it('keeps a slow receiver to WEBHOOK_ENDPOINT_CONCURRENCY, so the others are not starved', async () => {
    const slow = await receiver(async () => {
      await sleep(1_000);
      return 204;
    });
    const fast = await receiver();
    await register(slow.url);
    await register(fast.url);
    await startDispatcher({ concurrency: 4, endpointConcurrency: 2, timeoutMs: 5_000 });
    const files = 6;
    for (let i = 0; i < files; i++) await uploadFile(service.url, { name: `n${i}.txt`, content: `note ${i}` });
    await eventually(() => fast.received.length === files, 'every event at the fast receiver', 10_000);
    // The slow one has not had the time to take them all: at 2 at a time, 6 take 3 s.
    expect(slow.received.length).to.be.below(files);
    await eventually(() => slow.received.length === files, 'every event at the slow receiver', 10_000);
    expect(slow.maxInFlight).to.equal(2);
  });

  it('spaces retries by a growing, jittered delay that spans about a day by default', () => {
    expect(retryDelayMs(1, 5_000, 0.5)).to.equal(5_000);
    expect(retryDelayMs(2, 5_000, 0.5)).to.equal(25_000);
    expect(retryDelayMs(1, 5_000, 0)).to.equal(4_000);
    expect(retryDelayMs(1, 5_000, 1)).to.equal(6_000);
    expect(retryDelayMs(20, 5_000, 0.5)).to.equal(10 * 3600_000);
    let total = 0;
    for (let attempt = 1; attempt < 9; attempt++) total += retryDelayMs(attempt, 5_000, 0.5);
    expect(total / 3600_000).to.be.within(20, 30);
  });
});
