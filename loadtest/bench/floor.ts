// The benchmark's bare floor: the least an upload can cost here, as a capacity planner would write it. busboy
// streams the part straight into its file, then one INSERT and one LPUSH of the id onto the queue's waiting list;
// no hashing, no temporary file, no job record, no framework. Below the baseline (baseline.ts), which keeps the
// service's durable shape (hash, rename into place, a bee-queue job a worker can take); the service cannot reach
// it, and the distance says what the service's promises and machinery cost.
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { databasePool, env, serveBareUploads } from './bareServer.js';

const storage = env('STORAGE_DIR', './data-floor');
const pool = databasePool();
const redis = new Redis(env('REDIS_URL', 'redis://127.0.0.1:6379'));
const waiting = `${env('QUEUE_PREFIX', 'bq')}:${env('QUEUE_NAME', 'floor')}:waiting`;
// The column is NOT NULL; the floor hashes nothing.
const NO_HASH = '0'.repeat(64);

async function store(stream: NodeJS.ReadableStream, filename: string): Promise<unknown> {
  const id = randomUUID();
  let size = 0;
  stream.on('data', (chunk: Buffer) => (size += chunk.length));
  await new Promise<void>((resolve, reject) => {
    stream.on('error', reject);
    const file = createWriteStream(path.join(storage, id.slice(-2), id));
    file.on('close', () => resolve()).on('error', reject);
    stream.pipe(file);
  });
  const { rows } = await pool.query(
    'INSERT INTO files (id, name, size, content_type, kind, sha256) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *',
    [id, filename, size, 'application/octet-stream', 'other', NO_HASH],
  );
  await redis.lpush(waiting, id);
  return rows[0];
}

await serveBareUploads(store, { blobs: storage, port: '8082' });
