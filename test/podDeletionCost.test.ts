import { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { ConfigError } from '../core/config.js';
import { otherProcessor } from '../worker/processors/other.js';
import {
  BUSY_COST,
  createPodDeletionCost,
  IDLE_COST,
  POD_DELETION_COST_ANNOTATION,
  podDeletionCostFromConfig,
  type PodDeletionCost,
} from '../worker/podDeletionCost.js';
import { eventually } from './support/eventually.js';
import { FAKE_TOKEN, kubeconfigFor, startFakeKubernetes, type FakeKubernetes } from './support/fakeKubernetes.js';
import { captureLogs, type CapturedLogs } from './support/logs.js';
import { READY_TIMEOUT_MS, startWorkerProcess } from './support/processes.js';
import { startService, startWorker, testLogger, uploadFile, waitForStatus } from './support/service.js';

const costPatch = (cost: number) => ({ metadata: { annotations: { [POD_DELETION_COST_ANNOTATION]: String(cost) } } });
const IDLE_DELAY_MS = 300;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('pod deletion cost (scale-in that spares busy workers)', () => {
  let apiServer: FakeKubernetes;
  let tracker: PodDeletionCost;
  let logs: CapturedLogs;

  beforeEach(async () => {
    logs = captureLogs();
    apiServer = await startFakeKubernetes();
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(JSON.stringify(kubeconfigFor(apiServer.url)));
    tracker = createPodDeletionCost({
      kubeConfig,
      namespace: 'files',
      podName: 'worker-7d9f-abcde',
      logger: logs.logger,
      idleDelayMs: IDLE_DELAY_MS,
    });
  });
  afterEach(async () => {
    await tracker.close();
    await apiServer.close();
  });

  it('marks its own pod busy at once, with a merge PATCH of the annotation only', async () => {
    tracker.setBusy(true);
    const [patch] = await apiServer.waitForRequests(1);
    expect(patch).to.deep.include({
      method: 'PATCH',
      path: '/api/v1/namespaces/files/pods/worker-7d9f-abcde',
      contentType: 'application/merge-patch+json',
      authorization: `Bearer ${FAKE_TOKEN}`,
      body: costPatch(BUSY_COST),
    });
  });

  it('marks it idle only once it stayed idle for the delay', async () => {
    tracker.setBusy(true);
    const idleSince = performance.now();
    tracker.setBusy(false);
    const [, idle] = await apiServer.waitForRequests(2);
    // Timers may fire a millisecond early; a slow machine only makes the PATCH later.
    expect(idle!.receivedAt - idleSince).to.be.at.least(IDLE_DELAY_MS - 2);
    expect(apiServer.requests.map((request) => request.body)).to.deep.equal([
      costPatch(BUSY_COST),
      costPatch(IDLE_COST),
    ]);
  });

  it('sends nothing for a short pause between jobs, so a steady stream costs one PATCH', async () => {
    tracker.setBusy(true);
    for (let job = 0; job < 5; job++) {
      tracker.setBusy(false);
      await sleep(10);
      tracker.setBusy(true);
    }
    await sleep(IDLE_DELAY_MS + 100);
    expect(apiServer.requests.map((request) => request.body)).to.deep.equal([costPatch(BUSY_COST)]);
  });

  it('carries on when the API server refuses, and tries again on the next transition', async () => {
    apiServer.failNext(1, 403);
    tracker.setBusy(true);
    await apiServer.waitForRequests(1);
    await eventually(
      () => logs.lines().some((line) => line.msg === 'could not set the pod deletion cost'),
      'the refusal to arrive',
    );
    tracker.setBusy(false);
    tracker.setBusy(true);
    await apiServer.waitForRequests(2);
    expect(apiServer.requests.map((request) => request.body)).to.deep.equal([
      costPatch(BUSY_COST),
      costPatch(BUSY_COST),
    ]);
  });

  describe('settings', () => {
    it('is off unless POD_DELETION_COST is true', () => {
      expect(
        podDeletionCostFromConfig({ podDeletionCost: false, podName: null, podNamespace: null }, testLogger()),
      ).to.equal(null);
    });

    it('stops with one sentence when POD_NAME or POD_NAMESPACE is missing', () => {
      expect(() =>
        podDeletionCostFromConfig({ podDeletionCost: true, podName: 'worker-1', podNamespace: null }, testLogger()),
      ).to.throw(
        ConfigError,
        /^POD_DELETION_COST=true needs POD_NAME and POD_NAMESPACE: set them from the downward API/,
      );
    });
  });

  describe('in a real worker', () => {
    it('goes busy when the first job starts and idle after the last one ends, not once per job', async () => {
      const service = await startService({ worker: false });
      const transitions: boolean[] = [];
      let wentIdleAt = 0;
      // Each file's job waits for its own release, so the test decides when each one ends.
      const started: string[] = [];
      const releases = new Map<string, () => void>();
      const gatedText = {
        ...otherProcessor,
        process: async (input: Parameters<typeof otherProcessor.process>[0]) => {
          started.push(input.file.name);
          await new Promise<void>((resolve) => releases.set(input.file.name, resolve));
          return otherProcessor.process(input);
        },
      };
      const worker = await startWorker(service.queueName, {
        processors: { text: gatedText },
        onBusyChange: (busy) => {
          transitions.push(busy);
          if (!busy) wentIdleAt = performance.now();
          tracker.setBusy(busy);
        },
      });
      const patches = () => apiServer.requests.map((request) => request.body);
      try {
        await sleep(100);
        expect(patches(), 'PATCHes before any job').to.deep.equal([]);
        const files = await Promise.all(
          [1, 2, 3].map((n) => uploadFile(service.url, { name: `${n}.txt`, content: `file ${n}` })),
        );
        await eventually(() => started.length === files.length, 'all three jobs to start');
        // One busy PATCH for the first start; the second and third start without one.
        await apiServer.waitForRequests(1);
        await sleep(100);
        expect(transitions, 'transitions with three jobs running').to.deep.equal([true]);
        expect(patches(), 'PATCHes with three jobs running').to.deep.equal([costPatch(BUSY_COST)]);

        // The jobs end one by one, further apart than the idle delay: nothing is sent until the last one has.
        for (const [n, file] of files.entries()) {
          releases.get(file.name)!();
          expect((await waitForStatus(service.url, file.id)).status).to.equal('processed');
          if (n < files.length - 1) {
            await sleep(IDLE_DELAY_MS + 100);
            expect(transitions, `transitions after job ${n + 1} ended`).to.deep.equal([true]);
            expect(patches(), `PATCHes after job ${n + 1} ended`).to.deep.equal([costPatch(BUSY_COST)]);
          } else {
            await eventually(() => transitions.length === 2, 'the worker to go idle');
          }
        }
        const [, idle] = await apiServer.waitForRequests(2);
        expect(transitions, 'transitions').to.deep.equal([true, false]);
        // Timers may fire a millisecond early; a slow machine only makes the PATCH later.
        expect(idle!.receivedAt - wentIdleAt, 'idle PATCH after the last job ended').to.be.at.least(IDLE_DELAY_MS - 2);
        await sleep(IDLE_DELAY_MS + 100);
        expect(patches(), 'PATCHes').to.deep.equal([costPatch(BUSY_COST), costPatch(IDLE_COST)]);
      } finally {
        for (const release of releases.values()) release();
        await worker.close();
        await service.close();
      }
    });

    it('the worker process patches its pod through KUBECONFIG when POD_DELETION_COST=true, and exits 0 on SIGTERM', async function () {
      this.timeout(30_000 + READY_TIMEOUT_MS);
      const service = await startService({ worker: false });
      const { worker } = await startWorkerProcess({
        QUEUE_NAME: service.queueName,
        KUBECONFIG: await apiServer.writeKubeconfig(),
        POD_DELETION_COST: 'true',
        POD_NAME: 'file-processor-worker-0',
        POD_NAMESPACE: `ns-${randomBytes(2).toString('hex')}`,
      });
      try {
        const file = await uploadFile(service.url, { name: 'note.txt', content: 'hello' });
        expect((await waitForStatus(service.url, file.id)).status).to.equal('processed');
        const [patch] = await apiServer.waitForRequests(1);
        expect(patch!.path).to.match(/^\/api\/v1\/namespaces\/ns-[0-9a-f]{4}\/pods\/file-processor-worker-0$/);
        expect(patch!.body).to.deep.equal(costPatch(BUSY_COST));
        worker.child.kill('SIGTERM');
        expect(await worker.exited, worker.output()).to.equal(0);
      } finally {
        worker.child.kill('SIGKILL');
        await service.close();
      }
    });
  });
});
