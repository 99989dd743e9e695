// `make bench`: measures the production build against a bare-Node baseline in the same run, on this
// machine, and writes loadtest/results/<date>.json, .md and .svg. Figures are ratios to the baseline
// measured minutes apart, since absolute numbers drift with whatever else the machine does.
// Nothing is deleted until every timed run is over: on this machine, creating files right after
// deleting many is several times slower. BENCH_ONLY (a comma list of SECTIONS) runs only those sections.
import autocannon from 'autocannon';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { dropDatabase } from '../../core/db/index.js';
import { cpuMsOf, rssBytesOf, treeCpuMsOf } from '../../core/procfs.js';
import { deleteKeys } from '../../test/support/redisKeys.js';
import { renderChart, type Bar, type TableRow } from './chart.js';
import { multipartBody, pngImage, textFile } from './fixtures.js';
import { benchPools, type PoolsBench } from './pools.js';
import { benchObjectStorage, type ObjectStorageBench } from './s3.js';
import { benchRendering, renderingBars, renderingRows, type RenderingBench } from './rendering.js';
import { benchScanning, scanningBars, scanningNotes, scanningRows, type ScanningBench } from './scanning.js';
import { benchTus, type TusBench } from './tus.js';
import { benchWebhooks, type WebhookBench } from './webhooks.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const quick = process.env.BENCH_QUICK === '1';
const SECONDS = quick ? 3 : 10;
const ROUNDS = quick ? 1 : 3;
const dbServer = process.env.BENCH_DATABASE_SERVER ?? 'postgres://postgres@127.0.0.1:5432';
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const work = path.join(root, 'loadtest', 'results', '.work', stamp);
const BOUNDARY = 'benchBoundary7MA4YWxkTrZu0gW';

/** The parts of the run, in the order they run (list last: seeding 10^6 rows leaves PostgreSQL busy for a while). */
const SECTIONS = [
  'uploads',
  'e2e',
  'object_storage',
  'webhooks',
  'tus',
  'pools',
  'scanning',
  'rendering',
  'list',
] as const;
type Section = (typeof SECTIONS)[number];

/** BENCH_ONLY's sections, or every one when it is unset; a name that is not a section stops the run. */
function sectionsToRun(value = ''): Section[] {
  if (!value.trim()) return [...SECTIONS];
  const names = value.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !(SECTIONS as readonly string[]).includes(name));
  if (unknown.length === 0) return SECTIONS.filter((section) => names.includes(section));
  process.stderr.write(
    `BENCH_ONLY must be a comma-separated list of ${SECTIONS.join(', ')}; "${unknown.join('", "')}" is not one.\n`,
  );
  process.exit(2);
}
const sections = sectionsToRun(process.env.BENCH_ONLY);
const runs = (section: Section) => sections.includes(section);

interface Target {
  name: 'service' | 'baseline' | 'floor';
  url: string;
  databaseUrl: string;
  storageDir: string;
  pid: () => number;
}

interface LoadStats {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  mb_per_s: number;
  errors: number;
  /** CPU time per request of the server process, and of PostgreSQL (all its processes): what sizing needs. */
  server_cpu_ms?: number;
  postgres_cpu_ms?: number;
}

type UploadComparison = Awaited<ReturnType<typeof compareUploads>>;
type BigUpload = Awaited<ReturnType<typeof bigUpload>>;
type ListLatency = Awaited<ReturnType<typeof listLatency>>;
type EndToEnd = Omit<Awaited<ReturnType<typeof endToEnd>>, 'databaseUrl'>;
const withoutUrl = ({ databaseUrl: _url, ...rest }: Awaited<ReturnType<typeof endToEnd>>): EndToEnd => rest;

/** What the run measured; a section left out by BENCH_ONLY leaves its figures out. */
interface BenchResults {
  date: string;
  machine: { cpus: number; cpu: string | undefined; memory_gib: number; node: string; load_generator: string };
  settings: { seconds_per_round: number; rounds: number; quick: boolean; sections: Section[] };
  upload_1kib?: UploadComparison;
  upload_1mib?: UploadComparison;
  upload_1gib?: { service: BigUpload; baseline: BigUpload; mb_per_s_ratio: number };
  list?: { small: ListLatency; large: ListLatency; p99_ratio: number; deep_p99_ratio: number };
  e2e_text?: EndToEnd;
  /** e2e_text with DATABASE_INSERT_BATCH_MAX=1: the API's INSERTs one per upload, as before batching. */
  e2e_text_single_insert?: EndToEnd;
  e2e_image?: EndToEnd;
  /** The same uploads into an S3 bucket (Ceph RGW), against the SDK's own writes to it; direct uploads. */
  object_storage?: ObjectStorageBench;
  /** From a File settling to its webhook reaching a receiver. */
  webhooks?: WebhookBench;
  /** A tus upload in 8 MiB chunks against a POST /upload/ of the same bytes, on one API. */
  tus?: TusBench;
  /** Texts behind a burst of images: one shared queue against two pools. */
  pools?: PoolsBench;
  /** Malware scanning: the worker's scans against clamdscan on one clamd, and texts end to end with it on and off. */
  scanning?: ScanningBench;
  /** Renderings: the worker's CPU per image, PDF and video against the renderer alone on the same files. */
  rendering?: RenderingBench;
}

