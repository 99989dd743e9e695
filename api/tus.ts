// Resumable uploads, tus 1.0.0 at /uploads/tus/, with @tus/server (the protocol's own Node implementation) mounted
// as a Koa middleware: request ids, auth, metrics, logs and traces apply as to every route, and its errors become
// problem+json with the status codes the protocol requires. What @tus/server does not have is added here: the
// checksum extension (a chunk with Upload-Checksum is spooled and verified before a byte reaches the store) and
// the completion, which turns the last byte into a File: the upload id is the File id. The blob store keeps the
// uploads (its ResumableStore); @tus/server is given that store's DataStore inside a CompletingDataStore.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Server } from '@tus/server';
import { ERRORS, Upload, type Locker } from '@tus/utils';
import type Koa from 'koa';
import type { FileRow } from '../core/fileRecord.js';
import { newId, parseId } from '../core/ids.js';
import type { StoredBlob } from '../core/storage/index.js';
import { BlobMeter } from '../core/storage/meter.js';
import { CompletingDataStore, type CompletedUpload } from '../core/tus/completingStore.js';
import type { ResumableStore } from '../core/tus/stores.js';
import { AppError, type ErrorCode } from './errors.js';
import type { Arrival } from './intake.js';
import type { WayInDeps } from './upload.js';

export const TUS_PATH = '/uploads/tus';

export interface TusDeps extends Omit<WayInDeps, 'idempotencyAbandonAfterMs'> {
  resumable: ResumableStore;
  locker: Locker;
}

/** The checksum algorithms Upload-Checksum may name (`Tus-Checksum-Algorithm`). */
const CHECKSUM_ALGORITHMS = ['sha1', 'sha256', 'md5'];

const EMPTY = 'The file is empty; there is nothing to process.';

/** Our own header on the Request handed to @tus/server: the API's origin as this client sees it. */
const BASE_HEADER = 'x-file-processor-base';

/** A tus error's status as one of our codes; the status itself is kept, as the protocol requires it. */
const CODE_OF_STATUS: Record<number, ErrorCode> = {
  400: 'invalid_tus_request',
  403: 'invalid_tus_request',
  404: 'not_found',
  409: 'upload_offset_mismatch',
  410: 'not_found',
  412: 'tus_version_unsupported',
  413: 'file_too_large',
  415: 'unsupported_media_type',
  423: 'upload_locked',
  460: 'upload_checksum_mismatch',
  503: 'service_unavailable',
};

