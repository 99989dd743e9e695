// Spans of the queue, by the OpenTelemetry messaging conventions: a producer span around each enqueue
// whose W3C trace context travels in the job data, and a consumer span around each run, child of and
// linked to it. With tracing off these are calls into the no-op API and the job carries nothing.
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions';

const TRACER_NAME = 'file-processor';

/** The global tracer: the no-op one until the SDK registers a provider (see tracing.ts). */
export const defaultTracer = (): Tracer => trace.getTracer(TRACER_NAME);

/** The active span's W3C `traceparent`, or null while tracing is off. */
export function activeTraceParent(): string | null {
  const carrier: TraceCarrier = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ?? null;
}

/** W3C trace context headers (`traceparent`, `tracestate`), as carried in a job. */
export type TraceCarrier = Record<string, string>;

// Messaging conventions are still incubating, so their names are copied here rather than imported.
const ATTR_MESSAGING_SYSTEM = 'messaging.system';
const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
const ATTR_MESSAGING_MESSAGE_ID = 'messaging.message.id';
const MESSAGING_SYSTEM = 'bee-queue';

const messagingAttributes = (queue: string, operation: 'send' | 'process', messageId: string): Attributes => ({
  [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM,
  [ATTR_MESSAGING_DESTINATION_NAME]: queue,
  [ATTR_MESSAGING_OPERATION_TYPE]: operation,
  [ATTR_MESSAGING_OPERATION_NAME]: operation,
  [ATTR_MESSAGING_MESSAGE_ID]: messageId,
});

/**
 * Runs `send` in a producer span (a child of the active one, e.g. the request's) and hands it the
 * trace context to put in the message: undefined while tracing is off.
 */
export function traceSend<T>(
  tracer: Tracer,
  queue: string,
  messageId: string,
  send: (carrier: TraceCarrier | undefined) => Promise<T>,
): Promise<T> {
  const options = { kind: SpanKind.PRODUCER, attributes: messagingAttributes(queue, 'send', messageId) };
  return tracer.startActiveSpan(`send ${queue}`, options, (span) =>
    endAfter(span, () => {
      const carrier: TraceCarrier = {};
      propagation.inject(context.active(), carrier);
      return send(Object.keys(carrier).length > 0 ? carrier : undefined);
    }),
  );
}

/** Runs `process` in a consumer span, child of the producer span whose context the message carried, and linked to it. */
export function traceProcess<T>(
  tracer: Tracer,
  queue: string,
  messageId: string,
  carrier: TraceCarrier | undefined,
  process: () => Promise<T>,
): Promise<T> {
  const parent = carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
  const producer = trace.getSpanContext(parent);
  const options = {
    kind: SpanKind.CONSUMER,
    attributes: messagingAttributes(queue, 'process', messageId),
    links: producer ? [{ context: producer }] : [],
  };
  return tracer.startActiveSpan(`process ${queue}`, options, parent, (span) => endAfter(span, process));
}

/** Ends the span when `work` settles, recording a thrown error on it. */
async function endAfter<T>(span: Span, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** Marks the span failed with the error's type and message (and its stack as an exception event). */
function recordError(span: Span, err: unknown): void {
  const error = err instanceof Error ? err : new Error(String(err));
  span.recordException(error);
  span.setAttribute(ATTR_ERROR_TYPE, (error as NodeJS.ErrnoException).code ?? error.name);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}
