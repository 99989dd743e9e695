// What one sample reads: Deployments, the KEDA ScaledObject and its HPA from the Kubernetes API, and the
// queue's lists straight from Redis (the numbers KEDA itself scales on).
import {
  ApiException,
  AppsV1Api,
  AutoscalingV2Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Deployment,
  type V2MetricSpec,
  type V2MetricStatus,
} from '@kubernetes/client-node';
import type { Redis } from 'ioredis';
import { queueKey, type QueueCounts } from '../../core/queue/index.js';
import type { WatchOptions } from './options.js';

export interface DeploymentSample {
  /** The Deployments read (a selector may match more than one; their replicas add up). */
  names: string[];
  /** Replicas asked for (`spec.replicas`, what the HPA sets). */
  replicas: number;
  ready: number;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface ScaledObjectSample {
  name: string;
  ready: ConditionStatus;
  active: ConditionStatus;
  externalMetricNames: string[];
  hpaName: string | null;
}

export interface HpaSample {
  name: string;
  current: number | null;
  desired: number | null;
  /** Each metric as `name=current/target`. */
  metrics: string[];
}

/** What to read in the cluster: the watch's options, with the namespace settled. */
export type ClusterTargets = Pick<
  WatchOptions,
  'apiSelector' | 'workerSelector' | 'apiDeployment' | 'workerDeployment' | 'scaledObject'
> & { namespace: string };

/** The parts of a keda.sh/v1alpha1 ScaledObject that scale-watch reads. */
interface ScaledObjectResource {
  metadata?: { name?: string };
  spec?: { scaleTargetRef?: { name?: string; kind?: string } };
  status?: {
    conditions?: Array<{ type?: string; status?: string }>;
    externalMetricNames?: string[];
    hpaName?: string;
  };
}

const KEDA = { group: 'keda.sh', version: 'v1alpha1', plural: 'scaledobjects' };

export class ClusterSource {
  private readonly apps: AppsV1Api;
  private readonly autoscaling: AutoscalingV2Api;
  private readonly customObjects: CustomObjectsApi;

