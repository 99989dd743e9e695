// The API process: the HTTP API on PORT and the admin server on ADMIN_PORT.
import http from 'node:http';
import { createAdminServer } from '../core/admin.js';
import { closeServer, dependencyChecks, listen, runMain, startRuntime, stopOnSignals, VERSION } from '../core/runtime.js';
import { watchEventLoop } from '../core/telemetry/eventLoop.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { startTracing } from '../core/telemetry/tracing.js';
import { createApp } from './app.js';

runMain(async () => {
  // First, so that every span of this process is recorded (a no-op unless OTEL_* variables ask for it).
  const tracing = await startTracing({ name: 'file-processor-api', version: VERSION });
  const { config, logger, db, queue, storage, version } = await startRuntime('api');
  const metrics = createMetrics({ queueCounts: () => queue.counts() });
  const app = createApp({ config, db, queue, storage, logger, metrics, version });

  let shuttingDown = false;
  const server = http.createServer(app.callback());
  const admin = createAdminServer({
    registry: metrics.registry,
    isShuttingDown: () => shuttingDown,
    eventLoop: watchEventLoop({ maxDelayMs: config.livenessMaxEventLoopDelayMs }),
    checks: [...dependencyChecks({ db, queue }), { name: 'storage', check: () => storage.ping() }],
  });
  await listen(server, config.port, config.host, 'PORT');
  await listen(admin, config.adminPort, config.host, 'ADMIN_PORT');
  logger.info({ port: config.port, admin_port: config.adminPort, version }, 'api listening');

  stopOnSignals(logger, config.shutdownTimeoutMs, async () => {
    shuttingDown = true;
    await closeServer(server, config.shutdownTimeoutMs);
    await queue.close(1_000);
    await db.close();
    await closeServer(admin, 1_000);
    await tracing.shutdown();
  });
});
