import { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { queueKey } from '../core/queue/index.js';
import { escapeXml, niceScale, renderChart } from '../loadtest/scale-watch/chart.js';
import { main } from '../loadtest/scale-watch/cli.js';
import { parseWatchOptions, UsageError, type WatchOptions } from '../loadtest/scale-watch/options.js';
import { activeSpans, csvField, watch, type ResolvedWatchOptions, type Sample } from '../loadtest/scale-watch/watch.js';
import { TEST_ENV } from './support/env.js';
import { eventually } from './support/eventually.js';
import { kubeconfigFor, startFakeKubernetes, type FakeKubernetes } from './support/fakeKubernetes.js';
import { killStartedProcesses, startProcess } from './support/processes.js';

const NAMESPACE = 'fp-load';
const RELEASE = 'fp';
const QUEUE_PREFIX = `${TEST_ENV.queuePrefix}-scale-watch`;
const QUEUE_NAME = 'files';
const WORKER = 'fp-file-processor-worker';
const API = 'fp-file-processor-api';
const SCALED_OBJECT = 'fp-file-processor-worker';
const HPA = `keda-hpa-${SCALED_OBJECT}`;
const EXTERNAL_METRIC = `s0-redis-${QUEUE_PREFIX}-files`;

/** One moment of the fake cluster: replicas asked for and ready, and what KEDA and its HPA report. */
interface ClusterState {
  api: [replicas: number, ready: number];
  worker: [replicas: number, ready: number];
  active: boolean;
  hpa: [current: number, desired: number];
  metric: string;
}

/** A scale-up as KEDA drives it: idle, then the queue fills, the HPA asks for more, the pods come up. */
const SCALE_UP: ClusterState[] = [
  { api: [2, 2], worker: [1, 1], active: false, hpa: [1, 1], metric: '0' },
  { api: [2, 2], worker: [1, 1], active: true, hpa: [1, 4], metric: '20' },
  { api: [3, 2], worker: [4, 1], active: true, hpa: [1, 4], metric: '40' },
  { api: [3, 3], worker: [4, 3], active: true, hpa: [4, 4], metric: '15' },
  { api: [3, 3], worker: [4, 4], active: true, hpa: [4, 4], metric: '5' },
  { api: [3, 3], worker: [4, 4], active: false, hpa: [4, 4], metric: '0' },
];

/**
 * The Kubernetes API server's few read endpoints scale-watch calls, answering from `state`, on the
 * shared fake (which records every request). `failures` makes a path prefix answer an error status.
 */
class FakeKubeApi {
  state: ClusterState = SCALE_UP[0]!;
  readonly failures = new Map<string, number>();
  scaledObjectTarget = WORKER;
  private server: FakeKubernetes | undefined;

  async start(): Promise<void> {
    this.server = await startFakeKubernetes((request) => this.answer(new URL(request.path, 'http://fake')));
  }

  async stop(): Promise<void> {
    await this.server?.close();
  }

  /** Every request so far, as `METHOD /path?query`. */
  get requests(): string[] {
    return this.server!.requests.map((request) => `${request.method} ${request.path}`);
  }

  forgetRequests(): void {
    this.server!.requests.length = 0;
  }

  kubeConfig(): KubeConfig {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(this.kubeConfigJson());
    return kubeConfig;
  }

  kubeConfigJson(): string {
    return JSON.stringify(kubeconfigFor(this.server!.url, NAMESPACE));
  }

  private answer(url: URL): [number, unknown] {
    for (const [prefix, status] of this.failures)
      if (url.pathname.startsWith(prefix)) return [status, { kind: 'Status', code: status }];
    const base = `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`;
    const keda = `/apis/keda.sh/v1alpha1/namespaces/${NAMESPACE}/scaledobjects`;
    const hpa = `/apis/autoscaling/v2/namespaces/${NAMESPACE}/horizontalpodautoscalers/${HPA}`;
    const selector = url.searchParams.get('labelSelector') ?? '';
    if (url.pathname === base) {
      const component = /app\.kubernetes\.io\/component=(api|worker)/.exec(selector)?.[1];
      const matches = selector.includes(`app.kubernetes.io/instance=${RELEASE}`) && component !== undefined;
      return [
        200,
        {
          apiVersion: 'apps/v1',
          kind: 'DeploymentList',
          metadata: {},
          items: matches ? [this.deployment(component === 'api' ? API : WORKER)] : [],
        },
      ];
    }
    if (url.pathname === `${base}/${API}` || url.pathname === `${base}/${WORKER}`)
      return [200, this.deployment(url.pathname.split('/').pop()!)];
    if (url.pathname === keda)
      return [
        200,
        {
          apiVersion: 'keda.sh/v1alpha1',
          kind: 'ScaledObjectList',
          items: [
            this.scaledObject('other', 'some-other-app'),
            this.scaledObject(SCALED_OBJECT, this.scaledObjectTarget),
          ],
        },
      ];
    if (url.pathname === `${keda}/${SCALED_OBJECT}`)
      return [200, this.scaledObject(SCALED_OBJECT, this.scaledObjectTarget)];
    if (url.pathname === hpa) return [200, this.hpa()];
    return [404, { kind: 'Status', code: 404 }];
  }

  private deployment(name: string) {
    const [replicas, ready] = name === API ? this.state.api : this.state.worker;
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: NAMESPACE },
      spec: { replicas },
      status: { replicas, readyReplicas: ready },
    };
  }

  private scaledObject(name: string, target: string) {
    return {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name, namespace: NAMESPACE },
      spec: { scaleTargetRef: { name: target } },
      status: {
        conditions: [
          { type: 'Ready', status: 'True' },
          { type: 'Active', status: this.state.active ? 'True' : 'False' },
          { type: 'Fallback', status: 'False' },
        ],
        externalMetricNames: [EXTERNAL_METRIC],
        hpaName: name === SCALED_OBJECT ? HPA : 'keda-hpa-other',
      },
    };
  }

  private hpa() {
    const metric = { name: EXTERNAL_METRIC, selector: { matchLabels: { scaledobject: SCALED_OBJECT } } };
    return {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: HPA, namespace: NAMESPACE },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: WORKER },
        minReplicas: 1,
        maxReplicas: 10,
        metrics: [
          { type: 'External', external: { metric, target: { type: 'AverageValue', averageValue: '5' } } },
          { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } },
        ],
      },
      status: {
        currentReplicas: this.state.hpa[0],
        desiredReplicas: this.state.hpa[1],
        currentMetrics: [
          { type: 'External', external: { metric, current: { averageValue: this.state.metric } } },
          { type: 'Resource', resource: { name: 'cpu', current: { averageUtilization: 35 } } },
        ],
      },
    };
  }
}

