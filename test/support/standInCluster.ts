// A stand-in for a Kubernetes cluster, just enough for the real `helm install`, `helm uninstall` and
// `helm template --dry-run=server` (whose `lookup` finds the Secrets it was given) to run against: discovery of the kinds the chart renders, objects kept in memory (Helm's release records included),
// lists by label and by name, watches, deletion that cascades to a Job's pods when asked as the API server does,
// and a job controller whose every Job fails after its one pod failed (a migration that cannot reach its
// database), except a Job with `completions: 0`, complete at once without a pod as the real controller makes it.
// Helm keeps its release records in Secrets through client-go's typed client, which sends them as protobuf: the
// stand-in reads the little of that it needs (name, labels, data, type) and answers in JSON, which client-go takes.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { layerBinary } from '../../scripts/helm.js';

interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: Array<{ uid: string }>;
  };
  spec?: { completions?: number };
  status?: unknown;
  data?: Record<string, string>;
  type?: string;
}

export interface StandInCluster {
  /** Runs helm against the cluster; resolves with its exit code and output, whether it succeeded or not. */
  helm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** What the cluster holds now, as `Kind/name`, Helm's release records included. */
  objects(): string[];
  close(): Promise<void>;
}

/** The kinds the chart renders, by group version: Helm maps every object of a release through discovery. */
const RESOURCES: Record<string, Array<[resource: string, kind: string]>> = {
  v1: [
    ['secrets', 'Secret'],
    ['configmaps', 'ConfigMap'],
    ['services', 'Service'],
    ['serviceaccounts', 'ServiceAccount'],
    ['persistentvolumeclaims', 'PersistentVolumeClaim'],
    ['pods', 'Pod'],
  ],
  'apps/v1': [['deployments', 'Deployment']],
  'batch/v1': [['jobs', 'Job']],
  'autoscaling/v2': [['horizontalpodautoscalers', 'HorizontalPodAutoscaler']],
  'policy/v1': [['poddisruptionbudgets', 'PodDisruptionBudget']],
  'networking.k8s.io/v1': [
    ['networkpolicies', 'NetworkPolicy'],
    ['ingresses', 'Ingress'],
  ],
  'rbac.authorization.k8s.io/v1': [
    ['roles', 'Role'],
    ['rolebindings', 'RoleBinding'],
  ],
  'gateway.networking.k8s.io/v1': [['httproutes', 'HTTPRoute']],
  'keda.sh/v1alpha1': [
    ['scaledobjects', 'ScaledObject'],
    ['triggerauthentications', 'TriggerAuthentication'],
  ],
  'monitoring.coreos.com/v1': [
    ['servicemonitors', 'ServiceMonitor'],
    ['prometheusrules', 'PrometheusRule'],
  ],
};
const groupVersions = Object.keys(RESOURCES);
const kindOf = (groupVersion: string, resource: string) =>
  RESOURCES[groupVersion]?.find(([name]) => name === resource)?.[1];

const status = (code: number, reason: string, message: string) => ({
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  reason,
  message,
  code,
});

/** Whether an object matches a selector of `key=value` terms (all the selectors Helm sends). */
const matches = (object: StoredObject, selector: string | null, field: string | null) =>
  (selector ?? '')
    .split(',')
    .filter(Boolean)
    .every((term) => {
      const [key, value] = term.split('=') as [string, string];
      return object.metadata.labels?.[key] === value;
    }) &&
  (!field || field === `metadata.name=${object.metadata.name}`);

