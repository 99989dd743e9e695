// scale-watch's command line: `node dist/loadtest/scale-watch/cli.js --namespace fp --interval 5`.
// Ctrl-C (or SIGTERM) ends the watch cleanly: the CSV is complete and the chart is drawn.
import { KubeConfig } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { pathToFileURL } from 'node:url';
import { parseWatchOptions, USAGE, UsageError } from './options.js';
import { watch, type Sample } from './watch.js';

export async function main(argv: string[], output: NodeJS.WritableStream = process.stdout): Promise<number> {
  let options;
  try {
    options = parseWatchOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`scale-watch: ${err.message}\n`);
    return 2;
  }
  if (options === null) {
    output.write(USAGE);
    return 0;
  }
  const kubeConfig = new KubeConfig();
  if (options.kubeconfig !== undefined) kubeConfig.loadFromFile(options.kubeconfig);
  else kubeConfig.loadFromDefault();
  if (options.context !== undefined) kubeConfig.setCurrentContext(options.context);
  const namespace =
    options.namespace ?? kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? 'default';
  const redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  // A Redis that goes away shows as errors in the queue columns, not as a crash.
  redis.on('error', () => undefined);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    output.write(
      `scale-watch: ${options.release} in ${namespace}, queue ${options.queuePrefix}:${options.queueName}, every ${options.intervalMs / 1000} s; writing ${options.outDir}/\n`,
    );
    const result = await watch(
      { ...options, namespace },
      { kubeConfig, redis },
      { signal: stop.signal, onSample: (sample) => void output.write(`${progressLine(sample)}\n`) },
    );
    output.write(`scale-watch: ${result.samples.length} samples in ${result.csvPath} and ${result.chartPath}\n`);
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    redis.disconnect();
  }
}

/** One line per sample, short enough to follow beside k6's own output. */
function progressLine(sample: Sample): string {
  const replicas = (d: Sample['api']) => (d ? `${d.ready}/${d.replicas}` : '?');
  const hpa = sample.hpa ? ` (hpa ${sample.hpa.current ?? '?'}->${sample.hpa.desired ?? '?'})` : '';
  const active = sample.scaledObject ? ` keda ${sample.scaledObject.active === 'True' ? 'active' : 'idle'}` : '';
  const queue = sample.queue
    ? `${sample.queue.waiting} waiting ${sample.queue.active} active ${sample.queue.delayed} delayed`
    : '?';
  const errors = sample.errors.length ? `  ! ${sample.errors.join('; ')}` : '';
  return `+${sample.elapsed.toFixed(0).padStart(4)}s  api ${replicas(sample.api)}  worker ${replicas(sample.worker)}${hpa}${active}  queue ${queue}${errors}`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
