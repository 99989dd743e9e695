// The renderings part of `make bench`: for images, PDFs and videos, the worker's CPU per file (its whole job: queue,
// database, parser process, the renderer under its limits, both WebPs) against the same rendering done alone
// (loadtest/bench/renderAlone.ts: the same tool and the same sharp calls, in a bare process, without the service), on
// the same files, in the same run. The target: at most 1.3.
//
// How it is kept fair: the files are uploaded untimed and processed once on arrival (warming the worker, its parser
// processes and the page cache); a service round is one bulk `POST /files/reprocess` of the kind, timed to the last
// `processed_at`; an alone round runs CONCURRENCY processes given every CONCURRENCY-th file each, the worker's
// concurrency; after one untimed round of each, rounds alternate and the median of each is kept.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { treeCpuMsOf } from '../../core/procfs.js';
import { LocalDiskStore } from '../../core/storage/localDisk.js';
import { pdf } from '../../test/support/fixtures.js';
import type { Bar, TableRow } from './chart.js';
import { multipartBody } from './fixtures.js';
import { median, medianBy, postJson, reapedChildrenCpuMs } from './rounds.js';
import { settled, uploader } from './uploads.js';

export interface RenderingBenchTools {
  quick: boolean;
  rounds: number;
  /** A directory of this run's own, for the fixtures. */
  workDir: string;
  scenario(message: string): Promise<void>;
  startApiAndWorker(
    name: string,
    env: Record<string, string>,
    workerEnv: Record<string, string>,
  ): Promise<{
    url: string;
    databaseUrl: string;
    storageDir: string;
    worker: { pid: number };
    stop(): Promise<void>;
  }>;
  sql<T>(databaseUrl: string, text: string, values?: unknown[]): Promise<T[]>;
  boundary: string;
  round: (value: number, digits?: number) => number;
}

export const RENDERED_KINDS = ['image', 'pdf', 'video'] as const;
export type RenderedKind = (typeof RENDERED_KINDS)[number];

interface Round {
  seconds: number;
  files_per_s: number;
  cpu_ms_per_file: number;
}

interface KindComparison {
  files: number;
  /** What the files are, for the table. */
  fixture: string;
  service: Round;
  alone: Round;
  rounds: { service: Round[]; alone: Round[] };
  /** The worker's CPU per file over the renderer's alone: the figure (target at most CPU_RATIO_TARGET). */
  cpu_ratio: number;
}

export type RenderingBench = { skipped: string } | { concurrency: number; kinds: Record<RenderedKind, KindComparison> };

/** The worker's WORKER_CONCURRENCY, and the processes of an alone round: one per core here. */
const CONCURRENCY = 2;
const CPU_RATIO_TARGET = 1.3;

export async function benchRendering(tools: RenderingBenchTools): Promise<RenderingBench> {
  const missing = ['ffmpeg', 'pdftoppm'].find((tool) => spawnSync(tool, ['-version']).error);
  if (missing) {
    process.stdout.write(`rendering: skipped, ${missing} is not installed\n`);
    return { skipped: `${missing} is not installed` };
  }
  const count = tools.quick ? 4 : 16;
  const dir = path.join(tools.workDir, 'rendering');
  mkdirSync(dir, { recursive: true });
  const kinds = {} as Record<RenderedKind, KindComparison>;
  for (const kind of RENDERED_KINDS) kinds[kind] = await compare(tools, kind, await fixtures(kind, count, dir));
  return { concurrency: CONCURRENCY, kinds };
}

interface Fixtures {
  description: string;
  files: Array<{ name: string; bytes: Buffer }>;
}