/** The fields of a protobuf message, in order: varints as numbers, length-delimited values as their bytes. */
function protobufFields(message: Buffer): Array<[field: number, value: number | Buffer]> {
  const fields: Array<[number, number | Buffer]> = [];
  let at = 0;
  const varint = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = message[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  while (at < message.length) {
    const key = varint();
    const [field, wireType] = [Math.floor(key / 8), key % 8];
    if (wireType === 0) fields.push([field, varint()]);
    else if (wireType === 2) {
      const length = varint();
      fields.push([field, message.subarray(at, (at += length))]);
    } else at += wireType === 1 ? 8 : 4;
  }
  return fields;
}

/** A Secret as client-go's typed client sends it: k8s.io's `k8s\0` envelope (raw: field 2) around a v1 Secret. */
function secretFromProtobuf(body: Buffer): StoredObject {
  const bytes = (fields: Array<[number, number | Buffer]>, field: number) =>
    (fields.find(([number]) => number === field)?.[1] as Buffer | undefined) ?? Buffer.alloc(0);
  /** A map entry: key (1) and value (2). */
  const entry = (value: number | Buffer) => {
    const fields = protobufFields(value as Buffer);
    return [bytes(fields, 1).toString(), bytes(fields, 2)] as const;
  };
  const secret: StoredObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: '' } };
  for (const [field, value] of protobufFields(bytes(protobufFields(body.subarray(4)), 2))) {
    if (field === 1) {
      for (const [metadataField, metadataValue] of protobufFields(value as Buffer)) {
        if (metadataField === 1) secret.metadata.name = (metadataValue as Buffer).toString();
        if (metadataField === 11) {
          const [key, label] = entry(metadataValue);
          (secret.metadata.labels ??= {})[key] = label.toString();
        }
      }
    }
    if (field === 2) {
      const [key, data] = entry(value);
      (secret.data ??= {})[key] = data.toString('base64');
    }
    if (field === 3) secret.type = (value as Buffer).toString();
  }
  return secret;
}

