// The OpenTelemetry SDK, switched on by the standard OTEL_* variables. Without them nothing but the
// no-op API is ever loaded: this module imports the SDK only once it knows it will export spans.
import { context, propagation, trace } from '@opentelemetry/api';
import { withTimeout } from '../async.js';
import { ConfigError, oneOf } from '../config.js';
import { sdkOptions, type SamplerOptions } from './sdkOptions.js';

export interface Tracing {
  /** True when spans are recorded and exported. */
  enabled: boolean;
  /** Flushes the spans still buffered (for at most a few seconds) and stops exporting; call it last on shutdown. */
  shutdown(): Promise<void>;
}

export type TracesExporter = 'otlp' | 'console' | 'none';
export type OtlpProtocol = 'http/protobuf' | 'http/json';

export interface TracingSettings {
  exporter: TracesExporter;
  protocol: OtlpProtocol;
}

const FLUSH_TIMEOUT_MS = 3_000;
const EXPORTERS: TracesExporter[] = ['otlp', 'console', 'none'];
const PROTOCOLS: OtlpProtocol[] = ['http/protobuf', 'http/json'];

/**
 * What the environment asks for. `OTEL_TRACES_EXPORTER` decides when set; otherwise an OTLP endpoint
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) switches OTLP on.
 * `OTEL_SDK_DISABLED=true` wins over both.
 */
export function tracingSettings(env: NodeJS.ProcessEnv = process.env): TracingSettings {
  const value = (name: string) => env[name]?.trim() || undefined;
  const protocolVariable = value('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL')
    ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = (value(protocolVariable) ?? 'http/protobuf') as OtlpProtocol;
  const requested = value('OTEL_TRACES_EXPORTER')?.toLowerCase();
  const endpoint = value('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? value('OTEL_EXPORTER_OTLP_ENDPOINT');
  const exporter = (requested ?? (endpoint ? 'otlp' : 'none')) as TracesExporter;

  if (value('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return { exporter: 'none', protocol };
  oneOf(EXPORTERS)(exporter, 'OTEL_TRACES_EXPORTER');
  if (exporter === 'otlp' && !PROTOCOLS.includes(protocol)) {
    throw new ConfigError(
      `${protocolVariable} must be one of ${PROTOCOLS.join(', ')} (gRPC is not bundled), got "${protocol}".`,
    );
  }
  return { exporter, protocol };
}

/**
 * Starts the SDK when the environment asks for it: a provider with batched export, the
 * AsyncLocalStorage context manager and the W3C propagators, all registered globally so that
 * `@opentelemetry/api` (used everywhere else) records real spans. `env` decides whether, and sets the
 * sampler and the batching (sdkOptions.ts); the exporter and the resource read their OTEL_* settings from
 * process.env.
 */
export async function startTracing(
  service: { name: string; version: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<Tracing> {
  const settings = tracingSettings(env);
  if (settings.exporter === 'none') return { enabled: false, shutdown: () => Promise.resolve() };
  const options = sdkOptions(env);

  const [sdk, { AsyncLocalStorageContextManager }, core, resources, semconv] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/core'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  const exporter =
    settings.exporter === 'console' ? new sdk.ConsoleSpanExporter() : await otlpExporter(settings.protocol);
  // OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME (the later detector wins) override the defaults.
  const resource = resources
    .defaultResource()
    .merge(
      resources.resourceFromAttributes({
        [semconv.ATTR_SERVICE_NAME]: service.name,
        [semconv.ATTR_SERVICE_VERSION]: service.version,
      }),
    )
    .merge(
      resources.detectResources({
        detectors: [resources.resourceAttributesEnvDetector, resources.serviceNameEnvDetector],
      }),
    );
  const provider = new sdk.TracerProvider({
    resource,
    sampler: sampler(sdk, options.sampler),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter, ...options.batch })],
  });
  // What NodeTracerProvider.register() did up to SDK 2: SDK 3's provider registers nothing itself.
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new core.CompositePropagator({
      propagators: [new core.W3CTraceContextPropagator(), new core.W3CBaggagePropagator()],
    }),
  );
  // Spans are best effort: a collector that is away must neither hold up nor fail the shutdown.
  return {
    enabled: true,
    shutdown: () => withTimeout(provider.shutdown(), FLUSH_TIMEOUT_MS, 'Flushing spans').catch(() => undefined),
  };
}

function sampler(sdk: typeof import('@opentelemetry/sdk-trace'), options: SamplerOptions) {
  const root =
    options.root === 'always_on'
      ? new sdk.AlwaysOnSampler()
      : options.root === 'always_off'
        ? new sdk.AlwaysOffSampler()
        : new sdk.TraceIdRatioBasedSampler(options.ratio);
  return options.parentBased ? new sdk.ParentBasedSampler({ root }) : root;
}

async function otlpExporter(protocol: OtlpProtocol) {
  // Endpoint, headers, timeout and compression come from the OTEL_EXPORTER_OTLP_* variables.
  if (protocol === 'http/json')
    return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter();
  return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();
}
