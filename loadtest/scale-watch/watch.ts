// The sampling loop: every interval, read every source (one failing source leaves its cells empty and
// the watch goes on), append a CSV row at once (a killed watch keeps what it saw), and draw the chart at the end.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Redis } from 'ioredis';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { withTimeout } from '../../core/async.js';
import { renderChart } from './chart.js';
import type { WatchOptions } from './options.js';
import type { QueueCounts } from '../../core/queue/index.js';
import {
  ClusterSource,
  describeError,
  queueDepth,
  type DeploymentSample,
  type HpaSample,
  type ScaledObjectSample,
} from './sources.js';

export interface Sample {
  time: Date;
  /** Seconds since the first sample. */
  elapsed: number;
  api: DeploymentSample | null;
  worker: DeploymentSample | null;
  scaledObject: ScaledObjectSample | null;
  hpa: HpaSample | null;
  queue: QueueCounts | null;
  errors: string[];
}

export interface WatchDeps {
  kubeConfig: KubeConfig;
  redis: Redis;
}

export interface WatchHooks {
  /** Called after each sample is written (the CLI prints it). */
  onSample?: (sample: Sample) => void | Promise<void>;
  /** Stops the watch after the sample in progress. */
  signal?: AbortSignal;
}

export interface WatchResult {
  csvPath: string;
  chartPath: string;
  samples: Sample[];
}

export type ResolvedWatchOptions = WatchOptions & { namespace: string };

const CSV_COLUMNS = [
  'time',
  'elapsed_s',
  'api_replicas',
  'api_ready',
  'worker_replicas',
  'worker_ready',
  'scaledobject',
  'scaledobject_ready',
  'scaledobject_active',
  'external_metrics',
  'hpa',
  'hpa_current',
  'hpa_desired',
  'hpa_metrics',
  'queue_waiting',
  'queue_active',
  'queue_delayed',
  'errors',
] as const;

export async function watch(
  options: ResolvedWatchOptions,
  deps: WatchDeps,
  hooks: WatchHooks = {},
): Promise<WatchResult> {
  await mkdir(options.outDir, { recursive: true });
  const csvPath = path.join(options.outDir, 'scale-watch.csv');
  const chartPath = path.join(options.outDir, 'scale-watch.svg');
  await writeFile(csvPath, `${CSV_COLUMNS.join(',')}\n`);
  const cluster = new ClusterSource(deps.kubeConfig, options);
  // A source that hangs must not stall the watch: it gets at most one interval (and never under 2 s).
  const timeoutMs = Math.max(options.intervalMs, 2_000);
  const samples: Sample[] = [];
  const started = Date.now();
  for (let index = 0; !hooks.signal?.aborted; index++) {
    const sample = await takeSample(cluster, deps.redis, options, timeoutMs, started);
    samples.push(sample);
    await appendFile(csvPath, `${csvRow(sample)}\n`);
    await hooks.onSample?.(sample);
    // Samples keep to a fixed grid from the start, however long each one took.
    const nextAt = started + (index + 1) * options.intervalMs;
    if (options.durationMs > 0 && nextAt - started > options.durationMs) break;
    await sleep(Math.max(0, nextAt - Date.now()), undefined, { signal: hooks.signal }).catch(() => undefined);
  }
  await writeFile(chartPath, chartOf(samples, options));
  return { csvPath, chartPath, samples };
}

async function takeSample(
  cluster: ClusterSource,
  redis: Redis,
  options: ResolvedWatchOptions,
  timeoutMs: number,
  started: number,
): Promise<Sample> {
  const time = new Date();
  const errors: string[] = [];
  const read = async <T>(what: string, work: () => Promise<T>): Promise<T | null> => {
    try {
      return await withTimeout(work(), timeoutMs, what);
    } catch (err) {
      errors.push(describeError(what, err));
      return null;
    }
  };
  const queue = read('queue', () => queueDepth(redis, options.queuePrefix, options.queueName));
  const [api, worker] = await Promise.all([
    read('api deployment', () => cluster.deployments('api')),
    read('worker deployment', () => cluster.deployments('worker')),
  ]);
  const scaledObject = await read('scaledobject', () => cluster.scaledObject(worker?.names ?? []));
  const hpaName = options.hpa ?? scaledObject?.hpaName ?? null;
  const hpa = hpaName === null ? null : await read('hpa', () => cluster.hpa(hpaName));
  return {
    time,
    elapsed: Math.max(0, (time.getTime() - started) / 1000),
    api,
    worker,
    scaledObject,
    hpa,
    queue: await queue,
    errors,
  };
}

