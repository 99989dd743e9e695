// POST /upload/: stream the one file part into the blob store (hashing and sniffing on the way),
// insert the row, enqueue the job, answer 201. Bytes before row, row before job; a failure at any
// step removes what the earlier steps made.
import type Koa from 'koa';
import multer from '@koa/multer';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Database, IdempotencyScope } from '../core/db/index.js';
import type { FileRow } from '../core/fileRecord.js';
import { newFileId } from '../core/ids.js';
import { sniffKind } from '../core/kinds.js';
import type { FileQueue } from '../core/queue/index.js';
import { BlobTooLargeError, isStorageFull, type BlobStore, type StoredBlob } from '../core/storage/index.js';
import type { Logger } from '../core/telemetry/logger.js';
import type { Metrics } from '../core/telemetry/metrics.js';
import { AppError } from './errors.js';
import { safeFilename } from './filenames.js';
import { fileUrl, serializeFile } from './serializer.js';

export interface UploadDeps {
  db: Database;
  queue: FileQueue;
  storage: BlobStore;
  logger: Logger;
  metrics: Metrics;
  maxUploadBytes: number;
  /** A claimed idempotency key whose request has not completed after this long was abandoned. */
  idempotencyAbandonAfterMs: number;
  baseUrl: (ctx: Koa.Context) => string;
}

/** What the storage engine hands back for the file part. */
interface ReceivedFile extends StoredBlob {
  id: string;
  originalname: string;
}

export const FILE_FIELD = 'file';

export function uploadHandler(deps: UploadDeps): Koa.Middleware {
  const { db, storage, logger } = deps;
  const receiveFile = multer({
    storage: blobStoreEngine(storage, deps.maxUploadBytes),
    // Browsers send UTF-8 filenames; busboy would read them as Latin-1 by default.
    defParamCharset: 'utf8',
    // Keep the name as sent ("..", "a/b"): safeFilename reduces it, so busboy must not drop it first.
    preservePath: true,
    limits: { files: 1, fileSize: deps.maxUploadBytes, fields: 50, fieldSize: 64 * 1024, fieldNameSize: 200, parts: 60, headerPairs: 50 },
  } as multer.Options).any();

  async function receive(ctx: Koa.Context): Promise<ReceivedFile> {
    try {
      await receiveFile(ctx, async () => undefined);
    } catch (err) {
      // multer may give up before the storage engine has removed a partial file: wait for it, so
      // that "nothing is left behind" holds by the time the client reads the error.
      await Promise.allSettled(pendingWrites.get(ctx.req) ?? []);
      throw asUploadError(err, deps.maxUploadBytes);
    }
    const received = (ctx.files as unknown as ReceivedFile[] | undefined)?.[0];
    if (received) return received;
    const sentAsField = Object.hasOwn((ctx.request as { body?: object }).body ?? {}, FILE_FIELD);
    throw new AppError(
      'file_missing',
      sentAsField
        ? 'The part named "file" is a text field; send it as a file (with a filename).'
        : 'The request has no part named "file"; send the file in a multipart part named "file".',
    );
  }

  const discard = (id: string) =>
    storage.remove(id).catch((err: unknown) => logger.error({ err, file_id: id }, 'could not remove the bytes of a failed upload'));

  /** Inserts the row (and completes the idempotency key in the same statement); the bytes go if it fails. */
  async function record(received: ReceivedFile, idempotency: IdempotencyScope | undefined): Promise<FileRow> {
    const name = safeFilename(received.originalname);
    const sniffed = await sniffKind(received.head, name);
    try {
      return await db.files.insert({ id: received.id, name, size: received.size, sha256: received.sha256, ...sniffed }, idempotency);
    } catch (err) {
      await discard(received.id);
      throw err;
    }
  }

  const answer = (ctx: Koa.Context, row: FileRow) => {
    const base = deps.baseUrl(ctx);
    ctx.status = 201;
    ctx.set('Location', fileUrl(row.id, base));
    ctx.body = serializeFile(row, base);
  };

  return async (ctx) => {
    if (!ctx.is('multipart/form-data')) {
      throw new AppError('unsupported_media_type', 'Send the file as multipart/form-data, in a part named "file".');
    }
    const idempotency = idempotencyScopeOf(ctx);
    const claim = idempotency ? await db.idempotencyKeys.claim(idempotency, deps.idempotencyAbandonAfterMs) : undefined;
    if (claim?.state === 'in_progress') {
      throw new AppError('idempotency_key_in_use', 'A request with this Idempotency-Key is still running; retry once it has finished.', {
        headers: { 'Retry-After': '1' },
      });
    }
    try {
      const received = await receive(ctx);
      if (claim?.state === 'done') {
        // A replay must send the same bytes; only then does it get the first request's file.
        if (received.sha256 !== claim.sha256) {
          await discard(received.id);
          throw new AppError('idempotency_key_reused', 'This Idempotency-Key was used for a different file; use a new key for a new upload.');
        }
        const original = await db.files.findById(claim.fileId);
        if (original) {
          await discard(received.id);
          ctx.set('Idempotent-Replayed', 'true');
          return answer(ctx, original);
        }
        // The first file was deleted since: this request creates it anew under the same key.
      }
      const row = await record(received, idempotency);
      await enqueueOrLeaveQueued(deps.queue, logger, row);
      deps.metrics.uploads.inc({ kind: row.kind });
      deps.metrics.uploadBytes.inc(row.size);
      answer(ctx, row);
    } catch (err) {
      if (claim?.state === 'claimed') {
        await db.idempotencyKeys.release(idempotency!).catch((releaseErr: unknown) => logger.error({ err: releaseErr }, 'could not release an idempotency key'));
      }
      throw err;
    }
  };
}

