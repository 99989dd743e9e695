// A stand-in for the Kubernetes API server (the one edge we do not run ourselves): it records every
// request and answers PATCHes of pods like the real one (or as a test's `answer` says), or with an
// error when told to.
import { rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { eventually } from './eventually.js';

export interface RecordedRequest {
  method: string;
  path: string;
  contentType: string | undefined;
  authorization: string | undefined;
  body: unknown;
  /** When it arrived, on the performance.now() clock. */
  receivedAt: number;
}

export interface FakeKubernetes {
  url: string;
  requests: RecordedRequest[];
  /** Answer the next `count` requests with this status. */
  failNext(count: number, status?: number): void;
  /** Resolves once `count` requests have arrived. */
  waitForRequests(count: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Writes a kubeconfig file pointing at this server, for a real worker process (KUBECONFIG). */
  writeKubeconfig(): Promise<string>;
  close(): Promise<void>;
}

export const FAKE_TOKEN = 'fake-service-account-token';

/** How the fake answers a request it did not fail on purpose: a status and a JSON body. */
export type Answer = (request: RecordedRequest) => [status: number, body: unknown];

/** The API server's reply to a PATCH of a pod: the pod, with the patched metadata. */
const patchedPod: Answer = (request) => {
  const [, namespace, name] = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/?]+)/.exec(request.path) ?? [];
  return [
    200,
    {
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { name, namespace, ...(request.body as { metadata?: object })?.metadata },
    },
  ];
};

export async function startFakeKubernetes(answer: Answer = patchedPod): Promise<FakeKubernetes> {
  const requests: RecordedRequest[] = [];
  let failures: { count: number; status: number } = { count: 0, status: 500 };
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      const request = {
        receivedAt: performance.now(),
        method: req.method!,
        path: req.url!,
        contentType: req.headers['content-type'],
        authorization: req.headers.authorization,
        body: raw ? (JSON.parse(raw) as unknown) : undefined,
      };
      requests.push(request);
      const fail = failures.count > 0;
      if (fail) failures.count--;
      const [status, body] = fail
        ? [
            failures.status,
            { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: failures.status, message: 'injected failure' },
          ]
        : answer(request);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  const kubeconfigFile = path.join(os.tmpdir(), `fp-test-kubeconfig-${process.pid}-${port}.json`);

  return {
    url,
    requests,
    failNext(count, status = 500) {
      failures = { count, status };
    },
    waitForRequests(count, timeoutMs = 5_000) {
      return eventually(
        () => (requests.length >= count ? requests : undefined),
        `${count} requests to the API server`,
        timeoutMs,
        10,
      );
    },
    async writeKubeconfig() {
      await writeFile(kubeconfigFile, JSON.stringify(kubeconfigFor(url)));
      return kubeconfigFile;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(kubeconfigFile, { force: true });
    },
  };
}

/** A kubeconfig (as an object) for the fake API server, with a bearer token like a service account's. */
export function kubeconfigFor(url: string, namespace = 'files') {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    // client-node refuses plain HTTP unless told to skip TLS verification.
    clusters: [{ name: 'fake', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'worker', user: { token: FAKE_TOKEN } }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'worker', namespace } }],
    'current-context': 'fake',
  };
}
