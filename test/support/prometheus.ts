// A real Prometheus (Debian's package) scraping the service's admin ports, for end-to-end tests:
// free port, generated config, a temporary TSDB directory removed on stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventually } from './eventually.js';
import { freePort, waitForHttp } from './net.js';

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface RunningPrometheus {
  /** An instant query through the HTTP API; throws on a query Prometheus rejects. */
  query(expr: string): Promise<PromSample[]>;
  /** Polls `expr` until `accept` holds for its result, or fails naming the expression. */
  waitFor(expr: string, accept: (samples: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  get<T>(apiPath: string): Promise<T>;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  binary: string;
  /** Scrape job name -> host:port of an admin server. */
  targets: Record<string, string>;
  ruleFiles?: string[];
}

export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-test-prometheus-'));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: Object.entries(options.targets).map(([job, target]) => ({
      job_name: job,
      static_configs: [{ targets: [target] }],
    })),
  };
  // JSON is YAML: no YAML writer needed.
  writeFileSync(path.join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    options.binary,
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForHttp(`${url}/-/ready`, 200, 30_000);
  } catch (err) {
    await stop();
    throw new Error(`Prometheus did not become ready: ${(err as Error).message}\n${output}`, { cause: err });
  }

  const get = async <T>(apiPath: string): Promise<T> => {
    const body = (await (await fetch(`${url}${apiPath}`)).json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus answered ${apiPath} with ${body.status}: ${body.error}`);
    return body.data;
  };
  const query = async (expr: string) =>
    (await get<{ result: PromSample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result;
  return {
    get,
    query,
    waitFor: (expr, accept, timeoutMs = 30_000) =>
      eventually(
        async () => {
          const samples = await query(expr);
          return accept(samples) ? samples : undefined;
        },
        `an accepted answer to ${expr}`,
        timeoutMs,
        250,
      ),
    stop,
  };
}
