// CORS, off unless CORS_ORIGINS lists the browser origins allowed to call the API: @koa/cors, told which
// origins to answer, which headers a browser may send and which it may read.
import koaCors from '@koa/cors';
import type Koa from 'koa';

/** What a tus client (tus-js-client in a browser) sends and reads. */
const TUS_HEADERS = [
  'Tus-Resumable',
  'Tus-Version',
  'Tus-Extension',
  'Tus-Max-Size',
  'Tus-Checksum-Algorithm',
  'Upload-Length',
  'Upload-Offset',
  'Upload-Metadata',
  'Upload-Expires',
  'Upload-Checksum',
  'Upload-Defer-Length',
];
const ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'Idempotency-Key',
  'X-Request-Id',
  'Range',
  'If-None-Match',
  ...TUS_HEADERS,
];
const EXPOSED_HEADERS = [
  ...TUS_HEADERS,
  'Location',
  'X-Request-Id',
  'Idempotent-Replayed',
  'Retry-After',
  'ETag',
  'Content-Range',
  'Content-Disposition',
];

export function cors(origins: string[]): Koa.Middleware {
  const anyOrigin = origins.includes('*');
  const allowed = new Set(origins);
  return koaCors({
    // An origin not listed gets no CORS headers at all (an empty answer tells @koa/cors to add none).
    origin: (ctx) => (anyOrigin ? '*' : allowed.has(ctx.get('Origin')) ? ctx.get('Origin') : ''),
    allowMethods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'],
    allowHeaders: ALLOWED_HEADERS,
    exposeHeaders: EXPOSED_HEADERS,
    maxAge: 600,
  });
}