/** Parses the CSV scale-watch writes (no field of ours spans lines) into one record per row. */
function readCsv(file: string): Array<Record<string, string>> {
  const [header, ...rows] = readFileSync(file, 'utf8').trimEnd().split('\n');
  const columns = splitCsvLine(header!);
  return rows.map((row) => Object.fromEntries(splitCsvLine(row).map((value, i) => [columns[i]!, value] as const)));
}

function splitCsvLine(line: string): string[] {
  const fields: string[] = [];
  const pattern = /("(?:[^"]|"")*"|[^,]*)(,|$)/g;
  for (let match = pattern.exec(line); match; match = pattern.exec(line)) {
    const raw = match[1]!;
    fields.push(raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw);
    if (match[2] === '') break;
  }
  return fields;
}

/** Checks that `svg` is well-formed XML: every tag closed in order, attributes quoted, no stray `<` or `&`. */
function expectWellFormedXml(svg: string): void {
  const open: string[] = [];
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let end = 0;
  for (let match = token.exec(svg); match; match = token.exec(svg)) {
    end = token.lastIndex;
    const [, closing, name, , selfClosing, text] = match;
    if (text !== undefined) {
      expect(text, 'text holds only escaped entities').not.to.match(/&(?!(amp|lt|gt|quot|apos);)/);
    } else if (closing) {
      expect(open.pop(), `</${name}> closes what is open`).to.equal(name);
    } else if (!selfClosing) {
      open.push(name!);
    }
  }
  expect(end, `parsed up to the end, stopped at: ${svg.slice(end, end + 60)}`).to.equal(svg.length);
  expect(open, 'every element is closed').to.deep.equal([]);
}

