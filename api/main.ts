// The API process: the HTTP API on PORT and the admin server on ADMIN_PORT.
import { createAdminServer } from '../core/admin.js';
import {
  closeServer,
  dependencyChecks,
  listen,
  runMain,
  startRuntime,
  StartupError,
  stopOnSignals,
} from '../core/runtime.js';
import { watchEventLoop } from '../core/telemetry/eventLoop.js';
import { lockKey, SharedRedis } from '../core/redis.js';
import { Notifications } from '../core/db/index.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { BacklogMonitor } from './admission.js';
import { createApp } from './app.js';
import { TokenSet } from './auth.js';
import { createApiServer } from './server.js';
import { RedisLocker } from '../core/tus/redisLocker.js';
import { Waiters } from './waiting.js';

runMain(async () => {
  // Starts tracing first, so that every span of this process is recorded.
  const { config, logger, db, queue, storage, version, tracing } = await startRuntime('api');
  // GET /files/{id}/?wait=N: one LISTEN connection wakes every waiting request of this process.
  const notifications =
    config.maxWaiters > 0
      ? new Notifications(config.databaseUrl, ['file_settled'], (err) =>
          logger.warn({ err }, 'the LISTEN connection of waiting requests was lost; reconnecting'),
        )
      : null;
  await notifications?.start();
  const waiters = notifications ? new Waiters(notifications, config.maxWaiters) : undefined;
  const metrics = createMetrics({
    queueCounts: () => queue.countsByQueue(),
    ...(waiters ? { waiters: () => waiters.size } : {}),
  });

  const tokens = new TokenSet(config.apiTokens, config.apiTokensFile, logger);
  try {
    await tokens.start();
  } catch (err) {
    throw new StartupError(
      `API_TOKENS_FILE ${config.apiTokensFile} cannot be used (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): mount the token file there, or unset API_TOKENS_FILE.`,
    );
  }
  const backlog = new BacklogMonitor(queue);
  backlog.start();
  // Rate limits are shared by all API pods through Redis; commands fail fast (and the limit fails open) while it is away.
  const redis =
    config.rateLimitPerSecond > 0 ? SharedRedis.connect({ url: config.redisUrl, prefix: config.queuePrefix }) : null;

  // Any pod continues any resumable upload: the lock each request holds on one is in Redis, and expires with its pod.
  const tusLocker = new RedisLocker({
    url: config.redisUrl,
    namespace: lockKey(config.queuePrefix, 'tus'),
    ttlMs: config.tusLockTtlMs,
  });
  const app = createApp({
    config,
    db,
    queue,
    storage,
    logger,
    metrics,
    version,
    tokens,
    backlog,
    redis,
    waiters,
    tusLocker,
  });
  let shuttingDown = false;
  const server = createApiServer(app, config);
  const admin = createAdminServer({
    registry: metrics.registry,
    isShuttingDown: () => shuttingDown,
    eventLoop: watchEventLoop({ maxDelayMs: config.livenessMaxEventLoopDelayMs }),
    checks: [...dependencyChecks({ db, queue }), { name: 'storage', check: () => storage.ping() }],
  });
  // From here on a signal stops the API cleanly, even one that comes while it is still starting.
  stopOnSignals(logger, config.shutdownTimeoutMs, async () => {
    // Readiness fails first, so no new traffic is routed here; in-flight requests (uploads included) finish.
    shuttingDown = true;
    const closed = closeServer(server, config.shutdownTimeoutMs);
    // Waiting requests answer now with the File as it is rather than hold the drain; clients wait again elsewhere.
    waiters?.close();
    await closed;
    await notifications?.close();
    backlog.stop();
    tokens.stop();
    redis?.close();
    await tusLocker.close();
    await queue.close(1_000);
    await db.close();
    await closeServer(admin, 1_000);
    await tracing.shutdown();
  });
  await listen(server, config.port, config.host, 'PORT');
  await listen(admin, config.adminPort, config.host, 'ADMIN_PORT');
  logger.info(
    { port: config.port, admin_port: config.adminPort, version, authentication: tokens.enabled },
    'api listening',
  );
});
