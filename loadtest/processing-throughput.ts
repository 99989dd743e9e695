// Processing throughput per kind of one real worker process (dist/worker/main.js), on this machine.
// For each sample it stores N copies and their rows directly (no API in the way), enqueues them all at
// once and times until every row is processed: files/s = N / that time. It uses its own database,
// queue prefix and blob directory, and removes them at the end.
//
//   npm run build && node dist/loadtest/processing-throughput.js [files per sample] [WORKER_CONCURRENCY]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import sharp from 'sharp';
import { dropDatabase, ensureDatabaseExists, openDatabase } from '../core/db/index.js';
import { newId } from '../core/ids.js';
import { sniffKind } from '../core/kinds.js';
import { FileQueue } from '../core/queue/index.js';
import { HEAD_BYTES, LocalDiskStore } from '../core/storage/index.js';
import { mp3, mp4, pdf, tar, wav, zip } from '../test/support/fixtures.js';

const filesPerSample = Number(process.argv[2] ?? 100);
const concurrency = Number(process.argv[3] ?? 4);
const run = `${process.pid}_${randomBytes(3).toString('hex')}`;
const server = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
server.pathname = `/fp_bench_${run}`;
const databaseUrl = server.toString();
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const queuePrefix = `fp-bench-${run}`;
const storageDir = mkdtempSync(path.join(os.tmpdir(), 'fp-bench-blobs-'));

