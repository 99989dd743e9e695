import { expect } from 'chai';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdminServer } from '../core/admin.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { startService, uploadFile, waitForStatus } from './support/service.js';

async function serve(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('the admin server', () => {
  let shuttingDown = false;
  let redisUp = true;
  let server: Server;
  let url: string;
  const metrics = createMetrics({
    queueCounts: async () => ({
      files: { waiting: 3, active: 1, delayed: 0 },
      heavy: { waiting: 2, active: 0, delayed: 0 },
    }),
  });
  before(async () => {
    server = createAdminServer({
      registry: metrics.registry,
      isShuttingDown: () => shuttingDown,
      checkTimeoutMs: 200,
      checks: [
        { name: 'postgres', check: async () => undefined },
        {
          name: 'redis',
          check: async () => (redisUp ? undefined : Promise.reject(new Error('ECONNREFUSED 10.0.0.5:6379'))),
        },
        { name: 'slow', check: () => new Promise((resolve) => setTimeout(resolve, redisUp ? 0 : 1_000)) },
      ],
    });
    url = await serve(server);
  });
  after(() => new Promise((resolve) => server.close(resolve)));
  afterEach(() => {
    shuttingDown = false;
    redisUp = true;
  });

  it('answers /healthz while the event loop turns', async () => {
    const response = await fetch(`${url}/healthz`);
    expect(response.status).to.equal(200);
    expect(await response.json()).to.deep.equal({ status: 'ok' });
  });

  it('answers /readyz 200 when every dependency answers', async () => {
    const response = await fetch(`${url}/readyz/`);
    expect(response.status).to.equal(200);
    expect(await response.json()).to.deep.equal({
      status: 'ready',
      checks: { postgres: 'ok', redis: 'ok', slow: 'ok' },
    });
  });

  it('answers /readyz 503 naming the dependency that fails or hangs, without its address', async () => {
    redisUp = false;
    const response = await fetch(`${url}/readyz`);
    expect(response.status).to.equal(503);
    const body = await response.text();
    expect(JSON.parse(body)).to.deep.equal({
      status: 'not_ready',
      checks: { postgres: 'ok', redis: 'unreachable', slow: 'timeout' },
    });
    expect(body).to.not.contain('10.0.0.5');
  });

  it('answers /readyz 503 once shutdown began', async () => {
    shuttingDown = true;
    const response = await fetch(`${url}/readyz`);
    expect(response.status).to.equal(503);
    expect(await response.json()).to.deep.equal({ status: 'shutting_down' });
  });

  it('serves Prometheus metrics, reading the queue depth at scrape time', async () => {
    const response = await fetch(`${url}/metrics`);
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-type')).to.match(/^text\/plain/);
    const text = await response.text();
    expect(text).to.contain('queue_jobs{queue="files",state="waiting"} 3');
    expect(text).to.contain('queue_jobs{queue="heavy",state="waiting"} 2');
    expect(text).to.contain('process_cpu_seconds_total');
  });

  it('answers 404 elsewhere and 405 to other methods', async () => {
    expect((await fetch(`${url}/nope`)).status).to.equal(404);
    const post = await fetch(`${url}/metrics`, { method: 'POST' });
    expect(post.status).to.equal(405);
    expect(post.headers.get('allow')).to.equal('GET, HEAD');
  });

  it('shows the HTTP, upload and job metrics moving after real traffic', async () => {
    const service = await startService();
    try {
      const file = await uploadFile(service.url, { content: 'counted' });
      await waitForStatus(service.url, file.id);
      const api = await service.metrics.registry.metrics();
      expect(api).to.match(/http_requests_total\{method="POST",route="\/upload\/",status="201"\} 1/);
      expect(api).to.match(/http_requests_total\{method="GET",route="\/files\/\{id\}\/",status="200"\} \d+/);
      expect(api).to.match(/uploads_total\{kind="text"\} 1/);
      expect(api).to.match(/upload_bytes_total\{kind="text"\} 7/);
      const worker = await service.workerMetrics.registry.metrics();
      expect(worker).to.match(/jobs_processed_total\{queue="files-\w+",kind="text",outcome="processed"\} 1/);
      expect(worker).to.match(/job_duration_seconds_count\{queue="files-\w+",kind="text"\} 1/);
      expect(worker).to.match(/job_wait_seconds_count\{queue="files-\w+"\} 1/);
    } finally {
      await service.close();
    }
  });
});