  constructor(
    kubeConfig: KubeConfig,
    private readonly targets: ClusterTargets,
  ) {
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.autoscaling = kubeConfig.makeApiClient(AutoscalingV2Api);
    this.customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async deployments(component: 'api' | 'worker'): Promise<DeploymentSample> {
    const namespace = this.targets.namespace;
    const name = component === 'api' ? this.targets.apiDeployment : this.targets.workerDeployment;
    let items: V1Deployment[];
    if (name !== undefined) {
      items = [await this.apps.readNamespacedDeployment({ name, namespace })];
    } else {
      const labelSelector = component === 'api' ? this.targets.apiSelector : this.targets.workerSelector;
      items = (await this.apps.listNamespacedDeployment({ namespace, labelSelector })).items;
      if (items.length === 0) throw new Error(`no ${component} Deployment matches ${labelSelector} in ${namespace}`);
    }
    return {
      names: items.map((item) => item.metadata?.name ?? '?'),
      replicas: items.reduce((sum, item) => sum + (item.spec?.replicas ?? 1), 0),
      ready: items.reduce((sum, item) => sum + (item.status?.readyReplicas ?? 0), 0),
    };
  }

  /** The named ScaledObject, or the one that scales one of the worker Deployments. */
  async scaledObject(workerDeployments: string[]): Promise<ScaledObjectSample> {
    const namespace = this.targets.namespace;
    let resource: ScaledObjectResource | undefined;
    if (this.targets.scaledObject !== undefined) {
      resource = (await this.customObjects.getNamespacedCustomObject({
        ...KEDA,
        namespace,
        name: this.targets.scaledObject,
      })) as ScaledObjectResource;
    } else {
      const list = (await this.customObjects.listNamespacedCustomObject({ ...KEDA, namespace })) as {
        items?: ScaledObjectResource[];
      };
      resource = (list.items ?? []).find((item) => {
        const target = item.spec?.scaleTargetRef;
        return (target?.kind ?? 'Deployment') === 'Deployment' && workerDeployments.includes(target?.name ?? '');
      });
      if (!resource)
        throw new Error(
          `no ScaledObject in ${namespace} targets ${workerDeployments.join(', ') || 'the worker Deployment'}`,
        );
    }
    const condition = (type: string): ConditionStatus => {
      const status = resource?.status?.conditions?.find((c) => c.type === type)?.status;
      return status === 'True' || status === 'False' ? status : 'Unknown';
    };
    return {
      name: resource.metadata?.name ?? '?',
      ready: condition('Ready'),
      active: condition('Active'),
      externalMetricNames: resource.status?.externalMetricNames ?? [],
      hpaName: resource.status?.hpaName ?? null,
    };
  }

  async hpa(name: string): Promise<HpaSample> {
    const hpa = await this.autoscaling.readNamespacedHorizontalPodAutoscaler({
      name,
      namespace: this.targets.namespace,
    });
    const targets = new Map((hpa.spec?.metrics ?? []).map((spec) => [metricName(spec), metricValue(spec, 'target')]));
    const currents = (hpa.status?.currentMetrics ?? []).map(
      (status) => [metricName(status), metricValue(status, 'current')] as const,
    );
    return {
      name,
      current: hpa.status?.currentReplicas ?? null,
      desired: hpa.status?.desiredReplicas ?? null,
      metrics: currents.map(([metric, current]) => `${metric}=${current}/${targets.get(metric) ?? '?'}`),
    };
  }
}

type Metric = V2MetricSpec | V2MetricStatus;

function metricName(metric: Metric): string {
  switch (metric.type) {
    case 'External':
      return metric.external?.metric.name ?? 'external';
    case 'Resource':
      return metric.resource?.name ?? 'resource';
    case 'ContainerResource':
      return metric.containerResource?.name ?? 'container-resource';
    case 'Pods':
      return metric.pods?.metric.name ?? 'pods';
    case 'Object':
      return metric.object?.metric.name ?? 'object';
    default:
      return metric.type;
  }
}

type Quantity = { averageValue?: string; value?: string; averageUtilization?: number };

/** A target or a current value, whichever form (average value, value, utilization) it takes. */
function quantity(value: Quantity | undefined): string {
  if (!value) return '?';
  if (value.averageValue !== undefined) return String(value.averageValue);
  if (value.value !== undefined) return String(value.value);
  if (value.averageUtilization !== undefined) return `${value.averageUtilization}%`;
  return '?';
}

/** A spec's `target` or a status's `current`, from the source its metric type fills in. */
function metricValue(metric: Metric, field: 'target' | 'current'): string {
  const source: Partial<Record<typeof field, Quantity>> | undefined =
    metric.external ?? metric.resource ?? metric.containerResource ?? metric.pods ?? metric.object;
  return quantity(source?.[field]);
}

/** Queue depth in one round trip: the lists KEDA reads, and the retries waiting in the delayed set. */
export async function queueDepth(redis: Redis, prefix: string, name: string): Promise<QueueCounts> {
  const results = await redis
    .pipeline()
    .llen(queueKey(prefix, name, 'waiting'))
    .llen(queueKey(prefix, name, 'active'))
    .zcard(queueKey(prefix, name, 'delayed'))
    .exec();
  const counts = (results ?? []).map(([err, value]) => {
    if (err) throw err;
    return Number(value);
  });
  return { waiting: counts[0] ?? 0, active: counts[1] ?? 0, delayed: counts[2] ?? 0 };
}

/** One short line for the CSV's errors column: the HTTP status of a Kubernetes answer, or the message. */
export function describeError(what: string, err: unknown): string {
  if (err instanceof ApiException) return `${what}: HTTP ${err.code}`;
  const message = err instanceof Error ? err.message : String(err);
  return `${what}: ${message.split('\n')[0]}`;
}
