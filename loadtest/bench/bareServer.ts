// What the two bare servers of the benchmark (baseline.ts, floor.ts) share: their settings, and a node:http
// server that hands the one file part busboy finds to `store` and answers 201 with what it returns.
import busboy from 'busboy';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import pg from 'pg';

export const env = (name: string, fallback: string) => process.env[name] ?? fallback;

export const databasePool = () =>
  new pg.Pool({ connectionString: env('DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/file_processor'), max: 10 });

/** Makes the 256 shard directories under `blobs`, then serves uploads on PORT (or `port`) until SIGTERM. */
export async function serveBareUploads(
  store: (stream: NodeJS.ReadableStream, filename: string) => Promise<unknown>,
  options: { blobs: string; port: string },
): Promise<void> {
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
      mkdir(path.join(options.blobs, n.toString(16).padStart(2, '0')), { recursive: true }),
    ),
  );
  server.listen(Number(env('PORT', options.port)), '127.0.0.1');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