/** Logs the scenario about to run, once the disk has written back what the previous one left dirty. */
async function scenario(message: string): Promise<void> {
  execFileSync('sync');
  await sleep(2_000);
  process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

const children: ChildProcess[] = [];
/** Every database the run made, dropped at the end. */
const databases: string[] = [];

/** Starts a script of the build; its output goes to a log file, as a production service's would. */
function startScript(script: string, env: Record<string, string>, name: string): ChildProcess {
  const logFd = openSync(path.join(work, `${name}.log`), 'a');
  const child = spawn(process.execPath, [path.join(root, 'dist', script)], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', logFd, logFd],
  });
  children.push(child);
  return child;
}

/** Stops a process started here (SIGTERM, its clean exit; SIGKILL after 10 s) and waits for it to exit. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(killer);
}

async function runScript(script: string, env: Record<string, string>): Promise<void> {
  const child = spawn(process.execPath, [path.join(root, 'dist', script)], {
    env: { PATH: process.env.PATH, ...env },
    stdio: 'inherit',
  });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`${script} exited with ${String(code)}`);
}

async function waitForPort(url: string): Promise<void> {
  for (let tries = 0; tries < 200; tries++) {
    const up = await new Promise((resolve) => {
      http.get(url, (res) => resolve(res.resume() && true)).on('error', () => resolve(false));
    });
    if (up) return;
    await sleep(100);
  }
  throw new Error(`${url} did not answer`);
}

async function sql<T = Record<string, unknown>>(
  databaseUrl: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}

async function countFiles(databaseUrl: string, where = 'true'): Promise<number> {
  const [row] = await sql<{ count: string }>(databaseUrl, `SELECT count(*) FROM files WHERE ${where}`);
  return Number(row?.count ?? 0);
}

function baseEnv(name: string) {
  return {
    DATABASE_URL: `${dbServer}/bench_${name}_${process.pid}`,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: `bench-${process.pid}`,
    QUEUE_NAME: name,
    STORAGE_DIR: path.join(work, name),
    MAX_UPLOAD_BYTES: '2GiB',
    MAX_BACKLOG: '0',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
  };
}

let nextPort = 18080;

/** Migrates a database of its own for `name` and starts the production API on it. */
async function startApi(
  name: string,
  extra: Record<string, string> = {},
): Promise<Target & { env: Record<string, string>; process: ChildProcess }> {
  const [port, adminPort] = [nextPort++, nextPort++];
  const env = { ...baseEnv(name), PORT: String(port), ADMIN_PORT: String(adminPort), ...extra };
  databases.push(env.DATABASE_URL);
  await runScript('core/db/migrate.js', env);
  const api = startScript('api/main.js', env, `api-${name}`);
  await waitForPort(`http://127.0.0.1:${adminPort}/readyz`);
  return {
    name: 'service',
    url: `http://127.0.0.1:${port}`,
    databaseUrl: env.DATABASE_URL,
    storageDir: env.STORAGE_DIR,
    pid: () => api.pid!,
    env,
    process: api,
  };
}

/** The production API on a database of its own, and one worker beside it with `workerEnv` on top. */
async function startApiAndWorker(name: string, env: Record<string, string>, workerEnv: Record<string, string> = {}) {
  const api = await startApi(name, env);
  const adminPort = nextPort++;
  const worker = startScript(
    'worker/main.js',
    { ...api.env, ...workerEnv, ADMIN_PORT: String(adminPort) },
    `worker-${name}`,
  );
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  await waitForPort(`${adminUrl}/readyz`);
  return {
    ...api,
    worker: { pid: worker.pid!, adminUrl },
    /** Stops the worker, then the API. */
    stop: async () => {
      await stopProcess(worker);
      await stopProcess(api.process);
    },
  };
}

/** A bare server of loadtest/bench/ (`baseline`, or `floor`: busboy → file, one INSERT, one LPUSH) on a database of its own. */
async function startBaseline(name: 'baseline' | 'floor' = 'baseline'): Promise<Target> {
  const port = nextPort++;
  const env = { ...baseEnv(name), PORT: String(port) };
  databases.push(env.DATABASE_URL);
  await runScript('core/db/migrate.js', env);
  const bare = startScript(`loadtest/bench/${name}.js`, env, name);
  await waitForPort(`http://127.0.0.1:${port}/`);
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    databaseUrl: env.DATABASE_URL,
    storageDir: env.STORAGE_DIR,
    pid: () => bare.pid!,
  };
}

interface LoadOptions {
  method?: 'GET' | 'POST';
  body?: Buffer;
  connections: number;
  seconds: number;
  /** Requests per second across all connections; unset, each connection sends as fast as answers come. */
  rate?: number;
  /** The server process whose CPU time per request to measure. */
  serverPid?: number;
}

