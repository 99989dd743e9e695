import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { REPOSITORY } from '../scripts/helm.js';
import { dashboardQueries } from './support/dashboard.js';
import { eventually } from './support/eventually.js';
import { parseLogLines } from './support/logs.js';
import { jsonSpans, startOtlpReceiver, type OtlpReceiver } from './support/otlp.js';
import {
  killStartedProcesses,
  READY_TIMEOUT_MS,
  runProcess,
  startApiAndWorker,
  type ApiAndWorker,
} from './support/processes.js';
import { startPrometheus, type PromSample, type RunningPrometheus } from './support/prometheus.js';
import { uploadFile, waitForStatus } from './support/service.js';
import { requireProgram } from './support/tools.js';

const ALERTS = path.join(REPOSITORY, 'observability/alerts.yaml');

describe('observability of the real API and worker processes', function () {
  // Room for an API and a worker to start on a busy machine (see READY_TIMEOUT_MS).
  this.timeout(90_000 + 2 * READY_TIMEOUT_MS);
  const queueName = `obs-${randomBytes(3).toString('hex')}`;
  let otlp: OtlpReceiver;
  let processes: ApiAndWorker;
  let fileId: string;

  before(async () => {
    otlp = await startOtlpReceiver();
    const common = {
      QUEUE_NAME: queueName,
      LOG_LEVEL: 'info',
      SHUTDOWN_TIMEOUT_MS: '5000',
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
      OTEL_BSP_SCHEDULE_DELAY: '100',
    };
    // The API exports OTLP/JSON, the worker the default OTLP/protobuf: both encodings are exercised.
    processes = await startApiAndWorker(common, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    const file = await uploadFile(processes.url, { name: 'observed.txt', content: 'seen by every signal' });
    fileId = file.id;
    expect((await waitForStatus(processes.url, fileId, ['processed', 'failed'], 10_000)).status).to.equal('processed');
  });
  after(async () => {
    killStartedProcesses();
    await otlp?.close();
  });

  it("exports both processes' spans over OTLP, the worker's in the trace of the API's upload", async () => {
    const producer = await eventually(
      () => jsonSpans(otlp.exports).find((span) => span.name === `send ${queueName}`),
      'the producer span',
    );
    const server = jsonSpans(otlp.exports).find((span) => span.spanId === producer.parentSpanId);
    expect(server).to.include({ service: 'file-processor-api', name: 'POST /upload/', traceId: producer.traceId });
    expect(producer.service).to.equal('file-processor-api');

    // The worker's export is protobuf: its consumer span carries the same trace id, as raw bytes.
    const traceIdBytes = Buffer.from(producer.traceId, 'hex');
    const workerExport = await eventually(
      () =>
        otlp.exports.find(
          (e) =>
            e.contentType.includes('protobuf') &&
            e.body.includes(`process ${queueName}`) &&
            e.body.includes(traceIdBytes),
        ),
      "the worker's consumer span",
    );
    expect(workerExport.path).to.equal('/v1/traces');
    expect(workerExport.body.includes('file-processor-worker')).to.equal(true);
  });

  it("logs the upload's trace id on the API's request line and on the worker's job line", async () => {
    const producer = jsonSpans(otlp.exports).find((span) => span.name === `send ${queueName}`)!;
    const requestLine = parseLogLines(processes.api.output()).find(
      (line) => line.msg === 'request' && line.route === '/upload/',
    );
    expect(requestLine).to.include({ method: 'POST', status: 201, trace_id: producer.traceId });
    expect(requestLine!.request_id).to.be.a('string').and.not.equal('');
    const jobLine = parseLogLines(processes.worker.output()).find(
      (line) => line.msg === 'job' && line.file_id === fileId,
    );
    expect(jobLine).to.include({ kind: 'text', outcome: 'processed', attempts: 1, trace_id: producer.traceId });
  });

  it('stops with one sentence when OTEL_TRACES_EXPORTER names an exporter it does not have', async () => {
    const { code, output } = await runProcess('dist/worker/main.js', { OTEL_TRACES_EXPORTER: 'zipkin' });
    expect(code).to.equal(1);
    expect(output).to.equal('OTEL_TRACES_EXPORTER must be one of otlp, console, none, got "zipkin".\n');
  });

  describe('scraped by a real Prometheus', () => {
    let prometheus: RunningPrometheus;
    const API_JOB = 'file-processor-api';
    const WORKER_JOB = 'file-processor-worker';

    before(async function () {
      const binary = requireProgram(this, 'prometheus');
      prometheus = await startPrometheus({
        binary,
        targets: { [API_JOB]: new URL(processes.apiAdmin).host, [WORKER_JOB]: new URL(processes.workerAdmin).host },
        ruleFiles: [ALERTS],
      });
    });
    after(() => prometheus?.stop());

    const jobs = (samples: PromSample[]) => samples.map((sample) => sample.metric.job).sort();
    const valueOf = (samples: PromSample[]) => Number(samples[0]?.value[1]);

    it('scrapes both admin ports', async () => {
      const up = await prometheus.waitFor('up == 1', (samples) => samples.length === 2);
      expect(jobs(up)).to.deep.equal([API_JOB, WORKER_JOB]);
    });

    it("finds the API's request and upload series", async () => {
      const uploaded = await prometheus.waitFor(`uploads_total{job="${API_JOB}",kind="text"}`, (s) => s.length === 1);
      expect(valueOf(uploaded)).to.equal(1);
      const bytes = await prometheus.query(`upload_bytes_total{job="${API_JOB}",kind="text"}`);
      expect(valueOf(bytes)).to.equal('seen by every signal'.length);
      const requests = await prometheus.query(
        `http_requests_total{job="${API_JOB}",method="POST",route="/upload/",status="201"}`,
      );
      expect(valueOf(requests)).to.equal(1);
      const latency = await prometheus.query(`http_request_duration_seconds_count{job="${API_JOB}",route="/upload/"}`);
      expect(valueOf(latency)).to.equal(1);
    });

    it("finds the worker's job series", async () => {
      const processed = await prometheus.waitFor(
        `jobs_processed_total{job="${WORKER_JOB}",kind="text",outcome="processed"}`,
        (s) => s.length === 1,
      );
      expect(valueOf(processed)).to.equal(1);
      for (const series of [
        `job_duration_seconds_count{job="${WORKER_JOB}",kind="text"}`,
        `job_wait_seconds_count{job="${WORKER_JOB}"}`,
        `job_attempts_count{job="${WORKER_JOB}",kind="text"}`,
      ]) {
        expect(valueOf(await prometheus.query(series)), series).to.equal(1);
      }
    });

    it("finds the queue depth by state, read by both processes, and both processes' default metrics", async () => {
      const waiting = await prometheus.waitFor('queue_jobs{state="waiting"}', (s) => s.length === 2);
      expect(jobs(waiting)).to.deep.equal([API_JOB, WORKER_JOB]);
      const states = await prometheus.query('count by (state) (queue_jobs)');
      expect(states.map((sample) => sample.metric.state).sort()).to.deep.equal(['active', 'delayed', 'waiting']);
      expect(jobs(await prometheus.query('process_cpu_seconds_total'))).to.deep.equal([API_JOB, WORKER_JOB]);
      expect(jobs(await prometheus.query('nodejs_eventloop_lag_p99_seconds'))).to.deep.equal([API_JOB, WORKER_JOB]);
    });

    it('loads and evaluates every alert rule, and none fires on a healthy service', async () => {
      type Rules = {
        groups: Array<{ name: string; rules: Array<{ name: string; health: string; lastError?: string }> }>;
      };
      const groups = await eventually(async () => {
        const { groups } = await prometheus.get<Rules>('/api/v1/rules');
        return groups.flatMap((group) => group.rules).every((rule) => rule.health !== 'unknown') ? groups : undefined;
      }, 'a first evaluation of every rule');
      expect(groups.map((group) => group.name).sort()).to.deep.equal([
        'file-processor.api',
        'file-processor.jobs',
        'file-processor.queue',
        'file-processor.scanning',
        'file-processor.webhooks',
      ]);
      for (const rule of groups.flatMap((group) => group.rules)) expect(rule, rule.name).to.include({ health: 'ok' });
      const { alerts } = await prometheus.get<{ alerts: unknown[] }>('/api/v1/alerts');
      expect(alerts).to.deep.equal([]);
    });

    it('answers every query of the dashboard', async () => {
      for (const query of dashboardQueries()) {
        const expr = query
          .replaceAll('$namespace', '.*')
          .replaceAll('$job', '.*')
          .replaceAll('$queue', '.*')
          .replaceAll('$__rate_interval', '1m');
        // Throws when Prometheus rejects the query.
        await prometheus.query(expr);
      }
    });
  });

  describe('on SIGTERM', () => {
    it('both exit 0', async () => {
      const exited = await processes.terminate();
      expect(exited.api).to.equal(0);
      expect(exited.worker).to.equal(0);
    });
  });
});
