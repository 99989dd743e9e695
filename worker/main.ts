// The worker process: takes jobs from the queue, with its admin server on ADMIN_PORT.
import { createAdminServer } from '../core/admin.js';
import { closeServer, dependencyChecks, listen, runMain, startRuntime, stopOnSignals } from '../core/runtime.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { PROCESSORS } from './processors/index.js';
import { Reconciler } from './reconciler.js';
import { createWorker } from './worker.js';

runMain(async () => {
  const { config, logger, db, queue, storage, version } = await startRuntime('worker');
  const metrics = createMetrics({ queueCounts: () => queue.counts() });
  const worker = createWorker({
    db,
    queue,
    storage,
    logger,
    metrics,
    processors: PROCESSORS,
    concurrency: config.workerConcurrency,
    limits: { maxImagePixels: config.imageMaxPixels },
    jobTimeoutMs: config.jobTimeoutMs,
    maxAttempts: config.maxAttempts,
  });
  const reconciler = new Reconciler({ db, queue, storage, logger, metrics, config });

  let shuttingDown = false;
  const admin = createAdminServer({
    registry: metrics.registry,
    isShuttingDown: () => shuttingDown,
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
    await worker.close(config.shutdownTimeoutMs);
    await db.close();
    await closeServer(admin, 1_000);
  });
});