async function load(url: string, options: LoadOptions): Promise<LoadStats> {
  const run = () =>
    autocannon({
      url,
      method: options.method ?? 'GET',
      connections: options.connections,
      duration: options.seconds,
      ...(options.rate && { overallRate: options.rate }),
      ...(options.body
        ? { body: options.body, headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } }
        : {}),
    });
  const result = await withCpu(
    options.serverPid ? { server: options.serverPid } : {},
    run,
    (done) => done.requests.total,
  );
  return {
    rps: round(result.requests.average, 1),
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    mb_per_s: round((result.requests.average * (options.body?.length ?? 0)) / 1e6, 1),
    errors: result.errors + result.non2xx + result.timeouts,
    ...(options.serverPid && { server_cpu_ms: result.cpu_ms.server, postgres_cpu_ms: result.cpu_ms.postgres }),
  };
}

/** Alternates service, baseline (and floor) rounds, so drift hits each; reports the median round of each. */
async function compareUploads(service: Target, baseline: Target, body: Buffer, connections: number, floor?: Target) {
  const rounds: Record<Target['name'], LoadStats[]> = { service: [], baseline: [], floor: [] };
  const targets = floor ? [service, baseline, floor] : [service, baseline];
  for (const target of targets) await load(`${target.url}/upload/`, { method: 'POST', body, connections, seconds: 2 });
  for (let n = 0; n < ROUNDS; n++) {
    for (const target of n % 2 ? [...targets].reverse() : targets) {
      rounds[target.name].push(
        await load(`${target.url}/upload/`, {
          method: 'POST',
          body,
          connections,
          seconds: SECONDS,
          serverPid: target.pid(),
        }),
      );
    }
  }
  const pick = (all: LoadStats[]) => all.find((stats) => stats.rps === median(all.map((s) => s.rps)))!;
  const result = {
    service: pick(rounds.service),
    baseline: pick(rounds.baseline),
    ...(floor && { floor: pick(rounds.floor) }),
    rounds,
  };
  // Saturated, latency is connections / throughput (Little's law) whatever the code does; at half the
  // service's capacity it shows the code's own latency, the figure a latency objective is set against.
  const rate = Math.round(result.service.rps / 2);
  const atHalf = async (target: Target) =>
    load(`${target.url}/upload/`, { method: 'POST', body, connections, seconds: SECONDS, rate });
  const half_load = { rate, service: await atHalf(service), baseline: await atHalf(baseline) };
  return {
    ...result,
    half_load,
    rps_ratio: round(result.service.rps / result.baseline.rps),
    ...(result.floor && { floor_rps_ratio: round(result.service.rps / result.floor.rps) }),
  };
}

/** CPU seconds (user + system) a process has used; 0 once it is gone. */
const cpuSeconds = (pid: number): number => (cpuMsOf(pid) ?? 0) / 1000;
/** The same for a process and its descendants, alive or reaped (a worker and its parser processes). */
const treeCpuSeconds = (pid: number): number => treeCpuMsOf(pid) / 1000;

/** CPU seconds of each process whose name starts with `name` (PostgreSQL has many), by pid. */
function cpuByName(name: string): Map<number, number> {
  const usage = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').startsWith(name))
        usage.set(Number(entry), cpuSeconds(Number(entry)));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return usage;
}

/** The servers the benchmark shares with nothing else while it runs. */
const SERVERS = { postgres: 'postgres', redis: 'redis-server' };

/**
 * Measures the CPU `pids` (with their descendants), PostgreSQL and Redis use while `work` runs, in ms per unit of work it
 * reports. A server's share counts its processes alive at the end (a PostgreSQL backend that exits
 * meanwhile is missed; the services keep theirs open in pools).
 */
async function withCpu<T>(
  pids: Record<string, number>,
  work: () => Promise<T>,
  units: (result: T) => number,
): Promise<T & { cpu_ms: Record<string, number> }> {
  const processes = () => Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, treeCpuSeconds(pid)]));
  const servers = () => Object.entries(SERVERS).map(([name, comm]) => [name, cpuByName(comm)] as const);
  const [before, serversBefore] = [processes(), servers()];
  const result = await work();
  const [after, serversAfter] = [processes(), servers()];
  const perUnit = (seconds: number) => round((seconds * 1000) / Math.max(1, units(result)), 3);
  const serverCpu = serversAfter.map(([name, usage], n) => {
    let seconds = 0;
    for (const [pid, used] of usage) seconds += used - (serversBefore[n]![1].get(pid) ?? 0);
    return [name, perUnit(seconds)] as const;
  });
  const cpu_ms: Record<string, number> = {
    ...Object.fromEntries(
      Object.entries(after).map(([name, seconds]) => [name, perUnit(seconds - before[name]!)] as const),
    ),
    ...Object.fromEntries(serverCpu),
  };
  return { ...result, cpu_ms };
}

const rssKiB = (pid: number): number => (rssBytesOf(pid) ?? 0) / 1024;

