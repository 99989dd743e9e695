// The worker process: takes jobs from the queue, with its admin server on ADMIN_PORT.
import { createAdminServer } from '../core/admin.js';
import { closeServer, dependencyChecks, listen, runMain, startRuntime, stopOnSignals } from '../core/runtime.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { podDeletionCostFromConfig } from './podDeletionCost.js';
import { PROCESSORS } from './processors/index.js';
import { createWorker } from './worker.js';

runMain(async () => {
  const { config, logger, db, queue, storage, version } = await startRuntime('worker');
  const metrics = createMetrics({ queueCounts: () => queue.counts() });
  const deletionCost = podDeletionCostFromConfig(config, logger);
  const worker = createWorker({ db, queue, storage, logger, metrics, processors: PROCESSORS, concurrency: config.workerConcurrency, onBusyChange: deletionCost?.setBusy });

  let shuttingDown = false;
  const admin = createAdminServer({
    registry: metrics.registry,
    isShuttingDown: () => shuttingDown,
    checks: [...dependencyChecks({ db, queue })],
  });
  await listen(admin, config.adminPort, config.host, 'ADMIN_PORT');
  worker.start();
  logger.info({ admin_port: config.adminPort, concurrency: config.workerConcurrency, version }, 'worker started');

  stopOnSignals(logger, config.shutdownTimeoutMs, async () => {
    shuttingDown = true;
    await worker.close(config.shutdownTimeoutMs);
    await deletionCost?.close();
    await db.close();
    await closeServer(admin, 1_000);
  });
});
