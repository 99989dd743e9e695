// The worker process: takes jobs from the queue, with its admin server on ADMIN_PORT.
import { createAdminServer } from '../core/admin.js';
import { closeServer, dependencyChecks, listen, runMain, startRuntime, stopOnSignals } from '../core/runtime.js';
import { watchEventLoop } from '../core/telemetry/eventLoop.js';
import { Notifications } from '../core/db/index.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { defaultTracer } from '../core/telemetry/spans.js';
import { WebhookDispatcher } from './dispatcher.js';
import { podDeletionCostFromConfig } from './podDeletionCost.js';
import { SharedRedis } from '../core/redis.js';
import { PROCESSORS } from './processors/index.js';
import { Reconciler } from './reconciler.js';
import { createWorker } from './worker.js';

runMain(async () => {
  // Starts tracing first, so that every span of this process is recorded.
  const { config, logger, db, queue, storage, version, tracing } = await startRuntime('worker');
  const metrics = createMetrics({
    queueCounts: () => queue.countsByQueue(),
    webhookBacklog: async () => ({
      ...(await db.webhooks.backlog()),
      failingEndpoints: await db.webhooks.failingEndpoints(),
    }),
  });
  const deletionCost = podDeletionCostFromConfig(config, logger);
  const worker = createWorker({
    db,
    queue,
    storage,
    logger,
    metrics,
    processors: PROCESSORS,
    // Each queue runs its own share (WORKER_QUEUES); the parser processes serve them all.
    concurrency: config.workerQueues.reduce((sum, queue) => sum + queue.concurrency, 0),
    limits: { maxImagePixels: config.imageMaxPixels, pdfMaxDecodedBytes: config.pdfMaxDecodedBytes },
    maxResultBytes: config.maxResultBytes,
    parserMaxRssBytes: config.parserMaxRssBytes,
    jobTimeoutMs: config.jobTimeoutMs,
    maxAttempts: config.maxAttempts,
    onBusyChange: deletionCost ? (busy) => deletionCost.setBusy(busy) : undefined,
  });
  const redis = SharedRedis.connect({ url: config.redisUrl, prefix: config.queuePrefix });
  const resumable = storage.resumable(config.tusExpireAfterMs);
  const reconciler = new Reconciler({ db, queue, redis, storage, logger, metrics, config, resumable });
  const notifications = new Notifications(config.databaseUrl, ['webhook_deliveries'], (err) =>
    logger.warn({ err }, 'lost the connection that listens for new webhook deliveries; reconnecting'),
  );
  const dispatcher = new WebhookDispatcher({
    db,
    notifications,
    logger,
    metrics,
    tracer: defaultTracer(),
    userAgent: `file-processor/${version} (webhooks)`,
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

  let shuttingDown = false;
  const admin = createAdminServer({
    registry: metrics.registry,
    isShuttingDown: () => shuttingDown,
    eventLoop: watchEventLoop({ maxDelayMs: config.livenessMaxEventLoopDelayMs }),
    checks: [...dependencyChecks({ db, queue })],
  });
  // From here on a signal stops the worker cleanly, even one that comes while it is still starting.
  stopOnSignals(logger, config.shutdownTimeoutMs, async () => {
    shuttingDown = true;
    await reconciler.stop();
    redis.close();
    // Deliveries in flight finish (or are retried by their lease) while the jobs in flight finish.
    await Promise.all([worker.close(config.shutdownTimeoutMs), dispatcher.stop(config.shutdownTimeoutMs)]);
    await notifications.close();
    await deletionCost?.close();
    await db.close();
    await closeServer(admin, 1_000);
    await tracing.shutdown();
  });
  await worker.warm();
  await listen(admin, config.adminPort, config.host, 'ADMIN_PORT');
  // A signal while warming: the shutdown has closed what it found, and nothing more starts.
  if (shuttingDown) return;
  worker.start();
  reconciler.start();
  await notifications.start();
  if (shuttingDown) return;
  dispatcher.start();
  const queues = Object.fromEntries(config.workerQueues.map((queue) => [queue.name, queue.concurrency]));
  logger.info({ admin_port: config.adminPort, queues, version }, 'worker started');
});
