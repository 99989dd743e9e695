// Real spans in memory: the SDK's provider with an InMemorySpanExporter. The context manager and the
// W3C propagator are process-wide by nature and registered for the duration of a suite; the tracer is
// not, so a service that ignored the tracer it is given would record nothing.
import { context, propagation, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { eventually } from './eventually.js';

export interface RecordedSpans {
  /** A tracer of this provider, to hand to the service through its deps. */
  tracer: Tracer;
  finished(): ReadableSpan[];
  /** Polls until a finished span matches, or fails after `timeoutMs`. */
  waitFor(predicate: (span: ReadableSpan) => boolean, timeoutMs?: number): Promise<ReadableSpan>;
  /** Unregisters everything, back to the no-op API. */
  stop(): Promise<void>;
}

export function recordSpans(): RecordedSpans {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return {
    tracer: provider.getTracer('test'),
    finished: () => exporter.getFinishedSpans(),
    waitFor: (predicate, timeoutMs = 10_000) =>
      eventually(() => exporter.getFinishedSpans().find(predicate), 'a matching span', timeoutMs, 20),
    async stop() {
      await provider.shutdown();
      context.disable();
      propagation.disable();
    },
  };
}