function seriesIn(svg: string): string[] {
  return [...new Set([...svg.matchAll(/data-series="([^"]+)"/g)].map((m) => m[1]!))];
}

describe('scale-watch', function () {
  this.timeout(30_000);
  const kube = new FakeKubeApi();
  let redis: Redis;
  let outDir: string;
  const waiting = queueKey(QUEUE_PREFIX, QUEUE_NAME, 'waiting');
  const active = queueKey(QUEUE_PREFIX, QUEUE_NAME, 'active');
  const delayed = queueKey(QUEUE_PREFIX, QUEUE_NAME, 'delayed');

  const options = (overrides: Partial<WatchOptions> = {}): ResolvedWatchOptions => ({
    ...parseWatchOptions([
      '--release',
      RELEASE,
      '--redis-url',
      TEST_ENV.redisUrl,
      '--queue-prefix',
      QUEUE_PREFIX,
      '--queue-name',
      QUEUE_NAME,
      '--out',
      outDir,
    ])!,
    namespace: NAMESPACE,
    intervalMs: 50,
    durationMs: 250,
    ...overrides,
  });

  before(async () => {
    await kube.start();
    redis = new Redis(TEST_ENV.redisUrl);
  });
  after(async () => {
    await kube.stop();
    redis.disconnect();
  });
  beforeEach(async () => {
    outDir = mkdtempSync(path.join(os.tmpdir(), 'fp-scale-watch-'));
    kube.state = SCALE_UP[0]!;
    kube.forgetRequests();
    kube.failures.clear();
    kube.scaledObjectTarget = WORKER;
    await redis.del(waiting, active, delayed);
  });
  afterEach(() => rmSync(outDir, { recursive: true, force: true }));

  /** After sample i, the cluster moves to the next state and the queue gains jobs (and starts some). */
  const scaleUp = async (sample: Sample) => {
    const i = SCALE_UP.indexOf(kube.state);
    kube.state = SCALE_UP[Math.min(i + 1, SCALE_UP.length - 1)]!;
    const n = Math.round(sample.elapsed * 1000);
    await redis.lpush(waiting, `w-${n}-1`, `w-${n}-2`, `w-${n}-3`);
    await redis.lpush(active, `a-${n}`);
    await redis.zadd(delayed, Date.now() + 60_000, `d-${n}`);
  };

  describe('watch()', () => {
    it('writes one CSV row per sample with replicas, KEDA status, HPA and queue depth as they move', async () => {
      const result = await watch(options(), { kubeConfig: kube.kubeConfig(), redis }, { onSample: scaleUp });

      const rows = readCsv(result.csvPath);
      expect(rows).to.have.length(6);
      expect(result.samples).to.have.length(6);
      const times = rows.map((row) => Date.parse(row.time!));
      expect(times.every((t, i) => Number.isFinite(t) && (i === 0 || t >= times[i - 1]!))).to.equal(true);
      const elapsed = rows.map((row) => Number(row.elapsed_s));
      expect(elapsed[0]).to.be.below(0.05);
      expect(elapsed.every((t, i) => i === 0 || t > elapsed[i - 1]!)).to.equal(true);
      expect(elapsed[5]).to.be.within(0.24, 2);

      const column = (name: string) => rows.map((row) => row[name]);
      expect(column('api_replicas')).to.deep.equal(['2', '2', '3', '3', '3', '3']);
      expect(column('api_ready')).to.deep.equal(['2', '2', '2', '3', '3', '3']);
      expect(column('worker_replicas')).to.deep.equal(['1', '1', '4', '4', '4', '4']);
      expect(column('worker_ready')).to.deep.equal(['1', '1', '1', '3', '4', '4']);
      expect(column('scaledobject')).to.deep.equal(Array(6).fill(SCALED_OBJECT));
      expect(column('scaledobject_ready')).to.deep.equal(Array(6).fill('true'));
      expect(column('scaledobject_active')).to.deep.equal(['false', 'true', 'true', 'true', 'true', 'false']);
      expect(column('external_metrics')).to.deep.equal(Array(6).fill(EXTERNAL_METRIC));
      expect(column('hpa')).to.deep.equal(Array(6).fill(HPA));
      expect(column('hpa_current')).to.deep.equal(['1', '1', '1', '4', '4', '4']);
      expect(column('hpa_desired')).to.deep.equal(['1', '4', '4', '4', '4', '4']);
      expect(rows[2]!.hpa_metrics).to.equal(`${EXTERNAL_METRIC}=40/5;cpu=35%/80%`);
      expect(column('queue_waiting')).to.deep.equal(['0', '3', '6', '9', '12', '15']);
      expect(column('queue_active')).to.deep.equal(['0', '1', '2', '3', '4', '5']);
      expect(column('queue_delayed')).to.deep.equal(['0', '1', '2', '3', '4', '5']);
      expect(column('errors')).to.deep.equal(Array(6).fill(''));
    });

    it('finds the Deployments by release and component labels, and the ScaledObject by its target', async () => {
      const result = await watch(options({ durationMs: 1 }), { kubeConfig: kube.kubeConfig(), redis });

      expect(result.samples[0]!.worker!.names).to.deep.equal([WORKER]);
      const selector = (component: string) =>
        encodeURIComponent(`app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=${component}`);
      expect(kube.requests).to.include.members([
        `GET /apis/apps/v1/namespaces/${NAMESPACE}/deployments?labelSelector=${selector('api')}`,
        `GET /apis/apps/v1/namespaces/${NAMESPACE}/deployments?labelSelector=${selector('worker')}`,
        `GET /apis/keda.sh/v1alpha1/namespaces/${NAMESPACE}/scaledobjects`,
        `GET /apis/autoscaling/v2/namespaces/${NAMESPACE}/horizontalpodautoscalers/${HPA}`,
      ]);
    });

    it('reads Deployments and the ScaledObject by name when they are given', async () => {
      const named = options({
        apiDeployment: API,
        workerDeployment: WORKER,
        scaledObject: SCALED_OBJECT,
        durationMs: 1,
      });
      const result = await watch(named, { kubeConfig: kube.kubeConfig(), redis });

      expect(readCsv(result.csvPath)[0]).to.include({
        api_replicas: '2',
        worker_ready: '1',
        scaledobject: SCALED_OBJECT,
        hpa_desired: '1',
        errors: '',
      });
      expect(kube.requests).to.include.members([
        `GET /apis/apps/v1/namespaces/${NAMESPACE}/deployments/${API}`,
        `GET /apis/apps/v1/namespaces/${NAMESPACE}/deployments/${WORKER}`,
        `GET /apis/keda.sh/v1alpha1/namespaces/${NAMESPACE}/scaledobjects/${SCALED_OBJECT}`,
      ]);
    });

    it('keeps sampling when a source fails, leaving its cells empty and saying why', async () => {
      kube.failures.set(`/apis/autoscaling/v2/namespaces/${NAMESPACE}/horizontalpodautoscalers`, 403);
      kube.failures.set(`/apis/apps/v1/namespaces/${NAMESPACE}/deployments`, 500);
      const unreachable = new Redis('redis://127.0.0.1:1', {
        lazyConnect: true,
        enableOfflineQueue: false,
        retryStrategy: () => null,
      });
      unreachable.on('error', () => undefined);
      try {
        const result = await watch(options({ scaledObject: SCALED_OBJECT, durationMs: 100 }), {
          kubeConfig: kube.kubeConfig(),
          redis: unreachable,
        });

        const rows = readCsv(result.csvPath);
        expect(rows).to.have.length(3);
        for (const row of rows) {
          expect(row).to.include({
            api_replicas: '',
            worker_ready: '',
            hpa_desired: '',
            queue_waiting: '',
            scaledobject: SCALED_OBJECT,
            scaledobject_active: 'false',
          });
          expect(row.errors)
            .to.include('api deployment: HTTP 500')
            .and.include('worker deployment: HTTP 500')
            .and.include('hpa: HTTP 403')
            .and.include('queue: ');
        }
      } finally {
        unreachable.disconnect();
      }
    });

    it('says so when no Deployment matches the selector and no ScaledObject targets the worker', async () => {
      kube.scaledObjectTarget = 'another-worker';
      const result = await watch(
        options({ release: 'not-installed', apiSelector: 'app.kubernetes.io/instance=not-installed', durationMs: 1 }),
        { kubeConfig: kube.kubeConfig(), redis },
      );

      const [row] = readCsv(result.csvPath);
      expect(row!.errors).to.include(
        `api deployment: no api Deployment matches app.kubernetes.io/instance=not-installed in ${NAMESPACE}`,
      );
      expect(row!.worker_replicas).to.equal('1');
      expect(row!.errors).to.include(`scaledobject: no ScaledObject in ${NAMESPACE} targets ${WORKER}`);
      expect(row!.queue_waiting).to.equal('0');
    });

    it('draws a well-formed SVG chart with every series and the spans when KEDA was active', async () => {
      const result = await watch(options(), { kubeConfig: kube.kubeConfig(), redis }, { onSample: scaleUp });
      const svg = readFileSync(result.chartPath, 'utf8');

      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).to.equal(true);
      expectWellFormedXml(svg);
      expect(seriesIn(svg)).to.deep.equal([
        'API ready',
        'API wanted',
        'worker ready',
        'worker wanted',
        'HPA desired',
        'waiting',
        'active',
        'delayed',
      ]);
      expect(svg)
        .to.include('>Replicas</text>')
        .and.include('>Queue depth (jobs)</text>')
        .and.include('>KEDA active</text>');
      expect(svg.match(/fill="#fff3c4"\/>/g), 'one shaded span per panel').to.have.length(2);
      const waitingPath = /data-series="waiting" d="([^"]+)"/.exec(svg)![1]!;
      const ys = [...waitingPath.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1]));
      expect(ys).to.have.length(6);
      expect(
        ys.every((y, i) => i === 0 || y < ys[i - 1]!),
        'the waiting line climbs (y grows downwards)',
      ).to.equal(true);
    });
  });

  describe('the command line', () => {
    afterEach(killStartedProcesses);

    function run(args: string[]) {
      const kubeconfig = path.join(outDir, 'kubeconfig');
      writeFileSync(kubeconfig, kube.kubeConfigJson());
      const baseArgs = [
        '--kubeconfig',
        kubeconfig,
        '--release',
        RELEASE,
        '--redis-url',
        TEST_ENV.redisUrl,
        '--queue-prefix',
        QUEUE_PREFIX,
        '--out',
        path.join(outDir, 'out'),
      ];
      return startProcess('dist/loadtest/scale-watch/cli.js', {}, { args: [...baseArgs, ...args] });
    }

    it('watches for --duration in the kubeconfig context namespace, printing a line per sample', async () => {
      await redis.lpush(waiting, 'a', 'b');
      const { exited, output } = run(['--interval', '0.1', '--duration', '0.2']);

      expect(await exited, output()).to.equal(0);
      expect(output()).to.include(`scale-watch: ${RELEASE} in ${NAMESPACE}, queue ${QUEUE_PREFIX}:files, every 0.1 s`);
      expect(output()).to.match(
        /\+\s+0s {2}api 2\/2 {2}worker 1\/1 \(hpa 1->1\) keda idle {2}queue 2 waiting 0 active 0 delayed/,
      );
      expect(output()).to.include('scale-watch: 3 samples in');
      expect(readCsv(path.join(outDir, 'out', 'scale-watch.csv'))).to.have.length(3);
      expectWellFormedXml(readFileSync(path.join(outDir, 'out', 'scale-watch.svg'), 'utf8'));
    });

    it('stops on SIGINT without --duration and still writes the chart', async () => {
      const { child, exited, output } = run(['--interval', '0.1', '--hpa', 'missing-hpa']);
      await eventually(() => output().includes('+') || undefined, 'a first sample line', 15_000, 20);
      child.kill('SIGINT');

      expect(await exited, output()).to.equal(0);
      expect(output()).to.include('! hpa: HTTP 404');
      expect(existsSync(path.join(outDir, 'out', 'scale-watch.svg'))).to.equal(true);
    });

    it('prints its usage for --help, and one sentence and exit code 2 for a bad option', async () => {
      const help = new PassThrough();
      expect(await main(['--help'], help)).to.equal(0);
      expect((help.read() as Buffer).toString())
        .to.match(/^Usage: scale-watch \[options\]/)
        .and.include('--queue-prefix');

      const { exited, output } = run(['--interval', 'soon']);
      expect(await exited).to.equal(2);
      expect(output()).to.equal('scale-watch: --interval must be a number of seconds (like 5 or 0.5), not "soon".\n');
    });
  });

  describe('options', () => {
    it('default to the release and component labels, the queue from the environment, and a dated directory', () => {
      const parsed = parseWatchOptions(
        [],
        { QUEUE_PREFIX: 'prod', REDIS_URL: 'redis://redis:6379' },
        new Date('2026-11-27T10:11:12Z'),
      )!;
      expect(parsed).to.include({
        release: 'file-processor',
        apiSelector: 'app.kubernetes.io/instance=file-processor,app.kubernetes.io/component=api',
        workerSelector: 'app.kubernetes.io/instance=file-processor,app.kubernetes.io/component=worker',
        redisUrl: 'redis://redis:6379',
        queuePrefix: 'prod',
        queueName: 'files',
        intervalMs: 5000,
        durationMs: 0,
        outDir: 'scale-watch-20261127-101112',
      });
      expect(parsed.namespace).to.equal(undefined);
    });

    it('reject an unknown flag, a zero interval and a negative duration with a sentence', () => {
      expect(() => parseWatchOptions(['--replicas', '3'], {})).to.throw(
        UsageError,
        /Unknown option '--replicas'.*\(see --help\)/,
      );
      expect(() => parseWatchOptions(['--interval', '0'], {})).to.throw(
        UsageError,
        '--interval must be a number of seconds above 0',
      );
      expect(() => parseWatchOptions(['--duration=-1'], {})).to.throw(
        UsageError,
        '--duration must be a number of seconds',
      );
    });
  });

  describe('the CSV and chart helpers', () => {
    it('quote CSV fields that hold commas, quotes or line breaks', () => {
      expect(csvField('plain')).to.equal('plain');
      expect(csvField('a,b')).to.equal('"a,b"');
      expect(csvField('say "hi"')).to.equal('"say ""hi"""');
      expect(csvField(null)).to.equal('');
      expect(csvField(0)).to.equal('0');
    });

    it('round axis bounds up to 1, 2 or 5 times a power of ten', () => {
      expect(niceScale(0)).to.deep.equal({ max: 1, step: 0.2 });
      expect(niceScale(7)).to.deep.equal({ max: 8, step: 2 });
      expect(niceScale(130)).to.deep.equal({ max: 150, step: 50 });
    });

    it('escape text and draw a lone sample and gaps', () => {
      const svg = renderChart({
        title: 'a < b & c',
        subtitle: '"quoted"',
        x: [0, 1, 2],
        panels: [{ title: 'p', series: [{ name: 's', color: '#000', values: [1, null, 3] }] }],
      });
      expectWellFormedXml(svg);
      expect(svg).to.include('a &lt; b &amp; c').and.include('&quot;quoted&quot;');
      expect(svg.match(/data-series="s"/g)).to.have.length(2);
      expect(escapeXml('<&>"')).to.equal('&lt;&amp;&gt;&quot;');
    });

    it('turn runs of Active=True samples into shaded spans', () => {
      const sample = (elapsed: number, activeNow: boolean): Sample => ({
        time: new Date(),
        elapsed,
        api: null,
        worker: null,
        hpa: null,
        queue: null,
        errors: [],
        scaledObject: {
          name: 'so',
          ready: 'True',
          active: activeNow ? 'True' : 'False',
          externalMetricNames: [],
          hpaName: null,
        },
      });
      expect(
        activeSpans([sample(0, false), sample(1, true), sample(2, true), sample(3, false), sample(4, true)]),
      ).to.deep.equal([
        [1, 3],
        [4, 4],
      ]);
    });
  });
});
