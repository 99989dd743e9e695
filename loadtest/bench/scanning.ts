// The malware-scanning part of `make bench` (SCAN_CLAMD), against a clamd of this run's own (test/support/clamd.ts:
// Debian's clamd with a tiny test signature database, so absolute MB/s are an upper bound for a production one):
//  - scanning throughput, MB/s, of 1 MiB and of 50 MiB files: the worker scanning stored files through our client
//    (core/scanner/clamd.ts), against `clamdscan --stream` sending the same bytes to the same clamd;
//  - small texts from upload to processed with scanning on against off: files/s, and CPU per file (worker, clamd).
//
// How the throughput comparison is kept fair:
//  - The same bytes: random ones (kind `other`, whose processing past the scan is one SHA-256 read-back), uploaded
//    untimed and scanned once on arrival, which warms clamd, the worker and the page cache; clamdscan then reads the
//    very blobs the worker reads, from the store's directory.
//  - The same concurrency C, over TCP to the same clamd: the worker at WORKER_CONCURRENCY=C against C clamdscan
//    processes given every C-th file each (file counts are multiples of C, so the shares are equal).
//  - A service round is one bulk `POST /files/reprocess` of them all, from the request to the last `processed_at`:
//    it counts what the service adds to the scan (re-queue, queue, database, the read-back), so its ratio is a floor
//    for the scanning itself; the worker's scan step alone (scan_bytes_total over the sum of scan_duration_seconds,
//    per stream) is shown beside it, against clamdscan's bytes over the sum of its processes' times. A clamdscan
//    round counts its C process starts.
//  - After one untimed round of each, rounds alternate (service, clamdscan, clamdscan, service...): the median each.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cpuMsOf, treeCpuMsOf } from '../../core/procfs.js';
import { LocalDiskStore } from '../../core/storage/localDisk.js';
import { CLAMD, clamdSays, startClamd, type Clamd } from '../../test/support/clamd.js';
import type { Bar, TableRow } from './chart.js';
import { multipartBody } from './fixtures.js';
import { median, medianBy, postJson, reapedChildrenCpuMs } from './rounds.js';
import { settled, uploader } from './uploads.js';

export interface ScanningBenchTools {
  quick: boolean;
  rounds: number;
  scenario(message: string): Promise<void>;
  /** The production API on a database of its own, and one worker beside it, with these settings each. */
  startApiAndWorker(
    name: string,
    env: Record<string, string>,
    workerEnv: Record<string, string>,
  ): Promise<ServiceUnderTest>;
  sql<T>(databaseUrl: string, text: string, values?: unknown[]): Promise<T[]>;
  /** run.ts's end-to-end run of small texts (the same ones every call): `env` to the API and worker, `cpuOf` measured too. */
  endToEndText(label: string, env: Record<string, string>, cpuOf: Record<string, number>): Promise<EndToEndRun>;
  boundary: string;
  round: (value: number, digits?: number) => number;
}

interface ServiceUnderTest {
  url: string;
  databaseUrl: string;
  storageDir: string;
  worker: { pid: number; adminUrl: string };
  stop(): Promise<void>;
}

/** What this part reads of an end-to-end run (run.ts's endToEnd). */
interface EndToEndRun {
  files: number;
  files_per_s: number;
  failed: number;
  /** CPU per file of the API, the worker, PostgreSQL, Redis and the processes asked for (here `clamd`), in ms. */
  cpu_ms_per_file: Record<string, number>;
}

interface ServiceRound {
  seconds: number;
  /** Bytes of all the files over the round's time. */
  mb_per_s: number;
  /** The worker's scan step alone, per concurrent scan: scan_bytes_total / sum of scan_duration_seconds. */
  scan_step_mb_per_s: number;
  /** The worker's CPU (its whole job: scan, read-back, queue, database) and clamd's. */
  cpu_ms_per_mib: { worker: number; clamd: number };
}

interface ClamdscanRound {
  seconds: number;
  mb_per_s: number;
  /** Per process: bytes over the sum of the processes' times (each scans its files one after another). */
  per_stream_mb_per_s: number;
  cpu_ms_per_mib: { clamdscan: number; clamd: number };
}

