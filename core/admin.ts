// The admin server of both processes (never routed by the ingress): liveness, readiness, metrics.
import http from 'node:http';
import type { Registry } from 'prom-client';
import { TimeoutError, withTimeout } from './async.js';
import type { EventLoopWatch } from './telemetry/eventLoop.js';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<void>;
}

export interface AdminOptions {
  registry: Registry;
  checks: ReadinessCheck[];
  /** True once shutdown began: readiness fails so the load balancer stops sending traffic. */
  isShuttingDown: () => boolean;
  checkTimeoutMs?: number;
  /** Makes /healthz fail while the event loop keeps stalling; without it /healthz only proves the loop turns. */
  eventLoop?: EventLoopWatch;
}

export function createAdminServer(options: AdminOptions): http.Server {
  const timeoutMs = options.checkTimeoutMs ?? 2_000;
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    const reply = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const json = (status: number, body: unknown) => reply(status, 'application/json', JSON.stringify(body));

    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return json(405, { status: 'method_not_allowed' });
    }
    if (path === '/healthz') {
      // Answering at all proves the loop turns (a loop blocked right now times the probe out);
      // a loop that keeps stalling answers late, and says so.
      if (options.eventLoop && !options.eventLoop.healthy()) {
        return json(503, {
          status: 'event_loop_blocked',
          event_loop_delay_ms: Math.round(options.eventLoop.worstDelayMs()),
        });
      }
      return json(200, { status: 'ok' });
    }
    if (path === '/readyz') {
      if (options.isShuttingDown()) return json(503, { status: 'shutting_down' });
      void runChecks(options.checks, timeoutMs).then((checks) => {
        const ready = Object.values(checks).every((state) => state === 'ok');
        json(ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', checks });
      });
      return;
    }
    if (path === '/metrics') {
      void options.registry.metrics().then(
        (text) => reply(200, options.registry.contentType, text),
        () => json(500, { status: 'metrics_failed' }),
      );
      return;
    }
    json(404, { status: 'not_found' });
  });
}

/** Each check's state: `ok`, `timeout` or `unreachable` (no addresses or messages: they stay in the logs). */
async function runChecks(checks: ReadinessCheck[], timeoutMs: number): Promise<Record<string, string>> {
  const states = await Promise.all(
    checks.map(({ name, check }) =>
      withTimeout(check(), timeoutMs, name).then(
        () => [name, 'ok'] as const,
        (err: unknown) => [name, err instanceof TimeoutError ? 'timeout' : 'unreachable'] as const,
      ),
    ),
  );
  return Object.fromEntries(states);
}
