// Errors are thrown anywhere as AppError and rendered in one place as RFC 9457 problem+json.
import { trace } from '@opentelemetry/api';
import type Koa from 'koa';
import { Type, type Static } from '@sinclair/typebox';
import { isDatabaseUnavailable } from '../core/db/index.js';
import { StorageUnavailableError } from '../core/storage/index.js';
import type { Logger } from '../core/telemetry/logger.js';
import { KEPT_ON_ERROR } from './headers.js';

export interface FieldError {
  field: string;
  message: string;
}

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'URI naming the kind of problem.' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String({ description: 'What happened and what to do, for a person.' }),
    code: Type.String({ description: 'Stable, machine-readable error code.' }),
    request_id: Type.String(),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
  { $id: 'Problem' },
);
export type Problem = Static<typeof ProblemSchema>;

/** Every error code a client can rely on, with its status and title. */
export const ERRORS = {
  file_missing: { status: 400, title: 'File missing' },
  file_empty: { status: 400, title: 'File empty' },
  too_many_files: { status: 400, title: 'Too many files' },
  invalid_multipart: { status: 400, title: 'Invalid multipart body' },
  invalid_query: { status: 400, title: 'Invalid query parameters' },
  invalid_idempotency_key: { status: 400, title: 'Invalid idempotency key' },
  invalid_body: { status: 400, title: 'Invalid request body' },
  invalid_tus_request: { status: 400, title: 'Invalid tus request' },
  unauthorized: { status: 401, title: 'Unauthorized' },
  file_infected: { status: 403, title: 'File infected' },
  file_unscannable: { status: 403, title: 'File not scannable' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  request_timeout: { status: 408, title: 'Request timeout' },
  file_processing: { status: 409, title: 'File is being processed' },
  scan_pending: { status: 409, title: 'Scan pending' },
  upload_incomplete: { status: 409, title: 'Upload incomplete' },
  idempotency_key_in_use: { status: 409, title: 'Idempotency key in use' },
  upload_offset_mismatch: { status: 409, title: 'Upload offset mismatch' },
  webhook_limit_reached: { status: 409, title: 'Webhook endpoint limit reached' },
  tus_version_unsupported: { status: 412, title: 'tus version unsupported' },
  file_too_large: { status: 413, title: 'File too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  range_not_satisfiable: { status: 416, title: 'Range not satisfiable' },
  idempotency_key_reused: { status: 422, title: 'Idempotency key reused' },
  size_mismatch: { status: 422, title: 'Size mismatch' },
  webhook_url_forbidden: { status: 422, title: 'Webhook URL forbidden' },
  upload_locked: { status: 423, title: 'Upload locked' },
  rate_limited: { status: 429, title: 'Too many requests' },
  upload_checksum_mismatch: { status: 460, title: 'Checksum mismatch' },
  internal_error: { status: 500, title: 'Internal error' },
  direct_uploads_unavailable: { status: 501, title: 'Direct uploads unavailable' },
  service_unavailable: { status: 503, title: 'Service unavailable' },
  overloaded: { status: 503, title: 'Overloaded' },
  storage_unavailable: { status: 503, title: 'Storage unavailable' },
  insufficient_storage: { status: 507, title: 'Insufficient storage' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class AppError extends Error {
  override name = 'AppError';
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly extra: { errors?: FieldError[]; headers?: Record<string, string>; cause?: unknown; status?: number } = {},
  ) {
    super(detail, { cause: extra.cause });
    // A protocol may require another status for the same code (tus: 410 for an expired upload, a `not_found`).
    this.status = extra.status ?? ERRORS[code].status;
  }
}

const PROBLEM_BASE = 'https://github.com/file-processor/file-processor/blob/main/README.md#errors';

/** Problem type URI for a code: a stable anchor in the documentation. */
const problemType = (code: ErrorCode): string => `${PROBLEM_BASE}-${code.replace(/_/g, '-')}`;

/** The outermost middleware: anything thrown below becomes a problem+json response. */
export function problemResponses(logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
      // Koa would serialize an object body after every middleware has returned, where a failure (a body too large to
      // be a string) is a plain-text 500 that no middleware sees and the log records as a success.
      if (isJsonValue(ctx.body)) ctx.body = JSON.stringify(ctx.body);
    } catch (thrown) {
      const err = asAppError(thrown);
      if (err.status >= 500) {
        logger.error(
          { err: thrown, request_id: ctx.state.requestId, method: ctx.method, path: ctx.path },
          'request failed',
        );
        trace.getActiveSpan()?.recordException(thrown instanceof Error ? thrown : String(thrown));
      }
      // Headers set for the success path (content type, disposition, length) must not leak into the problem.
      for (const name of Object.keys(ctx.response.headers)) {
        if (!KEPT_ON_ERROR.has(name) && !name.startsWith('access-control-')) ctx.remove(name);
      }
      for (const [name, value] of Object.entries(err.extra.headers ?? {})) ctx.set(name, value);
      ctx.status = err.status;
      ctx.type = 'application/problem+json';
      const problem: Problem = {
        type: problemType(err.code),
        title: ERRORS[err.code].title,
        status: err.status,
        detail: err.detail,
        code: err.code,
        request_id: String(ctx.state.requestId ?? ''),
        ...(err.extra.errors ? { errors: err.extra.errors } : {}),
      };
      ctx.body = problem;
    }
  };
}

/** A body Koa would send as JSON: a plain object or an array (not a Buffer, a stream, a string or a Blob). */
const isJsonValue = (body: unknown): body is object =>
  Array.isArray(body) ||
  (typeof body === 'object' && body !== null && Object.getPrototypeOf(body) === Object.prototype);

/** The header of every answer that asks the client to try the same request again in a few seconds. */
export const RETRY_SHORTLY = { 'Retry-After': '5' } as const;

/** The blob store did not answer: nothing was kept, and the same request may be sent again shortly. */
export const storageUnavailable = (cause: unknown): AppError =>
  new AppError('storage_unavailable', 'The file store is unavailable; retry shortly.', {
    headers: RETRY_SHORTLY,
    cause,
  });

/** Anything that is not an AppError is unexpected: the client learns nothing but the request id. */
function asAppError(thrown: unknown): AppError {
  if (thrown instanceof AppError) return thrown;
  const status = (thrown as { status?: unknown } | null)?.status;
  const expose = (thrown as { expose?: unknown } | null)?.expose === true;
  // Koa's own client errors (http-errors with expose) keep their status where we have a code for it.
  if (expose && status === 404) return new AppError('not_found', 'There is nothing at this address.');
  if (isDatabaseUnavailable(thrown)) {
    return new AppError('service_unavailable', 'The database is unavailable; retry shortly.', {
      headers: RETRY_SHORTLY,
      cause: thrown,
    });
  }
  if (thrown instanceof StorageUnavailableError) return storageUnavailable(thrown);
  if (expose && status === 415)
    return new AppError('unsupported_media_type', 'The request body has a media type this endpoint does not take.');
  return new AppError('internal_error', 'Something went wrong on our side; the request id identifies it in our logs.', {
    cause: thrown,
  });
}
