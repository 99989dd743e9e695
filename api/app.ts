// The Koa application, composed from its dependencies so a test can build one with its own database,
// queue prefix and blob directory.
import type { Tracer } from '@opentelemetry/api';
import Koa from 'koa';
import { randomUUID } from 'node:crypto';
import type { Config } from '../core/config.js';
import type { Database } from '../core/db/index.js';
import type { FileQueue } from '../core/queue/index.js';
import type { SharedRedis } from '../core/redis.js';
import type { BlobStore } from '../core/storage/index.js';
import type { Logger } from '../core/telemetry/logger.js';
import type { Metrics } from '../core/telemetry/metrics.js';
import { defaultTracer } from '../core/telemetry/spans.js';
import compose from 'koa-compose';
import { BacklogMonitor, limitRate, refuseWhenOverloaded } from './admission.js';
import { authenticate, type TokenSet } from './auth.js';
import { cors } from './cors.js';
import { directUploadHandlers } from './directUploads.js';
import { docsAsset, docsPage, uploadPage } from './docs.js';
import { AppError, problemResponses } from './errors.js';
import { fileHandlers } from './files.js';
import { FileIntake } from './intake.js';
import { SECURITY_HEADERS } from './headers.js';
import { buildRouter, openApiDocument, ROUTES } from './routes.js';
import { traceRequests } from './tracing.js';
import { webhookHandlers } from './webhooks.js';
import { refuseOversizedUploads, uploadHandler } from './upload.js';
import { drainSmallBody } from './body.js';
import type { Waiters } from './waiting.js';
import { MemoryLocker } from '@tus/server';
import type { Locker } from '@tus/utils';
import { tusUploads } from './tus.js';

export type AppConfig = Pick<
  Config,
  | 'publicUrl'
  | 'trustProxy'
  | 'maxUploadBytes'
  | 'corsOrigins'
  | 'maxBacklog'
  | 'rateLimitPerSecond'
  | 'rateLimitBurst'
  | 'queuePrefix'
  | 'httpRequestTimeoutMs'
  | 'httpMinBytesPerSecond'
  | 'httpMinRateWindowMs'
  | 'downloadRedirect'
  | 'directUploadExpiresMs'
  | 'webhookAllowHttp'
  | 'webhookAllowPrivate'
  | 'maxWebhookEndpoints'
  | 'tusExpireAfterMs'
  | 'scanClamd'
  | 'scanUnscannable'
>;

export interface AppDeps {
  config: AppConfig;
  db: Database;
  queue: FileQueue;
  storage: BlobStore;
  logger: Logger;
  metrics: Metrics;
  version: string;
  tokens: TokenSet;
  backlog: BacklogMonitor;
  /** For the rate limit; null when it is off. */
  redis: SharedRedis | null;
  /** Tracer of the server spans (default: the global one, a no-op until the SDK starts). */
  tracer?: Tracer;
  /** For GET /files/{id}/?wait=N; none when waiting is off (MAX_WAITERS=0). */
  waiters?: Waiters;
  /** The lock of each resumable upload, shared by every API pod (a RedisLocker); one process alone may use memory. */
  tusLocker?: Locker;
}

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Metric and log label of a route: its contract path, never a concrete id. */
const ROUTE_LABELS: Record<string, string> = {
  ...Object.fromEntries(ROUTES.map((route) => [route.operationId, route.path])),
  docsAsset: '/docs/assets/{asset}',
};