/** The Idempotency-Key of the request, scoped to its client; undefined without one. */
function idempotencyScopeOf(ctx: Koa.Context): IdempotencyScope | undefined {
  const key = ctx.get('Idempotency-Key');
  if (!key) return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new AppError('invalid_idempotency_key', 'An Idempotency-Key is 1 to 255 visible ASCII characters (a UUID is a good choice).');
  }
  return { scope: String(ctx.state.client ?? 'anonymous'), key };
}

/**
 * Enqueues the file's job. A failure (Redis down) is logged, not raised: the row is the source of
 * truth, and a queued row without a job is enqueued again later.
 */
export async function enqueueOrLeaveQueued(queue: FileQueue, logger: Logger, row: FileRow): Promise<void> {
  try {
    await queue.enqueue(row.id, row.kind);
  } catch (err) {
    logger.warn({ err, file_id: row.id }, 'could not enqueue the file; it stays queued');
  }
}

/** Writes the storage engine started for a request, so a failed request can wait for their cleanup. */
const pendingWrites = new WeakMap<IncomingMessage, Promise<unknown>[]>();

/** A multer storage engine over the blob store: one new id per accepted file part. */
function blobStoreEngine(storage: BlobStore, maxBytes: number): multer.StorageEngine {
  return {
    _handleFile(req: IncomingMessage, file: multer.File, callback: (error?: unknown, info?: multer.File) => void) {
      const stream = (file as unknown as { stream: Readable }).stream;
      if (file.fieldname !== FILE_FIELD) {
        stream.resume();
        callback(new AppError('file_missing', `Send the file in a part named "file", not "${file.fieldname.slice(0, 100)}".`));
        return;
      }
      const id = newFileId();
      const write = storage.put(id, stream, { maxBytes });
      pendingWrites.set(req, [...(pendingWrites.get(req) ?? []), write]);
      write.then(
        async (blob) => {
          if (blob.size === 0) {
            await storage.remove(id);
            return callback(new AppError('file_empty', 'The submitted file is empty.'));
          }
          const received: ReceivedFile = { ...blob, id, originalname: file.originalname };
          callback(null, received as unknown as multer.File);
        },
        (err: unknown) => callback(err),
      );
    },
    _removeFile(_req: IncomingMessage, file: multer.File, callback: (error: Error) => void) {
      storage.remove((file as unknown as ReceivedFile).id).then(
        () => callback(null as unknown as Error),
        (err: Error) => callback(err),
      );
    },
  };
}

const MULTER_LIMITS: Record<string, string> = {
  LIMIT_PART_COUNT: 'The form has too many parts.',
  LIMIT_FIELD_KEY: 'A field name is too long.',
  LIMIT_FIELD_VALUE: 'A text field is too long.',
  LIMIT_FIELD_COUNT: 'The form has too many text fields.',
  MISSING_FIELD_NAME: 'A part has no field name.',
};

function asUploadError(err: unknown, maxBytes: number): Error {
  if (err instanceof AppError) return err;
  const code = (err as { code?: string } | null)?.code ?? '';
  if (err instanceof BlobTooLargeError || code === 'LIMIT_FILE_SIZE') {
    return new AppError('file_too_large', `The file is larger than the limit of ${maxBytes} bytes.`);
  }
  if (code === 'LIMIT_FILE_COUNT' || code === 'LIMIT_UNEXPECTED_FILE') {
    return new AppError('too_many_files', 'Send exactly one file per upload, in a part named "file".');
  }
  if (isStorageFull(err)) {
    return new AppError('insufficient_storage', 'The file store is full; retry later.', { cause: err });
  }
  const detail = MULTER_LIMITS[code];
  if (detail) return new AppError('invalid_multipart', detail);
  // busboy's parse errors (no boundary, malformed headers, unexpected end) and aborted requests.
  if (err instanceof Error && !(err as NodeJS.ErrnoException).syscall) {
    return new AppError('invalid_multipart', 'The multipart body is malformed or was cut short; send it again whole.', { cause: err });
  }
  return err as Error;
}