interface ThroughputComparison {
  files: number;
  file_mib: number;
  concurrency: number;
  /** The median round of each. */
  service: ServiceRound;
  clamdscan: ClamdscanRound;
  rounds: { service: ServiceRound[]; clamdscan: ClamdscanRound[] };
  /** service / clamdscan, MB/s: the figure (target at least SCAN_MB_PER_S_RATIO_TARGET). */
  mb_per_s_ratio: number;
  /** The worker's scan step / a clamdscan process, per stream. */
  scan_step_ratio: number;
}

interface TextScanning {
  /** The median round of each. */
  on: EndToEndRun;
  off: EndToEndRun;
  rounds: { on: EndToEndRun[]; off: EndToEndRun[] };
  files_per_s_ratio: number;
  /** What scanning adds per file: wall time at this concurrency (1/on - 1/off), and CPU of every process measured. */
  cost_ms_per_file: { wall: number; cpu: number };
}

export type ScanningBench =
  | { skipped: string }
  | {
      clamd: { version: string; stream_max_length_mib: number; signatures: string };
      worker_concurrency: number;
      throughput: { files_1mib: ThroughputComparison; files_50mib: ThroughputComparison };
      text: TextScanning;
    };

/** The worker's WORKER_CONCURRENCY and the clamdscan processes a round: the test clamd's MaxThreads, and the default. */
const CONCURRENCY = 4;
const MIB = 1024 * 1024;
const STREAM_MAX_LENGTH = 128 * MIB;
const SCAN_MB_PER_S_RATIO_TARGET = 0.8;

export async function benchScanning(tools: ScanningBenchTools): Promise<ScanningBench> {
  const missing = missingTool();
  if (missing) {
    process.stdout.write(`scanning: skipped, ${missing}\n`);
    return { skipped: missing };
  }
  const clamd = await startClamd({ streamMaxLength: STREAM_MAX_LENGTH });
  try {
    const clamdPid = pidOfClamd(clamd);
    const clamdscanConfig = path.join(clamd.dir, 'clamdscan.conf');
    // TCP only, as the worker's SCAN_CLAMD: with a LocalSocket in its configuration, clamdscan would take that.
    writeFileSync(
      clamdscanConfig,
      `TCPSocket ${clamd.port}\nTCPAddr 127.0.0.1\nStreamMaxLength ${STREAM_MAX_LENGTH}\n`,
    );
    const compare = (files: number, fileMib: number) =>
      throughput(tools, { clamd, clamdPid, clamdscanConfig }, files, fileMib);
    const files1mib = await compare(tools.quick ? 32 : 128, 1);
    const files50mib = await compare(tools.quick ? 4 : 8, 50);
    const text = await textsOnAndOff(tools, clamd, clamdPid);
    return {
      clamd: {
        version: await clamdSays(clamd.port, 'zVERSION\0', 10_000),
        stream_max_length_mib: STREAM_MAX_LENGTH / MIB,
        signatures: 'a test database of 2 signatures (test/support/clamd.ts), no official ones',
      },
      worker_concurrency: CONCURRENCY,
      throughput: { files_1mib: files1mib, files_50mib: files50mib },
      text,
    };
  } finally {
    await clamd.destroy();
  }
}

/** Why this part cannot run here, or null. */
function missingTool(): string | null {
  if (!existsSync(CLAMD)) return `${CLAMD} is not installed (apt-get install clamav-daemon)`;
  if (spawnSync('clamdscan', ['--version']).error) return 'clamdscan is not installed (apt-get install clamdscan)';
  return null;
}

/** clamd's own pid (setpriv execs it): the process named clamd whose command line names this clamd's directory. */
function pidOfClamd(clamd: Clamd): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'clamd') continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(clamd.dir)) return Number(entry);
    } catch {
      // Gone between the listing and the read.
    }
  }
  throw new Error(`no clamd process with ${clamd.dir} in its command line`);
}

