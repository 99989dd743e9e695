// Prometheus metrics: one registry per process, names and units as in the architecture plan.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  uploads: Counter<'kind'>;
  uploadBytes: Counter<'kind'>;
  jobsProcessed: Counter<'queue' | 'kind' | 'outcome'>;
  jobDuration: Histogram<'queue' | 'kind'>;
  jobWait: Histogram<'queue'>;
  jobAttempts: Histogram<'queue' | 'kind'>;
  queueJobs: Gauge<'queue' | 'state'>;
  httpWaiters: Gauge;
  reconcilerItems: Counter<'sweep' | 'outcome'>;
  reconcilerSweepDuration: Histogram<'sweep'>;
  reconcilerSweepErrors: Counter<'sweep'>;
  webhookDeliveries: Counter<'outcome'>;
  webhookDuration: Histogram<'outcome'>;
  webhookOutboxPending: Gauge;
  webhookOutboxOldest: Gauge;
  webhookEndpointsFailing: Gauge;
  scans: Counter<'verdict'>;
  scanDuration: Histogram;
  scanBytes: Counter;
  scannerUp: Gauge;
}

/** What the webhook gauges read from the database at scrape time (the worker's, where the dispatcher runs). */
export interface WebhookBacklog {
  pending: number;
  oldestSeconds: number;
  failingEndpoints: number;
}