export function tusUploads(deps: TusDeps): Koa.Middleware {
  const { db, resumable, logger } = deps;

  /**
   * Turns the finished upload into its File, at most once: every step may run again after a failure. @tus/server
   * lets go of the upload's lock before it calls onUploadFinish, so the request that looks at the upload next (a
   * DELETE, a HEAD) may complete it at the same time: one completion runs per upload in this process, and one that
   * finds the bytes adopted or removed by another (in another pod too) answers with its File, or tus's 404.
   */
  function complete(upload: Upload): Promise<FileRow> {
    const fileId = resumable.fileIdOf(upload.id);
    const running = completing.get(fileId);
    if (running) return running;
    const completion = completeOnce(fileId, upload).finally(() => completing.delete(fileId));
    completing.set(fileId, completion);
    return completion;
  }
  const completing = new Map<string, Promise<FileRow>>();

  async function completeOnce(fileId: string, upload: Upload): Promise<FileRow> {
    const existing = await db.files.findById(fileId);
    if (existing) {
      await resumable.discard(fileId);
      return existing;
    }
    let arrival: Arrival;
    try {
      // The chunks may have come through several pods, and a SHA-256 cannot be carried from one to the next: the
      // hash and the head for sniffing come from one read of the finished upload.
      const { sha256, head, size } = await readBack(await resumable.read(fileId));
      if (size !== upload.size) throw new Error(`The upload holds ${size} bytes, not the ${upload.size} announced.`);
      if (!(await resumable.adopt(fileId))) throw Object.assign(new Error('The bytes are gone.'), { code: 'ENOENT' });
      const filename = upload.metadata?.filename ?? upload.metadata?.name ?? undefined;
      arrival = { id: fileId, filename, size, sha256, head };
    } catch (err) {
      if (!isMissing(err)) throw err;
      // Another completion took the bytes first (its File is the answer), or the upload was removed meanwhile.
      const done = await db.files.findById(fileId);
      if (done) return done;
      // eslint-disable-next-line @typescript-eslint/only-throw-error
      throw ERRORS.FILE_NOT_FOUND;
    }
    const row = await deps.intake.admit(arrival, { way: 'resumable' });
    await resumable
      .discard(fileId)
      .catch((err: unknown) =>
        logger.warn({ err, file_id: fileId }, 'could not remove what is left of a finished resumable upload'),
      );
    return row;
  }

  // A finished upload is answered from its File once its leftovers are gone, and one whose completion failed
  // part-way (the database away, a pod killed) is completed by the next request that looks at it, HEAD included,
  // under the upload's lock.
  const datastore = new CompletingDataStore(resumable.datastore, {
    complete: (upload) => complete(upload).then(completedAs),
    async completed(uploadId) {
      const fileId = resumable.fileIdOf(uploadId);
      const row = await (completing.get(fileId)?.catch(() => null) ?? db.files.findById(fileId));
      return row && completedAs(row);
    },
  });

  const server = new Server({
    path: TUS_PATH,
    datastore,
    locker: deps.locker,
    maxSize: deps.maxUploadBytes,
    disableTerminationForFinishedUploads: true,
    namingFunction: () => resumable.uploadIdOf(newId()),
    generateUrl: (req, { id }) => `${req.headers.get(BASE_HEADER)}${TUS_PATH}/${resumable.fileIdOf(id)}`,
    getFileIdFromRequest: (_req, lastPath) => {
      const fileId = lastPath ? parseId(lastPath) : null;
      return fileId ? resumable.uploadIdOf(fileId) : undefined;
    },
    onUploadCreate: (_req, upload) => {
      if (upload.size === 0) {
        // A tus error: a {status_code, body} object, not an Error.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        return Promise.reject({ status_code: 400, body: EMPTY });
      }
      return Promise.resolve({});
    },
    onUploadFinish: async (_req, upload) => {
      await complete(upload);
      return {};
    },
  });

  return async (ctx) => {
    let spool: string | undefined;
    try {
      // The length of an upload that gave none at creation (Upload-Defer-Length) comes with a PATCH: not empty either.
      if (ctx.method === 'PATCH' && Number.parseInt(ctx.get('upload-length'), 10) === 0) {
        throw new AppError('invalid_tus_request', EMPTY, { headers: { 'Tus-Resumable': '1.0.0' } });
      }
      const checksum = ctx.get('upload-checksum');
      if (checksum && ['PATCH', 'POST'].includes(ctx.method))
        spool = await verifiedChunk(ctx, checksum, deps.maxUploadBytes);
      const response = await server.handleWeb(webRequest(ctx, deps.baseUrl(ctx), spool));
      await answer(ctx, response);
    } finally {
      if (spool) await rm(path.dirname(spool), { recursive: true, force: true });
    }
  };
}

/** The Koa request as the web Request @tus/server takes, its body the client's (or the verified spool). */
function webRequest(ctx: Koa.Context, base: string, spool: string | undefined): Request {
  const headers = new Headers();
  const raw = ctx.req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  headers.set(BASE_HEADER, base);
  const hasBody = ctx.method === 'PATCH' || ctx.method === 'POST';
  const body = !hasBody ? undefined : spool ? createReadStream(spool) : ctx.req;
  return new Request(new URL(ctx.originalUrl, base), {
    method: ctx.method,
    headers,
    ...(body ? { body: Readable.toWeb(body), duplex: 'half' } : {}),
  });
}