interface ScannerUnderTest {
  clamd: Clamd;
  clamdPid: number;
  clamdscanConfig: string;
}

async function throughput(
  tools: ScanningBenchTools,
  scanner: ScannerUnderTest,
  count: number,
  fileMib: number,
): Promise<ThroughputComparison> {
  const label = `${count} × ${fileMib} MiB`;
  const service = await tools.startApiAndWorker(
    `scan_${fileMib}mib`,
    { SCAN_CLAMD: scanner.clamd.address },
    { WORKER_CONCURRENCY: String(CONCURRENCY) },
  );
  const upload = uploader(service.url, tools.boundary);
  const ids: string[] = [];
  for (let n = 0; n < count; n++)
    ids.push(await upload(multipartBody(tools.boundary, `random${n}.bin`, randomBytes(fileMib * MIB))));
  await settled(tools, service.databaseUrl);
  await expectAllClean(tools, service.databaseUrl, count, `${label}, on arrival`);
  const store = new LocalDiskStore(service.storageDir);
  const paths = ids.map((id) => store.pathOf(id));
  const bytes = count * fileMib * MIB;

  const serviceRound = async (): Promise<ServiceRound> => {
    const [metricsBefore, workerCpu, clamdCpu] = [
      await scanMetrics(service.worker.adminUrl),
      treeCpuMsOf(service.worker.pid),
      cpuMsOf(scanner.clamdPid) ?? 0,
    ];
    const started = Date.now();
    const answer = await postJson(`${service.url}/files/reprocess`, {
      status: 'processed',
      kind: 'other',
      limit: count,
    });
    if ((answer as { requeued?: number }).requeued !== count)
      throw new Error(`POST /files/reprocess re-queued ${JSON.stringify(answer)}, not ${count} files`);
    await settled(tools, service.databaseUrl);
    const ended = await expectAllClean(tools, service.databaseUrl, count, label);
    const metricsAfter = await scanMetrics(service.worker.adminUrl);
    const seconds = (ended - started) / 1000;
    const scanned = metricsAfter.bytes - metricsBefore.bytes;
    if (scanned !== bytes) throw new Error(`the worker scanned ${scanned} bytes, not ${bytes}`);
    return {
      seconds: tools.round(seconds, 3),
      mb_per_s: tools.round(bytes / 1e6 / seconds, 1),
      scan_step_mb_per_s: tools.round(scanned / 1e6 / (metricsAfter.seconds - metricsBefore.seconds), 1),
      cpu_ms_per_mib: {
        worker: tools.round(((treeCpuMsOf(service.worker.pid) - workerCpu) * MIB) / bytes, 2),
        clamd: tools.round((((cpuMsOf(scanner.clamdPid) ?? 0) - clamdCpu) * MIB) / bytes, 2),
      },
    };
  };

  const clamdscanRound = async (): Promise<ClamdscanRound> => {
    const shares = Array.from({ length: CONCURRENCY }, (_, k) => paths.filter((_, n) => n % CONCURRENCY === k));
    const [clamdscanCpu, clamdCpu] = [reapedChildrenCpuMs(), cpuMsOf(scanner.clamdPid) ?? 0];
    const started = process.hrtime.bigint();
    const times = await Promise.all(
      shares.filter((share) => share.length > 0).map((share) => clamdscan(scanner.clamdscanConfig, share)),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return {
      seconds: tools.round(seconds, 3),
      mb_per_s: tools.round(bytes / 1e6 / seconds, 1),
      per_stream_mb_per_s: tools.round(bytes / 1e6 / times.reduce((sum, time) => sum + time, 0), 1),
      cpu_ms_per_mib: {
        clamdscan: tools.round(((reapedChildrenCpuMs() - clamdscanCpu) * MIB) / bytes, 2),
        clamd: tools.round((((cpuMsOf(scanner.clamdPid) ?? 0) - clamdCpu) * MIB) / bytes, 2),
      },
    };
  };

  // Untimed first: the bulk reprocess path and clamdscan's first start.
  await serviceRound();
  await clamdscanRound();
  await tools.scenario(
    `scanning throughput, ${label}: worker (concurrency ${CONCURRENCY}) vs ${CONCURRENCY} × clamdscan --stream, ${tools.rounds} rounds`,
  );
  const rounds: ThroughputComparison['rounds'] = { service: [], clamdscan: [] };
  for (let n = 0; n < tools.rounds; n++) {
    if (n % 2 === 0) {
      rounds.service.push(await serviceRound());
      rounds.clamdscan.push(await clamdscanRound());
    } else {
      rounds.clamdscan.push(await clamdscanRound());
      rounds.service.push(await serviceRound());
    }
  }
  await service.stop();
  const medianService = medianBy(rounds.service, (round) => round.mb_per_s);
  const medianClamdscan = medianBy(rounds.clamdscan, (round) => round.mb_per_s);
  return {
    files: count,
    file_mib: fileMib,
    concurrency: CONCURRENCY,
    service: medianService,
    clamdscan: medianClamdscan,
    rounds,
    mb_per_s_ratio: tools.round(medianService.mb_per_s / medianClamdscan.mb_per_s),
    scan_step_ratio: tools.round(
      median(rounds.service.map((round) => round.scan_step_mb_per_s)) /
        median(rounds.clamdscan.map((round) => round.per_stream_mb_per_s)),
    ),
  };
}

/** The same small texts from upload to processed with scanning on and off, alternating: files/s and CPU per file. */
async function textsOnAndOff(tools: ScanningBenchTools, clamd: Clamd, clamdPid: number): Promise<TextScanning> {
  const rounds: TextScanning['rounds'] = { on: [], off: [] };
  for (let n = 0; n < tools.rounds; n++) {
    for (const scanning of n % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
      await tools.scenario(`end to end: text, scanning ${scanning} (round ${n + 1} of ${tools.rounds})`);
      // clamd's CPU is measured both ways: off, it shows what an idle clamd costs (nothing).
      const run = await tools.endToEndText(
        `text_scan_${scanning}_${n}`,
        scanning === 'on' ? { SCAN_CLAMD: clamd.address } : {},
        { clamd: clamdPid },
      );
      rounds[scanning].push(run);
    }
  }
  const on = medianBy(rounds.on, (run) => run.files_per_s);
  const off = medianBy(rounds.off, (run) => run.files_per_s);
  const allCpu = (run: EndToEndRun) => Object.values(run.cpu_ms_per_file).reduce((sum, ms) => sum + ms, 0);
  return {
    on,
    off,
    rounds,
    files_per_s_ratio: tools.round(on.files_per_s / off.files_per_s),
    cost_ms_per_file: {
      wall: tools.round(1000 / on.files_per_s - 1000 / off.files_per_s, 3),
      cpu: tools.round(allCpu(on) - allCpu(off), 3),
    },
  };
}

/** Checks every file was processed and found clean, and answers when the last one was (ms since the epoch). */
async function expectAllClean(
  tools: ScanningBenchTools,
  databaseUrl: string,
  count: number,
  what: string,
): Promise<number> {
  const [row] = await tools.sql<{ clean: string; last: number }>(
    databaseUrl,
    `SELECT count(*) FILTER (WHERE status = 'processed' AND kind = 'other' AND scan->>'status' = 'clean') AS clean,
            (extract(epoch FROM max(processed_at)) * 1000)::float8 AS last
     FROM files`,
  );
  if (Number(row?.clean) !== count) throw new Error(`${what}: ${row?.clean} of ${count} files processed and clean`);
  return row!.last;
}

/** The worker's scan_bytes_total and the sum of its scan_duration_seconds, from its admin /metrics. */
async function scanMetrics(adminUrl: string): Promise<{ bytes: number; seconds: number }> {
  const response = await fetch(`${adminUrl}/metrics`);
  if (!response.ok) throw new Error(`${adminUrl}/metrics answered ${response.status}`);
  const text = await response.text();
  const sum = (name: string) =>
    [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce(
      (total, match) => total + Number(match[1]),
      0,
    );
  return { bytes: sum('scan_bytes_total'), seconds: sum('scan_duration_seconds_sum') };
}

/** One clamdscan process over `files`, one after another; resolves with its time in seconds once all were OK. */
function clamdscan(config: string, files: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('clamdscan', ['--stream', '--no-summary', `--config-file=${config}`, ...files], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (data: Buffer) => (output += data.toString()));
    child.stderr.on('data', (data: Buffer) => (output += data.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const clean = output.split('\n').filter((line) => line.endsWith(': OK')).length;
      if (code === 0 && clean === files.length) resolve(seconds);
      else
        reject(
          new Error(`clamdscan exited ${code} with ${clean} of ${files.length} files OK:\n${output.slice(-2_000)}`),
        );
    });
  });
}