/** Starts a stand-in cluster holding these Secrets (name: key: value) in the namespace `files`. */
export async function startStandInCluster(
  secrets: Record<string, Record<string, string>> = {},
): Promise<StandInCluster> {
  /** Objects by `groupVersion/resource/namespace/name`. */
  const store = new Map<string, StoredObject>();
  let revision = 0;
  const keyOf = (groupVersion: string, resource: string, namespace: string, name: string) =>
    `${groupVersion}/${resource}/${namespace}/${name}`;

  const save = (groupVersion: string, resource: string, namespace: string, object: StoredObject) => {
    object.metadata.namespace = namespace;
    object.metadata.uid ??= randomUUID();
    object.metadata.resourceVersion = String(++revision);
    store.set(keyOf(groupVersion, resource, namespace, object.metadata.name), object);
  };
  for (const [name, data] of Object.entries(secrets)) {
    const encoded = Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')] as const);
    save('v1', 'secrets', 'files', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name },
      data: Object.fromEntries(encoded),
    });
  }

  /** The job controller: one failed pod and a failed Job, or complete at once when there is nothing to complete. */
  const runJob = (namespace: string, job: StoredObject) => {
    if (job.spec?.completions === 0) {
      job.status = { succeeded: 0, conditions: [{ type: 'Complete', status: 'True' }] };
      return;
    }
    const pod: StoredObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${job.metadata.name}-${randomUUID().slice(0, 5)}`,
        labels: { 'job-name': job.metadata.name },
        ownerReferences: [{ uid: job.metadata.uid! }],
      },
      status: { phase: 'Failed' },
    };
    save('v1', 'pods', namespace, pod);
    job.status = { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }] };
  };

  /** Deletes an object, and with Background or Foreground propagation what it owns (Jobs orphan by default). */
  const remove = (key: string, propagation: string | undefined) => {
    const object = store.get(key)!;
    store.delete(key);
    if (propagation !== 'Background' && propagation !== 'Foreground') return;
    for (const [other, dependent] of store) {
      if (dependent.metadata.ownerReferences?.some((owner) => owner.uid === object.metadata.uid))
        remove(other, propagation);
    }
  };

  const handle = (method: string, url: URL, body: StoredObject | undefined): [number, unknown] => {
    const { pathname, searchParams } = url;
    if (pathname === '/version')
      return [200, { major: '1', minor: '32', gitVersion: 'v1.32.0', platform: 'linux/amd64' }];
    // Helm validates hooks against the OpenAPI schema: an empty one (a valid, empty protobuf document) knows no
    // kind, and so lets every object through (the chart tests check each against its schema themselves).
    if (pathname === '/openapi/v2') return [200, Buffer.alloc(0)];
    if (pathname === '/api') return [200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] }];
    if (pathname === '/apis') {
      const groups = groupVersions
        .filter((groupVersion) => groupVersion.includes('/'))
        .map((groupVersion) => {
          const [name, version] = groupVersion.split('/') as [string, string];
          const preferred = { groupVersion, version };
          return { name, versions: [preferred], preferredVersion: preferred };
        });
      return [200, { kind: 'APIGroupList', apiVersion: 'v1', groups }];
    }
    const discovery = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))$/.exec(pathname);
    if (discovery) {
      const groupVersion = (discovery[1] ?? discovery[2])!;
      const resources = (RESOURCES[groupVersion] ?? []).map(([name, kind]) => ({
        name,
        singularName: kind.toLowerCase(),
        namespaced: true,
        kind,
        verbs: ['create', 'delete', 'get', 'list', 'update', 'watch'],
      }));
      return [200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion, resources }];
    }
    const route = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(pathname);
    const groupVersion = route && (route[1] ?? route[2])!;
    const kind = route && kindOf(groupVersion!, route[4]!);
    if (!route || !kind) return [404, status(404, 'NotFound', `no route for ${method} ${pathname}`)];
    const [, , , namespace, resource, name] = route as unknown as [string, string, string, string, string, string?];
    if (!name && method === 'GET') {
      // A watch (-1: a stream left open): the list said everything, and nothing changes by itself; the caller hangs up.
      if (searchParams.get('watch') === 'true') return [-1, undefined];
      const items = [...store.entries()]
        .filter(([key]) => key.startsWith(`${groupVersion}/${resource}/${namespace}/`))
        .map(([, object]) => object)
        .filter((object) => matches(object, searchParams.get('labelSelector'), searchParams.get('fieldSelector')));
      return [
        200,
        { kind: `${kind}List`, apiVersion: groupVersion, metadata: { resourceVersion: String(revision) }, items },
      ];
    }
    if (!name && method === 'POST') {
      const key = keyOf(groupVersion!, resource, namespace, body!.metadata.name);
      if (store.has(key))
        return [409, status(409, 'AlreadyExists', `${resource} "${body!.metadata.name}" already exists`)];
      save(groupVersion!, resource, namespace, body!);
      if (kind === 'Job') runJob(namespace, body!);
      return [201, body];
    }
    const key = keyOf(groupVersion!, resource, namespace, name ?? '');
    const found = store.get(key);
    if (!found) return [404, status(404, 'NotFound', `${resource} "${name}" not found`)];
    if (method === 'GET') return [200, found];
    if (method === 'PUT') {
      save(groupVersion!, resource, namespace, body!);
      return [200, body];
    }
    if (method === 'DELETE') {
      remove(key, (body as { propagationPolicy?: string } | undefined)?.propagationPolicy);
      return [200, found];
    }
    return [405, status(405, 'MethodNotAllowed', `${method} ${pathname}`)];
  };

  const watches = new Set<http.ServerResponse>();
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const raw = Buffer.concat(chunks);
      const url = new URL(request.url!, 'http://stand-in');
      // Protobuf comes only from the typed client: Helm's release records, and options of their deletion.
      const protobuf = request.headers['content-type']?.includes('protobuf');
      const body = !raw.length
        ? undefined
        : !protobuf
          ? (JSON.parse(raw.toString()) as StoredObject)
          : /\/secrets(\/|$)/.test(url.pathname) && request.method !== 'DELETE'
            ? secretFromProtobuf(raw)
            : undefined;
      const [code, answer] = handle(request.method!, url, body);
      if (code === -1) {
        watches.add(response);
        response.on('close', () => watches.delete(response));
        response.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
        response.flushHeaders();
        return;
      }
      if (Buffer.isBuffer(answer)) response.writeHead(code).end(answer);
      else response.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  // Helm's home, caches and the kubeconfig stay in a directory of the test's own.
  const home = mkdtempSync(path.join(os.tmpdir(), 'fp-stand-in-'));
  const kubeconfig = path.join(home, 'kubeconfig');
  const cluster = { server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'stand-in', cluster }],
      users: [{ name: 'stand-in', user: {} }],
      contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'stand-in' } }],
      'current-context': 'stand-in',
    }),
  );
  const env = { PATH: process.env.PATH, HOME: home, KUBECONFIG: kubeconfig, HELM_CACHE_HOME: path.join(home, 'cache') };

  return {
    helm: (args) =>
      new Promise((resolve) => {
        execFile(layerBinary('helm'), args, { env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      }),
    objects: () => [...store.values()].map((object) => `${object.kind}/${object.metadata.name}`).sort(),
    async close() {
      for (const watch of watches) watch.end();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      rmSync(home, { recursive: true, force: true });
    },
  };
}
