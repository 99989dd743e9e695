// The API process: the HTTP API on PORT and the admin server on ADMIN_PORT, composed as the tests compose it
// (api/compose.ts).
import { listen, runMain, startRuntime, stopOnSignals } from '../core/runtime.js';
import { composeApi } from './compose.js';

runMain(async () => {
  // Starts tracing first, so that every span of this process is recorded.
  const { config, logger, db, queue, storage, version, tracing } = await startRuntime('api');
  const api = composeApi({ config, logger, db, queue, storage, version });
  // From here on a signal stops the API cleanly, even one that comes while it is still starting.
  stopOnSignals(logger, config.shutdownTimeoutMs, async () => {
    await api.stop(config.shutdownTimeoutMs);
    await queue.close(1_000);
    await db.close();
    await tracing.shutdown();
  });
  await api.start();
  await listen(api.server, config.port, config.host, 'PORT');
  await listen(api.admin, config.adminPort, config.host, 'ADMIN_PORT');
  logger.info(
    { port: config.port, admin_port: config.adminPort, version, authentication: api.tokens.enabled },
    'api listening',
  );
});
