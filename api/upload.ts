// POST /upload/: stream the one file part into the blob store (hashing and sniffing on the way), then hand it to
// the intake (record, enqueue), and answer 201. Bytes before row, row before job; a failure at any step removes
// what the earlier steps made.
import type Koa from 'koa';
import type { Database, IdempotencyScope } from '../core/db/index.js';
import type { FileRow } from '../core/fileRecord.js';
import type { BlobStore } from '../core/storage/index.js';
import type { Logger } from '../core/telemetry/logger.js';
import type { MinRate } from './body.js';
import { AppError } from './errors.js';
import { claimIdempotencyKey, type FileIntake } from './intake.js';
import { bodyTooLarge, maxUploadBodyBytes, receiveFile, type ReceivedFile } from './multipart.js';
import { fileUrl, serializeFile } from './serializer.js';

/** What every way in that ends in a File needs (POST /upload/, direct uploads, tus). */
export interface WayInDeps {
  db: Database;
  intake: FileIntake;
  storage: BlobStore;
  logger: Logger;
  maxUploadBytes: number;
  /** A claimed idempotency key whose request has not completed after this long was abandoned. */
  idempotencyAbandonAfterMs: number;
  baseUrl: (ctx: Koa.Context) => string;
}

export interface UploadDeps extends WayInDeps {
  minBodyRate: MinRate;
}

export function uploadHandler(deps: UploadDeps): Koa.Middleware {
  const { db, storage, logger } = deps;
  const discard = (id: string) =>
    storage
      .remove(id)
      .catch((err: unknown) => logger.error({ err, file_id: id }, 'could not remove the bytes of a failed upload'));

  /** The File of what arrived (the idempotency key completed in the same statement); the bytes go if it fails. */
  async function admit(received: ReceivedFile, idempotency: IdempotencyScope | undefined): Promise<FileRow> {
    try {
      return await deps.intake.admit(received, { way: 'multipart', idempotency });
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
      answer(ctx, await admit(received, idempotency));
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
