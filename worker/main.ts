// The worker process: takes jobs from the queue, with its admin server on ADMIN_PORT.
import { createAdminServer } from '../core/admin.js';
import { closeServer, dependencyChecks, listen, runMain, startRuntime, stopOnSignals } from '../core/runtime.js';
import { watchEventLoop } from '../core/telemetry/eventLoop.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { podDeletionCostFromConfig } from './podDeletionCost.js';
import { SharedRedis } from '../core/redis.js';
import { PROCESSORS } from './processors/index.js';
import { Reconciler } from './reconciler.js';
import { createWorker } from './worker.js';

runMain(async () => {
  // Starts tracing first, so that every span of this process is recorded.
  const { config, logger, db, queue, storage, version, tracing } = await startRuntime('worker');
  const metrics = createMetrics({ queueCounts: () => queue.counts() });
  const deletionCost = podDeletionCostFromConfig(config, logger);
  const worker = createWorker({
    db,
    queue,
    storage,
    logger,
    metrics,
    processors: PROCESSORS,
    concurrency: config.workerConcurrency,
    limits: { maxImagePixels: config.imageMaxPixels, pdfMaxDecodedBytes: config.pdfMaxDecodedBytes },
    parserMaxRssBytes: config.parserMaxRssBytes,
    jobTimeoutMs: config.jobTimeoutMs,
    maxAttempts: config.maxAttempts,
    onBusyChange: deletionCost ? (busy) => deletionCost.setBusy(busy) : undefined,
  });
  const redis = SharedRedis.connect({ url: config.redisUrl, prefix: config.queuePrefix, queueName: config.queueName });
  const reconciler = new Reconciler({ db, queue, redis, storage, logger, metrics, config });

  let shuttingDown = false;
  const admin = createAdminServer({
    registry: metrics.registry,
    isShuttingDown: () => shuttingDown,
    eventLoop: watchEventLoop({ maxDelayMs: config.livenessMaxEventLoopDelayMs }),
    checks: [...dependencyChecks({ db, queue })],
  });
  await worker.warm();
  await listen(admin, config.adminPort, config.host, 'ADMIN_PORT');
  worker.start();
  reconciler.start();
  logger.info({ admin_port: config.adminPort, concurrency: config.workerConcurrency, version }, 'worker started');

  stopOnSignals(logger, config.shutdownTimeoutMs, async () => {
    shuttingDown = true;
    await reconciler.stop();
    redis.close();
    await worker.close(config.shutdownTimeoutMs);
    await deletionCost?.close();
    await db.close();
    await closeServer(admin, 1_000);
    await tracing.shutdown();
  });
});
