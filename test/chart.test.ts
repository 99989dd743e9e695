import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { BlockList, isIPv6 } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { IContainer } from 'kubernetes-models/v1';
import { parse as parseYaml } from 'yaml';
import { loadConfig, SETTINGS } from '../core/config.js';
import { FILE_KINDS } from '../core/fileRecord.js';
import { FileQueue, queueKey } from '../core/queue/index.js';
import {
  CHART,
  helm,
  layerBinary,
  MANIFESTS,
  renderChart,
  REPOSITORY,
  setJsonFlags,
  VERSION,
} from '../scripts/helm.js';
import { TEST_ENV } from './support/env.js';
import {
  only,
  ofKind,
  parseObjects,
  podSpecOf,
  validateObject,
  type Kind,
  type KubeObject,
  type Rendered,
  type WithPodSpec,
} from './support/kubernetes.js';
import { entry } from './support/processes.js';
import { startStandInCluster } from './support/standInCluster.js';
import { inCI } from './support/tools.js';

// Several tests render the same values: helm renders each (values, flags) once. No test changes the objects it gets.
const rendered = new Map<string, KubeObject[]>();
const render = (values: Record<string, unknown> = {}, flags: string[] = []): KubeObject[] => {
  const key = JSON.stringify([values, flags]);
  let objects = rendered.get(key);
  if (!objects) rendered.set(key, (objects = parseObjects(renderChart(values, flags))));
  return objects;
};
const renderError = (values: Record<string, unknown>): string => {
  try {
    renderChart(values);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected helm template to fail');
};

/** The chart's NOTES.txt with these values: helm template leaves it out, so a copy of the chart renders it with tpl. */
function renderNotes(values: Record<string, unknown> = {}): string {
  const directory = mkdtempSync(path.join(os.tmpdir(), 'fp-notes-'));
  try {
    cpSync(CHART, directory, { recursive: true });
    cpSync(path.join(CHART, 'templates/NOTES.txt'), path.join(directory, 'notes.txt'));
    writeFileSync(
      path.join(directory, 'templates/notes.yaml'),
      'notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n',
    );
    const output = helm([
      'template',
      'file-processor',
      directory,
      ...setJsonFlags(values),
      '--show-only',
      'templates/notes.yaml',
    ]);
    return (parseYaml(output) as { notes: string }).notes;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/**
 * `helm template --dry-run=server` against a stand-in cluster that holds these Secrets of the namespace `files`,
 * so the chart's `lookup` finds them as on an upgrade (plain `helm template` looks up nothing).
 */
async function renderOnCluster(
  secrets: Record<string, Record<string, string>>,
  values: Record<string, unknown>,
): Promise<KubeObject[]> {
  const cluster = await startStandInCluster(secrets);
  try {
    const rendered = await cluster.helm([
      ...['template', 'file-processor', CHART, '-n', 'files', '--dry-run=server'],
      ...setJsonFlags(values),
    ]);
    if (rendered.code !== 0) throw new Error(`helm template failed: ${rendered.stderr}`);
    return parseObjects(rendered.stdout);
  } finally {
    await cluster.close();
  }
}

const EXISTING_SECRETS = {
  'database.existingSecret': 'prod-database',
  'redis.existingSecret': 'prod-redis',
  'redis.address': 'redis.prod.svc:6379',
  'redis.existingSecretPasswordKey': 'password',
  'apiTokens.existingSecret': 'prod-api-tokens',
};

/** values.yaml's example: images, PDFs and media in the pool "heavy", every other kind in "light". */
const TWO_POOLS = {
  'worker.pools': [
    {
      name: 'heavy',
      kinds: ['image', 'pdf', 'video', 'audio'],
      concurrency: 2,
      replicas: 1,
      resources: { requests: { cpu: '1', memory: '512Mi' }, limits: { memory: '768Mi' } },
      autoscaling: { keda: { maxReplicaCount: 10 }, hpa: { maxReplicas: 4 } },
    },
    { name: 'light', kinds: ['*'], concurrency: 8, autoscaling: { keda: { minReplicaCount: 2 } } },
  ],
};

/** The value sets an SRE is likely to use; every one must lint and render schema-valid objects. */
const VALUE_SETS: Record<string, { values?: Record<string, unknown>; valuesFile?: string }> = {
  'the defaults': {},
  'KEDA off, HPA fallback': { values: { 'worker.autoscaling.keda.enabled': false } },
  'no autoscaling at all': {
    values: {
      'worker.autoscaling.keda.enabled': false,
      'worker.autoscaling.hpa.enabled': false,
      'api.autoscaling.enabled': false,
    },
  },
  'an Ingress with TLS': { values: { 'ingress.enabled': true, 'ingress.tls.enabled': true } },
  'a Gateway API HTTPRoute': { values: { 'httpRoute.enabled': true } },
  'monitoring on': {
    values: {
      'metrics.serviceMonitor.enabled': true,
      'metrics.prometheusRule.enabled': true,
      'metrics.dashboard.enabled': true,
    },
  },
  'existing Secrets and claim': { values: { ...EXISTING_SECRETS, 'persistence.existingClaim': 'shared-blobs' } },
  'tokens and a Redis password in values': {
    values: { 'apiTokens.tokens': ['0123456789abcdef0123'], 'redis.url': 'rediss://:s3cret@redis.example:6380/2' },
  },
  'pod deletion cost and egress rules': {
    values: {
      'worker.podDeletionCost.enabled': true,
      'networkPolicy.egress.enabled': true,
      'networkPolicy.apiFrom': [
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
      ],
    },
  },
  'an S3 bucket, its keys in a Secret, egress rules on': {
    values: {
      'storage.type': 's3',
      'storage.s3.bucket': 'files',
      'storage.s3.endpoint': 'https://minio.example.com',
      'storage.s3.forcePathStyle': true,
      'storage.s3.existingSecret': 'minio-keys',
      'networkPolicy.egress.enabled': true,
    },
  },
  'an S3 bucket on AWS through the pod identity (IRSA)': {
    values: {
      'storage.type': 's3',
      'storage.s3.bucket': 'files',
      'storage.s3.region': 'eu-west-1',
      'serviceAccount.annotations': { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/files' },
    },
  },
  'k8s/dev/values.yaml (kind, minikube)': { valuesFile: 'k8s/dev/values.yaml' },
  'two worker pools, a Redis ACL user, monitoring on': {
    values: {
      ...TWO_POOLS,
      'redis.url': 'redis://worker:s3cret@redis.example:6379',
      'metrics.serviceMonitor.enabled': true,
      'worker.podDeletionCost.enabled': true,
      'networkPolicy.egress.enabled': true,
    },
  },
  'two worker pools, KEDA off': { values: { ...TWO_POOLS, 'worker.autoscaling.keda.enabled': false } },
  "malware scanning by the chart's clamd, two replicas, two pools, egress rules and monitoring on": {
    values: {
      ...TWO_POOLS,
      'scanning.clamav.enabled': true,
      'scanning.clamav.replicas': 2,
      'scanning.clamav.config': { MaxThreads: 20, StreamMaxLength: '200M' },
      'networkPolicy.egress.enabled': true,
      'metrics.prometheusRule.enabled': true,
    },
  },
  'malware scanning by an existing clamd, egress rules on': {
    values: { 'scanning.clamd.address': 'tcp://clamd.security.svc:3310', 'networkPolicy.egress.enabled': true },
  },
};

const flagsOf = ({ valuesFile }: { valuesFile?: string }) =>
  valuesFile ? ['--values', path.join(REPOSITORY, valuesFile)] : [];
const containerOf = (object: WithPodSpec): IContainer => podSpecOf(object).containers[0]!;
const envOf = (object: WithPodSpec) =>
  Object.fromEntries((containerOf(object).env ?? []).map((variable) => [variable.name, variable]));
const podTemplates = (objects: KubeObject[]) => ofKind(objects, 'Deployment', 'Job', 'Pod');
/** The objects an install makes: all but the hooks Helm runs at `helm uninstall`, which bear some of their names. */
const installed = (objects: KubeObject[]) =>
  objects.filter((object) => object.metadata.annotations?.['helm.sh/hook'] !== 'post-delete');

/** Whether a label selector selects pods with these labels. */
const selects = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);
const podLabelsOf = (deployment: Rendered<'Deployment'>) => deployment.spec!.template.metadata!.labels;

/** Whether a NetworkPolicy lets its pods open a TCP connection to this address and port. */
function reaches(policy: Rendered<'NetworkPolicy'>, address: string, port: number): boolean {
  if (!policy.spec?.policyTypes?.includes('Egress')) return true;
  const family = isIPv6(address) ? 'ipv6' : 'ipv4';
  const within = (cidr: string) => {
    const [network, prefix] = cidr.split('/') as [string, string];
    if ((isIPv6(network) ? 'ipv6' : 'ipv4') !== family) return false;
    const block = new BlockList();
    block.addSubnet(network, Number(prefix), family);
    return block.check(address, family);
  };
  return (policy.spec.egress ?? []).some(
    (rule) =>
      (!rule.ports || rule.ports.some((p) => p.port === port && (p.protocol ?? 'TCP') === 'TCP')) &&
      (!rule.to ||
        rule.to.some(
          ({ ipBlock }) => ipBlock && within(ipBlock.cidr) && !(ipBlock.except ?? []).some((except) => within(except)),
        )),
  );
}

/** Lets `consumer` take one job, runs `check` while that job runs, then lets the job end and closes the consumer. */
async function whileRunningOneJob(consumer: FileQueue, check: () => Promise<void>): Promise<void> {
  let release!: () => void;
  const running = new Promise<void>((resolve) => (release = resolve));
  let started!: () => void;
  const taken = new Promise<void>((resolve) => (started = resolve));
  try {
    await consumer.ready();
    consumer.consume(1, async () => {
      started();
      await running;
    });
    await taken;
    await check();
  } finally {
    release();
    await consumer.close(1_000);
  }
}

describe('the Helm chart (charts/file-processor)', function () {
  this.timeout(60_000);
  let defaults: KubeObject[];
  before(() => {
    layerBinary('helm');
    defaults = render();
  });

  describe('every value set', () => {
    for (const [name, set] of Object.entries(VALUE_SETS)) {
      it(`passes helm lint --strict and renders schema-valid objects: ${name}`, () => {
        expect(helm(['lint', '--strict', CHART, ...setJsonFlags(set.values), ...flagsOf(set)])).to.contain(
          '0 chart(s) failed',
        );
        const objects = render(set.values, flagsOf(set));
        expect(objects.length).to.be.above(10);
        for (const object of objects) validateObject(object);
      });
    }

    it('are checked by values.schema.json: bad settings fail before anything renders', () => {
      expect(renderError({ 'config.DATABASE_URL': 'postgres://x/y' })).to.match(/config\.DATABASE_URL/);
      expect(renderError({ 'config.MAX_UPLOAD_BYTES': 'lots' })).to.match(/config\.MAX_UPLOAD_BYTES/);
      expect(renderError({ 'redis.url': 'http://redis:6379' })).to.match(/redis\.url/);
      expect(renderError({ 'worker.autoscaling.keda.minReplicaCount': -1 })).to.match(/minReplicaCount/);
      expect(renderError({ 'ingress.enabled': true, 'httpRoute.enabled': true })).to.contain(
        'Enable either ingress or httpRoute, not both.',
      );
    });

    it('carries the version of package.json as its appVersion, the default image tag', () => {
      const chart = parseYaml(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as { appVersion: string };
      expect(chart.appVersion).to.equal(VERSION);
      expect(containerOf(only(defaults, 'Deployment', '-api')).image).to.equal(
        `ghcr.io/file-processor/file-processor-api:${VERSION}`,
      );
    });
  });

  describe('settings', () => {
    it('takes every setting of core/config.ts from values: in the ConfigMap, or set by the chart itself', () => {
      const everything = render({
        'worker.podDeletionCost.enabled': true,
        'apiTokens.tokens': ['0123456789abcdef0123'],
        // With scanning on, SCAN_* are the chart's too, from scanning.*.
        'scanning.clamd.address': 'tcp://clamd.example:3310',
      });
      const setByChart = new Set(
        ofKind(everything, 'Deployment').flatMap((deployment) => Object.keys(envOf(deployment))),
      );
      // Tokens never go in the ConfigMap: apiTokens puts them in a Secret mounted as the file API_TOKENS_FILE names.
      // worker.pools sets QUEUE_ROUTES on every pod and WORKER_QUEUES on each pool's, so all agree on the queues.
      const throughOtherValues = new Set(['API_TOKENS', 'QUEUE_ROUTES', 'WORKER_QUEUES']);
      const throughConfig = SETTINGS.filter(
        (setting) => !setByChart.has(setting.env) && !throughOtherValues.has(setting.env),
      );
      const config = Object.fromEntries(
        throughConfig.map((setting) => [
          `config.${setting.env}`,
          typeof setting.fallback === 'string' ? setting.fallback : setting.fallback('api'),
        ]),
      );
      const configMap = only(render(config), 'ConfigMap');
      for (const setting of throughConfig) expect(configMap.data, setting.env).to.have.property(setting.env);
      expect([...setByChart]).to.include.members([
        'DATABASE_URL',
        'REDIS_URL',
        'HOST',
        'PORT',
        'ADMIN_PORT',
        'STORAGE_DIR',
        'POD_NAME',
        'POD_NAMESPACE',
        'SCAN_CLAMD',
        'SCAN_UNSCANNABLE',
        'SCAN_TIMEOUT_MS',
      ]);
    });

    it('passes settings it does not know yet through to both processes', () => {
      const configMap = only(
        render({
          'config.MAX_BACKLOG': '5000',
          extraEnv: [{ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://otel:4318' }],
        }),
        'ConfigMap',
      );
      expect(configMap.data).to.include({ MAX_BACKLOG: '5000' });
      for (const deployment of ofKind(
        render({ extraEnv: [{ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://otel:4318' }] }),
        'Deployment',
      )) {
        expect(envOf(deployment).OTEL_EXPORTER_OTLP_ENDPOINT?.value).to.equal('http://otel:4318');
        expect(containerOf(deployment).envFrom).to.deep.equal([{ configMapRef: { name: configMap.metadata.name } }]);
      }
    });

    it('rolls the pods when the ConfigMap or the Secret changes', () => {
      const checksums = (objects: KubeObject[]) =>
        ofKind(objects, 'Deployment').map((d) => d.spec!.template.metadata!.annotations!);
      const before = checksums(defaults);
      const afterConfig = checksums(render({ 'config.LOG_LEVEL': 'debug' }));
      const afterSecret = checksums(render({ 'database.url': 'postgres://app:other@db:5432/files' }));
      before.forEach((annotations, n) => {
        expect(afterConfig[n]!['checksum/config']).not.to.equal(annotations['checksum/config']);
        expect(afterSecret[n]!['checksum/secret']).not.to.equal(annotations['checksum/secret']);
      });
    });

    it('keeps URLs and tokens in Secrets, and mounts the tokens as the file API_TOKENS_FILE names', () => {
      const objects = render({ 'apiTokens.tokens': ['0123456789abcdef0123', 'fedcba9876543210fedc'] });
      const secret = only(objects, 'Secret', 'file-processor');
      expect(secret.stringData).to.include({ 'api-tokens': '0123456789abcdef0123\nfedcba9876543210fedc' });
      const api = only(objects, 'Deployment', '-api');
      expect(envOf(api).DATABASE_URL!.valueFrom).to.deep.equal({
        secretKeyRef: { name: secret.metadata.name, key: 'database-url' },
      });
      expect(envOf(api).API_TOKENS_FILE!.value).to.equal('/var/run/secrets/file-processor/api-tokens');
      expect(containerOf(api).volumeMounts).to.deep.include({
        name: 'api-tokens',
        mountPath: '/var/run/secrets/file-processor',
        readOnly: true,
      });
      expect(podSpecOf(api).volumes).to.deep.include({
        name: 'api-tokens',
        secret: { secretName: secret.metadata.name, items: [{ key: 'api-tokens', path: 'api-tokens' }] },
      });
      expect(JSON.stringify(only(objects, 'ConfigMap'))).not.to.contain('0123456789abcdef0123');
    });

    it('reads existing Secrets and claim instead of making its own', () => {
      const objects = installed(render({ ...EXISTING_SECRETS, 'persistence.existingClaim': 'shared-blobs' }));
      expect(ofKind(objects, 'Secret').map((s) => s.metadata.name)).to.deep.equal([]);
      expect(ofKind(objects, 'PersistentVolumeClaim')).to.deep.equal([]);
      for (const deployment of ofKind(objects, 'Deployment')) {
        expect(envOf(deployment).DATABASE_URL!.valueFrom!.secretKeyRef).to.deep.equal({
          name: 'prod-database',
          key: 'database-url',
        });
        expect(envOf(deployment).REDIS_URL!.valueFrom!.secretKeyRef).to.deep.equal({
          name: 'prod-redis',
          key: 'redis-url',
        });
        expect(podSpecOf(deployment).volumes).to.deep.include({
          name: 'blobs',
          persistentVolumeClaim: { claimName: 'shared-blobs' },
        });
      }
      expect(containerOf(only(objects, 'Job')).env![0]!.valueFrom!.secretKeyRef).to.deep.equal({
        name: 'prod-database',
        key: 'database-url',
      });
      expect(only(objects, 'TriggerAuthentication').spec.secretTargetRef).to.deep.equal([
        { parameter: 'password', name: 'prod-redis', key: 'password' },
      ]);
    });
  });

  describe('API tokens', () => {
    const GENERATED = 'file-processor-api-token';

    for (const [route, values] of [
      ['an Ingress', { 'ingress.enabled': true }],
      ['an HTTPRoute', { 'httpRoute.enabled': true }],
    ] as const) {
      it(`generates a token for ${route} without tokens, and mounts it in the API and the helm test pod`, () => {
        const objects = render(values);
        const secret = only(objects, 'Secret', GENERATED);
        const token = Buffer.from(secret.data!['api-tokens']!, 'base64').toString();
        expect(token).to.match(/^[A-Za-z0-9]{40}$/);
        for (const pod of [only(objects, 'Deployment', '-api'), only(objects, 'Pod', '-smoke-test')]) {
          expect(envOf(pod).API_TOKENS_FILE!.value, pod.metadata.name).to.equal(
            '/var/run/secrets/file-processor/api-tokens',
          );
          expect(containerOf(pod).volumeMounts, pod.metadata.name).to.deep.include({
            name: 'api-tokens',
            mountPath: '/var/run/secrets/file-processor',
            readOnly: true,
          });
          expect(podSpecOf(pod).volumes, pod.metadata.name).to.deep.include({
            name: 'api-tokens',
            secret: { secretName: GENERATED, items: [{ key: 'api-tokens', path: 'api-tokens' }] },
          });
        }
        const notes = renderNotes(values);
        expect(notes).to.contain(
          `kubectl -n default get secret ${GENERATED} -o jsonpath='{.data.api-tokens}' | base64 -d`,
        );
        expect(notes).not.to.contain('WARNING: no apiTokens');
      });
    }

    it('publishes an open API only when apiTokens.allowAnonymous says so, and warns', () => {
      const values = { 'ingress.enabled': true, 'apiTokens.allowAnonymous': true };
      const objects = render(values);
      expect(ofKind(objects, 'Secret').map((secret) => secret.metadata.name)).not.to.include(GENERATED);
      expect(envOf(only(objects, 'Deployment', '-api'))).not.to.have.property('API_TOKENS_FILE');
      expect(renderNotes(values)).to.contain('WARNING: no apiTokens: anyone who reaches the API can upload');
    });

    it('generates nothing without a public route, or when the operator gave tokens', () => {
      for (const values of [
        {},
        { 'ingress.enabled': true, 'apiTokens.tokens': ['0123456789abcdef0123'] },
        { 'httpRoute.enabled': true, 'apiTokens.existingSecret': 'prod-api-tokens' },
      ]) {
        const objects = render(values);
        expect(
          ofKind(objects, 'Secret').map((secret) => secret.metadata.name),
          JSON.stringify(values),
        ).not.to.include(GENERATED);
      }
      const mounted = podSpecOf(
        only(render({ 'ingress.enabled': true, 'apiTokens.existingSecret': 'prod-api-tokens' }), 'Deployment', '-api'),
      ).volumes;
      expect(mounted).to.deep.include({
        name: 'api-tokens',
        secret: { secretName: 'prod-api-tokens', items: [{ key: 'api-tokens', path: 'api-tokens' }] },
      });
    });

    it('keeps the generated token across upgrades: reuses the one its Secret holds, makes one only when absent', async () => {
      const kept = 'kept0123456789abcdefghijklmnopqrstuvwxyz';
      const upgrade = await renderOnCluster({ [GENERATED]: { 'api-tokens': kept } }, { 'ingress.enabled': true });
      expect(only(upgrade, 'Secret', GENERATED).data).to.deep.equal({
        'api-tokens': Buffer.from(kept).toString('base64'),
      });
      const tokenOf = (objects: KubeObject[]) => only(objects, 'Secret', GENERATED).data!['api-tokens'];
      const [first, second] = await Promise.all(
        [1, 2].map(() => renderOnCluster({}, { 'ingress.enabled': true }).then(tokenOf)),
      );
      expect(first).not.to.equal(second);
      expect(Buffer.from(first!, 'base64').toString()).to.match(/^[A-Za-z0-9]{40}$/);
    });
  });

  describe('pods', () => {
    it('run non-root, read-only, without capabilities or privilege escalation, under RuntimeDefault seccomp', () => {
      const pods = podTemplates(
        render({ 'worker.podDeletionCost.enabled': true, 'apiTokens.tokens': ['0123456789abcdef0123'] }),
      );
      // Two Jobs: the migration's, and helm uninstall's, which runs no pod but whose template must pass all the same.
      expect(pods.map((p) => p.kind).sort()).to.deep.equal(['Deployment', 'Deployment', 'Job', 'Job', 'Pod']);
      for (const pod of pods) {
        const spec = podSpecOf(pod);
        expect(spec.securityContext, pod.metadata.name).to.include({ runAsNonRoot: true, runAsUser: 10001 });
        expect(spec.securityContext!.seccompProfile, pod.metadata.name).to.deep.equal({ type: 'RuntimeDefault' });
        for (const container of spec.containers) {
          expect(container.securityContext, pod.metadata.name).to.deep.equal({
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            capabilities: { drop: ['ALL'] },
          });
        }
      }
    });

    it('write only to the shared ReadWriteMany blob volume and an emptyDir /tmp', () => {
      const claim = only(defaults, 'PersistentVolumeClaim');
      expect(claim.spec!.accessModes).to.deep.equal(['ReadWriteMany']);
      expect(claim.metadata.annotations).to.include({ 'helm.sh/resource-policy': 'keep' });
      for (const deployment of ofKind(defaults, 'Deployment')) {
        expect(containerOf(deployment).volumeMounts).to.deep.equal([
          { name: 'blobs', mountPath: '/data' },
          { name: 'tmp', mountPath: '/tmp' },
        ]);
        expect(podSpecOf(deployment).volumes).to.deep.equal([
          { name: 'blobs', persistentVolumeClaim: { claimName: claim.metadata.name } },
          { name: 'tmp', emptyDir: {} },
        ]);
        expect(envOf(deployment).STORAGE_DIR!.value).to.equal('/data');
      }
    });

    it('with storage.type s3: no claim, no /data, the bucket settings, its keys from a Secret or the pod identity', () => {
      const bucket = {
        'storage.type': 's3',
        'storage.s3.bucket': 'files',
        'storage.s3.prefix': 'prod/',
        'storage.s3.endpoint': 'https://minio.example.com',
        'storage.s3.forcePathStyle': true,
      };
      const withKeys = render({ ...bucket, 'storage.s3.existingSecret': 'minio-keys' });
      expect(ofKind(withKeys, 'PersistentVolumeClaim')).to.deep.equal([]);
      for (const deployment of ofKind(withKeys, 'Deployment')) {
        expect(containerOf(deployment).volumeMounts).to.deep.equal([{ name: 'tmp', mountPath: '/tmp' }]);
        expect(podSpecOf(deployment).volumes).to.deep.equal([{ name: 'tmp', emptyDir: {} }]);
        const env = envOf(deployment);
        expect(env).to.not.have.property('STORAGE_DIR');
        expect(Object.fromEntries(Object.values(env).map((variable) => [variable.name, variable.value]))).to.include({
          BLOB_STORE: 's3',
          S3_BUCKET: 'files',
          S3_PREFIX: 'prod/',
          S3_ENDPOINT: 'https://minio.example.com',
          S3_REGION: 'us-east-1',
          S3_FORCE_PATH_STYLE: 'true',
        });
        expect(env.AWS_ACCESS_KEY_ID!.valueFrom).to.deep.equal({
          secretKeyRef: { name: 'minio-keys', key: 'access-key-id' },
        });
        expect(env.AWS_SECRET_ACCESS_KEY!.valueFrom).to.deep.equal({
          secretKeyRef: { name: 'minio-keys', key: 'secret-access-key' },
        });
      }
      // Without a Secret, the SDK's default chain finds the pod's identity (IRSA, workload identity).
      for (const deployment of ofKind(render(bucket), 'Deployment')) {
        expect(envOf(deployment)).to.not.have.any.keys('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY');
      }
      expect(renderError({ 'storage.type': 's3' })).to.match(/storage\.s3\.bucket/);
      expect(renderError({ 'storage.type': 'gcs' })).to.match(/storage\.type/);
    });

    it('probe /healthz (liveness) and /readyz (readiness) on the admin port each process listens on', () => {
      for (const [suffix, adminPort] of [
        ['-api', 9090],
        ['-worker', 9091],
      ] as const) {
        const deployment = only(defaults, 'Deployment', suffix);
        const container = containerOf(deployment);
        expect(container.livenessProbe!.httpGet).to.deep.equal({ path: '/healthz', port: 'admin' });
        expect(container.readinessProbe!.httpGet).to.deep.equal({ path: '/readyz', port: 'admin' });
        expect(container.ports).to.deep.include({ name: 'admin', containerPort: adminPort });
        expect(envOf(deployment).ADMIN_PORT!.value).to.equal(String(adminPort));
      }
    });

    it('give each process longer to stop than SHUTDOWN_TIMEOUT_MS (the API its pre-stop pause too)', () => {
      for (const shutdownMs of [25_000, 120_500]) {
        const objects = render({ 'config.SHUTDOWN_TIMEOUT_MS': String(shutdownMs) });
        const api = podSpecOf(only(objects, 'Deployment', '-api'));
        const worker = podSpecOf(only(objects, 'Deployment', '-worker'));
        const preStop = Number(api.containers[0]?.lifecycle?.preStop?.exec?.command?.[1]);
        // stopOnSignals gives the work SHUTDOWN_TIMEOUT_MS and itself one more second before exiting.
        expect(api.terminationGracePeriodSeconds! * 1000, 'api').to.be.above(preStop * 1000 + shutdownMs + 1_000);
        expect(worker.terminationGracePeriodSeconds! * 1000, 'worker').to.be.above(shutdownMs + 1_000);
      }
    });

    it('spread over nodes and zones, selecting their own pods', () => {
      const api = only(defaults, 'Deployment', '-api');
      const constraints = podSpecOf(api).topologySpreadConstraints!;
      expect(constraints.map((c) => c.topologyKey)).to.deep.equal([
        'kubernetes.io/hostname',
        'topology.kubernetes.io/zone',
      ]);
      expect(constraints[0]!.labelSelector!.matchLabels).to.deep.equal(api.spec!.selector.matchLabels);
    });

    it('have disruption budgets that never block a node drain', () => {
      for (const budget of ofKind(defaults, 'PodDisruptionBudget'))
        expect(budget.spec).to.include({ maxUnavailable: 1 }).and.not.have.property('minAvailable');
    });
  });

  describe('worker autoscaling', () => {
    it('scales the worker Deployment with KEDA on the waiting plus active lists, never below one pod', () => {
      const scaled = only(defaults, 'ScaledObject');
      const worker = only(defaults, 'Deployment', '-worker');
      expect(scaled.spec.scaleTargetRef).to.deep.equal({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        name: worker.metadata.name,
      });
      expect(worker.spec).not.to.have.property('replicas');
      expect(scaled.spec.minReplicaCount).to.be.at.least(1);
      const triggers = scaled.spec.triggers;
      expect(triggers.map((t) => [t.type, t.name, t.metadata.listName])).to.deep.equal([
        ['redis', 'waiting', queueKey('bq', 'files', 'waiting')],
        ['redis', 'active', queueKey('bq', 'files', 'active')],
      ]);
      expect(triggers[0]!.metadata.address).to.equal('file-processor-redis:6379');
      expect(scaled.spec.advanced?.scalingModifiers).to.include({
        formula: 'waiting + active',
        metricType: 'AverageValue',
        target: '4',
      });
      expect(ofKind(defaults, 'HorizontalPodAutoscaler').map((h) => h.spec.scaleTargetRef.name)).to.deep.equal([
        only(defaults, 'Deployment', '-api').metadata.name,
      ]);
    });

    it('reads the lists where bee-queue really keeps the jobs: waiting while queued, active while running', async () => {
      const prefix = `${TEST_ENV.queuePrefix}-keda`;
      const name = `chart-${randomBytes(3).toString('hex')}`;
      const [waitingList, activeList] = only(
        render({ 'config.QUEUE_PREFIX': prefix, 'config.QUEUE_NAME': name }),
        'ScaledObject',
      ).spec.triggers.map((t) => t.metadata.listName);
      const options = { redisUrl: TEST_ENV.redisUrl, prefix, name, retries: 0, backoffMs: 10 };
      const producer = new FileQueue({ ...options, role: 'producer' });
      const redis = new Redis(TEST_ENV.redisUrl);
      try {
        await producer.ready();
        await producer.enqueue('0193a9c2-5b7e-7c1d-9f3a-8d2e4b6a1c0f', 'text');
        expect([await redis.llen(waitingList!), await redis.llen(activeList!)]).to.deep.equal([1, 0]);
        await whileRunningOneJob(new FileQueue({ ...options, role: 'consumer' }), async () => {
          expect([await redis.llen(waitingList!), await redis.llen(activeList!)]).to.deep.equal([0, 1]);
        });
      } finally {
        await producer.close(1_000);
        redis.disconnect();
      }
    });

    it('authenticates KEDA to Redis with the password of the URL, kept in the Secret, and follows its database and TLS', () => {
      const objects = render({ 'redis.url': 'rediss://:s3cret@redis.example:6380/2' });
      const secret = only(objects, 'Secret', 'file-processor');
      expect(secret.stringData).to.include({
        'redis-url': 'rediss://:s3cret@redis.example:6380/2',
        'redis-password': 's3cret',
      });
      const auth = only(objects, 'TriggerAuthentication');
      expect(auth.spec.secretTargetRef).to.deep.equal([
        { parameter: 'password', name: secret.metadata.name, key: 'redis-password' },
      ]);
      for (const trigger of only(objects, 'ScaledObject').spec.triggers) {
        expect(trigger.authenticationRef).to.deep.equal({ name: auth.metadata.name });
        expect(trigger.metadata).to.include({ address: 'redis.example:6380', databaseIndex: '2', enableTLS: 'true' });
      }
      expect(ofKind(defaults, 'TriggerAuthentication'), 'no password, no TriggerAuthentication').to.deep.equal([]);
    });

    it('gives KEDA the ACL username of the URL, or of the existing Secret, along with the password', () => {
      const objects = render({ 'redis.url': 'redis://worker:s3cret@redis:6379' });
      const secret = only(objects, 'Secret', 'file-processor');
      expect(secret.stringData).to.include({ 'redis-username': 'worker', 'redis-password': 's3cret' });
      expect(only(objects, 'TriggerAuthentication').spec.secretTargetRef).to.deep.equal([
        { parameter: 'username', name: secret.metadata.name, key: 'redis-username' },
        { parameter: 'password', name: secret.metadata.name, key: 'redis-password' },
      ]);
      const existing = render({ ...EXISTING_SECRETS, 'redis.existingSecretUsernameKey': 'username' });
      expect(only(existing, 'TriggerAuthentication').spec.secretTargetRef).to.deep.equal([
        { parameter: 'username', name: 'prod-redis', key: 'username' },
        { parameter: 'password', name: 'prod-redis', key: 'password' },
      ]);
    });

    // A URL carries what it reserves percent-encoded ('@', '/', '%'...); the app decodes the userinfo, and takes
    // everything after its first ':' as the password, a raw ':' included. KEDA gets both alone, from the Secret.
    for (const [form, user, password, inUrl] of [
      ['an encoded username', 'files@eu', 's3cret', 's3cret'],
      ['an encoded password', 'files', 'p@ss/w:rd%', encodeURIComponent('p@ss/w:rd%')],
      ['a raw ":" in the password', 'files', 'pass:word', 'pass:word'],
    ] as const) {
      it(`gives KEDA the ACL user and password the app reads from redis.url, with ${form}: a real ACL user takes them`, async () => {
        const username = `fp-chart-${randomBytes(3).toString('hex')}-${user}`;
        const server = new URL(TEST_ENV.redisUrl);
        const url = `redis://${encodeURIComponent(username)}:${inUrl}@${server.host}`;
        const admin = new Redis(TEST_ENV.redisUrl);
        const clients: Redis[] = [];
        const whoami = async (client: Redis) => {
          clients.push(client);
          return client.call('ACL', 'WHOAMI');
        };
        try {
          // The user may do no more than connect and say who it is; the default user takes any password.
          await admin.call('ACL', 'SETUSER', username, 'on', `>${password}`, 'resetkeys', 'resetchannels', '-@all');
          await admin.call('ACL', 'SETUSER', username, '+ping', '+info', '+hello', '+client', '+acl|whoami');
          const objects = render({ 'redis.url': url });
          // What KEDA reads: the keys the TriggerAuthentication names, of the Secret it names.
          const secrets = ofKind(objects, 'Secret');
          const credentials = Object.fromEntries(
            only(objects, 'TriggerAuthentication').spec.secretTargetRef!.map(({ parameter, name, key }) => [
              parameter,
              secrets.find((secret) => secret.metadata.name === name)?.stringData?.[key],
            ]),
          );
          expect(credentials).to.deep.equal({ username, password });
          const keda = new Redis({ host: server.hostname, port: Number(server.port || 6379), ...credentials });
          expect(await whoami(keda), 'KEDA').to.equal(username);
          expect(await whoami(new Redis(url)), 'the app, from the URL').to.equal(username);
        } finally {
          await admin.call('ACL', 'DELUSER', username);
          for (const client of [admin, ...clients]) client.disconnect();
        }
      });
    }

    it('takes redis.password over the password of redis.url when it is given', () => {
      const url = 'redis://worker:p%40ss%2Fw0rd@redis:6379';
      const secret = only(render({ 'redis.url': url, 'redis.password': 'other' }), 'Secret', 'file-processor');
      expect(secret.stringData).to.include({ 'redis-url': url, 'redis-username': 'worker', 'redis-password': 'other' });
    });

    it('needs redis.address when the Redis URL is in an existing Secret, which the chart cannot read', () => {
      expect(renderError({ 'redis.existingSecret': 'prod-redis' })).to.contain(
        'redis.address (host:port) is needed for KEDA',
      );
    });

    it('falls back to an HPA on CPU for the workers when KEDA is off', () => {
      const objects = render({ 'worker.autoscaling.keda.enabled': false });
      expect(ofKind(objects, 'ScaledObject')).to.deep.equal([]);
      const hpa = only(objects, 'HorizontalPodAutoscaler', '-worker');
      expect(hpa.spec.scaleTargetRef.name).to.equal(only(objects, 'Deployment', '-worker').metadata.name);
      expect(hpa.spec.metrics?.[0]?.resource).to.deep.equal({
        name: 'cpu',
        target: { type: 'Utilization', averageUtilization: 70 },
      });
      const slower = render({
        'worker.autoscaling.keda.enabled': false,
        'worker.autoscaling.keda.scaleDownStabilizationSeconds': 900,
      });
      expect(only(slower, 'HorizontalPodAutoscaler', '-worker').spec.behavior?.scaleDown).to.deep.include({
        stabilizationWindowSeconds: 900,
      });
      const fixed = render({
        'worker.autoscaling.keda.enabled': false,
        'worker.autoscaling.hpa.enabled': false,
        'worker.replicas': 3,
      });
      expect(only(fixed, 'Deployment', '-worker').spec?.replicas).to.equal(3);
    });

    it('lets workers set their own pod deletion cost only when asked, with a Role that can only patch pods', () => {
      expect(podSpecOf(only(defaults, 'Deployment', '-worker')).automountServiceAccountToken).to.equal(false);
      const objects = render({ 'worker.podDeletionCost.enabled': true });
      expect(only(objects, 'Role').rules).to.deep.equal([{ apiGroups: [''], resources: ['pods'], verbs: ['patch'] }]);
      const worker = only(objects, 'Deployment', '-worker');
      const binding = only(objects, 'RoleBinding');
      expect(binding.subjects).to.deep.equal([
        { kind: 'ServiceAccount', name: podSpecOf(worker).serviceAccountName, namespace: 'default' },
      ]);
      expect(podSpecOf(worker).automountServiceAccountToken).to.equal(true);
      expect(envOf(worker)).to.deep.include({
        POD_DELETION_COST: { name: 'POD_DELETION_COST', value: 'true' },
        POD_NAME: { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        POD_NAMESPACE: { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      });
      expect(podSpecOf(only(objects, 'Deployment', '-api')).automountServiceAccountToken).to.equal(false);
    });
  });

  describe('worker pools', () => {
    const ROUTES = 'image,pdf,video,audio=heavy;*=light';
    const POOL_LABEL = 'file-processor.io/pool';
    /** What a process of this Deployment reads: the ConfigMap, then its own environment over it. */
    const settingsOf = (objects: KubeObject[], deployment: Rendered<'Deployment'>) => ({
      ...only(objects, 'ConfigMap').data,
      ...Object.fromEntries(Object.values(envOf(deployment)).map((variable) => [variable.name, variable.value])),
    });

    it('renders the single worker of before when worker.pools is empty: one queue, no routes, no pool label', () => {
      expect(ofKind(defaults, 'Deployment').map((d) => d.metadata.name)).to.deep.equal([
        'file-processor-api',
        'file-processor-worker',
      ]);
      for (const deployment of ofKind(defaults, 'Deployment')) {
        expect(envOf(deployment)).not.to.have.any.keys('QUEUE_ROUTES', 'WORKER_QUEUES');
        expect(deployment.spec!.template.metadata!.labels).not.to.have.property(POOL_LABEL);
        expect(loadConfig('worker', settingsOf(defaults, deployment)).workerQueues).to.deep.equal([
          { name: 'files', concurrency: 4 },
        ]);
      }
    });

    it('gives each pool a Deployment on its own queue, and the API and every worker the same QUEUE_ROUTES', () => {
      const objects = render(TWO_POOLS);
      const [api, heavy, light] = ofKind(objects, 'Deployment');
      expect([api, heavy, light].map((d) => d!.metadata.name)).to.deep.equal([
        'file-processor-api',
        'file-processor-worker-heavy',
        'file-processor-worker-light',
      ]);
      for (const deployment of [api!, heavy!, light!]) {
        expect(envOf(deployment).QUEUE_ROUTES!.value, deployment.metadata.name).to.equal(ROUTES);
        // What the processes make of it: every kind in the queue of its pool.
        const { queueRoutes } = loadConfig('api', settingsOf(objects, deployment));
        expect(Object.fromEntries(FILE_KINDS.map((kind) => [kind, queueRoutes.queueOf(kind)]))).to.deep.equal({
          image: 'heavy',
          pdf: 'heavy',
          video: 'heavy',
          audio: 'heavy',
          text: 'light',
          document: 'light',
          archive: 'light',
          other: 'light',
        });
      }
      expect(envOf(api!)).not.to.have.property('WORKER_QUEUES');
      expect(envOf(heavy!).WORKER_QUEUES!.value).to.equal('heavy=2');
      expect(envOf(light!).WORKER_QUEUES!.value).to.equal('light=8');
      expect(loadConfig('worker', settingsOf(objects, heavy!)).workerQueues).to.deep.equal([
        { name: 'heavy', concurrency: 2 },
      ]);
      expect(loadConfig('worker', settingsOf(objects, light!)).workerQueues).to.deep.equal([
        { name: 'light', concurrency: 8 },
      ]);
      expect(heavy!.spec!.template.metadata!.labels).to.include({ [POOL_LABEL]: 'heavy' });
      expect(containerOf(heavy!).resources).to.deep.equal(TWO_POOLS['worker.pools'][0]!.resources);
      expect(containerOf(light!).resources, "the worker's").to.deep.equal(
        containerOf(only(defaults, 'Deployment', '-worker')).resources,
      );
    });

    it('scales each pool with KEDA on its own queue, authenticated to Redis as the single worker is', () => {
      const objects = render({ ...TWO_POOLS, 'redis.url': 'redis://worker:s3cret@redis.example:6380/2' });
      const secret = only(objects, 'Secret', 'file-processor');
      const auth = only(objects, 'TriggerAuthentication');
      expect(auth.spec.secretTargetRef).to.deep.equal([
        { parameter: 'username', name: secret.metadata.name, key: 'redis-username' },
        { parameter: 'password', name: secret.metadata.name, key: 'redis-password' },
      ]);
      expect(secret.stringData).to.include({ 'redis-username': 'worker', 'redis-password': 's3cret' });
      const scaled = ofKind(objects, 'ScaledObject');
      expect(scaled.map((s) => [s.metadata.name, s.spec.scaleTargetRef.name])).to.deep.equal([
        ['file-processor-worker-heavy', 'file-processor-worker-heavy'],
        ['file-processor-worker-light', 'file-processor-worker-light'],
      ]);
      for (const [object, queue, jobsPerPod, min, max] of [
        [scaled[0]!, 'heavy', '2', 1, 10],
        [scaled[1]!, 'light', '8', 2, 20],
      ] as const) {
        expect(object.spec).to.include({ minReplicaCount: min, maxReplicaCount: max });
        expect(object.spec.advanced?.scalingModifiers).to.include({ formula: 'waiting + active', target: jobsPerPod });
        expect(object.spec.triggers.map((t) => [t.name, t.metadata.listName, t.metadata.listLength])).to.deep.equal([
          ['waiting', queueKey('bq', queue, 'waiting'), jobsPerPod],
          ['active', queueKey('bq', queue, 'active'), jobsPerPod],
        ]);
        for (const trigger of object.spec.triggers) {
          expect(trigger.metadata).to.include({
            address: 'redis.example:6380',
            databaseIndex: '2',
            enableTLS: 'false',
          });
          expect(trigger.authenticationRef).to.deep.equal({ name: auth.metadata.name });
        }
      }
    });

    it("reads each pool's lists where its jobs really are: an image in heavy's, a text in light's", async () => {
      const prefix = `${TEST_ENV.queuePrefix}-pools`;
      const objects = render({ ...TWO_POOLS, 'config.QUEUE_PREFIX': prefix });
      const listsOf = (pool: string) =>
        only(objects, 'ScaledObject', `-${pool}`).spec.triggers.map((t) => t.metadata.listName!);
      const [heavyWaiting, heavyActive] = listsOf('heavy');
      const [lightWaiting] = listsOf('light');
      const api = loadConfig('api', settingsOf(objects, only(objects, 'Deployment', '-api')));
      const worker = loadConfig('worker', settingsOf(objects, only(objects, 'Deployment', '-heavy')));
      const options = { redisUrl: TEST_ENV.redisUrl, prefix, routes: api.queueRoutes, retries: 0, backoffMs: 10 };
      const producer = new FileQueue({ ...options, role: 'producer' });
      const redis = new Redis(TEST_ENV.redisUrl);
      const lengths = async () =>
        Promise.all([heavyWaiting!, heavyActive!, lightWaiting!].map((list) => redis.llen(list)));
      try {
        await producer.ready();
        await producer.enqueue('0193a9c2-5b7e-7c1d-9f3a-8d2e4b6a1c10', 'image');
        await producer.enqueue('0193a9c2-5b7e-7c1d-9f3a-8d2e4b6a1c11', 'text');
        expect(await lengths()).to.deep.equal([1, 0, 1]);
        const consumer = new FileQueue({ ...options, role: 'consumer', consumes: worker.workerQueues });
        await whileRunningOneJob(consumer, async () => {
          expect(await lengths(), 'the heavy pool runs the image; the text waits for the light pool').to.deep.equal([
            0, 1, 1,
          ]);
        });
      } finally {
        await producer.close(1_000);
        redis.disconnect();
      }
    });

    it("falls back to an HPA per pool when KEDA is off, with the pool's bounds and the stabilization window", () => {
      const objects = render({
        ...TWO_POOLS,
        'worker.autoscaling.keda.enabled': false,
        'worker.autoscaling.keda.scaleDownStabilizationSeconds': 900,
      });
      expect(ofKind(objects, 'ScaledObject')).to.deep.equal([]);
      const hpas = ofKind(objects, 'HorizontalPodAutoscaler').filter((h) => h.metadata.name.includes('-worker'));
      expect(
        hpas.map((h) => [h.metadata.name, h.spec.scaleTargetRef.name, h.spec.minReplicas, h.spec.maxReplicas]),
      ).to.deep.equal([
        ['file-processor-worker-heavy', 'file-processor-worker-heavy', 1, 4],
        ['file-processor-worker-light', 'file-processor-worker-light', 1, 10],
      ]);
      for (const hpa of hpas) {
        expect(hpa.spec.behavior?.scaleDown?.stabilizationWindowSeconds, hpa.metadata.name).to.equal(900);
      }
      const fixed = render({
        ...TWO_POOLS,
        'worker.autoscaling.keda.enabled': false,
        'worker.autoscaling.hpa.enabled': false,
        'worker.replicas': 3,
      });
      expect(ofKind(fixed, 'Deployment').map((d) => [d.metadata.name, d.spec?.replicas])).to.deep.include.members([
        ['file-processor-worker-heavy', 1],
        ['file-processor-worker-light', 3],
      ]);
    });

    it("selects each pool's pods apart: Deployment, PDB, Service and spread never take another pool's or the API's", () => {
      const objects = render({ ...TWO_POOLS, 'metrics.serviceMonitor.enabled': true });
      const pods = ofKind(objects, 'Deployment').map((d) => ({
        name: d.metadata.name,
        labels: d.spec!.template.metadata!.labels,
      }));
      expect(pods.map((pod) => pod.name)).to.deep.equal([
        'file-processor-api',
        'file-processor-worker-heavy',
        'file-processor-worker-light',
      ]);
      const selected = (selector: Record<string, string>) =>
        pods.filter((pod) => selects(selector, pod.labels)).map((pod) => pod.name);
      for (const deployment of ofKind(objects, 'Deployment')) {
        const own = [deployment.metadata.name];
        expect(selected(deployment.spec!.selector.matchLabels!), deployment.metadata.name).to.deep.equal(own);
        for (const constraint of podSpecOf(deployment).topologySpreadConstraints ?? []) {
          expect(selected(constraint.labelSelector!.matchLabels!), `spread of ${own[0]}`).to.deep.equal(own);
        }
      }
      const budgets = ofKind(objects, 'PodDisruptionBudget');
      expect(budgets.map((b) => [b.metadata.name, selected(b.spec!.selector!.matchLabels!)])).to.deep.equal(
        pods.map((pod) => [pod.name, [pod.name]]),
      );
      const services = ofKind(objects, 'Service');
      expect(services.map((s) => [s.metadata.name, selected(s.spec!.selector!)])).to.deep.equal(
        pods.map((pod) => [pod.name, [pod.name]]),
      );
      // Each pool is a scrape job of its own.
      const monitor = only(objects, 'ServiceMonitor');
      expect(
        services
          .filter((s) => selects(monitor.spec.selector.matchLabels!, s.metadata.labels))
          .map((s) => s.metadata.name),
      ).to.deep.equal(pods.map((pod) => pod.name));
    });

    it("lets the worker NetworkPolicy and the pod-deletion-cost Role cover every pool's pods", () => {
      const objects = render({ ...TWO_POOLS, 'worker.podDeletionCost.enabled': true });
      const policy = only(objects, 'NetworkPolicy', '-worker').spec!.podSelector!.matchLabels!;
      const binding = only(objects, 'RoleBinding');
      for (const pool of ['-heavy', '-light']) {
        const deployment = only(objects, 'Deployment', pool);
        expect(selects(policy, deployment.spec!.template.metadata!.labels), pool).to.equal(true);
        expect(binding.subjects).to.deep.include({
          kind: 'ServiceAccount',
          name: podSpecOf(deployment).serviceAccountName,
          namespace: 'default',
        });
        expect(podSpecOf(deployment).automountServiceAccountToken, pool).to.equal(true);
        expect(envOf(deployment).POD_DELETION_COST?.value, pool).to.equal('true');
      }
      expect(selects(policy, only(objects, 'Deployment', '-api').spec!.template.metadata!.labels)).to.equal(false);
    });

    it('refuses pools that give a kind two pools, or none, naming the kind', () => {
      const pools = (...list: Array<{ name: string; kinds: string[] }>) => ({ 'worker.pools': list });
      expect(
        renderError(pools({ name: 'heavy', kinds: ['image', 'pdf'] }, { name: 'light', kinds: ['pdf', 'text'] })),
      ).to.contain('worker.pools: the kind pdf is in two pools, heavy and light');
      for (const kind of FILE_KINDS) {
        expect(renderError(pools({ name: 'most', kinds: FILE_KINDS.filter((k) => k !== kind) })), kind).to.contain(
          `worker.pools: no pool takes the kind ${kind};`,
        );
      }
      expect(renderError(pools({ name: 'a', kinds: ['*'] }, { name: 'b', kinds: ['*'] }))).to.contain(
        'the pools a and b both take "*"',
      );
      expect(renderError(pools({ name: 'a', kinds: ['image'] }, { name: 'a', kinds: ['*'] }))).to.contain(
        'two pools are named a',
      );
      // Each kind of core/ named once, and no "*": a complete set of pools.
      expect(ofKind(render(pools({ name: 'all', kinds: [...FILE_KINDS] })), 'Deployment')).to.have.length(2);
    });

    it('are checked by values.schema.json for their shape: a DNS-label name, the kinds of core/, "*" alone', () => {
      const schema = JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8')) as {
        properties: {
          worker: { properties: { pools: { items: { properties: { kinds: { items: { enum: string[] } } } } } } };
        };
      };
      expect(schema.properties.worker.properties.pools.items.properties.kinds.items.enum).to.have.members([
        ...FILE_KINDS,
        '*',
      ]);
      const one = (pool: Record<string, unknown>) => ({ 'worker.pools': [pool] });
      expect(renderError(one({ name: 'Heavy', kinds: ['*'] }))).to.match(/worker\.pools\.0\.name/);
      expect(renderError(one({ name: 'heavy', kinds: ['photo'] }))).to.match(/worker\.pools\.0\.kinds/);
      expect(renderError(one({ name: 'heavy', kinds: ['image', '*'] }))).to.match(/worker\.pools\.0\.kinds/);
      expect(renderError(one({ name: 'heavy', kinds: ['image', 'image'] }))).to.match(/worker\.pools\.0\.kinds/);
      expect(renderError(one({ name: 'heavy', kinds: ['*'], image: 'gpu' }))).to.match(/worker\.pools\.0\.image/);
      expect(renderError(one({ name: 'heavy', kinds: ['*'], concurrency: 0 }))).to.match(
        /worker\.pools\.0\.concurrency/,
      );
      expect(renderError({ 'config.QUEUE_ROUTES': 'image=heavy;*=light' })).to.match(/config\.QUEUE_ROUTES/);
    });

    it('keeps draining a queue no kind goes to any more: a pool without kinds', () => {
      const objects = render({ 'worker.pools': [{ name: 'files', kinds: [] }, ...TWO_POOLS['worker.pools']] });
      const draining = only(objects, 'Deployment', '-worker-files');
      expect(envOf(draining).QUEUE_ROUTES!.value).to.equal(ROUTES);
      expect(loadConfig('worker', settingsOf(objects, draining)).workerQueues).to.deep.equal([
        { name: 'files', concurrency: 4 },
      ]);
      expect(only(objects, 'ScaledObject', '-files').spec.triggers[0]!.metadata.listName).to.equal(
        queueKey('bq', 'files', 'waiting'),
      );
    });

    it("renders values.yaml's commented example as written", () => {
      const lines = readFileSync(path.join(CHART, 'values.yaml'), 'utf8').split('\n');
      const start = lines.indexOf('  # pools:');
      const example = ['pools:'];
      for (const line of lines.slice(start + 1)) {
        if (!line.startsWith('  #   ')) break;
        example.push(line.slice('  # '.length));
      }
      const { pools } = parseYaml(example.join('\n')) as { pools: unknown[] };
      const objects = render({ 'worker.pools': pools });
      expect(envOf(only(objects, 'Deployment', '-api')).QUEUE_ROUTES!.value).to.equal(
        'image,pdf,video,audio=heavy;document=documents;*=light',
      );
      // each pool's queue, and its image: the documents pool's is the worker with LibreOffice
      const image = (name: string) => `ghcr.io/file-processor/file-processor-${name}:${VERSION}`;
      expect(
        ofKind(objects, 'Deployment').map((d) => [envOf(d).WORKER_QUEUES?.value, containerOf(d).image]),
      ).to.deep.equal([
        [undefined, image('api')],
        ['heavy=2', image('worker')],
        ['documents=2', image('worker-documents')],
        ['light=8', image('worker')],
      ]);
    });
  });

  describe('object names', () => {
    // Helm's longest release name (53 characters), and two pools with the schema's longest names (30), alike but
    // for their last character.
    const RELEASE = 'files-of-the-accounting-department-eu-west-production';
    const LONG_POOLS = [
      { name: 'photos-and-scanned-documents-a', kinds: ['image', 'pdf'] },
      { name: 'photos-and-scanned-documents-b', kinds: ['*'] },
    ];
    // Every object the chart can make, and every reference from one to another.
    const EVERYTHING = {
      'worker.pools': LONG_POOLS,
      'ingress.enabled': true,
      'ingress.tls.enabled': true,
      'metrics.serviceMonitor.enabled': true,
      'metrics.prometheusRule.enabled': true,
      'metrics.dashboard.enabled': true,
      'worker.podDeletionCost.enabled': true,
      'redis.url': 'redis://worker:s3cret@redis.example:6379',
      'scanning.clamav.enabled': true,
    };
    const renderAs = (release: string, values: Record<string, unknown>) =>
      parseObjects(helm(['template', release, CHART, ...setJsonFlags(values)]));
    const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
    const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
    const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
    /** Every label map in an object: its own labels, its pod template's, and the selectors that match labels. */
    const labelMaps = (value: unknown, key = ''): Array<Record<string, string>> => {
      if (typeof value !== 'object' || value === null) return [];
      const own =
        ['labels', 'matchLabels', 'selector'].includes(key) && Object.values(value).every((v) => typeof v === 'string');
      return [
        ...(own ? [value as Record<string, string>] : []),
        ...Object.entries(value).flatMap(([k, v]) => labelMaps(v, k)),
      ];
    };

    it('fit what the API server takes, for the longest release and pool names: 63 characters, unique, referenced right', () => {
      for (const values of [EVERYTHING, { ...EVERYTHING, 'worker.autoscaling.keda.enabled': false }]) {
        const objects = renderAs(RELEASE, values);
        for (const object of objects) {
          const { name } = object.metadata;
          // A Service's name is a DNS-1035 label; a Job's and a ScaledObject's become label values: 63 for all.
          expect(name, `${object.kind} ${name}`).to.match(object.kind === 'Service' ? DNS_1035_LABEL : DNS_1123_LABEL);
          expect(name.length, `${object.kind} ${name}`).to.be.at.most(63);
          for (const labels of labelMaps(object)) {
            for (const [key, value] of Object.entries(labels)) {
              expect(value, `${object.kind} ${name}: ${key}`).to.match(LABEL_VALUE);
              expect(value.length, `${object.kind} ${name}: ${key}`).to.be.at.most(63);
            }
          }
        }
        const names = (kind: Kind) => ofKind(installed(objects), kind).map((object) => object.metadata.name);
        for (const kind of new Set(objects.map((object) => object.kind as Kind))) {
          expect(new Set(names(kind)).size, `${kind} names are unique`).to.equal(names(kind).length);
        }
        const deployments = names('Deployment');
        expect(deployments).to.have.length(4);
        expect(deployments.filter((name) => name.endsWith('-clamav'))).to.have.length(1);
        for (const pool of LONG_POOLS) {
          expect(
            deployments.filter((name) => name.endsWith(`-worker-${pool.name}`)),
            pool.name,
          ).to.have.length(1);
        }
        const targets = [...ofKind(objects, 'ScaledObject'), ...ofKind(objects, 'HorizontalPodAutoscaler')].map(
          (scaler) => scaler.spec.scaleTargetRef.name,
        );
        expect(targets).to.have.length(3);
        expect(deployments).to.include.members(targets);
        for (const scaled of ofKind(objects, 'ScaledObject')) {
          for (const trigger of scaled.spec.triggers) {
            expect(names('TriggerAuthentication')).to.include(trigger.authenticationRef!.name);
          }
        }
        expect(names('Service')).to.include(
          only(objects, 'Ingress').spec!.rules![0]!.http!.paths[0]!.backend.service!.name,
        );
        expect(envOf(only(objects, 'Pod')).API_URL!.value).to.match(
          new RegExp(`^http://(${names('Service').join('|')}):80$`),
        );
        const scanning = ofKind(objects, 'Deployment').filter((deployment) => envOf(deployment).SCAN_CLAMD);
        expect(scanning, 'the API and both pools').to.have.length(3);
        for (const deployment of scanning) {
          expect(envOf(deployment).SCAN_CLAMD!.value).to.match(
            new RegExp(`^tcp://(${names('Service').join('|')}):3310$`),
          );
        }
        expect(names('Role')).to.include(only(objects, 'RoleBinding').roleRef.name);
        for (const pod of podTemplates(objects)) {
          for (const volume of podSpecOf(pod).volumes ?? []) {
            if (volume.persistentVolumeClaim)
              expect(names('PersistentVolumeClaim')).to.include(volume.persistentVolumeClaim.claimName);
            if (volume.secret) expect(names('Secret')).to.include(volume.secret.secretName);
            if (volume.configMap) expect(names('ConfigMap')).to.include(volume.configMap.name);
          }
          for (const variable of containerOf(pod).env ?? []) {
            const secret = variable.valueFrom?.secretKeyRef?.name;
            if (secret) expect(names('Secret'), `${pod.metadata.name}: ${variable.name}`).to.include(secret);
          }
        }
      }
    });

    it('stay as they were while they fit: shortened only past 63 characters, keeping what they name', () => {
      const api = (fullnameOverride: string) => only(render({ fullnameOverride }), 'Service', '-api').metadata.name;
      const fits = 'f'.repeat(59);
      expect(api(fits)).to.equal(`${fits}-api`);
      const longer = api(`${fits}g`);
      expect(longer)
        .to.have.length(63)
        .and.match(/^f+-[0-9a-f]{8}-api$/);
      expect(api(`${fits}h`), 'another long name').not.to.equal(longer);
    });

    it('refuse what no Service name can be: a release name with a leading digit or a dot, a bad override', () => {
      for (const release of ['1st-files', 'files.eu']) {
        expect(() => renderAs(release, {}), release).to.throw(/refuses for a Service.*choose another release name/);
      }
      expect(renderError({ fullnameOverride: 'Files' })).to.match(/fullnameOverride/);
      expect(renderError({ fullnameOverride: '1files' })).to.match(/fullnameOverride/);
      expect(renderError({ nameOverride: 'file_processor' })).to.match(/nameOverride/);
      expect(renderError({ 'worker.pools': [{ name: 'p'.repeat(31), kinds: ['*'] }] })).to.match(
        /worker\.pools\.0\.name/,
      );
    });
  });

  describe('the migration', () => {
    it('runs as a hook before install and upgrade, reading DATABASE_URL from a hook Secret made just before it', () => {
      const job = only(installed(defaults), 'Job');
      expect(job.metadata.annotations).to.include({
        'helm.sh/hook': 'pre-install,pre-upgrade',
        'helm.sh/hook-weight': '0',
      });
      expect(containerOf(job).command).to.deep.equal(['node', 'dist/core/db/migrate.js']);
      const hookSecret = only(installed(defaults), 'Secret', '-migration');
      expect(hookSecret.metadata.annotations).to.include({
        'helm.sh/hook': 'pre-install,pre-upgrade',
        'helm.sh/hook-weight': '-10',
        // Gone once the migration succeeded, and after a failure where Helm applies hook-failed to every hook (3.19+).
        'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded,hook-failed',
      });
      expect(hookSecret.stringData).to.deep.equal({
        'database-url': only(defaults, 'Secret', 'file-processor').stringData!['database-url'],
      });
      expect(envOf(job).DATABASE_URL!.valueFrom!.secretKeyRef).to.deep.equal({
        name: hookSecret.metadata.name,
        key: 'database-url',
      });
      // Nothing else of the release exists yet before install: no ConfigMap, no ServiceAccount, no claim.
      const spec = podSpecOf(job);
      expect(spec).not.to.have.property('serviceAccountName');
      expect(containerOf(job)).not.to.have.property('envFrom');
      expect(spec.volumes).to.deep.equal([{ name: 'tmp', emptyDir: {} }]);
    });

    it('keeps a failed Job for its logs: until the next attempt, helm uninstall or migration.ttlSecondsAfterFinished', () => {
      const job = only(installed(defaults), 'Job');
      expect(job.metadata.annotations).to.include({
        'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded',
      });
      expect(job.spec!.ttlSecondsAfterFinished).to.equal(86_400);
      const shorter = only(installed(render({ 'migration.ttlSecondsAfterFinished': 3_600 })), 'Job');
      expect(shorter.spec!.ttlSecondsAfterFinished).to.equal(3_600);
    });

    it('has helm uninstall delete the Secret and the Job a failed install left, by hooks of their names that run no pod', () => {
      const name = only(installed(defaults), 'Job').metadata.name;
      // Also when the URL comes from an existing Secret now: an earlier revision may have made the hook Secret.
      for (const values of [{}, { 'database.existingSecret': 'prod-database' }]) {
        const atUninstall = render(values).filter((object) => installed([object]).length === 0);
        expect(atUninstall.map((object) => `${object.kind}/${object.metadata.name}`)).to.deep.equal([
          `Secret/${name}`,
          `Job/${name}`,
        ]);
        for (const hook of atUninstall) {
          // Helm deletes an object of the hook's name before making it, then the hook once it is done.
          expect(hook.metadata.annotations).to.deep.equal({
            'helm.sh/hook': 'post-delete',
            'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded,hook-failed',
          });
        }
        const [secret, job] = atUninstall as [Rendered<'Secret'>, Rendered<'Job'>];
        expect(secret).not.to.have.any.keys('data', 'stringData');
        expect(job.spec!.completions, 'nothing to complete: no pod').to.equal(0);
      }
      // Left out of k8s/, where kubectl would apply them over the migration's own Secret and Job.
      const manifests = parseObjects(readFileSync(MANIFESTS, 'utf8'));
      expect(installed(manifests)).to.deep.equal(manifests);
    });

    it('leaves nothing after a failed install and helm uninstall (Helm 3.17): no DATABASE_URL, no Job, no pod', async () => {
      const cluster = await startStandInCluster();
      try {
        const install = await cluster.helm([
          ...['install', 'files', CHART, '-n', 'files'],
          ...['--disable-openapi-validation', '--timeout', '60s'],
        ]);
        expect(install.code, install.stdout).not.to.equal(0);
        expect(install.stderr).to.match(/failed pre-install[^]*job files-file-processor-migration failed/);
        // Until then, the failed Job and its pod stay for their logs.
        expect(cluster.objects()).to.include('Job/files-file-processor-migration');
        expect(cluster.objects().filter((object) => object.startsWith('Pod/'))).to.have.length(1);
        const uninstall = await cluster.helm(['uninstall', 'files', '-n', 'files', '--timeout', '60s']);
        expect(uninstall.code, uninstall.stderr).to.equal(0);
        expect(cluster.objects()).to.deep.equal([]);
      } finally {
        await cluster.close();
      }
    });
  });

  describe('traffic', () => {
    it('lets uploads up to MAX_UPLOAD_BYTES through ingress-nginx, streamed, with multipart framing to spare', () => {
      for (const maxUpload of ['100MiB', '512KiB', '5GiB', '1048576']) {
        const ingress = only(render({ 'ingress.enabled': true, 'config.MAX_UPLOAD_BYTES': maxUpload }), 'Ingress');
        const bodySize = Number(ingress.metadata.annotations!['nginx.ingress.kubernetes.io/proxy-body-size']);
        expect(bodySize, maxUpload).to.equal(
          loadConfig('api', { MAX_UPLOAD_BYTES: maxUpload }).maxUploadBytes + 1024 * 1024,
        );
        expect(ingress.metadata.annotations).to.include({
          'nginx.ingress.kubernetes.io/proxy-request-buffering': 'off',
        });
      }
    });

    it('routes the API port only, through an Ingress or an HTTPRoute, never the admin port', () => {
      const ingress = only(render({ 'ingress.enabled': true, 'ingress.host': 'files.example.org' }), 'Ingress');
      expect(ingress.spec?.rules).to.deep.equal([
        {
          host: 'files.example.org',
          http: {
            paths: [
              {
                path: '/',
                pathType: 'Prefix',
                backend: { service: { name: 'file-processor-api', port: { name: 'http' } } },
              },
            ],
          },
        },
      ]);
      const route = only(render({ 'httpRoute.enabled': true }), 'HTTPRoute');
      expect(route.spec.rules?.[0]?.backendRefs).to.deep.equal([{ name: 'file-processor-api', port: 80 }]);
      const service = only(defaults, 'Service', '-api');
      expect(service.spec?.ports?.find((p) => p.port === 80)?.targetPort).to.equal('http');
    });

    it('admits only the API and admin ports to its pods, and egress to DNS, the data stores and the API server when asked', () => {
      const [api, worker] = ['-api', '-worker'].map((suffix) => only(defaults, 'NetworkPolicy', suffix));
      expect(api!.spec?.ingress?.map((rule) => rule.ports?.[0]?.port)).to.deep.equal(['http', 'admin']);
      expect(worker!.spec?.ingress?.map((rule) => rule.ports?.[0]?.port)).to.deep.equal(['admin']);
      const strict = only(
        render({ 'networkPolicy.egress.enabled': true, 'worker.podDeletionCost.enabled': true }),
        'NetworkPolicy',
        '-worker',
      );
      expect(strict.spec?.policyTypes).to.deep.equal(['Ingress', 'Egress']);
      expect(strict.spec?.egress?.[1]?.ports?.map((p) => p.port)).to.deep.equal([5432, 6379, 443, 6443]);
      const toBucket = only(
        render({
          'networkPolicy.egress.enabled': true,
          'storage.type': 's3',
          'storage.s3.bucket': 'files',
          'storage.s3.egressPort': 9000,
        }),
        'NetworkPolicy',
        '-api',
      );
      expect(toBucket.spec?.egress?.[1]?.ports?.map((p) => p.port)).to.deep.equal([5432, 6379, 9000]);
    });

    it('lets workers, with egress rules on, send webhooks to port 443 of public addresses only, unless turned off', () => {
      const egressOn = render({ 'networkPolicy.egress.enabled': true });
      const worker = only(egressOn, 'NetworkPolicy', '-worker');
      for (const receiver of ['93.184.216.34', '2606:2800:21f:cb07:6820:80da:af6b:8b2c']) {
        expect(reaches(worker, receiver, 443), receiver).to.equal(true);
        expect(reaches(worker, receiver, 8443), `${receiver} port 8443`).to.equal(false);
        expect(reaches(only(egressOn, 'NetworkPolicy', '-api'), receiver, 443), `API to ${receiver}`).to.equal(false);
      }
      // The ranges the service's own address guard refuses (WEBHOOK_ALLOW_PRIVATE off): no way in from a webhook.
      for (const inside of [
        '10.0.0.1',
        '172.20.1.1',
        '192.168.1.1',
        '169.254.169.254',
        '100.64.0.1',
        'fd00:ec2::254',
        'fe80::1',
      ]) {
        expect(reaches(worker, inside, 443), inside).to.equal(false);
      }
      const off = only(
        render({ 'networkPolicy.egress.enabled': true, 'networkPolicy.egress.webhooks.enabled': false }),
        'NetworkPolicy',
        '-worker',
      );
      expect(reaches(off, '93.184.216.34', 443)).to.equal(false);
      expect(reaches(off, '10.0.0.1', 5432), 'the data stores').to.equal(true);
    });
  });

  describe('malware scanning', () => {
    const CLAMAV = { 'scanning.clamav.enabled': true };
    const EXTERNAL = { 'scanning.clamd.address': 'tcp://clamd.security.svc:3310' };
    const SCAN_SETTINGS = ['SCAN_CLAMD', 'SCAN_UNSCANNABLE', 'SCAN_TIMEOUT_MS'];
    const ofClamav = (objects: KubeObject[]) =>
      objects.filter((object) => object.metadata.labels?.['app.kubernetes.io/component'] === 'clamav');
    const clamavPod = (objects: KubeObject[]) => podSpecOf(only(objects, 'Deployment', '-clamav'));
    const containerNamed = (objects: KubeObject[], name: string) => {
      const spec = clamavPod(objects);
      return [...(spec.initContainers ?? []), ...spec.containers].find((container) => container.name === name)!;
    };
    /** A clamd.conf or freshclam.conf as directive → values (a directive may repeat). */
    const directives = (conf: string) => {
      const found: Record<string, string[]> = {};
      for (const line of conf.split('\n').filter((l) => l.trim() && !l.startsWith('#'))) {
        const [name, ...value] = line.trim().split(/\s+/);
        (found[name!] ??= []).push(value.join(' '));
      }
      return found;
    };

    it('is off by default: no clamd, no SCAN_* in any pod, the defaults rendered as before', () => {
      const values = parseYaml(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as {
        scanning: { clamav: { enabled: boolean }; clamd: { address: string } };
      };
      expect(values.scanning.clamav.enabled).to.equal(false);
      expect(values.scanning.clamd.address).to.equal('');
      expect(render({ 'scanning.clamav.enabled': false, 'scanning.clamd.address': '' })).to.deep.equal(defaults);
      expect(ofClamav(defaults)).to.deep.equal([]);
      for (const deployment of ofKind(defaults, 'Deployment'))
        expect(envOf(deployment), deployment.metadata.name).not.to.have.any.keys(...SCAN_SETTINGS);
    });

    it('with scanning.clamav.enabled, deploys clamd and freshclam from the official image, current signatures first', () => {
      const objects = render(CLAMAV);
      expect(ofClamav(objects).map((object) => `${object.kind} ${object.metadata.name}`)).to.have.members([
        'ConfigMap file-processor-clamav',
        'Deployment file-processor-clamav',
        'Service file-processor-clamav',
        'PodDisruptionBudget file-processor-clamav',
        'NetworkPolicy file-processor-clamav',
      ]);
      const deployment = only(objects, 'Deployment', '-clamav');
      expect(deployment.spec!.replicas).to.equal(1);
      expect(deployment.spec!.strategy!.rollingUpdate).to.deep.equal({ maxSurge: 1, maxUnavailable: 0 });
      const pod = clamavPod(objects);
      expect(pod.initContainers!.map((c) => c.name)).to.deep.equal(['signatures']);
      expect(pod.containers.map((c) => c.name)).to.deep.equal(['clamd', 'freshclam']);
      for (const container of [...pod.initContainers!, ...pod.containers])
        expect(container.image, container.name).to.equal('clamav/clamav:1.4');
      // The init container seeds an empty volume from the image, then brings it up to date, before clamd starts.
      const signatures = containerNamed(objects, 'signatures');
      expect(signatures.args![0]).to.contain('cp /var/lib/clamav/*.c?d /database/');
      expect(signatures.args![0]).to.match(/exec freshclam --foreground --stdout .*--datadir=\/database\n/);
      expect(signatures.volumeMounts).to.deep.include({ name: 'database', mountPath: '/database' });
      expect(containerNamed(objects, 'clamd').command).to.deep.equal([
        'clamd',
        '--foreground',
        '--config-file=/etc/clamav/clamd.conf',
      ]);
      expect(containerNamed(objects, 'freshclam').command).to.include.members([
        'freshclam',
        '--daemon',
        '--daemon-notify=/etc/clamav/clamd.conf',
      ]);
      // clamd only reads the signatures; freshclam writes them, into a volume that lasts as long as the pod.
      expect(containerNamed(objects, 'clamd').volumeMounts).to.deep.include({
        name: 'database',
        mountPath: '/var/lib/clamav',
        readOnly: true,
      });
      expect(containerNamed(objects, 'freshclam').volumeMounts).to.deep.include({
        name: 'database',
        mountPath: '/var/lib/clamav',
      });
      expect(pod.volumes).to.deep.include({ name: 'database', emptyDir: { sizeLimit: '2Gi' } });
      const conf = only(objects, 'ConfigMap', '-clamav').data!;
      expect(directives(conf['clamd.conf']!)).to.deep.include({
        TCPSocket: ['3310'],
        DatabaseDirectory: ['/var/lib/clamav'],
        TemporaryDirectory: ['/tmp'],
        AlertExceedsMax: ['yes'],
        // clamd gives up on a slow scan (unscannable) before the worker's SCAN_TIMEOUT_MS (60000) does.
        MaxScanTime: ['45000'],
      });
      expect(directives(conf['clamd.conf']!)).not.to.have.property('LocalSocket');
      expect(directives(conf['freshclam.conf']!)).to.deep.include({
        DatabaseDirectory: ['/var/lib/clamav'],
        DatabaseMirror: ['database.clamav.net'],
        Checks: ['12'],
        TestDatabases: ['no'],
      });
      expect(deployment.spec!.template.metadata!.annotations!['checksum/config']).to.match(/^[0-9a-f]{64}$/);
      const service = only(objects, 'Service', '-clamav');
      expect(service.spec!.ports).to.deep.equal([{ name: 'clamd', port: 3310, targetPort: 'clamd' }]);
      expect(selects(service.spec!.selector!, podLabelsOf(deployment))).to.equal(true);
      expect(containerNamed(objects, 'clamd').ports).to.deep.equal([{ name: 'clamd', containerPort: 3310 }]);
      expect(only(objects, 'PodDisruptionBudget', '-clamav').spec).to.include({ maxUnavailable: 1 });
    });

    it('is ready once clamd answers PING, which it does only with its signatures loaded; its start may take minutes', () => {
      const clamd = containerNamed(render(CLAMAV), 'clamd');
      const ping = { command: ['clamdcheck.sh'] };
      for (const probe of [clamd.startupProbe!, clamd.readinessProbe!, clamd.livenessProbe!]) {
        expect(probe.exec).to.deep.equal(ping);
        expect(probe.timeoutSeconds).to.be.at.least(5);
      }
      const { periodSeconds, failureThreshold } = clamd.startupProbe!;
      expect(periodSeconds! * failureThreshold!).to.be.at.least(600);
      const slower = containerNamed(render({ ...CLAMAV, 'scanning.clamav.startupSeconds': 1205 }), 'clamd');
      expect(slower.startupProbe!.periodSeconds! * slower.startupProbe!.failureThreshold!).to.be.at.least(1205);
      // Liveness tolerates a busy clamd for longer than readiness does.
      expect(clamd.livenessProbe!.periodSeconds! * clamd.livenessProbe!.failureThreshold!).to.be.above(
        clamd.readinessProbe!.periodSeconds! * clamd.readinessProbe!.failureThreshold!,
      );
      expect(clamd.lifecycle?.preStop?.exec?.command).to.deep.equal(['sleep', '5']);
    });

    it('sizes clamd for the full signatures twice over (a reload), memory requested as limited, and takes other sizes', () => {
      const clamd = containerNamed(render(CLAMAV), 'clamd');
      expect(clamd.resources).to.deep.equal({ requests: { cpu: '1', memory: '3Gi' }, limits: { memory: '3Gi' } });
      const sized = render({
        ...CLAMAV,
        'scanning.clamav.replicas': 2,
        'scanning.clamav.resources': { requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '4Gi' } },
        'scanning.clamav.databaseSizeLimit': '3Gi',
        'scanning.clamav.config': { MaxThreads: 20, StreamMaxLength: '200M', ConcurrentDatabaseReload: false },
        'scanning.timeoutMs': 300000,
        'scanning.clamav.freshclam.checks': 24,
        'scanning.clamav.freshclam.config': { DatabaseMirror: ['mirror-a.example', 'mirror-b.example'] },
      });
      expect(only(sized, 'Deployment', '-clamav').spec!.replicas).to.equal(2);
      expect(containerNamed(sized, 'clamd').resources!.limits).to.deep.equal({ memory: '4Gi' });
      expect(clamavPod(sized).volumes).to.deep.include({ name: 'database', emptyDir: { sizeLimit: '3Gi' } });
      const conf = only(sized, 'ConfigMap', '-clamav').data!;
      expect(directives(conf['clamd.conf']!)).to.deep.include({
        MaxThreads: ['20'],
        StreamMaxLength: ['200M'],
        ConcurrentDatabaseReload: ['no'],
        AlertExceedsMax: ['yes'],
        MaxScanTime: ['225000'],
      });
      expect(directives(conf['freshclam.conf']!)).to.deep.include({
        Checks: ['24'],
        DatabaseMirror: ['mirror-a.example', 'mirror-b.example'],
      });
    });

    it('runs clamav pods as the image user, read-only, without capabilities, privilege escalation or a token', () => {
      const objects = render(CLAMAV);
      const pod = clamavPod(objects);
      expect(pod.securityContext).to.deep.equal({
        runAsNonRoot: true,
        runAsUser: 100,
        runAsGroup: 101,
        fsGroup: 101,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      // Not the release's ServiceAccount, which may carry the bucket's cloud identity.
      expect(pod.serviceAccountName).to.equal(undefined);
      expect(pod.automountServiceAccountToken).to.equal(false);
      const emptyDirs = new Set((pod.volumes ?? []).filter((v) => v.emptyDir).map((v) => v.name));
      for (const container of [...pod.initContainers!, ...pod.containers]) {
        expect(container.securityContext, container.name).to.deep.equal({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
          capabilities: { drop: ['ALL'] },
        });
        // What a container may write to is an emptyDir; the configuration is mounted read-only.
        for (const mount of container.volumeMounts ?? [])
          expect(mount.readOnly || emptyDirs.has(mount.name), `${container.name}: ${mount.mountPath}`).to.equal(true);
        expect(
          container.volumeMounts!.map((mount) => mount.mountPath),
          container.name,
        ).to.include('/tmp');
      }
    });

    it('gives SCAN_CLAMD, SCAN_UNSCANNABLE and SCAN_TIMEOUT_MS to the API and every worker pool, and to no other pod', () => {
      const settings = { 'scanning.unscannable': 'allow', 'scanning.timeoutMs': 120000 };
      for (const [way, values, address] of [
        ["the chart's clamd", { ...CLAMAV, ...TWO_POOLS, ...settings }, 'tcp://file-processor-clamav:3310'],
        ['an existing clamd', { ...EXTERNAL, ...TWO_POOLS, ...settings }, 'tcp://clamd.security.svc:3310'],
      ] as const) {
        const objects = render(values);
        const scanning = ['-api', '-worker-heavy', '-worker-light'].map((suffix) =>
          only(objects, 'Deployment', suffix),
        );
        for (const deployment of scanning) {
          const env = envOf(deployment);
          expect(
            SCAN_SETTINGS.map((name) => env[name]?.value),
            `${way}: ${deployment.metadata.name}`,
          ).to.deep.equal([address, 'allow', '120000']);
        }
        const scanned = new Set(scanning.map((deployment) => deployment.metadata.name));
        for (const pod of podTemplates(objects).filter((pod) => !scanned.has(pod.metadata.name)))
          expect(envOf(pod), `${way}: ${pod.metadata.name}`).not.to.have.any.keys(...SCAN_SETTINGS);
      }
      // The address of the chart's clamd is its Service.
      const objects = render(CLAMAV);
      const [host, port] = new URL(envOf(only(objects, 'Deployment', '-worker')).SCAN_CLAMD!.value!).host.split(':');
      const service = only(objects, 'Service', '-clamav');
      expect([host, Number(port)]).to.deep.equal([service.metadata.name, service.spec!.ports![0]!.port]);
      expect(envOf(only(objects, 'Deployment', '-worker')).SCAN_UNSCANNABLE!.value).to.equal('fail');
      expect(envOf(only(objects, 'Deployment', '-worker')).SCAN_TIMEOUT_MS!.value).to.equal('60000');
    });

    it('admits only the workers to clamd, and lets clamd reach only DNS and public port 443 with egress rules on', () => {
      for (const egress of [false, true]) {
        const objects = render({ ...CLAMAV, ...TWO_POOLS, 'networkPolicy.egress.enabled': egress });
        const policy = only(objects, 'NetworkPolicy', '-clamav');
        expect(
          selects(policy.spec!.podSelector!.matchLabels!, podLabelsOf(only(objects, 'Deployment', '-clamav'))),
        ).to.equal(true);
        expect(policy.spec!.ingress).to.have.length(1);
        const [rule] = policy.spec!.ingress!;
        expect(rule!.ports).to.deep.equal([{ port: 'clamd' }]);
        expect(rule!.from).to.have.length(1);
        const admitted = rule!.from![0]!;
        expect(admitted).to.have.all.keys('podSelector');
        for (const suffix of ['-worker-heavy', '-worker-light'])
          expect(
            selects(admitted.podSelector!.matchLabels!, podLabelsOf(only(objects, 'Deployment', suffix))),
            suffix,
          ).to.equal(true);
        for (const suffix of ['-api', '-clamav'])
          expect(
            selects(admitted.podSelector!.matchLabels!, podLabelsOf(only(objects, 'Deployment', suffix))),
            suffix,
          ).to.equal(false);
        expect(policy.spec!.policyTypes).to.deep.equal(egress ? ['Ingress', 'Egress'] : ['Ingress']);
        if (!egress) continue;
        for (const [address, port, allowed] of [
          ['104.16.218.84', 443, true],
          ['2606:4700::6810:da54', 443, true],
          ['10.0.0.1', 443, false],
          ['169.254.169.254', 443, false],
          ['104.16.218.84', 80, false],
          ['10.0.0.1', 5432, false],
        ] as const) {
          expect(reaches(policy, address, port), `clamav to ${address}:${port}`).to.equal(allowed);
        }
      }
    });

    it("lets the workers, with egress rules on, reach clamd's port on its pods, and the API not at all", () => {
      const objects = render({ ...CLAMAV, ...TWO_POOLS, 'networkPolicy.egress.enabled': true });
      const clamavLabels = podLabelsOf(only(objects, 'Deployment', '-clamav'));
      const toClamd = (policy: Rendered<'NetworkPolicy'>) =>
        (policy.spec!.egress ?? []).filter((rule) => rule.ports?.some((p) => p.port === 3310));
      const [rule, ...others] = toClamd(only(objects, 'NetworkPolicy', '-worker'));
      expect(others).to.deep.equal([]);
      expect(rule!.to).to.have.length(1);
      expect(selects(rule!.to![0]!.podSelector!.matchLabels!, clamavLabels)).to.equal(true);
      expect(toClamd(only(objects, 'NetworkPolicy', '-api'))).to.deep.equal([]);
      expect(reaches(only(objects, 'NetworkPolicy', '-worker'), '10.0.0.1', 3310), 'any address').to.equal(false);
    });

    it('with scanning.clamd.address, deploys nothing and lets the workers reach its port, with egress rules on', () => {
      const objects = render({ ...EXTERNAL, 'networkPolicy.egress.enabled': true });
      expect(ofClamav(objects)).to.deep.equal([]);
      expect(objects.filter((object) => object.metadata.name.includes('clamav'))).to.deep.equal([]);
      const worker = only(objects, 'NetworkPolicy', '-worker');
      // Any address, as for PostgreSQL and Redis: a host name says nothing of where it leads.
      for (const address of ['10.20.30.40', '192.168.7.1', 'fd00::10'])
        expect(reaches(worker, address, 3310), address).to.equal(true);
      expect(reaches(worker, '10.20.30.40', 3311)).to.equal(false);
      expect(reaches(only(objects, 'NetworkPolicy', '-api'), '10.20.30.40', 3310), 'the API').to.equal(false);
      const elsewhere = only(
        render({ 'scanning.clamd.address': 'tcp://[fd00::10]:13310', 'networkPolicy.egress.enabled': true }),
        'NetworkPolicy',
        '-worker',
      );
      expect(reaches(elsewhere, 'fd00::10', 13310)).to.equal(true);
      expect(reaches(elsewhere, 'fd00::10', 3310)).to.equal(false);
    });

    it('refuses both ways at once, addresses the workers cannot use, and directives the chart depends on', () => {
      expect(renderError({ ...CLAMAV, ...EXTERNAL })).to.contain(
        'Set scanning.clamav.enabled (the chart deploys clamd) or scanning.clamd.address (an existing clamd), not both.',
      );
      for (const address of ['clamd:3310', 'tcp://clamd', '/run/clamav/clamd.sock', 'tcp://clamd:3310/x'])
        expect(renderError({ 'scanning.clamd.address': address }), address).to.match(/scanning\.clamd\.address/);
      expect(renderError({ 'scanning.unscannable': 'pass' })).to.match(/scanning\.unscannable/);
      expect(renderError({ 'scanning.timeoutMs': 0 })).to.match(/scanning\.timeoutMs/);
      for (const directive of ['TCPSocket', 'LocalSocket', 'DatabaseDirectory', 'AlertExceedsMax'])
        expect(renderError({ ...CLAMAV, [`scanning.clamav.config.${directive}`]: 'x' }), directive).to.contain(
          directive,
        );
      expect(renderError({ ...CLAMAV, 'scanning.clamav.freshclam.config.NotifyClamd': 'x' })).to.contain('NotifyClamd');
      for (const setting of SCAN_SETTINGS)
        expect(renderError({ [`config.${setting}`]: 'x' }), setting).to.contain(`config.${setting}`);
    });

    it('says in NOTES.txt where clamd is, and how to follow the first download of the signatures', () => {
      expect(renderNotes(CLAMAV)).to.contain(
        "Malware scanning: clamd at tcp://file-processor-clamav:3310; a file's content is served only once clamd has called it clean.",
      );
      expect(renderNotes(CLAMAV)).to.contain('kubectl -n default logs deploy/file-processor-clamav -c signatures');
      expect(renderNotes(EXTERNAL)).to.contain('Malware scanning: clamd at tcp://clamd.security.svc:3310;');
      expect(renderNotes(EXTERNAL)).not.to.contain('-c signatures');
      expect(renderNotes({})).not.to.contain('Malware scanning');
    });
  });

  describe('monitoring', () => {
    it('scrapes both admin ports, alerts from files/alerts.yaml and ships the dashboard', () => {
      const objects = render({
        'metrics.serviceMonitor.enabled': true,
        'metrics.prometheusRule.enabled': true,
        'metrics.dashboard.enabled': true,
      });
      const monitor = only(objects, 'ServiceMonitor');
      const scraped = ofKind(objects, 'Service').filter((service) =>
        Object.entries(monitor.spec.selector.matchLabels!).every(
          ([key, value]) => service.metadata.labels?.[key] === value,
        ),
      );
      expect(scraped.map((service) => service.metadata.name).sort()).to.deep.equal([
        'file-processor-api',
        'file-processor-worker',
      ]);
      for (const service of scraped) expect(service.spec?.ports?.map((p) => p.name)).to.include('admin');
      const alerts = parseYaml(readFileSync(path.join(CHART, 'files/alerts.yaml'), 'utf8')) as { groups: unknown[] };
      expect(only(objects, 'PrometheusRule').spec.groups).to.deep.equal(alerts.groups);
      // Whichever rules file the chart carries (the placeholder, or observability/alerts.yaml), it alerts on these.
      const rules = (alerts.groups as Array<{ rules: Array<{ alert: string; expr: string }> }>).flatMap(
        (group) => group.rules,
      );
      expect(
        rules.some((rule) => rule.expr.includes('http_requests_total{status=~"5.."}')),
        '5xx ratio',
      ).to.equal(true);
      expect(
        rules.some((rule) => rule.expr.includes('queue_jobs{state="waiting"}')),
        'backlog',
      ).to.equal(true);
      expect(
        rules.some((rule) => /NoWorker/.test(rule.alert)),
        'no worker',
      ).to.equal(true);
      expect(
        rules.some((rule) => rule.alert === 'FileProcessorScannerDown' && rule.expr.includes('scanner_up')),
        'no worker reaches clamd',
      ).to.equal(true);
      const dashboard = JSON.parse(only(objects, 'ConfigMap', '-dashboard').data!['file-processor.json']!) as {
        title: string;
      };
      expect(dashboard.title).to.equal('file-processor');
    });

    for (const [source, copy] of [
      ['observability/alerts.yaml', 'files/alerts.yaml'],
      ['observability/dashboard.json', 'files/dashboard.json'],
    ] as const) {
      it(`carries ${source} unchanged as ${copy} (copy it over when it changes)`, function () {
        if (!existsSync(path.join(REPOSITORY, source))) {
          // In CI the repository is whole: a missing source is a failure there, not a reason to skip.
          if (inCI()) throw new Error(`${source} is missing, and CI must run this test.`);
          this.skip();
        }
        expect(readFileSync(path.join(CHART, copy), 'utf8'), `cp ${source} charts/file-processor/${copy}`).to.equal(
          readFileSync(path.join(REPOSITORY, source), 'utf8'),
        );
      });
    }

    it('leaves the monitoring objects out by default, for clusters without prometheus-operator', () => {
      expect(defaults.filter((object) => object.apiVersion.startsWith('monitoring.coreos.com'))).to.deep.equal([]);
    });
  });

  describe('NOTES.txt', () => {
    /** The values NOTES.txt says still point at k8s/dev's trial PostgreSQL or Redis. */
    const warnedAbout = (values: Record<string, unknown>) =>
      renderNotes(values)
        .split('\n')
        .flatMap((line) => /^WARNING: (\S+) still points at .*k8s\/dev/.exec(line)?.[1] ?? []);

    it("warns about each value still pointing at k8s/dev's trial PostgreSQL or Redis, and about no other", () => {
      expect(warnedAbout({})).to.deep.equal(['database.url', 'redis.url']);
      expect(warnedAbout({ 'database.existingSecret': 'prod-database' })).to.deep.equal(['redis.url']);
      expect(warnedAbout({ 'database.url': 'postgres://app:pw@db.prod:5432/files' })).to.deep.equal(['redis.url']);
      expect(warnedAbout({ 'redis.url': 'redis://redis.prod:6379' })).to.deep.equal(['database.url']);
      expect(warnedAbout(EXISTING_SECRETS)).to.deep.equal([]);
      // KEDA would watch the trial Redis while the app reads the URL of the existing Secret.
      expect(
        warnedAbout({ ...EXISTING_SECRETS, 'redis.address': 'file-processor-redis.files.svc:6379' }),
      ).to.deep.equal(['redis.address']);
      // The trial's host by its Service name or its cluster DNS name, not a host that merely starts alike.
      expect(
        warnedAbout({
          'database.url': 'postgres://app:pw@file-processor-postgres-prod:5432/files',
          'redis.url': 'redis://file-processor-redis.files.svc.cluster.local:6379',
        }),
      ).to.deep.equal(['redis.url']);
    });
  });

  it('helm test runs the smoke test from the API image against the API Service, with a token when there are tokens', () => {
    const smokeTest = renderChart({ 'apiTokens.tokens': ['0123456789abcdef0123'] }, [
      '--show-only',
      'templates/tests/smoke-test.yaml',
    ]);
    const pod = only(parseObjects(smokeTest), 'Pod');
    expect(pod.metadata.annotations).to.include({ 'helm.sh/hook': 'test' });
    expect(containerOf(pod).command).to.deep.equal(['node', 'dist/scripts/smoke.js']);
    expect(envOf(pod).API_URL!.value).to.equal('http://file-processor-api:80');
    expect(envOf(pod).API_TOKENS_FILE!.value).to.equal('/var/run/secrets/file-processor/api-tokens');
    validateObject(pod);
  });
});

describe('the plain manifests (k8s/)', function () {
  this.timeout(60_000);

  it('k8s/file-processor.yaml is the chart rendered with its defaults: run `make manifests` after changing the chart', () => {
    const directory = mkdtempSync(path.join(os.tmpdir(), 'fp-manifests-'));
    try {
      const rendered = path.join(directory, 'file-processor.yaml');
      execFileSync(process.execPath, [entry('dist/scripts/manifests.js'), rendered]);
      expect(readFileSync(MANIFESTS, 'utf8'), 'k8s/ has drifted from the chart: run `make manifests`').to.equal(
        readFileSync(rendered, 'utf8'),
      );
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  for (const directory of ['k8s', 'k8s/dev']) {
    it(`kubectl kustomize ${directory} builds objects that validate against their schemas`, () => {
      const built = execFileSync(layerBinary('kubectl'), ['kustomize', path.join(REPOSITORY, directory)], {
        encoding: 'utf8',
      });
      const objects = parseObjects(built);
      expect(objects.length).to.be.above(directory === 'k8s' ? 10 : 3);
      for (const object of objects) validateObject(object);
    });
  }
});

describe('docker/compose.yaml (make up)', () => {
  interface ComposeService {
    command?: string[];
    depends_on?: Record<string, { condition: string }>;
    volumes?: string[];
    read_only?: boolean;
    stop_grace_period?: string;
    build?: { dockerfile: string };
  }
  const compose = parseYaml(readFileSync(path.join(REPOSITORY, 'docker/compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  const { migrate, api, worker } = compose.services;

  it('migrates once, then starts the API and a worker from the two images', () => {
    expect(migrate!.command).to.deep.equal(['node', 'dist/core/db/migrate.js']);
    expect(migrate!.build!.dockerfile).to.equal('docker/Dockerfile.api');
    expect(worker!.build!.dockerfile).to.equal('docker/Dockerfile.worker');
    for (const service of [api!, worker!])
      expect(service.depends_on).to.deep.include({ migrate: { condition: 'service_completed_successfully' } });
  });

  it('runs them read-only, sharing the blob volume, with time to finish their work on stop', () => {
    const shutdownSeconds = Number(SETTINGS.find((setting) => setting.env === 'SHUTDOWN_TIMEOUT_MS')!.fallback) / 1000;
    for (const service of [migrate!, api!, worker!]) {
      expect(service.read_only).to.equal(true);
      expect(service.volumes).to.deep.equal(['blobs:/data']);
    }
    for (const service of [api!, worker!])
      expect(parseInt(service.stop_grace_period!, 10)).to.be.above(shutdownSeconds + 1);
  });
});