/** One upload of `bytes` streamed from memory-light chunks; MB/s and the server's RSS growth. */
async function bigUpload(target: Target, bytes: number) {
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  const rssBefore = rssKiB(target.pid());
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssKiB(target.pid()))), 50);
  const started = process.hrtime.bigint();
  const status = await new Promise<number>((resolve, reject) => {
    const request = http.request(`${target.url}/upload/`, {
      method: 'POST',
      headers: {
        'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
        'content-length': head.length + bytes + tail.length,
      },
    });
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', reject);
    const chunks = Math.ceil(bytes / chunk.length);
    Readable.from(
      (function* () {
        yield head;
        for (let n = 0; n < chunks; n++) yield chunk;
        yield tail;
      })(),
    ).pipe(request);
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  return {
    status,
    seconds: round(seconds),
    mb_per_s: round(bytes / 1e6 / seconds, 1),
    rss_growth_mib: round((rssPeak - rssBefore) / 1024, 1),
  };
}

/** Adds rows until the table holds `total`, spread over a year, as uploads would have made them. */
async function seedRows(databaseUrl: string, total: number): Promise<void> {
  const missing = total - (await countFiles(databaseUrl));
  if (missing <= 0) return;
  await sql(
    databaseUrl,
    `INSERT INTO files (id, name, size, content_type, kind, sha256, status, attempts, result, uploaded_at, processed_at)
     SELECT gen_random_uuid(), 'seed-' || n || '.txt', 1024, 'text/plain; charset=utf-8', 'text', repeat('a', 64), 'processed', 1,
            '{"sha256_verified": true, "bytes_read": 1024}'::jsonb,
            now() - interval '365 days' + (n || ' seconds')::interval * (31536000.0 / $1), now()
     FROM generate_series(1, $1) AS n`,
    [missing],
  );
  await sql(databaseUrl, 'ANALYZE files');
}

/** First, deep and filtered pages of a table already seeded to `rows`. */
async function listLatency(target: Target, rows: number) {
  const first = await load(`${target.url}/files/?limit=100`, {
    connections: 16,
    seconds: SECONDS,
    serverPid: target.pid(),
  });
  // A page deep in the table: keyset pagination must cost the same as the first.
  const [oldest] = await sql<{ uploaded_at: Date; id: string }>(
    target.databaseUrl,
    'SELECT uploaded_at, id FROM files ORDER BY uploaded_at, id OFFSET 200 LIMIT 1',
  );
  const cursor = Buffer.from(`${oldest!.uploaded_at.toISOString()}_${oldest!.id}`).toString('base64url');
  const deep = await load(`${target.url}/files/?limit=100&cursor=${cursor}`, { connections: 16, seconds: SECONDS });
  const filtered = await load(`${target.url}/files/?limit=100&kind=text&processed=true`, {
    connections: 16,
    seconds: SECONDS,
  });
  return { rows, first_page: first, deep_page: deep, filtered };
}

const E2E_CONCURRENCY = 8;

/**
 * Files per second from the first upload to the last one processed, with `workers` worker processes; `env` goes to
 * the API and the workers, and `cpuOf` names other processes (a scanner) whose CPU per file to report too. The API
 * and workers stop once measured, so that runs one after another do not pile up idle processes.
 */
async function endToEnd(
  kind: string,
  files: Buffer[],
  workers: number,
  env: Record<string, string> = {},
  label = kind,
  cpuOf: Record<string, number> = {},
) {
  const service = await startApi(`e2e_${label}`, { WORKER_CONCURRENCY: String(E2E_CONCURRENCY), ...env });
  const pool: ChildProcess[] = [];
  for (let n = 0; n < workers; n++) {
    const adminPort = nextPort++;
    pool.push(startScript('worker/main.js', { ...service.env, ADMIN_PORT: String(adminPort) }, `worker-${label}-${n}`));
    await waitForPort(`http://127.0.0.1:${adminPort}/readyz`);
  }
  const send = async (queue: Buffer[]) => {
    for (let body = queue.shift(); body; body = queue.shift()) {
      await new Promise<void>((resolve, reject) => {
        const request = http.request(`${service.url}/upload/`, {
          method: 'POST',
          headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': body.length },
        });
        request.on('response', (response) => response.resume().on('end', () => resolve()));
        request.on('error', reject);
        request.end(body);
      });
    }
  };
  /** Uploads `batch` from 16 connections, then waits until `total` files are done. */
  const uploadAndWait = async (batch: Buffer[], total: number) => {
    const started = Date.now();
    const queue = [...batch];
    await Promise.all(Array.from({ length: 16 }, () => send(queue)));
    const uploadSeconds = (Date.now() - started) / 1000;
    let settled = 0;
    while (settled < total && Date.now() - started < 600_000) {
      await sleep(100);
      settled = await countFiles(service.databaseUrl, "status IN ('processed', 'failed')");
    }
    return { uploadSeconds, seconds: (Date.now() - started) / 1000, settled: settled - (total - batch.length) };
  };
  // Untimed first: fresh processes run their first thousand requests unoptimized, at twice the CPU.
  const warmUp = files.slice(0, Math.ceil(files.length / 4));
  await uploadAndWait(warmUp, warmUp.length);
  const timed = files.slice(warmUp.length);
  const workerPids = Object.fromEntries(pool.map((worker, n) => [`worker${n}`, worker.pid!]));
  const { uploadSeconds, seconds, settled, cpu_ms } = await withCpu(
    { api: service.pid(), ...workerPids, ...cpuOf },
    () => uploadAndWait(timed, files.length),
    (done) => done.settled,
  );
  const workersCpu = Object.keys(workerPids).reduce((sum, name) => sum + cpu_ms[name]!, 0);
  const failed = await countFiles(service.databaseUrl, "status = 'failed'");
  for (const worker of pool) await stopProcess(worker);
  await stopProcess(service.process);
  return {
    kind,
    files: timed.length,
    warm_up_files: warmUp.length,
    workers,
    worker_concurrency: E2E_CONCURRENCY,
    upload_seconds: round(uploadSeconds),
    seconds: round(seconds),
    files_per_s: round(settled / seconds, 1),
    failed,
    cpu_ms_per_file: {
      api: cpu_ms.api!,
      workers: round(workersCpu, 3),
      postgres: cpu_ms.postgres!,
      redis: cpu_ms.redis!,
      ...Object.fromEntries(Object.keys(cpuOf).map((name) => [name, cpu_ms[name]!])),
    },
    databaseUrl: service.databaseUrl,
  };
}

/** The small texts of the end-to-end runs: the same workload wherever one is compared with another. */
const textBodies = () =>
  Array.from({ length: quick ? 500 : 4000 }, (_, n) =>
    multipartBody(BOUNDARY, `t${n}.txt`, textFile(1024 + (n % 8) * 512, n)),
  );

async function main(): Promise<void> {
  mkdirSync(work, { recursive: true });
  let results: BenchResults;
  try {
    const measured: Omit<BenchResults, 'date' | 'machine' | 'settings'> = {};
    if (runs('uploads')) {
      const service = await startApi('uploads');
      const baseline = await startBaseline();
      const floor = await startBaseline('floor');
      await scenario('1 KiB uploads, 16 connections');
      measured.upload_1kib = await compareUploads(
        service,
        baseline,
        multipartBody(BOUNDARY, 'small.txt', textFile(1024, 1)),
        16,
        floor,
      );
      await scenario('1 MiB uploads, 8 connections');
      measured.upload_1mib = await compareUploads(
        service,
        baseline,
        multipartBody(BOUNDARY, 'medium.bin', Buffer.alloc(1024 * 1024, 0x5a)),
        8,
      );
      const gib = quick ? 256 * 1024 * 1024 : 1024 ** 3;
      await scenario(`one ${gib / 2 ** 20} MiB upload`);
      const big = { service: await bigUpload(service, gib), baseline: await bigUpload(baseline, gib) };
      measured.upload_1gib = { ...big, mb_per_s_ratio: round(big.service.mb_per_s / big.baseline.mb_per_s) };
    }
    if (runs('e2e')) {
      await scenario('end to end: text');
      const texts = textBodies();
      measured.e2e_text = withoutUrl(await endToEnd('text', texts, 1));
      // The same, with each upload's INSERT alone (as before they were batched): PostgreSQL's CPU per file, before/after.
      await scenario('end to end: text, one INSERT per upload');
      measured.e2e_text_single_insert = withoutUrl(
        await endToEnd('text', texts, 1, { DATABASE_INSERT_BATCH_MAX: '1' }, 'text_single_insert'),
      );
      await scenario('end to end: images');
      const images = Array.from({ length: quick ? 100 : 600 }, (_, n) =>
        multipartBody(BOUNDARY, `i${n}.png`, pngImage(640, 480, n)),
      );
      measured.e2e_image = withoutUrl(await endToEnd('image', images, 1));
    }
    if (runs('object_storage')) {
      const smallForm = multipartBody(BOUNDARY, 'small.txt', textFile(1024, 1));
      const mediumForm = multipartBody(BOUNDARY, 'medium.bin', Buffer.alloc(1024 * 1024, 0x5a));
      measured.object_storage = await benchObjectStorage(
        {
          seconds: SECONDS,
          quick,
          scenario,
          startApi,
          uploads: (url, body, connections, pid) =>
            load(url, { method: 'POST', body, connections, seconds: SECONDS, serverPid: pid }),
          bigUpload,
          round,
        },
        smallForm,
        mediumForm,
      );
    }
    if (runs('webhooks')) {
      measured.webhooks = await benchWebhooks({
        quick,
        scenario,
        startApiAndWorker,
        sql,
        uploadBody: (n) => multipartBody(BOUNDARY, `w${n}.txt`, textFile(1024, n)),
        boundary: BOUNDARY,
        round,
      });
    }
    if (runs('tus')) measured.tus = await benchTus({ quick, scenario, startApi, bigUpload, round });
    if (runs('pools')) {
      measured.pools = await benchPools({
        quick,
        scenario,
        startApiAndWorker,
        sql,
        imageBody: (n) => multipartBody(BOUNDARY, `burst${n}.png`, pngImage(640, 480, 10_000 + n)),
        textBody: (n) => multipartBody(BOUNDARY, `steady${n}.txt`, textFile(1024, 20_000 + n)),
        boundary: BOUNDARY,
        round,
      });
    }
    if (runs('scanning')) {
      const texts = textBodies();
      measured.scanning = await benchScanning({
        quick,
        rounds: ROUNDS,
        scenario,
        startApiAndWorker,
        sql,
        endToEndText: async (label, env, cpuOf) => withoutUrl(await endToEnd('text', texts, 1, env, label, cpuOf)),
        boundary: BOUNDARY,
        round,
      });
    }
    if (runs('rendering')) {
      measured.rendering = await benchRendering({
        quick,
        rounds: ROUNDS,
        workDir: work,
        scenario,
        startApiAndWorker,
        sql,
        boundary: BOUNDARY,
        round,
      });
    }
    // Last: seeding 10^6 rows leaves PostgreSQL writing and vacuuming for a while after.
    if (runs('list')) {
      const lister = await startApi('list');
      await seedRows(lister.databaseUrl, 10_000);
      await scenario('list latency at 10^4 rows');
      const small = await listLatency(lister, 10_000);
      const largeRows = quick ? 100_000 : 1_000_000;
      await seedRows(lister.databaseUrl, largeRows);
      await scenario(`list latency at ${largeRows} rows`);
      const large = await listLatency(lister, largeRows);
      measured.list = {
        small,
        large,
        p99_ratio: round(large.first_page.p99_ms / Math.max(1, small.first_page.p99_ms)),
        deep_p99_ratio: round(large.deep_page.p99_ms / Math.max(1, small.deep_page.p99_ms)),
      };
    }
    results = {
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        cpu: os.cpus()[0]?.model,
        memory_gib: round(os.totalmem() / 2 ** 30, 1),
        node: process.version,
        load_generator: 'autocannon, on the same machine',
      },
      settings: { seconds_per_round: SECONDS, rounds: ROUNDS, quick, sections },
      ...measured,
    };
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await sleep(1_000);
    // Only now, with every timed run over, may the uploads go.
    rmSync(work, { recursive: true, force: true });
    for (const databaseUrl of databases) await dropDatabase(databaseUrl).catch(() => undefined);
    // Its queues too: jobs still waiting when the workers stopped would stay in the shared Redis.
    await deleteKeys(redisUrl, `bench-${process.pid}:*`).catch(() => undefined);
  }
  writeResults(results);
}

