// What a worker's finishing statement costs with N webhook endpoints registered: a batch of 32 `processing ->
// processed` (the statement FileRepository's batcher sends), its wall time, commit included, and the PostgreSQL
// backend's CPU time (/proc/<pid>/schedstat); then, apart, what the dispatchers' fan-out takes to make the
// deliveries. It uses a database of its own, migrated by the build it runs from, and drops it at the end.
//
//   npm run build && node dist/loadtest/webhook-finish-cost.js [endpoints, e.g. 0,1,2000] [batches per case]
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { dropDatabase, ensureDatabaseExists, openDatabase } from '../core/db/index.js';

const endpointCounts = (process.argv[2] ?? '0,1,2000').split(',').map(Number);
const batches = Number(process.argv[3] ?? 30);
const BATCH = 32;
const WARM_UP = 3;

// core/db/files.ts's `finishes` batcher, as it sends a batch (the statement is private there).
const FINISH = `UPDATE files AS f SET status = 'processed', result = d.result, error = NULL, has_thumbnail = d.thumbnail,
    processed_at = now(), updated_at = now(), trace_parent = d.trace_parent
  FROM unnest($1::uuid[], $2::int[], $3::jsonb[], $4::bool[], $5::text[]) AS d(id, attempt, result, thumbnail, trace_parent)
  WHERE f.id = d.id AND f.status = 'processing' AND f.attempts = d.attempt RETURNING f.id`;

const cpuNsOf = (pid: number) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const server = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
server.pathname = `/fp_bench_finish_${process.pid}_${randomBytes(3).toString('hex')}`;
const url = server.toString();
await ensureDatabaseExists(url);
const db = openDatabase({ url, poolMax: 2 });
const client = new pg.Client({ connectionString: url });
try {
  await db.migrate();
  await client.connect();
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const result = JSON.stringify({ sha256_verified: true, bytes_read: 12, warnings: [], text: 'x'.repeat(1024) });
  console.log(`| endpoints | finish of ${BATCH}, wall ms | PostgreSQL CPU ms | deliveries, then fan-out ms |`);
  console.log('|---:|---:|---:|---:|');
  for (const endpoints of endpointCounts) {
    await client.query('TRUNCATE webhook_endpoints CASCADE');
    await client.query(
      `INSERT INTO webhook_endpoints (id, url, events, secret, base_url)
       SELECT gen_random_uuid(), 'https://hooks.example/' || n, '{file.processed,file.failed,file.deleted}', 'whsec_x', 'http://api'
       FROM generate_series(1, $1) AS n`,
      [endpoints],
    );
    const wall: number[] = [];
    const cpu: number[] = [];
    const fanOut: number[] = [];
    let deliveries = 0;
    for (let batch = 0; batch < batches + WARM_UP; batch++) {
      await client.query('TRUNCATE files, webhook_events, webhook_deliveries');
      const ids = Array.from({ length: BATCH }, () => randomUUID());
      await client.query(
        `INSERT INTO files (id, name, size, content_type, kind, sha256, status, attempts)
         SELECT id, 'note.txt', 12, 'text/plain', 'text', repeat('a', 64), 'processing', 1 FROM unnest($1::uuid[]) AS id`,
        [ids],
      );
      const cpuBefore = cpuNsOf(pid);
      const started = process.hrtime.bigint();
      const finished = await client.query(FINISH, [
        ids,
        ids.map(() => 1),
        ids.map(() => result),
        ids.map(() => false),
        ids.map(() => null),
      ]);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const cpuMs = (cpuNsOf(pid) - cpuBefore) / 1e6;
      if (finished.rowCount !== BATCH) throw new Error(`The statement finished ${finished.rowCount} of ${BATCH} rows.`);
      const fanStarted = process.hrtime.bigint();
      while ((await db.webhooks.fanOut(100, 5_000)).events > 0);
      const fanMs = Number(process.hrtime.bigint() - fanStarted) / 1e6;
      if (batch >= WARM_UP) [wall, cpu, fanOut].forEach((values, i) => values.push([ms, cpuMs, fanMs][i]!));
      deliveries = Number(
        (await client.query<{ count: string }>('SELECT count(*) FROM webhook_deliveries')).rows[0]!.count,
      );
    }
    console.log(
      `| ${endpoints} | ${median(wall).toFixed(1)} | ${median(cpu).toFixed(1)} | ${deliveries}, ${median(fanOut).toFixed(0)} |`,
    );
  }
} finally {
  await client.end().catch(() => undefined);
  await db.close();
  await dropDatabase(url);
}
