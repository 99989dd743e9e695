// The sampler and the span batching, as the specification's OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG
// and OTEL_BSP_* variables set them. The SDK (from 3.x on) reads no environment of its own, so they are
// parsed here, once, and a bad value stops the process with one sentence like any other setting.
import { ConfigError, integer, oneOf } from '../config.js';

/** A sampler by its specification name: a decision for root spans, maybe deferring to a parent span's. */
export interface SamplerOptions {
  /** Follow the parent span's decision, and apply `root` only to spans without one. */
  parentBased: boolean;
  root: 'always_on' | 'always_off' | 'traceidratio';
  /** The share of traces `traceidratio` keeps, from 0 to 1 (1 for the other samplers, which ignore it). */
  ratio: number;
}

export interface BatchOptions {
  scheduledDelayMillis: number;
  exportTimeoutMillis: number;
  maxQueueSize: number;
  maxExportBatchSize: number;
}

export interface SdkOptions {
  sampler: SamplerOptions;
  batch: BatchOptions;
}

const SAMPLERS = [
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
  'always_on',
  'always_off',
  'traceidratio',
];

type Lookup = (name: string) => string | undefined;

export function sdkOptions(env: NodeJS.ProcessEnv = process.env): SdkOptions {
  const value: Lookup = (name) => env[name]?.trim() || undefined;
  return { sampler: samplerOptions(value), batch: batchOptions(value) };
}

function samplerOptions(value: Lookup): SamplerOptions {
  const name = oneOf(SAMPLERS)(
    value('OTEL_TRACES_SAMPLER')?.toLowerCase() ?? 'parentbased_always_on',
    'OTEL_TRACES_SAMPLER',
  );
  const root = name.replace(/^parentbased_/, '') as SamplerOptions['root'];
  // The argument is the ratio samplers' alone: the others ignore it, as the specification says.
  const arg = root === 'traceidratio' ? value('OTEL_TRACES_SAMPLER_ARG') : undefined;
  return { parentBased: name.startsWith('parentbased_'), root, ratio: arg === undefined ? 1 : ratio(arg) };
}

function ratio(raw: string): number {
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(raw) || Number(raw) > 1) {
    throw new ConfigError(
      `OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1 (the share of traces kept), got "${raw}".`,
    );
  }
  return Number(raw);
}

function batchOptions(value: Lookup): BatchOptions {
  // Each variable with the specification's default and the range taken.
  const whole = (env: string, fallback: number, min: number, max: number): number => {
    const raw = value(env);
    return raw === undefined ? fallback : integer(min, max)(raw, env);
  };
  const batch: BatchOptions = {
    scheduledDelayMillis: whole('OTEL_BSP_SCHEDULE_DELAY', 5_000, 0, 3_600_000),
    exportTimeoutMillis: whole('OTEL_BSP_EXPORT_TIMEOUT', 30_000, 1, 3_600_000),
    maxQueueSize: whole('OTEL_BSP_MAX_QUEUE_SIZE', 2_048, 1, 1_000_000),
    maxExportBatchSize: whole('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512, 1, 1_000_000),
  };
  // The SDK would quietly cut the batch down to the queue: a setting that cannot hold is a mistake to show.
  if (batch.maxExportBatchSize > batch.maxQueueSize) {
    throw new ConfigError(
      `OTEL_BSP_MAX_EXPORT_BATCH_SIZE must be at most OTEL_BSP_MAX_QUEUE_SIZE (${batch.maxQueueSize}), got "${batch.maxExportBatchSize}".`,
    );
  }
  return batch;
}