/** `count` different files of the kind, as people upload them. */
async function fixtures(kind: RenderedKind, count: number, dir: string): Promise<Fixtures> {
  const numbers = Array.from({ length: count }, (_, n) => n);
  switch (kind) {
    case 'image':
      // A phone's photo: 12 megapixels of JPEG, textured (noise over a gradient), so that decoding costs what it does.
      return {
        description: '4000 × 3000 JPEG photos',
        files: await Promise.all(
          numbers.map(async (n) => ({ name: `photo${n}.jpg`, bytes: await photo(4000, 3000, n) })),
        ),
      };
    case 'pdf':
      return {
        description: 'PDFs of 5 text pages',
        files: numbers.map((n) => ({
          name: `report${n}.pdf`,
          bytes: pdf(
            Array.from({ length: 5 }, (_, page) => `Report ${n}, page ${page + 1}: ${'lorem ipsum '.repeat(40)}`),
          ),
        })),
      };
    case 'video':
      return {
        description: '10 s 1280 × 720 H.264 videos with AAC audio',
        files: numbers.map((n) => ({ name: `clip${n}.mp4`, bytes: clip(path.join(dir, `clip${n}.mp4`), n) })),
      };
  }
}

async function photo(width: number, height: number, seed: number): Promise<Buffer> {
  const gradient = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><defs><linearGradient id="g" x2="1" y2="1"><stop offset="0" stop-color="hsl(${(seed * 37) % 360},60%,60%)"/><stop offset="1" stop-color="#203040"/></linearGradient></defs><rect width="100%" height="100%" fill="url(#g)"/><circle cx="${width / 3}" cy="${height / 3}" r="${height / 6}" fill="#f0d060"/></svg>`,
  );
  const noise = await sharp({
    create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 0, sigma: 12 } },
  })
    .png()
    .toBuffer();
  return sharp(gradient)
    .composite([{ input: noise, blend: 'add' }])
    .jpeg({ quality: 85 })
    .toBuffer();
}

function clip(file: string, seed: number): Buffer {
  const made = spawnSync(
    'ffmpeg',
    [
      ...['-nostdin', '-v', 'error', '-y'],
      ...['-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=25:duration=10`],
      ...['-f', 'lavfi', '-i', `sine=frequency=${220 + seed * 10}:duration=10`],
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest'],
      ...['-metadata', `title=clip ${seed}`, file],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  if (made.status !== 0) throw new Error(`ffmpeg could not make ${file}: ${made.stderr.toString().slice(-500)}`);
  return readFileSync(file);
}

async function compare(tools: RenderingBenchTools, kind: RenderedKind, made: Fixtures): Promise<KindComparison> {
  const count = made.files.length;
  const label = `${count} ${made.description}`;
  const service = await tools.startApiAndWorker(`render_${kind}`, {}, { WORKER_CONCURRENCY: String(CONCURRENCY) });
  const upload = uploader(service.url, tools.boundary);
  const ids: string[] = [];
  for (const file of made.files) ids.push(await upload(multipartBody(tools.boundary, file.name, file.bytes)));
  await settled(tools, service.databaseUrl);
  await expectAllRendered(tools, service.databaseUrl, kind, count, `${label}, on arrival`);
  const store = new LocalDiskStore(service.storageDir);
  const paths = ids.map((id) => store.pathOf(id));

  const serviceRound = async (): Promise<Round> => {
    const cpu = treeCpuMsOf(service.worker.pid);
    const started = Date.now();
    const answer = await postJson(`${service.url}/files/reprocess`, { status: 'processed', kind, limit: count });
    if ((answer as { requeued?: number }).requeued !== count)
      throw new Error(`POST /files/reprocess re-queued ${JSON.stringify(answer)}, not ${count} files`);
    await settled(tools, service.databaseUrl);
    const ended = await expectAllRendered(tools, service.databaseUrl, kind, count, label);
    const seconds = (ended - started) / 1000;
    return roundOf(tools, seconds, count, treeCpuMsOf(service.worker.pid) - cpu);
  };
  const aloneRound = async (): Promise<Round> => {
    const shares = Array.from({ length: CONCURRENCY }, (_, k) => paths.filter((_, n) => n % CONCURRENCY === k));
    const cpu = reapedChildrenCpuMs();
    const started = process.hrtime.bigint();
    await Promise.all(shares.filter((share) => share.length > 0).map((share) => renderAlone(kind, share)));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return roundOf(tools, seconds, count, reapedChildrenCpuMs() - cpu);
  };

  await serviceRound();
  await aloneRound();
  await tools.scenario(`rendering, ${label}: the worker (concurrency ${CONCURRENCY}) vs the renderer alone`);
  const rounds: KindComparison['rounds'] = { service: [], alone: [] };
  for (let n = 0; n < tools.rounds; n++) {
    if (n % 2 === 0) {
      rounds.service.push(await serviceRound());
      rounds.alone.push(await aloneRound());
    } else {
      rounds.alone.push(await aloneRound());
      rounds.service.push(await serviceRound());
    }
  }
  await service.stop();
  const medianService = medianBy(rounds.service, (round) => round.cpu_ms_per_file);
  const medianAlone = medianBy(rounds.alone, (round) => round.cpu_ms_per_file);
  return {
    files: count,
    fixture: made.description,
    service: medianService,
    alone: medianAlone,
    rounds,
    cpu_ratio: tools.round(median(rounds.service.map((r) => r.cpu_ms_per_file)) / medianAlone.cpu_ms_per_file),
  };
}