function writeResults(results: BenchResults): void {
  const dir = path.join(root, 'loadtest', 'results');
  // A quick run is a smoke test of the benchmark, not a measurement, and a partial one is not the whole: the names say so.
  const partial = sections.length < SECTIONS.length ? `-${sections.join('-')}` : '';
  const name = `${stamp.slice(0, 19)}${partial}${quick ? '-quick' : ''}`;
  writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
  const { markdown, bars } = summarize(results);
  writeFileSync(path.join(dir, `${name}.md`), markdown);
  writeFileSync(path.join(dir, `${name}.svg`), renderChart(`file-processor benchmark ${name}`, bars));
  process.stdout.write(`\n${markdown}\nwrote loadtest/results/${name}.{json,md,svg}\n`);
}

/** Requests a second that one fully busy core of the process serves, from its CPU time per request. */
function perCore(cpuMs: number | undefined, unit: string, baselineCpuMs?: number): string {
  const rate = (ms: number | undefined) => (ms ? Math.round(1000 / ms) : 'n/a');
  return `${rate(cpuMs)} ${unit} (${cpuMs} ms CPU each)${baselineCpuMs ? `; baseline ${rate(baselineCpuMs)} ${unit}` : ''}`;
}

const cpuPerFile = ({ cpu_ms_per_file: cpu }: EndToEnd): string =>
  `API ${cpu.api} ms, worker ${cpu.workers} ms, PostgreSQL ${cpu.postgres} ms, Redis ${cpu.redis} ms`;

