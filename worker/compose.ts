// The worker process composed from its parts: what worker/main.ts runs and what the tests start, the same way. It
// has three roles (take jobs, reconcile, dispatch webhooks); a test may run only some. The caller owns the parts it
// gives (config, database, queue, blob store) and the admin port; everything made here is closed by stop().
import type { Tracer } from '@opentelemetry/api';
import type { Server } from 'node:http';
import { createAdminServer } from '../core/admin.js';
import { Notifications } from '../core/db/index.js';
import { SharedRedis } from '../core/redis.js';
import { closeServer, dependencyChecks, type ProcessParts } from '../core/runtime.js';
import { watchEventLoop } from '../core/telemetry/eventLoop.js';
import { createMetrics, type Metrics } from '../core/telemetry/metrics.js';
import { defaultTracer } from '../core/telemetry/spans.js';
import { WebhookDispatcher } from './dispatcher.js';
import type { ParserProcesses } from './parsers.js';
import { podDeletionCostFromConfig } from './podDeletionCost.js';
import { clamdScanner, type Scanner } from '../core/scanner/index.js';
import { PROCESSORS, type ProcessorRegistry } from './processors/index.js';
import { Reconciler } from './reconciler.js';
import { sweepsFor } from './sweeps/index.js';
import { createWorker, type Worker } from './worker.js';

export interface WorkerParts extends ProcessParts {
  tracer?: Tracer;
  /** The processor of each kind (default: PROCESSORS). */
  processors?: ProcessorRegistry;
  /** Where parsing runs (default: one child process per concurrent job). */
  parsers?: ParserProcesses;
  /** The malware scanner (default: clamd at SCAN_CLAMD, when it is set). */
  scanner?: Scanner;
  /** Told when the worker goes busy or idle (default: the pod's deletion cost, when POD_DELETION_COST is on). */
  onBusyChange?: (busy: boolean) => void;
}

export type WorkerRole = 'jobs' | 'reconciler' | 'webhooks';

/** How often a worker that scans asks the scanner whether it is there (scanner_up). */
const SCANNER_PING_MS = 10_000;
const EVERY_ROLE: WorkerRole[] = ['jobs', 'reconciler', 'webhooks'];

export interface ComposedWorker {
  worker: Worker;
  reconciler: Reconciler;
  dispatcher: WebhookDispatcher;
  /** The admin server (/healthz, /readyz, /metrics), not listening yet. */
  admin: Server;
  metrics: Metrics;
  /** Warms the parsers, then starts the roles asked (all by default). */
  start(roles?: WorkerRole[]): Promise<void>;
  /** Fails readiness, finishes the jobs and deliveries in flight (up to `graceMs`), closes everything made here. */
  stop(graceMs: number): Promise<void>;
}

export function composeWorker(parts: WorkerParts): ComposedWorker {
  const { config, logger, db, queue, storage } = parts;
  const metrics = createMetrics({
    scanning: Boolean(parts.scanner ?? config.scanClamd),
    queueCounts: () => queue.countsByQueue(),
    webhookBacklog: async () => ({
      ...(await db.webhooks.backlog()),
      failingEndpoints: await db.webhooks.failingEndpoints(),
    }),
  });
  const deletionCost = parts.onBusyChange ? null : podDeletionCostFromConfig(config, logger);
  const scanner =
    parts.scanner ?? (config.scanClamd ? clamdScanner(config.scanClamd, { timeoutMs: config.scanTimeoutMs }) : null);
  const worker = createWorker({
    db,
    queue,
    storage,
    logger,
    metrics,
    processors: parts.processors ?? PROCESSORS,
    // Each queue runs its own share (WORKER_QUEUES); the parser processes serve them all.
    concurrency: config.workerQueues.reduce((sum, consumed) => sum + consumed.concurrency, 0),
    limits: { maxImagePixels: config.imageMaxPixels, pdfMaxDecodedBytes: config.pdfMaxDecodedBytes },
    maxResultBytes: config.maxResultBytes,
    parserMaxRssBytes: config.parserMaxRssBytes,
    jobTimeoutMs: config.jobTimeoutMs,
    maxAttempts: config.maxAttempts,
    ...(parts.parsers ? { parsers: parts.parsers } : {}),
    ...(scanner ? { scanning: { scanner, unscannable: config.scanUnscannable } } : {}),
    onBusyChange: parts.onBusyChange ?? (deletionCost ? (busy) => deletionCost.setBusy(busy) : undefined),
  });
  const redis = SharedRedis.connect({ url: config.redisUrl, prefix: config.queuePrefix });
  const resumable = storage.resumable(config.tusExpireAfterMs);
  const reconciler = new Reconciler({
    redis,
    logger,
    metrics,
    config,
    sweeps: sweepsFor({ db, queue, storage, config, resumable }),
  });
  const notifications = new Notifications(config.databaseUrl, ['webhook_deliveries'], (err) =>
    logger.warn({ err }, 'lost the connection that listens for new webhook deliveries; reconnecting'),
  );
  const dispatcher = new WebhookDispatcher({
    db,
    notifications,
    logger,
    metrics,
    tracer: parts.tracer ?? defaultTracer(),
    userAgent: `file-processor/${parts.version} (webhooks)`,
    settings: {
      timeoutMs: config.webhookTimeoutMs,
      maxAttempts: config.webhookMaxAttempts,
      retryBaseMs: config.webhookRetryBaseMs,
      disableAfterMs: config.webhookDisableAfterMs,
      concurrency: config.webhookConcurrency,
      endpointConcurrency: config.webhookEndpointConcurrency,
      allowPrivate: config.webhookAllowPrivate,
    },
  });
  let stopping = false;
  // scanner_up says whether clamd answers even while no file comes, so an outage alerts before a file waits on it.
  let scannerWatch: NodeJS.Timeout | undefined;
  const pingScanner = () =>
    scanner?.ping().then(
      () => metrics.scannerUp.set(1),
      () => metrics.scannerUp.set(0),
    );
  const admin = createAdminServer({
    registry: metrics.registry,
    isShuttingDown: () => stopping,
    eventLoop: watchEventLoop({ maxDelayMs: config.livenessMaxEventLoopDelayMs }),
    checks: [...dependencyChecks({ db, queue })],
  });

  return {
    worker,
    reconciler,
    dispatcher,
    admin,
    metrics,
    async start(roles = EVERY_ROLE) {
      await worker.warm();
      // A stop while warming: what it found is closed, and nothing more starts.
      if (stopping) return;
      if (roles.includes('jobs')) {
        if (scanner) {
          await pingScanner();
          scannerWatch = setInterval(() => void pingScanner(), SCANNER_PING_MS);
          scannerWatch.unref();
        }
        worker.start();
      }
      if (roles.includes('reconciler')) reconciler.start();
      if (roles.includes('webhooks')) {
        await notifications.start();
        if (!stopping) dispatcher.start();
      }
    },
    async stop(graceMs) {
      stopping = true;
      await reconciler.stop();
      redis.close();
      // Deliveries in flight finish (or are retried by their lease) while the jobs in flight finish.
      await Promise.all([worker.close(graceMs), dispatcher.stop(graceMs)]);
      clearInterval(scannerWatch);
      scanner?.close();
      await notifications.close();
      await deletionCost?.close();
      await closeServer(admin, 1_000);
    },
  };
}
