// How a parser process reads a blob where it lies, without a copy: a local file through a file handle, or an
// object through its presigned URL, by HTTP Range requests over kept-alive connections. A parser that reads a
// header or a directory then moves a few windows of a large object, never all of it.
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobSource, BlobStore } from '../../core/storage/index.js';
import { ProcessingError } from './types.js';

/** Random and sequential reads of one blob. */
export interface BlobReader {
  /** Up to `length` bytes at `position` into `buffer` from `offset`: fewer only at the end of the blob. */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  /** The bytes from `range.start` to `range.end` (inclusive), or the whole blob, in order. */
  stream(range?: { start: number; end: number }): Readable;
  close(): Promise<void>;
}

/** The blob's stored bytes are gone. */
export const blobMissing = (): ProcessingError =>
  new ProcessingError('blob_missing', 'The stored bytes of this file are missing.');

/** The stored bytes of `id` as a stream, from the store itself; blob_missing when there are none. */
export async function openStored(
  storage: BlobStore,
  id: string,
  options?: Parameters<BlobStore['open']>[1],
): Promise<Readable> {
  try {
    return await storage.open(id, options);
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? blobMissing() : err;
  }
}

/**
 * The blob store failed a read (an unexpected status, a range or a length other than asked): the job tries
 * again later; nothing is known about the file's bytes.
 */
export class BlobReadError extends Error {
  override name = 'BlobReadError';
}

/** A failure to read the blob rather than a fault of its bytes, to be passed on as it is, never as a corrupt file. */
export const isReadFailure = (err: unknown): boolean =>
  err instanceof ProcessingError || err instanceof BlobReadError || Boolean((err as NodeJS.ErrnoException)?.syscall);

/** Opens the blob for reading; a blob found missing fails with `blob_missing`. */
export async function openBlob(source: BlobSource): Promise<BlobReader> {
  return 'path' in source ? openFile(source.path) : new RangeReader(new URL(source.url));
}

/** Runs `use` with the blob open, and closes it after. */
export async function withBlob<T>(source: BlobSource, use: (reader: BlobReader) => Promise<T>): Promise<T> {
  const reader = await openBlob(source);
  try {
    return await use(reader);
  } finally {
    await reader.close();
  }
}

/**
 * Runs `use` with a path to the blob on this machine, for parsers that only take a file: the path itself, or a
 * copy of the object in os.tmpdir() (a parser process's own, see parsers.ts), removed when `use` settles.
 */
export async function withLocalFile<T>(source: BlobSource, use: (path: string) => Promise<T>): Promise<T> {
  if ('path' in source) return use(source.path);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fp-blob-'));
  try {
    const copy = path.join(dir, 'blob');
    await withBlob(source, (reader) => pipeline(reader.stream(), createWriteStream(copy, { flags: 'wx' })));
    return await use(copy);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Sequential reads of a local file go in steps this large (text is scanned chunk by chunk). */
const SEQUENTIAL_READ_BYTES = 256 * 1024;

async function openFile(file: string): Promise<BlobReader> {
  const handle = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ENOENT' ? blobMissing() : err;
  });
  return {
    read: (buffer, offset, length, position) => handle.read(buffer, offset, length, position),
    // Not handle.createReadStream: once one of those is destroyed early, the next one on the handle closes at once.
    stream: (range) => Readable.from(chunksOf(handle, range?.start ?? 0, range?.end ?? Infinity)),
    close: () => handle.close(),
  };
}

async function* chunksOf(handle: FileHandle, start: number, end: number): AsyncGenerator<Buffer> {
  for (let at = start; at <= end;) {
    const chunk = Buffer.allocUnsafe(Math.min(SEQUENTIAL_READ_BYTES, end - at + 1));
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, at);
    if (bytesRead === 0) return;
    yield chunk.subarray(0, bytesRead);
    at += bytesRead;
  }
}

/** A store silent this long fails the read, to be retried, before the parse's deadline fails the file with `timeout`. */
const READ_IDLE_TIMEOUT_MS = 20_000;

// One pool of connections per parser process, kept alive between reads and between files.
const AGENTS = {
  'http:': new http.Agent({ keepAlive: true }),
  'https:': new https.Agent({ keepAlive: true }),
};

