// A server span per request, by the OpenTelemetry HTTP conventions, continuing the caller's trace
// (W3C `traceparent`) and active while the request runs, so the enqueue and the log lines join it.
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type Koa from 'koa';

/**
 * Traces each request. The route template is read after the request from `ctx.state.route`, which
 * the request-logging middleware inside this one sets.
 */
export function traceRequests(tracer: Tracer): Koa.Middleware {
  return async (ctx, next) => {
    const parent = propagation.extract(ROOT_CONTEXT, ctx.headers);
    const span = tracer.startSpan(ctx.method, { kind: SpanKind.SERVER }, parent);
    // With tracing off the span is the no-op one: nothing to describe.
    if (span.isRecording()) {
      span.setAttributes({
        [ATTR_HTTP_REQUEST_METHOD]: ctx.method,
        [ATTR_URL_PATH]: ctx.path,
        [ATTR_URL_SCHEME]: ctx.protocol,
        [ATTR_CLIENT_ADDRESS]: ctx.ip,
        [ATTR_NETWORK_PROTOCOL_VERSION]: ctx.req.httpVersion,
      });
      const userAgent = ctx.get('User-Agent');
      if (userAgent) span.setAttribute(ATTR_USER_AGENT_ORIGINAL, userAgent);
    }
    try {
      await context.with(trace.setSpan(parent, span), next);
    } finally {
      if (span.isRecording()) describeOutcome(span, ctx);
      span.end();
    }
  };
}

/** The route template (known only once routing ran) and the status, which marks 5xx as the server's failure. */
function describeOutcome(span: Span, ctx: Koa.Context): void {
  const route = (ctx.state as { route?: string }).route;
  if (route && route !== 'unmatched') {
    span.updateName(`${ctx.method} ${route}`);
    span.setAttribute(ATTR_HTTP_ROUTE, route);
  }
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, ctx.status);
  // For a server, only 5xx is its own failure; a 4xx is the client's.
  if (ctx.status >= 500) {
    span.setAttribute(ATTR_ERROR_TYPE, String(ctx.status));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
}
