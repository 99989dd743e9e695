// The benchmark's baseline: a bare Node server doing the upload's essential work with no framework:
// stream the part to a temporary file while hashing it, rename it into place, one INSERT, one enqueue.
// It skips what the service adds on top (validation, sniffing, problem+json, logs, metrics, idempotency).
import BeeQueue from 'bee-queue';
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { databasePool, env, serveBareUploads } from './bareServer.js';

const storage = env('STORAGE_DIR', './data-baseline');
const pool = databasePool();
const queue = new BeeQueue(env('QUEUE_NAME', 'baseline'), {
  prefix: env('QUEUE_PREFIX', 'bq'),
  redis: { url: env('REDIS_URL', 'redis://127.0.0.1:6379') } as BeeQueue.QueueSettings['redis'],
  isWorker: false,
  getEvents: false,
  sendEvents: false,
  storeJobs: false,
});

async function store(stream: NodeJS.ReadableStream, filename: string): Promise<unknown> {
  const id = randomUUID();
  const temporary = path.join(storage, 'tmp', `${id}.part`);
  const hash = createHash('sha256');
  let size = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  await pipeline(stream, meter, createWriteStream(temporary));
  await rename(temporary, path.join(storage, 'blobs', id.slice(-2), id));
  const { rows } = await pool.query(
    'INSERT INTO files (id, name, size, content_type, kind, sha256) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *',
    [id, filename, size, 'application/octet-stream', 'other', hash.digest('hex')],
  );
  await queue.createJob({ file_id: id }).setId(id).save();
  return rows[0];
}

await mkdir(path.join(storage, 'tmp'), { recursive: true });
await queue.ready();
await serveBareUploads(store, { blobs: path.join(storage, 'blobs'), port: '8081' });