/** A blob behind a URL that answers GET with Range (a presigned GET of an object): nothing to open or close. */
class RangeReader implements BlobReader {
  constructor(private readonly url: URL) {}

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return this.readRange(buffer, offset, length, position).catch((err: unknown) => {
      throw asReadFailure(err);
    });
  }

  private async readRange(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesRead: number }> {
    if (length === 0) return { bytesRead: 0 };
    const last = position + length - 1;
    const response = await this.get(`bytes=${position}-${last}`);
    if (response.statusCode === 416) return endOfBlob(response, position);
    const range = checkedRange(response, position, last);
    let bytesRead = 0;
    for await (const chunk of response as AsyncIterable<Buffer>) {
      if (bytesRead + chunk.length > range.length) {
        response.destroy();
        throw new BlobReadError(`The blob store sent more than the ${range.length} bytes it announced.`);
      }
      buffer.set(chunk, offset + bytesRead);
      bytesRead += chunk.length;
    }
    if (bytesRead !== range.length)
      throw new BlobReadError(`The blob store sent ${bytesRead} of the ${range.length} bytes it announced.`);
    return { bytesRead };
  }

  stream(range?: { start: number; end: number }): Readable {
    const body = new PassThrough();
    this.get(range && `bytes=${range.start}-${range.end}`)
      .then((response) => {
        if (range) checkedRange(response, range.start, range.end);
        else if (response.statusCode !== 200) throw unexpectedAnswer(response);
        return pipeline(response, body);
      })
      .catch((err: unknown) => body.destroy(asReadFailure(err)));
    return body;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The GET's answer, once its headers are in. */
  private get(range: string | undefined, retried = false): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      let answered = false;
      const request = (this.url.protocol === 'https:' ? https : http).get(
        this.url,
        { agent: AGENTS[this.url.protocol === 'https:' ? 'https:' : 'http:'], headers: range ? { Range: range } : {} },
        (response) => {
          answered = true;
          resolve(response);
        },
      );
      request.setTimeout(READ_IDLE_TIMEOUT_MS, () =>
        request.destroy(new BlobReadError(`The blob store sent nothing for ${READ_IDLE_TIMEOUT_MS / 1000} s.`)),
      );
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (answered) return;
        // A kept-alive connection the store closed while idle: once more on a new one, as Node's documentation advises.
        if (request.reusedSocket && err.code === 'ECONNRESET' && !retried) resolve(this.get(range, true));
        else reject(err);
      });
    });
  }
}

/** A 416: nothing at or past the end of the blob; before its end, the store is wrong. */
function endOfBlob(response: IncomingMessage, position: number): { bytesRead: number } {
  response.resume();
  const size = /^bytes \*\/(\d+)$/.exec(response.headers['content-range'] ?? '')?.[1];
  if (size !== undefined && position < Number(size))
    throw new BlobReadError(`The blob store refused a range that starts inside the blob (${position} of ${size}).`);
  return { bytesRead: 0 };
}

/** The range a 206 carries, which must start at `start` and end at `last` or, before it, at the end of the blob. */
function checkedRange(response: IncomingMessage, start: number, last: number): { length: number } {
  if (response.statusCode !== 206) throw unexpectedAnswer(response);
  const [, from, to, size] = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(response.headers['content-range'] ?? '') ?? [];
  const end = Number(to);
  if (Number(from) !== start || !(end <= last) || (end < last && end !== Number(size) - 1)) {
    response.destroy();
    throw new BlobReadError(
      `The blob store answered the range ${start}-${last} with ${response.headers['content-range'] ?? 'no Content-Range'}.`,
    );
  }
  return { length: end - start + 1 };
}

/** A 404 is a missing blob; anything else (a 5xx, an expired signature) is the store's trouble, worth a retry. */
function unexpectedAnswer(response: IncomingMessage): Error {
  // An error's body is short, read out to keep the connection; a whole blob sent for a range is not.
  if ((response.statusCode ?? 0) < 300) response.destroy();
  else response.resume();
  if (response.statusCode === 404) return blobMissing();
  return new BlobReadError(`The blob store answered ${response.statusCode} to a read.`);
}

/** A failure of the connection (refused, reset, cut short) as a read failure, its errno code kept. */
function asReadFailure(err: unknown): Error {
  if (err instanceof ProcessingError || err instanceof BlobReadError) return err;
  const { code, message } = err as NodeJS.ErrnoException;
  const failure = new BlobReadError(`Reading from the blob store failed (${message}).`, { cause: err });
  return code ? Object.assign(failure, { code }) : failure;
}
