// A stand-in OpenTelemetry collector: an HTTP server that accepts OTLP trace exports (protobuf or
// JSON) and keeps their bodies for the test to read.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface OtlpExport {
  path: string;
  contentType: string;
  body: Buffer;
}

export interface OtlpReceiver {
  /** Base URL, as OTEL_EXPORTER_OTLP_ENDPOINT. */
  endpoint: string;
  exports: OtlpExport[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const exports: OtlpExport[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      exports.push({
        path: req.url ?? '',
        contentType: req.headers['content-type'] ?? '',
        body: Buffer.concat(chunks),
      });
      // An empty success: everything accepted.
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/x-protobuf' });
      res.end(req.headers['content-type']?.includes('json') ? '{}' : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exports,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The spans of OTLP/JSON exports, with their resource's service.name. */
export function jsonSpans(
  exports: OtlpExport[],
): Array<{ service: string; name: string; traceId: string; spanId: string; parentSpanId?: string; kind: number }> {
  type Value = { stringValue?: string };
  type Body = {
    resourceSpans?: Array<{
      resource?: { attributes?: Array<{ key: string; value: Value }> };
      scopeSpans?: Array<{
        spans?: Array<{ name: string; traceId: string; spanId: string; parentSpanId?: string; kind: number }>;
      }>;
    }>;
  };
  return exports
    .filter((e) => e.contentType.includes('json'))
    .flatMap((e) => (JSON.parse(e.body.toString('utf8')) as Body).resourceSpans ?? [])
    .flatMap((resourceSpans) => {
      const service =
        resourceSpans.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
      return (resourceSpans.scopeSpans ?? []).flatMap((scope) =>
        (scope.spans ?? []).map((span) => ({ ...span, service })),
      );
    });
}
