// The API process composed from its parts: what api/main.ts runs and what the tests start, the same way. The caller
// owns the parts it gives (config, database, queue, blob store) and the ports; everything made here is started by
// start() and closed by stop().
import type { Tracer } from '@opentelemetry/api';
import type { Server } from 'node:http';
import type Koa from 'koa';
import type { Locker } from '@tus/utils';
import { createAdminServer } from '../core/admin.js';
import { Notifications } from '../core/db/index.js';
import { lockKey, SharedRedis } from '../core/redis.js';
import { closeServer, dependencyChecks, StartupError, type ProcessParts } from '../core/runtime.js';
import { watchEventLoop } from '../core/telemetry/eventLoop.js';
import { createMetrics, type Metrics } from '../core/telemetry/metrics.js';
import { RedisLocker } from '../core/tus/redisLocker.js';
import { BacklogMonitor } from './admission.js';
import { createApp } from './app.js';
import { TokenSet } from './auth.js';
import { createApiServer } from './server.js';
import { Waiters } from './waiting.js';

export interface ApiParts extends ProcessParts {
  /** Tracer of the server and producer spans (default: the global one). */
  tracer?: Tracer;
  /** The lock of each resumable upload (default: in Redis, shared by every API pod). */
  tusLocker?: Locker;
  /** The rate limiter's Redis (default: its own connection, when a rate is set). */
  rateLimitRedis?: SharedRedis;
  /** How often API_TOKENS_FILE is read again, and the queue's backlog (defaults: 10 s, 1 s). */
  tokenReloadMs?: number;
  backlogRefreshMs?: number;
}

export interface ComposedApi {
  app: Koa;
  /** The API's server and the admin server (/healthz, /readyz, /metrics), not listening yet. */
  server: Server;
  admin: Server;
  metrics: Metrics;
  tokens: TokenSet;
  waiters?: Waiters;
  notifications?: Notifications;
  /** Starts what runs beside the servers: the LISTEN connection of waiting requests, token reloads, the backlog. */
  start(): Promise<void>;
  /** Fails readiness, lets in-flight requests finish (up to `graceMs`), and closes everything made here. */
  stop(graceMs: number): Promise<void>;
}

export function composeApi(parts: ApiParts): ComposedApi {
  const { config, logger, db, queue, storage } = parts;
  // GET /files/{id}/?wait=N: one LISTEN connection wakes every waiting request of this process.
  const notifications =
    config.maxWaiters > 0
      ? new Notifications(config.databaseUrl, ['file_settled'], (err) =>
          logger.warn({ err }, 'the LISTEN connection of waiting requests was lost; reconnecting'),
        )
      : undefined;
  const waiters = notifications ? new Waiters(notifications, config.maxWaiters) : undefined;
  const metrics = createMetrics({
    queueCounts: () => queue.countsByQueue(),
    ...(waiters ? { waiters: () => waiters.size } : {}),
  });
  const tokens = new TokenSet(config.apiTokens, config.apiTokensFile, logger, parts.tokenReloadMs);
  const backlog = new BacklogMonitor(queue, parts.backlogRefreshMs);
  // Rate limits are shared by all API pods through Redis; commands fail fast (and the limit fails open) while it is away.
  const ownRedis = config.rateLimitPerSecond > 0 && !parts.rateLimitRedis;
  const redis =
    parts.rateLimitRedis ??
    (ownRedis ? SharedRedis.connect({ url: config.redisUrl, prefix: config.queuePrefix }) : null);
  // Any pod continues any resumable upload: the lock each request holds on one is in Redis, and expires with its pod.
  const ownLocker = parts.tusLocker
    ? null
    : new RedisLocker({
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
    version: parts.version,
    tokens,
    backlog,
    redis,
    tracer: parts.tracer,
    waiters,
    tusLocker: parts.tusLocker ?? ownLocker!,
  });
  let stopping = false;
  const server = createApiServer(app, config);
  const admin = createAdminServer({
    registry: metrics.registry,
    isShuttingDown: () => stopping,
    eventLoop: watchEventLoop({ maxDelayMs: config.livenessMaxEventLoopDelayMs }),
    checks: [...dependencyChecks({ db, queue }), { name: 'storage', check: () => storage.ping() }],
  });

  return {
    app,
    server,
    admin,
    metrics,
    tokens,
    waiters,
    notifications,
    async start() {
      await notifications?.start();
      try {
        await tokens.start();
      } catch (err) {
        throw new StartupError(
          `API_TOKENS_FILE ${config.apiTokensFile} cannot be used (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): mount the token file there, or unset API_TOKENS_FILE.`,
        );
      }
      backlog.start();
      if (ownRedis) await redis!.ready();
    },
    async stop(graceMs) {
      // Readiness fails first, so no new traffic is routed here; in-flight requests (uploads included) finish.
      stopping = true;
      const closed = closeServer(server, graceMs);
      // Waiting requests answer now with the File as it is rather than hold the drain; clients wait again elsewhere.
      waiters?.close();
      await closed;
      await notifications?.close();
      backlog.stop();
      tokens.stop();
      if (ownRedis) redis!.close();
      await ownLocker?.close();
      await closeServer(admin, 1_000);
    },
  };
}