export function scanningRows(bench: ScanningBench): TableRow[] {
  if ('skipped' in bench) return [['malware scanning (SCAN_CLAMD)', `skipped: ${bench.skipped}`, '', '', true]];
  const throughputRow = (comparison: ThroughputComparison): TableRow => {
    const { service, clamdscan: client } = comparison;
    return [
      `scanning ${comparison.files} × ${comparison.file_mib} MiB random files, MB/s: the worker (concurrency ${comparison.concurrency}; bulk reprocess to processed) vs ${comparison.concurrency} × clamdscan --stream, same clamd`,
      `${service.mb_per_s} / ${client.mb_per_s} MB/s; the scan step alone ${service.scan_step_mb_per_s} / ${client.per_stream_mb_per_s} MB/s per stream (${comparison.scan_step_ratio}); CPU per MiB: worker (its whole job) ${service.cpu_ms_per_mib.worker} / clamdscan ${client.cpu_ms_per_mib.clamdscan} ms, clamd ${service.cpu_ms_per_mib.clamd} / ${client.cpu_ms_per_mib.clamd} ms`,
      `${comparison.mb_per_s_ratio}`,
      `≥ ${SCAN_MB_PER_S_RATIO_TARGET}`,
      comparison.mb_per_s_ratio >= SCAN_MB_PER_S_RATIO_TARGET,
    ];
  };
  const { on, off, cost_ms_per_file: cost } = bench.text;
  return [
    throughputRow(bench.throughput.files_1mib),
    throughputRow(bench.throughput.files_50mib),
    [
      `text, upload to processed, scanning on vs off (${on.files} files, worker concurrency 8)`,
      `${on.files_per_s} / ${off.files_per_s} files/s (${on.failed} / ${off.failed} failed); CPU per file: worker ${on.cpu_ms_per_file.workers} / ${off.cpu_ms_per_file.workers} ms, clamd ${on.cpu_ms_per_file.clamd} / ${off.cpu_ms_per_file.clamd} ms, API ${on.cpu_ms_per_file.api} / ${off.cpu_ms_per_file.api} ms; scanning costs ${cost.cpu} ms CPU (all processes) and ${cost.wall} ms of wall time per file`,
      `${bench.text.files_per_s_ratio}`,
      '',
      true,
    ],
  ];
}

export function scanningBars(bench: ScanningBench): Bar[] {
  if ('skipped' in bench) return [];
  return [
    { label: 'scan 1 MiB MB/s / clamdscan', value: bench.throughput.files_1mib.mb_per_s_ratio },
    { label: 'scan 50 MiB MB/s / clamdscan', value: bench.throughput.files_50mib.mb_per_s_ratio },
  ].map((bar) => ({ ...bar, target: SCAN_MB_PER_S_RATIO_TARGET, higherIsBetter: true }));
}

/** What the table's scanning figures need beside them. */
export function scanningNotes(bench: ScanningBench): string[] {
  if ('skipped' in bench) return [];
  return [
    `Scanning: clamd (${bench.clamd.version}) runs here with a tiny test signature database (no official signatures can be downloaded on this machine), so absolute MB/s are an upper bound for a production database; the ratio to clamdscan on the same clamd is what compares.`,
    '',
  ];
}
