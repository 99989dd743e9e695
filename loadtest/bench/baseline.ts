// The benchmark's baseline: a bare Node server doing the upload's essential work with no framework:
// stream the part to a temporary file while hashing it, rename it into place, one INSERT, one enqueue.
// It skips what the service adds on top (validation, sniffing, problem+json, logs, metrics, idempotency).
import BeeQueue from 'bee-queue';
import busboy from 'busboy';
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';

const env = (name: string, fallback: string) => process.env[name] ?? fallback;
const storage = env('STORAGE_DIR', './data-baseline');
const pool = new pg.Pool({
  connectionString: env('DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/file_processor'),
  max: 10,
});
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

const server = http.createServer((req, res) => {
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: req.headers });
  } catch {
    res.writeHead(req.method === 'POST' ? 400 : 200);
    res.end();
    return;
  }
  let stored: Promise<unknown> | undefined;
  parser.on('file', (_field, stream, info) => {
    stored = store(stream, info.filename ?? 'file');
  });
  parser.on('close', () => {
    (stored ?? Promise.reject(new Error('no file'))).then(
      (row) => {
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify(row));
      },
      () => {
        res.writeHead(400);
        res.end();
      },
    );
  });
  req.pipe(parser);
});

await Promise.all(
  Array.from({ length: 256 }, (_, n) =>
    mkdir(path.join(storage, 'blobs', n.toString(16).padStart(2, '0')), { recursive: true }),
  ),
);
await mkdir(path.join(storage, 'tmp'), { recursive: true });
await queue.ready();
server.listen(Number(env('PORT', '8081')), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
