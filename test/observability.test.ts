import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAdminServer } from '../core/admin.js';
import { ConfigError } from '../core/config.js';
import { openDatabase } from '../core/db/index.js';
import { queueKey } from '../core/queue/index.js';
import { watchEventLoop, type EventLoopWatch } from '../core/telemetry/eventLoop.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { sdkOptions } from '../core/telemetry/sdkOptions.js';
import { startTracing, tracingSettings } from '../core/telemetry/tracing.js';
import { TEST_ENV } from './support/env.js';
import { eventually, rejection } from './support/eventually.js';
import { png } from './support/fixtures.js';
import { captureLogs, type CapturedLogs } from './support/logs.js';
import { seriesValue } from './support/metrics.js';
import { jsonSpans, startOtlpReceiver, type OtlpReceiver } from './support/otlp.js';
import {
  flakyOnce,
  startService,
  startWorker,
  upload,
  uploadFile,
  waitForStatus,
  type TestService,
} from './support/service.js';
import { recordSpans, type RecordedSpans } from './support/tracing.js';
import { overwriteBlob } from './support/stores.js';

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const OTHER_BYTES = Buffer.from([0x00, 0x01, 0x02, 0x03, 0xfe, 0xff, 0x10, 0x80]);

describe('observability', () => {
  describe('metrics', () => {
    let service: TestService;
    const files: Record<string, { id: string; size: number }> = {};
    let worker: Awaited<ReturnType<typeof startWorker>>;

    before(async function () {
      this.timeout(30_000);
      service = await startService({ worker: false });
      files.text = await uploadFile(service.url, { name: 'notes.txt', content: 'hello metrics' });
      files.image = await uploadFile(service.url, { name: 'pixel.png', content: png(2, 2) });
      files.other = await uploadFile(service.url, { name: 'blob.bin', content: OTHER_BYTES });
      files.tampered = await uploadFile(service.url, { name: 'tampered.txt', content: 'original bytes' });
      files.deleted = await uploadFile(service.url, { name: 'deleted.txt', content: 'gone before its job' });
    });
    after(async () => {
      await worker?.close();
      await service.close();
    });

    it('reads the queue depth at scrape time, before any worker runs', async () => {
      expect(await seriesValue(service.metrics.registry, 'queue_jobs', { state: 'waiting' })).to.equal(5);
      expect(await seriesValue(service.metrics.registry, 'queue_jobs', { state: 'active' })).to.equal(0);
      expect(await seriesValue(service.metrics.registry, 'queue_jobs', { state: 'delayed' })).to.equal(0);
    });

    it('counts uploads and their bytes by kind', async () => {
      const registry = service.metrics.registry;
      expect(await seriesValue(registry, 'uploads_total', { kind: 'text' })).to.equal(3);
      expect(await seriesValue(registry, 'uploads_total', { kind: 'image' })).to.equal(1);
      expect(await seriesValue(registry, 'uploads_total', { kind: 'other' })).to.equal(1);
      const textBytes = files.text!.size + files.tampered!.size + files.deleted!.size;
      expect(await seriesValue(registry, 'upload_bytes_total', { kind: 'text' })).to.equal(textBytes);
      expect(await seriesValue(registry, 'upload_bytes_total', { kind: 'image' })).to.equal(png(2, 2).length);
    });

    it('counts jobs by kind and outcome, with their duration, queue wait and attempts', async function () {
      this.timeout(30_000);
      await overwriteBlob(service.storage, files.tampered!.id, 'tampered bytes');
      await service.db.files.remove(files.deleted!.id);
      worker = await startWorker(service.queueName, { processors: { other: flakyOnce() } });
      for (const name of ['text', 'image', 'other', 'tampered']) await waitForStatus(service.url, files[name]!.id);
      const registry = worker.metrics.registry;
      await eventually(
        async () => (await seriesValue(registry, 'jobs_processed_total', { outcome: 'skipped' })) === 1,
        'the skipped job',
      );

      const jobs = (kind: string, outcome: string) => seriesValue(registry, 'jobs_processed_total', { kind, outcome });
      expect(await jobs('text', 'processed')).to.equal(1);
      expect(await jobs('image', 'processed')).to.equal(1);
      expect(await jobs('other', 'retried')).to.equal(1);
      expect(await jobs('other', 'processed')).to.equal(1);
      expect(await jobs('text', 'failed')).to.equal(1);
      expect(await jobs('text', 'skipped')).to.equal(1);
      // Every run that started is timed; a skipped job never starts.
      expect(await seriesValue(registry, 'job_duration_seconds_count', { kind: 'text' })).to.equal(2);
      expect(await seriesValue(registry, 'job_duration_seconds_count', { kind: 'other' })).to.equal(2);
      expect(await seriesValue(registry, 'job_duration_seconds_sum', { kind: 'image' })).to.be.greaterThan(0);
      // The queue wait is measured once per file, at its first attempt.
      expect(await seriesValue(registry, 'job_wait_seconds_count')).to.equal(4);
      expect(await seriesValue(registry, 'job_wait_seconds_sum')).to.be.greaterThan(0);
      // The retried file started twice: one first attempt, one second.
      expect(await seriesValue(registry, 'job_attempts_count', { kind: 'other' })).to.equal(2);
      expect(await seriesValue(registry, 'job_attempts_bucket', { kind: 'other', le: '1' })).to.equal(1);
      expect(await seriesValue(registry, 'job_attempts_bucket', { kind: 'other', le: '2' })).to.equal(2);
      // The worker's admin server reads the same queue: drained now.
      expect(await seriesValue(registry, 'queue_jobs', { state: 'waiting' })).to.equal(0);
      expect(await seriesValue(service.metrics.registry, 'queue_jobs', { state: 'waiting' })).to.equal(0);
    });

    it('counts requests and their durations by method, route template and status, never by id', async () => {
      await fetch(`${service.url}/files/${files.text!.id}/content`);
      await fetch(`${service.url}/no/such/route`);
      const registry = service.metrics.registry;
      expect(
        await seriesValue(registry, 'http_requests_total', { method: 'POST', route: '/upload/', status: '201' }),
      ).to.equal(5);
      expect(
        await seriesValue(registry, 'http_request_duration_seconds_count', {
          method: 'POST',
          route: '/upload/',
          status: '201',
        }),
      ).to.equal(5);
      expect(
        await seriesValue(registry, 'http_requests_total', { method: 'GET', route: '/files/{id}/', status: '200' }),
      ).to.be.greaterThan(0);
      expect(
        await seriesValue(registry, 'http_requests_total', {
          method: 'GET',
          route: '/files/{id}/content',
          status: '200',
        }),
      ).to.equal(1);
      expect(
        await seriesValue(registry, 'http_requests_total', { method: 'GET', route: 'unmatched', status: '404' }),
      ).to.equal(1);
      expect(await registry.metrics()).to.not.match(UUID);
    });

    it("defines the reconciler's metrics, by sweep, for the reconciler to move", async () => {
      const metrics = createMetrics();
      const text = await metrics.registry.metrics();
      expect(text).to.contain('# TYPE reconciler_items_total counter');
      expect(text).to.contain('# TYPE reconciler_sweep_duration_seconds histogram');
      expect(text).to.contain('# TYPE reconciler_sweep_errors_total counter');
      metrics.reconcilerItems.inc({ sweep: 'requeue_queued', outcome: 'requeued' });
      const labels = { sweep: 'requeue_queued', outcome: 'requeued' };
      expect(await seriesValue(metrics.registry, 'reconciler_items_total', labels)).to.equal(1);
    });

    it("exports the process's default metrics", async () => {
      const text = await service.metrics.registry.metrics();
      for (const name of [
        'process_cpu_seconds_total',
        'process_resident_memory_bytes',
        'nodejs_eventloop_lag_seconds',
        'nodejs_heap_size_used_bytes',
      ]) {
        expect(text).to.contain(`# TYPE ${name} `);
      }
    });
  });

  describe('traces and logs', () => {
    let spans: RecordedSpans;
    let logs: CapturedLogs;
    let service: TestService;

    before(async () => {
      spans = recordSpans();
      logs = captureLogs();
      service = await startService({ tracer: spans.tracer, logger: logs.logger, processors: { other: flakyOnce() } });
    });
    after(async () => {
      await service.close();
      await spans.stop();
    });

    const inTrace = (traceId: string, name: string) => (span: ReadableSpan) =>
      span.name === name && span.spanContext().traceId === traceId;

    it("puts the worker's consumer span in the trace of the upload: server span, then producer, then consumer", async () => {
      const file = await uploadFile(service.url, { name: 'traced.txt', content: 'follow me' });
      await waitForStatus(service.url, file.id);

      const server = await spans.waitFor(
        (span) => span.name === 'POST /upload/' && span.attributes['http.response.status_code'] === 201,
      );
      const traceId = server.spanContext().traceId;
      const producer = await spans.waitFor(inTrace(traceId, `send ${service.queueName}`));
      const consumer = await spans.waitFor(inTrace(traceId, `process ${service.queueName}`));

      expect(server.kind).to.equal(SpanKind.SERVER);
      expect(server.attributes).to.include({
        'http.request.method': 'POST',
        'http.route': '/upload/',
        'url.path': '/upload/',
        'url.scheme': 'http',
      });
      expect(producer.kind).to.equal(SpanKind.PRODUCER);
      expect(producer.parentSpanContext?.spanId).to.equal(server.spanContext().spanId);
      expect(producer.attributes).to.include({
        'messaging.system': 'bee-queue',
        'messaging.destination.name': service.queueName,
        'messaging.operation.type': 'send',
        'messaging.message.id': file.id,
      });
      expect(consumer.kind).to.equal(SpanKind.CONSUMER);
      expect(consumer.parentSpanContext?.spanId).to.equal(producer.spanContext().spanId);
      expect(consumer.links.map((link) => link.context.spanId)).to.deep.equal([producer.spanContext().spanId]);
      expect(consumer.attributes).to.include({
        'messaging.system': 'bee-queue',
        'messaging.destination.name': service.queueName,
        'messaging.operation.type': 'process',
        'messaging.message.id': file.id,
        'file_processor.job.outcome': 'processed',
        'file_processor.job.attempt': 1,
      });
      expect(consumer.status.code).to.not.equal(SpanStatusCode.ERROR);
    });

    it("continues the caller's trace from its traceparent header", async () => {
      const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
      const response = await fetch(`${service.url}/files/?limit=1`, {
        headers: { traceparent: `00-${callerTrace}-00f067aa0ba902b7-01` },
      });
      expect(response.status).to.equal(200);
      const server = await spans.waitFor(inTrace(callerTrace, 'GET /files/'));
      expect(server.parentSpanContext?.spanId).to.equal('00f067aa0ba902b7');
      expect(server.attributes).to.include({ 'http.route': '/files/', 'http.response.status_code': 200 });
    });

    it('records a failed run as an error on its consumer span, and the retry in the same trace', async () => {
      const file = await uploadFile(service.url, { name: 'flaky.bin', content: OTHER_BYTES });
      expect((await waitForStatus(service.url, file.id)).attempts).to.equal(2);
      const producer = await spans.waitFor(
        (span) => span.name === `send ${service.queueName}` && span.attributes['messaging.message.id'] === file.id,
      );
      const traceId = producer.spanContext().traceId;
      await spans.waitFor(
        (span) =>
          inTrace(traceId, `process ${service.queueName}`)(span) &&
          span.attributes['file_processor.job.outcome'] === 'processed',
      );
      const runs = spans.finished().filter(inTrace(traceId, `process ${service.queueName}`));
      expect(runs).to.have.length(2);
      const failed = runs.find((span) => span.status.code === SpanStatusCode.ERROR)!;
      expect(failed.attributes).to.include({ 'error.type': 'ECONNRESET', 'file_processor.job.outcome': 'retried' });
      expect(failed.events.map((event) => event.name)).to.include('exception');
    });

    it('names an unmatched route by its method only, and leaves 4xx answers unmarked as errors', async () => {
      const response = await fetch(`${service.url}/nowhere/${'x'.repeat(8)}`);
      expect(response.status).to.equal(404);
      const span = await spans.waitFor(
        (s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === '/nowhere/xxxxxxxx',
      );
      expect(span.name).to.equal('GET');
      expect(span.attributes).to.not.have.property('http.route');
      expect(span.status.code).to.equal(SpanStatusCode.UNSET);
    });

    it("marks a 5xx answer as the server's own failure, with the exception that caused it", async () => {
      const unreachable = openDatabase({ url: 'postgres://postgres@127.0.0.1:9/nothing', poolMax: 1 });
      const broken = await startService({ worker: false, tracer: spans.tracer, db: unreachable });
      try {
        expect((await fetch(`${broken.url}/files/`)).status).to.equal(503);
        const span = await spans.waitFor(
          (s) => s.name === 'GET /files/' && s.attributes['http.response.status_code'] === 503,
        );
        expect(span.status.code).to.equal(SpanStatusCode.ERROR);
        expect(span.attributes['error.type']).to.equal('503');
        expect(span.events.map((event) => event.name)).to.include('exception');
      } finally {
        await broken.close();
      }
    });

    it('writes the request id, trace id and span id on the request line, and the trace id on the job line', async () => {
      const response = await upload(
        service.url,
        { name: 'logged.txt', content: 'log me' },
        { headers: { 'X-Request-Id': 'req-observability-1' } },
      );
      const file = (await response.json()) as { id: string };
      await waitForStatus(service.url, file.id);
      await spans.waitFor(
        (span) => span.name === `process ${service.queueName}` && span.attributes['messaging.message.id'] === file.id,
      );

      const requestLine = logs
        .lines()
        .find((line) => line.msg === 'request' && line.request_id === 'req-observability-1');
      expect(requestLine).to.include({ method: 'POST', route: '/upload/', status: 201 });
      expect(requestLine!.duration_ms).to.be.a('number');
      const requestSpan = spans
        .finished()
        .find((span) => span.spanContext().traceId === requestLine!.trace_id && span.kind === SpanKind.SERVER);
      expect(requestSpan, 'a server span with the logged trace id').to.not.equal(undefined);
      expect(requestLine!.span_id).to.equal(requestSpan!.spanContext().spanId);

      const jobLine = logs.lines().find((line) => line.msg === 'job' && line.file_id === file.id);
      expect(jobLine).to.include({ kind: 'text', outcome: 'processed', attempts: 1, trace_id: requestLine!.trace_id });
      expect(jobLine!.duration_ms).to.be.a('number');
    });
  });

  describe('with tracing off', () => {
    it('carries no trace context in the job and no trace ids in the log lines', async () => {
      const logs = captureLogs();
      const service = await startService({ worker: false, logger: logs.logger });
      const redis = new Redis(TEST_ENV.redisUrl);
      try {
        const file = await uploadFile(service.url, { content: 'untraced' });
        const job = JSON.parse(
          (await redis.hget(queueKey(TEST_ENV.queuePrefix, service.queueName, 'jobs'), file.id))!,
        ) as { data: Record<string, unknown> };
        expect(job.data).to.have.keys('file_id', 'kind', 'enqueued_at');
        const requestLine = logs.lines().find((line) => line.msg === 'request' && line.route === '/upload/');
        expect(requestLine).to.have.property('request_id');
        expect(requestLine).to.not.have.property('trace_id');
      } finally {
        redis.disconnect();
        await service.close();
      }
    });

    it('starts no SDK without OTEL_* variables: the API stays the no-op one', async () => {
      const tracing = await startTracing({ name: 'file-processor-test', version: '0' }, {});
      expect(tracing.enabled).to.equal(false);
      const span = trace.getTracer('probe').startSpan('probe');
      expect(span.isRecording()).to.equal(false);
      span.end();
      await tracing.shutdown();
    });
  });

  describe('with tracing on in this process', () => {
    let otlp: OtlpReceiver;
    before(async () => {
      otlp = await startOtlpReceiver();
    });
    after(() => otlp.close());
    afterEach(() => {
      // startTracing registers for the whole process; later suites register their own.
      trace.disable();
      context.disable();
      propagation.disable();
    });

    it('exports what OTEL_TRACES_SAMPLER keeps, OTEL_BSP_SCHEDULE_DELAY after it ended, and follows a sampled caller', async () => {
      // The exporter reads its endpoint from process.env, as in production.
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = otlp.endpoint;
      const tracing = await startTracing(
        { name: 'file-processor-test', version: '0' },
        {
          OTEL_TRACES_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
          OTEL_TRACES_SAMPLER_ARG: '0',
          OTEL_BSP_SCHEDULE_DELAY: '50',
        },
      );
      try {
        const callerTrace = '0af7651916cd43dd8448eb211c80319c';
        const caller = propagation.extract(ROOT_CONTEXT, { traceparent: `00-${callerTrace}-b7ad6b7169203331-01` });
        const tracer = trace.getTracer('probe');
        tracer.startSpan('unsampled root').end();
        tracer.startSpan('sampled child', {}, caller).end();
        // Well before the default delay of 5 s, and without a shutdown to flush it.
        const child = await eventually(
          () => jsonSpans(otlp.exports).find((span) => span.name === 'sampled child'),
          'the export of the sampled span',
          2_500,
        );
        expect(child).to.include({ service: 'file-processor-test', traceId: callerTrace });
        expect(child.parentSpanId).to.equal('b7ad6b7169203331');
        expect(jsonSpans(otlp.exports).map((span) => span.name)).to.deep.equal(['sampled child']);
      } finally {
        delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
        await tracing.shutdown();
      }
    });
  });

  describe('the SDK settings', () => {
    it('default to a parent-based always-on sampler and the batching of the specification', () => {
      expect(sdkOptions({})).to.deep.equal({
        sampler: { parentBased: true, root: 'always_on', ratio: 1 },
        batch: { scheduledDelayMillis: 5000, exportTimeoutMillis: 30000, maxQueueSize: 2048, maxExportBatchSize: 512 },
      });
    });

    it('follow OTEL_TRACES_SAMPLER, its argument for the ratio samplers only, and OTEL_BSP_*', () => {
      const sampler = (env: NodeJS.ProcessEnv) => sdkOptions(env).sampler;
      expect(sampler({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' })).to.deep.equal({
        parentBased: false,
        root: 'traceidratio',
        ratio: 0.25,
      });
      expect(sampler({ OTEL_TRACES_SAMPLER: ' ParentBased_TraceIdRatio ' })).to.deep.equal({
        parentBased: true,
        root: 'traceidratio',
        ratio: 1,
      });
      expect(sampler({ OTEL_TRACES_SAMPLER: 'always_off', OTEL_TRACES_SAMPLER_ARG: 'ignored' })).to.deep.equal({
        parentBased: false,
        root: 'always_off',
        ratio: 1,
      });
      expect(sampler({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' })).to.include({ parentBased: true });
      expect(
        sdkOptions({
          OTEL_BSP_SCHEDULE_DELAY: '0',
          OTEL_BSP_EXPORT_TIMEOUT: '1000',
          OTEL_BSP_MAX_QUEUE_SIZE: '100',
          OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '100',
        }).batch,
      ).to.deep.equal({
        scheduledDelayMillis: 0,
        exportTimeoutMillis: 1000,
        maxQueueSize: 100,
        maxExportBatchSize: 100,
      });
    });

    it('stop with one sentence on a sampler, ratio or batching it cannot use', () => {
      expect(() => sdkOptions({ OTEL_TRACES_SAMPLER: 'jaeger_remote' })).to.throw(
        ConfigError,
        /^OTEL_TRACES_SAMPLER must be one of parentbased_always_on, .*traceidratio, got "jaeger_remote"\.$/,
      );
      for (const arg of ['1.5', 'half', '-0.1']) {
        expect(() => sdkOptions({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: arg })).to.throw(
          ConfigError,
          `OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1 (the share of traces kept), got "${arg}".`,
        );
      }
      expect(() => sdkOptions({ OTEL_BSP_SCHEDULE_DELAY: '5s' })).to.throw(
        ConfigError,
        /^OTEL_BSP_SCHEDULE_DELAY must be a whole number from 0 to 3600000, got "5s"\.$/,
      );
      expect(() => sdkOptions({ OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '4096' })).to.throw(
        ConfigError,
        /^OTEL_BSP_MAX_EXPORT_BATCH_SIZE must be at most OTEL_BSP_MAX_QUEUE_SIZE \(2048\), got "4096"\.$/,
      );
    });

    it('are read only once tracing is on, so that a bad one stops the process only then', async () => {
      const off = await startTracing({ name: 'file-processor-test', version: '0' }, { OTEL_TRACES_SAMPLER: 'nope' });
      expect(off.enabled).to.equal(false);
      await rejection(
        startTracing(
          { name: 'file-processor-test', version: '0' },
          { OTEL_TRACES_EXPORTER: 'console', OTEL_BSP_MAX_QUEUE_SIZE: '0' },
        ),
      ).then((err) => expect(err).to.be.instanceOf(ConfigError));
    });
  });

  describe('the OTEL_* switch', () => {
    it('is off by default and on with an OTLP endpoint, over HTTP/protobuf unless told otherwise', () => {
      expect(tracingSettings({})).to.deep.equal({ exporter: 'none', protocol: 'http/protobuf' });
      expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).to.deep.equal({
        exporter: 'otlp',
        protocol: 'http/protobuf',
      });
      expect(
        tracingSettings({
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        }),
      ).to.deep.equal({ exporter: 'otlp', protocol: 'http/json' });
      expect(tracingSettings({ OTEL_TRACES_EXPORTER: 'otlp' }).exporter).to.equal('otlp');
      expect(tracingSettings({ OTEL_TRACES_EXPORTER: 'console' }).exporter).to.equal('console');
    });

    it('stays off when told so, whatever else is set', () => {
      expect(
        tracingSettings({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })
          .exporter,
      ).to.equal('none');
      expect(
        tracingSettings({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).exporter,
      ).to.equal('none');
      expect(tracingSettings({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'zipkin' }).exporter).to.equal('none');
    });

    it('stops with one sentence on an exporter or protocol it does not have', () => {
      expect(() => tracingSettings({ OTEL_TRACES_EXPORTER: 'zipkin' })).to.throw(
        ConfigError,
        /^OTEL_TRACES_EXPORTER must be one of otlp, console, none, got "zipkin"\.$/,
      );
      expect(() =>
        tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }),
      ).to.throw(
        ConfigError,
        /^OTEL_EXPORTER_OTLP_PROTOCOL must be one of http\/protobuf, http\/json \(gRPC is not bundled\), got "grpc"\.$/,
      );
      expect(() =>
        tracingSettings({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }),
      ).to.throw(ConfigError, /^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL must be one of/);
    });
  });

  describe('log lines', () => {
    it('never carry a password, token or Authorization header, but keep the addresses', () => {
      const logs = captureLogs();
      logs.logger.info(
        {
          config: {
            databaseUrl: 'postgres://app:s3cret-db@db.internal:5432/files',
            redisUrl: 'redis://:s3cret-redis@redis.internal:6379',
            apiTokens: ['s3cret-token'],
          },
          headers: { authorization: 'Bearer s3cret-bearer', cookie: 'session=s3cret-cookie' },
          req: { headers: { authorization: 'Basic s3cret-basic' } },
          token: 's3cret-plain-token',
          nested: { list: ['amqp://guest:s3cret-list@mq/'] },
          err: new Error('cannot reach redis://default:s3cret-err@redis.internal:6379'),
        },
        'connecting to postgres://app:s3cret-msg@db.internal/files',
      );
      const text = logs.text();
      expect(text).to.not.contain('s3cret');
      const line = logs.lines()[0]!;
      expect(line.config).to.deep.include({
        databaseUrl: 'postgres://app:[redacted]@db.internal:5432/files',
        redisUrl: 'redis://:[redacted]@redis.internal:6379',
      });
      expect(line.msg).to.equal('connecting to postgres://app:[redacted]@db.internal/files');
      expect((line.err as { message: string }).message).to.equal(
        'cannot reach redis://default:[redacted]@redis.internal:6379',
      );
    });

    it('follow LOG_LEVEL', () => {
      const logs = captureLogs('warn');
      logs.logger.info('not written');
      logs.logger.warn('written');
      expect(logs.lines().map((line) => line.msg)).to.deep.equal(['written']);
    });
  });

  describe('/healthz', () => {
    let server: Server;
    let url: string;
    let eventLoop: EventLoopWatch;
    before(async () => {
      eventLoop = watchEventLoop({ maxDelayMs: 250, windowMs: 1_500, intervalMs: 25 });
      server = createAdminServer({
        registry: createMetrics().registry,
        isShuttingDown: () => false,
        checks: [],
        eventLoop,
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
    });
    after(async () => {
      eventLoop.stop();
      await new Promise((resolve) => server.close(resolve));
    });

    it('answers 503 after the event loop stalled past the threshold, and 200 again once it keeps up', async function () {
      this.timeout(20_000);
      await eventually(async () => (await fetch(url)).status === 200, 'a healthy answer');
      const blockedUntil = Date.now() + 600;
      while (Date.now() < blockedUntil) {
        // Busy-wait: nothing else runs on this thread meanwhile, as in a wedged process.
      }
      await sleep(50);
      const stalled = await fetch(url);
      expect(stalled.status).to.equal(503);
      const body = (await stalled.json()) as { status: string; event_loop_delay_ms: number };
      expect(body.status).to.equal('event_loop_blocked');
      expect(body.event_loop_delay_ms).to.be.at.least(250);
      await eventually(async () => (await fetch(url)).status === 200, 'recovery', 10_000);
    });

    it('never fails with a threshold of 0', () => {
      const watch = watchEventLoop({ maxDelayMs: 0 });
      try {
        const blockedUntil = Date.now() + 50;
        while (Date.now() < blockedUntil) {
          // Busy-wait.
        }
        expect(watch.healthy()).to.equal(true);
      } finally {
        watch.stop();
      }
    });
  });
});
