// Command-line options of scale-watch, validated once into a typed object; a bad value is one sentence.
import { parseArgs } from 'node:util';

export interface WatchOptions {
  /** Kubernetes namespace; undefined means the kubeconfig context's namespace (or `default`). */
  namespace: string | undefined;
  /** Helm release: the `app.kubernetes.io/instance` label of its objects. */
  release: string;
  /** Label selectors of the API and worker Deployments (the default: release and component labels). */
  apiSelector: string;
  workerSelector: string;
  /** Deployment names, when given, are read instead of the selectors. */
  apiDeployment: string | undefined;
  workerDeployment: string | undefined;
  /** ScaledObject name; undefined means the one whose scaleTargetRef is the worker Deployment. */
  scaledObject: string | undefined;
  /** HPA name; undefined means the ScaledObject's `status.hpaName`. */
  hpa: string | undefined;
  redisUrl: string;
  queuePrefix: string;
  queueName: string;
  intervalMs: number;
  /** 0 means until SIGINT or SIGTERM. */
  durationMs: number;
  outDir: string;
  /** Path of a kubeconfig file; undefined means KUBECONFIG, ~/.kube/config or the in-cluster account. */
  kubeconfig: string | undefined;
  context: string | undefined;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = `Usage: scale-watch [options]

Samples, every --interval seconds during a load test, the API and worker Deployments' replicas, the worker
ScaledObject (KEDA) and its HPA, and the queue depth in Redis; writes scale-watch.csv and scale-watch.svg.

  --namespace NS          namespace (default: the kubeconfig context's, else "default")
  --release NAME          Helm release name (default: file-processor)
  --api-selector SEL      label selector of the API Deployment
                          (default: app.kubernetes.io/instance=<release>,app.kubernetes.io/component=api)
  --worker-selector SEL   label selector of the worker Deployment (default: the same with component=worker)
  --api-deployment NAME   read this Deployment by name instead of the selector
  --worker-deployment NAME
  --scaled-object NAME    the worker ScaledObject (default: the one that targets the worker Deployment)
  --hpa NAME              the HPA (default: the ScaledObject's status.hpaName)
  --redis-url URL         Redis of the queue (default: $REDIS_URL or redis://127.0.0.1:6379)
  --queue-prefix PREFIX   queue key prefix (default: $QUEUE_PREFIX or bq)
  --queue-name NAME       queue name (default: $QUEUE_NAME or files)
  --interval SECONDS      time between samples (default: 5)
  --duration SECONDS      how long to watch; 0 watches until Ctrl-C (default: 0)
  --out DIR               where to write the CSV and the chart (default: scale-watch-<date>)
  --kubeconfig FILE       kubeconfig (default: $KUBECONFIG, ~/.kube/config, or the in-cluster account)
  --context NAME          kubeconfig context (default: the current one)
  --help                  print this
`;

/** The parsed options, or null when --help was asked for. */
export function parseWatchOptions(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  now = new Date(),
): WatchOptions | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        namespace: { type: 'string' },
        release: { type: 'string' },
        'api-selector': { type: 'string' },
        'worker-selector': { type: 'string' },
        'api-deployment': { type: 'string' },
        'worker-deployment': { type: 'string' },
        'scaled-object': { type: 'string' },
        hpa: { type: 'string' },
        'redis-url': { type: 'string' },
        'queue-prefix': { type: 'string' },
        'queue-name': { type: 'string' },
        interval: { type: 'string' },
        duration: { type: 'string' },
        out: { type: 'string' },
        kubeconfig: { type: 'string' },
        context: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message} (see --help).`);
  }
  if (values.help) return null;
  const release = values.release ?? 'file-processor';
  const selector = (component: string) =>
    `app.kubernetes.io/instance=${release},app.kubernetes.io/component=${component}`;
  const intervalS = seconds('--interval', values.interval, 5);
  if (intervalS <= 0) throw new UsageError('--interval must be a number of seconds above 0, e.g. --interval 5.');
  const stamp = now.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
  return {
    namespace: values.namespace,
    release,
    apiSelector: values['api-selector'] ?? selector('api'),
    workerSelector: values['worker-selector'] ?? selector('worker'),
    apiDeployment: values['api-deployment'],
    workerDeployment: values['worker-deployment'],
    scaledObject: values['scaled-object'],
    hpa: values.hpa,
    redisUrl: values['redis-url'] ?? env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    queuePrefix: values['queue-prefix'] ?? env.QUEUE_PREFIX ?? 'bq',
    queueName: values['queue-name'] ?? env.QUEUE_NAME ?? 'files',
    intervalMs: Math.round(intervalS * 1000),
    durationMs: Math.round(seconds('--duration', values.duration, 0) * 1000),
    outDir: values.out ?? `scale-watch-${stamp}`,
    kubeconfig: values.kubeconfig,
    context: values.context,
  };
}

function seconds(flag: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < 0)
    throw new UsageError(`${flag} must be a number of seconds (like 5 or 0.5), not "${raw}".`);
  return value;
}