export function createApp(deps: AppDeps): Koa {
  const { config, db, queue, storage, logger, metrics } = deps;
  const app = new Koa({ proxy: config.trustProxy });
  // Errors are rendered and logged by problemResponses; Koa's default handler would log them twice.
  app.silent = true;

  // Koa 3's ctx.origin is the Origin request header, so the base is built from protocol and host.
  const baseUrl = (ctx: Koa.Context) => config.publicUrl ?? `${ctx.protocol}://${ctx.host}`;
  const files = fileHandlers({
    db,
    queue,
    storage,
    logger,
    baseUrl,
    downloadRedirect: config.downloadRedirect,
    waiters: deps.waiters,
    ...(config.scanClamd ? { scanning: { allowUnscannable: config.scanUnscannable === 'allow' } } : {}),
  });
  const document = openApiDocument(deps.version);
  const waysIn = {
    db,
    intake: new FileIntake({ db, queue, logger, metrics }),
    storage,
    logger,
    maxUploadBytes: config.maxUploadBytes,
    // No request outlives the request timeout, so a key claimed longer ago than that was abandoned.
    idempotencyAbandonAfterMs: config.httpRequestTimeoutMs + 60_000,
    baseUrl,
  };
  const upload = uploadHandler({
    ...waysIn,
    minBodyRate: { bytesPerSecond: config.httpMinBytesPerSecond, windowMs: config.httpMinRateWindowMs },
  });
  const direct = directUploadHandlers({ ...waysIn, expiresMs: config.directUploadExpiresMs });
  const webhooks = webhookHandlers({
    db,
    baseUrl,
    urlPolicy: { allowHttp: config.webhookAllowHttp, allowPrivate: config.webhookAllowPrivate },
    maxEndpoints: config.maxWebhookEndpoints,
  });
  // Made at the first tus request: a test's stand-in blob store never needs one.
  let tus: Koa.Middleware | undefined;
  const resumable: Koa.Middleware = async (ctx, next) => {
    tus ??= tusUploads({
      ...waysIn,
      resumable: storage.resumable(config.tusExpireAfterMs),
      locker: deps.tusLocker ?? new MemoryLocker(),
    });
    await tus(ctx, next);
  };
  const admission = [
    ...(config.rateLimitPerSecond > 0 && deps.redis
      ? [
          limitRate({
            redis: deps.redis,
            perSecond: config.rateLimitPerSecond,
            burst: config.rateLimitBurst,
            logger,
          }),
        ]
      : []),
    refuseWhenOverloaded(deps.backlog, config.maxBacklog),
  ];
  const router = buildRouter({
    uploadFile: compose([refuseOversizedUploads(config.maxUploadBytes), ...admission, upload]),
    createUpload: compose([...admission, direct.createUpload]),
    completeUpload: compose([...admission, direct.completeUpload]),
    tusOptions: resumable,
    tusCreate: compose([...admission, resumable]),
    tusOffset: resumable,
    tusAppend: resumable,
    tusTerminate: resumable,
    ...files,
    // A bulk re-queue adds to the backlog as uploads do: refused alike while the queue is over MAX_BACKLOG.
    reprocessFiles: compose([...admission, files.reprocessFiles]),
    ...webhooks,
    getOpenApi: (ctx) => {
      ctx.body = document;
    },
    getDocs: docsPage,
    getUploadPage: uploadPage,
  });
  router.get('docsAsset', '/docs/assets/:asset', docsAsset);

  app.use(traceRequests(deps.tracer ?? defaultTracer()));
  app.use(observeRequests(logger, metrics));
  app.use(closeUnreadBodies);
  app.use(problemResponses(logger));
  if (config.corsOrigins.length) app.use(cors(config.corsOrigins));
  app.use(routingEdges);
  app.use(refuseNulInQuery);
  app.use(authenticate(deps.tokens));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/** Request id, security headers, one log line and the HTTP metrics for every request. */
function observeRequests(logger: Logger, metrics: Metrics): Koa.Middleware {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const offered = ctx.get('X-Request-Id');
    const requestId = SANE_REQUEST_ID.test(offered) ? offered : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    ctx.set(SECURITY_HEADERS);
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const name = (ctx as { _matchedRouteName?: string })._matchedRouteName;
      const labels = {
        method: ctx.method,
        route: (name && ROUTE_LABELS[name]) || 'unmatched',
        status: String(ctx.status),
      };
      ctx.state.route = labels.route;
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, seconds);
      logger.info(
        {
          request_id: requestId,
          method: ctx.method,
          route: labels.route,
          status: ctx.status,
          duration_ms: Math.round(seconds * 1e4) / 10,
        },
        'request',
      );
    }
  };
}

/**
 * An answer sent before the request's body was read to its end (refused early, or cut at a limit) reads a small
 * rest first, so that the client, still sending, gets the answer rather than a reset; a large or slow rest (or a
 * body cut at a limit) is not read, and the answer closes the connection, since keeping it would have Node read
 * the rest, at the client's pace, to reach the next request.
 */
const closeUnreadBodies: Koa.Middleware = async (ctx, next) => {
  await next();
  if (ctx.req.complete) return;
  const cutAtLimit = ctx.status === 408 || ctx.status === 413;
  if (cutAtLimit || !(await drainSmallBody(ctx.req))) ctx.set('Connection', 'close');
};

/** PostgreSQL's text refuses NUL: a query parameter that holds one is the client's 400 on every route, never a 500. */
const refuseNulInQuery: Koa.Middleware = async (ctx, next) => {
  const withNul = Object.entries(ctx.query).filter(
    ([name, value]) => name.includes('\0') || [value ?? []].flat().some((given) => given.includes('\0')),
  );
  if (withNul.length > 0) {
    throw new AppError('invalid_query', 'Some query parameters are invalid; see `errors`.', {
      errors: withNul.map(([field]) => ({ field, message: 'Holds a NUL character (%00), which is not allowed.' })),
    });
  }
  await next();
};

/**
 * `/files/` and `/files` are the same resource, as with DRF's routers; and the router's bare
 * 404/405/501 become problems.
 */
const routingEdges: Koa.Middleware = async (ctx, next) => {
  if (ctx.path.length > 1 && ctx.path.endsWith('/')) ctx.path = ctx.path.replace(/\/+$/, '') || '/';
  await next();
  if (ctx.body !== undefined && ctx.body !== null) return;
  if (ctx.status === 405 || ctx.status === 501) {
    const allow = String(ctx.response.get('Allow'));
    throw new AppError('method_not_allowed', `This address answers ${allow} only.`, { headers: { Allow: allow } });
  }
  if (ctx.status === 404) throw new AppError('not_found', 'There is nothing at this address.');
};
