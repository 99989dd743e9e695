// Real processes of the service, started from the build, for end-to-end tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childEnv } from './env.js';
import { runStoreEnv } from './stores.js';
import { freePort, waitForHttp } from './net.js';

export { freePort, waitForHttp };
export { childrenOf, processTree } from '../../core/procfs.js';

export const entry = (relative: string) => fileURLToPath(new URL(`../../../${relative}`, import.meta.url));

export interface Started {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
}

const started = new Set<ChildProcess>();

/** Kills every process a test started and left running (a failed or timed-out test). */
export function killStartedProcesses(): void {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export function startProcess(
  script: string,
  env: Record<string, string> = {},
  options: { detached?: boolean; args?: string[] } = {},
): Started {
  const { detached = false, args = [] } = options;
  const child = spawn(process.execPath, [entry(script), ...args], {
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  started.add(child);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return { child, output: () => output, exited };
}

/**
 * How long a started process may take to answer ready. Generous on purpose: a worker warms its parsing
 * threads first (about 3 s on an idle 2-core machine), and a test may start one while others saturate the CPU.
 * A process that exits is reported at once, with its output.
 */
export const READY_TIMEOUT_MS = 60_000;

/** Polls `url` until it answers 200; fails at once, with the process's output, if `started` exits first. */
export async function waitUntilReady(started: Started, url: string, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const { child } = started;
  const gone = () =>
    child.exitCode === null && child.signalCode === null
      ? undefined
      : `the process exited (${child.exitCode ?? child.signalCode})`;
  await waitForHttp(url, 200, timeoutMs, gone).catch((err: Error) =>
    Promise.reject(new Error(`${err.message}; its output:\n${started.output().slice(-4_000)}`)),
  );
}

/** Runs a script to completion. */
export async function runProcess(
  script: string,
  env: Record<string, string> = {},
): Promise<{ code: number | string; output: string }> {
  const started = startProcess(script, env);
  const code = await started.exited;
  return { code, output: started.output() };
}

/** A real worker process with `env`, its admin server on a free port, once it answers ready. */
export async function startWorkerProcess(env: Record<string, string>): Promise<{ worker: Started; admin: string }> {
  const adminPort = await freePort();
  const worker = startProcess('dist/worker/main.js', { ...env, ADMIN_PORT: String(adminPort) });
  const admin = `http://127.0.0.1:${adminPort}`;
  await waitUntilReady(worker, `${admin}/readyz`);
  return { worker, admin };
}

export interface ApiAndWorker {
  api: Started;
  worker: Started;
  /** The API's base URL. */
  url: string;
  /** The admin servers' base URLs. */
  apiAdmin: string;
  workerAdmin: string;
  /** Sends both SIGTERM; resolves with their exit codes. */
  terminate(): Promise<{ api: number | string; worker: number | string }>;
}

/**
 * The API and one worker, each on free ports with `env` (and the API with `apiEnv` too), once both are ready;
 * both use the run's blob store (stores.ts) unless `env` says otherwise.
 */
export async function startApiAndWorker(
  env: Record<string, string>,
  apiEnv: Record<string, string> = {},
): Promise<ApiAndWorker> {
  env = { ...(await runStoreEnv()), ...env };
  const [port, adminPort] = [await freePort(), await freePort()];
  const apiAdmin = `http://127.0.0.1:${adminPort}`;
  const api = startProcess('dist/api/main.js', {
    ...env,
    ...apiEnv,
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
  });
  const { worker, admin: workerAdmin } = await startWorkerProcess(env);
  await waitUntilReady(api, `${apiAdmin}/readyz`);
  return {
    api,
    worker,
    url: `http://127.0.0.1:${port}`,
    apiAdmin,
    workerAdmin,
    async terminate() {
      api.child.kill('SIGTERM');
      worker.child.kill('SIGTERM');
      return { api: await api.exited, worker: await worker.exited };
    },
  };
}
