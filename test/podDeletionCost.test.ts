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
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const slowText = {
        ...otherProcessor,
        process: async (input: Parameters<typeof otherProcessor.process>[0]) => (
          await gate,
          otherProcessor.process(input)
        ),
      };
      const worker = await startWorker(service.queueName, {
        processors: { text: slowText },
        onBusyChange: (busy) => transitions.push(busy),
      });
      try {
        const files = await Promise.all(
          [1, 2, 3].map((n) => uploadFile(service.url, { name: `${n}.txt`, content: `file ${n}` })),
        );
        while (transitions.length === 0) await sleep(10);
        release();
        for (const file of files) expect((await waitForStatus(service.url, file.id)).status).to.equal('processed');
        while (transitions.at(-1) !== false) await sleep(10);
        expect(transitions[0]).to.equal(true);
        expect(transitions.length).to.be.below(2 * files.length);
        transitions.forEach((busy, n) => expect(busy, `transition ${n}`).to.equal(n % 2 === 0));
      } finally {
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
