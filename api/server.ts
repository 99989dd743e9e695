// The API's HTTP server, with the limits that keep slow or hostile clients from holding it hostage.
import http from 'node:http';
import type Koa from 'koa';
import type { Config } from '../core/config.js';

export type ServerLimits = Pick<
  Config,
  | 'httpHeadersTimeoutMs'
  | 'httpRequestTimeoutMs'
  | 'httpIdleTimeoutMs'
  | 'httpKeepAliveTimeoutMs'
  | 'httpMaxHeaderBytes'
>;

export function createApiServer(app: Koa, limits: ServerLimits): http.Server {
  const handler = app.callback();
  const server = http.createServer(
    {
      // Headers must arrive within this (slowloris), and the whole request within the request timeout.
      headersTimeout: Math.min(limits.httpHeadersTimeoutMs, limits.httpRequestTimeoutMs),
      requestTimeout: limits.httpRequestTimeoutMs,
      keepAliveTimeout: limits.httpKeepAliveTimeoutMs,
      maxHeaderSize: limits.httpMaxHeaderBytes,
      // Node checks the two timeouts above on this interval (30 s by default, far coarser than them).
      connectionsCheckingInterval: 1_000,
    },
    // Koa's handler settles its own errors; the promise it returns carries nothing to wait for.
    (request, response) => void handler(request, response),
  );
  // A connection silent for this long (a stalled upload, a trickling client) is closed.
  server.setTimeout(limits.httpIdleTimeoutMs);
  return server;
}
