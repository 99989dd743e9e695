// The worker process: takes jobs from the queue, reconciles and sends webhooks, with its admin server on ADMIN_PORT;
// composed as the tests compose it (worker/compose.ts).
import { listen, runMain, startRuntime, stopOnSignals } from '../core/runtime.js';
import { composeWorker } from './compose.js';

runMain(async () => {
  // Starts tracing first, so that every span of this process is recorded.
  const { config, logger, db, queue, storage, version, tracing } = await startRuntime('worker');
  const composed = composeWorker({ config, logger, db, queue, storage, version });
  // From here on a signal stops the worker cleanly, even one that comes while it is still starting.
  stopOnSignals(logger, config.shutdownTimeoutMs, async () => {
    await composed.stop(config.shutdownTimeoutMs);
    await db.close();
    await tracing.shutdown();
  });
  await composed.start();
  await listen(composed.admin, config.adminPort, config.host, 'ADMIN_PORT');
  const queues = Object.fromEntries(config.workerQueues.map((consumed) => [consumed.name, consumed.concurrency]));
  logger.info({ admin_port: config.adminPort, queues, version }, 'worker started');
});