const words = 'the quick brown fox jumps over the lazy dog while a file processor counts every word of it'.split(' ');
const prose = (bytes: number) => {
  const lines: string[] = [];
  for (let size = 0, n = 0; size < bytes; n++) {
    const line = Array.from({ length: 12 }, (_, i) => words[(n * 7 + i * 3) % words.length]).join(' ');
    lines.push(line);
    size += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
};

interface Sample {
  label: string;
  name: string;
  bytes: Buffer;
}

async function samples(): Promise<Sample[]> {
  const photo = await sharp({
    create: {
      width: 1920,
      height: 1080,
      channels: 3,
      background: '#4a6b8c',
      noise: { type: 'gaussian', mean: 128, sigma: 20 },
    },
  })
    .jpeg({ quality: 85 })
    .toBuffer();
  const screenshot = await sharp({ create: { width: 640, height: 480, channels: 4, background: '#ffffffcc' } })
    .png()
    .toBuffer();
  const csvRows = Array.from({ length: 20_000 }, (_, i) => `${i},name ${i},${(i * 1.5).toFixed(1)},"city, ${i % 50}"`);
  const json = JSON.stringify({
    items: Array.from({ length: 15_000 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'], score: i / 7 })),
  });
  return [
    { label: 'image: 1920×1080 JPEG', name: 'photo.jpg', bytes: photo },
    { label: 'image: 640×480 PNG', name: 'screen.png', bytes: screenshot },
    { label: 'text: 1 MiB plain UTF-8', name: 'prose.txt', bytes: Buffer.from(prose(1024 * 1024)) },
    {
      label: 'text: CSV, 20,000 rows',
      name: 'table.csv',
      bytes: Buffer.from(`id,name,score,city\n${csvRows.join('\n')}\n`),
    },
    { label: 'text: JSON, 15,000 objects', name: 'items.json', bytes: Buffer.from(json) },
    {
      label: 'pdf: 10 pages',
      name: 'report.pdf',
      bytes: pdf(
        Array.from({ length: 10 }, (_, i) => `Page ${i + 1}. ${prose(1500)}`),
        { title: 'Report' },
      ),
    },
    {
      label: 'archive: zip, 1,000 entries',
      name: 'bundle.zip',
      bytes: zip(
        Array.from({ length: 1000 }, (_, i) => ({ name: `dir/file-${i}.txt`, content: prose(800), deflate: true })),
      ),
    },
    {
      label: 'archive: tar, 200 entries',
      name: 'bundle.tar',
      bytes: tar(Array.from({ length: 200 }, (_, i) => ({ name: `file-${i}.txt`, content: prose(2000) }))),
    },
    { label: 'audio: WAV, 30 s stereo 44.1 kHz', name: 'tone.wav', bytes: wav(30, 44_100, 2) },
    { label: 'audio: MP3, 60 s', name: 'talk.mp3', bytes: mp3(2297) },
    { label: 'video: MP4 headers', name: 'clip.mp4', bytes: mp4(1280, 720, 60) },
    {
      label: 'other: 1 MiB binary',
      name: 'blob.bin',
      bytes: Buffer.concat([Buffer.from([0, 0, 0, 1]), randomBytes(1024 * 1024)]),
    },
  ];
}

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function main(): Promise<void> {
  await ensureDatabaseExists(databaseUrl);
  const db = openDatabase({ url: databaseUrl, poolMax: 4 });
  await db.migrate();
  const counter = new pg.Client({ connectionString: databaseUrl });
  await counter.connect();
  const storage = new LocalDiskStore(storageDir);
  await storage.init();
  const queue = new FileQueue({
    redisUrl,
    prefix: queuePrefix,
    name: 'files',
    role: 'producer',
    retries: 0,
    backoffMs: 1000,
    jobTimeoutMs: 60_000,
  });
  await queue.ready();

  const adminPort = await freePort();
  const worker = spawn(process.execPath, [fileURLToPath(new URL('../worker/main.js', import.meta.url))], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      QUEUE_PREFIX: queuePrefix,
      STORAGE_DIR: storageDir,
      ADMIN_PORT: String(adminPort),
      WORKER_CONCURRENCY: String(concurrency),
      LOG_LEVEL: 'warn',
    },
  });
  try {
    await waitUntil(
      async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok,
      'the worker being ready',
      30_000,
    );
    console.log(
      `One worker process, WORKER_CONCURRENCY=${concurrency}, ${filesPerSample} files per sample, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}\n`,
    );
    console.log('| sample | size | files/s | outcome |');
    console.log('|---|---:|---:|---|');
    /** Stores `count` copies of the sample, enqueues them at once, and times until all are done. */
    const processBatch = async (sample: Sample, count: number) => {
      const sniffed = await sniffKind(sample.bytes.subarray(0, HEAD_BYTES), sample.name);
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const id = newId();
        const blob = await storage.put(id, Readable.from([sample.bytes]), { maxBytes: sample.bytes.length });
        await db.files.insert({ id, name: sample.name, size: blob.size, sha256: blob.sha256, ...sniffed });
        ids.push(id);
      }
      const started = process.hrtime.bigint();
      await Promise.all(ids.map((id) => queue.enqueue(id, sniffed.kind)));
      let outcomes: Array<{ status: string; count: string }> = [];
      await waitUntil(
        async () => {
          const query = `SELECT status, count(*) FROM files WHERE id = ANY($1) AND status IN ('processed', 'failed') GROUP BY status`;
          outcomes = (await counter.query<{ status: string; count: string }>(query, [ids])).rows;
          return outcomes.reduce((sum, row) => sum + Number(row.count), 0) === ids.length;
        },
        `processing ${sample.label}`,
        600_000,
      );
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      return { kind: sniffed.kind, seconds, outcome: outcomes.map((row) => `${row.count} ${row.status}`).join(', ') };
    };
    for (const sample of await samples()) {
      // Untimed: every parser process imports its parser once.
      await processBatch(sample, concurrency);
      const { kind, seconds, outcome } = await processBatch(sample, filesPerSample);
      console.log(
        `| ${sample.label} (${kind}) | ${(sample.bytes.length / 1024).toFixed(0)} KiB | ${(filesPerSample / seconds).toFixed(1)} | ${outcome} |`,
      );
    }
  } finally {
    worker.kill('SIGTERM');
    await new Promise((resolve) => worker.once('exit', resolve));
    await queue.close(1_000);
    await counter.end();
    await db.close();
    await dropDatabase(databaseUrl);
    const redis = new Redis(redisUrl);
    for (let cursor = '0'; ;) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${queuePrefix}*`, 'COUNT', 1000);
      if (keys.length) await redis.del(...keys);
      if ((cursor = next) === '0') break;
    }
    redis.disconnect();
    rmSync(storageDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
