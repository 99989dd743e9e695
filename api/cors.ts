// CORS, off unless CORS_ORIGINS lists the browser origins allowed to call the API.
import type Koa from 'koa';

const ALLOWED_HEADERS = 'Authorization, Content-Type, Idempotency-Key, X-Request-Id, Range, If-None-Match';
const EXPOSED_HEADERS =
  'Location, X-Request-Id, Idempotent-Replayed, Retry-After, ETag, Content-Range, Content-Disposition';

export function cors(origins: string[]): Koa.Middleware {
  const anyOrigin = origins.includes('*');
  const allowed = new Set(origins);
  return async (ctx, next) => {
    const origin = ctx.get('Origin');
    if (!origin || (!anyOrigin && !allowed.has(origin))) {
      await next();
      return;
    }
    ctx.vary('Origin');
    ctx.set('Access-Control-Allow-Origin', anyOrigin ? '*' : origin);
    ctx.set('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    if (ctx.method === 'OPTIONS' && ctx.get('Access-Control-Request-Method')) {
      ctx.set('Access-Control-Allow-Methods', 'GET, HEAD, POST, DELETE');
      ctx.set('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      ctx.set('Access-Control-Max-Age', '600');
      ctx.status = 204;
      return;
    }
    await next();
  };
}