/** The table of targets and figures, and the bars of the chart (measured against target, as ratios). */
function summarize(r: BenchResults): { markdown: string; bars: Bar[] } {
  const rows: TableRow[] = [];
  if (r.upload_1kib && r.upload_1mib && r.upload_1gib)
    rows.push(
      [
        '1 KiB uploads, RPS vs baseline',
        `${r.upload_1kib.service.rps} / ${r.upload_1kib.baseline.rps}`,
        `${r.upload_1kib.rps_ratio}`,
        '≥ 0.7',
        r.upload_1kib.rps_ratio >= 0.7,
      ],
      [
        '1 KiB uploads, RPS vs the bare floor (busboy → file, one INSERT, one LPUSH); CPU per upload of the API / floor process',
        `${r.upload_1kib.service.rps} / ${r.upload_1kib.floor?.rps}; ${r.upload_1kib.service.server_cpu_ms} / ${r.upload_1kib.floor?.server_cpu_ms} ms`,
        `${r.upload_1kib.floor_rps_ratio}`,
        '≥ 0.7',
        (r.upload_1kib.floor_rps_ratio ?? 0) >= 0.7,
      ],
      [
        '1 KiB uploads, p99, saturated',
        `${r.upload_1kib.service.p99_ms} ms (baseline ${r.upload_1kib.baseline.p99_ms} ms)`,
        '',
        '< 25 ms',
        r.upload_1kib.service.p99_ms < 25,
      ],
      [
        `1 KiB uploads, p50 / p99 at ${r.upload_1kib.half_load.rate} req/s (half of capacity)`,
        `${r.upload_1kib.half_load.service.p50_ms} / ${r.upload_1kib.half_load.service.p99_ms} ms (baseline ${r.upload_1kib.half_load.baseline.p50_ms} / ${r.upload_1kib.half_load.baseline.p99_ms} ms)`,
        '',
        '< 25 ms',
        r.upload_1kib.half_load.service.p99_ms < 25,
      ],
      [
        '1 MiB uploads, RPS vs baseline',
        `${r.upload_1mib.service.rps} / ${r.upload_1mib.baseline.rps} (${r.upload_1mib.service.mb_per_s} MB/s)`,
        `${r.upload_1mib.rps_ratio}`,
        '',
        true,
      ],
      [
        '1 GiB upload, MB/s vs baseline',
        `${r.upload_1gib.service.mb_per_s} / ${r.upload_1gib.baseline.mb_per_s}`,
        `${r.upload_1gib.mb_per_s_ratio}`,
        '≥ 0.6',
        r.upload_1gib.mb_per_s_ratio >= 0.6,
      ],
      [
        '1 GiB upload, server RSS growth',
        `${r.upload_1gib.service.rss_growth_mib} MiB (baseline ${r.upload_1gib.baseline.rss_growth_mib} MiB)`,
        '',
        '< 64 MiB',
        r.upload_1gib.service.rss_growth_mib < 64,
      ],
    );
  if (r.list)
    rows.push(
      [
        'list p99, 10^6 vs 10^4 rows',
        `${r.list.large.first_page.p99_ms} / ${r.list.small.first_page.p99_ms} ms`,
        `${r.list.p99_ratio}`,
        '≤ 1.2',
        r.list.p99_ratio <= 1.2,
      ],
      [
        'list p99 deep page, 10^6 vs 10^4',
        `${r.list.large.deep_page.p99_ms} / ${r.list.small.deep_page.p99_ms} ms`,
        `${r.list.deep_p99_ratio}`,
        '≤ 1.2',
        r.list.deep_p99_ratio <= 1.2,
      ],
    );
  if (r.e2e_text && r.e2e_text_single_insert && r.e2e_image)
    rows.push(
      [
        'text, upload to processed',
        `${r.e2e_text.files_per_s} files/s (${r.e2e_text.files} files, ${r.e2e_text.workers} worker)`,
        '',
        '≥ 400/s',
        r.e2e_text.files_per_s >= 400,
      ],
      [
        'images 640x480, upload to processed',
        `${r.e2e_image.files_per_s} files/s (${r.e2e_image.files} files, ${r.e2e_image.workers} worker)`,
        '',
        '',
        true,
      ],
    );
  if (r.upload_1kib && r.upload_1mib && r.upload_1gib)
    rows.push(
      [
        '1 KiB uploads per core of the API process',
        perCore(r.upload_1kib.service.server_cpu_ms, 'uploads/s', r.upload_1kib.baseline.server_cpu_ms),
        '',
        '',
        true,
      ],
      [
        '1 MiB uploads per core of the API process',
        perCore(r.upload_1mib.service.server_cpu_ms, 'uploads/s', r.upload_1mib.baseline.server_cpu_ms),
        '',
        '',
        true,
      ],
      ['PostgreSQL CPU per 1 KiB upload', `${r.upload_1kib.service.postgres_cpu_ms} ms`, '', '', true],
    );
  if (r.list)
    rows.push([
      'list pages (10^6 rows) per core of the API process',
      perCore(r.list.large.first_page.server_cpu_ms, 'pages/s'),
      '',
      '',
      true,
    ]);
  if (r.object_storage)
    rows.push(
      [
        '1 KiB uploads into the bucket, API vs the SDK to the same gateway',
        `${r.object_storage.upload_1kib.api_rps} / ${r.object_storage.upload_1kib.sdk_rps} per s (disk store: ${r.upload_1kib?.service.rps ?? 'not run'})`,
        `${r.object_storage.upload_1kib.rps_ratio}`,
        '',
        true,
      ],
      [
        '1 GiB upload into the bucket, MB/s vs the SDK',
        `${r.object_storage.upload_1gib.api_mb_per_s} / ${r.object_storage.upload_1gib.sdk_mb_per_s}`,
        `${r.object_storage.upload_1gib.mb_per_s_ratio}`,
        '≥ 0.6',
        r.object_storage.upload_1gib.mb_per_s_ratio >= 0.6,
      ],
      [
        '1 GiB upload into the bucket, API RSS growth',
        `${r.object_storage.upload_1gib.api_rss_growth_mib} MiB`,
        '',
        '< 64 MiB',
        r.object_storage.upload_1gib.api_rss_growth_mib < 64,
      ],
      [
        'API CPU per direct upload vs per proxied 1 MiB upload (bucket)',
        `${r.object_storage.direct_upload.api_cpu_ms} / ${r.object_storage.direct_upload.proxied_1mib_api_cpu_ms} ms`,
        `${r.object_storage.direct_upload.cpu_ratio}`,
        '≤ 0.2',
        r.object_storage.direct_upload.cpu_ratio <= 0.2,
      ],
      [
        'CPU of one S3 call: SDK HeadObject / ranged GetObject / presign; the ranged GET by node:http',
        `${r.object_storage.call_cpu_ms.head} / ${r.object_storage.call_cpu_ms.ranged_get} / ${r.object_storage.call_cpu_ms.presign}; ${r.object_storage.call_cpu_ms.ranged_get_node_http} ms`,
        '',
        '',
        true,
      ],
    );
  if (r.webhooks)
    rows.push([
      'webhook latency, File settled to receiver, p50 / p90 / p99 / max',
      `${r.webhooks.latency_ms.p50} / ${r.webhooks.latency_ms.p90} / ${r.webhooks.latency_ms.p99} / ${r.webhooks.latency_ms.max} ms (${r.webhooks.files} texts at ${r.webhooks.files_per_s}/s)`,
      '',
      '',
      true,
    ]);
  if (r.tus)
    rows.push([
      '1 GiB tus upload (8 MiB chunks; the last 204 includes the SHA-256 read-back and the File insert) vs POST /upload/, MB/s; API RSS growth',
      `${r.tus.tus.mb_per_s} / ${r.tus.post.mb_per_s} MB/s (RSS +${r.tus.tus.rss_growth_mib} / +${r.tus.post.rss_growth_mib} MiB)`,
      `${r.tus.mb_per_s_ratio}`,
      '',
      true,
    ]);
  if (r.pools)
    rows.push([
      `text p95 upload to processed behind a burst of ${r.pools.images} PNGs (${r.pools.texts} texts at ${r.pools.texts_per_s}/s, worker concurrency ${r.pools.worker_concurrency}): two pools vs one shared queue`,
      `${r.pools.pools.p95_ms} / ${r.pools.shared.p95_ms} ms (p50 ${r.pools.pools.p50_ms} / ${r.pools.shared.p50_ms} ms; images drained in ${r.pools.pools.images_drained_s} / ${r.pools.shared.images_drained_s} s)`,
      `${r.pools.p95_ratio}`,
      '≤ 0.2',
      r.pools.p95_ratio <= 0.2,
    ]);
  if (r.e2e_text && r.e2e_text_single_insert && r.e2e_image)
    rows.push(
      ['CPU per text file, upload to processed', cpuPerFile(r.e2e_text), '', '', true],
      [
        "PostgreSQL CPU per text file, upload to processed: the API's INSERTs batched vs one per upload (DATABASE_INSERT_BATCH_MAX=1)",
        `${r.e2e_text.cpu_ms_per_file.postgres} / ${r.e2e_text_single_insert.cpu_ms_per_file.postgres} ms (${r.e2e_text.files_per_s} / ${r.e2e_text_single_insert.files_per_s} files/s)`,
        `${round(r.e2e_text.cpu_ms_per_file.postgres / r.e2e_text_single_insert.cpu_ms_per_file.postgres)}`,
        '≤ 1.0 ms',
        r.e2e_text.cpu_ms_per_file.postgres <= 1.0,
      ],
      ['CPU per 640x480 image, upload to processed', cpuPerFile(r.e2e_image), '', '', true],
    );
  if (r.scanning) rows.push(...scanningRows(r.scanning));
  if (r.rendering) rows.push(...renderingRows(r.rendering));
  const partial = r.settings.sections.length < SECTIONS.length;
  const markdown = [
    `# Benchmark ${r.date}`,
    '',
    `${r.machine.cpus} × ${r.machine.cpu}, ${r.machine.memory_gib} GiB, Node ${r.machine.node}; load from ${r.machine.load_generator}; ${r.settings.rounds} alternating rounds of ${r.settings.seconds_per_round} s per upload scenario (median shown).${partial ? ` Only ${r.settings.sections.join(', ')} (BENCH_ONLY).` : ''}`,
    '',
    '| scenario | measured | ratio | target | met |',
    '|---|---|---|---|---|',
    ...rows.map(
      ([scenario, measured, ratio, target, met]) =>
        `| ${scenario} | ${measured} | ${ratio} | ${target} | ${target ? (met ? 'yes' : '**no**') : ''} |`,
    ),
    '',
    ...(r.scanning ? scanningNotes(r.scanning) : []),
  ].join('\n');
  const bars: Bar[] = [];
  if (r.upload_1kib && r.upload_1gib)
    bars.push(
      { label: '1 KiB RPS / baseline', value: r.upload_1kib.rps_ratio, target: 0.7, higherIsBetter: true },
      { label: '1 GiB MB/s / baseline', value: r.upload_1gib.mb_per_s_ratio, target: 0.6, higherIsBetter: true },
      {
        label: '1 KiB p99 saturated / 25 ms',
        value: round(r.upload_1kib.service.p99_ms / 25),
        target: 1,
        higherIsBetter: false,
      },
      {
        label: '1 KiB p99 half load / 25 ms',
        value: round(r.upload_1kib.half_load.service.p99_ms / 25),
        target: 1,
        higherIsBetter: false,
      },
      {
        label: 'RSS growth / 64 MiB',
        value: round(r.upload_1gib.service.rss_growth_mib / 64),
        target: 1,
        higherIsBetter: false,
      },
    );
  if (r.list) bars.push({ label: 'list p99 10^6 / 10^4', value: r.list.p99_ratio, target: 1.2, higherIsBetter: false });
  if (r.e2e_text)
    bars.push({
      label: 'text files/s / 400',
      value: round(r.e2e_text.files_per_s / 400),
      target: 1,
      higherIsBetter: true,
    });
  if (r.pools)
    bars.push({ label: 'text p95, pools / shared', value: r.pools.p95_ratio, target: 0.2, higherIsBetter: false });
  if (r.scanning) bars.push(...scanningBars(r.scanning));
  if (r.rendering) bars.push(...renderingBars(r.rendering));
  return { markdown, bars };
}

main().catch((err: unknown) => {
  for (const child of children) child.kill('SIGKILL');
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