const roundOf = (tools: RenderingBenchTools, seconds: number, count: number, cpuMs: number): Round => ({
  seconds: tools.round(seconds, 3),
  files_per_s: tools.round(count / seconds, 2),
  cpu_ms_per_file: tools.round(cpuMs / count, 1),
});

/** One process rendering `files` one after another, as the worker does (loadtest/bench/renderAlone.ts). */
function renderAlone(kind: RenderedKind, files: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(import.meta.dirname, 'renderAlone.js'), kind, ...files], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let errors = '';
    child.stderr.on('data', (data: Buffer) => (errors += data.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`renderAlone ${kind} exited ${code}: ${errors.slice(-1_000)}`)),
    );
  });
}

/** Checks every file of the kind was processed with both renderings; answers when the last one was (epoch ms). */
async function expectAllRendered(
  tools: RenderingBenchTools,
  databaseUrl: string,
  kind: RenderedKind,
  count: number,
  what: string,
): Promise<number> {
  const [row] = await tools.sql<{ rendered: string; last: number }>(
    databaseUrl,
    `SELECT count(*) FILTER (WHERE status = 'processed' AND kind = $1 AND has_thumbnail AND has_preview) AS rendered,
            (extract(epoch FROM max(processed_at)) * 1000)::float8 AS last
     FROM files`,
    [kind],
  );
  if (Number(row?.rendered) !== count) throw new Error(`${what}: ${row?.rendered} of ${count} files rendered`);
  return row!.last;
}

export function renderingRows(bench: RenderingBench): TableRow[] {
  if ('skipped' in bench) return [['renderings', `skipped: ${bench.skipped}`, '', '', true]];
  return RENDERED_KINDS.map((kind) => {
    const { service, alone, files, fixture, cpu_ratio: ratio } = bench.kinds[kind];
    return [
      `rendering ${files} ${fixture}: the worker's CPU per file (concurrency ${bench.concurrency}, bulk reprocess to processed, whole job) vs the renderer alone (same tool and sharp calls, no service)`,
      `${service.cpu_ms_per_file} / ${alone.cpu_ms_per_file} ms per file; ${service.files_per_s} / ${alone.files_per_s} files/s`,
      `${ratio}`,
      `≤ ${CPU_RATIO_TARGET}`,
      ratio <= CPU_RATIO_TARGET,
    ];
  });
}

export function renderingBars(bench: RenderingBench): Bar[] {
  if ('skipped' in bench) return [];
  return RENDERED_KINDS.map((kind) => ({
    label: `${kind} render CPU / alone`,
    value: bench.kinds[kind].cpu_ratio,
    target: CPU_RATIO_TARGET,
    higherIsBetter: false,
  }));
}
