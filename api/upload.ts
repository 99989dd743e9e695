// POST /upload/: stream the one file part into the blob store (hashing and sniffing on the way),
// insert the row, enqueue the job, answer 201. Bytes before row, row before job; a failure at any
// step removes what the earlier steps made.
import type Koa from 'koa';
import type { Database, IdempotencyScope } from '../core/db/index.js';
import type { FileRow } from '../core/fileRecord.js';
import { sniffKind } from '../core/kinds.js';
import type { FileQueue } from '../core/queue/index.js';
import type { BlobStore } from '../core/storage/index.js';
import type { Logger } from '../core/telemetry/logger.js';
import type { Metrics } from '../core/telemetry/metrics.js';
import type { MinRate } from './body.js';
import { callerOf } from './auth.js';
import { AppError } from './errors.js';
import { safeFilename } from './filenames.js';
import { bodyTooLarge, maxUploadBodyBytes, receiveFile, type ReceivedFile } from './multipart.js';
import { fileUrl, serializeFile } from './serializer.js';

/** What every way in that ends in a File needs (POST /upload/, direct uploads). */
export interface FileIntakeDeps {
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

export interface UploadDeps extends FileIntakeDeps {
  minBodyRate: MinRate;
}

export function uploadHandler(deps: UploadDeps): Koa.Middleware {
  const { db, storage, logger } = deps;
  const discard = (id: string) =>
    storage
      .remove(id)
      .catch((err: unknown) => logger.error({ err, file_id: id }, 'could not remove the bytes of a failed upload'));

  /** Inserts the row (and completes the idempotency key in the same statement); the bytes go if it fails. */
  async function record(received: ReceivedFile, idempotency: IdempotencyScope | undefined): Promise<FileRow> {
    const name = safeFilename(received.filename);
    const sniffed = await sniffKind(received.head, name);
    try {
      return await db.files.insert(
        { id: received.id, name, size: received.size, sha256: received.sha256, ...sniffed },
        idempotency,
      );
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
    const claim = await claimIdempotencyKey(ctx, deps, deps.idempotencyAbandonAfterMs);
    const idempotency = claim?.scope;
    try {
      const received = await receiveFile(ctx.req, storage, {
        maxFileBytes: deps.maxUploadBytes,
        minRate: deps.minBodyRate,
      });
      if (claim?.state === 'done') {
        // A replay must send the same bytes; only then does it get the first request's file.
        if (received.sha256 !== claim.sha256) {
          await discard(received.id);
          throw new AppError(
            'idempotency_key_reused',
            'This Idempotency-Key was used for a different file; use a new key for a new upload.',
          );
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
      deps.metrics.uploadBytes.inc({ kind: row.kind }, row.size);
      answer(ctx, row);
    } catch (err) {
      if (claim?.state === 'claimed') await claim.release();
      throw err;
    }
  };
}

/** Refuses an upload whose Content-Length is over the limit before reading a byte of its body (the answer closes the connection). */
export function refuseOversizedUploads(maxUploadBytes: number): Koa.Middleware {
  const maxBodyBytes = maxUploadBodyBytes(maxUploadBytes);
  return async (ctx, next) => {
    if (Number(ctx.get('Content-Length')) > maxBodyBytes) throw bodyTooLarge(maxUploadBytes);
    await next();
  };
}

export type HeldClaim = { scope: IdempotencyScope } & (
  { state: 'claimed'; release(): Promise<void> } | { state: 'done'; fileId: string; sha256: string }
);

/**
 * Claims the request's Idempotency-Key (undefined without one): answers 409 while the key's first request
 * runs; `release` gives up a claim whose request failed (a failure to release is logged, not raised).
 */
export async function claimIdempotencyKey(
  ctx: Koa.Context,
  { db, logger }: { db: Database; logger: Logger },
  abandonAfterMs: number,
): Promise<HeldClaim | undefined> {
  const scope = idempotencyScopeOf(ctx);
  if (!scope) return undefined;
  const claim = await db.idempotencyKeys.claim(scope, abandonAfterMs);
  if (claim.state === 'in_progress') {
    throw new AppError(
      'idempotency_key_in_use',
      'A request with this Idempotency-Key is still running; retry once it has finished.',
      { headers: { 'Retry-After': '1' } },
    );
  }
  if (claim.state === 'done') return { ...claim, scope };
  return {
    state: 'claimed',
    scope,
    release: () =>
      db.idempotencyKeys
        .release(scope)
        .catch((err: unknown) => logger.error({ err }, 'could not release an idempotency key')),
  };
}

/** The Idempotency-Key of the request, scoped to its client; undefined without one. */
function idempotencyScopeOf(ctx: Koa.Context): IdempotencyScope | undefined {
  const key = ctx.get('Idempotency-Key');
  if (!key) return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new AppError(
      'invalid_idempotency_key',
      'An Idempotency-Key is 1 to 255 visible ASCII characters (a UUID is a good choice).',
    );
  }
  return { scope: callerOf(ctx), key };
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