export function createMetrics(
  options: {
    /** Jobs by queue, then state (FileQueue.countsByQueue). */
    queueCounts?: () => Promise<Record<string, Record<string, number>>>;
    webhookBacklog?: () => Promise<WebhookBacklog>;
    /** Requests waiting on GET /files/{id}/?wait=N (the API's, where they wait). */
    waiters?: () => number;
    /** The process scans files (a worker with SCAN_CLAMD): it exports scanner_up. */
    scanning?: boolean;
  } = {},
): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const queueCounts = options.queueCounts;
  // One read per scrape serves the three gauges (a read less than a second old is the same scrape's).
  let lastRead: { at: number; backlog: Promise<WebhookBacklog> } | undefined;
  const readBacklog = async (field: keyof WebhookBacklog): Promise<number | undefined> => {
    if (!options.webhookBacklog) return undefined;
    if (!lastRead || Date.now() - lastRead.at > 1_000) lastRead = { at: Date.now(), backlog: options.webhookBacklog() };
    try {
      return (await lastRead.backlog)[field];
    } catch {
      // PostgreSQL is down: the gauge keeps its last value and /readyz says why.
      return undefined;
    }
  };
  /** A gauge that reads one field of the webhook backlog at scrape time. */
  const backlogGauge = (name: string, help: string, field: keyof WebhookBacklog): Gauge =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const value = await readBacklog(field);
        if (value !== undefined) this.set(value);
      },
    });
  return {
    registry,
    httpRequests: new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by method, route template and status.',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from request to response, by method, route template and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    uploads: new Counter({
      name: 'uploads_total',
      help: 'Files accepted, by kind.',
      labelNames: ['kind'],
      registers: [registry],
    }),
    uploadBytes: new Counter({
      name: 'upload_bytes_total',
      help: 'Bytes of accepted files, by kind.',
      labelNames: ['kind'],
      registers: [registry],
    }),
    jobsProcessed: new Counter({
      name: 'jobs_processed_total',
      help: 'Jobs finished, by queue (pool), kind and outcome (processed, failed, retried, skipped, superseded).',
      labelNames: ['queue', 'kind', 'outcome'],
      registers: [registry],
    }),
    jobDuration: new Histogram({
      name: 'job_duration_seconds',
      help: 'Time a processor ran, by queue (pool) and kind.',
      labelNames: ['queue', 'kind'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    jobWait: new Histogram({
      name: 'job_wait_seconds',
      help: 'Time from enqueue to the start of processing, by queue (pool).',
      labelNames: ['queue'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
      registers: [registry],
    }),
    jobAttempts: new Histogram({
      name: 'job_attempts',
      help: 'Attempt number of each processing start, by queue (pool) and kind: above 1 is a retry or a re-delivery after a worker died.',
      labelNames: ['queue', 'kind'],
      buckets: [1, 2, 3, 4, 5, 10],
      registers: [registry],
    }),
    reconcilerItems: new Counter({
      name: 'reconciler_items_total',
      help: "Items the reconciler's sweeps handled, by sweep (requeue_queued, orphan_blobs, ...) and outcome (requeued, failed, removed, ...).",
      labelNames: ['sweep', 'outcome'],
      registers: [registry],
    }),
    reconcilerSweepDuration: new Histogram({
      name: 'reconciler_sweep_duration_seconds',
      help: 'Time one run of a reconciler sweep took, finished or failed, by sweep.',
      labelNames: ['sweep'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    reconcilerSweepErrors: new Counter({
      name: 'reconciler_sweep_errors_total',
      help: 'Runs of a reconciler sweep that failed (threw), by sweep; the other sweeps ran on.',
      labelNames: ['sweep'],
      registers: [registry],
    }),
    webhookDeliveries: new Counter({
      name: 'webhook_deliveries_total',
      help: 'Webhook delivery attempts, by outcome: delivered, retried (failed, to be tried again), failed (out of attempts, or 410 Gone).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    webhookDuration: new Histogram({
      name: 'webhook_delivery_duration_seconds',
      help: 'Time one webhook delivery attempt took, from connecting to the answer, by outcome.',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    webhookOutboxPending: backlogGauge(
      'webhook_outbox_pending',
      'Webhook deliveries waiting to be sent to enabled endpoints (due now or later), and events not made into deliveries yet, read from PostgreSQL at scrape time by each worker.',
      'pending',
    ),
    webhookOutboxOldest: backlogGauge(
      'webhook_outbox_oldest_seconds',
      'Age of the oldest webhook delivery still waiting to be sent to an enabled endpoint, or event not made into deliveries yet (0 when none waits).',
      'oldestSeconds',
    ),
    webhookEndpointsFailing: backlogGauge(
      'webhook_endpoints_failing',
      'Enabled webhook endpoints whose deliveries have all failed since their last success.',
      'failingEndpoints',
    ),
    queueJobs: new Gauge({
      name: 'queue_jobs',
      help: 'Jobs by queue (pool) and state, read from Redis at scrape time.',
      labelNames: ['queue', 'state'],
      registers: [registry],
      async collect() {
        if (!queueCounts) return;
        try {
          for (const [queue, counts] of Object.entries(await queueCounts())) {
            for (const [state, count] of Object.entries(counts)) this.set({ queue, state }, count);
          }
        } catch {
          // Redis is down: the gauge keeps its last values and /readyz says why.
        }
      },
    }),
    scans: new Counter({
      name: 'scans_total',
      help: "Files scanned for malware, by verdict: clean, infected, unscannable (past the scanner's limits), error (the scanner did not answer; the file waits).",
      labelNames: ['verdict'],
      registers: [registry],
    }),
    scanDuration: new Histogram({
      name: 'scan_duration_seconds',
      help: 'Time one scan took, from opening the bytes to the verdict.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    scanBytes: new Counter({
      name: 'scan_bytes_total',
      help: 'Bytes scanned for malware (of files that got a verdict).',
      registers: [registry],
    }),
    scannerUp: new Gauge({
      name: 'scanner_up',
      help: "1 while this worker's last scan or PING reached the malware scanner (clamd), 0 while it cannot.",
      // Only a worker that scans exports it: an absent series is scanning off, not a scanner down.
      registers: options.scanning ? [registry] : [],
    }),
    httpWaiters: new Gauge({
      name: 'http_waiters',
      help: 'Requests waiting for their file to be processed or failed (GET /files/{id}/?wait=N), read at scrape time.',
      // Only a process where requests wait exports it.
      registers: options.waiters ? [registry] : [],
      collect() {
        if (options.waiters) this.set(options.waiters());
      },
    }),
  };
}