/** @tus/server's answer through Koa; an error as problem+json with the protocol's status and headers. */
async function answer(ctx: Koa.Context, response: Response): Promise<void> {
  const headers: Record<string, string> = {};
  // @tus/server answers every origin (`*`); CORS is CORS_ORIGINS' to decide, for tus as for every route (cors.ts).
  response.headers.forEach((value, name) => {
    if (!name.startsWith('access-control-')) headers[name] = value;
  });
  if (ctx.method === 'OPTIONS') {
    headers['tus-extension'] = [headers['tus-extension'], 'checksum'].filter(Boolean).join(',');
    headers['tus-checksum-algorithm'] = CHECKSUM_ALGORITHMS.join(',');
  }
  const text = await response.text();
  if (response.status >= 500) {
    // @tus/server answers an unexpected error with its message (a path, a database's name): the log keeps it.
    throw new AppError(
      response.status === 503 ? 'service_unavailable' : 'internal_error',
      'The upload could not be handled right now; ask its offset (HEAD) and resume it.',
      { headers: { 'Tus-Resumable': '1.0.0' }, status: response.status, cause: new Error(text.trim()) },
    );
  }
  if (response.status >= 400) {
    delete headers['content-type'];
    delete headers['content-length'];
    throw new AppError(
      CODE_OF_STATUS[response.status] ?? 'invalid_tus_request',
      text.trim() || `The upload failed (${response.status}).`,
      { headers, status: response.status },
    );
  }
  for (const [name, value] of Object.entries(headers)) if (name !== 'content-length') ctx.set(name, value);
  ctx.body = text.length > 0 ? text : null;
  ctx.status = response.status;
}

/**
 * The chunk of a request with Upload-Checksum, spooled to a file of its own while it is hashed: a chunk whose
 * checksum does not match answers 460 and never reaches the store, so the upload's offset does not move.
 */
async function verifiedChunk(ctx: Koa.Context, header: string, maxBytes: number): Promise<string> {
  const [algorithm, expected] = header.trim().split(/\s+/);
  if (!algorithm || !expected || !CHECKSUM_ALGORITHMS.includes(algorithm)) {
    throw new AppError(
      'invalid_tus_request',
      `Upload-Checksum must name one of ${CHECKSUM_ALGORITHMS.join(', ')} and a base64 digest.`,
      { headers: { 'Tus-Resumable': '1.0.0' } },
    );
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fp-tus-'));
  const spool = path.join(dir, 'chunk');
  const hash = createHash(algorithm);
  let length = 0;
  try {
    await pipeline(
      ctx.req,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          length += chunk.length;
          if (length > maxBytes) {
            throw new AppError('file_too_large', `The chunk is larger than the limit of ${maxBytes} bytes.`, {
              headers: { 'Tus-Resumable': '1.0.0' },
            });
          }
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(spool),
    );
    if (hash.digest('base64') !== expected) {
      throw new AppError(
        'upload_checksum_mismatch',
        `The chunk's ${algorithm} is not the one Upload-Checksum gives; it was discarded: send it again.`,
        { headers: { 'Tus-Resumable': '1.0.0' } },
      );
    }
    return spool;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The upload is not there (any more): tus's 404, or a store's ENOENT (ResumableStore.read, adopt). */
function isMissing(err: unknown): boolean {
  const { status_code, code } = err as { status_code?: unknown; code?: unknown };
  return status_code === 404 || code === 'ENOENT';
}

/** What the File answers for the upload it was. */
const completedAs = (row: FileRow): CompletedUpload => ({ size: row.size, name: row.name });

/** The SHA-256, size and first bytes of a finished upload, in one read (through the meter every upload uses). */
async function readBack(bytes: Readable): Promise<StoredBlob> {
  const meter = new BlobMeter(Number.POSITIVE_INFINITY);
  await pipeline(bytes, meter, async (chunks: AsyncIterable<Buffer>) => {
    for await (const _ of chunks);
  });
  return meter.blob();
}
