// Scale-in that spares busy workers: the worker annotates its own pod with
// controller.kubernetes.io/pod-deletion-cost, so when a ReplicaSet shrinks it deletes idle pods first.
// Only busy/idle transitions are sent, never one PATCH per job: going busy is sent at once (a busy pod
// must be protected before the next scale-in), going idle only after the worker stayed idle a while.
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { ConfigError, type Config } from '../core/config.js';
import type { Logger } from '../core/telemetry/logger.js';

export const POD_DELETION_COST_ANNOTATION = 'controller.kubernetes.io/pod-deletion-cost';
/** Pods without the annotation count as 0, so idle workers tie with new ones and busy ones rank above both. */
export const IDLE_COST = 0;
export const BUSY_COST = 1000;
const DEFAULT_IDLE_DELAY_MS = 10_000;

export interface PodDeletionCostOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  podName: string;
  logger: Logger;
  /** How long the worker must stay idle before its pod is marked cheap to delete. */
  idleDelayMs?: number;
}

export interface PodDeletionCost {
  /** Tells it whether the worker runs at least one job; call on every 0 <-> 1+ transition. */
  setBusy(busy: boolean): void;
  /** Cancels a pending idle mark and waits for the PATCH in flight. */
  close(): Promise<void>;
}

export function createPodDeletionCost(options: PodDeletionCostOptions): PodDeletionCost {
  const { namespace, podName, logger } = options;
  const api = options.kubeConfig.makeApiClient(CoreV1Api);
  const idleDelayMs = options.idleDelayMs ?? DEFAULT_IDLE_DELAY_MS;
  let sent: number | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  // PATCHes go one after another, so the last one the API server sees is the last state we chose.
  let inFlight: Promise<void> = Promise.resolve();

  const send = (cost: number) => {
    if (cost === sent) return;
    sent = cost;
    const body = { metadata: { annotations: { [POD_DELETION_COST_ANNOTATION]: String(cost) } } };
    inFlight = inFlight.then(async () => {
      try {
        await api.patchNamespacedPod(
          { name: podName, namespace, body },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      } catch (err) {
        // Losing the mark only makes scale-in less picky; the next transition tries again.
        sent = undefined;
        logger.warn(
          { err: { message: (err as Error).message }, pod: podName, cost },
          'could not set the pod deletion cost',
        );
      }
    });
  };

  return {
    setBusy(busy) {
      clearTimeout(idleTimer);
      idleTimer = undefined;
      if (busy) return send(BUSY_COST);
      idleTimer = setTimeout(() => send(IDLE_COST), idleDelayMs);
      idleTimer.unref();
    },
    async close() {
      clearTimeout(idleTimer);
      await inFlight;
    },
  };
}

/** The tracker POD_DELETION_COST asks for, with in-cluster (or KUBECONFIG) credentials; null when it is off. */
export function podDeletionCostFromConfig(
  config: Pick<Config, 'podDeletionCost' | 'podName' | 'podNamespace'>,
  logger: Logger,
): PodDeletionCost | null {
  if (!config.podDeletionCost) return null;
  if (!config.podName || !config.podNamespace) {
    throw new ConfigError(
      'POD_DELETION_COST=true needs POD_NAME and POD_NAMESPACE: set them from the downward API (metadata.name, metadata.namespace).',
    );
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  return createPodDeletionCost({ kubeConfig, namespace: config.podNamespace, podName: config.podName, logger });
}