/** A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180). */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvRow(sample: Sample): string {
  const condition = (status: string | undefined) =>
    status === undefined || status === 'Unknown' ? '' : status.toLowerCase();
  const row: Record<(typeof CSV_COLUMNS)[number], string | number | null | undefined> = {
    time: sample.time.toISOString(),
    elapsed_s: sample.elapsed.toFixed(3),
    api_replicas: sample.api?.replicas,
    api_ready: sample.api?.ready,
    worker_replicas: sample.worker?.replicas,
    worker_ready: sample.worker?.ready,
    scaledobject: sample.scaledObject?.name,
    scaledobject_ready: condition(sample.scaledObject?.ready),
    scaledobject_active: condition(sample.scaledObject?.active),
    external_metrics: sample.scaledObject?.externalMetricNames.join(';'),
    hpa: sample.hpa?.name,
    hpa_current: sample.hpa?.current,
    hpa_desired: sample.hpa?.desired,
    hpa_metrics: sample.hpa?.metrics.join(';'),
    queue_waiting: sample.queue?.waiting,
    queue_active: sample.queue?.active,
    queue_delayed: sample.queue?.delayed,
    errors: sample.errors.join('; '),
  };
  return CSV_COLUMNS.map((column) => csvField(row[column])).join(',');
}

/** Replicas above, queue depth below, and the spans when KEDA reported the worker scaler active shaded. */
function chartOf(
  samples: Sample[],
  options: Pick<ResolvedWatchOptions, 'namespace' | 'release' | 'queuePrefix' | 'queueName'>,
): string {
  const first = samples[0]?.time.toISOString() ?? 'no samples';
  const values = (pick: (sample: Sample) => number | null | undefined) => samples.map((sample) => pick(sample) ?? null);
  return renderChart({
    title: `scale-watch: ${options.release} in ${options.namespace}`,
    subtitle: `${samples.length} samples from ${first}; queue ${options.queuePrefix}:${options.queueName}`,
    x: samples.map((sample) => sample.elapsed),
    bands: { label: 'KEDA active', spans: activeSpans(samples) },
    panels: [
      {
        title: 'Replicas',
        series: [
          { name: 'API ready', color: '#1f77b4', values: values((s) => s.api?.ready) },
          { name: 'API wanted', color: '#1f77b4', dashed: true, values: values((s) => s.api?.replicas) },
          { name: 'worker ready', color: '#d62728', values: values((s) => s.worker?.ready) },
          { name: 'worker wanted', color: '#d62728', dashed: true, values: values((s) => s.worker?.replicas) },
          { name: 'HPA desired', color: '#9467bd', dashed: true, values: values((s) => s.hpa?.desired) },
        ],
      },
      {
        title: 'Queue depth (jobs)',
        series: [
          { name: 'waiting', color: '#ff7f0e', values: values((s) => s.queue?.waiting) },
          { name: 'active', color: '#2ca02c', values: values((s) => s.queue?.active) },
          { name: 'delayed', color: '#7f7f7f', values: values((s) => s.queue?.delayed) },
        ],
      },
    ],
  });
}

/** Spans of consecutive samples whose ScaledObject said Active=True. */
export function activeSpans(samples: Sample[]): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  let start: number | null = null;
  for (const sample of samples) {
    const active = sample.scaledObject?.active === 'True';
    if (active && start === null) start = sample.elapsed;
    if (!active && start !== null) {
      spans.push([start, sample.elapsed]);
      start = null;
    }
  }
  if (start !== null) spans.push([start, samples.at(-1)!.elapsed]);
  return spans;
}
